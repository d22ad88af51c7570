"""Exec churn leaks nothing: after many execs the shim holds the same fds and its memory has
stopped growing (upstream leaked per exec: containerd#13561, ttrpc#241)."""

import os
from pathlib import Path

import pytest

from cshim_e2e import ASAN, parent_pid, run_detached

pytestmark = pytest.mark.cshim_only
PHASE = 60  # execs per phase; the allocator settles during the first


def shim_footprint(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    anon = next(int(l.split()[1]) for l in rollup if l.startswith("Anonymous:"))
    return fds, anon


def test_exec_churn_leaks_nothing(containerd, ctr, runtime, rootfs, cid):
    if runtime.name != "runc":
        pytest.skip("shim-side bookkeeping: one runtime is enough")
    init = run_detached(containerd, runtime.args, ["--rootfs", str(rootfs)], cid,
                        "/bin/sleep", "1000")
    shim = parent_pid(init)

    def churn(tag):
        for i in range(PHASE):
            out = ctr("task", "exec", "--exec-id", f"{tag}{i}", cid, "/bin/echo", f"{tag}{i}")
            assert out.stdout == f"{tag}{i}\n"
        return shim_footprint(shim)

    fds_start, _ = shim_footprint(shim)
    churn("warm")
    fds_mid, anon_mid = churn("a")
    fds_end, anon_end = churn("b")

    assert fds_start == fds_mid == fds_end, os.listdir(f"/proc/{shim}/fd")
    if not ASAN:  # the sanitizer's quarantine holds freed memory on purpose
        assert anon_end - anon_mid <= 8, \
            f"anonymous memory grew {anon_end - anon_mid} KB over {PHASE} more execs"
    # Every exec is gone from the shim: Pids lists the init only.
    pids = [p for p in ctr("task", "ps", cid).stdout.split() if p.isdigit()]
    assert pids == [str(init)]

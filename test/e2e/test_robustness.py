"""Failure paths, crash recovery, concurrency and the drop-in install."""

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from cshim_e2e import (STOCK_RUNTIME, describe, mounts_under, parent_pid, pid_alive,
                       pids_with_arg, process_argv, shim_binary, socket_listing,
                       stale_sockets, wait_until)

RUN_TIMEOUT = 30
PARALLEL = 20


def snapshot_keys(ctr):
    return {line.split()[0] for line in ctr("snapshots", "ls").stdout.splitlines()[1:]
            if line.strip()}


def assert_nothing_left(containerd, runtime, cid):
    """No task, container, process, mount, bundle, shim socket or runtime
    state remains for cid."""
    assert cid not in containerd.tasks()
    assert cid not in containerd.containers()
    wait_until(lambda: not pids_with_arg(cid), timeout=15,
               what=f"no process with {cid} in its argv")
    assert not mounts_under(containerd.bundle(cid))
    wait_until(lambda: not containerd.bundle(cid).exists(), timeout=10,
               what=f"bundle {containerd.bundle(cid)} removed")
    assert not [p for p in runtime.root.rglob(cid)], f"runtime state left for {cid}"


def test_missing_runtime_binary(containerd, ctr, runtime, image, cid):
    missing = f"/nonexistent/{runtime.name}"
    sockets_before = socket_listing()

    result = ctr("run", "--rm", *runtime.args_for(missing), image, cid, "/bin/true",
                 check=False, timeout=RUN_TIMEOUT)

    assert result.returncode != 0, describe(result)
    output = (result.stdout + result.stderr).lower()
    assert missing in output and "no such file or directory" in output, describe(result)
    wait_until(lambda: not pids_with_arg(cid), timeout=15, what="no shim left")
    assert not mounts_under(containerd.bundle(cid))
    assert cid not in containerd.containers()
    assert cid not in snapshot_keys(ctr)
    assert not containerd.socket_path(cid).exists()
    # Other containerd instances may start shims meanwhile; those sockets are
    # live. A socket left by this failed start would be dead.
    assert not stale_sockets(socket_listing() - sockets_before), \
        "dead sockets left in /run/containerd/s"


def test_shim_killed_is_cleaned_up(containerd, ctr, events, runtime, image, cid):
    ctr("run", "-d", *runtime.args, image, cid, "/bin/sleep", "1000", timeout=RUN_TIMEOUT)
    pid, _ = wait_until(lambda: containerd.tasks().get(cid), what="task listed")
    shim = parent_pid(pid)
    assert cid in (process_argv(shim) or []), f"parent {shim} of {pid} is not the shim"

    os.kill(shim, signal.SIGKILL)

    exit_event = events.wait_topic(cid, "/tasks/exit", timeout=30)
    assert exit_event.data.get("exit_status") == 137, exit_event
    wait_until(lambda: (containerd.tasks().get(cid) or (0, "STOPPED"))[1] == "STOPPED",
               what="task gone or STOPPED")
    wait_until(lambda: not pid_alive(pid), what=f"container init {pid} killed")
    if cid in containerd.tasks():
        ctr("task", "rm", cid)
    ctr("containers", "rm", cid)
    assert_nothing_left(containerd, runtime, cid)


def test_parallel_runs(containerd, runtime, rootfs, ids):
    cids = [ids.new() for _ in range(PARALLEL)]
    args = runtime.args

    def run_one(cid):
        return containerd.ctr("run", "--rm", *args, "--rootfs", rootfs, cid,
                              "/bin/echo", f"out-{cid}", check=False, timeout=120)

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(pool.map(run_one, cids))

    for cid, result in zip(cids, results):
        assert result.returncode == 0 and result.stdout == f"out-{cid}\n", describe(result)
    for cid in cids:
        assert_nothing_left(containerd, runtime, cid)
        assert not containerd.socket_path(cid).exists()


@pytest.mark.cshim_only
def test_installed_as_runc_shim(make_containerd, runtime, marker_runtime, rootfs, ids,
                                tmp_path):
    """Named containerd-shim-runc-v2 first on containerd's PATH, cshim serves
    io.containerd.runc.v2 and honours --runc-binary (containerd.runc.v1.Options)."""
    link_dir = tmp_path / "shim"
    link_dir.mkdir()
    (link_dir / "containerd-shim-runc-v2").symlink_to(shim_binary())
    instance = make_containerd(f"dropin-{runtime.name}", extra_path=[link_dir])
    cid = ids.new(instance)
    wrapper, marker = marker_runtime

    instance.ctr("run", "-d", "--runtime", STOCK_RUNTIME, "--runc-binary", wrapper,
                 "--rootfs", rootfs, cid, "/bin/sleep", "1000", timeout=RUN_TIMEOUT)
    pid, _ = wait_until(lambda: instance.tasks().get(cid), what="task listed")
    shim = parent_pid(pid)
    assert os.path.realpath(f"/proc/{shim}/exe") == os.path.realpath(shim_binary())

    instance.ctr("task", "kill", "-s", "SIGKILL", cid)
    wait_until(lambda: instance.tasks()[cid][1] == "STOPPED", what="STOPPED")
    instance.ctr("task", "rm", cid)
    instance.ctr("containers", "rm", cid)

    calls = [line.split() for line in marker.read_text().splitlines()]
    for verb in ("create", "start", "delete"):
        assert any(verb in argv and cid in argv for argv in calls), \
            f"no `{runtime.name} {verb} ... {cid}` in {marker}:\n{marker.read_text()}"
    wait_until(lambda: not pids_with_arg(cid), timeout=15, what="shim exited")

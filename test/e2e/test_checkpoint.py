"""Checkpoint and restore through ctr.

CRIU cannot run on these machines (runc's checkpoint fails; Debian's crun has
no CRIU), so the real runtimes cover the error path only. The success paths
use test/fakes/fake-criu-runtime, which hands every command to the real
runtime except checkpoint (writes a marker image) and restore (create + start
of the bundle), records the command lines the shim used, and adds +CRIU to
crun's --version build line (cshim's probe then treats it as a crun built
with CRIU).

How ctr 1.6 reaches each path (cmd/ctr/commands at v1.6.20):
- `ctr task checkpoint ID` pauses the task, calls Checkpoint with a temp dir
  as the path and, for a runtime not named io.containerd.runc.*, no options
  (its --exit/--image-path/--work-path only apply to runc runtime names), then
  resumes and stores the dir as a checkpoint image;
- `ctr containers checkpoint --task ID REF` does the same with
  containerd.runc.v1.CheckpointOptions{file_locks: true} and records the
  image, runtime (with its options) and spec in REF;
- `ctr containers restore --live ID REF` creates a container from REF and a
  task whose Create carries the unpacked checkpoint dir; the shim restores at
  Start. (ctr 1.6 run has no --checkpoint flag.)
Installed as containerd-shim-runc-v2 (runtime io.containerd.runc.v2), cshim
gets ctr's --exit/--image-path/--work-path as CheckpointOptions. Options ctr
never sends (open TCP, external unix sockets, shell job) go through a direct
ttrpc Checkpoint call.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

import ttrpc_client as tt
from cshim_e2e import (REPO, STOCK_RUNTIME, describe, exit_status, parent_pid, pid_alive,
                       process_argv, run_detached, shim_binary, wait_task_status)

FAKE = REPO / "test" / "fakes" / "fake-criu-runtime"
MARKER = "fake-criu.img"
CHECKPOINT_TIMEOUT = 60
# What a checkpoint with the real runtimes fails with (measured on these machines): runc
# passes on CRIU's failure. Debian's crun has no checkpoint command at all: the stock shim
# passes on crun's own words, cshim's runtime profile reads the missing +CRIU from
# `crun --version` and refuses up front, naming crun and CRIU (docs/runtimes.md).
RUNTIME_CHECKPOINT_ERROR = {
    "runc": r"criu failed",
    "crun": r"unknown command checkpoint|crun \S+ was built without CRIU",
}


class CriuRuntime:
    """The fake as the shim's runtime binary, delegating to the real runtime."""

    def __init__(self, runtime, directory, fail_with=""):
        self.record = directory / "criu-calls"
        bin_dir = directory / "bin"
        bin_dir.mkdir()
        self.binary = bin_dir / f"{runtime.name}-criu"
        self.binary.write_text(f"#!/bin/sh\nFAKE_CRIU_REAL='{runtime.binary}' "
                               f"FAKE_CRIU_FAIL='{fail_with}' "
                               f"FAKE_CRIU_RECORD='{self.record}' exec '{FAKE}' \"$@\"\n")
        self.binary.chmod(0o755)
        self.args = runtime.args_for(self.binary)

    def calls(self, verb):
        """[(args, result)] of the recorded calls of verb, arguments after the verb."""
        if not self.record.exists():
            return []
        found = []
        for line in self.record.read_text().splitlines():
            fields = line.split("\t")
            if fields[0] == verb:
                found.append((fields[1:-1], fields[-1]))
        return found

    def only_call(self, verb):
        calls = self.calls(verb)
        assert len(calls) == 1, f"expected one `{verb}` call, got {calls}"
        args, result = calls[0]
        assert result == "ok", f"the fake's {verb} failed: {result}"
        return args


@pytest.fixture
def criu_runtime(runtime, tmp_path):
    return CriuRuntime(runtime, tmp_path)


def option_value(args, flag):
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def assert_checkpoint_args(args, cid, flags):
    """`--image-path P --work-path W FLAGS... <id>`, as runc's CLI and the
    stock shim order them; returns (P, W)."""
    assert args[0] == "--image-path" and os.path.isabs(args[1]), args
    assert args[2] == "--work-path" and os.path.isabs(args[3]), args
    assert args[4:] == [*flags, cid], args
    return args[1], args[3]


def assert_exec_works(ctr, cid):
    result = ctr("task", "exec", "--exec-id", "probe", cid, "/bin/echo", "alive",
                 check=False)
    assert result.returncode == 0 and result.stdout == "alive\n", describe(result)


# --- the real runtimes: CRIU fails ------------------------------------------------------

def test_checkpoint_failure_reports_runtime_error(containerd, ctr, runtime, rootfs, cid):
    pid = run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid,
                       "/bin/sleep", "1000")

    result = ctr("task", "checkpoint", cid, check=False, timeout=CHECKPOINT_TIMEOUT)

    assert result.returncode != 0, describe(result)
    assert re.search(RUNTIME_CHECKPOINT_ERROR[runtime.name], result.stdout + result.stderr), \
        describe(result)
    assert wait_task_status(containerd, cid, "RUNNING") == pid
    assert pid_alive(pid)
    assert_exec_works(ctr, cid)


def test_failed_checkpoint_keeps_criu_log_and_removes_work_dir(containerd, ctr, runtime, rootfs,
                                                               cid, tmp_path):
    """As the stock shim: CRIU's dump.log is copied into the bundle as criu-dump.log
    before the failure is answered, and the default work dir is removed."""
    marker = f"dump log of {cid}"
    failing = CriuRuntime(runtime, tmp_path, fail_with=marker)
    pid = run_detached(containerd, failing.args, ["--rootfs", rootfs], cid, "/bin/sleep", "1000")
    bundle = containerd.bundle(cid)

    result = ctr("task", "checkpoint", cid, check=False, timeout=CHECKPOINT_TIMEOUT)

    assert result.returncode != 0 and "criu failed" in result.stdout + result.stderr, \
        describe(result)
    assert (bundle / "criu-dump.log").read_text() == marker + "\n"
    assert not (bundle / "criu-work").exists()
    assert wait_task_status(containerd, cid, "RUNNING") == pid
    assert_exec_works(ctr, cid)


# --- the fake: success paths ----------------------------------------------------------------

def test_task_checkpoint_leaves_task_running(containerd, ctr, criu_runtime, rootfs, cid):
    pid = run_detached(containerd, criu_runtime.args, ["--rootfs", rootfs], cid,
                       "/bin/sleep", "1000")

    result = ctr("task", "checkpoint", cid, timeout=CHECKPOINT_TIMEOUT)

    checkpoint_ref = result.stdout.strip()
    try:
        assert_checkpoint_args(criu_runtime.only_call("checkpoint"), cid, ["--leave-running"])
        assert checkpoint_ref in ctr("images", "ls", "-q").stdout.split(), describe(result)
        assert wait_task_status(containerd, cid, "RUNNING") == pid
        assert pid_alive(pid)
        assert_exec_works(ctr, cid)
    finally:
        if checkpoint_ref:
            ctr("images", "rm", checkpoint_ref, check=False)


def test_checkpoint_and_restore(containerd, ctr, criu_runtime, image, ids):
    cid, restored = ids.new(), ids.new()
    ref = f"checkpoint/{cid}:latest"
    pid = run_detached(containerd, criu_runtime.args, [image], cid, "/bin/sleep", "1000")

    ctr("containers", "checkpoint", "--task", cid, ref, timeout=CHECKPOINT_TIMEOUT)
    try:
        assert_checkpoint_args(criu_runtime.only_call("checkpoint"), cid,
                               ["--file-locks", "--leave-running"])
        assert wait_task_status(containerd, cid, "RUNNING") == pid
        ctr("task", "kill", "-s", "SIGKILL", cid)
        wait_task_status(containerd, cid, "STOPPED")

        ctr("containers", "restore", "--live", restored, ref, timeout=CHECKPOINT_TIMEOUT)

        args = criu_runtime.only_call("restore")  # the fake found its marker image
        bundle = str(containerd.bundle(restored))
        assert args[0] == "--image-path" and os.path.isabs(args[1]), args
        assert "--detach" in args, args
        assert option_value(args, "--pid-file").startswith(bundle + "/"), args
        assert option_value(args, "--bundle") == bundle, args
        assert args[-1] == restored, args
        new_pid = wait_task_status(containerd, restored, "RUNNING")
        assert new_pid != pid and pid_alive(new_pid)
        assert restored in (process_argv(parent_pid(new_pid)) or []), \
            "the restored init is not a child of its shim"
        assert_exec_works(ctr, restored)
    finally:
        ctr("images", "rm", ref, check=False)
        remove_unpacked_checkpoints(criu_runtime)


def remove_unpacked_checkpoints(criu_runtime):
    """containerd 1.6 unpacks a checkpoint for Create into a temp dir
    (ctrd-checkpoint*) and never removes it: remove the ones our restores used."""
    for args, _ in criu_runtime.calls("restore"):
        path = Path(option_value(args, "--image-path"))
        if path.name.startswith("ctrd-checkpoint") and (path / MARKER).exists():
            shutil.rmtree(path, ignore_errors=True)


def test_checkpoint_options_reach_runtime(containerd, events, criu_runtime, rootfs, cid,
                                          tmp_path):
    """CheckpointOptions ctr 1.6 never sends, through a direct ttrpc call: exit
    stops the task (no --leave-running), each option becomes its flag."""
    run_detached(containerd, criu_runtime.args, ["--rootfs", rootfs], cid,
                 "/bin/sleep", "1000")
    image_dir, work_dir = tmp_path / "image", tmp_path / "work"
    options = tt.checkpoint_options(exit=True, open_tcp=True, external_unix_sockets=True,
                                    terminal=True, file_locks=True,
                                    image_path=str(image_dir), work_path=str(work_dir))

    with tt.TtrpcClient(tt.shim_address(containerd.bundle(cid)),
                        containerd.namespace) as client:
        reply = client.task("Checkpoint", tt.checkpoint_request(cid, str(image_dir), options),
                            timeout=CHECKPOINT_TIMEOUT)

    assert reply.ok, reply
    image_path, work_path = assert_checkpoint_args(
        criu_runtime.only_call("checkpoint"), cid,
        ["--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks"])
    assert (image_path, work_path) == (str(image_dir), str(work_dir))
    assert (image_dir / MARKER).read_text() == f"{cid}\n"
    assert exit_status(events.wait_topic(cid, "/tasks/exit")) == 137
    wait_task_status(containerd, cid, "STOPPED")


@pytest.mark.cshim_only
def test_task_checkpoint_exit_and_paths_as_runc_shim(make_containerd, runtime, criu_runtime,
                                                     rootfs, ids, tmp_path):
    """Under the runc runtime name ctr sends CheckpointOptions{exit, image_path,
    work_path}: the runtime gets those paths, no --leave-running, the task
    exits, and containerd stores no checkpoint image."""
    link_dir = tmp_path / "shim"
    link_dir.mkdir()
    (link_dir / "containerd-shim-runc-v2").symlink_to(shim_binary())
    instance = make_containerd(f"criu-dropin-{runtime.name}", extra_path=[link_dir])
    cid = ids.new(instance)
    image_dir, work_dir = tmp_path / "image", tmp_path / "work"
    images_before = set(instance.ctr("images", "ls", "-q").stdout.split())
    run_detached(instance, ["--runtime", STOCK_RUNTIME, "--runc-binary", criu_runtime.binary],
                 ["--rootfs", rootfs], cid, "/bin/sleep", "1000")

    result = instance.ctr("task", "checkpoint", "--exit", "--image-path", image_dir,
                          "--work-path", work_dir, cid, timeout=CHECKPOINT_TIMEOUT)

    assert result.stdout == "", describe(result)
    paths = assert_checkpoint_args(criu_runtime.only_call("checkpoint"), cid, [])
    assert paths == (str(image_dir), str(work_dir))
    assert (image_dir / MARKER).read_text() == f"{cid}\n"
    wait_task_status(instance, cid, "STOPPED")
    assert set(instance.ctr("images", "ls", "-q").stdout.split()) == images_before

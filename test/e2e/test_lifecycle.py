"""A container's life through ctr, exactly as users drive it, for runc and crun."""

import os
import signal
from pathlib import Path

import pytest

from cshim_e2e import (catches_signal, describe, mounts_under, pid_alive, pids_with_args,
                       process_argv, wait_until)

# pid 1 of a pid namespace ignores signals it has no handler for: install one.
TERM_HANDLER_LOOP = 'trap "exit 143" TERM; while :; do sleep 0.1; done'
RUN_TIMEOUT = 30
pytestmark = pytest.mark.core


def running_init_pid(containerd, cid):
    """The init pid `ctr task ls` shows once the task is RUNNING."""
    def running():
        entry = containerd.tasks().get(cid)
        return entry if entry and entry[1] == "RUNNING" else None

    pid, _ = wait_until(running, timeout=15, what=f"task {cid} RUNNING")
    assert pid > 0
    return pid


def task_status(containerd, cid):
    return (containerd.tasks().get(cid) or (0, None))[1]


def exit_status(event):
    return event.data.get("exit_status", 0)  # zero values are omitted in JSON


def test_echo_prints_output(ctr, runtime, rootfs, cid):
    result = ctr("run", "--rm", *runtime.args, "--rootfs", rootfs, cid,
                 "/bin/echo", "hi", timeout=RUN_TIMEOUT)
    assert result.stdout == "hi\n"


@pytest.mark.parametrize("status", [0, 7])
def test_exit_status_reaches_ctr(ctr, runtime, rootfs, cid, status):
    result = ctr("run", "--rm", *runtime.args, "--rootfs", rootfs, cid,
                 "/bin/sh", "-c", f"exit {status}", check=False, timeout=RUN_TIMEOUT)
    assert result.returncode == status, describe(result)


def test_kill_default_signal_is_sigterm(containerd, ctr, events, runtime, rootfs, cid):
    ctr("run", "-d", *runtime.args, "--rootfs", rootfs, cid,
        "/bin/sh", "-c", TERM_HANDLER_LOOP, timeout=RUN_TIMEOUT)
    pid = running_init_pid(containerd, cid)
    wait_until(lambda: catches_signal(pid, signal.SIGTERM), what="the TERM trap")

    ctr("task", "kill", cid)

    assert exit_status(events.wait_topic(cid, "/tasks/exit")) == 143
    wait_until(lambda: task_status(containerd, cid) == "STOPPED", what="STOPPED")
    removed = ctr("task", "rm", cid)
    assert "exit code 143" in removed.stderr, describe(removed)


def test_kill_sigkill_exit_137(containerd, ctr, events, runtime, rootfs, cid):
    ctr("run", "-d", *runtime.args, "--rootfs", rootfs, cid, "/bin/sleep", "1000",
        timeout=RUN_TIMEOUT)
    running_init_pid(containerd, cid)

    ctr("task", "kill", "-s", "SIGKILL", cid)

    assert exit_status(events.wait_topic(cid, "/tasks/exit")) == 137
    wait_until(lambda: task_status(containerd, cid) == "STOPPED", what="STOPPED")
    removed = ctr("task", "rm", cid)
    assert "exit code 137" in removed.stderr, describe(removed)


def test_task_ls_running_then_stopped(containerd, ctr, runtime, rootfs, cid):
    ctr("run", "-d", *runtime.args, "--rootfs", rootfs, cid, "/bin/sleep", "1000",
        timeout=RUN_TIMEOUT)
    pid = running_init_pid(containerd, cid)
    assert pid_alive(pid)

    ctr("task", "kill", "-s", "SIGKILL", cid)

    wait_until(lambda: task_status(containerd, cid) == "STOPPED", what="STOPPED")
    assert containerd.tasks()[cid][0] == pid
    wait_until(lambda: not pid_alive(pid), what=f"init pid {pid} gone")
    ctr("task", "rm", cid)
    assert cid not in containerd.tasks()
    ctr("containers", "rm", cid)
    assert cid not in containerd.containers()


def test_server_is_the_fork_of_start(containerd, ctr, runtime, rootfs, cid):
    """`start` forks the server (no exec): one server for the task, in a session of its own,
    running the shim binary with one thread, its argv the invocation's without `start`, and
    its oom_score_adj containerd's + 1."""
    ctr("run", "-d", *runtime.args, "--rootfs", rootfs, cid, "/bin/sleep", "1000",
        timeout=RUN_TIMEOUT)
    running_init_pid(containerd, cid)
    servers = set(pids_with_args("-id", cid)) & set(containerd.shim_pids())
    assert len(servers) == 1, servers
    pid = servers.pop()
    argv = process_argv(pid)
    assert "start" not in argv and "delete" not in argv, argv
    assert argv[argv.index("-address") + 1] == str(containerd.sock), argv
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(fields[3]) == pid  # session leader
    assert os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "containerd-shim-cshim-v2"
    assert os.listdir(f"/proc/{pid}/task") == [str(pid)]
    parent = int(Path(f"/proc/{containerd.proc.pid}/oom_score_adj").read_text())
    assert int(Path(f"/proc/{pid}/oom_score_adj").read_text()) == min(parent + 1, 1000)


def test_task_ps_lists_init_pid(containerd, ctr, runtime, rootfs, cid):
    ctr("run", "-d", *runtime.args, "--rootfs", rootfs, cid,
        "/bin/sh", "-c", TERM_HANDLER_LOOP, timeout=RUN_TIMEOUT)
    pid = running_init_pid(containerd, cid)

    listed = ctr("task", "ps", cid)

    lines = listed.stdout.splitlines()
    assert lines and lines[0].split()[0] == "PID", describe(listed)
    pids = {int(line.split()[0]) for line in lines[1:] if line.strip()}
    assert pid in pids, describe(listed)


def test_events_in_order(containerd, ctr, events, runtime, rootfs, cid):
    ctr("run", "--rm", *runtime.args, "--rootfs", rootfs, cid, "/bin/true",
        timeout=RUN_TIMEOUT)

    events.wait_topic(cid, "/tasks/delete")
    task_events = [e for e in events.for_container(cid) if e.topic.startswith("/tasks/")]
    topics = [e.topic for e in task_events]
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], \
        task_events
    create, start, exit_, delete = task_events
    assert create.data["bundle"] == str(containerd.bundle(cid))
    assert create.data["pid"] > 0
    assert start.data["pid"] == exit_.data["pid"] == delete.data["pid"] == create.data["pid"]
    assert exit_status(exit_) == 0 and exit_status(delete) == 0


def test_runtime_binary_from_config(ctr, runtime, marker_runtime, rootfs, cid):
    wrapper, marker = marker_runtime

    result = ctr("run", "--rm", *runtime.args_for(wrapper), "--rootfs", rootfs, cid,
                 "/bin/echo", "via", runtime.name, timeout=RUN_TIMEOUT)

    assert result.stdout == f"via {runtime.name}\n"
    calls = [line.split() for line in marker.read_text().splitlines()]
    for verb in ("create", "start", "delete"):
        assert any(verb in argv and cid in argv for argv in calls), \
            f"no `{runtime.name} {verb} ... {cid}` in {marker}:\n{marker.read_text()}"


def test_image_rootfs_mounted_then_unmounted(containerd, ctr, runtime, image, cid):
    """From an image, the rootfs is a snapshot the shim mounts into the bundle."""
    ctr("run", "-d", *runtime.args, image, cid, "/bin/sleep", "1000", timeout=RUN_TIMEOUT)
    running_init_pid(containerd, cid)
    rootfs = containerd.bundle(cid) / "rootfs"
    assert str(rootfs) in mounts_under(containerd.bundle(cid))

    ctr("task", "kill", "-s", "SIGKILL", cid)
    wait_until(lambda: task_status(containerd, cid) == "STOPPED", what="STOPPED")
    ctr("task", "rm", cid)

    assert not mounts_under(containerd.bundle(cid))
    assert not containerd.bundle(cid).exists()
    ctr("containers", "rm", cid)

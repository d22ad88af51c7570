"""containerd restarts: shims outlive it, containerd reconnects to them, and an exit that
happened while it was down still reaches it (REFERENCE §3 item 4)."""

import pytest

from cshim_e2e import (CONTAINERD, Containerd, EventStream, exit_status, parent_pid,
                       pid_alive, pids_with_arg, wait_task_status, wait_until)

pytestmark = [pytest.mark.cshim_only, pytest.mark.core]
RUN_TIMEOUT = 40


def test_shims_survive_a_containerd_restart(make_containerd, runtime, rootfs, ids):
    ctd = make_containerd("restart")
    lives, exits = ids.new(ctd), ids.new(ctd)
    ctd.ctr("run", "-d", *runtime.args, "--rootfs", str(rootfs), lives, "/bin/sleep", "1000",
            timeout=RUN_TIMEOUT)
    ctd.ctr("run", "-d", *runtime.args, "--rootfs", str(rootfs), exits, "/bin/sh", "-c",
            "sleep 3; exit 5", timeout=RUN_TIMEOUT)
    live_pid = wait_task_status(ctd, lives, "RUNNING")
    exit_pid = wait_task_status(ctd, exits, "RUNNING")
    shims = {parent_pid(live_pid), parent_pid(exit_pid)}

    # Stop only containerd: its shims and containers stay.
    ctd.proc.terminate()
    ctd.proc.wait(timeout=15)
    # The second container exits while nobody listens to its shim.
    wait_until(lambda: not pid_alive(exit_pid), timeout=15, what="exit while containerd is down")
    assert all(pid_alive(s) for s in shims), "a shim died with containerd"
    Containerd.live.remove(ctd)
    ctd.start()  # same root, state and sockets
    events = EventStream(ctd).sync()
    try:
        assert ctd.tasks()[lives] == (live_pid, "RUNNING")
        if CONTAINERD == "1.6":
            wait_task_status(ctd, exits, "STOPPED")
        else:
            # 1.7+ reloads a shim whose Pids list is empty as leaked and deletes its task
            # (the stock shim's stopped task gets the same); it must be gone, not stuck.
            wait_until(lambda: exits not in ctd.tasks(), timeout=15,
                       what="the stopped task deleted on reload")
            assert any("cleaning leaked shim process" in line and exits in line
                       for line in ctd.log_tail(400).splitlines())
        ctd.ctr("task", "kill", "-s", "SIGKILL", lives)
        event = events.wait_topic(lives, "/tasks/exit", timeout=RUN_TIMEOUT)
        assert exit_status(event) == 137
        if CONTAINERD == "1.6":
            removed = ctd.ctr("task", "rm", exits, timeout=RUN_TIMEOUT)
            assert "exit code 5" in removed.stderr, removed.stderr  # outlived the outage
        ctd.ctr("task", "rm", lives, timeout=RUN_TIMEOUT)
        for cid in (lives, exits):
            ctd.ctr("c", "rm", cid)
    finally:
        events.close()
    wait_until(lambda: not any(pid_alive(s) for s in shims), timeout=15,
               what="shims exit once their containers are deleted")
    assert not pids_with_arg(lives) and not pids_with_arg(exits)

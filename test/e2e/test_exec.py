"""Exec through ctr: exit codes, output, concurrency, events, kill, refusals,
init exit ordering and the output drain deadline, for runc and crun."""

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cshim_e2e import (RUN_TIMEOUT, describe, exit_status, run_detached, stop_popen,
                       wait_task_status)

pytestmark = pytest.mark.core

EXEC_TIMEOUT = 30
CONCURRENT_EXECS = 6
LINES_PER_EXEC = 4000
# An exec whose background child keeps stdout open: the shim closes the
# output 2 s after the exec exits; allow generous slack, far below 30 s.
DRAIN_DEADLINE_BOUND = 8.0


@pytest.fixture
def running(containerd, runtime, rootfs, cid):
    """A running container (init: sleep) to exec into; its id."""
    run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid, "/bin/sleep", "1000")
    return cid


def first_difference(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def is_exec_event(topic, container_id, exec_id):
    def matches(event):
        if event.topic != topic or event.data.get("container_id") != container_id:
            return False
        key = "id" if topic == "/tasks/exit" else "exec_id"
        return event.data.get(key) == exec_id
    return matches


def is_init_exit(container_id):
    return lambda e: (e.topic == "/tasks/exit" and e.data.get("container_id") == container_id
                      and e.data.get("id") == container_id)


@pytest.mark.parametrize("status", [0, 3])
def test_exec_exit_code_and_output(ctr, running, status):
    result = ctr("task", "exec", "--exec-id", f"code-{status}", running,
                 "/bin/sh", "-c", f"echo out-{status}; echo err-{status} >&2; exit {status}",
                 check=False, timeout=EXEC_TIMEOUT)

    assert result.returncode == status, describe(result)
    assert result.stdout == f"out-{status}\n", describe(result)
    assert result.stderr == f"err-{status}\n", describe(result)


def test_concurrent_execs_keep_their_output(containerd, running):
    def one_exec(n):
        return containerd.ctr(
            "task", "exec", "--exec-id", f"par-{n}", running, "/bin/sh", "-c",
            f'seq 1 {LINES_PER_EXEC} | sed "s/^/exec{n}-/"', check=False, timeout=60)

    with ThreadPoolExecutor(max_workers=CONCURRENT_EXECS) as pool:
        results = list(pool.map(one_exec, range(CONCURRENT_EXECS)))

    for n, result in enumerate(results):
        expected = "".join(f"exec{n}-{i}\n" for i in range(1, LINES_PER_EXEC + 1))
        assert result.returncode == 0, describe(result)
        assert result.stdout == expected, (
            f"exec {n}: {len(result.stdout)} bytes instead of {len(expected)}, first "
            f"difference at offset {first_difference(result.stdout, expected)}")


def test_exec_events_in_order(ctr, events, running):
    exec_id = "evt"
    result = ctr("task", "exec", "--exec-id", exec_id, running, "/bin/sh", "-c", "exit 3",
                 check=False, timeout=EXEC_TIMEOUT)
    assert result.returncode == 3, describe(result)

    added = events.position(is_exec_event("/tasks/exec-added", running, exec_id),
                        what="exec-added")
    started = events.position(is_exec_event("/tasks/exec-started", running, exec_id),
                          what="exec-started")
    exited = events.position(is_exec_event("/tasks/exit", running, exec_id),
                         what="exec exit")
    assert added < started < exited, events.events[added:exited + 1]
    started_event, exit_event = events.events[started], events.events[exited]
    assert started_event.data.get("pid", 0) > 0, started_event
    assert exit_event.data.get("pid") == started_event.data["pid"], exit_event
    assert exit_status(exit_event) == 3, exit_event


def test_exec_into_stopped_container_fails(containerd, ctr, runtime, rootfs, cid):
    """Refused as the stock shim (1.6.20 and later) refuses it: "cannot exec in a
    stopped state"."""
    ctr("run", "-d", *runtime.args, "--rootfs", rootfs, cid, "/bin/true",
        timeout=RUN_TIMEOUT)
    wait_task_status(containerd, cid, "STOPPED")

    result = ctr("task", "exec", "--exec-id", "late", cid, "/bin/echo", "never",
                 check=False, timeout=EXEC_TIMEOUT)

    assert result.returncode != 0, describe(result)
    assert "never" not in result.stdout
    assert "cannot exec in a stopped state" in result.stderr, describe(result)


def test_exec_into_missing_container_fails(ctr, cid):
    result = ctr("task", "exec", "--exec-id", "ghost", cid, "/bin/true",
                 check=False, timeout=EXEC_TIMEOUT)

    assert result.returncode != 0, describe(result)
    assert "not found" in (result.stdout + result.stderr).lower(), describe(result)


def test_kill_exec(containerd, ctr, events, running):
    exec_id = "victim"
    proc = containerd.popen(["task", "exec", "--exec-id", exec_id, running,
                             "/bin/sleep", "1000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        events.wait_for(is_exec_event("/tasks/exec-started", running, exec_id),
                        what="exec-started")

        ctr("task", "kill", "-s", "SIGKILL", "--exec-id", exec_id, running)

        exit_event = events.wait_for(is_exec_event("/tasks/exit", running, exec_id),
                                     what="exec exit")
        assert exit_status(exit_event) == 137, exit_event
        assert proc.wait(timeout=15) == 137
    finally:
        stop_popen(proc)
    assert wait_task_status(containerd, running, "RUNNING"), "the init must keep running"


def test_init_exit_published_after_exec_exit(containerd, ctr, events, running):
    exec_id = "long"
    ctr("task", "exec", "-d", "--exec-id", exec_id, running, "/bin/sleep", "30",
        timeout=EXEC_TIMEOUT)
    events.wait_for(is_exec_event("/tasks/exec-started", running, exec_id),
                    what="exec-started")

    ctr("task", "kill", "-s", "SIGKILL", running)

    init_exit = events.position(is_init_exit(running), what="init exit")
    exec_exit = events.position(is_exec_event("/tasks/exit", running, exec_id),
                            what="exec exit", timeout=5)
    assert exec_exit < init_exit, (
        "the exec's exit must be published before the init's:\n"
        + "\n".join(map(repr, events.for_container(running))))
    assert exit_status(events.events[init_exit]) == 137


def test_exec_with_background_child_returns(ctr, running):
    started = time.monotonic()
    result = ctr("task", "exec", "--exec-id", "bg", running,
                 "/bin/sh", "-c", "sleep 30 & echo started", check=False, timeout=40)
    elapsed = time.monotonic() - started

    assert result.returncode == 0, describe(result)
    assert result.stdout == "started\n", describe(result)
    assert elapsed < DRAIN_DEADLINE_BOUND, (
        f"exec returned after {elapsed:.1f}s: its output was held open by the "
        f"background sleep (drain deadline not applied)")

"""Controlling a running task: pause/resume, Update (through a direct ttrpc
call, ctr 1.6 has no update verb), the shim's ttrpc protocol answers,
metrics and OOM events, for runc and crun."""

import json
import os

import pytest

import ttrpc_client as tt
from cshim_e2e import (RUN_TIMEOUT, controller_cgroup, describe, exit_status,
                       process_state, run_detached, wait_task_status, wait_until)

MEMORY_LIMIT = 64 << 20
OOM_LIMIT = 16 << 20
# doubles a shell variable until the 16 MiB cgroup limit has the kernel kill it
MEMORY_HOG = "x=a; while :; do x=$x$x; done"


@pytest.fixture
def running(containerd, runtime, rootfs, cid):
    """A running container (init: sleep); its (id, init pid)."""
    pid = run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid,
                       "/bin/sleep", "1000")
    return cid, pid


@pytest.fixture
def shim_client(containerd, running):
    """A ttrpc connection to the shim serving the running container."""
    cid, _ = running
    with tt.TtrpcClient(tt.shim_address(containerd.bundle(cid)),
                        containerd.namespace) as client:
        yield client


# --- pause / resume ---------------------------------------------------------------------

def freezer_state(pid):
    return (controller_cgroup(pid, "freezer") / "freezer.state").read_text().strip()


def test_pause_and_resume(containerd, ctr, events, running):
    cid, pid = running

    ctr("task", "pause", cid)

    assert wait_task_status(containerd, cid, "PAUSED") == pid
    assert freezer_state(pid) == "FROZEN"
    assert process_state(pid) in ("D", "T"), "a frozen task is not runnable"
    events.wait_topic(cid, "/tasks/paused")

    ctr("task", "resume", cid)

    assert wait_task_status(containerd, cid, "RUNNING") == pid
    assert freezer_state(pid) == "THAWED"
    wait_until(lambda: process_state(pid) == "S", timeout=5,
               what="the thawed sleep to be sleeping again")
    paused = events.position(lambda e: e.topic == "/tasks/paused" and e.concerns(cid))
    resumed = events.position(lambda e: e.topic == "/tasks/resumed" and e.concerns(cid))
    assert paused < resumed


# --- Update and the ttrpc protocol ----------------------------------------------------------

def memory_limit(pid):
    return int((controller_cgroup(pid, "memory") / "memory.limit_in_bytes").read_text())


def test_update_memory_limit(running, shim_client):
    cid, pid = running
    assert memory_limit(pid) != MEMORY_LIMIT

    reply = shim_client.task("Update", tt.update_request(
        cid, json.dumps({"memory": {"limit": MEMORY_LIMIT}})))

    assert reply.ok, reply
    assert memory_limit(pid) == MEMORY_LIMIT


def test_update_unknown_container_is_not_found(running, shim_client):
    reply = shim_client.task("Update", tt.update_request(
        "no-such-container", json.dumps({"memory": {"limit": MEMORY_LIMIT}})))

    assert reply.code == tt.NOT_FOUND, reply


@pytest.mark.cshim_only
def test_task_v3_state_answers_like_v2(containerd, running, shim_client):
    cid, pid = running

    v2 = shim_client.task("State", tt.state_request(cid), service=tt.TASK_V2)
    v3 = shim_client.task("State", tt.state_request(cid), service=tt.TASK_V3)

    assert v2.ok and v3.ok, (v2, v3)
    assert v3.payload == v2.payload
    state = tt.decode_state_response(v3.payload)
    assert state["id"] == cid
    assert state["pid"] == pid
    assert state["status"] == "RUNNING"
    assert state["bundle"] == str(containerd.bundle(cid))


def test_unknown_method_is_unimplemented(running, shim_client):
    reply = shim_client.task("NoSuchMethod", tt.state_request(running[0]))
    assert reply.code == tt.UNIMPLEMENTED, reply
    reply = shim_client.call("containerd.task.v9.NoSuchService", "State",
                             tt.state_request(running[0]))
    assert reply.code == tt.UNIMPLEMENTED, reply
    # the connection still serves after refusing
    assert shim_client.task("State", tt.state_request(running[0])).ok


# --- metrics -----------------------------------------------------------------------------------

def metrics_table(text):
    """`ctr task metrics` table rows after the METRIC header: {name: value}."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["METRIC", "VALUE"])
    rows = {}
    for line in lines[start + 1:]:
        name, _, value = line.strip().partition(" ")
        if name:
            rows[name] = value.strip()
    return rows


def test_metrics(containerd, ctr, runtime, rootfs, cid):
    run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid, "/bin/sh", "-c",
                 "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 1000",
                 flags=["--memory-limit", str(MEMORY_LIMIT)])

    table = ctr("task", "metrics", cid)

    rows = metrics_table(table.stdout)
    assert int(rows["memory.usage_in_bytes"]) > 0, describe(table)
    assert int(rows["memory.limit_in_bytes"]) == MEMORY_LIMIT, describe(table)
    assert int(rows["cpuacct.usage"]) > 0, describe(table)
    per_cpu = rows["cpuacct.usage_percpu"].strip("[]").split()
    assert len(per_cpu) >= os.cpu_count() and sum(map(int, per_cpu)) > 0, describe(table)
    assert int(rows["pids.current"]) >= 1, describe(table)

    as_json = json.loads(ctr("task", "metrics", "--format", "json", cid).stdout)
    assert as_json["memory"]["usage"]["usage"] > 0, as_json
    assert as_json["memory"]["usage"]["limit"] == MEMORY_LIMIT, as_json
    assert as_json["pids"]["current"] >= 1, as_json


# --- OOM -----------------------------------------------------------------------------------------

def test_oom_event_before_exit(containerd, ctr, events, runtime, rootfs, cid):
    ctr("run", "-d", "--memory-limit", str(OOM_LIMIT), *runtime.args, "--rootfs", rootfs,
        cid, "/bin/sh", "-c", MEMORY_HOG, timeout=RUN_TIMEOUT)

    exit_at = events.position(lambda e: e.topic == "/tasks/exit" and e.concerns(cid),
                          what="exit of the memory hog", timeout=30)
    assert exit_status(events.events[exit_at]) == 137, events.events[exit_at]
    oom_at = events.position(lambda e: e.topic == "/tasks/oom" and e.concerns(cid),
                         what="/tasks/oom", timeout=5)
    assert oom_at < exit_at, "TaskOOM must be published before TaskExit:\n" + "\n".join(
        map(repr, events.for_container(cid)))
    wait_task_status(containerd, cid, "STOPPED")


# --- an exec that was added but never started ----------------------------------------------

def exec_request(container_id, exec_id):
    """ExecProcessRequest{id=1, exec_id=2, spec=7 Any(Process JSON)}, no stdio."""
    spec = json.dumps({"args": ["/bin/true"], "cwd": "/", "env": ["PATH=/bin"],
                       "user": {"uid": 0, "gid": 0}}).encode()
    return tt.message(tt.field_bytes(1, container_id.encode()),
                      tt.field_bytes(2, exec_id.encode()),
                      tt.field_bytes(7, tt.any_message(
                          "types.containerd.io/opencontainers/runtime-spec/1/Process", spec)))


def kill_request(container_id, exec_id, signal):
    return tt.message(tt.field_bytes(1, container_id.encode()),
                      tt.field_bytes(2, exec_id.encode()), tt.field_varint(3, signal))


@pytest.mark.cshim_only
def test_kill_of_unstarted_exec_is_refused(running, shim_client):
    cid, pid = running
    assert shim_client.task("Exec", exec_request(cid, "never")).ok

    reply = shim_client.task("Kill", kill_request(cid, "never", 9))

    # Refused with a reason; the shim (whose pid group a pid of 0 would name) keeps serving.
    assert reply.code == tt.FAILED_PRECONDITION and "not created" in reply.message, reply
    state = tt.decode_state_response(shim_client.task("State", tt.state_request(cid)).payload)
    assert state["pid"] == pid, state

"""What each containerd version makes of cshim's `start` reply (docs/protocol.md): 2.x gets
bootstrap version 3, records it in the bundle's bootstrap.json and calls
containerd.task.v3.Task; 1.6 and 1.7 get the plain address and call containerd.task.v2.Task.
Without TTRPC_ADDRESS, events go through each version's `containerd publish`. Run for each version with CSHIM_E2E_CONTAINERD (make e2e-matrix)."""

import json
import re

import pytest

from cshim_e2e import (CONTAINERD, CSHIM_RUNTIME, EventStream, exit_status, run_detached,
                       shim_binary, wait_until)

pytestmark = [pytest.mark.cshim_only, pytest.mark.core]

CALL = re.compile(r'ttrpc: stream \d+ call (containerd\.task\.v\d\.Task)/(\w+)')


def task_calls(containerd, container_id):
    """(service, method) of every Task call the shim of container_id logged so far."""
    calls = []
    for line in containerd.log_tail(100000, matching=[f'"id":"{container_id}"']).splitlines():
        match = CALL.search(line)
        if match:
            calls.append(match.groups())
    return calls


def test_task_api_version_follows_containerd(containerd, ctr, runtime, rootfs, cid):
    run_detached(containerd, runtime.args, ["--rootfs", str(rootfs)], cid, "/bin/sleep", "100")
    bundle = containerd.bundle(cid)
    bootstrap = bundle / "bootstrap.json"
    if CONTAINERD == "2.x":
        params = json.loads(bootstrap.read_text())
        assert params["version"] == 3, params
        assert params["protocol"] == "ttrpc", params
        assert params["address"] == (bundle / "address").read_text(), params
        want = "containerd.task.v3.Task"
    else:
        assert not bootstrap.exists()
        want = "containerd.task.v2.Task"
    ctr("task", "ps", cid)
    calls = wait_until(lambda: (c := task_calls(containerd, cid))
                       and any(m == "Pids" for _, m in c) and c,
                       timeout=15, what=f"the shim's log of Pids for {cid}")
    assert {service for service, _ in calls} == {want}, calls
    assert {"Create", "Start", "Pids"} <= {method for _, method in calls}, calls


def test_events_through_publish_binary(make_containerd, runtime, rootfs, ids, tmp_path):
    """A shim started without TTRPC_ADDRESS publishes through -publish-binary, i.e. runs
    `containerd --address ... publish --topic ... --namespace ...` with the event on stdin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "containerd-shim-cshimpub-v2"
    wrapper.write_text(f"#!/bin/sh\nunset TTRPC_ADDRESS\nexec '{shim_binary()}' \"$@\"\n")
    wrapper.chmod(0o755)
    ctd = make_containerd("publish-binary", extra_path=[bin_dir])
    cid = ids.new(ctd)
    args = runtime.args_for(runtime.binary)
    args[args.index(CSHIM_RUNTIME)] = "io.containerd.cshimpub.v2"
    events = EventStream(ctd).sync()
    try:
        ctd.ctr("run", "-d", *args, "--rootfs", str(rootfs), cid, "/bin/sh", "-c",
                "read x; exit 3", timeout=30)
        events.wait_topic(cid, "/tasks/start")
        ctd.ctr("task", "kill", "-s", "SIGKILL", cid)
        exited = events.wait_topic(cid, "/tasks/exit")
        assert exit_status(exited) == 137
        ctd.ctr("task", "rm", cid, timeout=30)
        events.wait_topic(cid, "/tasks/delete")
        topics = [e.topic for e in events.for_container(cid) if e.topic.startswith("/tasks/")]
        assert topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], topics
    finally:
        events.close()
    shim_log = ctd.log_tail(100000, matching=[f'"id":"{cid}"'])
    assert "no TTRPC_ADDRESS" not in shim_log

"""What each containerd version makes of cshim's `start` reply (docs/protocol.md): 2.x gets
bootstrap version 3, records it in the bundle's bootstrap.json and calls
containerd.task.v3.Task; 1.6 and 1.7 get the plain address and call containerd.task.v2.Task.
Run for each version with CSHIM_E2E_CONTAINERD (make e2e-matrix)."""

import json
import re

import pytest

from cshim_e2e import CONTAINERD, run_detached, wait_until

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

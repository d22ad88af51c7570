"""The Kubernetes path: the CRI plugin of each containerd version driving cshim.

Pods use the node's network (no CNI here); every pod has a cgroup parent of its own so that
leftovers can be looked for."""

import os
import time

import pytest

from cshim_e2e import (cgroup_pids, mounts_under, parent_pid, pid_alive, process_argv,
                       wait_until)
from conftest import TIMINGS

# cshim's default exec_io_drain_ms: how long an exited process's output may keep a stop
# waiting. A pod stop that waits for it once per container is the defect to catch.
DRAIN_S = 2.0
SLEEP = ["/bin/sleep", "2147483647"]
# An init with a child of its own that holds the container's stdout.
WITH_CHILD = ["/bin/sh", "-c", "sleep 2147483647 & exec sleep 2147483647"]


def container_state(cri, cid):
    return cri.pb.ContainerState.Name(cri.container_status(cid).status.state)


def leftovers(cri, parent, ids):
    """Shims, mounts and cgroups a removed pod left behind (empty when clean)."""
    found = {}
    shims = {pid: sid for pid, sid in cri.containerd.shims().items() if sid in ids}
    if shims:
        found["shims"] = shims
    # With no pod left, nothing at all may stay mounted (network namespaces included).
    mounts = [m for m in mounts_under(cri.containerd.dir)
              if not cri.pods or any(i in m for i in ids)]
    if mounts:
        found["mounts"] = mounts
    cgroups = cri.leftover_cgroups(parent)
    if cgroups:
        found["cgroups"] = cgroups
    return found


def assert_clean_after_remove(cri, pod_id, ids):
    parent = cri.remove_pod(pod_id)
    try:
        wait_until(lambda: not leftovers(cri, parent, [pod_id, *ids]), timeout=30,
                   what=f"no shim, mount or cgroup left by pod {pod_id}")
    finally:
        cri.remove_parent_cgroups(parent)


def test_pod_lifecycle(pods, handler):
    """RunPodSandbox, two containers, ExecSync, stats, one shim for the whole pod,
    then stop and remove leave nothing behind."""
    cri, pb = pods, pods.pb
    t0 = time.monotonic()
    pod = cri.run_pod(handler)
    sleeper = cri.start_container(pod, "sleeper", SLEEP)
    worker = cri.start_container(pod, "worker", [
        "/bin/sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
                         "exec sleep 2147483647"])
    TIMINGS[f"{cri.version} {handler}: pod + 2 containers started"] = time.monotonic() - t0
    assert container_state(cri, sleeper) == "CONTAINER_RUNNING"

    reply = cri.call("ExecSync", pb.ExecSyncRequest(
        container_id=sleeper, cmd=["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
        timeout=30))
    assert (reply.stdout, reply.stderr, reply.exit_code) == (b"out\n", b"err\n", 3)

    def stats_ready():
        s = cri.call("ContainerStats", pb.ContainerStatsRequest(container_id=worker)).stats
        return s if s.cpu.usage_core_nano_seconds.value > 0 and \
            s.memory.working_set_bytes.value > 0 else None
    stats = wait_until(stats_ready, timeout=30, what="ContainerStats with cpu and memory")
    assert stats.attributes.id == worker
    listed = cri.call("ListContainerStats", pb.ListContainerStatsRequest(
        filter=pb.ContainerStatsFilter(pod_sandbox_id=pod))).stats
    assert {s.attributes.id for s in listed} == {sleeper, worker}
    assert all(s.memory.working_set_bytes.value > 0 for s in listed)

    shims = cri.containerd.shims()
    assert len(shims) == 1, f"one shim for the pod, found {shims}"
    shim = next(iter(shims))
    for cid in (sleeper, worker):
        assert parent_pid(cri.container_pid(cid)) == shim

    t0 = time.monotonic()
    cri.stop_pod(pod)
    TIMINGS[f"{cri.version} {handler}: StopPodSandbox, 2 containers"] = time.monotonic() - t0
    assert {container_state(cri, c) for c in (sleeper, worker)} == {"CONTAINER_EXITED"}
    assert_clean_after_remove(cri, pod, [sleeper, worker])


def test_one_shim_per_pod(pods, handler):
    """Two pods of two containers each: two shims, each the parent of its own pod's
    processes."""
    cri = pods
    layout = {}
    for _ in range(2):
        pod = cri.run_pod(handler)
        layout[pod] = [cri.start_container(pod, f"c{i}", SLEEP) for i in range(2)]
    shims = cri.containerd.shims()
    assert len(shims) == 2, f"one shim per pod, found {shims}"
    parents = {}
    for pod, cids in layout.items():
        owners = {parent_pid(cri.container_pid(c)) for c in cids}
        sandbox_pid = cri.sandbox_pid(pod)
        if sandbox_pid:
            owners.add(parent_pid(sandbox_pid))
        assert len(owners) == 1, f"pod {pod}: processes under several parents {owners}"
        parents[pod] = owners.pop()
        assert parents[pod] in shims
    assert len(set(parents.values())) == 2
    for pod, cids in layout.items():
        cri.stop_pod(pod)
        assert_clean_after_remove(cri, pod, cids)
    assert cri.containerd.shims() == {}


def shared_pid_pod(cri, handler, count):
    pod = cri.run_pod(handler, pid_mode="POD")
    cids = [cri.start_container(pod, f"c{i}", WITH_CHILD) for i in range(count)]
    _, parent = cri.pods[pod]
    for cid in cids:  # init and its child, both in the container's cgroup
        wait_until(lambda: len(cgroup_pids(parent.lstrip("/"), cid)) >= 2, timeout=30,
                   what=f"two processes in {cid}'s cgroup")
    seen = cri.call("ExecSync", cri.pb.ExecSyncRequest(
        container_id=cids[0], cmd=["/bin/sh", "-c", "ls -d /proc/[0-9]*"], timeout=30))
    assert len(seen.stdout.split()) >= 2 * count + 1, "the pod's pid namespace is shared"
    return pod, cids, parent


def test_shared_pid_container_stop_kills_its_processes(pods, handler):
    """In a pod with shareProcessNamespace, stopping a container ends every process of
    that container (its init is not pid 1 of a namespace of its own, so its exit alone
    kills nothing), promptly."""
    cri = pods
    pod, cids, parent = shared_pid_pod(cri, handler, 1)
    victims = cgroup_pids(parent.lstrip("/"), cids[0])
    t0 = time.monotonic()
    cri.call("StopContainer", cri.pb.StopContainerRequest(container_id=cids[0], timeout=0))
    elapsed = time.monotonic() - t0
    TIMINGS[f"{cri.version} {handler}: StopContainer, shared pid ns"] = elapsed
    assert [p for p in victims if pid_alive(p)] == [], "processes of the stopped container"
    assert container_state(cri, cids[0]) == "CONTAINER_EXITED"
    assert elapsed < DRAIN_S, f"StopContainer took {elapsed:.2f}s"


def test_shared_pid_pod_stops_promptly(pods, handler):
    """StopPodSandbox of a pod with shareProcessNamespace: all containers stop, each
    with the children its init left, well within one output-drain deadline per container."""
    cri = pods
    count = 3
    pod, cids, parent = shared_pid_pod(cri, handler, count)
    t0 = time.monotonic()
    cri.stop_pod(pod)
    elapsed = time.monotonic() - t0
    TIMINGS[f"{cri.version} {handler}: StopPodSandbox, shared pid ns, {count} containers"] = \
        elapsed
    assert {container_state(cri, c) for c in cids} == {"CONTAINER_EXITED"}
    assert {c: cgroup_pids(parent.lstrip("/"), c) for c in cids} == {c: set() for c in cids}
    assert elapsed < DRAIN_S * count / 2, f"StopPodSandbox took {elapsed:.2f}s"
    assert_clean_after_remove(cri, pod, cids)


def pod_state(cri, pod):
    reply = cri.call("PodSandboxStatus", cri.pb.PodSandboxStatusRequest(pod_sandbox_id=pod))
    return cri.pb.PodSandboxState.Name(reply.status.state)


def ns_link(pid, ns):
    return os.readlink(f"/proc/{pid}/ns/{ns}")


def test_shim_sandboxer_pause_holds_pod_namespaces(pods):
    """containerd 2.x with sandboxer = "shim": the pod is cshim's own pause process, a child
    of the pod's shim, whose IPC, UTS and network namespaces the containers join; stopping
    the pod ends it, removing the pod ends the shim."""
    cri = pods
    if not cri.containerd.shim_sandboxer:
        pytest.skip("the pod sandbox is a pause container here (sandboxer podsandbox)")
    pod = cri.run_pod("runc")
    cid = cri.start_container(pod, "c", SLEEP)
    pause = cri.sandbox_pid(pod)
    shims = cri.containerd.shims()
    assert shims == {parent_pid(pause): pod}
    assert process_argv(pause)[1:] == ["pause"]
    cpid = cri.container_pid(cid)
    assert parent_pid(cpid) == parent_pid(pause)
    for ns in ("ipc", "uts", "net"):
        assert ns_link(cpid, ns) == ns_link(pause, ns) != ns_link("self", ns)
    assert ns_link(pause, "pid") != ns_link("self", "pid")
    assert pod_state(cri, pod) == "SANDBOX_READY"

    cri.stop_pod(pod)
    assert not pid_alive(pause)
    assert pod_state(cri, pod) == "SANDBOX_NOTREADY"
    assert cri.containerd.shims() == shims, "the shim serves the pod until it is removed"
    assert_clean_after_remove(cri, pod, [cid])

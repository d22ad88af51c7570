"""Bounded client memory: ttrpc clients of one shim that misbehave next to containerd
(docs/protocol.md, "Memory"). The shim serves containerd's calls throughout, its memory stays
bounded by the ttrpc budget (32 MiB) instead of growing with the clients, the clients that hold
memory without progress are closed, and the memory goes back after they are gone.

scripts/ttrpc-burst measures the same scenarios on a shim without containerd."""

import select
import socket
import struct
import time
from pathlib import Path

import pytest

import ttrpc_client as tt
from cshim_e2e import ASAN, describe, parent_pid, run_detached, wait_until

pytestmark = pytest.mark.cshim_only

HEADER = struct.Struct(">IIBB")
# Far above the budget plus the shim's own memory (about 35 MiB in total here), far below
# what the same clients cost without a budget (174 MiB unread, 103 MiB partial frames).
PEAK_BOUND_MIB = 96
# After the clients are gone the shim is back near where it started.
AFTER_MARGIN_MIB = 8
# The shim closes a client that held 64 KiB or more without progress for 10 s; it checks
# every 2.5 s, and the machine may be busy.
STALL_CLOSE_TIMEOUT = 40
MAX_CONNS = 128
NO_RSS = "RSS bounds do not hold under ASan (shadow memory, quarantined frees)"


def status_kib(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def state_frame(stream, container_id):
    request = tt.message(tt.field_bytes(1, tt.TASK_V2), tt.field_bytes(2, "State"),
                         tt.field_bytes(3, tt.state_request(container_id)),
                         tt.field_bytes(5, tt.message(tt.field_bytes(1, tt.NAMESPACE_KEY),
                                                      tt.field_bytes(2, "cshim-e2e"))))
    return HEADER.pack(len(request), stream, tt.MESSAGE_REQUEST, 0) + request


def connect(path, n):
    clients = []
    for _ in range(n):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.setblocking(False)
        clients.append(sock)
    return clients


def push(clients, next_chunk, fill_s=30.0, quiet_s=2.0):
    """Sends next_chunk(client number) on every client, again and again, without blocking,
    until no socket took a byte for quiet_s: the shim stopped reading them all."""
    pending = [memoryview(next_chunk(i)) for i in range(len(clients))]
    last = start = time.monotonic()
    while time.monotonic() - last < quiet_s and time.monotonic() - start < fill_s:
        for i, c in enumerate(clients):
            if not pending[i]:
                continue
            try:
                n = c.send(pending[i])
            except BlockingIOError:
                continue
            except OSError:
                pending[i] = b""
                continue
            last = time.monotonic()
            pending[i] = pending[i][n:] or memoryview(next_chunk(i))
        time.sleep(0.01)


def closed_by_shim(sock):
    """True once the shim closed it; reads nothing (reading would be progress)."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    return any(events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR)
               for _, events in poller.poll(0))


def containerd_calls_answered(containerd, cid, pid, n):
    """Calls containerd makes on its own connection to the shim: State, Pids, and an exec
    (Exec, Start, Wait, Delete)."""
    assert containerd.tasks()[cid] == (pid, "RUNNING")
    assert str(pid) in containerd.ctr("task", "ps", cid).stdout
    result = containerd.ctr("task", "exec", "--exec-id", f"probe-{n}", cid, "/bin/echo", "hi",
                            timeout=60)
    assert result.stdout == "hi\n", describe(result)


def assert_logged(containerd, cid, *texts):
    """The shim's warnings, as containerd copies them from its log FIFO (asynchronously)."""
    def missing():
        lines = containerd.log_tail(1 << 20, matching=(f'"id":"{cid}"',)).splitlines()
        warnings = [line for line in lines if '"level":"warning","msg":"ttrpc: ' in line]
        return [t for t in texts if not any(t in w for w in warnings)]

    try:
        wait_until(lambda: not missing(), timeout=10, what="the shim's warnings")
    except AssertionError:
        raise AssertionError(f"not in containerd's log: {missing()}") from None


@pytest.fixture
def shim(containerd, runtime, rootfs, cid):
    """A running container; (its id, init pid, shim pid, shim socket path)."""
    pid = run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid, "/bin/sleep", "1000")
    containerd.ctr("task", "ps", cid)
    yield cid, pid, parent_pid(pid), tt.shim_address(containerd.bundle(cid))
    containerd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)


def hog_scenario(name, cid):
    """(clients, next_chunk) of a scenario."""
    if name == "unread":
        # Task.State again and again, never reading the answers
        streams = {}

        def states(i, batch=1024):
            first = streams.get(i, 1)
            streams[i] = first + 2 * batch
            return b"".join(state_frame(first + 2 * k, cid) for k in range(batch))

        return 20, states
    # one frame of 4 MiB, all but its last byte
    frame = HEADER.pack(tt.MAX_MESSAGE, 1, tt.MESSAGE_REQUEST, 0) + b"\0" * (tt.MAX_MESSAGE - 1)
    sent = set()

    def once(i):
        if i in sent:
            return b""
        sent.add(i)
        return frame

    return 25, once


@pytest.mark.parametrize("runtime", ["runc"], indirect=True)
@pytest.mark.parametrize("scenario", ["unread", "partial"])
def test_misbehaving_clients(containerd, shim, scenario):
    cid, pid, shim_pid, path = shim
    baseline = status_kib(shim_pid, "VmRSS")
    Path(f"/proc/{shim_pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    n, next_chunk = hog_scenario(scenario, cid)
    clients = connect(path, n)
    try:
        push(clients, next_chunk)
        containerd_calls_answered(containerd, cid, pid, 1)
        # A partial frame always holds memory; an unread client may not, once the budget
        # freed and its answers fit in the socket's own buffer.
        want = n if scenario == "partial" else 1
        wait_until(lambda: sum(closed_by_shim(c) for c in clients) >= want,
                   timeout=STALL_CLOSE_TIMEOUT,
                   what=f"the shim closing {want} clients that hold memory without progress")
        containerd_calls_answered(containerd, cid, pid, 2)
        peak = status_kib(shim_pid, "VmHWM")
    finally:
        for c in clients:
            c.close()
    # 100 MiB of partial frames always exceed the budget; unread answers do unless the
    # machine is too busy to produce them fast enough.
    expected = ("without progress", "paused: it holds") if scenario == "partial" else (
        "without progress",)
    assert_logged(containerd, cid, *expected)
    if ASAN:
        pytest.skip(NO_RSS)
    assert peak < PEAK_BOUND_MIB << 10, f"peak RSS {peak} KiB (baseline {baseline} KiB)"
    wait_until(lambda: status_kib(shim_pid, "VmRSS") < baseline + (AFTER_MARGIN_MIB << 10),
               timeout=15, what=f"RSS back near its baseline of {baseline} KiB")


@pytest.mark.parametrize("runtime", ["runc"], indirect=True)
def test_connection_cap(containerd, shim):
    cid, pid, _, path = shim
    clients = connect(path, MAX_CONNS + 4)
    try:
        # containerd's own connection counts: at least 5 are refused, at once
        wait_until(lambda: sum(closed_by_shim(c) for c in clients) >= 5, timeout=10,
                   what="connections over the cap refused")
        refused = sum(closed_by_shim(c) for c in clients)
        accepted = len(clients) - refused
        # The cap is the shim's, containerd's connection(s) included: those it left are ours,
        # and they stay open.
        assert MAX_CONNS - 4 <= accepted < MAX_CONNS, f"{accepted} of {len(clients)} accepted"
        assert not any(closed_by_shim(c) for c in clients[:accepted])
        containerd_calls_answered(containerd, cid, pid, 1)
    finally:
        for c in clients:
            c.close()
    assert_logged(containerd, cid, "ttrpc: refused a connection")

"""The step language of the scenarios: one function per verb.

A step is a tuple (verb, target, *args, **options-as-last-dict). A target is a
container label ("c1"), an exec of it ("c1:e1"), or a bad id ("!nul",
"c1:!dotdot"; see harness.BAD_IDS). Every step appends one entry to the
recording; replies are reduced to what a client can observe.
"""

import json
import os
import threading
import time

import ttrpc_client as tc
from harness import (BLOCK_CHECK, PROCESS_URL, WAIT_TIMEOUT,
                     any_message, decode_message, field_bytes, field_varint, first,
                     first_str, id_req, message, timestamp_kind)

STATUS_TIMEOUT = 20.0


def run_steps(run, scenario):
    for label, opts in scenario.get("containers", {"c1": {}}).items():
        run.add_container(label, opts)
        if not opts.get("deferred"):
            step_shim_start(run, label)
    for step in scenario["steps"]:
        verb, *args = step
        kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
        VERBS[verb](run, *args, **kwargs)


def failed(entry_step, exc):
    return {"step": entry_step, "code": "transport", "error": type(exc).__name__}


def record_reply(run, name, reply, **fields):
    if isinstance(reply, Exception):
        run.record["steps"].append(failed(name, reply))
        return None
    return run.note(name, reply, **fields)


# --- shim lifecycle ------------------------------------------------------------------

def step_shim_start(run, label):
    rc, out, _err = run.start_shim(label)
    fields = {"rc": rc, "address": bool(out)}
    others = [c["address"] for other, c in run.containers.items()
              if other != label and c["address"]]
    if others:
        fields["same_address_as_first"] = run.containers[label]["address"] == others[0]
    run.note(f"shim start {label}", **fields)


def step_reconnect(run, label):
    """Close the connection and open a new one (containerd after a restart)."""
    run.client(label, fresh=True)
    run.note(f"reconnect {label}")


def step_probe(run, label):
    """Does the shim still answer on a new connection?"""
    reply = run.call(label, "Connect", id_req(run.cid(label)), fresh=True)
    run.note(f"probe {label}", answers=not isinstance(reply, Exception))


def step_shim_exit(run, label):
    """Has the shim process exited (polled, bounded)?"""
    deadline = time.monotonic() + STATUS_TIMEOUT
    while run.shim_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    run.note(f"shim exit {label}", exited=not run.shim_processes())


# --- Task API ------------------------------------------------------------------------------

def step_create(run, target, io="null", terminal=False):
    label, cid, _ = run.target(target)
    bundle = run.containers.get(label, run.containers["c1"])["bundle"]
    shim_label = label if label in run.containers else "c1"
    stdin, stdout, stderr = run.stdio(label, io)
    payload = message(field_bytes(1, cid), field_bytes(2, str(bundle)),
                      field_varint(4, terminal), field_bytes(5, stdin), field_bytes(6, stdout),
                      field_bytes(7, stderr), field_bytes(10, run.options))
    reply = run.call(shim_label, "Create", payload)
    entry = record_reply(run, f"create {target}", reply)
    if entry and reply.ok:
        pid = first(decode_message(reply.payload), 1, 0)
        entry["pid"] = bool(pid)
        run.remember_pid(pid, target)
        run.expected.append("create")


def shim_of(run, label):
    return label if label in run.containers and run.containers[label]["address"] else "c1"


def step_start(run, target):
    label, cid, eid = run.target(target)
    reply = run.call(shim_of(run, label), "Start", id_req(cid, eid))
    entry = record_reply(run, f"start {target}", reply)
    if entry and reply.ok:
        pid = first(decode_message(reply.payload), 1, 0)
        entry["pid"] = bool(pid)
        run.remember_pid(pid, target)
        run.expected.append("exec-started" if eid else "start")


def step_exec(run, target, args=("sleep", "1000"), io="null", terminal=False):
    label, cid, eid = run.target(target)
    base = run.containers.get(label, run.containers["c1"])["spec"]["process"]
    process = dict(base, args=list(args), terminal=terminal)
    stdin, stdout, stderr = run.stdio(stdio_name(target), io)
    payload = message(field_bytes(1, cid), field_bytes(2, eid), field_varint(3, terminal),
                      field_bytes(4, stdin), field_bytes(5, stdout), field_bytes(6, stderr),
                      field_bytes(7, any_message(PROCESS_URL, json.dumps(process))))
    run.execs.add((label, eid))
    reply = run.call(shim_of(run, label), "Exec", payload)
    entry = record_reply(run, f"exec {target}", reply)
    if entry and reply.ok:
        run.expected.append("exec-added")


def stdio_name(target):
    return target.replace(":", ".").replace("!", "bad-")


def step_closeio(run, target, stdin=True):
    """containerd closes its end of the stdin FIFO, then asks the shim to close its own."""
    fd = run.stdin_fds.pop(stdio_name(target), None)
    if fd is not None:
        os.close(fd)
    step_simple("CloseIO", payload=closeio_payload)(run, target, stdin=stdin)


def step_kill(run, target, signal=9, all=False):
    label, cid, eid = run.target(target)
    payload = message(field_bytes(1, cid), field_bytes(2, eid), field_varint(3, signal),
                      field_varint(4, all))
    reply = run.call(shim_of(run, label), "Kill", payload)
    record_reply(run, f"kill {target} {signal}{' all' if all else ''}", reply)


def note_exit(run, target):
    if target not in run.exited:
        run.exited.add(target)
        run.expected.append("exit")


def wait_fields(run, target, reply):
    f = decode_message(reply.payload)
    note_exit(run, target)
    return {"exit_status": first(f, 1, 0), "exited_at": timestamp_kind(first(f, 2, None))}


def step_wait(run, target):
    label, cid, eid = run.target(target)
    reply = run.call(shim_of(run, label), "Wait", id_req(cid, eid), timeout=WAIT_TIMEOUT)
    if isinstance(reply, TimeoutError) or (isinstance(reply, tc.TtrpcError)
                                           and "timed out" in str(reply)):
        run.note(f"wait {target}", code="no answer")
        return
    entry = record_reply(run, f"wait {target}", reply)
    if entry and reply.ok:
        entry.update(wait_fields(run, target, reply))


def step_wait_bg(run, target):
    """A Wait parked on its own connection, as containerd keeps one per task."""
    label, cid, eid = run.target(target)
    client = tc.TtrpcClient(run.containers[shim_of(run, label)]["address"], run.ns,
                            timeout=WAIT_TIMEOUT)
    box = {"client": client, "reply": None}

    def wait():
        try:
            box["reply"] = client.task("Wait", id_req(cid, eid), timeout=WAIT_TIMEOUT)
        except (tc.TtrpcError, OSError) as exc:
            box["reply"] = exc

    box["thread"] = threading.Thread(target=wait, daemon=True)
    box["thread"].start()
    run.waiters[target] = box
    run.note(f"wait (parked) {target}")


def step_wait_blocked(run, target):
    """The parked Wait has not answered yet (the process is alive): checked after a
    short look, so a wrong early answer is caught, never a right late one."""
    box = run.waiters[target]
    box["thread"].join(BLOCK_CHECK)
    run.note(f"wait (parked) {target} pending", pending=box["thread"].is_alive())


def step_wait_join(run, target):
    box = run.waiters.pop(target)
    box["thread"].join(WAIT_TIMEOUT + 5)
    box["client"].close()
    reply = box["reply"]
    if reply is None or isinstance(reply, TimeoutError) or (
            isinstance(reply, tc.TtrpcError) and "timed out" in str(reply)):
        run.note(f"wait (parked) {target} answer", code="no answer")
        return
    entry = record_reply(run, f"wait (parked) {target} answer", reply)
    if entry and reply.ok:
        entry.update(wait_fields(run, target, reply))


def state_fields(run, target, reply):
    f = decode_message(reply.payload)
    status = tc.STATUS_NAMES.get(first(f, 4, 0), str(first(f, 4, 0)))
    fields = {"status": status, "pid": bool(first(f, 3, 0)),
              "exit_status": first(f, 9, 0), "exited_at": timestamp_kind(first(f, 10, None)),
              "id": run.label_of(first_str(f, 1)), "exec_id": run.label_of(first_str(f, 11)) if first_str(f, 11) else "",
              "bundle": bool(first_str(f, 2)), "stdio": [bool(first_str(f, n)) for n in (5, 6, 7)],
              "terminal": bool(first(f, 8, 0))}
    if status == "STOPPED":
        note_exit(run, target)
    return fields


def step_state(run, target):
    label, cid, eid = run.target(target)
    reply = run.call(shim_of(run, label), "State", id_req(cid, eid))
    entry = record_reply(run, f"state {target}", reply)
    if entry and reply.ok:
        entry.update(state_fields(run, target, reply))


def step_until(run, target, status):
    """Poll State until the status is reached (bounded); record the last reply."""
    label, cid, eid = run.target(target)
    deadline = time.monotonic() + STATUS_TIMEOUT
    while True:
        reply = run.call(shim_of(run, label), "State", id_req(cid, eid))
        if isinstance(reply, Exception) or not reply.ok:
            break
        f = decode_message(reply.payload)
        got = tc.STATUS_NAMES.get(first(f, 4, 0))
        # A process without a pid (never started) cannot change state on its own.
        if got == status or not first(f, 3, 0) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    entry = record_reply(run, f"until {target} {status}", reply)
    if entry and reply.ok:
        entry.update(state_fields(run, target, reply))


def step_delete(run, target):
    label, cid, eid = run.target(target)
    reply = run.call(shim_of(run, label), "Delete", id_req(cid, eid))
    entry = record_reply(run, f"delete {target}", reply)
    if entry and reply.ok:
        f = decode_message(reply.payload)
        entry.update({"pid": bool(first(f, 1, 0)), "exit_status": first(f, 2, 0),
                      "exited_at": timestamp_kind(first(f, 3, None))})
        if not eid:
            run.expected.append("delete")


def step_simple(method, name=None, payload=None):
    def step(run, target, **kw):
        label, cid, eid = run.target(target)
        body = payload(run, cid, eid, **kw) if payload else id_req(cid)
        reply = run.call(shim_of(run, label), method, body)
        entry = record_reply(run, f"{name or method.lower()} {target}", reply)
        if entry and reply.ok:
            if method == "Pause":
                run.expected.append("paused")
            elif method == "Resume":
                run.expected.append("resumed")
        return entry, reply
    return step


def step_pids(run, target):
    entry, reply = step_simple("Pids")(run, target)
    if entry and reply.ok:
        procs = [decode_message(p) for p in decode_message(reply.payload).get(1, [])]
        entry["count"] = len(procs)
        entry["with_exec_info"] = sum(1 for p in procs if first(p, 2, None))


def step_stats(run, target):
    entry, reply = step_simple("Stats")(run, target)
    if entry and reply.ok:
        stats = decode_message(first(decode_message(reply.payload), 1, b""))
        entry["type_url"] = first_str(stats, 1)


def step_connect(run, target):
    entry, reply = step_simple("Connect")(run, target)
    if entry and reply.ok:
        f = decode_message(reply.payload)
        entry.update({"shim_pid": bool(first(f, 1, 0)), "task_pid": bool(first(f, 2, 0))})


def update_payload(run, cid, eid, resources='{"cpu": {"shares": 512}}'):
    return tc.update_request(cid, resources)


def closeio_payload(run, cid, eid, stdin=True):
    return message(field_bytes(1, cid), field_bytes(2, eid), field_varint(3, stdin))


def resize_payload(run, cid, eid, width=80, height=24):
    return message(field_bytes(1, cid), field_bytes(2, eid), field_varint(3, width),
                   field_varint(4, height))


def shutdown_payload(run, cid, eid, now=False):
    return message(field_bytes(1, cid), field_varint(2, now))


def checkpoint_payload(run, cid, eid):
    return tc.checkpoint_request(cid, str(run.dir / "checkpoint"))


VERBS = {
    "shim_start": step_shim_start,
    "reconnect": step_reconnect,
    "probe": step_probe,
    "shim_exit": step_shim_exit,
    "create": step_create,
    "start": step_start,
    "exec": step_exec,
    "kill": step_kill,
    "wait": step_wait,
    "wait_bg": step_wait_bg,
    "wait_blocked": step_wait_blocked,
    "wait_join": step_wait_join,
    "state": step_state,
    "until": step_until,
    "delete": step_delete,
    "pids": step_pids,
    "stats": step_stats,
    "connect": step_connect,
    "pause": step_simple("Pause"),
    "resume": step_simple("Resume"),
    "update": step_simple("Update", payload=update_payload),
    "closeio": step_closeio,
    "resize": step_simple("ResizePty", "resize", payload=resize_payload),
    "shutdown": step_simple("Shutdown", payload=shutdown_payload),
    "checkpoint": step_simple("Checkpoint", payload=checkpoint_payload),
}

"""Task RPCs off the happy path, sent straight to a shim over ttrpc as
containerd sends them, for runc and crun: a task created and never started,
killed, deleted; a container without a pid namespace of its own; exec churn
and the files it leaves; ids that must be refused. The sequences are ones
ctr cannot express, so a `ctr run -d` host container brings the shim up and
the other containers are created in that same shim (as containerd groups
pod containers), with their own bundles."""

import json
import os
import signal

import pytest

import ttrpc_client as tt
from cshim_e2e import STOCK, pid_alive, pids_with_args, run_detached, wait_until

m, fb, fv = tt.message, tt.field_bytes, tt.field_varint

UNKNOWN = 2
INVALID_ARGUMENT = 3
NOT_FOUND = 5
ALREADY_EXISTS = 6
FAILED_PRECONDITION = 9
PROCESS_SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"


# --- Task API requests ----------------------------------------------------------------

def runtime_options(runtime):
    """The options Any containerd sends in Create for this runtime choice."""
    if STOCK:  # containerd.runc.v1.Options{binary_name=6, root=7}
        return tt.any_message("containerd.runc.v1.Options",
                              m(fb(6, str(runtime.binary)), fb(7, str(runtime.root))))
    # runtimeoptions.v1.Options{type_url=1, config_path=2}
    return tt.any_message("runtimeoptions.v1.Options",
                          m(fb(2, str(runtime.config_file(runtime.binary)))))


def create_request(cid, bundle, options, stdout=""):
    return m(fb(1, cid), fb(2, str(bundle)), fb(6, stdout), fb(10, options))


def id_request(cid, exec_id=""):
    """Start, Delete, Wait, State, Pids, Pause, Resume, Stats: {id=1, exec_id=2}."""
    return m(fb(1, cid), fb(2, exec_id))


def kill_request(cid, exec_id="", sig=signal.SIGKILL, all_=False):
    return m(fb(1, cid), fb(2, exec_id), fv(3, int(sig)), fv(4, all_))


def exec_request(cid, exec_id, argv):
    spec = json.dumps({"args": argv, "cwd": "/", "env": ["PATH=/bin"],
                       "user": {"uid": 0, "gid": 0}})
    return m(fb(1, cid), fb(2, exec_id), fb(7, tt.any_message(PROCESS_SPEC_URL, spec)))


def exit_fields(payload):
    """(pid, exit_status) of a Delete or Wait (exit_status=1) response."""
    f = tt.decode_message(payload)
    return f


# --- a shim holding several containers ------------------------------------------------

class GroupedShim:
    """The shim of a `ctr run -d` host container, and containers created in it
    over ttrpc from bundles of their own."""

    def __init__(self, containerd, runtime, rootfs, host, tmp_path):
        self.containerd = containerd
        self.runtime = runtime
        self.rootfs = rootfs
        self.host = host
        self.tmp_path = tmp_path
        self.host_config = json.loads((containerd.bundle(host) / "config.json").read_text())
        self.client = tt.TtrpcClient(tt.shim_address(containerd.bundle(host)),
                                     containerd.namespace)
        self.created = []

    def call(self, method, payload, timeout=None):
        return self.client.task(method, payload, timeout=timeout)

    def bundle(self, cid, argv, pid_namespace=True):
        """A bundle for cid running argv in the shared rootfs."""
        config = json.loads(json.dumps(self.host_config))
        config["root"] = {"path": str(self.rootfs)}
        config["process"]["args"] = argv
        config["process"]["terminal"] = False
        config["linux"]["cgroupsPath"] = f"/{self.containerd.namespace}/{cid}"
        if not pid_namespace:
            config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                             if ns["type"] != "pid"]
        path = self.tmp_path / cid
        path.mkdir()
        (path / "config.json").write_text(json.dumps(config))
        return path

    def create(self, cid, argv, pid_namespace=True, stdout=""):
        bundle = self.bundle(cid, argv, pid_namespace)
        reply = self.call("Create", create_request(cid, bundle, runtime_options(self.runtime),
                                                   stdout), timeout=30)
        if reply.ok:
            self.created.append(cid)
        return reply

    def state(self, cid, exec_id=""):
        reply = self.call("State", id_request(cid, exec_id))
        assert reply.ok, reply
        return tt.decode_state_response(reply.payload)

    def close(self):
        """Deletes what the test left, so the shim can go with its host."""
        for cid in self.created:
            if self.call("State", id_request(cid)).ok:
                self.call("Kill", kill_request(cid, all_=True))
                wait_until(lambda: self.state(cid)["status"] == "STOPPED", timeout=15,
                           what=f"{cid} stopped")
                self.call("Delete", id_request(cid), timeout=30)
        self.client.close()


@pytest.fixture
def grouped(containerd, runtime, rootfs, ids, tmp_path):
    host = ids.new()
    run_detached(containerd, runtime.args, ["--rootfs", rootfs], host, "/bin/sleep", "1000")
    shim = GroupedShim(containerd, runtime, rootfs, host, tmp_path)
    yield shim
    shim.close()


def decoded(reply):
    assert reply.ok, reply
    f = tt.decode_message(reply.payload)
    return {"pid": tt.first(f, 1, 0), "exit_status": tt.first(f, 2, 0)}


def wait_status(reply):
    assert reply.ok, reply
    return tt.first(tt.decode_message(reply.payload), 1, 0)


# --- a task created and never started ---------------------------------------------------

def test_created_task_killed_answers_wait(grouped, events, ids):
    cid = ids.new()
    created = grouped.create(cid, ["/bin/sleep", "1000"])
    assert created.ok, created
    pid = tt.first(tt.decode_message(created.payload), 1)
    assert pid > 0 and grouped.state(cid)["status"] == "CREATED"

    assert grouped.call("Kill", kill_request(cid)).ok

    assert wait_status(grouped.call("Wait", id_request(cid), timeout=15)) == 137
    exit_event = events.wait_topic(cid, "/tasks/exit")
    assert exit_event.data.get("pid") == pid and exit_event.data.get("exit_status") == 137
    assert exit_event.data.get("id") == cid
    state = grouped.state(cid)
    assert (state["status"], state["exit_status"]) == ("STOPPED", 137)
    assert decoded(grouped.call("Delete", id_request(cid), timeout=30)) == \
        {"pid": pid, "exit_status": 137}
    deleted = events.wait_topic(cid, "/tasks/delete")
    assert deleted.data.get("exit_status") == 137
    assert events.position(lambda e: e.topic == "/tasks/exit" and e.concerns(cid)) < \
        events.position(lambda e: e.topic == "/tasks/delete" and e.concerns(cid))
    assert not pid_alive(pid)


# --- exec churn leaves nothing in the bundle ------------------------------------------

EXEC_CHURN = 12


def bundle_files(bundle):
    return sorted(os.listdir(bundle))


def test_exec_churn_leaves_no_files(containerd, ctr, runtime, rootfs, cid):
    run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid, "/bin/sleep", "1000")
    bundle = containerd.bundle(cid)
    before = bundle_files(bundle)

    for i in range(EXEC_CHURN):
        ctr("task", "exec", "--exec-id", f"churn-{i}", cid, "/bin/true")
    failed = ctr("task", "exec", "--exec-id", "churn-fail", cid, "/nonexistent", check=False)
    assert failed.returncode != 0

    assert bundle_files(bundle) == before


# --- ids the shim refuses --------------------------------------------------------------

BAD_IDS = {"slash": "a/b", "dotdot": "..", "escape": "../escaped", "nul": "ok\0tail",
           "newline": "ok\n", "long": "a" * 1024}


@pytest.mark.cshim_only
@pytest.mark.parametrize("which", sorted(BAD_IDS))
def test_bad_exec_id_refused(grouped, events, which):
    bad = BAD_IDS[which]
    host = grouped.host
    bundle = grouped.containerd.bundle(host)
    before = bundle_files(bundle)
    parent_before = bundle_files(bundle.parent)

    reply = grouped.call("Exec", exec_request(host, bad, ["/bin/sleep", "1000"]))

    assert reply.code == INVALID_ARGUMENT, reply
    assert "invalid exec id" in reply.message
    assert bundle_files(bundle) == before
    assert bundle_files(bundle.parent) == parent_before
    # Such an id names nothing: lookups are NotFound, whatever a C string would make of it.
    assert grouped.call("Exec", exec_request(host, "ok", ["/bin/sleep", "1000"])).ok
    for method in ("Start", "Kill", "State", "Delete", "Wait"):
        refused = grouped.call(method, id_request(host, bad))
        assert refused.code == NOT_FOUND and refused.message.endswith(": not found"), \
            (method, refused)
    assert grouped.state(host, "ok")["status"] == "CREATED"
    assert grouped.call("Delete", id_request(host, "ok")).ok
    assert grouped.state(host)["status"] == "RUNNING"
    events.wait_for(lambda e: e.topic == "/tasks/exec-added" and e.concerns(host),
                    what="TaskExecAdded of ok")
    added = [e.data.get("exec_id") for e in events.for_container(host)
             if e.topic == "/tasks/exec-added"]
    assert added == ["ok"], added


@pytest.mark.cshim_only
@pytest.mark.parametrize("which", sorted(BAD_IDS))
def test_bad_container_id_refused(grouped, runtime, which):
    bad = BAD_IDS[which]
    bundle = grouped.bundle(f"bad-{which}", ["/bin/sleep", "1000"])

    reply = grouped.call("Create", create_request(bad, bundle, runtime_options(runtime)))

    assert reply.code == INVALID_ARGUMENT, reply
    assert "invalid container id" in reply.message
    assert grouped.call("State", id_request(bad)).code == NOT_FOUND
    assert bundle_files(bundle) == ["config.json"]
    assert not list(runtime.root.rglob("escaped")) and not list(runtime.root.rglob("ok*"))


# --- no pid namespace of its own --------------------------------------------------------

def sleep_marker():
    """A sleep duration no other process uses: finds that sleep in /proc."""
    return str(100000 + int.from_bytes(os.urandom(2), "big"))


def test_shared_pid_namespace_init_exit_kills_the_rest(containerd, ctr, events, runtime,
                                                       rootfs, ids):
    """A container joining another's pid namespace (a pod sharing one): nothing ends its
    init's children with it, so the shim kills them (kill --all) as the init exits, before
    it publishes the exit; the task is not deleted yet (a runtime delete would kill them)."""
    owner, cid = ids.new(), ids.new()
    owner_pid = run_detached(containerd, runtime.args, ["--rootfs", rootfs], owner,
                             "/bin/sleep", "1000")
    marker = sleep_marker()

    ctr("run", "-d", "--with-ns", f"pid:/proc/{owner_pid}/ns/pid", *runtime.args,
        "--rootfs", rootfs, cid, "/bin/sh", "-c", f"/bin/sleep {marker} & exit 3",
        timeout=30)

    assert events.wait_topic(cid, "/tasks/exit").data.get("exit_status") == 3
    wait_until(lambda: not pids_with_args("/bin/sleep", marker), timeout=15,
               what="the init's child killed")
    assert containerd.tasks()[cid][1] == "STOPPED"
    assert pid_alive(owner_pid)


def test_no_pid_namespace_init_exit_kills_the_rest(grouped, events, ids):
    cid = ids.new()
    marker = sleep_marker()
    assert grouped.create(cid, ["/bin/sh", "-c", f"/bin/sleep {marker} & exit 3"],
                          pid_namespace=False).ok
    assert grouped.call("Start", id_request(cid)).ok

    assert wait_status(grouped.call("Wait", id_request(cid), timeout=15)) == 3
    wait_until(lambda: not pids_with_args("/bin/sleep", marker), timeout=15,
               what="the init's child killed")
    assert events.wait_topic(cid, "/tasks/exit").data.get("exit_status") == 3
    assert decoded(grouped.call("Delete", id_request(cid), timeout=30))["exit_status"] == 3


# --- refusals in every state, as the stock shim answers them --------------------------------

def expect(reply, code, message):
    assert (reply.code, reply.message) == (code, message), reply


def test_refusals_through_the_lifecycle(grouped, events, ids):
    """Codes and texts (with the errdefs class containerd reads) of what each state refuses,
    for the init and an exec; an exec reads as paused with its container; Pids of a stopped
    task is an empty list."""
    g, cid = grouped, ids.new()
    expect(g.call("State", id_request("no-such-task")), NOT_FOUND,
           "container not created: not found")
    assert g.create(cid, ["/bin/sleep", "1000"]).ok
    expect(g.call("Pause", id_request(cid)), UNKNOWN, "cannot pause task in created state")
    expect(g.call("State", id_request(cid, "nope")), NOT_FOUND,
           "process does not exist nope: not found")
    assert g.call("Start", id_request(cid)).ok
    expect(g.call("Start", id_request(cid)), UNKNOWN, "cannot start a running process")
    expect(g.call("Delete", id_request(cid)), UNKNOWN, "cannot delete a running process")
    assert g.call("Exec", exec_request(cid, "e1", ["/bin/sleep", "1000"])).ok
    expect(g.call("Exec", exec_request(cid, "e1", ["/bin/true"])), ALREADY_EXISTS,
           "id e1: already exists")
    expect(g.call("Kill", kill_request(cid, "e1")), FAILED_PRECONDITION,
           "process not created: failed precondition")
    assert g.call("Start", id_request(cid, "e1")).ok
    expect(g.call("Delete", id_request(cid, "e1")), UNKNOWN, "cannot delete a running process")

    assert g.call("Pause", id_request(cid)).ok
    assert g.state(cid, "e1")["status"] == "PAUSED"
    expect(g.call("Pause", id_request(cid)), UNKNOWN, "cannot pause a paused container")
    expect(g.call("Exec", exec_request(cid, "e2", ["/bin/true"])), UNKNOWN,
           "cannot exec in a paused state")
    assert g.call("Resume", id_request(cid)).ok
    assert g.state(cid, "e1")["status"] == "RUNNING"

    assert g.call("Exec", exec_request(cid, "late", ["/bin/true"])).ok
    assert g.call("Kill", kill_request(cid)).ok
    assert wait_status(g.call("Wait", id_request(cid), timeout=15)) == 137
    assert wait_status(g.call("Wait", id_request(cid, "e1"), timeout=15)) == 137
    if not STOCK:  # 1.6.20 runs the runtime's exec and fails; 1.7+ refuses as cshim does
        expect(g.call("Start", id_request(cid, "late")), FAILED_PRECONDITION,
               f"container {cid} init process is not running: failed precondition")
    assert g.call("Delete", id_request(cid, "late")).ok
    expect(g.call("Kill", kill_request(cid)), NOT_FOUND, "process already finished: not found")
    expect(g.call("Start", id_request(cid)), UNKNOWN, "cannot start a stopped process")
    expect(g.call("Exec", exec_request(cid, "e3", ["/bin/true"])), UNKNOWN,
           "cannot exec in a stopped state")
    expect(g.call("Update", tt.update_request(cid, '{"cpu":{"shares":512}}')), UNKNOWN,
           "cannot update a stopped container")
    if g.runtime.name == "runc":  # crun 1.8.1's `ps` of a stopped container segfaults
        pids = g.call("Pids", id_request(cid))
        assert pids.ok and not tt.decode_message(pids.payload).get(1), pids
    for _ in range(2):
        assert g.call("CloseIO", m(fb(1, cid), fv(3, 1))).ok

    assert g.call("Delete", id_request(cid, "e1")).ok
    expect(g.call("Wait", id_request(cid, "e1")), NOT_FOUND,
           "process does not exist e1: not found")
    assert decoded(g.call("Delete", id_request(cid), timeout=30))["exit_status"] == 137
    expect(g.call("Delete", id_request(cid)), NOT_FOUND, "container not created: not found")
    deleted = events.wait_topic(cid, "/tasks/delete")
    assert "id" not in deleted.data and deleted.data.get("exit_status") == 137

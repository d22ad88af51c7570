"""Differential conformance harness: plays containerd against one shim.

A Run starts `<shim> start` in a bundle the way containerd 1.6 does (flags,
environment, cwd, stdin = the runc options Any), serves the events ttrpc
endpoint on TTRPC_ADDRESS, drives containerd.task.v2.Task over ttrpc through
the steps of a scenario (scenarios.py), and records what a client can observe:
reply codes, statuses, pids present, published events, files left in the
bundle, processes left alive. compare() diffs two recordings. Standard library
only.
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "test" / "e2e"))

import cshim_e2e as e2e  # noqa: E402
import ttrpc_client as tc  # noqa: E402
from ttrpc_client import (any_message, decode_message, field_bytes, field_varint,  # noqa: E402
                          first, first_str, message)

NAMESPACE_PREFIX = "cf-"  # each run has its own namespace: runtime root and cgroups apart
STOCK_SHIM = Path("/usr/bin/containerd-shim-runc-v2")
RUNTIMES = {"runc": "/usr/bin/runc", "crun": "/usr/bin/crun"}
RUNTIME_ROOT = Path("/run/containerd/runc")  # the runc shims' default root; <root>/<ns>
OPTIONS_URL = "containerd.runc.v1.Options"
PROCESS_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
GROUP_ANNOTATION = "io.containerd.runc.v2.group"
EVENTS_SERVICE = "containerd.services.events.ttrpc.v1.Events"

CALL_TIMEOUT = 30.0       # an RPC that should answer
WAIT_TIMEOUT = 20.0       # a Wait that should answer (the process is gone or is being killed)
SETTLE_TIMEOUT = 10.0     # events implied by the replies
BLOCK_CHECK = 1.5         # a Wait that must NOT answer (process alive): how long we look

GO_ZERO_TIME = -62135596800

CODE_NAMES = {0: "OK", 1: "Canceled", 2: "Unknown", 3: "InvalidArgument",
              4: "DeadlineExceeded", 5: "NotFound", 6: "AlreadyExists",
              7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition",
              10: "Aborted", 11: "OutOfRange", 12: "Unimplemented", 13: "Internal",
              14: "Unavailable", 15: "DataLoss", 16: "Unauthenticated"}
# errdefs class strings containerd trims from a message ("...: not found").
ERRDEFS_CLASSES = ("not found", "already exists", "failed precondition", "invalid argument",
                   "unavailable", "not implemented", "unknown")

EVENT_FIELDS = {  # type_url -> (topic-ish name, {field number: name})
    "containerd.events.TaskCreate": ("create", {1: "container", 6: "pid"}),
    "containerd.events.TaskStart": ("start", {1: "container", 2: "pid"}),
    "containerd.events.TaskDelete": ("delete", {1: "container", 2: "pid", 3: "exit_status",
                                                5: "id"}),
    "containerd.events.TaskExit": ("exit", {1: "container", 2: "id", 3: "pid",
                                            4: "exit_status"}),
    "containerd.events.TaskExecAdded": ("exec-added", {1: "container", 2: "id"}),
    "containerd.events.TaskExecStarted": ("exec-started", {1: "container", 2: "id", 3: "pid"}),
    "containerd.events.TaskPaused": ("paused", {1: "container"}),
    "containerd.events.TaskResumed": ("resumed", {1: "container"}),
    "containerd.events.TaskOOM": ("oom", {1: "container"}),
    "containerd.events.TaskCheckpointed": ("checkpointed", {1: "container"}),
}

BAD_IDS = {"slash": "a/b", "dotdot": "..", "nul": "a\x00b", "newline": "a\nb",
           "long": "x" * 1024}


def shim_binaries():
    """{'stock': path, 'cshim': path}; CSHIM_E2E_ASAN=1 picks build-asan like test/e2e."""
    return {"stock": STOCK_SHIM, "cshim": e2e.shim_binary()}


def sanitizer_env(report_dir):
    if not e2e.ASAN:
        return {}
    return {"ASAN_OPTIONS": f"log_path={report_dir}/asan:detect_leaks=1:abort_on_error=0",
            "UBSAN_OPTIONS": f"log_path={report_dir}/ubsan:print_stacktrace=1"}


# --- host preparation -----------------------------------------------------------------

_prepared = {}
_prepare_lock = threading.Lock()


def prepare(base):
    """Build the busybox rootfs once, move hugetlb out of cgroup v2 (crun), read ctr's
    default spec. Returns the rootfs path."""
    with _prepare_lock:
        if "rootfs" not in _prepared:
            rootfs = Path(base) / "rootfs"
            subprocess.run([REPO / "scripts" / "build-rootfs", rootfs], check=True,
                           timeout=120, capture_output=True)
            subprocess.run([REPO / "scripts" / "hugetlb-v1"], check=True, timeout=60,
                           capture_output=True)
            RUNTIME_ROOT.mkdir(parents=True, exist_ok=True)
            _prepared["rootfs"] = rootfs
        return _prepared["rootfs"]


def default_spec():
    """What containerd 1.6 (`ctr oci spec`) writes, computed without a daemon."""
    if "spec" not in _prepared:
        out = subprocess.run(["ctr", "-a", "/nonexistent/containerd.sock", "oci", "spec"],
                             check=True, capture_output=True, timeout=30).stdout
        _prepared["spec"] = json.loads(out)
    return json.loads(json.dumps(_prepared["spec"]))


def make_spec(rootfs, namespace, container_id, args, host_pid=False, group=None):
    spec = default_spec()
    spec["root"] = {"path": str(rootfs)}
    spec["process"]["args"] = list(args)
    spec["process"]["env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    spec["linux"]["cgroupsPath"] = f"/{namespace}/{container_id}"
    if host_pid:
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                       if n["type"] != "pid"]
    if group:
        spec["annotations"] = {GROUP_ANNOTATION: group}
    return spec


# --- protobuf messages ------------------------------------------------------------------

def runc_options(binary):
    """containerd.runc.v1.Options{binary_name=6} as an Any."""
    return any_message(OPTIONS_URL, field_bytes(6, binary))


def id_req(cid, eid=""):
    return message(field_bytes(1, cid), field_bytes(2, eid))


def timestamp_kind(raw):
    """'none' (absent), 'zero' (Go's zero time), 'epoch' ({0,0} sent) or 'set'."""
    if raw is None:
        return "none"
    seconds = first(decode_message(raw), 1, 0) if raw else 0
    if seconds >= 1 << 63:
        seconds -= 1 << 64
    if seconds == GO_ZERO_TIME:
        return "zero"
    return "set" if seconds > 0 else "epoch"


class EventServer:
    """containerd's events ttrpc endpoint: records every Forward envelope."""

    def __init__(self, path):
        self.path = str(path)
        self.events = []
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.closed = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()

    def _serve(self, conn):
        with conn:
            buf = b""
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while len(buf) >= tc.HEADER.size:
                    length, stream, kind, _ = tc.HEADER.unpack_from(buf)
                    if len(buf) < tc.HEADER.size + length:
                        break
                    body = buf[tc.HEADER.size:tc.HEADER.size + length]
                    buf = buf[tc.HEADER.size + length:]
                    if kind != tc.MESSAGE_REQUEST:
                        continue
                    reply = self._handle(decode_message(body))
                    try:
                        conn.sendall(tc.HEADER.pack(len(reply), stream, tc.MESSAGE_RESPONSE, 0)
                                     + reply)
                    except OSError:
                        return

    def _handle(self, req):
        service, method = first_str(req, 1), first_str(req, 2)
        if service != EVENTS_SERVICE or method != "Forward":
            status = message(field_varint(1, 12), field_bytes(2, f"method {method}"))
            return message(field_bytes(1, status))
        envelope = decode_message(first(decode_message(first(req, 3, b"")), 1, b""))
        event = decode_message(first(envelope, 4, b""))
        with self.cond:
            self.events.append({"namespace": first_str(envelope, 2),
                                "topic": first_str(envelope, 3),
                                "type_url": first_str(event, 1),
                                "fields": decode_message(first(event, 2, b""))})
            self.cond.notify_all()
        return message(field_bytes(1, b""), field_bytes(2, b""))

    def snapshot(self):
        with self.cond:
            return list(self.events)

    def wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.events):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return True

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class FifoReader:
    """Reads FIFOs we own (shim log, container stdout/stderr) so writers never block."""

    def __init__(self):
        self.fds = {}
        self.text = {}
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, name, path):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with self.lock:
            self.fds[fd] = name
            self.text.setdefault(name, b"")

    def _run(self):
        while not self.stop:
            with self.lock:
                fds = list(self.fds)
            if not fds:
                time.sleep(0.05)
                continue
            try:
                ready, _, _ = select.select(fds, [], [], 0.1)
            except (OSError, ValueError):
                continue  # one was closed meanwhile (remove): list them again
            for fd in ready:
                with self.lock:
                    # removed since the select: its number may already be another file's
                    # (a child's stdout pipe), which is not ours to read
                    name = self.fds.get(fd)
                    if name is None:
                        continue
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        data = b""
                    if data:
                        self.text[name] = (self.text[name] + data)[-65536:]

    def remove(self, name):
        """Stop reading name's FIFO and close it."""
        with self.lock:
            for fd, known in list(self.fds.items()):
                if known == name:
                    del self.fds[fd]
                    os.close(fd)
            self.text.pop(name, None)

    def close(self):
        self.stop = True
        self.thread.join(5)
        with self.lock:
            for fd in self.fds:
                os.close(fd)
            self.fds = {}


def being_killed(pid):
    """SIGKILL is pending for pid (it dies as soon as it is scheduled)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    pending = 0
    for line in status.splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")):
            pending |= int(line.split()[1], 16)
    return bool(pending & (1 << (signal.SIGKILL - 1))) and e2e.pid_alive(pid)


# --- one run of one scenario -----------------------------------------------------------

class Run:
    """One scenario against one shim binary with one runtime."""

    def __init__(self, scenario, shim_name, shim, runtime, rootfs, base, report_dir=None):
        self.scenario = scenario
        self.shim_name = shim_name
        self.shim = str(shim)
        self.runtime = runtime
        self.runtime_binary = RUNTIMES[runtime]
        self.rootfs = rootfs
        self.dir = Path(tempfile.mkdtemp(prefix="cf", dir=base))
        self.tag = self.dir.name[2:].lower().replace("_", "x")
        self.ns = NAMESPACE_PREFIX + self.tag
        self.address = str(self.dir / "grpc.sock")
        self.events = EventServer(self.dir / "ev.sock")
        self.fifos = FifoReader()
        self.env = dict(os.environ, TTRPC_ADDRESS=str(self.dir / "ev.sock"),
                        GRPC_ADDRESS=self.address, NAMESPACE=self.ns, MAX_SHIM_VERSION="2",
                        **sanitizer_env(report_dir))
        self.options = runc_options(self.runtime_binary)
        self.containers = {}    # label -> {"id", "bundle", "address"}
        self.execs = set()      # (label, exec id) ever sent in Exec
        self.pids = {}          # pid -> label of what it belongs to
        self.clients = {}       # address -> TtrpcClient
        self.waiters = {}
        self.stdin_fds = {}     # stdio name -> our write end of its stdin FIFO
        self.record = {"steps": []}
        self.expected = []      # event names implied by successful replies
        self.exited = set()     # targets seen exited (Wait answered, State STOPPED)

    # ids and labels
    def cid(self, label):
        if label.startswith("!"):
            return BAD_IDS[label[1:]]
        return f"{label}-{self.tag}"

    def target(self, target):
        label, _, exec_label = target.partition(":")
        eid = BAD_IDS[exec_label[1:]] if exec_label.startswith("!") else exec_label
        return label, self.cid(label), eid

    def normalise(self, text):
        if not isinstance(text, str):
            return text
        text = text.replace(str(self.dir), "<dir>").replace(str(self.rootfs), "<rootfs>")
        for label in sorted(self.containers, key=len, reverse=True):
            text = text.replace(self.cid(label), f"<{label}>")
        text = text.replace(self.ns, "<ns>").replace(self.tag, "<tag>")
        return re.sub(r"\d+", "N", text)

    def label_of(self, cid):
        for name, bad in BAD_IDS.items():
            if bad == cid:
                return f"!{name}"
        if any(cid == eid for _, eid in self.execs):
            return cid
        for label in self.containers:
            if self.cid(label) == cid:
                return label
        return self.normalise(cid)

    # containers and shims
    def add_container(self, label, spec_opts):
        cid = self.cid(label)
        bundle = self.dir / label
        bundle.mkdir()
        args = spec_opts.get("args", ["sleep", "1000"])
        group = f"g{self.tag}" if spec_opts.get("group") else None
        spec = make_spec(self.rootfs, self.ns, cid, args, spec_opts.get("host_pid", False), group)
        (bundle / "config.json").write_text(json.dumps(spec, indent=4))
        os.mkfifo(bundle / "log", 0o600)
        # containerd links `work` to the task's directory under its root dir.
        work = self.dir / f"work-{label}"
        work.mkdir()
        (bundle / "work").symlink_to(work)
        # containerd opens the log FIFO before `start` and copies it to its log.
        self.fifos.add(f"{label}/log", bundle / "log")
        self.containers[label] = {"id": cid, "bundle": bundle, "address": None,
                                  "spec": spec}
        return self.containers[label]

    def shim_argv(self, cid, action, bundle=None):
        argv = [self.shim, "-namespace", self.ns, "-address", self.address,
                "-publish-binary", "/bin/false", "-id", cid]
        if bundle:
            argv += ["-bundle", str(bundle)]
        return argv + [action]

    def start_shim(self, label):
        c = self.containers[label]
        proc = subprocess.run(self.shim_argv(c["id"], "start"), cwd=c["bundle"], env=self.env,
                              input=self.options, capture_output=True, timeout=CALL_TIMEOUT,
                              process_group=0)
        out = proc.stdout.decode().strip()
        c["address"] = out.removeprefix("unix://") if proc.returncode == 0 else None
        return proc.returncode, out, proc.stderr.decode()

    def client(self, label, fresh=False):
        address = self.containers[label]["address"]
        if address is None:
            raise RuntimeError(f"no shim for {label}")
        if fresh and address in self.clients:
            self.clients.pop(address).close()
        if address not in self.clients:
            self.clients[address] = tc.TtrpcClient(address, self.ns, timeout=CALL_TIMEOUT)
        return self.clients[address]

    def stdio(self, name, mode):
        if mode != "fifo":
            return "", "", ""
        paths = []
        for stream in ("stdin", "stdout", "stderr"):
            path = self.dir / f"{name}.{stream}"
            os.mkfifo(path, 0o600)
            if stream == "stdin":
                # containerd keeps its write end open; O_RDWR never blocks on a FIFO.
                self.stdin_fds[name] = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            else:
                self.fifos.add(f"{name}.{stream}", path)
            paths.append(str(path))
        return tuple(paths)

    # recording
    def note(self, step, reply=None, **fields):
        entry = {"step": step}
        if reply is not None:
            entry["code"] = CODE_NAMES.get(reply.code, str(reply.code))
            if reply.code:
                msg = reply.message.rstrip()
                entry["class"] = next((c for c in ERRDEFS_CLASSES if msg.endswith(": " + c)
                                       or msg == c), "")
                entry["message"] = self.normalise(reply.message)
        entry.update(fields)
        self.record["steps"].append(entry)
        return entry

    def remember_pid(self, pid, what):
        if pid:
            self.pids[pid] = what

    def call(self, label, method, payload, timeout=None, fresh=False):
        try:
            return self.client(label, fresh=fresh).task(method, payload, timeout=timeout)
        except (tc.TtrpcError, OSError) as exc:
            address = self.containers[label]["address"]
            old = self.clients.pop(address, None)
            if old:
                old.close()
            return exc

    # cleanup
    def shim_processes(self):
        """The shim processes of this run: the only ones with its -address (not zombies)."""
        return [p for p in e2e.pids_with_args("-address", self.address) if e2e.pid_alive(p)]

    def container_pids(self):
        pids = set()
        for label, c in self.containers.items():
            pids |= e2e.cgroup_pids(self.ns, c["id"])
        return pids

    def alive_summary(self):
        """Per container: how many processes its cgroup still holds. A process with a
        SIGKILL pending is on its way out: waited for (bounded), then not counted."""
        deadline = time.monotonic() + SETTLE_TIMEOUT / 2
        while time.monotonic() < deadline and any(
                being_killed(p) for c in self.containers.values()
                for p in e2e.cgroup_pids(self.ns, c["id"])):
            time.sleep(0.05)
        out = {}
        for label, c in self.containers.items():
            procs = [p for p in e2e.cgroup_pids(self.ns, c["id"])
                     if e2e.pid_alive(p) and not being_killed(p)]
            out[label] = len(procs)
        return out

    def bundle_files(self):
        out = {}
        for label, c in self.containers.items():
            names = []
            for path in sorted(c["bundle"].iterdir()):
                names.append(self.normalise_file(path.name))
            out[label] = {name: True for name in sorted(names)}
        return out

    def normalise_file(self, name):
        """Exec pid files are named after the exec (`<id>.pid` stock, `exec-<id>.pid`
        cshim): only their presence is compared. Random suffixes are dropped."""
        for label, eid in sorted(self.execs, key=lambda x: -len(x[1])):
            if eid and name in (f"{eid}.pid", f"exec-{eid}.pid"):
                return f"<pid file of exec {self.label_of(eid)}>"
        return re.sub(r"^\.cshim-exec-\w+\.json$", ".cshim-exec-*.json", name)

    def teardown(self):
        for waiter in self.waiters.values():
            waiter["client"].close()
        self.waiters = {}
        for pid in self.container_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for client in self.clients.values():
            client.close()
        self.clients = {}
        # Nothing of the teardown is compared: the shims go by SIGTERM, then SIGKILL.
        for pid in self.shim_processes():
            e2e.kill_and_wait(pid, timeout=3)
        for label, c in self.containers.items():
            # containerd runs the binary's delete after every shim disconnect.
            subprocess.run(self.shim_argv(c["id"], "delete", c["bundle"]), cwd=c["bundle"],
                           env=self.env, capture_output=True, timeout=CALL_TIMEOUT,
                           process_group=0)
            subprocess.run([self.runtime_binary, "--root", str(RUNTIME_ROOT / self.ns), "delete",
                            "--force", c["id"]], capture_output=True, timeout=CALL_TIMEOUT)
            for pid in e2e.cgroup_pids(self.ns, c["id"]):
                e2e.kill_and_wait(pid, timeout=5)
            e2e.remove_cgroups(self.ns, c["id"])
            if c["address"]:
                try:
                    os.unlink(c["address"])
                except OSError:
                    pass
        e2e.remove_cgroups(self.ns)
        shutil.rmtree(RUNTIME_ROOT / self.ns, ignore_errors=True)
        for fd in self.stdin_fds.values():
            os.close(fd)
        self.fifos.close()
        self.events.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # the whole run
    def execute(self):
        from steps import run_steps  # noqa: PLC0415 (keeps the DSL next to its scenarios)
        started = time.monotonic()
        try:
            run_steps(self, self.scenario)
            self.finish()
        except Exception as exc:  # a harness failure is recorded, then reported by the test
            self.record["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            self.record["logs"] = {k: v.decode(errors="replace")[-4000:]
                                   for k, v in self.fifos.text.items() if v}
            self.teardown()
            self.record["seconds"] = round(time.monotonic() - started, 2)
        return self.record

    def finish(self):
        self.settle_events()
        events = [self.event_view(e) for e in self.events.snapshot()]
        # Events the stock shim itself publishes or not, by a race: left out of the recording.
        optional = self.scenario.get("optional_events", ())
        events = [e for e in events if e["topic"] not in optional]
        if self.scenario.get("unordered_events"):
            # The stock shim itself races these (e.g. TaskResumed against the TaskExit of
            # a process killed while frozen): compared as a multiset.
            events.sort(key=lambda e: json.dumps(e, sort_keys=True))
        self.record["events"] = events
        self.record["bundle_files"] = self.bundle_files()
        if self.scenario.get("compare_alive", True):
            self.record["alive"] = self.alive_summary()

    def settle_events(self):
        """Wait until every event the replies imply has been published (bounded)."""
        needed = {}
        for name in self.expected:
            needed[name] = needed.get(name, 0) + 1

        def enough(events):
            have = {}
            for ev in events:
                name = EVENT_FIELDS.get(ev["type_url"], (ev["topic"],))[0]
                have[name] = have.get(name, 0) + 1
            return all(have.get(k, 0) >= v for k, v in needed.items())
        self.events.wait_for(enough, SETTLE_TIMEOUT)

    def event_view(self, ev):
        name, fields = EVENT_FIELDS.get(ev["type_url"], (ev["type_url"], {}))
        view = {"topic": ev["topic"]}
        for number, key in fields.items():
            value = first(ev["fields"], number, None)
            if key in ("container", "id"):
                view[key] = self.label_of(value.decode()) if value is not None else ""
            elif key == "pid":
                view[key] = bool(value)
            else:
                view[key] = value or 0
        if ev["namespace"] != self.ns:
            view["namespace"] = ev["namespace"]
        return view


# --- comparison --------------------------------------------------------------------------

COMPARED_STEP_KEYS = None  # every key except the informative ones below
INFORMATIVE = {"message"}


def comparable(record):
    """The parts of a recording that must match between the shims."""
    steps = {f"{i}:{s['step']}": {k: v for k, v in s.items() if k not in INFORMATIVE | {"step"}}
             for i, s in enumerate(record["steps"])}
    out = {"steps": steps, "events": record.get("events"),
           "bundle_files": record.get("bundle_files"), "alive": record.get("alive")}
    if "error" in record:
        out["error"] = record["error"]
    return out


def flatten(value, prefix=""):
    if isinstance(value, dict):
        items = {}
        for k, v in value.items():
            items.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return items
    if isinstance(value, list):
        items = {f"{prefix}.#": len(value)} if prefix else {}
        for i, v in enumerate(value):
            items.update(flatten(v, f"{prefix}[{i}]"))
        return items
    return {prefix: value}


def diff(stock, cshim):
    """[(field, stock value, cshim value)] over the comparable parts."""
    a, b = flatten(comparable(stock)), flatten(comparable(cshim))
    out = []
    for key in sorted(set(a) | set(b), key=_natural):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append((key, a.get(key, "<absent>"), b.get(key, "<absent>")))
    return out


def _natural(key):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]

"""Helpers for the cshim end-to-end tests: a private containerd, ctr, events,
process, mount and cgroup inspection. Standard library only."""

import fcntl
import hashlib
import io
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import termios
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "cshim-e2e"
CSHIM_RUNTIME = "io.containerd.cshim.v2"
STOCK_RUNTIME = "io.containerd.runc.v2"
SHIM_BINARY_NAME = "containerd-shim-cshim-v2"
SOCKET_DIR = Path("/run/containerd/s")
TASK_STATE_DIR = "io.containerd.runtime.v2.task"
DEFAULT_TIMEOUT = 30
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

STOCK = os.environ.get("CSHIM_E2E_SHIM", "cshim") == "stock"
ASAN = os.environ.get("CSHIM_E2E_ASAN") == "1"

# The containerd build under test (CSHIM_E2E_CONTAINERD): the system's 1.6, or Debian's 1.7
# (trixie) and 2.x (sid) packages unpacked by scripts/fetch-containerd, never installed.
CONTAINERD_SUITES = {"1.6": None, "1.7": "trixie", "2.x": "sid"}
CONTAINERD = os.environ.get("CSHIM_E2E_CONTAINERD", "1.6")
# Logs and reports of a run; the matrix keeps each other build's apart.
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
if CONTAINERD != "1.6":
    ARTIFACTS = ARTIFACTS / f"containerd-{CONTAINERD}"


def build_dir():
    """The shim's build dir: $CSHIM_BUILD, <repo>/build, or <repo>/build-asan."""
    if ASAN:
        return REPO / "build-asan"
    return Path(os.environ.get("CSHIM_BUILD", REPO / "build")).resolve()


def shim_binary():
    return build_dir() / SHIM_BINARY_NAME


def containerd_bin_dir(build=CONTAINERD):
    """Where build's containerd, ctr and stock shim are; None for the system's."""
    if build not in CONTAINERD_SUITES:
        raise ValueError(f"CSHIM_E2E_CONTAINERD={build!r}: expected one of "
                         + ", ".join(CONTAINERD_SUITES))
    suite = CONTAINERD_SUITES[build]
    if suite is None:
        return None
    return REPO / "build" / "debian" / suite / "containerd" / "usr" / "bin"


def containerd_tool(name, build=CONTAINERD):
    """Path of containerd's `containerd` or `ctr` for build (PATH lookup for 1.6)."""
    directory = containerd_bin_dir(build)
    return str(directory / name) if directory else name


class CommandFailed(AssertionError):
    pass


def describe(proc):
    """One readable block for a finished command."""
    return (f"$ {' '.join(map(str, proc.args))}\n"
            f"exit status: {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


def run(cmd, check=True, timeout=DEFAULT_TIMEOUT, env=None, input=None):
    """subprocess.run with a timeout always, text output, and failures that
    show the whole command, its exit status and its output."""
    cmd = [str(c) for c in cmd]
    try:
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=timeout, env=env,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"$ {' '.join(cmd)}\ntimed out after {timeout}s\n"
                            f"stdout:\n{exc.stdout}\nstderr:\n{exc.stderr}") from None
    if check and proc.returncode != 0:
        raise CommandFailed(describe(proc))
    return proc


def run_bytes(cmd, input=None, timeout=DEFAULT_TIMEOUT):
    """subprocess.run with bytes in and out, always with a timeout; no check."""
    cmd = [str(c) for c in cmd]
    try:
        return subprocess.run(cmd, input=input, capture_output=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"$ {' '.join(cmd)}\ntimed out after {timeout}s\n"
                            f"stderr:\n{exc.stderr!r}") from None


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Poll predicate() until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 f" (last value: {value!r})")
        time.sleep(interval)


# --- processes -------------------------------------------------------------

def process_argv(pid):
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def pids_with_arg(token):
    """Pids whose argv holds token as a whole argument (like pgrep -f, but
    exact). The test process itself is excluded."""
    me = os.getpid()
    found = []
    for pid in all_pids():
        argv = process_argv(pid)
        if pid != me and argv and token in argv:
            found.append(pid)
    return found


def pids_with_args(*pair):
    """Pids whose argv holds the given arguments next to each other."""
    found = []
    n = len(pair)
    for pid in all_pids():
        argv = process_argv(pid) or []
        if any(tuple(argv[i:i + n]) == pair for i in range(len(argv) - n + 1)):
            found.append(pid)
    return found


def parent_pid(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def catches_signal(pid, signum):
    """True once pid has installed a handler for signum (SigCgt mask)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M)
    return bool(mask and int(mask.group(1), 16) & (1 << (signum - 1)))


def kill_and_wait(pid, timeout=10.0):
    """SIGTERM, then SIGKILL, a process we are responsible for."""
    for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)


def stop_popen(proc, timeout=10.0):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# --- mounts and cgroups ------------------------------------------------------

def _unescape_mountinfo(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path):
    """Mount points at or below path, deepest first."""
    prefix = str(path).rstrip("/")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape_mountinfo(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all_under(path):
    for point in mounts_under(path):
        proc = run(["umount", point], check=False)
        if proc.returncode != 0:
            run(["umount", "-l", point], check=False)


def cgroup_dirs(*parts):
    """Directories for cgroup path /parts... in every mounted hierarchy."""
    root = Path("/sys/fs/cgroup")
    rel = Path(*parts)
    if (root / "cgroup.controllers").exists():  # pure v2
        candidates = [root / rel]
    else:
        candidates = [h / rel for h in root.iterdir() if h.is_dir()]
    return [d for d in candidates if d.is_dir()]


def cgroup_pids(*parts):
    pids = set()
    for d in cgroup_dirs(*parts):
        try:
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        except OSError:
            pass
    return pids


def remove_cgroups(*parts):
    for d in cgroup_dirs(*parts):
        try:
            d.rmdir()
        except OSError:
            pass


# --- shim sockets --------------------------------------------------------------

def shim_socket_path(address, namespace, container_id):
    """Where a shim started by containerd at address listens for container_id:
    unix:///run/containerd/s/<sha256("<address>/<ns>/<id>")>, as upstream."""
    key = os.path.normpath(f"{address}/{namespace}/{container_id}")
    return SOCKET_DIR / hashlib.sha256(key.encode()).hexdigest()


def socket_listing():
    try:
        return set(os.listdir(SOCKET_DIR))
    except FileNotFoundError:
        return set()


def socket_accepts(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(1)
        sock.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def stale_sockets(names):
    """The shim sockets among names (in /run/containerd/s) nobody serves."""
    return sorted(n for n in names if not socket_accepts(SOCKET_DIR / n))


def remove_stale_socket(path):
    """Remove a shim socket nobody serves any more (a killed shim's)."""
    if path.exists() and not socket_accepts(path):
        path.unlink(missing_ok=True)


def remove_fifos(container_ids, fifo_root=Path("/run/containerd/fifo")):
    """ctr keeps a detached task's stdio FIFOs in fifo_root/<n>/<id>-std*
    until `ctr task rm`; remove ours when a task vanished without it."""
    names = {f"{cid}-{stream}" for cid in container_ids
             for stream in ("stdin", "stdout", "stderr")}
    try:
        dirs = [d for d in fifo_root.iterdir() if d.is_dir()]
    except FileNotFoundError:
        return
    for directory in dirs:
        try:
            entries = list(directory.iterdir())
        except FileNotFoundError:  # its ctr removed it meanwhile
            continue
        ours = [e for e in entries if e.name in names]
        for entry in ours:
            entry.unlink(missing_ok=True)
        if ours and len(ours) == len(entries):
            try:
                directory.rmdir()
            except OSError:
                pass


# --- events ------------------------------------------------------------------

class Event:
    def __init__(self, namespace, topic, data, raw):
        self.namespace = namespace
        self.topic = topic
        self.data = data
        self.raw = raw

    def concerns(self, container_id):
        if self.data.get("container_id") == container_id:
            return True
        return self.topic.startswith("/containers/") and self.data.get("id") == container_id

    def __repr__(self):
        return f"Event({self.topic} {self.data})"


def parse_event_line(line):
    """`ctr events` prints: DATE TIME +ZONE ZONE NAMESPACE TOPIC JSON."""
    parts = line.rstrip("\n").split(None, 6)
    if len(parts) < 6 or not parts[5].startswith("/"):
        return None
    try:
        data = json.loads(parts[6]) if len(parts) == 7 else {}
    except ValueError:
        data = {}
    return Event(parts[4], parts[5], data if isinstance(data, dict) else {}, line)


class EventStream:
    """A background `ctr events`, subscribed before start() returns."""

    def __init__(self, containerd):
        self.containerd = containerd
        self.events = []
        self.lines = []
        self._cond = threading.Condition()
        self.proc = containerd.popen(["events"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            event = parse_event_line(line)
            with self._cond:
                self.lines.append(line)
                if event:
                    self.events.append(event)
                self._cond.notify_all()

    def wait_for(self, predicate, timeout=15.0, what="event"):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    raise AssertionError(
                        f"no {what} within {timeout}s; ctr events printed:\n"
                        + "".join(self.lines[-50:]))
                self._cond.wait(min(remaining, 0.5))

    def sync(self, timeout=15.0):
        """Make sure the subscription is live: create namespaces until the
        stream reports one (an event published before subscribing is lost)."""
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            name = f"probe-{os.getpid()}-{id(self)}-{attempt}"
            self.containerd.ctr("namespaces", "create", name)
            try:
                self.wait_for(lambda e: e.topic == "/namespaces/create"
                              and e.data.get("name") == name,
                              timeout=min(0.25, max(0.05, deadline - time.monotonic())),
                              what=f"probe event {name}")
                return self
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise
            finally:
                self.containerd.ctr("namespaces", "remove", name, check=False)

    def position(self, predicate, timeout=15.0, what="event"):
        """Index in self.events of the first event matching predicate,
        waiting for it if needed: compares the order of events."""
        found = self.wait_for(predicate, timeout=timeout, what=what)
        with self._cond:
            return self.events.index(found)

    def for_container(self, container_id):
        with self._cond:
            return [e for e in self.events if e.concerns(container_id)]

    def wait_topic(self, container_id, topic, timeout=15.0):
        return self.wait_for(lambda e: e.topic == topic and e.concerns(container_id),
                             timeout=timeout, what=f"{topic} for {container_id}")

    def close(self):
        stop_popen(self.proc)
        self._reader.join(timeout=5)


# --- containerd ----------------------------------------------------------------

# Shared by every containerd version: private root, state, sockets and opt dir.
_CONFIG_COMMON = """\
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = [{disabled}]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = ""
  level = "debug"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
"""
_UNUSED_SNAPSHOTTERS = ("io.containerd.snapshotter.v1.btrfs",
                        "io.containerd.snapshotter.v1.devmapper",
                        "io.containerd.snapshotter.v1.zfs")
# 1.x: config format 2, CRI is one plugin. 2.x: format 3, CRI is split in three.
_CONFIG_FORMATS = {
    "1.x": (2, ("io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs")),
    "2.x": (3, ("io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
                "io.containerd.grpc.v1.cri")),
}


def config_format(build=CONTAINERD):
    """The config file format version of build (2 for 1.x, 3 for 2.x)."""
    return _CONFIG_FORMATS["2.x" if build.startswith("2.") else "1.x"][0]


def config_common(directory, sock, disabled=()):
    """The part of a private config every containerd version shares (after `version`)."""
    names = ", ".join(f'"{p}"' for p in (*disabled, *_UNUSED_SNAPSHOTTERS))
    return _CONFIG_COMMON.format(dir=directory, sock=sock, disabled=names)


def containerd_config(directory, sock, build=CONTAINERD):
    """The private config file text for build, with the CRI plugin disabled."""
    version, cri = _CONFIG_FORMATS["2.x" if build.startswith("2.") else "1.x"]
    return f"version = {version}\n" + config_common(directory, sock, cri)


class Containerd:
    """A private containerd owned by this process: own root, state, sockets;
    path_prefix dirs first on its PATH (that is where it finds shims)."""

    live = []

    def __init__(self, directory, label, path_prefix=(), extra_env=None,
                 namespace=NAMESPACE, build=CONTAINERD):
        self.dir = Path(directory)
        self.build = build
        self.label = label
        self.namespace = namespace
        self.sock = str(self.dir / "containerd.sock")
        self.log_path = self.dir / "containerd.log"
        self.state = self.dir / "state"
        self.path_prefix = [str(p) for p in path_prefix]
        self.extra_env = dict(extra_env or {})
        self.proc = None
        self.children = []  # Popen objects started through popen()
        self.container_ids = set()
        if len(self.sock) + len(".ttrpc") >= 108:
            raise ValueError(f"socket path too long for AF_UNIX: {self.sock}")

    # process management
    def env(self):
        env = dict(os.environ)
        # The build's own stock shim comes after ours and before the system's.
        own = containerd_bin_dir(self.build)
        env["PATH"] = ":".join(self.path_prefix + ([str(own)] if own else [])
                               + [env.get("PATH", ""), SYSTEM_PATH])
        env.update(self.extra_env)
        return env

    def config_text(self):
        return containerd_config(self.dir, self.sock, self.build)

    def start(self, timeout=30.0):
        for sub in ("root", "state", "opt"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        config = self.dir / "config.toml"
        config.write_text(self.config_text())
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [containerd_tool("containerd", self.build), "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                start_new_session=True)
        finally:
            log.close()
        (self.dir / "containerd.pid").write_text(f"{self.proc.pid}\n")
        Containerd.live.append(self)
        deadline = time.monotonic() + timeout
        while self.ctr("version", check=False, timeout=5).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"containerd ({self.label}) did not come up:\n"
                                   + self.log_tail(30))
            time.sleep(0.05)
        return self

    def ctr_argv(self, *args, namespace=None):
        return [containerd_tool("ctr", self.build), "-a", self.sock,
                "-n", namespace or self.namespace,
                *[str(a) for a in args]]

    def ctr(self, *args, check=True, timeout=DEFAULT_TIMEOUT, namespace=None, input=None):
        return run(self.ctr_argv(*args, namespace=namespace), check=check,
                   timeout=timeout, input=input)

    def ctr_bytes(self, *args, input=None, timeout=DEFAULT_TIMEOUT, namespace=None):
        """ctr with binary stdin/stdout (no check): for data that is not text."""
        return run_bytes(self.ctr_argv(*args, namespace=namespace), input=input,
                         timeout=timeout)

    def popen(self, args, **kwargs):
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(self.ctr_argv(*args), **kwargs)
        self.children.append(proc)
        return proc

    # inspection
    def bundle(self, container_id, namespace=None):
        return self.state / TASK_STATE_DIR / (namespace or self.namespace) / container_id

    def tasks(self):
        """{id: (pid, status)} from `ctr task ls`."""
        table = {}
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                table[fields[0]] = (int(fields[1]), fields[2])
        return table

    def containers(self):
        return set(self.ctr("containers", "ls", "-q").stdout.split())

    def socket_path(self, container_id, namespace=None):
        return shim_socket_path(self.sock, namespace or self.namespace, container_id)

    def shim_pids(self):
        """Shims started by this containerd (they carry -address <sock>)."""
        return pids_with_args("-address", self.sock)

    def log_tail(self, lines=40, matching=()):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        if matching:
            text = [t for t in text if any(m in t for m in matching)]
        return "\n".join(text[-lines:])

    # cleanup
    def remove_container(self, container_id, namespace=None):
        """Kill and delete the task, delete the container; ignore what is absent."""
        ns = namespace or self.namespace
        self.ctr("task", "kill", "-a", "-s", "SIGKILL", container_id,
                 namespace=ns, check=False)
        self.ctr("task", "delete", "-f", container_id, namespace=ns, check=False)
        self.ctr("containers", "delete", container_id, namespace=ns, check=False)

    def kill_container_processes(self, container_id, namespace=None):
        ns = namespace or self.namespace
        for pid in cgroup_pids(ns, container_id):
            kill_and_wait(pid, timeout=2)
        remove_cgroups(ns, container_id)

    def stop(self):
        """Remove every container, stop containerd and every shim it started
        (by pid), unmount leftovers, keep the log as an artifact."""
        if self in Containerd.live:
            Containerd.live.remove(self)
        for child in self.children:
            stop_popen(child)
        if self.proc and self.proc.poll() is None:
            self._remove_all_containers()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for pid in self.shim_pids():
            kill_and_wait(pid)
        for cid in self.container_ids:
            self.kill_container_processes(cid)
            remove_stale_socket(self.socket_path(cid))
        remove_fifos(self.container_ids)
        remove_cgroups(self.namespace)
        try:  # the stock shim's default runtime root, when no root was given
            (Path("/run/containerd/runc") / self.namespace).rmdir()
        except OSError:
            pass
        unmount_all_under(self.dir)
        self._keep_log()

    def _remove_all_containers(self):
        listed = self.ctr("namespaces", "ls", "-q", check=False)
        for ns in listed.stdout.split():
            tasks = self.ctr("task", "ls", "-q", namespace=ns, check=False).stdout.split()
            containers = self.ctr("containers", "ls", "-q", namespace=ns,
                                  check=False).stdout.split()
            for cid in set(tasks) | set(containers):
                self.remove_container(cid, namespace=ns)

    def _keep_log(self):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            shutil.copyfile(self.log_path, ARTIFACTS / f"containerd-{self.label}.log")


# --- rootfs and image ---------------------------------------------------------

def _add_blob(archive, data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _add_file(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def build_oci_archive(rootfs, ref, output):
    """Write a one-layer OCI image archive of rootfs for `ctr image import`,
    so tests can run from a snapshot that the shim has to mount."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for name in sorted(os.listdir(rootfs)):
            layer.add(os.path.join(rootfs, name), arcname=name)
    layer_data = layer_buf.getvalue()
    config = {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine,
                                                                    os.uname().machine),
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers",
                   "diff_ids": [f"sha256:{hashlib.sha256(layer_data).hexdigest()}"]},
    }
    with tarfile.open(output, "w") as archive:
        layer_desc = _add_blob(archive, layer_data, "application/vnd.oci.image.layer.v1.tar")
        config_desc = _add_blob(archive, json.dumps(config).encode(),
                                "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_desc, "layers": [layer_desc]}
        manifest_desc = _add_blob(archive, json.dumps(manifest).encode(),
                                  "application/vnd.oci.image.manifest.v1+json")
        manifest_desc["annotations"] = {"io.containerd.image.name": ref,
                                        "org.opencontainers.image.ref.name": ref}
        index = {"schemaVersion": 2,
                 "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [manifest_desc]}
        _add_file(archive, "index.json", json.dumps(index).encode())
        _add_file(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    return output


# --- tasks, events, cgroups and terminals (exec, io, control, checkpoint tests) ---

RUN_TIMEOUT = 30


def read_until(stream, done, timeout=RUN_TIMEOUT):
    """What a pipe gives until done(data) holds, it ends, or the deadline passes (the caller
    checks which)."""
    deadline = time.monotonic() + timeout
    data = b""
    fd = stream.fileno()
    while not done(data):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        data += chunk
    return data


def wait_task_status(containerd, container_id, status, timeout=15.0):
    """Poll `ctr task ls` until container_id shows status; return its pid."""
    def reached():
        entry = containerd.tasks().get(container_id)
        return entry if entry and entry[1] == status else None

    pid, _ = wait_until(reached, timeout=timeout, what=f"task {container_id} {status}")
    return pid


def run_detached(containerd, runtime_args, source, container_id, *argv, flags=()):
    """`ctr run -d FLAGS RUNTIME_ARGS SOURCE ID ARGV...` and wait until the task
    is RUNNING; source is ["--rootfs", DIR] or [IMAGE]. Returns the init pid."""
    containerd.ctr("run", "-d", *flags, *runtime_args, *source, container_id, *argv,
                   timeout=RUN_TIMEOUT)
    return wait_task_status(containerd, container_id, "RUNNING")


def exit_status(event):
    return event.data.get("exit_status", 0)  # zero values are omitted in JSON


def controller_cgroup(pid, controller):
    """The v1 cgroup directory of pid for controller (e.g. "memory",
    "freezer"), from /proc/<pid>/cgroup."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    raise AssertionError(f"pid {pid} has no {controller} cgroup:\n"
                         + Path(f"/proc/{pid}/cgroup").read_text())


def process_state(pid):
    """The State letter of /proc/<pid>/status (R, S, D, T, Z, ...)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return re.search(r"^State:\s*(\S)", status, re.M).group(1)


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_controlling_tty():
    # runs in the child after setsid(): stdin (the pty slave) becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    """A command whose stdin, stdout and stderr are the slave of a new
    pseudo-terminal, which is its controlling terminal (own session): a user
    typing at ctr. Every read has a deadline."""

    def __init__(self, argv, rows=24, cols=80, env=None):
        self.master, slave = pty.openpty()
        set_winsize(slave, rows, cols)
        try:
            self.proc = subprocess.Popen([str(a) for a in argv], stdin=slave, stdout=slave,
                                         stderr=slave, env=env, start_new_session=True,
                                         preexec_fn=_take_controlling_tty)
        finally:
            os.close(slave)
        self.output = bytearray()
        self.consumed = 0
        self.eof = False

    def send(self, data):
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def _read_some(self, deadline):
        """Read what is available until deadline; False at EOF."""
        remaining = max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([self.master], [], [], remaining)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd is closed
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.output += chunk
        return True

    def expect(self, pattern, timeout=10.0):
        """Wait for regex pattern (bytes) in the output not matched yet; return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self.consumed)
            if match:
                self.consumed = match.end()
                return match
            if self.eof or time.monotonic() >= deadline:
                raise AssertionError(
                    f"{pattern!r} not seen within {timeout}s"
                    f"{' (terminal closed)' if self.eof else ''}; output so far:\n"
                    f"{bytes(self.output)!r}")
            self._read_some(deadline)

    def resize(self, rows, cols):
        """Resize the outer terminal (the kernel signals its foreground group)
        and send SIGWINCH to the command as a terminal emulator does."""
        set_winsize(self.master, rows, cols)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGWINCH)

    def wait(self, timeout=10.0):
        """Keep reading the output until the command exits; its exit status."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.proc.args} still running after {timeout}s; "
                                     f"output:\n{bytes(self.output)!r}")
            if self.eof:
                time.sleep(0.05)
            else:
                self._read_some(min(deadline, time.monotonic() + 0.2))
        return self.proc.returncode

    def close(self):
        stop_popen(self.proc, timeout=5)
        try:
            os.close(self.master)
        except OSError:
            pass

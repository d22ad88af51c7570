"""Fixtures for the CRI tests: one private containerd per version of the matrix with its
CRI plugin on and cshim handlers, driven over gRPC with stubs generated from Debian's
k8s.io/cri-api proto (make cri)."""

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from cri_env import (APP_REF, CRI_TIMEOUT, CRUN_REASON, REPO, VERSIONS,
                     CriContainerd, import_images, load_stubs, write_handler_configs)
from cshim_e2e import (ARTIFACTS, ASAN, build_dir, cgroup_dirs, containerd_bin_dir,
                       mounts_under, run, shim_binary)

import grpc

HANDLERS = ("runc", "crun")
TIMINGS = {}  # what -> seconds, printed at the end of the run


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("CRI timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:7.3f} s  {what}")


def pytest_report_header(config):
    return f"cshim CRI: {shim_binary()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the end of the containerd log of that version."""
    outcome = yield
    report = outcome.get_result()
    cri = item.funcargs.get("cri") if hasattr(item, "funcargs") else None
    if report.failed and cri is not None:
        report.sections.append((f"containerd log {cri.containerd.log_path}",
                                cri.containerd.log_tail(60)))


@pytest.fixture(scope="session")
def base_dir():
    path = Path(tempfile.mkdtemp(prefix="ccri-", dir="/tmp"))
    yield path
    if not mounts_under(path):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sanitizer_env(base_dir):
    """With CSHIM_E2E_ASAN=1 (the build-asan shim), sanitizer reports go to files and any
    report fails the session, as in test/e2e."""
    if not ASAN:
        yield {}
        return
    reports = base_dir / "sanitizer"
    reports.mkdir()
    yield {"ASAN_OPTIONS": f"log_path={reports}/asan:detect_leaks=1:abort_on_error=0",
           "UBSAN_OPTIONS": f"log_path={reports}/ubsan:print_stacktrace=1"}
    found = sorted(reports.iterdir())
    if found:
        ARTIFACTS.mkdir(exist_ok=True)
        for report in found:
            shutil.copyfile(report, ARTIFACTS / f"cri-{report.name}")
        pytest.fail("sanitizer reports from the shim: "
                    + ", ".join(str(ARTIFACTS / f"cri-{r.name}") for r in found), pytrace=False)


@pytest.fixture(scope="session")
def rootfs(base_dir):
    run([REPO / "scripts" / "hugetlb-v1"])
    path = base_dir / "rootfs"
    run([REPO / "scripts" / "build-rootfs", path], timeout=120)
    return path


class Cri:
    """The CRI runtime and image services of one containerd, plus pod bookkeeping:
    every pod gets a cgroup parent of its own, removed with the pod."""

    def __init__(self, containerd, version, pb, grpc_mod):
        self.containerd = containerd
        self.version = version
        self.pb = pb
        self.channel = grpc.insecure_channel(f"unix://{containerd.sock}")
        self.runtime = grpc_mod.RuntimeServiceStub(self.channel)
        self.images = grpc_mod.ImageServiceStub(self.channel)
        self.counter = itertools.count(1)
        self.salt = os.urandom(2).hex()
        self.pods = {}  # pod id -> (config, cgroup parent)

    def call(self, method, request):
        return getattr(self.runtime, method)(request, timeout=CRI_TIMEOUT)

    def handler_allowed(self, handler):
        return handler == "runc" or VERSIONS[self.version][1]

    def run_pod(self, handler, pid_mode="CONTAINER"):
        pb = self.pb
        n = next(self.counter)
        parent = f"/cshim-cri-{self.salt}-{n}"
        # Pods use the node's network (no CNI here), except with the shim sandboxer, which
        # containerd 2.1 cannot run with it (see cri_env.FAKE_CNI).
        network = pb.POD if self.containerd.shim_sandboxer else pb.NODE
        ns = pb.NamespaceOption(network=network, pid=getattr(pb, pid_mode), ipc=pb.POD)
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=f"pod{n}", uid=f"uid-{self.salt}-{n}",
                                           namespace="cshim-cri", attempt=0),
            log_directory=str(self.containerd.dir / "logs" / str(n)),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=parent,
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns)))
        reply = self.call("RunPodSandbox", pb.RunPodSandboxRequest(
            config=config, runtime_handler=f"cshim-{handler}"))
        self.pods[reply.pod_sandbox_id] = (config, parent)
        return reply.pod_sandbox_id

    def start_container(self, pod_id, name, command):
        pb = self.pb
        config, _ = self.pods[pod_id]
        ns = config.linux.security_context.namespace_options
        cconfig = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=APP_REF),
            command=command, log_path=f"{name}.log",
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(namespace_options=ns)))
        cid = self.call("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=cconfig, sandbox_config=config)).container_id
        self.call("StartContainer", pb.StartContainerRequest(container_id=cid))
        return cid

    def container_status(self, cid):
        return self.call("ContainerStatus", self.pb.ContainerStatusRequest(
            container_id=cid, verbose=True))

    def container_pid(self, cid):
        import json
        return json.loads(self.container_status(cid).info["info"])["pid"]

    def sandbox_pid(self, pod_id):
        import json
        reply = self.call("PodSandboxStatus", self.pb.PodSandboxStatusRequest(
            pod_sandbox_id=pod_id, verbose=True))
        return json.loads(reply.info["info"]).get("pid")

    def stop_pod(self, pod_id):
        self.call("StopPodSandbox", self.pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))

    def remove_pod(self, pod_id):
        self.call("RemovePodSandbox", self.pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        _, parent = self.pods.pop(pod_id)
        return parent

    def leftover_cgroups(self, parent):
        """Cgroups left under a pod's parent, in any hierarchy."""
        return sorted(str(child) for d in cgroup_dirs(parent.lstrip("/"))
                      for child in d.iterdir() if child.is_dir())

    def remove_parent_cgroups(self, parent):
        for d in cgroup_dirs(parent.lstrip("/")):
            try:
                d.rmdir()
            except OSError:
                pass

    def cleanup(self):
        for pod_id in list(self.pods):
            _, parent = self.pods[pod_id]
            try:
                self.stop_pod(pod_id)
                self.remove_pod(pod_id)
            except grpc.RpcError:
                self.pods.pop(pod_id, None)
            self.remove_parent_cgroups(parent)


@pytest.fixture(scope="session", params=list(VERSIONS))
def cri(request, base_dir, rootfs, sanitizer_env):
    """A CRI client of a private containerd of the given version (cshim handlers)."""
    version = request.param
    bindir = containerd_bin_dir(VERSIONS[version][0]) or Path("/usr/bin")
    if not os.access(bindir / "containerd", os.X_OK):
        pytest.fail(f"containerd {version} not found in {bindir}: run `make cri`",
                    pytrace=False)
    binary = shim_binary()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} not found: run `make`", pytrace=False)
    workdir = base_dir / version
    workdir.mkdir()
    runtimes = {h: shutil.which(h, path="/usr/sbin:/usr/bin:/sbin:/bin") for h in HANDLERS}
    handlers = write_handler_configs(workdir, runtimes)
    containerd = CriContainerd(workdir / "c", version, handlers, [build_dir()],
                               extra_env=sanitizer_env)
    containerd.start()
    try:
        import_images(containerd, rootfs, workdir)
        pb, grpc_mod = load_stubs()
        client = Cri(containerd, version, pb, grpc_mod)
        yield client
        client.cleanup()
        client.channel.close()
    finally:
        containerd.stop()  # keeps its log as test/e2e/artifacts/containerd-cri-<version>.log


@pytest.fixture
def pods(cri):
    """Pods a test leaves behind are stopped and removed after it."""
    yield cri
    cri.cleanup()


@pytest.fixture(params=HANDLERS)
def handler(request, cri):
    if not cri.handler_allowed(request.param):
        pytest.skip(f"crun on containerd {cri.version}: {CRUN_REASON}")
    return request.param


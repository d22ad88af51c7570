"""Fixtures for cshim's end-to-end tests.

Environment switches (see README.md):
  CSHIM_E2E_SHIM=stock  run every test against containerd's stock shim
                        (io.containerd.runc.v2) to validate the tests themselves
  CSHIM_BUILD=DIR       where containerd-shim-cshim-v2 is (default: <repo>/build)
  CSHIM_E2E_ASAN=1      use <repo>/build-asan (make asan) and fail on sanitizer reports
  CSHIM_E2E_CONTAINERD=1.6|1.7|2.x
                        the containerd (and ctr) under test: the system's 1.6 (default), or
                        Debian's 1.7 / 2.x unpacked by scripts/fetch-containerd; select the
                        core subset with `-m core` (make e2e-matrix)
"""

import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from cshim_e2e import (ARTIFACTS, ASAN, CONTAINERD, CSHIM_RUNTIME, REPO, STOCK, STOCK_RUNTIME,
                       Containerd, EventStream, build_dir, build_oci_archive,
                       containerd_tool, mounts_under, run, shim_binary)

RUNTIMES = ("runc", "crun")
# Debian 12's crun (1.8.1) refuses the OCI spec version that containerd 1.7+ writes; so does
# the stock shim with it (docs/runtimes.md).
CRUN_SPEC_LIMIT = ("crun 1.8.1 rejects the OCI spec version containerd 1.7+ writes "
                   "(\"unknown version specified\"); needs a newer crun, or runc")
IMAGE_REF = "docker.io/library/cshim-e2e-busybox:latest"


def pytest_configure(config):
    config.addinivalue_line("markers", "cshim_only: needs cshim itself; skipped with "
                                       "CSHIM_E2E_SHIM=stock")
    config.addinivalue_line("markers", "core: the subset run against every containerd "
                                       "version (CSHIM_E2E_CONTAINERD, make e2e-matrix)")


def pytest_report_header(config):
    tool = containerd_tool("containerd")
    if not (tool == "containerd" or os.access(tool, os.X_OK)):
        pytest.exit(f"{tool} not found: run scripts/fetch-containerd", returncode=2)
    version = run([tool, "--version"]).stdout.strip()
    if STOCK:
        return f"cshim e2e: stock shim (io.containerd.runc.v2); {version}"
    return (f"cshim e2e: {shim_binary()} ({'ASan build' if ASAN else 'plain build'}); "
            f"{version}")


def pytest_collection_modifyitems(config, items):
    if not STOCK:
        return
    skip = pytest.mark.skip(reason="tests cshim itself; not applicable to the stock shim")
    for item in items:
        if "cshim_only" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach what containerd logged about the test's containers."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    allocator = item.funcargs.get("ids") if hasattr(item, "funcargs") else None
    wanted = sorted(allocator.all) if allocator else []
    for instance in list(Containerd.live):
        text = instance.log_tail(80, matching=wanted) if wanted else ""
        text = text or instance.log_tail(25)
        report.sections.append((f"containerd ({instance.label}) log, {instance.log_path}",
                                text))


# --- session setup ----------------------------------------------------------------

@pytest.fixture(scope="session", autouse=True)
def fresh_artifacts():
    """Logs and reports of earlier runs would only mislead."""
    for pattern in ("containerd-*.log", "asan.*", "ubsan.*"):
        for old in ARTIFACTS.glob(pattern):
            old.unlink()


@pytest.fixture(scope="session")
def base_dir():
    """Short (unix socket paths are limited to 108 bytes) private tmp dir."""
    path = Path(tempfile.mkdtemp(prefix="ce2e-", dir="/tmp"))
    yield path
    if not mounts_under(path):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def hugetlb():
    """crun refuses hybrid cgroups while hugetlb sits in the v2 hierarchy."""
    run([REPO / "scripts" / "hugetlb-v1"])


@pytest.fixture(scope="session")
def rootfs(base_dir):
    path = base_dir / "rootfs"
    run([REPO / "scripts" / "build-rootfs", path], timeout=120)
    return path


@pytest.fixture(scope="session")
def shim_path_prefix():
    """Directories put first on containerd's PATH so it finds the shim."""
    if STOCK:
        return []
    binary = shim_binary()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} not found: build it first "
                    f"({'make asan' if ASAN else 'make'})", pytrace=False)
    return [build_dir()]


@pytest.fixture(scope="session")
def sanitizer_env(base_dir):
    """ASan/UBSan reports of the shim go to files (its stderr is a FIFO or
    /dev/null); any report fails the session."""
    if not ASAN:
        yield {}
        return
    reports = base_dir / "sanitizer"
    reports.mkdir()
    yield {
        "ASAN_OPTIONS": f"log_path={reports}/asan:detect_leaks=1:abort_on_error=0",
        "UBSAN_OPTIONS": f"log_path={reports}/ubsan:print_stacktrace=1",
    }
    found = sorted(reports.iterdir())
    if found:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for report in found:
            shutil.copyfile(report, ARTIFACTS / report.name)
        pytest.fail("sanitizer reports from the shim: "
                    + ", ".join(str(ARTIFACTS / r.name) for r in found), pytrace=False)


@pytest.fixture(scope="session")
def containerd_factory(base_dir, hugetlb, shim_path_prefix, sanitizer_env):
    """make(label, extra_path=(), extra_env=None) starts a private containerd whose PATH
    starts with extra_path, then the shim build dir, with extra_env added to its environment
    (which its shims inherit). All are stopped at the end."""
    started = []
    counter = itertools.count()

    def make(label, extra_path=(), extra_env=None):
        directory = base_dir / f"c{next(counter)}"
        # Traces a test asks for without a trace_dir (or CSHIM_TRACE=1 in the environment that
        # runs the tests) stay with the run instead of under /run/cshim.
        env = {**sanitizer_env, "CSHIM_TRACE_DIR": str(base_dir / "trace"), **(extra_env or {})}
        instance = Containerd(directory, label, [*extra_path, *shim_path_prefix],
                              extra_env=env)
        started.append(instance)
        return instance.start()

    yield make
    for instance in reversed(started):
        instance.stop()


@pytest.fixture(scope="session")
def containerd(containerd_factory):
    return containerd_factory("main")


@pytest.fixture(scope="session")
def image(containerd, rootfs, base_dir):
    """The busybox rootfs imported as an image: containers run from an
    overlayfs snapshot that the shim mounts into the bundle."""
    archive = build_oci_archive(rootfs, IMAGE_REF, base_dir / "image.tar")
    containerd.ctr("image", "import", archive, timeout=120)
    return IMAGE_REF


# --- per test ----------------------------------------------------------------------

class IdAllocator:
    """Unique container ids for one test; removes what is left afterwards."""

    def __init__(self, test_name, containerd):
        base = re.sub(r"[^A-Za-z0-9]+", "-", test_name.removeprefix("test_")).strip("-")
        self.prefix = base[:40].strip("-")
        self.salt = os.urandom(2).hex()
        self.counter = itertools.count(1)
        self.containerd = containerd
        self.all = []

    def new(self, containerd=None):
        cid = f"{self.prefix}-{next(self.counter)}-{self.salt}"
        self.all.append(cid)
        (containerd or self.containerd).container_ids.add(cid)
        return cid

    def cleanup(self):
        present = self.containerd.containers() | set(self.containerd.tasks())
        for cid in self.all:
            if cid in present:
                self.containerd.remove_container(cid)


@pytest.fixture
def ids(request, containerd):
    allocator = IdAllocator(request.node.name, containerd)
    yield allocator
    allocator.cleanup()


@pytest.fixture
def cid(ids):
    return ids.new()


@pytest.fixture
def ctr(containerd):
    """ctr(*args, check=True, timeout=30) -> CompletedProcess, run as
    `ctr -a <private socket> -n cshim-e2e ARGS`."""
    return containerd.ctr


@pytest.fixture
def events(containerd):
    """A `ctr events` stream already subscribed when the test starts."""
    stream = EventStream(containerd).sync()
    yield stream
    stream.close()


@pytest.fixture
def make_containerd(containerd_factory):
    """make(label, extra_path=(), extra_env=None): a private containerd for this test only
    (e.g. with another shim first on its PATH), stopped after the test."""
    mine = []

    def make(label, extra_path=(), extra_env=None):
        mine.append(containerd_factory(label, extra_path, extra_env))
        return mine[-1]

    yield make
    for instance in mine:
        instance.stop()


class RuntimeChoice:
    """How a test selects the OCI runtime through ctr.

    cshim:  --runtime io.containerd.cshim.v2 --runtime-config-path FILE,
            FILE = {"binary": ..., "root": ...}
    stock:  --runtime io.containerd.runc.v2 --runc-binary ... --runc-root ...
    """

    def __init__(self, name, binary, conf_dir, root):
        self.name = name
        self.binary = binary
        self.conf_dir = conf_dir
        self.root = root
        self.runtime_name = STOCK_RUNTIME if STOCK else CSHIM_RUNTIME

    def config_file(self, binary):
        digest = hashlib.sha256(str(binary).encode()).hexdigest()[:12]
        path = self.conf_dir / f"{self.name}-{digest}.json"
        path.write_text(json.dumps({"binary": str(binary), "root": str(self.root)}) + "\n")
        return path

    def args_for(self, binary):
        if STOCK:
            return ["--runtime", STOCK_RUNTIME, "--runc-binary", str(binary),
                    "--runc-root", str(self.root)]
        return ["--runtime", CSHIM_RUNTIME, "--runtime-config-path",
                str(self.config_file(binary))]

    @property
    def args(self):
        return self.args_for(self.binary)

    def __repr__(self):
        return f"RuntimeChoice({self.name}, {self.binary}, {self.runtime_name})"


@pytest.fixture(params=RUNTIMES, scope="session")
def runtime(request, base_dir):
    name = request.param
    if name == "crun" and CONTAINERD != "1.6":
        pytest.skip(CRUN_SPEC_LIMIT)
    binary = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not binary:
        pytest.fail(f"{name} is not installed (scripts/install-deps)", pytrace=False)
    conf_dir = base_dir / "runtime-config"
    conf_dir.mkdir(exist_ok=True)
    root = base_dir / "runtime-root" / name
    root.mkdir(parents=True, exist_ok=True)
    return RuntimeChoice(name, binary, conf_dir, root)


@pytest.fixture
def marker_runtime(runtime, tmp_path):
    """A wrapper with the runtime's own name that logs its argv to a marker
    file and execs the real runtime: proves which binary the shim ran."""
    marker = tmp_path / "marker"
    marker.touch()
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / runtime.name
    wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{marker}'\n"
                       f"exec '{runtime.binary}' \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper, marker

"""The files in examples/ work as shipped: containerd loads its example config with the
CRI plugin enabled (examples/config.toml into 1.6 and 1.7, examples/config-containerd2.toml
into 2.x: CSHIM_E2E_CONTAINERD), and every example runtime JSON runs a container through
cshim.

The example config is adapted only where a test must not touch the host: root, state,
sockets, CNI directories and the ConfigPath values (pointed at copies of the example JSONs
whose binaries are the real /usr/sbin/runc and /usr/bin/crun, and test/fakes/fake-youki for
youki, and whose runtime roots are under the test's temp dir). CRI needs
`restrict_oom_score_adj = true` here (root lacks CAP_SYS_RESOURCE, TEST-ENV.md).
"""

import json
import os
import re
import tomllib

import pytest

from conftest import IdAllocator
from conftest import CRUN_SPEC_LIMIT
from cshim_e2e import (CONTAINERD, CSHIM_RUNTIME, NAMESPACE, REPO, Containerd, describe,
                       pids_with_args, wait_until)

EXAMPLES = REPO / "examples"
CRI = "io.containerd.grpc.v1.cri"
# Per config format: (example file, format version, plugin holding the CRI runtimes).
EXAMPLE_CONFIGS = {
    2: ("config.toml", 2, CRI),
    3: ("config-containerd2.toml", 3, "io.containerd.cri.v1.runtime"),
}
FORMAT = 3 if CONTAINERD == "2.x" else 2
RUNTIMES = {  # example runtime name -> (example JSON, binary used in the test)
    "cshim-runc": ("cshim-runc.json", "/usr/sbin/runc"),
    "cshim-crun": ("cshim-crun.json", "/usr/bin/crun"),
    "cshim-youki": ("cshim-youki.json", str(REPO / "test" / "fakes" / "fake-youki")),
}
RUN_TIMEOUT = 30

pytestmark = [pytest.mark.cshim_only, pytest.mark.core]


# --- TOML out (the stdlib reads TOML but does not write it) ------------------------

def _toml_key(key):
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dump_toml(doc, prefix=()):
    """Tables as [a."b.c".d] headers, scalars and arrays as key = value."""
    lines = []
    scalars = {k: v for k, v in doc.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in doc.items() if isinstance(v, dict)}
    if prefix and (scalars or not tables):
        lines.append("[" + ".".join(_toml_key(p) for p in prefix) + "]")
    for key, value in scalars.items():
        lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        lines.append("")
        lines.extend(dump_toml(value, prefix + (key,)).splitlines())
    return "\n".join(lines).strip("\n") + "\n"


# --- fixtures ------------------------------------------------------------------------

def example_config(fmt=FORMAT):
    with open(EXAMPLES / EXAMPLE_CONFIGS[fmt][0], "rb") as f:
        return tomllib.load(f)


def runtime_plugin(doc, fmt=FORMAT):
    return doc["plugins"][EXAMPLE_CONFIGS[fmt][2]]


def example_runtimes(doc, fmt=FORMAT):
    return runtime_plugin(doc, fmt)["containerd"]["runtimes"]


class ExampleContainerd(Containerd):
    """A private containerd whose config file is given, not the harness template."""

    def __init__(self, directory, config_text, **kwargs):
        super().__init__(directory, "examples", **kwargs)
        self._config_text = config_text

    def config_text(self):
        return self._config_text


class Adapted:
    """The example config for this containerd and the example JSONs, made private to this
    test run."""

    def __init__(self, base_dir):
        self.dir = base_dir / "examples"
        self.dir.mkdir(exist_ok=True)
        self.ctd_dir = base_dir / "cx"
        self.runtime_root = self.dir / "runtime-root"
        self.configs = {}   # runtime name -> adapted JSON path
        self.missing = {}   # runtime name -> why it cannot run here
        doc = example_config()
        for name, path in self.adapt_runtimes(doc).items():
            example_runtimes(doc)[name]["options"]["ConfigPath"] = str(path)
        sock = self.ctd_dir / "containerd.sock"
        doc.update({
            "root": str(self.ctd_dir / "root"),
            "state": str(self.ctd_dir / "state"),
            "disabled_plugins": [f"io.containerd.snapshotter.v1.{s}"
                                 for s in ("btrfs", "devmapper", "zfs")],
            "grpc": {"address": str(sock)},
            "ttrpc": {"address": f"{sock}.ttrpc"},
            "debug": {"address": "", "level": "debug"},
            "metrics": {"address": ""},
        })
        plugins = doc.setdefault("plugins", {})
        plugins["io.containerd.internal.v1.opt"] = {"path": str(self.ctd_dir / "opt")}
        runtimes = runtime_plugin(doc)
        runtimes["restrict_oom_score_adj"] = True
        cni_bin = str(self.dir / "cni" / "bin")
        runtimes["cni"] = {"conf_dir": str(self.dir / "cni" / "net.d"),
                           # bin_dir is deprecated in 2.1
                           **({"bin_dirs": [cni_bin]} if FORMAT == 3 else {"bin_dir": cni_bin})}
        plugins.setdefault(CRI, {})["stream_server_address"] = "127.0.0.1"
        self.doc = doc
        self.text = dump_toml(doc)
        assert tomllib.loads(self.text) == doc  # the writer round-trips

    def adapt_runtimes(self, doc):
        out = {}
        for name, runtime in example_runtimes(doc).items():
            example_path = runtime["options"]["ConfigPath"]
            file_name, binary = RUNTIMES[name]
            config = json.loads((EXAMPLES / file_name).read_text())
            config["binary"] = binary
            root = self.runtime_root / name
            root.mkdir(parents=True, exist_ok=True)
            config["root"] = str(root)
            # An example that turns the runtime-call trace on keeps it under the test's
            # temp dir.
            config["trace_dir"] = str(self.dir / "trace")
            path = self.dir / os.path.basename(example_path)
            path.write_text(json.dumps(config, indent=2) + "\n")
            if not os.access(binary, os.X_OK):
                self.missing[name] = f"{binary} is not there"
            elif name == "cshim-crun" and CONTAINERD != "1.6":
                self.missing[name] = CRUN_SPEC_LIMIT
            self.configs[name] = path
            out[name] = path
        return out


@pytest.fixture(scope="module")
def adapted(base_dir):
    return Adapted(base_dir)


@pytest.fixture(scope="module")
def example_containerd(adapted, hugetlb, shim_path_prefix, sanitizer_env):
    instance = ExampleContainerd(adapted.ctd_dir, adapted.text,
                                 path_prefix=shim_path_prefix, extra_env=sanitizer_env)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def ex_ids(request, example_containerd):
    allocator = IdAllocator(request.node.name, example_containerd)
    yield allocator
    allocator.cleanup()


def bundle_config(containerd, cid):
    return json.loads((containerd.bundle(cid) / "cshim.json").read_text())


# --- the example files themselves ------------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(EXAMPLE_CONFIGS))
def test_example_config_declares_the_cshim_runtimes(fmt):
    doc = example_config(fmt)
    assert doc["version"] == EXAMPLE_CONFIGS[fmt][1]
    cri = runtime_plugin(doc, fmt)
    runtimes = example_runtimes(doc, fmt)
    assert set(runtimes) == set(RUNTIMES)
    for name, runtime in runtimes.items():
        assert runtime["runtime_type"] == CSHIM_RUNTIME, name
        assert set(runtime["options"]) == {"ConfigPath"}, name
        assert runtime["options"]["ConfigPath"].startswith("/etc/cshim/"), name
    assert cri["containerd"]["default_runtime_name"] in runtimes
    assert "disable" not in cri and not doc.get("disabled_plugins")
    # Both files offer the same runtimes with the same files.
    assert runtimes == example_runtimes(example_config(2), 2)


def test_example_jsons_name_their_runtime():
    # crun is probed (`--version`: its build line says whether it has CRIU); runc and
    # youki name their profile, which spares every new shim the probe.
    expected = {"cshim-runc.json": ("runc", "runc"), "cshim-crun.json": ("crun", "auto"),
                "cshim-youki.json": ("/usr/local/bin/youki", "youki")}
    for file_name, (binary, profile) in expected.items():
        config = json.loads((EXAMPLES / file_name).read_text())
        assert config["binary"].endswith(binary), file_name
        assert config["profile"] == profile, file_name
    roots = {json.loads((EXAMPLES / f).read_text())["root"] for f, _ in RUNTIMES.values()}
    assert len(roots) == len(RUNTIMES), "each runtime keeps its state under its own root"


# --- containerd with the example config --------------------------------------------------

def plugin_ok(plugins, kind, name):
    rows = [line.split() for line in plugins.splitlines() if line.split()[:2] == [kind, name]]
    return bool(rows) and rows[0][-1] == "ok"


def test_containerd_loads_example_config_with_cri(example_containerd, adapted):
    plugins = example_containerd.ctr("plugins", "ls").stdout
    assert plugin_ok(plugins, "io.containerd.grpc.v1", "cri"), plugins
    default = runtime_plugin(example_config())["containerd"]["default_runtime_name"]
    if FORMAT == 3:
        assert plugin_ok(plugins, "io.containerd.cri.v1", "runtime"), plugins
        check_logged_runtimes_v3(example_containerd, adapted, default)
        return
    # The CRI plugin logs the configuration it parsed: every runtime with its options.
    started = wait_until(lambda: example_containerd.log_tail(400, matching=["Start cri plugin"]),
                         what="the CRI plugin's start line")
    assert f"DefaultRuntimeName:{default} " in started
    for name, path in adapted.configs.items():
        entry = re.search(re.escape(name) + r":\{Type:(\S+) .*?Options:map\[ConfigPath:(\S+?)\]",
                          started)
        assert entry, f"{name} not in:\n{started}"
        assert entry.group(1) == CSHIM_RUNTIME
        assert entry.group(2) == str(path)


def check_logged_runtimes_v3(example_containerd, adapted, default):
    """2.x's runtime plugin logs its parsed configuration as JSON ("starting cri plugin")."""
    line = wait_until(lambda: example_containerd.log_tail(400, matching=["starting cri plugin"]),
                      what="the CRI runtime plugin's start line")
    quoted = re.search(r' config=("(?:[^"\\]|\\.)*")', line)
    assert quoted, line
    config = json.loads(json.loads(quoted.group(1)))
    assert config["containerd"]["defaultRuntimeName"] == default
    runtimes = config["containerd"]["runtimes"]
    for name, path in adapted.configs.items():
        assert runtimes[name]["runtimeType"] == CSHIM_RUNTIME, runtimes[name]
        assert runtimes[name]["options"]["ConfigPath"] == str(path), runtimes[name]


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_example_runtime_runs_a_container(example_containerd, adapted, rootfs, ex_ids, name):
    if name in adapted.missing:
        pytest.skip(f"{name}: {adapted.missing[name]} (test/fakes/fake-youki stands in for "
                    "youki once it exists)" if name == "cshim-youki"
                    else f"{name}: {adapted.missing[name]}")
    config = adapted.configs[name]
    args = ["--runtime", CSHIM_RUNTIME, "--runtime-config-path", config]
    ctr = example_containerd.ctr

    cid = ex_ids.new()
    result = ctr("run", "--rm", *args, "--rootfs", rootfs, cid,
                 "/bin/sh", "-c", "echo hello from $0; exit 3", name,
                 check=False, timeout=RUN_TIMEOUT)
    assert (result.returncode, result.stdout) == (3, f"hello from {name}\n"), describe(result)

    # The example's settings reached the shim: it keeps what it applied in the bundle.
    cid = ex_ids.new()
    ctr("run", "-d", *args, "--rootfs", rootfs, cid, "/bin/sleep", "1000",
        timeout=RUN_TIMEOUT)
    wanted = json.loads(config.read_text())
    applied = bundle_config(example_containerd, cid)
    for key in ("binary", "root", "profile", "timeout_ms", "io_policy"):
        assert applied[key] == wanted[key], (key, applied)
    assert (adapted.runtime_root / name / NAMESPACE / cid).exists()
    exec_result = ctr("task", "exec", "--exec-id", "probe", cid, "/bin/echo", "exec ok",
                      timeout=RUN_TIMEOUT)
    assert exec_result.stdout == "exec ok\n"
    example_containerd.remove_container(cid)


def test_unknown_key_fails_create(example_containerd, adapted, rootfs, ex_ids, tmp_path):
    config = json.loads(adapted.configs["cshim-runc"].read_text())
    config["no_such_key"] = True
    path = tmp_path / "unknown-key.json"
    path.write_text(json.dumps(config) + "\n")
    cid = ex_ids.new()

    result = example_containerd.ctr("run", "--rm", "--runtime", CSHIM_RUNTIME,
                                    "--runtime-config-path", path, "--rootfs", rootfs, cid,
                                    "/bin/true", check=False, timeout=RUN_TIMEOUT)

    assert result.returncode != 0, describe(result)
    assert "unknown key `no_such_key`" in result.stderr, describe(result)
    assert str(path) in result.stderr, describe(result)
    if FORMAT == 2:  # 2.x clients no longer print the error class
        assert "invalid argument" in result.stderr, describe(result)
    # Nothing is left running for it.
    wait_until(lambda: not pids_with_args("-id", cid), what=f"no shim left for {cid}")
    assert cid not in example_containerd.tasks()

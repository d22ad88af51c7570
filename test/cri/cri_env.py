"""A private containerd with its CRI plugin enabled and cshim runtime handlers, for each
containerd version of the matrix, plus a small CRI client. Reuses test/e2e's helpers."""

import io
import json
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "test" / "e2e"))

from cshim_e2e import (Containerd, build_oci_archive, config_common,  # noqa: E402
                       config_format, pids_with_args, process_argv, shim_binary)

STUBS = REPO / "build" / "cri-api"
NAMESPACE = "k8s.io"
PAUSE_REF = "localhost/cshim-cri/pause:1"
APP_REF = "localhost/cshim-cri/busybox:1"
CRI_TIMEOUT = 60

# label -> (containerd build of the e2e matrix, crun usable, shim sandboxer)
VERSIONS = {
    "1.6": ("1.6", True, False),
    "1.7": ("1.7", False, False),
    "2.1": ("2.x", False, False),
    "2.1-shim": ("2.x", False, True),
}
CRUN_REASON = ("Debian 12's crun 1.8.1 refuses the OCI spec version containerd 1.7+ writes "
               "(\"unknown version specified\")")

# Besides CRI's own, plugins these tests never use.
UNUSED_PLUGINS = ("io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.aufs")

RUNTIME_V2 = """
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
      runtime_type = "io.containerd.cshim.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
        ConfigPath = "{config}"
"""

CONFIG_V2 = """\
version = 2
{common}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{dir}/cni/bin"
    conf_dir = "{dir}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "cshim-runc"
{runtimes}"""

RUNTIME_V3 = """
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.{name}]
      runtime_type = "io.containerd.cshim.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.{name}.options]
        ConfigPath = "{config}"
"""

# With the shim sandboxer, containerd 2.1 hands every task the sandbox's task API endpoint
# inside containerd.runc.v1.Options (TaskApiAddress), so the runtime type must be runc's:
# cshim then runs as containerd-shim-runc-v2 (first on containerd's PATH) and takes the
# OCI runtime from BinaryName.
RUNTIME_V3_SHIM = """
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.{name}]
      runtime_type = "io.containerd.runc.v2"
      sandboxer = "shim"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.{name}.options]
        BinaryName = "{binary}"
        Root = "{root}"
"""

# containerd 2.1 (and 2.2) dereference a nil spec when the shim sandboxer creates a
# host-network pod (fixed upstream in 2.3, "handle nil spec for hostNetwork containers"), so
# shim-sandboxer pods use a network namespace of their own. This CNI plugin fills it with
# nothing: it reports a documentation address (192.0.2.0/24) for eth0, which the CRI plugin
# requires, and configures nothing. It also stands in for the "loopback" plugin.
FAKE_CNI = """\
#!/bin/sh
cat >/dev/null
case "$CNI_COMMAND/$CNI_IFNAME" in
ADD/lo) printf '{"cniVersion":"1.0.0","interfaces":[{"name":"lo","sandbox":"%s"}]}\\n' \\
  "$CNI_NETNS" ;;
ADD/*) printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],%s}\\n' \\
  "$CNI_IFNAME" "$CNI_NETNS" '"ips":[{"address":"192.0.2.2/24","interface":0}]' ;;
VERSION/*) printf '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}\\n' ;;
esac
exit 0
"""
FAKE_CNI_CONF = """\
{"cniVersion": "1.0.0", "name": "cshim-cri-test", "plugins": [{"type": "cshim-cri-noop"}]}
"""

CONFIG_V3 = """\
version = 3
{common}
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{pause}"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{dir}/cni/bin"]
    conf_dir = "{dir}/cni/conf"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "cshim-runc"
{runtimes}"""


def load_stubs():
    """The generated CRI stubs (make cri runs scripts/cri-stubs)."""
    if not (STUBS / "api_pb2_grpc.py").exists():
        raise RuntimeError(f"no CRI stubs in {STUBS}: run `make cri`")
    sys.path.insert(0, str(STUBS))
    import api_pb2  # noqa: E402
    import api_pb2_grpc  # noqa: E402
    return api_pb2, api_pb2_grpc


class CriContainerd(Containerd):
    """Containerd of one version of the matrix with the CRI plugin on: handlers
    cshim-runc and cshim-crun, each with its cshim JSON config."""

    def __init__(self, directory, version, handlers, path_prefix, extra_env=None):
        build, _, self.shim_sandboxer = VERSIONS[version]
        super().__init__(directory, f"cri-{version}", path_prefix, extra_env, NAMESPACE,
                         build=build)
        self.handlers = handlers  # name -> {config: cshim JSON config, binary, root}

    def config_text(self):
        fmt = dict(dir=self.dir, sock=self.sock)
        common = config_common(self.dir, self.sock, UNUSED_PLUGINS)
        if config_format(self.build) == 2:
            runtimes = "".join(RUNTIME_V2.format(name=n, **h) for n, h in self.handlers.items())
            return CONFIG_V2.format(common=common, pause=PAUSE_REF, runtimes=runtimes, **fmt)
        template = RUNTIME_V3_SHIM if self.shim_sandboxer else RUNTIME_V3
        runtimes = "".join(template.format(name=n, **h) for n, h in self.handlers.items())
        return CONFIG_V3.format(common=common, pause=PAUSE_REF, runtimes=runtimes, **fmt)

    def start(self, timeout=60.0):
        for sub in ("cni/bin", "cni/conf"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        if self.shim_sandboxer:
            alias = self.dir / "bin/containerd-shim-runc-v2"
            alias.parent.mkdir(exist_ok=True)
            alias.symlink_to(shim_binary())
            self.path_prefix.insert(0, str(alias.parent))
            plugin = self.dir / "cni/bin/cshim-cri-noop"
            plugin.write_text(FAKE_CNI)
            plugin.chmod(0o755)
            (self.dir / "cni/bin/loopback").symlink_to(plugin.name)
            (self.dir / "cni/conf/10-cshim-cri.conflist").write_text(FAKE_CNI_CONF)
        return super().start(timeout)

    def shims(self):
        """{pid: -id argument} of the shim daemons serving this containerd."""
        found = {}
        for pid in pids_with_args("-address", self.sock):
            argv = process_argv(pid) or []
            if "start" in argv or "delete" in argv:
                continue
            found[pid] = argv[argv.index("-id") + 1] if "-id" in argv else None
        return found


def _rewrite_config(archive_path, cmd):
    """Give the single-manifest OCI archive written by build_oci_archive another image
    config Cmd (descriptors are rehashed on the way)."""
    import hashlib
    with tarfile.open(archive_path) as src:
        members = {m.name: src.extractfile(m).read() for m in src.getmembers() if m.isfile()}
    index = json.loads(members["index.json"])
    mdesc = index["manifests"][0]
    manifest = json.loads(members["blobs/sha256/" + mdesc["digest"].split(":")[1]])
    config = json.loads(members["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])
    config["config"]["Cmd"] = cmd

    def put(data):
        digest = hashlib.sha256(data).hexdigest()
        members["blobs/sha256/" + digest] = data
        return f"sha256:{digest}", len(data)

    manifest["config"]["digest"], manifest["config"]["size"] = put(json.dumps(config).encode())
    mdesc["digest"], mdesc["size"] = put(json.dumps(manifest).encode())
    members["index.json"] = json.dumps(index).encode()
    with tarfile.open(archive_path, "w") as dst:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


def import_images(containerd, rootfs, workdir):
    """The busybox image for app containers and a pause-equivalent from the same
    rootfs whose command sleeps until it is killed."""
    app = build_oci_archive(rootfs, APP_REF, workdir / "app.tar")
    pause = build_oci_archive(rootfs, PAUSE_REF, workdir / "pause.tar")
    _rewrite_config(pause, ["/bin/sleep", "2147483647"])
    for archive in (app, pause):
        containerd.ctr("images", "import", archive, timeout=120)


def write_handler_configs(workdir, runtimes):
    """cshim JSON configs (see README "The JSON config file") per handler."""
    handlers = {}
    for name, binary in runtimes.items():
        root = workdir / "runtime-root" / name
        root.mkdir(parents=True, exist_ok=True)
        path = workdir / f"cshim-{name}.json"
        path.write_text(json.dumps({"binary": binary, "root": str(root)}) + "\n")
        handlers[f"cshim-{name}"] = dict(config=path, binary=binary, root=root)
    return handlers


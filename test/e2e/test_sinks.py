"""Output sinks that fail must never kill or block the container: a file:// log on a full
disk, a FIFO whose reader went away, a binary:// logger that died. The shim keeps draining
the container's pipes, discards while the sink fails, logs how much, and writes again once
the sink works (a file with room again, a FIFO that has a reader again)."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from cshim_e2e import (RUN_TIMEOUT, describe, exit_status, pid_alive, read_until, run,
                       run_detached, stop_popen, wait_until)

pytestmark = pytest.mark.cshim_only  # the stock shim lets the writer die or block

LOGGERS = Path(__file__).resolve().parent / "loggers"
CHUNK = 64 << 10


def shared_mount(directory):
    """A host directory the container sees as /shared: the test's way to talk to it."""
    return ["--mount", f"type=bind,src={directory},dst=/shared,options=rbind:rw"]


def wait_for_go_then(script):
    """A container script that starts only once the test creates /shared/go."""
    return f"until [ -e /shared/go ]; do sleep 0.05; done; {script}"


def shim_line(containerd, *needles, timeout=15):
    """The first line of the shim's log (copied into containerd's) holding every needle."""
    def find():
        for line in containerd.log_tail(100000, matching=[needles[0]]).splitlines():
            if all(n in line for n in needles):
                return line
        return None
    return wait_until(find, timeout=timeout, what=f"a shim log line with {needles}")


def discarded(line):
    match = re.search(r"(\d+) bytes were discarded", line)
    assert match, line
    return int(match.group(1))


def read_rc(shared):
    """The exit code the container's script recorded for its writer."""
    wait_until(lambda: (shared / "rc").exists() and (shared / "rc").read_text().endswith("\n"),
               timeout=RUN_TIMEOUT, what="the writer to finish")
    return int((shared / "rc").read_text())


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs: a disk that fills up."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "cshim-e2e-small", str(mnt)])
    yield mnt
    run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def shared(tmp_path):
    path = tmp_path / "shared"
    path.mkdir()
    return path


def test_full_disk_discards_and_the_writer_exits_0(containerd, ctr, runtime, rootfs, cid,
                                                   small_tmpfs):
    log = small_tmpfs / "out.log"
    total = 32 * CHUNK  # twice the disk

    result = ctr("run", "--rm", "--log-uri", f"file://{log}", *runtime.args, "--rootfs", rootfs,
                 cid, "/bin/dd", "if=/dev/zero", f"bs={CHUNK}", "count=32", check=False,
                 timeout=RUN_TIMEOUT)

    assert result.returncode == 0, describe(result)  # not 141: no SIGPIPE
    shim_line(containerd, f"stdout of {cid}: writing to `{log}` failed: No space left on device")
    end = shim_line(containerd, f"stdout of {cid} ended while `{log}` still failed")
    written = log.read_bytes().count(b"\0")  # stdout's bytes; dd's report on stderr has none
    assert 0 < written < total
    assert written + discarded(end) == total, end


def test_full_disk_recovers_when_there_is_room(containerd, ctr, runtime, rootfs, cid,
                                               small_tmpfs, shared, events):
    log = small_tmpfs / "out.log"
    script = (f"dd if=/dev/zero bs={CHUNK} count=32 2>/dev/null; "
              "until [ -e /shared/room ]; do sleep 0.05; done; echo after-recovery")
    run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid, "/bin/sh", "-c", script,
                 flags=["--log-uri", f"file://{log}", *shared_mount(shared)])

    shim_line(containerd, f"stdout of {cid}: writing to `{log}` failed: No space left on device")
    os.truncate(log, 0)  # the shim's fd stays open: only a truncate gives the room back
    (shared / "room").touch()

    wait_until(lambda: b"after-recovery\n" in log.read_bytes(), timeout=RUN_TIMEOUT,
               what="the line written after the disk had room again")
    back = shim_line(containerd, f"stdout of {cid}: `{log}` takes output again")
    assert 0 < discarded(back) < 32 * CHUNK, back
    assert exit_status(events.wait_topic(cid, "/tasks/exit")) == 0


def test_fifo_reader_gone_does_not_block_the_writer(containerd, ctr, runtime, rootfs, cid,
                                                    shared, events):
    # ctr run -d exits once the task started: nobody reads the stdout FIFO any more. Far more
    # than the FIFO and the pipe hold: a shim that kept the FIFO's bytes would stall dd.
    script = wait_for_go_then(f"dd if=/dev/zero bs={CHUNK} count=64; echo $? >/shared/rc")
    run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid, "/bin/sh", "-c", script,
                 flags=shared_mount(shared))
    (shared / "go").touch()

    assert read_rc(shared) == 0
    line = shim_line(containerd, f"stdout of {cid}: writing to ", "failed: Broken pipe")
    assert "until a reader opens it again" in line
    assert exit_status(events.wait_topic(cid, "/tasks/exit")) == 0
    assert ctr("task", "ls").returncode == 0  # the shim still serves
    ctr("task", "rm", cid, timeout=RUN_TIMEOUT)


def test_fifo_gets_output_again_when_a_reader_attaches(containerd, ctr, runtime, rootfs, cid,
                                                       shared):
    script = wait_for_go_then(
        f"dd if=/dev/zero bs={CHUNK} count=64 2>/dev/null; echo $? >/shared/rc; "
        "while [ ! -e /shared/stop ]; do echo attached-marker; sleep 0.05; done")
    run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid, "/bin/sh", "-c", script,
                 flags=shared_mount(shared))
    (shared / "go").touch()
    assert read_rc(shared) == 0
    shim_line(containerd, f"stdout of {cid}: writing to ", "failed: Broken pipe")

    attach = containerd.popen(["task", "attach", cid], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        # the FIFO may still hold bytes the first reader left: read up to the marker
        seen = read_until(attach.stdout, lambda d: b"attached-marker\n" in d)
        assert b"attached-marker\n" in seen, f"no marker from the attached reader: {seen[-200:]!r}"
        shim_line(containerd, f"stdout of {cid}: ", "takes output again")
        (shared / "stop").touch()
        # ctr task attach returns the task's exit status once it exited
        assert attach.wait(timeout=RUN_TIMEOUT) == 0
    finally:
        (shared / "stop").touch()
        stop_popen(attach)


def test_dead_logging_binary_does_not_kill_the_writer(containerd, ctr, runtime, rootfs, cid,
                                                      shared, tmp_path, events):
    record = tmp_path / "logger"
    uri = f"binary://{LOGGERS / 'dying-logger'}?dir={record}"
    script = wait_for_go_then(f"dd if=/dev/zero bs={CHUNK} count=64; echo $? >/shared/rc")
    run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid, "/bin/sh", "-c", script,
                 flags=["--log-uri", uri, *shared_mount(shared)])
    (record / "die").touch()
    wait_until(lambda: (record / "exited").exists(), timeout=RUN_TIMEOUT,
               what="the logging binary to exit")
    pid = int((record / "pid").read_text())
    # a zombie has closed its files already
    wait_until(lambda: not pid_alive(pid), timeout=RUN_TIMEOUT,
               what="the logging binary's pipes to close")
    (shared / "go").touch()

    assert read_rc(shared) == 0  # not 141: the container never had the logger's pipe
    line = shim_line(containerd, f"stdout of {cid}: writing to `binary://",
                     "failed: Broken pipe; discarding the rest of the output")
    assert exit_status(events.wait_topic(cid, "/tasks/exit")) == 0, line
    end = shim_line(containerd, f"stdout of {cid} ended while `binary://")
    assert discarded(end) == 64 * CHUNK, end

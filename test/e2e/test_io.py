"""Container stdio through ctr: terminals (run -t, exec -t, resize), stdin
data and EOF, file:// and binary:// log URIs, and a flooding container that
must not stall the other containers of its grouped shim."""

import fcntl
import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from cshim_e2e import (RUN_TIMEOUT, PtyProcess, describe, parent_pid, process_argv,
                       read_until, run_detached, stop_popen, wait_task_status, wait_until)

pytestmark = pytest.mark.core

LOGGER = Path(__file__).resolve().parent / "loggers" / "record-logger"
GROUP_ANNOTATION = "io.containerd.runc.v2.group"
STDIN_BYTES = 8 << 20
PROMPT_BOUND = 5.0  # seconds a grouped sibling of a flooding container may take


# --- terminals -----------------------------------------------------------------------

def wait_terminal_size(session, rows, cols, timeout=10.0):
    """Run `stty size` until it prints rows and cols: a size set from outside
    travels ctr -> containerd -> shim (ResizePty) asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        session.send("stty size\n")
        # busybox's stty fails while the terminal has no size (0 0) yet
        answer = session.expect(rb"\n(?:(\d+) (\d+)|stty: [^\r\n]*)\r*\n")
        if answer[1] and (int(answer[1]), int(answer[2])) == (rows, cols):
            return
        assert time.monotonic() < deadline, \
            f"stty size still says {answer[0]!r}, expected {rows} {cols}"
        time.sleep(0.1)


def check_shell_terminal(session, rows, cols):
    """Talk to an interactive busybox sh on the other side of ctr: input is
    echoed, commands run, the terminal gets the outer size and follows a resize."""
    session.expect(rb"# ", timeout=15)  # the prompt
    # first the size ctr sets at start; its SIGWINCH would have the shell redraw
    # the line being typed
    wait_terminal_size(session, rows, cols)
    session.send("echo hello-$((1+2))\n")
    session.expect(rb"echo hello-\$\(\(1\+2\)\)")  # the terminal echoed our input
    session.expect(rb"\nhello-3\r*\n")
    session.send("tty\n")
    session.expect(rb"\n/dev/pts/\d+\r*\n")

    session.resize(rows + 11, cols + 23)
    wait_terminal_size(session, rows + 11, cols + 23)
    session.send("exit\n")


def test_run_with_terminal(containerd, runtime, rootfs, cid):
    session = PtyProcess(containerd.ctr_argv("run", "-t", "--rm", *runtime.args,
                                             "--rootfs", rootfs, cid, "/bin/sh"),
                         rows=30, cols=100)
    try:
        check_shell_terminal(session, 30, 100)
        assert session.wait(timeout=20) == 0, bytes(session.output)
    finally:
        session.close()


def test_exec_with_terminal(containerd, runtime, rootfs, cid):
    run_detached(containerd, runtime.args, ["--rootfs", rootfs], cid, "/bin/sleep", "1000")
    session = PtyProcess(containerd.ctr_argv("task", "exec", "-t", "--exec-id", "tty", cid,
                                             "/bin/sh"),
                         rows=27, cols=91)
    try:
        check_shell_terminal(session, 27, 91)
        assert session.wait(timeout=20) == 0, bytes(session.output)
    finally:
        session.close()
    assert wait_task_status(containerd, cid, "RUNNING")


# --- stdin -----------------------------------------------------------------------------

def test_stdin_megabytes_roundtrip(containerd, runtime, rootfs, cid):
    # Far more than the pipes hold: ctr reads its EOF only after the task has
    # started, so it forwards it (CloseIO) and cat ends.
    data = os.urandom(STDIN_BYTES)

    result = containerd.ctr_bytes("run", "--rm", *runtime.args, "--rootfs", rootfs,
                                  cid, "/bin/cat", input=data, timeout=90)

    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert len(result.stdout) == len(data)
    assert hashlib.sha256(result.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


F_GETPIPE_SZ = 1032  # linux/fcntl.h


def pipe_size(path):
    """The capacity of the pipe behind path (a FIFO, or /proc/<pid>/fd/<n> of a pipe end)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return fcntl.fcntl(fd, F_GETPIPE_SZ)
    finally:
        os.close(fd)


def test_busy_stdout_gets_bigger_pipes(containerd, runtime, rootfs, cid):
    # A stream that fills its 64 KiB pipe gets 1 MiB pipes, the container's and ctr's FIFO;
    # a quiet one (stderr) keeps the default. Every byte still arrives, in order.
    total = 4 << 20
    script = f"dd if=/dev/zero bs=1M count={total >> 20} 2>/dev/null; echo done; exec sleep 1000"
    proc = containerd.popen(["run", "--rm", *runtime.args, "--rootfs", rootfs, cid,
                             "/bin/sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        got = read_until(proc.stdout, lambda d: len(d) >= total + 5)
        assert len(got) == total + 5, f"{len(got)} of {total + 5} bytes arrived"
        assert got == bytes(total) + b"done\n"

        fifos = {s: list(Path("/run/containerd/fifo").glob(f"*/{cid}-{s}"))
                 for s in ("stdout", "stderr")}
        assert all(len(f) == 1 for f in fifos.values()), fifos
        assert pipe_size(fifos["stdout"][0]) == 1 << 20
        assert pipe_size(fifos["stderr"][0]) < 1 << 20
        pid = wait_task_status(containerd, cid, "RUNNING")
        assert pipe_size(f"/proc/{pid}/fd/1") == 1 << 20  # the container's end
        assert pipe_size(f"/proc/{pid}/fd/2") < 1 << 20
    finally:
        containerd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
        try:
            proc.wait(timeout=RUN_TIMEOUT)
        finally:
            stop_popen(proc)


def test_stdin_eof_reaches_container(containerd, runtime, rootfs, cid):
    proc = containerd.popen(["run", "--rm", *runtime.args, "--rootfs", rootfs, cid,
                             "/bin/sh", "-c", "cat >/dev/null; echo done"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        # ctr forwards stdin EOF (CloseIO) only once the task is started: an EOF
        # it reads earlier is lost, so close our end only after that.
        wait_task_status(containerd, cid, "RUNNING")
        stdout, stderr = proc.communicate(input=b"some input\nwithout a final newline",
                                          timeout=RUN_TIMEOUT)
    finally:
        stop_popen(proc)

    assert proc.returncode == 0, stderr.decode(errors="replace")
    assert stdout == b"done\n"


# --- log URIs ----------------------------------------------------------------------------

BOTH_STREAMS = "echo to-stdout; echo to-stderr >&2"


def test_file_log_uri_creates_dirs_and_gets_both_streams(ctr, runtime, rootfs, cid,
                                                         tmp_path):
    log = tmp_path / "sub" / "dir" / "out.log"

    result = ctr("run", "--rm", "--log-uri", f"file://{log}", *runtime.args,
                 "--rootfs", rootfs, cid, "/bin/sh", "-c", BOTH_STREAMS, timeout=RUN_TIMEOUT)

    assert result.stdout == "", describe(result)
    wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 2,
               timeout=10, what=f"two lines in {log}")
    assert sorted(log.read_text().splitlines()) == ["to-stderr", "to-stdout"]


def parse_env(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_binary_log_uri(containerd, ctr, runtime, rootfs, cid, tmp_path):
    record = tmp_path / "logger"

    ctr("run", "--rm", "--log-uri", f"binary://{LOGGER}?dir={record}", *runtime.args,
        "--rootfs", rootfs, cid, "/bin/sh", "-c", BOTH_STREAMS, timeout=RUN_TIMEOUT)

    wait_until(lambda: (record / "done").exists(), timeout=15,
               what="the logger to see EOF on both streams")
    assert (record / "stdout").read_text() == "to-stdout\n"
    assert (record / "stderr").read_text() == "to-stderr\n"
    assert (record / "args").read_text().splitlines() == [str(LOGGER), "dir", str(record)]
    env = parse_env((record / "env").read_text())
    assert env.get("CONTAINER_ID") == cid, env
    assert env.get("CONTAINER_NAMESPACE") == containerd.namespace, env
    # only those two are given; /bin/sh adds PWD itself
    assert set(env) <= {"CONTAINER_ID", "CONTAINER_NAMESPACE", "PWD"}, \
        f"the logger inherited the shim's environment: {sorted(env)}"


# --- back-pressure -------------------------------------------------------------------------

def wchan(pid):
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


def test_flooding_container_does_not_stall_its_grouped_shim(containerd, ctr, runtime,
                                                             rootfs, ids):
    group = ["--annotation", f"{GROUP_ANNOTATION}=flood-{os.urandom(4).hex()}"]
    flood, sibling = ids.new(), ids.new()
    # ctr run -d exits: nobody reads the flooding container's output any more
    flood_pid = run_detached(containerd, runtime.args, ["--rootfs", rootfs], flood,
                             "/bin/yes", "y" * 200, flags=group)
    try:  # give its output time to back up (the writer blocks once pipes are full)
        wait_until(lambda: wchan(flood_pid) == "pipe_write", timeout=1,
                   what="the flooding container blocked on its pipe")
    except AssertionError:
        pass  # a shim that discards the output never blocks the writer: fine too

    started = time.monotonic()
    proc = containerd.popen(["run", "--rm", *group, *runtime.args, "--rootfs", rootfs,
                             sibling, "/bin/sh", "-c", "echo line-from-sibling; exec sleep 60"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        first_line = read_until(proc.stdout, lambda d: b"\n" in d, PROMPT_BOUND)
        assert first_line == b"line-from-sibling\n", \
            f"after {time.monotonic() - started:.1f}s the sibling printed {first_line!r}"

        # its output can come before its Start is answered (the runtime's `start` reaped):
        # until then the task still reads CREATED
        wait_task_status(containerd, sibling, "RUNNING", timeout=PROMPT_BOUND)
        before = time.monotonic()
        tasks = containerd.tasks()
        listed = ctr("task", "ps", flood, timeout=PROMPT_BOUND)
        assert time.monotonic() - before < PROMPT_BOUND, "task ls / ps were slow"
        assert str(flood_pid) in listed.stdout, describe(listed)
        assert tasks[flood][1] == "RUNNING" and tasks[sibling][1] == "RUNNING", tasks

        shim = parent_pid(flood_pid)
        assert parent_pid(tasks[sibling][0]) == shim, "the two containers have different shims"
        assert "-id" in (process_argv(shim) or []), f"parent {shim} is not a shim"

        ctr("task", "kill", "-s", "SIGKILL", sibling)
        assert proc.wait(timeout=15) == 137
    finally:
        if proc.poll() is None:
            ctr("task", "kill", "-s", "SIGKILL", sibling, check=False)
        proc.stdout.close()
    ctr("task", "kill", "-s", "SIGKILL", flood)
    wait_task_status(containerd, flood, "STOPPED")
    ctr("task", "rm", flood, timeout=PROMPT_BOUND)

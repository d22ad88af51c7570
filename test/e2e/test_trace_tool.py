"""scripts/cshim-trace against fixture traces: no containerd, no root."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "scripts" / "cshim-trace"
ARGV = ["runc", "--root", "/run/containerd/runc/default", "--log", "/b/log.json",
        "--log-format", "json"]


def entry(verb, start, duration, *, id_="web", exit_code=0, signal=0, timed_out=False,
          exec_errno=0, error=None, stderr=None, extra=()):
    """A trace line as src/runtime/trace.c writes it (start is seconds after 12:00:00)."""
    sec, frac = divmod(round(start * 1000), 1000)
    return {
        "time": f"2024-05-01T12:00:{sec:02d}.{frac:03d}000000Z",
        "id": id_, "namespace": "default", "verb": verb,
        "argv": ARGV + [verb, *extra, id_], "cwd": "/b",
        "env": {"added": {}, "removed": ["NOTIFY_SOCKET"]},
        "start": f"2024-05-01T12:00:{sec:02d}.{frac:03d}000000Z",
        "duration_ms": duration, "pid": 100, "exit_code": exit_code, "signal": signal,
        "timed_out": timed_out, "exec_errno": exec_errno, "stderr": stderr,
        "stderr_bytes": len(stderr or ""), "error": error,
    }


FIXTURE = [
    entry("create", 0.0, 40, extra=["--bundle", "/b", "--pid-file", "/b/init.pid"]),
    entry("start", 0.05, 10),
    entry("exec", 1.5, 20, exit_code=1,
          error="exec failed: exec: \"nope\": executable file not found in $PATH"),
    entry("kill", 3.0, 2000, exit_code=137, signal=9, timed_out=True,
          error="kill failed: runtime runc did not finish within 2000 ms (killed)"),
    entry("state", 5.25, 5, exit_code=1, stderr="first\nunable to read state\n"),
    entry("delete", 6.0, 3, exit_code=127, exec_errno=2,
          error="delete failed: exec /opt/runc: No such file or directory"),
]


def write_trace(path, entries, tail=""):
    path.write_text("".join(json.dumps(e) + "\n" for e in entries) + tail)
    return path


def run_tool(*args, stdin=None):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def trace(tmp_path):
    # The last line is cut, as after a crash mid-write.
    return write_trace(tmp_path / "web.jsonl", FIXTURE, tail='{"time":"2024-05-01T12:00:07')


def timeline_rows(stdout):
    """The call rows: lines with a relative start, split around the bar."""
    rows = []
    for line in stdout.splitlines():
        if line.lstrip().startswith(("+", "-")) and "|" in line:
            left, _bar, right = line.split("|")
            rows.append((left.split(), right.split(None, 1)))
    return rows


def test_help():
    r = run_tool("--help")
    assert r.returncode == 0
    assert "usage: cshim-trace" in r.stdout
    for flag in ("--json", "--verb", "--namespace", "--trace-dir"):
        assert flag in r.stdout
    assert os.access(TOOL, os.X_OK)


def test_timeline(trace):
    r = run_tool(trace)
    assert r.returncode == 0, r.stderr
    assert "truncated last line" in r.stderr
    assert r.stdout.startswith("6 runtime call(s), first at 2024-05-01T12:00:00.000000000Z")
    rows = timeline_rows(r.stdout)
    assert [right[0] for _, right in rows] == ["create", "start", "exec", "kill", "state",
                                               "delete"]
    assert [left[0] for left, _ in rows] == ["+0.000s", "+0.050s", "+1.500s", "+3.000s",
                                             "+5.250s", "+6.000s"]
    assert [int(left[1]) for left, _ in rows] == [40, 10, 20, 2000, 5, 3]
    status = {right[0]: right[1].strip() for _, right in rows}
    assert status == {"create": "ok", "start": "ok", "exec": "exit 1",
                      "kill": "timeout (killed, signal 9)", "state": "exit 1",
                      "delete": "exec failed (ENOENT)"}
    assert "error: kill failed: runtime runc did not finish within 2000 ms (killed)" in r.stdout
    assert "error: delete failed: exec /opt/runc: No such file or directory" in r.stdout
    # Without an error, a failed call shows its stderr's last line.
    assert "stderr: unable to read state" in r.stdout


def test_duration_bar_scales_to_longest(trace):
    lines = [line for line in run_tool(trace).stdout.splitlines() if "|" in line]
    bars = {line.split("|")[2].split()[0]: line.split("|")[1] for line in lines}
    assert bars["kill"] == "#" * 20
    assert bars["create"].strip() == "#"  # short but never invisible
    assert len({len(b) for b in bars.values()}) == 1


def test_verb_filter(trace):
    r = run_tool(trace, "--verb", "create")
    assert [right[0] for _, right in timeline_rows(r.stdout)] == ["create"]
    r = run_tool(trace, "--verb", "kill,delete", "--verb", "start")
    assert [right[0] for _, right in timeline_rows(r.stdout)] == ["start", "kill", "delete"]
    r = run_tool(trace, "--failed")
    assert [right[0] for _, right in timeline_rows(r.stdout)] == ["exec", "kill", "state",
                                                                  "delete"]


def test_json_passthrough(trace):
    r = run_tool(trace, "--json", "--verb", "create,kill")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert [json.loads(line)["verb"] for line in lines] == ["create", "kill"]
    original = trace.read_text().splitlines()
    assert all(line in original for line in lines)  # passed through as written


def test_verbose_shows_argv_and_env(trace):
    r = run_tool(trace, "-v", "--verb", "create")
    assert "argv: runc --root /run/containerd/runc/default" in r.stdout
    assert "--pid-file /b/init.pid web" in r.stdout
    assert "env: -NOTIFY_SOCKET" in r.stdout


def test_bundle_pointer(trace, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "cshim-trace").symlink_to(trace)
    r = run_tool(bundle, "--verb", "start")
    assert r.returncode == 0, r.stderr
    assert [right[0] for _, right in timeline_rows(r.stdout)] == ["start"]
    # A plain file naming the trace works as well.
    (bundle / "cshim-trace").unlink()
    (bundle / "cshim-trace").write_text(str(trace) + "\n")
    assert timeline_rows(run_tool(bundle, "--verb", "start").stdout)


def test_container_id_lookup(tmp_path):
    ns_dir = tmp_path / "trace" / "k8s.io"
    ns_dir.mkdir(parents=True)
    write_trace(ns_dir / "web.jsonl", FIXTURE[:2])
    write_trace(ns_dir / "web.jsonl.old", [entry("create", 0.0, 1, id_="web")])
    r = run_tool("--trace-dir", tmp_path / "trace", "-n", "k8s.io", "web")
    assert r.returncode == 0, r.stderr
    assert len(timeline_rows(r.stdout)) == 2
    r = run_tool("--trace-dir", tmp_path / "trace", "-n", "k8s.io", "--old", "web")
    assert len(timeline_rows(r.stdout)) == 3
    r = run_tool("--trace-dir", tmp_path / "trace", "web")  # namespace "default"
    assert r.returncode == 2
    assert "no trace at" in r.stderr and "default" in r.stderr


def test_merges_files_by_start(tmp_path):
    a = write_trace(tmp_path / "a.jsonl", [entry("create", 1.0, 5, id_="a"),
                                           entry("start", 4.0, 5, id_="a")])
    b = write_trace(tmp_path / "b.jsonl", [entry("create", 2.0, 5, id_="b")])
    r = run_tool(a, b)
    rows = timeline_rows(r.stdout)
    # With several containers the id is shown before the verb.
    assert [right[0] for _, right in rows] == ["a", "b", "a"]
    assert [right[1].split()[0] for _, right in rows] == ["create", "create", "start"]
    assert [left[0] for left, _ in rows] == ["+0.000s", "+1.000s", "+3.000s"]


def test_cap_note_and_bad_lines(tmp_path):
    note = {"time": "2024-05-01T12:00:09.000000000Z", "id": "web", "namespace": "default",
            "note": "trace reached its size limit of 16777216 bytes; later runtime calls are "
                    "not recorded"}
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(FIXTURE[0]) + "\nnot json\n\n" + json.dumps(note) + "\n")
    r = run_tool(path)
    assert r.returncode == 0
    assert "line 2 is not a trace entry" in r.stderr
    assert "-- trace reached its size limit" in r.stdout
    assert len(timeline_rows(r.stdout)) == 1


def test_stdin_and_empty(trace):
    r = run_tool("-", stdin=trace.read_text())
    assert len(timeline_rows(r.stdout)) == 6
    r = run_tool("-", "--verb", "pause", stdin=trace.read_text())
    assert r.returncode == 0
    assert "(no runtime calls)" in r.stdout


def test_missing_target(tmp_path):
    r = run_tool(tmp_path / "nope" / "x.jsonl")
    assert r.returncode == 2
    assert "no such file or directory" in r.stderr

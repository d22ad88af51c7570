#!/usr/bin/python3
"""Run the conformance scenarios against the stock shim and cshim.

  conformance.py [-s SCENARIO]... [-r runc|crun]... [-j WORKERS] [--diff] [--table] [--json F]

--diff prints every difference (listed ones marked), --table the Markdown
table of docs/conformance.md, --json writes all recordings. Exit status 1
when an unlisted difference remains.
"""

import argparse
import fnmatch
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402

DIFFERENCES = Path(__file__).resolve().parent / "differences.json"
SHIMS = ("stock", "cshim")
BASE = Path("/tmp")


def load_differences(path=DIFFERENCES):
    """The reviewed list of deliberate differences: every entry needs a reason."""
    entries = json.loads(path.read_text())["differences"]
    for entry in entries:
        missing = {"scenario", "field", "reason"} - set(entry)
        if missing or not entry["reason"].strip():
            raise ValueError(f"differences.json entry {entry} lacks {missing or 'a reason'}")
    return entries


def listed(entry_list, scenario, runtime, field, stock, cshim):
    for e in entry_list:
        if not fnmatch.fnmatchcase(scenario, e["scenario"]):
            continue
        if e.get("runtime", "*") not in ("*", runtime):
            continue
        if not fnmatch.fnmatchcase(field, e["field"]):
            continue
        if "stock" in e and e["stock"] != stock:
            continue
        if "cshim" in e and e["cshim"] != cshim:
            continue
        return e
    return None


class Session:
    """Runs scenarios on a small worker pool; one private base dir per session."""

    def __init__(self, workers=None, base=None):
        self.base = Path(tempfile.mkdtemp(prefix="cshim-conf-", dir=base or BASE))
        self.reports = self.base / "sanitizer"
        self.reports.mkdir()
        self.rootfs = harness.prepare(self.base)
        self.shims = harness.shim_binaries()
        self.workers = workers or int(os.environ.get("CONFORMANCE_WORKERS", "3"))

    def run_one(self, name, shim, runtime):
        run = harness.Run(SCENARIOS[name], shim, self.shims[shim], runtime, self.rootfs,
                          self.base, self.reports)
        return run.execute()

    def run_all(self, names, runtimes):
        jobs = [(n, s, r) for n in names for r in runtimes for s in SHIMS]
        with ThreadPoolExecutor(self.workers) as pool:
            results = pool.map(lambda job: (job, self.run_one(*job)), jobs)
            return dict(results)

    def sanitizer_reports(self):
        return sorted(self.reports.iterdir())

    def close(self):
        import shutil
        shutil.rmtree(self.base, ignore_errors=True)


def outcome(record):
    """A one-cell summary of a recording for the table."""
    if "error" in record:
        return "harness error"
    parts = []
    for step in record["steps"]:
        code = step.get("code")
        if code is None:
            continue
        name = step["step"].split(" ")[0]
        if name in ("wait", "until") and code == "OK":
            parts.append(f"{name} {step.get('exit_status', step.get('status'))}")
        elif code != "OK":
            parts.append(f"{name} {code}")
    return ", ".join(parts) or "all OK"


def compare(results, scenario, runtime, differences, expectations=True):
    stock = results[(scenario, "stock", runtime)]
    cshim = results[(scenario, "cshim", runtime)]
    expect = SCENARIOS[scenario].get("expect") if expectations else None
    if expect:
        # The stock shim is wrong here (see scenarios.py): cshim meets fixed expectations.
        got = harness.flatten(harness.comparable(cshim))
        return [(f"{field} (expected)", value, got.get(field, "<absent>"), None)
                for field, value in expect.items() if got.get(field, "<absent>") != value
                ] + ([("error", None, cshim["error"], None)] if "error" in cshim else []), []
    unlisted, known = [], []
    for field, a, b in harness.diff(stock, cshim):
        entry = listed(differences, scenario, runtime, field, a, b)
        (known if entry else unlisted).append((field, a, b, entry))
    return unlisted, known


def difference_tags(unlisted, limit=6):
    """Short names of what differs: `kill c1:e1 class`, `events`, `files`, `alive`."""
    tags = []
    for field, _a, _b, _entry in unlisted:
        field = field.removesuffix(" (expected)")
        if field.startswith("steps."):
            step, _, key = field[len("steps."):].partition(":")[2].rpartition(".")
            tag = f"{step} {key}"
        else:
            tag = {"bundle_files": "files"}.get(field.split(".")[0].split("[")[0],
                                                 field.split(".")[0].split("[")[0])
        tag = tag.replace("\n", " ").replace("|", "/")
        if tag not in tags:
            tags.append(tag)
    return tags[:limit] + ([f"{len(tags) - limit} more"] if len(tags) > limit else [])


def table(results, names, runtimes, differences):
    """docs/conformance.md: what the stock shim does, and whether cshim does the same."""
    head = ["scenario", "what"] + [f"{shim} / {r}" for r in runtimes for shim in SHIMS]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name in names:
        cells = []
        for r in runtimes:
            unlisted, known = compare(results, name, r, differences)
            stock = outcome(results[(name, "stock", r)])
            cells.append(stock + (" (not the reference)"
                                  if SCENARIOS[name].get("expect") else ""))
            if unlisted:
                cells.append("**differs**: " + ", ".join(difference_tags(unlisted)))
            else:
                cells.append("same" + (" (listed differences)" if known else ""))
        lines.append(f"| {name} | {SCENARIOS[name]['about']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-s", "--scenario", action="append", default=[])
    parser.add_argument("-r", "--runtime", action="append", default=[])
    parser.add_argument("-j", "--workers", type=int)
    parser.add_argument("--diff", action="store_true")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--json", help="write every recording to this file")
    parser.add_argument("--from-json", help="compare recordings saved by --json, run nothing")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--stability", action="store_true",
                        help="run the stock shim in place of cshim too: finds scenarios where "
                             "the stock shim itself is not deterministic")
    args = parser.parse_args(argv)
    if args.list:
        for name, s in SCENARIOS.items():
            print(f"{name}: {s['about']}")
        return 0
    names = []
    for pattern in args.scenario or ["*"]:
        names += [n for n in SCENARIOS if fnmatch.fnmatchcase(n, pattern) and n not in names]
    runtimes = args.runtime or list(harness.RUNTIMES)
    differences = load_differences()
    started = time.monotonic()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        results = {tuple(k.split("/")): v for k, v in saved.items()}
    else:
        session = Session(args.workers)
        if args.stability:
            session.shims["cshim"] = session.shims["stock"]
        try:
            results = session.run_all(names, runtimes)
        finally:
            session.close()
    elapsed = time.monotonic() - started
    if args.json:
        Path(args.json).write_text(json.dumps(
            {f"{n}/{s}/{r}": rec for (n, s, r), rec in results.items()}, indent=1))
    failures = 0
    for name in names:
        for r in runtimes:
            unlisted, known = compare(results, name, r, differences,
                                      expectations=not args.stability)
            failures += bool(unlisted)
            if args.diff and (unlisted or known):
                print(f"== {name} [{r}]")
                for field, a, b, entry in unlisted + known:
                    tag = "listed" if entry else "DIFF"
                    ref = "expected" if field.endswith("(expected)") else "stock"
                    print(f"  {tag} {field}: {ref}={a!r} cshim={b!r}")
                for shim in SHIMS:
                    rec = results[(name, shim, r)]
                    if "error" in rec:
                        print(f"  {shim} harness error: {rec['error']}")
    if args.table:
        print(table(results, names, runtimes, differences))
    print(f"{len(names)} scenarios x {len(runtimes)} runtimes x 2 shims in {elapsed:.0f} s; "
          f"{failures} with unlisted differences", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Stock containerd-shim-runc-v2 vs cshim, scenario by scenario (scenarios.py).

All selected scenarios run once per (shim, runtime) on a small worker pool when the
first test needs them; each test then compares the two recordings of its scenario.
A difference fails unless differences.json lists it with a reason.
"""

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import conformance  # noqa: E402
import harness  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
RUNTIMES = list(harness.RUNTIMES)


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        cases = [(name, rt) for name in SCENARIOS for rt in RUNTIMES]
        metafunc.parametrize("case", cases, ids=[f"{n}-{r}" for n, r in cases])


@pytest.fixture(scope="session")
def differences():
    return conformance.load_differences()


@pytest.fixture(scope="session")
def session():
    for binary in harness.shim_binaries().values():
        if not os.access(binary, os.X_OK):
            pytest.fail(f"{binary} not found (make{' asan' if harness.e2e.ASAN else ''})",
                        pytrace=False)
    s = conformance.Session()
    yield s
    reports = s.sanitizer_reports()
    if reports:
        ARTIFACTS.mkdir(exist_ok=True)
        for report in reports:
            (ARTIFACTS / report.name).write_bytes(report.read_bytes())
    s.close()
    assert not reports, f"sanitizer reports from the shim: {[r.name for r in reports]}"


@pytest.fixture(scope="session")
def results(request, session):
    """Every recording the selected tests need, run in one parallel batch."""
    wanted = {}
    for item in request.session.items:
        case = getattr(item, "callspec", None) and item.callspec.params.get("case")
        if case:
            wanted.setdefault(case[1], []).append(case[0])
    out = {}
    for runtime, names in wanted.items():
        out.update(session.run_all(names, [runtime]))
    return out


def describe(results, name, runtime, unlisted):
    lines = [f"{len(unlisted)} unlisted difference(s), stock (or expected) vs cshim:"]
    lines += [f"  {field}: {'expected' if field.endswith('(expected)') else 'stock'}={a!r} "
              f"cshim={b!r}" for field, a, b, _ in unlisted]
    for shim in conformance.SHIMS:
        record = results[(name, shim, runtime)]
        lines.append(f"--- {shim} recording")
        lines.append(json.dumps({k: v for k, v in record.items() if k != "logs"}, indent=1))
        for fifo, text in record.get("logs", {}).items():
            lines.append(f"--- {shim} {fifo}\n{text[-1500:]}")
    return "\n".join(lines)


def test_differences_file_is_reviewed(differences):
    """Every deliberate difference names its scenario(s), field and reason."""
    assert all(e["reason"].strip() for e in differences)


@pytest.mark.parametrize("shim", conformance.SHIMS)
def test_harness_ran(results, shim):
    errors = {k: r["error"] for k, r in results.items() if k[1] == shim and "error" in r}
    assert not errors


def test_same_as_stock(results, differences, case):
    name, runtime = case
    unlisted, _known = conformance.compare(results, name, runtime, differences)
    assert not unlisted, describe(results, name, runtime, unlisted)

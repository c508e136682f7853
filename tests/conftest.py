"""The whole suite's order and its time table.

Order: the unit tests first (about a minute, no engine), so that a broken
unit test ends a CI run in minutes, not after the engine tests; among the
engine tests, those that empty the online engine's build cache last, so that
no export after them starts cold.

Time: pytest's ``--durations`` lists the slowest tests; a session fixture's
cost (an export) lands on whichever test asked first. The table printed at
the end sums setup, call and teardown per file: which file costs what.

In parallel (``scripts/test.sh`` runs two pytest-xdist workers, ``--dist
loadgroup``): each worker has an engine set of its own (the first the
harness's usual one, the others ``OFFLINE_BUILD_ENGINE_SET=N``), and every
engine test file is a group that one worker runs whole, so that a file's
module fixtures are made once; files that share a session fixture (one
export) form one group. Which worker runs which group is fixed (``WORKER``,
tests/schedule.py): a project stays on the engine set that holds its cache.
"""

from __future__ import annotations

import os
import zlib
from collections import defaultdict
from pathlib import PurePosixPath

import pytest

# Set before tests/integration/harness.py is imported: the engine set this worker starts and uses.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...: set by pytest-xdist in its workers
if _WORKER.startswith("gw"):
    os.environ["OFFLINE_BUILD_ENGINE_SET"] = _WORKER.removeprefix("gw")

# Files whose tests prune the online engine's whole build cache (a fresh CI runner, on purpose).
RUN_LAST = ("tests/integration/test_registry.py",)
# Files that share a session fixture's export run in one worker: the export is made once.
GROUPS = {
    "demo": ("test_roundtrip.py", "test_apt.py", "test_signing.py", "test_faults.py"),
    "shop": ("test_deps.py", "test_real_shape.py"),
}


# The worker of each group: balanced by the seconds per file of a serial run on a warm machine
# (shop 534, replay 236, verify_edits 189 | test_deps_maven_go 353, demo 258, platforms 204, registry 82,
# proof_travels 70, old_engine 40, ...). A group not named here gets a fixed worker of its own.
WORKER = {
    "shop": 0, "test_replay.py": 0, "test_verify_edits.py": 0, "test_bake.py": 0, "test_builder.py": 0,
    "test_deps_maven_go.py": 1, "demo": 1, "test_platforms.py": 1, "test_registry.py": 1,
    "test_proof_travels.py": 1, "test_old_engine.py": 1, "test_engines.py": 1,
}


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getoption("dist") != "loadgroup":
        return None  # another --dist mode asked for: xdist's own
    from tests.schedule import PlannedScheduling

    return PlannedScheduling(config, log, worker_of)


def worker_of(nodeid: str) -> int | None:
    """The worker that runs this test: its group's, for an engine test; None (any, in turn) for a unit test."""
    group = _group(nodeid.split("::", 1)[0])
    if group is None:
        return None
    return WORKER.get(group, zlib.crc32(group.encode()))  # a group not in the table: a fixed worker all the same


def _rank(item: pytest.Item) -> tuple[int, int]:
    path = item.nodeid.split("::", 1)[0]
    return (0 if path.startswith("tests/unit/") else 1, 1 if path in RUN_LAST else 0)


def _group(path: str) -> str | None:
    """The group of an engine test file, which one worker runs whole (None for a unit test: any worker)."""
    if not path.startswith("tests/integration/"):
        return None
    name = PurePosixPath(path).name
    return next((group for group, files in GROUPS.items() if name in files), name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: within a rank, collection order stays


_seconds: defaultdict[str, float] = defaultdict(float)
_tests: defaultdict[str, int] = defaultdict(int)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::", 1)[0]
    _seconds[path] += report.duration
    if report.when == "call":
        _tests[path] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _seconds:
        return
    total = sum(_seconds.values())
    terminalreporter.section("seconds per file (setup + call + teardown)")
    for path, seconds in sorted(_seconds.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:8.1f}s {100 * seconds / total:5.1f}%  {_tests[path]:4d} tests  {path}")
    terminalreporter.write_line(f"{total:8.1f}s total (summed over the workers: more than the run's wall time)")

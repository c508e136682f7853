"""The whole suite's order and its time table.

Order: the unit tests first (about a minute, no engine), so that a broken
unit test ends a CI run in minutes, not after the engine tests; among the
engine tests, those that empty the online engine's build cache last, so that
no export after them starts cold.

Time: pytest's ``--durations`` lists the slowest tests; a session fixture's
cost (an export) lands on whichever test asked first. The table printed at
the end sums setup, call and teardown per file: which file costs what.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

# Files whose tests prune the online engine's whole build cache (a fresh CI runner, on purpose).
RUN_LAST = ("tests/integration/test_registry.py",)


def _rank(item: pytest.Item) -> tuple[int, int]:
    path = item.nodeid.split("::", 1)[0]
    return (0 if path.startswith("tests/unit/") else 1, 1 if path in RUN_LAST else 0)


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
    terminalreporter.write_line(f"{total:8.1f}s total")

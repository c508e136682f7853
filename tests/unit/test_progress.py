"""BuildKit's rawjson progress, as recorded from a real buildx 0.13 run."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from offline_build.progress import BuildReport

DATA = Path(__file__).parent / "data"


def fed(chunks: Iterable[str]) -> BuildReport:
    """A report fed a recorded stream in *chunks*, as the build runner feeds it, and closed."""
    report = BuildReport()
    for chunk in chunks:
        report.feed(chunk)
    return report.close()


def all_cached(report: BuildReport) -> bool:
    return bool(report.steps) and not report.ran


@pytest.mark.parametrize("chunk", [1, 37, 4096, 10**9])
def test_a_fully_cached_build_is_seen_as_such_whatever_the_chunking(chunk: int) -> None:
    text = (DATA / "rawjson-all-cached.txt").read_text()
    report = fed(text[i:i + chunk] for i in range(0, len(text), chunk))
    assert [v.name for v in report.steps] == ["[2/3] RUN echo hi > /x", "[3/3] COPY f /f"]
    assert all_cached(report)
    assert report.other == []


def test_a_failed_build_names_the_step_and_keeps_buildx_error_line() -> None:
    report = fed((DATA / "rawjson-failed.txt").read_text().splitlines(keepends=True))
    assert not all_cached(report)
    assert report.failed is not None and report.failed.name == "[4/4] RUN false"
    assert "exit code: 1" in (report.failed.error or "")
    assert any(line.startswith("ERROR: failed to solve") for line in report.other)
    # Recorded with --network none after the same step had been built with
    # --network host: the network mode is in the cache key, so it re-ran.
    assert report.cached == []
    assert "[2/4] RUN echo hi > /x" in [v.name for v in report.ran]


def test_no_steps_is_not_all_cached() -> None:
    assert not all_cached(fed([]))


def test_finished_steps_are_told_once_and_the_running_one_is_named() -> None:
    report = BuildReport()
    report.feed('{"vertexes": [{"digest": "a", "name": "[2/3] RUN make", "started": "t"}]}\n')
    assert report.newly_done() == [] and report.running is not None and report.running.name == "[2/3] RUN make"
    report.feed('{"vertexes": [{"digest": "a", "name": "[2/3] RUN make", "completed": "t"},'
                ' {"digest": "b", "name": "[3/3] COPY f /f", "cached": true}]}\n')
    assert [v.name for v in report.newly_done()] == ["[2/3] RUN make", "[3/3] COPY f /f"]
    assert report.newly_done() == [] and report.running is None


def test_a_recorded_build_tells_every_step_when_fed_in_pieces() -> None:
    text = (DATA / "rawjson-all-cached.txt").read_text()
    report, told = BuildReport(), []
    for i in range(0, len(text), 64):
        report.feed(text[i:i + 64])
        told += [v.name for v in report.newly_done()]
    assert told == ["[2/3] RUN echo hi > /x", "[3/3] COPY f /f"]


def test_byte_progress_in_a_pipe_is_one_plain_line_with_throughput() -> None:
    import io

    from rich.console import Console

    from offline_build.runners import bar

    out = io.StringIO()
    with bar(Console(file=out, force_terminal=False, width=80), "pack", 2_000_000) as advance:
        advance(2_000_000)
    (line,) = out.getvalue().splitlines()
    assert line.startswith("    pack: 2.0 MB in ") and line.endswith(" MB/s)")


def test_a_build_in_a_pipe_prints_a_plain_line_per_finished_step() -> None:
    import io
    from pathlib import Path as P

    from rich.console import Console

    from offline_build.runners import Runtime
    from offline_build.runners.build import _follow
    from offline_build.steps import Build

    text = (DATA / "rawjson-all-cached.txt").read_text()
    out = io.StringIO()
    runtime = Runtime(None, Console(file=out, force_terminal=False, width=80))  # type: ignore[arg-type]
    report = BuildReport()
    _follow(runtime, Build(title="build web (offline)", context=P(".")), report,
            iter(text[i:i + 100] for i in range(0, len(text), 100)))
    assert out.getvalue().splitlines() == ["    [2/3] RUN echo hi > /x: CACHED", "    [3/3] COPY f /f: CACHED"]

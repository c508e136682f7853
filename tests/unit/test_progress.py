"""BuildKit's rawjson progress, as recorded from a real buildx 0.13 run."""

from __future__ import annotations

from pathlib import Path

import pytest

from offline_build.progress import BuildReport

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("chunk", [1, 37, 4096, 10**9])
def test_a_fully_cached_build_is_seen_as_such_whatever_the_chunking(chunk: int) -> None:
    text = (DATA / "rawjson-all-cached.txt").read_text()
    report = BuildReport().feed_all(text[i:i + chunk] for i in range(0, len(text), chunk))
    assert [v.name for v in report.steps] == ["[2/3] RUN echo hi > /x", "[3/3] COPY f /f"]
    assert report.all_cached()
    assert report.other == []


def test_a_failed_build_names_the_step_and_keeps_buildx_error_line() -> None:
    report = BuildReport().feed_all((DATA / "rawjson-failed.txt").read_text().splitlines(keepends=True))
    assert not report.all_cached()
    assert report.failed is not None and report.failed.name == "[4/4] RUN false"
    assert "exit code: 1" in (report.failed.error or "")
    assert any(line.startswith("ERROR: failed to solve") for line in report.other)
    # Recorded with --network none after the same step had been built with
    # --network host: the network mode is in the cache key, so it re-ran.
    assert report.cached == []
    assert "[2/4] RUN echo hi > /x" in [v.name for v in report.ran]


def test_no_steps_is_not_all_cached() -> None:
    assert not BuildReport().feed_all([]).all_cached()

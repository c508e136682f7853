"""Reports as people read them: off a terminal (CI logs, | tee) no table cell is cut in two."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from offline_build import diagnose
from offline_build.tasks.common import UNWRAPPED, console

IMAGE = "registry.example.invalid/platform/team/debian:bookworm-slim-20260101-with-a-long-suffix"
CHECKS = [diagnose.Check("base image", IMAGE, "fail", "neither in the store nor in the engine",
                         "export a bundle that includes it, then run offline.setup on this machine")]


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def test_off_a_terminal_a_long_image_name_stays_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    diagnose.render(console(), CHECKS)  # pytest's captured stdout is not a terminal
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("│ base image")]
    assert IMAGE in row and CHECKS[0].fix in row
    assert max(len(line) for line in out.splitlines()) < 500  # wide, but nothing padded out to that width


def test_columns_is_still_honoured(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    diagnose.render(console(), CHECKS)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines if line.startswith(("┃", "│"))) <= 60


def test_on_a_terminal_the_terminal_width_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdout", Terminal())
    assert console().width == Console().width < UNWRAPPED


def test_verify_shows_buildkit_step_names_whole(capsys: pytest.CaptureFixture[str]) -> None:
    """``[stage-0 4/5]`` looks like rich markup: the report must print it, not swallow it."""
    from offline_build import report
    from offline_build.airgap import Airtightness, Emptiness
    from offline_build.verify import Measured, VerifyOutcome, plain_step

    name = plain_step("[stage-0 4/5] RUN --mount=type=bind,from=pip-api-1,target=/x pip install -r r.txt")
    measured = Measured(Airtightness("air-tight", "build steps (--network none) see lo: no network but loopback",
                                     loopback_only=True), Emptiness(0, 0, ()))
    report.verify(console(), [VerifyOutcome("api", "rebuilt offline", 5, 4, f"ran again offline: {name}")],
                  measured, edits=True)
    out = capsys.readouterr().out
    assert "ran again offline: [stage-0 4/5] RUN pip install -r r.txt" in out
    assert "offline.verify --edits (every build context edited," in out
    # The title says what was measured, and only that.
    assert "engine: air-tight (measured: loopback only), empty build cache (measured)" in " ".join(out.split())
    assert "air-tightness: build steps (--network none) see lo: no network but loopback" in out

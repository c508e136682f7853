"""Fixtures for the real engines started by ``scripts/engines.sh``.

Locally, when no engine can be started, engine tests are skipped with the
reason. With ``CI=true`` they fail instead: CI must never pass by skipping
them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from python_on_whales import DockerClient

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "scripts" / "engines.sh"
DEMO = ROOT / "examples" / "demo"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"engine tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def _harness(*args: str) -> str:
    proc = subprocess.run([str(HARNESS), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/engines.sh {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


@pytest.fixture(scope="session")
def engines() -> dict[str, str]:
    """NAME -> DOCKER_HOST for the four engines, started (and the base image made) if needed."""
    if os.geteuid() != 0:
        _unavailable("the engine harness needs root")
    try:
        out = _harness("up")
    except (RuntimeError, OSError) as exc:
        _unavailable(str(exc))
    hosts = dict(line.split("=", 1) for line in out.splitlines() if "=unix://" in line)
    missing = {"online", "offline", "legacy", "old"} - set(hosts)
    if missing:
        _unavailable(f"engines not started: {', '.join(sorted(missing))}")
    return hosts


def reset(name: str) -> None:
    """Make engine *name* empty again (no images, no build cache)."""
    _harness("reset", name)


def seed(name: str) -> None:
    """Import the harness's base images into engine *name*."""
    _harness("images", name)


@pytest.fixture(scope="session")
def online(engines: dict[str, str]) -> DockerClient:
    return DockerClient(host=engines["online"])


@pytest.fixture()
def demo(tmp_path: Path) -> Iterator[Path]:
    """A private copy of the demo project (its cache dir must not be shared between tests)."""
    dest = tmp_path / "demo"
    shutil.copytree(DEMO, dest, ignore=shutil.ignore_patterns("build-cache", "apt-lists"))
    yield dest


@pytest.fixture(scope="session")
def registries(engines: dict[str, str]) -> dict[str, str]:
    """NAME -> HOST:PORT: "team" beside the online engine, "site" inside the air gap."""
    try:
        out = _harness("registries")
    except (RuntimeError, OSError) as exc:
        _unavailable(str(exc))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


class RetryWatcher:
    """Stands in for stderr: passes everything through, and calls *on_retry* with each retry line.

    Retries announce themselves on stderr (``offline-build: retry 1/2 ...``);
    a test watches for that line, as a user would, to act between two tries.
    """

    def __init__(self, inner: object, on_retry: Callable[[str], None]) -> None:
        self.inner = inner
        self.on_retry = on_retry

    def write(self, text: str) -> int:
        if text.startswith("offline-build: retry "):
            self.on_retry(text)
        return self.inner.write(text)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

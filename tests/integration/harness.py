"""What the engine tests share: the engine harness, the CLI as a user runs it, carrying a bundle to a site.

Test modules import from here, never from one another, so that a file can
be read, run or deleted on its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "scripts" / "engines.sh"
DEMO = ROOT / "examples" / "demo"
# Which of the harness's engine sets this process uses (tests/conftest.py gives each pytest worker its own),
# and where scripts/engines.sh keeps that set: the folders and the air gap's namespace are named as it names them.
BASE = Path(os.environ.get("OFFLINE_BUILD_ENGINES_DIR", "/var/tmp/offline-build-engines"))
SET = int(os.environ.get("OFFLINE_BUILD_ENGINE_SET", "0"))
STATE = BASE / f"set-{SET}" if SET else BASE
IMAGES = BASE / "images"  # the base images' rootfs tarballs, shared by the sets
NETNS = f"offline-build-airgap-{SET}" if SET else "offline-build-airgap"  # the offline, legacy and old engines'
CLI = [sys.executable, "-m", "offline_build.cli"]
CA = Path("/etc/ssl/certs/ca-certificates.crt")  # this machine's trust, which includes its TLS-inspecting proxy
# What a site never has of the online machine's checkout: the bundle folder and the APT capture's folder.
LEFT_ONLINE = ("build-cache", "apt-lists")


def harness(*args: str) -> str:
    proc = subprocess.run([str(HARNESS), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/engines.sh {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def reset(name: str) -> None:
    """Make engine *name* empty again (no images, no build cache)."""
    harness("reset", name)


def seed(name: str) -> None:
    """Import the harness's base images into engine *name*."""
    harness("images", name)


def _env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("OFFLINE_VERSION", None)
    env.pop("CACHE_DIR", None)
    return env


def cli(project: Path, host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``offline-build ARGS --host HOST`` in *project*, from this machine's network."""
    return _run([*CLI, *args, "--host", host], project, args, check)


def in_airgap(project: Path, host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A command of the site: inside the air gap, where the engine's loopback is, and no upstream."""
    return _run(["ip", "netns", "exec", NETNS, *CLI, *args, "--host", host], project, args, check)


def plain(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A task that talks to no engine (keygen, sbom, lint): no --host."""
    return _run([*CLI, *args], project, args, check)


def _run(argv: list[str], project: Path, args: tuple[str, ...], check: bool) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=project, capture_output=True, text=True, env=_env(), check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"offline-build {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def build_report(stdout: str, services: tuple[str, ...] = ("backend", "worker", "web"),
                 ) -> dict[str, tuple[int, int, str]]:
    """service -> (steps, cached, status) from a build's closing table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 6 and cells[0] in services:
            rows[cells[0]] = (int(cells[2]), int(cells[3]), cells[4])
    return rows


def copy_demo(dest: Path) -> Path:
    """A private copy of the demo project (its build-cache must not be shared between tests)."""
    shutil.copytree(DEMO, dest, ignore=shutil.ignore_patterns(*LEFT_ONLINE))
    return dest


def carry(bundle: Path, dest: Path, *beside: Path) -> Path:
    """Carry *bundle* to a site: a fresh checkout of the project that exported it, the bundle (and *beside*) in
    its ``build-cache/``; nothing else of the online machine's (no capture folder, no store)."""
    shutil.copytree(bundle.parents[1], dest, ignore=shutil.ignore_patterns(*LEFT_ONLINE))
    (dest / "build-cache").mkdir()
    for path in (bundle, *beside):
        shutil.copy2(path, dest / "build-cache" / path.name)
    return dest


def bundle_in(project: Path) -> Path:
    """The one full bundle an export wrote into *project*'s build-cache."""
    (found,) = [p for p in (project / "build-cache").glob("build-cache-*.tar") if not p.name.endswith("-delta.tar")]
    return found


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves a folder without a log line per request on stderr."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def serve_folder(root: Path) -> Iterator[str]:
    """*root* over HTTP on this machine's loopback (the online engine's network); yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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

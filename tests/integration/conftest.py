"""Fixtures for the real engines started by ``scripts/engines.sh``, and the exports the test files share.

Locally, when no engine can be started, engine tests are skipped with the
reason. With ``CI=true`` they fail instead: CI must never pass by skipping
them.

An export is the suite's costliest step. A project is exported once per run
(a session fixture here) and every file that needs its bundle takes it from
here; a test exports again only when the export itself is what it checks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from offline_build import signing
from tests.integration import projects
from tests.integration.harness import bundle_in, cli, copy_demo, harness, plain


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"engine tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engines() -> dict[str, str]:
    """NAME -> DOCKER_HOST for the four engines, started (and the base image made) if needed."""
    if os.geteuid() != 0:
        _unavailable("the engine harness needs root")
    try:
        out = harness("up")
    except (RuntimeError, OSError) as exc:
        _unavailable(str(exc))
    hosts = dict(line.split("=", 1) for line in out.splitlines() if "=unix://" in line)
    missing = {"online", "offline", "legacy", "old"} - set(hosts)
    if missing:
        _unavailable(f"engines not started: {', '.join(sorted(missing))}")
    return hosts


@pytest.fixture(scope="session")
def registries(engines: dict[str, str]) -> dict[str, str]:
    """NAME -> HOST:PORT: "team" beside the online engine, "site" inside the air gap."""
    try:
        out = harness("registries")
    except (RuntimeError, OSError) as exc:
        _unavailable(str(exc))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@dataclass(frozen=True)
class Demo:
    """The demo exported on the online engine, signed: what test_roundtrip, test_apt and test_signing share."""

    project: Path  # the online checkout; tests copy it (carry) rather than change it
    bundle: Path
    key: Path  # the secret key, outside the project (a checkout carried to a site never holds it)
    key_id: str

    @property
    def public_key(self) -> Path:
        return signing.public_path(self.key)  # where offline.keygen wrote it


def add_copy_before_apt(project: Path) -> None:
    """backend copies a file before its APT step, so a change there makes the step run again offline."""
    dockerfile = project / "services" / "backend" / "Dockerfile"
    text = dockerfile.read_text().replace("FROM debian:bookworm-slim\n",
                                          "FROM debian:bookworm-slim\nCOPY before.txt /etc/before.txt\n")
    assert "COPY before.txt" in text, "the demo's backend no longer starts FROM debian:bookworm-slim"
    dockerfile.write_text(text)
    (project / "services" / "backend" / "before.txt").write_text("before v1\n")


@pytest.fixture(scope="session")
def demo(engines: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo (with a file copied before backend's APT step), exported twice, the second time signed.

    Twice: the second export runs on a warm engine, where BuildKit leaves out
    the cache keys a classic-store engine needs (offline-build adds them
    back). CI's engines start cold, so without this the warm case, the usual
    one on a developer's machine, would go untested there.
    """
    root = tmp_path_factory.mktemp("demo-online")
    made = plain(root, "offline.keygen", "--key", str(root / "keys" / "team.key"))
    key_id = re.search(r"key id ([0-9A-F]{16})", made.stdout)
    assert key_id, made.stdout
    project = copy_demo(root / "demo")
    add_copy_before_apt(project)
    cli(project, engines["online"], "offline.export")
    out = cli(project, engines["online"], "offline.export", "--sign", str(root / "keys" / "team.key"))
    assert "bundle size" in out.stdout
    assert f"key {key_id[1]}" in out.stdout  # the export report's signature row
    yield Demo(project, bundle_in(project), root / "keys" / "team.key", key_id[1])


@pytest.fixture(scope="session")
def shop(engines: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The language-capture project (tests/integration/projects.py), exported once with ``network: none``: its
    bundle, which test_deps and test_real_shape share."""
    scratch = tmp_path_factory.mktemp("shop-online")
    project = projects.write_shop(scratch / "shop", scratch)
    cli(project, engines["online"], "offline.export")
    return bundle_in(project)

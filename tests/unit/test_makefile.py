"""Makefile.offline.mk: every target delegates to a task that ``inv --list`` shows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from offline_build import makefile
from offline_build.config import load

ROOT = Path(__file__).resolve().parents[2]
MK = ROOT / "Makefile.offline.mk"
DEMO = ROOT / "examples" / "demo" / "offline.yaml"


@pytest.fixture()
def gnu_make() -> None:
    """Only the tests that run make ask for it. Locally a machine without make skips those
    (the rest still run); CI (CI=true) must never pass by skipping them."""
    if shutil.which("make") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("GNU make is not installed, and CI must run the make tests", pytrace=False)
        pytest.skip("GNU make is not installed")


def listed_tasks() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines()[2:] if line.strip() and line.startswith("  ") and not line.startswith("    ")}


def make_targets(path: Path) -> list[str]:
    return re.findall(r"^([a-z0-9-]+):\s*$", path.read_text(), flags=re.M)


INV = str(Path(sys.executable).parent / "inv")  # this virtualenv's


def dry(makefile_path: Path, target: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["make", "-s", "-n", "-f", str(makefile_path), target, f"OFFLINE_BUILD={INV}"], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_the_committed_file_is_what_the_generator_writes() -> None:
    assert MK.read_text() == makefile.render(load(DEMO, environ={}), runner="inv")


@pytest.mark.usefixtures("gnu_make")
def test_every_target_delegates_to_a_listed_task() -> None:
    tasks = listed_tasks()
    targets = [t for t in make_targets(MK) if t != "offline-help"]
    assert {"offline-export", "offline-setup", "offline-build", "backend-offline-build"} <= set(targets)
    for target in targets:
        command = dry(MK, target)
        runner, task, *host = command.split()
        assert runner == INV and host == []
        assert task in tasks, f"{target} -> {task}, which inv --list does not show"


@pytest.mark.usefixtures("gnu_make")
def test_appended_to_an_existing_makefile_keeps_its_default_goal(tmp_path: Path) -> None:
    host = tmp_path / "Makefile"
    host.write_text("all:\n\t@echo building the app\n\n" + MK.read_text())
    assert dry(host, "all", cwd=tmp_path).endswith("building the app")
    assert subprocess.run(["make", "-s", "-f", str(host)], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip() == "building the app"
    assert dry(host, "web-offline-build", cwd=tmp_path) == f"{INV} web.offline-build"


@pytest.mark.usefixtures("gnu_make")
def test_cache_dir_and_version_pass_through(tmp_path: Path) -> None:
    probe = tmp_path / "Makefile"
    probe.write_text(MK.read_text().replace("$(OFFLINE_FOUND)$(OFFLINE_BUILD) offline.export $(OFFLINE_HOST_FLAG)",
                                            "@echo CACHE_DIR=$$CACHE_DIR OFFLINE_VERSION=$$OFFLINE_VERSION"))
    out = subprocess.run(["make", "-s", "-f", str(probe), "offline-export", "CACHE_DIR=/c", "OFFLINE_VERSION=9"],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert out == "CACHE_DIR=/c OFFLINE_VERSION=9"


def test_targets_exist_only_for_tasks_that_exist() -> None:
    project = load(DEMO, environ={})
    mapping = makefile.targets(project, {"offline.export", "backend.offline-build"})
    assert mapping == {"offline-export": "offline.export", "backend-offline-build": "backend.offline-build"}


def clean_make(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """make from a fresh shell: no virtualenv on PATH, nothing but the system's tools."""
    return subprocess.run(["make", "-s", *args], cwd=folder, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(folder)})


@pytest.mark.usefixtures("gnu_make")
def test_from_a_clean_shell_the_projects_virtualenv_is_found_and_the_engine_passed(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text(makefile.render(load(DEMO, environ={})))
    fake = tmp_path / ".venv" / "bin" / "offline-build"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho "ran: $*"\n')
    fake.chmod(0o755)
    out = clean_make(tmp_path, "offline-export", "OFFLINE_HOST=unix:///run/e.sock")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ran: offline.export --host unix:///run/e.sock"
    assert clean_make(tmp_path, "offline-lint", "OFFLINE_HOST=unix:///run/e.sock").stdout.strip() == "ran: offline.lint"
    assert clean_make(tmp_path, "web-offline-build").stdout.strip() == "ran: web.offline-build"


@pytest.mark.usefixtures("gnu_make")
def test_without_the_command_anywhere_make_says_how_to_fix_it(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text(makefile.render(load(DEMO, environ={})))
    out = clean_make(tmp_path, "offline-setup")
    assert out.returncode == 2
    assert "offline-build is not on PATH nor in ./.venv/bin: activate the virtualenv offline-build is installed in, " \
           "or pass OFFLINE_BUILD=/path/to/offline-build" in out.stderr


@pytest.mark.parametrize("runner", ["", "inv; rm -rf /", "make"])
def test_a_runner_the_targets_cannot_call_is_refused(runner: str) -> None:
    """The runner is pasted into ``$(shell command -v ...)``: anything but the two commands is refused."""
    from offline_build.errors import OfflineBuildError

    with pytest.raises(OfflineBuildError, match=f"--runner {re.escape(repr(runner))} is not a command") as info:
        makefile.render(load(DEMO), runner)
    assert info.value.hint == "use one of: offline-build, inv"
    assert "command -v inv " in makefile.render(load(DEMO), "inv")

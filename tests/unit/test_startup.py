"""Start-up: listing the tasks loads none of the workflows' heavy libraries (the time it saves is a benchmark's,
benchmarks/startup.py; this checks what is loaded, which does not depend on the machine's speed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"
# Loaded by a task when it runs, never by building the task tree (--list, --help, tab completion).
HEAVY = ("python_on_whales", "rich", "cyclonedx", "mitmproxy", "minisign", "offline_build.build",
         "offline_build.export", "offline_build.sbom", "offline_build.executor")


def loaded_by(*args: str) -> set[str]:
    """The modules ``offline-build ARGS`` imports, read from ``-X importtime``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "offline_build.cli", *args], cwd=DEMO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [("--list",), ("--help",), ("--help", "offline.export")])
def test_the_task_tree_loads_no_workflow(args: tuple[str, ...]) -> None:
    modules = loaded_by(*args)
    assert "offline_build.tasks.offline" in modules  # the tree was built
    assert not {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY}, sorted(
        m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)

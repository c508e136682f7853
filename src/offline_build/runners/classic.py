"""Running the classic builder (``DOCKER_BUILDKIT=0 docker build``), counting the steps it reused.

The step's own argv is what runs, so ``--dry-run`` shows the command exactly:
``DOCKER_BUILDKIT=0`` matters, because a Docker client from 23 on runs
BuildKit for a plain ``docker build``, also against a Docker 20.10 engine, and
that BuildKit neither reads the ``--cache-from`` image nor the local chain of
layers the classic builder reuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from python_on_whales.exceptions import DockerException
from python_on_whales.utils import stream_stdout_and_stderr

from ..engine import engine_message, image_present
from ..errors import StepError
from ..steps import ClassicBuild
from . import Runtime

_STEP = re.compile(r"^Step (\d+)/(\d+) : (\S+)", re.IGNORECASE)


@dataclass
class ClassicReport:
    """What the classic builder said: its steps (``FROM`` left out, as BuildKit's count does) and those reused."""

    steps: int = 0
    cached: int = 0

    def feed(self, lines: Iterable[str]) -> ClassicReport:
        for line in lines:
            match = _STEP.match(line)
            if match and match[3].upper() != "FROM":
                self.steps += 1
            elif line.strip() == "---> Using cache":
                self.cached += 1
        return self


def classic_build(rt: Runtime, step: ClassicBuild) -> dict[str, Any]:
    for image in step.needs_images:
        if not image_present(rt.docker, image):
            raise StepError(step.title, f"image {image} is not in the engine",
                            "run offline.setup: it loads the preinstalled base images for the classic builder")
    # A --cache-from image the engine lacks is skipped with a warning (seen on 20.10): the first build here.
    argv = [*map(str, rt.docker.client_config.docker_cmd), *step.argv()[3:]]  # after "env DOCKER_BUILDKIT=0 docker"
    report = ClassicReport()
    try:
        with rt.console.status(f"{step.title}…"):
            lines = (line.decode(errors="replace").rstrip() for _, line in
                     stream_stdout_and_stderr(argv, env={"DOCKER_BUILDKIT": "0"}))
            report.feed(lines)
    except DockerException as exc:
        raise StepError(step.title, f"classic build failed: {engine_message(exc)}") from None
    return {"steps": report.steps, "cached": report.cached}


__all__ = ["ClassicReport", "classic_build"]

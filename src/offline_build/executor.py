"""Running a plan: each step kind maps to a runner, called with one engine's client.

The docker client is a parameter, so the same executor drives the online
engine, the offline one, or any other. The runners live in ``runners/``
(build, images, bundle I/O, fetch) and with each capture (``captures/``);
retries live in ``retry.py``, around the few things that can fail
transiently, and nowhere else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from python_on_whales import DockerClient
from rich.console import Console

from .captures import all_captures
from .captures.lang import CaptureBuild
from .engine import server_version
from .runners import Runner, Runtime, bundle_io, fetch, images
from .runners import build as build_runner
from .steps import (
    Build,
    ClassicBuild,
    DropBlobs,
    EnsureBuilder,
    FetchResource,
    LoadImages,
    MergeCache,
    OfflineBuild,
    Pack,
    Plan,
    SaveImages,
    Step,
    Unpack,
    WriteFile,
)

RUNNERS: dict[type, Runner] = {
    Build: build_runner.build,
    CaptureBuild: build_runner.capture_build,
    OfflineBuild: build_runner.offline_build,
    ClassicBuild: build_runner.classic_build,
    EnsureBuilder: build_runner.ensure_builder,
    SaveImages: images.save_images,
    LoadImages: images.load_images,
    MergeCache: bundle_io.merge_cache,
    DropBlobs: bundle_io.drop_blobs,
    Pack: bundle_io.pack,
    Unpack: bundle_io.unpack,
    WriteFile: bundle_io.write_file,
    FetchResource: fetch.fetch_resource,
}


@dataclass
class StepResult:
    step: Step
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    results: list[StepResult] = field(default_factory=list)

    def builds(self) -> list[StepResult]:
        return [r for r in self.results if type(r.step) is Build]  # not a capture build

    def of(self, kind: type) -> list[StepResult]:
        return [r for r in self.results if isinstance(r.step, kind)]


class Executor:
    """Runs steps against one engine; prints progress to *console*; ``dry_run`` only describes them."""

    def __init__(self, docker: DockerClient, console: Console, *, dry_run: bool = False) -> None:
        self.runtime = Runtime(docker, console)
        self.console = console
        self.dry_run = dry_run
        self.runners: dict[type, Runner] = dict(RUNNERS)
        for capture in all_captures():
            self.runners.update(capture.handlers())

    def run(self, plan: Plan) -> RunResult:
        result = RunResult()
        for step in plan.steps:
            if self.dry_run:
                self.console.print(step.describe(), markup=False, highlight=False, soft_wrap=True)
                continue
            self.console.print(f"[bold]==>[/] {step.title}")
            started = time.monotonic()
            detail = self.runners[type(step)](self.runtime, step)
            result.results.append(StepResult(step, time.monotonic() - started, detail))
        return result


def check_engine(docker: DockerClient) -> None:
    """Fail with one clear message, before any work, when the engine does not answer."""
    server_version(docker)

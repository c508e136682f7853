"""``offline.verify``: prove a bundle by restoring it into a scratch store and building every service.

The plan is setup's and build's, run against a throwaway cache folder, so
the project's own store and captures stay as they are. Two levels:

- plain: every service builds from the bundle alone (all CACHED when nothing changed);
- ``edits``: every service builds *as if its whole build context had
  changed* (:mod:`offline_build.edits`): each step below its first read of
  the context runs again, with the captures served and no network. That is
  what a developer at the site does; a step that needs the network fails
  here, named, before the trip.

The result is recorded per bundle (``proofs.json``), which ``offline.diagnose`` shows.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from rich.console import Console

from . import bundle
from .build import BuildOutcome, build
from .config import CacheOptions, Project
from .edits import nonce
from .engine import Capabilities, engine_message, engine_platforms, probe_engine, runs_platform
from .errors import EngineError, OfflineBuildError
from .executor import Executor, check_engine
from .inputs import pick
from .setup import load_steps, unpack
from .state import record_proof
from .steps import Plan
from .store import create_ignored


@dataclass(frozen=True)
class VerifyOutcome:
    service: str
    status: str  # "all cached" | "rebuilt offline" | "failed"
    steps: int
    cached: int
    detail: str


def verify(project: Project, bundle_path: Path | None, docker: DockerClient, console: Console,
           *, edits: bool = False) -> list[VerifyOutcome]:
    """Set the bundle up into a throwaway store and build every service with no network (with *edits*: as if
    each one's build context had changed).

    The engine given must hold none of the project's build cache (another
    engine, or this one after ``docker builder prune``): otherwise a step
    could pass from a local cache the bundle does not carry.
    """
    path = bundle_path or bundle.find_bundle(project.cache_dir)
    check_engine(docker)
    create_ignored(project.cache_dir)
    work = project.cache_dir / ".work"
    work.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix="verify-") as tmp:
        # The captures go to the scratch folder too: the project's own stay
        # as they are. No team cache: the proof is of the bundle alone.
        scratch = replace(project, cache_dir=Path(tmp), cache=CacheOptions(),
                          apt=replace(project.apt, dir=Path(tmp) / "apt-lists"))
        available = engine_platforms(docker)
        restored = unpack(scratch, path, console, lambda: available)
        caps = probe_engine(docker, scratch, ("oci_layout_context",))
        scratch = replace(scratch, platforms=proven_platforms(restored.manifest.platforms, available, caps),
                          platforms_asked=True)
        Executor(docker, console).run(Plan("load", tuple(load_steps(scratch, restored.manifest, caps))))
        edit = nonce() if edits else None
        outcomes = [_verify_one(scratch, name, docker, console, edit) for name in (s.name for s in pick(scratch, None))]
    passed = all(o.status != "failed" for o in outcomes)
    record_proof(project.cache_dir, restored.manifest_sha256, "edits" if edits else "cached", passed,
                 datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    return outcomes


def proven_platforms(bundled: list[str], available: tuple[str, ...], caps: Capabilities) -> tuple[str, ...]:
    """Every platform of the bundle this engine runs: a proof for the amd64 site and the arm64 one.

    One build makes them all; only the containerd image store can load the
    multi-platform image it makes, so another engine proves its own platform.
    """
    runs = [p for p in bundled if runs_platform(p, available)]
    if len(runs) > 1 and not caps.containerd_store:
        runs = [p for p in runs if runs_platform(available[0], (p,))][:1] or runs[:1]
    return tuple(runs)


def _verify_one(scratch: Project, name: str, docker: DockerClient, console: Console,
                edit: str | None) -> VerifyOutcome:
    try:
        (done,) = build(scratch, [name], docker, console, edit=edit)
    except OfflineBuildError as exc:
        return VerifyOutcome(name, "failed", 0, 0, exc.message + (f"\nfix: {exc.hint}" if exc.hint else ""))
    if edit is not None:
        return _edit_outcome(name, done)
    if done.builder != "buildkit":
        status, detail = "rebuilt offline", f"built by the {done.builder} (BuildKit could not)"
    elif done.steps and done.cached == done.steps:
        status, detail = "all cached", "every step CACHED"
    else:
        status, detail = "rebuilt offline", "ran offline: " + ", ".join(map(plain_step, done.ran))
    return VerifyOutcome(name, status, done.steps, done.cached, detail)


def _edit_outcome(name: str, done: BuildOutcome) -> VerifyOutcome:
    """What ran again after the edit and what the cache served; a proof that ran nothing says why."""
    if done.builder != "buildkit":
        return VerifyOutcome(name, "rebuilt offline", 0, 0, f"every step built by the {done.builder} (BuildKit could not)")
    if done.steps and done.cached == done.steps:
        return VerifyOutcome(name, "all cached", done.steps, done.cached,
                             "no RUN step follows a read of the build context: an edit there re-runs nothing")
    ran = ", ".join(map(plain_step, done.ran)) if done.ran else "only copies"
    return VerifyOutcome(name, "rebuilt offline", done.steps, done.cached,
                         f"ran again offline: {ran}; {done.cached} step(s) from the cache")


def plain_step(name: str) -> str:
    """A step as the report shows it: without its --mount flags (the variant's and the user's: the same at every run)."""
    return re.sub(r"--mount=\S+\s+", "", name)


def prune_build_cache(docker: DockerClient) -> None:
    """Empty the engine's build cache, so verify proves the bundle and not the engine."""
    try:
        docker.buildx.prune(all=True)
    except DockerException as exc:
        raise EngineError(f"could not prune the build cache: {engine_message(exc)}") from None

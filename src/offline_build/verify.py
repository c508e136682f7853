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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from rich.console import Console

from . import bundle, proof, unpacking
from .airgap import (
    Airtightness,
    Emptiness,
    cache_records,
    drop_records,
    emptiness_of,
    measure_emptiness,
    probe,
    targets,
)
from .build import BuildOutcome, build, plan_offline_builds
from .captures.replay import REPLAY
from .captures.apt import ARCHIVES, LISTS, UPDATE, to_true
from .captures.lang import MOUNTS
from .config import CacheOptions, Project
from .dockerfile import parse
from .edits import nonce
from .engine import Capabilities, engine_message, engine_platforms, probe_engine
from .errors import EngineError, OfflineBuildError
from .executor import Executor, check_engine
from .files import create_ignored
from .inputs import pick
from .plan import image_tag
from .platforms import runs_platform
from .setup import load_steps, setup_plan, unpack
from .signing import Signer
from .steps import Plan


@dataclass(frozen=True)
class VerifyOutcome:
    service: str
    status: str  # "all cached" | "rebuilt offline" | "failed"
    steps: int
    cached: int
    detail: str


class VerifyRefused(OfflineBuildError):
    """The engine could not make an honest proof: it has a network, or already holds what a build could use."""

    exit_code = 2


@dataclass(frozen=True)
class Measured:
    """What verify measured of the engine before it built: the proof's title says this, nothing more."""

    airtight: Airtightness
    empty: Emptiness

    def title(self) -> str:
        return f"{self.airtight.title()}, {self.empty.title()}"


def verify(project: Project, bundle_path: Path | None, docker: DockerClient, console: Console,
           *, edits: bool = False, signer: Signer | None = None,
           allow_network: bool = False) -> tuple[list[VerifyOutcome], Measured]:
    """Set the bundle up into a throwaway store and build every service with no network (with *edits*: as if
    each one's build context had changed).

    Before building it measures the engine (:mod:`offline_build.airgap`):
    one holding build cache or this project's images is refused (a step
    could pass from it although the bundle does not carry it); one whose
    build steps reach a host the export reached is refused unless
    *allow_network*, and then the result is recorded as not air-tight, never
    as proven. Afterwards the engine is left empty, as it was found.
    """
    path = bundle_path or unpacking.find_bundle(project.cache_dir)
    check_engine(docker)
    images = {s.name: image_tag(project, s) for s in project.services.values()}
    before, listed = _tags(docker), cache_records(docker)  # before the probe adds its own records
    empty = emptiness_of(project, listed, before, images)
    records = {str(r.get("ID")) for r in listed}
    create_ignored(project.cache_dir)
    work = project.cache_dir / ".work"
    work.mkdir(exist_ok=True)
    try:
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
            probe_it = partial(_airtightness, scratch, restored.manifest, caps, docker, work)
            outcomes, airtight = _builds_then_probe(scratch, docker, console, probe_it, empty, allow_network, edits)
    except BaseException:
        # The failure the user must see is this one: a cleanup that fails too only adds a note.
        try:
            _leave_empty(docker, before, records, prune=not empty.records and not empty.unmeasured)
        except EngineError as exc:
            console.print(f"[yellow]note:[/] {exc}")
        raise
    _leave_empty(docker, before, records, prune=not empty.records and not empty.unmeasured)
    measured = Measured(airtight, empty)
    passed = all(o.status != "failed" for o in outcomes)
    # The proof file, signed when a key is given, travels with the bundle; it counts as a proof only when
    # it passed on an engine measured air-tight and empty (proof.Proof.full).
    engine = {"server_version": caps.server_version,
              "image_store": "containerd" if caps.containerd_store else "classic",
              "platforms": ",".join(scratch.platforms)}
    proof.record(project, path, restored.manifest_sha256, "edits" if edits else "cached", passed, engine,
                 airtight.as_record(), empty.as_record(), outcomes, signer)
    return outcomes, measured


def dry_run(project: Project, bundle_path: Path | None, docker: DockerClient, console: Console,
            *, edits: bool = False, allow_network: bool = False) -> None:
    """What verify would do, changing nothing: the checks it measures, the scratch setup, the builds."""
    path = bundle_path or unpacking.find_bundle(project.cache_dir)
    claims = unpacking.read_claims(path)  # reads, never writes
    folder = project.cache_dir / ".work" / "verify-<scratch>"
    scratch = replace(project, cache_dir=folder, cache=CacheOptions(), apt=replace(project.apt, dir=folder / "apt-lists"))
    found = targets(project, project.apt.dir)
    network = probe_network(claims.manifest) or "default"
    say = partial(console.print, markup=False, highlight=False)
    say("# 1. the engine must be empty: no build cache record, none of this project's images "
        f"({', '.join(image_tag(project, s) for s in project.services.values())}); else refused")
    say(f"# 2. after the builds, a probe build (--network {network}, in {next(iter(claims.manifest.base_images), 'no base image')}) "
        f"lists its interfaces and connects once to each host the export reached: "
        f"{', '.join(f'{t.address} ({t.why})' for t in found) or 'none named by the project'}; "
        + ("recorded as not air-tight if one answers (--allow-network)" if allow_network
           else "refused, nothing recorded, if one answers"))
    Executor(docker, console, dry_run=True).run(setup_plan(scratch, path, claims.manifest, None))
    edit = "<a fresh value>" if edits else None
    plan = plan_offline_builds(scratch, pick(scratch, None), None, edit=edit)
    Executor(docker, console, dry_run=True).run(plan)
    say("# then: the images verify made are removed and the build cache pruned (the engine is left empty)")


def _builds_then_probe(scratch: Project, docker: DockerClient, console: Console,
                       probe_it: Callable[[], Airtightness], empty: Emptiness, allow_network: bool,
                       edits: bool) -> tuple[list[VerifyOutcome], Airtightness]:
    """Every service's build, then the air-tightness probe; refused before building when not empty."""
    if empty.records or empty.images:  # refused: the probe first, so a leaky engine is named as such
        _refuse_unmeasured(probe_it(), empty, allow_network)
    edit = nonce() if edits else None
    outcomes = [_verify_one(scratch, name, docker, console, edit) for name in (s.name for s in pick(scratch, None))]
    # After the builds: a probe build of the base before them changed what BuildKit served from the
    # imported cache (seen: a two-platform build ran its amd64 steps again). Nothing is recorded
    # unless it passes.
    airtight = probe_it()
    _refuse_unmeasured(airtight, empty, allow_network)
    return outcomes, airtight


def _refuse_unmeasured(airtight: Airtightness, empty: Emptiness, allow_network: bool) -> None:
    """No build on an engine that could make the proof lie; air-tightness first, the more basic of the two."""
    if airtight.result != "air-tight" and not allow_network:
        raise VerifyRefused(f"the engine is not air-tight: {airtight.detail}",
                            "verify on an air-gapped engine (on the harness: the offline one), or pass "
                            "--allow-network to build anyway (recorded as not air-tight, never as proven)")
    if empty.records or empty.images:  # unmeasured (a named builder) builds, but is never a full proof
        raise VerifyRefused(f"the engine is not empty: it holds {empty.describe()}; a step could pass from "
                            "them although the bundle does not carry it",
                            "use an engine without them (on the harness: scripts/engines.sh reset offline), "
                            "or --prune-build-cache to empty this one's build cache and remove this "
                            "project's images first")


def _airtightness(scratch: Project, manifest: bundle.Manifest, caps: Capabilities, docker: DockerClient,
                  work: Path) -> Airtightness:
    """The probe, run in the bundle's first base image with the bundle's network mode."""
    if not manifest.base_images:
        return Airtightness("not measured", "the bundle has no base image to run the probe in")
    base, tag = next(iter(manifest.base_images.items()))
    contexts = {base: f"oci-layout://{scratch.store}:{tag}"} if caps.oci_layout_context else {}
    found = targets(scratch, scratch.apt.dir)
    return probe(docker, base, contexts, found, probe_network(manifest), work, scratch.builder.named)


def probe_network(manifest: bundle.Manifest) -> str | None:
    """The network mode the probe measures: the bundle's, or host when it carries recordings (replayed steps run
    with --network=host, to reach the replay proxy)."""
    replayed = any(f.path.startswith(f"files/{REPLAY.name}/") for f in manifest.files)
    return "host" if replayed else manifest.network or None


def _tags(docker: DockerClient) -> set[str]:
    try:
        return {t for image in docker.image.list() for t in image.repo_tags}
    except DockerException as exc:
        raise EngineError(f"could not list the engine's images: {engine_message(exc)}") from None


def _leave_empty(docker: DockerClient, before: set[str], records: set[str], *, prune: bool) -> None:
    """Remove what verify added: its images, and the build cache it made (all of it when there was none
    before; else only its own records, so a refused engine's cache stays), so the next proof finds the
    engine as this one did."""
    added = sorted(_tags(docker) - before)
    try:
        if added:
            docker.image.remove(added, force=True)
        if prune:
            docker.buildx.prune(all=True)
        else:
            drop_records(docker, {str(r.get("ID")) for r in cache_records(docker)} - records)
    except DockerException as exc:
        raise EngineError(f"could not empty the engine after the proof: {engine_message(exc)}",
                          f"remove them by hand: docker image rm {' '.join(added)}; docker builder prune -a") from None


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
    runs = _user_runs(scratch, name)
    if edit is not None:
        return _edit_outcome(name, done, runs)
    if done.builder != "buildkit":
        status, detail = "rebuilt offline", f"built by the {done.builder} (BuildKit could not)"
    elif done.steps and done.cached == done.steps:
        status, detail = "all cached", "every step CACHED"
    else:
        status, detail = "rebuilt offline", "ran offline: " + ", ".join(plain_step(n, runs) for n in done.ran)
    return VerifyOutcome(name, status, done.steps, done.cached, detail)


def _edit_outcome(name: str, done: BuildOutcome, runs: tuple[str, ...]) -> VerifyOutcome:
    """What ran again after the edit and what the cache served; a proof that ran nothing says why."""
    if done.builder != "buildkit":
        return VerifyOutcome(name, "rebuilt offline", 0, 0, f"every step built by the {done.builder} (BuildKit could not)")
    if done.steps and done.cached == done.steps:
        return VerifyOutcome(name, "all cached", done.steps, done.cached,
                             "no RUN step follows a read of the build context: an edit there re-runs nothing")
    ran = ", ".join(plain_step(n, runs) for n in done.ran) if done.ran else "only copies"
    return VerifyOutcome(name, "rebuilt offline", done.steps, done.cached,
                         f"ran again offline: {ran}; {done.cached} step(s) from the cache")


# What the offline variant adds to a RUN it serves: mounts, the tool's environment (after the CA's), the folders
# apt wants, mvn's -o and repository; ``apt-get update`` it turns into ``true``.
_MOUNT = re.compile(r"--mount=\S+\s+")
_PREFIXES = re.compile(r"^(?:if \[ -f \S+ \]; then export [^;]*; fi; )?"
                       r"(?:export (?:\w+=(?:\"[^\"]*\"|\S*)\s*)+&& )?"
                       rf"(?:mkdir -p {LISTS}/partial {ARCHIVES}/partial && )?")
_MVN_FLAGS = re.compile(rf" -o -Dmaven\.repo\.local={re.escape(MOUNTS)}/\S+")
_RUN = re.compile(r"^(?P<at>\[[^\]]*\]\s+)?RUN\s+(?P<command>.*)$", re.S)


def plain_step(name: str, runs: Sequence[str] = ()) -> str:
    """A step as the report shows it: the user's own ``RUN`` among *runs* (the Dockerfile's, as parsed) that
    BuildKit's *name* of it came from, else *name* without what the offline variant adds.
    """
    found = _RUN.match(name)
    if found is None:
        return name
    command = _MVN_FLAGS.sub("", _MOUNT.sub("", found["command"]))
    shown = " ".join(command.split())
    # The closest: the step itself, else the longest command served ("make" also ends "cmake .. && make").
    mine = [((c == shown, len(c)), run) for run in runs for c in _as_served(run) if _came_from(shown, c)]
    if mine:
        return f"{found['at'] or ''}{' '.join(max(mine)[1].split())}"
    return f"{found['at'] or ''}RUN {_PREFIXES.sub('', shown)}"


def _came_from(shown: str, command: str) -> bool:
    """Is *shown* *command* itself, or *command* as a capture serves it (after its setup, or wrapped in one)?"""
    return shown == command or shown.endswith(f"&& {command}") or f"&& ( {command} ) &&" in shown


def _as_served(run: str) -> tuple[str, ...]:
    """A user's RUN command as it can appear in the variant's (whitespace collapsed): as written, or with apt's
    index refresh made ``true``."""
    words = run.split()[1:]
    command = " ".join(words[next((i for i, w in enumerate(words) if not w.startswith("--")), len(words)):])
    return tuple(c for c in {command, " ".join(UPDATE.sub(to_true, command).split())} if c)


def _user_runs(project: Project, name: str) -> tuple[str, ...]:
    """The service's own RUN instructions, for the report to show instead of the variant's."""
    service = project.service(name)
    df = parse(service.dockerfile, dict(service.build_args))
    return tuple(i.original for stage in df.stages for i in stage.instructions if i.cmd == "RUN")


def prune_build_cache(docker: DockerClient, project: Project) -> None:
    """Empty the engine's build cache and remove this project's images, so verify proves the bundle and not
    the engine (``--prune-build-cache``)."""
    images = {s.name: image_tag(project, s) for s in project.services.values()}
    try:
        docker.buildx.prune(all=True)
        mine = measure_emptiness(docker, project, images).images
        if mine:
            docker.image.remove(list(mine), force=True)
    except DockerException as exc:
        raise EngineError(f"could not prune the build cache: {engine_message(exc)}") from None

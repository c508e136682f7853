"""``offline.build``: plan each service's offline build, BuildKit first with the classic fallback planned.

The plan is complete before anything runs: ``--dry-run`` prints each
service's buildx command and, where a classic variant exists, the classic
build it would fall back to. Running is the executor's (``runners/build.py``
decides, per service, whether the fallback is needed).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from python_on_whales import DockerClient
from rich.console import Console

from .backends import check_backend
from .config import Project, Service
from .edits import EDIT_ARG, edited
from .engine import Capabilities, engine_info, native_platform, probe_engine
from .executor import Executor, StepResult
from .files import create_ignored
from .inputs import Inputs, inputs, pick, variant_steps
from .plan import base_tag, build_platforms, cache_tag, classic_cache_image, ensure_builder, image_tag, offline_build
from .platforms import arch
from .state import bundle_network
from .steps import Build, ClassicBuild, EnsureBuilder, OfflineBuild, Plan, Step, WriteFile
from .store import Layout


@dataclass(frozen=True)
class BuildOutcome:
    service: str
    image: str
    steps: int
    cached: int
    seconds: float
    ran: tuple[str, ...]
    builder: str = "buildkit"

    @property
    def status(self) -> str:
        if self.builder != "buildkit":
            return self.builder
        if self.steps and self.cached == self.steps:
            return "all cached"
        return "rebuilt offline" if self.ran else "built"


def classic_step(project: Project, i: Inputs, store_tags: Collection[str] = ()) -> ClassicBuild | None:
    """The classic-builder build of a service, or None when it has no classic variant.

    It reuses layers from the bundle's classic build of the service (when
    the store, *store_tags*, holds it) and from its own last build here:
    with ``--cache-from``, Docker 20.10's classic builder matches only the
    images named, not the engine's other layers.
    """
    if i.classic.text is None:
        return None
    needs = tuple(dict.fromkeys([*(i.classic.bases.get(b, b) for b in i.bases), *i.classic.images]))
    tag, bundled = image_tag(project, i.service), classic_cache_image(project, i.service)
    return ClassicBuild(title=f"build {i.service.name} (classic builder)", service=i.service.name,
                        context=i.service.context, dockerfile=i.classic_path,
                        tags=(tag,), target=i.service.target,
                        build_args=tuple(sorted(i.service.build_args.items())), network="none",
                        needs_images=needs, cache_from=(*([bundled] if base_tag(bundled) in store_tags else []), tag))


def plan_offline_builds(project: Project, services: list[Service], caps: Capabilities | None,
                        *, fallback: bool = True, classic_only: bool = False, edit: str | None = None,
                        native: str | None = None) -> Plan:
    """One offline build per service, using what the store holds, each with its classic fallback.

    With *caps* None (a dry run, which must not touch the engine) the plan
    assumes an engine that reads ``oci-layout://`` contexts. With *edit*
    (``offline.verify --edits``) each builds its edited Dockerfile
    (:mod:`offline_build.edits`) with that value: as if its whole context had changed.
    *native* is the engine's own platform (None: this machine's, as in a dry run).
    """
    platforms = build_platforms(project.platforms, native or f"linux/{arch()}", project.platforms_asked)
    everyone = [inputs(project, s, online=False) for s in services]
    steps: list[Step] = list(variant_steps(everyone))
    tags, network = Layout(project.store).tags(), bundle_network(project)  # read once, for every service
    use_builder = ensure_builder(project.builder)
    if use_builder and not classic_only:  # the classic builder is the engine's own
        steps.insert(0, use_builder)
    for i in everyone:
        buildkit = None if classic_only else _buildkit_step(project, i, caps, tags, network, platforms)
        classic = classic_step(project, i, tags)
        if edit is not None:
            buildkit, classic = _edited(project, i, buildkit, classic, edit, steps)
        steps.append(OfflineBuild(title=buildkit.title if buildkit else f"build {i.service.name} (classic builder)",
                                  service=i.service.name, buildkit=buildkit, classic=classic,
                                  no_classic=i.classic.reason, fallback=fallback))
    return Plan("build", tuple(steps))


def _buildkit_step(project: Project, i: Inputs, caps: Capabilities | None, tags: dict[str, Any],
                   network: str | None, platforms: tuple[str, ...]) -> Build:
    use_oci = (caps.oci_layout_context if caps else True) and all(base_tag(b) in tags for b in i.bases)
    step = offline_build(project, i.service, i.bases, cache=cache_tag(i.service.name) in tags,
                         oci_contexts=use_oci, network=network, dockerfile=i.dockerfile,
                         contexts=i.contexts, platforms=platforms)
    if project.cache.offline_writes_back and caps is not None and not caps.cache_export:
        step = replace(step, cache_to=())  # reading the team cache still helps; failing over the write would not
    return replace(step, replay=i.replays)


def _edited(project: Project, i: Inputs, buildkit: Build | None, classic: ClassicBuild | None, edit: str,
            steps: list[Step]) -> tuple[Build | None, ClassicBuild | None]:
    """Both builds of *i* from their edited Dockerfiles (written by a planned step), given the edit's value."""
    arg = ((EDIT_ARG, edit),)
    folder = project.cache_dir / "variants" / i.service.name
    if buildkit is not None:
        text = i.variant.text if i.variant else i.service.dockerfile.read_text(encoding="utf-8")
        if (changed := edited(text, i.dockerfile, i.service.build_args)) is not None:
            steps.append(WriteFile(title=f"write {i.service.name}'s edited Dockerfile", path=folder / "Dockerfile.edit",
                                   text=changed))
            buildkit = replace(buildkit, dockerfile=folder / "Dockerfile.edit", build_args=buildkit.build_args + arg)
    if classic is not None and i.classic.text is not None:
        if (changed := edited(i.classic.text, i.classic_path, i.service.build_args)) is not None:
            path = folder / "Dockerfile.classic-edit"
            steps.append(WriteFile(title=f"write {i.service.name}'s edited classic Dockerfile", path=path,
                                   text=changed))
            classic = replace(classic, dockerfile=path, build_args=classic.build_args + arg)
    return buildkit, classic


def build(project: Project, names: list[str] | None, docker: DockerClient, console: Console,
          *, dry_run: bool = False, fallback: bool = True, classic_only: bool = False,
          edit: str | None = None) -> list[BuildOutcome]:
    """Build services offline: BuildKit with the imported cache, else the classic builder.

    The classic builder is used only after a BuildKit-specific failure (or
    with *classic_only*), only where a classic variant exists, and each
    decision is printed with its reason.
    """
    services = pick(project, names)
    if not classic_only:  # the classic builder uses no remote cache
        check_backend(project)
    pushes = project.cache.offline_writes_back
    need = ("oci_layout_context", "cache_export") if pushes else ("oci_layout_context",)
    if not dry_run and classic_only:
        engine_info(docker)  # reachable, before anything is written (no probe asked it)
    caps = None if dry_run or classic_only else probe_engine(docker, project, need)
    native = None if dry_run or classic_only else native_platform(docker)
    plan = plan_offline_builds(project, services, caps, fallback=fallback, classic_only=classic_only, edit=edit,
                               native=native)
    if not dry_run and classic_only:
        create_ignored(project.cache_dir)  # planned (a bad target: refused): the variants go there
    if pushes and caps is not None and not caps.cache_export:
        console.print(f"note: this engine cannot export caches; builds read {project.cache.backend} "
                      "cache but do not write it back")
    result = Executor(docker, console, dry_run=dry_run).run(plan)
    return [_outcome(project, r) for r in result.of(OfflineBuild)]


def _outcome(project: Project, r: StepResult) -> BuildOutcome:
    step: OfflineBuild = r.step  # type: ignore[assignment]
    service = project.service(step.service)
    if r.detail["builder"] != "buildkit":
        return BuildOutcome(service.name, r.detail["tag"], r.detail.get("steps", 0), r.detail.get("cached", 0),
                            r.detail["seconds"], (), r.detail["builder"])
    report = r.detail["report"]
    return BuildOutcome(service.name, image_tag(project, service), len(report.steps),
                        len(report.cached), r.seconds, tuple(v.name for v in report.ran))


__all__ = ["BuildOutcome", "EnsureBuilder", "build", "classic_step", "plan_offline_builds"]

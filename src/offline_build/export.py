"""``offline.export``: plan everything a bundle needs on the online machine, run it, pack it.

Order: the builder, base images into the store, every capture (shared per
key across services), the offline variants, each service's build with cache
export and its merge into the store, the classic builder's preinstalled
bases, resources, and last the bundle.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from rich.console import Console

from . import unpacking
from . import lint as lint_mod
from .backends import check_backend
from .captures import all_captures
from .captures.lang import LangCapture, capture_build
from .captures.replay import REPLAY
from .config import Project, Service
from .build import classic_step
from .engine import probe_engine
from .errors import EngineError, OfflineBuildError
from .executor import Executor
from .files import sha256_file
from .inputs import (
    Inputs,
    all_bases,
    capture_steps,
    captures_image,
    inputs,
    lint_project,
    pick,
    preinstalled_image,
    variant_steps,
)
from .plan import base_tag, bundle_name, cache_tag, classic_cache_image, ensure_builder, online_build
from .platforms import arch
from .preinstall import apt_union, preinstall_steps
from .signing import Signer
from .state import lock
from .steps import FetchResource, ManifestDraft, MergeCache, Pack, Plan, SaveImages, Step


def export_plan(project: Project, services: list[Service], today: date | None = None,
                since: Path | None = None, split_size: int | None = None,
                engine: dict[str, str] | None = None, signer: Signer | None = None) -> Plan:
    """Save bases, capture, write variants, build with cache export, preinstall, fetch, pack.

    Captures are made for the union of every service's needs, even when
    only one service is exported: they are shared per key (a base image).
    Each service exports into its own folder, merged into the store
    afterwards (two exports into one folder race on its temp files).
    """
    everyone = [inputs(project, s, online=True) for s in project.services.values()]
    chosen = [i for i in everyone if i.service in services]
    steps: list[Step] = _image_steps(project)
    steps += capture_steps(project, everyone)
    steps += variant_steps(chosen)
    work = project.cache_dir / ".work"
    for i in chosen:
        steps += _capture_step(project, i, work)
        dest = work / cache_tag(i.service.name)
        # Its replayed steps from the capture build's fresh recording: a request that changes every run fails here.
        steps.append(replace(online_build(project, i.service, cache_dest=dest, dockerfile=i.dockerfile,
                                          contexts=i.contexts, bases=i.bases), replay=i.replays))
        steps.append(MergeCache(title=f"merge {i.service.name} cache into the store", source=dest,
                                store=project.store, tag=cache_tag(i.service.name),
                                bases=tuple(base_tag(b) for b in i.bases)))
    steps += preinstall_steps(project, everyone, {s.name for s in services})
    steps += classic_cache_steps(project, chosen)
    for res in project.resources:
        steps.append(FetchResource(title=f"fetch resource {res.name}", resource_name=res.name, kind=res.kind,
                                   source=res.source, ref=res.ref, sha256=res.sha256,
                                   dest=project.cache_dir / "resources" / res.dest))
    steps.append(Pack(title="pack the delta bundle" if since else "pack the bundle", cache_dir=project.cache_dir,
                      store=project.store, output=project.cache_dir / bundle_name(today, delta=since is not None),
                      services=tuple(s.name for s in services), since=since, split_size=split_size,
                      folders=bundle_folders(project), manifest=manifest_draft(project, everyone, engine or {}),
                      resources=project.resources, root=project.root, signer=signer))
    return Plan("export", tuple(steps))


def classic_cache_steps(project: Project, chosen: list[Inputs]) -> list[Step]:
    """Each service built by the classic builder, saved for the site's classic fallback (``--cache-from``).

    A classic builder (Docker 20.10) cannot read the bundle's BuildKit cache:
    without these it runs every step after setup. It makes one platform, the
    build machine's, so a project built for others gets none.
    """
    if project.platforms and project.platforms != (f"linux/{arch()}",):
        return []
    # With the export's network mode, as its BuildKit build: a step that fetches what no capture
    # serves (offline.lint names it) must not fail the export here when it did not there.
    builds = [replace(step, title=f"build {i.service.name} with the classic builder (for the classic fallback)",
                      tags=(classic_cache_image(project, i.service),), cache_from=(), network=project.network)
              for i in chosen if (step := classic_step(project, i)) is not None]
    if not builds:
        return []
    return [*builds, SaveImages(title=f"save {len(builds)} classic build(s) for the classic fallback",
                                images=tuple(b.tags[0] for b in builds), store=project.store)]


def _capture_step(project: Project, i: Inputs, work: Path) -> list[Step]:
    """The service's capture build, when a language capture (pip, npm) serves one of its steps."""
    if i.capture is None:
        return []
    tools = tuple(c for c in all_captures() if isinstance(c, LangCapture) and i.needs[c.name])
    base = online_build(project, i.service, dockerfile=i.capture_path, contexts=i.capture_contexts, bases=i.bases)
    step = capture_build(project, base, work / f"capture-{i.service.name}", tools)
    if not i.replays:
        return [step]
    names = [t.name for t in tools] + [REPLAY.name]
    return [replace(step, title=f"capture {i.service.name}'s {', '.join(names)} dependencies", record=i.replays[0])]


def _image_steps(project: Project) -> list[Step]:
    """The named builder, then the base images (and the builder's BuildKit image) saved into the store."""
    steps: list[Step] = []
    use_builder = ensure_builder(project.builder)
    if use_builder:
        steps.append(use_builder)
    bases = all_bases(project, list(project.services.values()))
    if bases:
        steps.append(SaveImages(title=f"save {len(bases)} base image(s)", images=bases, store=project.store,
                                platforms=project.platforms))
    if use_builder and use_builder.image:
        # No registry at the site: the builder's BuildKit image travels too.
        steps.append(SaveImages(title=f"save the BuildKit image {use_builder.image}", images=(use_builder.image,),
                                store=project.store))
    return steps


def bundle_folders(project: Project) -> tuple[tuple[str, Path], ...]:
    """The local folders that travel as ``files/<name>/``: each capture's, and the resources."""
    return (*((c.name, c.folder(project)) for c in all_captures()),
            ("resources", project.cache_dir / "resources"))


def manifest_draft(project: Project, everyone: list[Inputs], engine: dict[str, str]) -> ManifestDraft:
    """The manifest's view of the project; ``services`` covers every cache the store will hold."""
    services = tuple((i.service.name, (
        ("image", f"{i.service.image}:{project.version}"),
        ("dockerfile", str(i.service.dockerfile.relative_to(project.root))),
        ("dockerfile_sha256", sha256_file(i.service.dockerfile)),
        ("cache_tag", cache_tag(i.service.name)),
        ("base_images", i.bases))) for i in everyone)
    refs = [*all_bases(project, list(project.services.values())),
            *(preinstalled_image(project, b) for b in apt_union(everyone)),
            *(captures_image(project, i.service) for i in everyone if i.classic.images),
            *(classic_cache_image(project, i.service) for i in everyone if i.classic.text is not None)]
    builder: tuple[tuple[str, str], ...] = ()
    if project.builder.named:
        builder = (("name", project.builder.named), ("driver", project.builder.driver))
        if project.builder.image:
            builder += (("image", project.builder.image), ("tag", base_tag(project.builder.image)))
    return ManifestDraft(project=project.name, version=project.version, platforms=project.platforms,
                         network=project.network or "", engine=tuple(engine.items()),
                         services=services, base_images=tuple((r, base_tag(r)) for r in dict.fromkeys(refs)),
                         builder=builder)


def _lint_first(project: Project, console: Console, strict: bool) -> None:
    findings = [f for f in lint_project(project) if f.severity != "info"]
    if not findings:
        return
    counts = lint_mod.counts(findings)
    console.print(f"[yellow]lint:[/] {counts['error']} error(s), {counts['warning']} warning(s): steps that "
                  "need the network work offline only while their layer stays cached (offline.lint shows them)")
    if strict:
        raise OfflineBuildError(f"offline.lint found {len(findings)} problem(s) and --strict is on",
                                "fix them or suppress them (# offline-build: ignore=<rule>), or drop --strict")


def check_since(project: Project, since: Path) -> None:
    """Refuse a bad ``--since`` before any build starts: a delta against it would not set up at the site."""
    if not since.exists():
        raise OfflineBuildError(f"--since {since}: no such bundle or manifest",
                                "give the last bundle carried to the site, or its .manifest.json beside it")
    base, _ = unpacking.load_manifest(since)
    if base.project != project.name:
        raise OfflineBuildError(f"--since {since} is a bundle of project {base.project!r}, not {project.name!r}",
                                "give this project's last bundle (its build-cache-*.manifest.json will do)")


def export(project: Project, names: list[str] | None, docker: DockerClient, console: Console,
           *, dry_run: bool = False, today: date | None = None, strict: bool = False,
           since: Path | None = None, split_size: int | None = None, signer: Signer | None = None) -> dict[str, Any]:
    services = pick(project, names)
    check_backend(project)
    if since is not None:
        check_since(project, since)
    _lint_first(project, console, strict)
    if dry_run:
        Executor(docker, console, dry_run=True).run(export_plan(project, services, today, since, split_size,
                                                                     signer=signer))
        return {}
    caps = probe_engine(docker, project, ("cache_export",))
    if not caps.cache_export:
        raise EngineError(
            f"this engine (Docker {caps.server_version}) cannot export build caches",
            "export on Docker 26+ with the containerd image store on "
            '({"features": {"containerd-snapshotter": true}} in daemon.json)')
    engine = {"server": caps.server_version, "buildx": caps.buildx_version or ""}
    plan = export_plan(project, services, today, since, split_size, engine, signer)
    with lock(project.cache_dir):
        _clear_partials(project.cache_dir / ".work", services)
        result = Executor(docker, console).run(plan)
    packed = result.of(Pack)[0]
    return {"output": packed.detail["output"], "size": packed.detail["size"],
            "blobs": packed.detail["blobs"], "unique_bytes": packed.detail["unique_bytes"],
            "folders": packed.detail["folders"], "pack_seconds": packed.detail["write_seconds"],
            "signed": packed.detail["signed"], "sbom": packed.detail["sbom"],
            "services": [s.name for s in services], "result": result, "cache": _team_cache(project),
            "builder": _builder_line(project)}


def _builder_line(project: Project) -> str | None:
    b = project.builder
    if b.named is None:
        return None
    carried = f"; the bundle carries {b.image}, setup loads it" if b.image else ""
    return f"{b.name} ({b.driver}{carried})"


def _team_cache(project: Project) -> str | None:
    c = project.cache
    if c.location is None:
        return None
    return f"{c.backend} {c.location} ({'read and written' if c.push else 'read'})"


def _clear_partials(work: Path, services: list[Service]) -> None:
    """A crashed export may have left a half-written cache folder: start clean."""
    work.mkdir(parents=True, exist_ok=True)
    for service in services:
        shutil.rmtree(work / cache_tag(service.name), ignore_errors=True)

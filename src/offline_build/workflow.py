"""The workflows behind the tasks: export, setup, build, verify.

Each is a short chain: load what is needed, make the plan, run it, report.
Nothing here imports invoke; the tasks are a thin layer over these
functions, and so is anything else that wants to drive offline-build.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from rich.console import Console

from . import apt as apt_mod
from . import bundle, dockerfile
from . import lint as lint_mod
from . import variant as variant_mod
from .config import CacheOptions, Project, Service
from .engine import (
    PROBES,
    Capabilities,
    buildx_version,
    containerd_store,
    engine_id,
    engine_info,
    engine_message,
    engine_platforms,
    image_present,
    probe,
    runs_platform,
)
from .errors import EngineError, OfflineBuildError, StepError
from .executor import Executor, StepResult, check_engine
from .plan import (
    Build,
    CaptureApt,
    ClassicBuild,
    EnsureBuilder,
    FetchResource,
    MergeCache,
    Pack,
    Plan,
    SaveImages,
    Step,
    WriteFile,
    base_tag,
    bundle_name,
    cache_tag,
    ensure_builder,
    offline_build,
    online_build,
    slug,
)
from .store import REF_NAME, Layout, sha256_file


def service_bases(project: Project, service: Service) -> tuple[str, ...]:
    """External images *service*'s Dockerfile needs (``FROM``, ``COPY --from``)."""
    df = dockerfile.parse(service.dockerfile, service.build_args)
    return tuple(df.base_images())


def all_bases(project: Project, services: list[Service]) -> tuple[str, ...]:
    """Base images to carry: ``base_images`` from the project file plus every derived one."""
    found: dict[str, None] = dict.fromkeys(project.base_images or ())
    for service in services:
        found.update(dict.fromkeys(service_bases(project, service)))
    return tuple(found)


@dataclass(frozen=True)
class Inputs:
    """What one service builds from: its Dockerfile or the generated variants."""

    service: Service
    bases: tuple[str, ...]
    apt: dict[str, apt_mod.BaseApt]
    dockerfile: Path  # the offline variant when APT is captured, else the user's file
    variant: variant_mod.Variant | None
    contexts: tuple[tuple[str, str], ...]
    classic_path: Path
    classic: variant_mod.ClassicVariant


def capture_dir(project: Project, base: str) -> Path:
    return project.apt.dir / slug(base).lower()


def preinstalled_image(project: Project, base: str) -> str:
    """``<project>-<base slug>-apt:<version>``: the base with its APT packages installed."""
    return f"{project.name}-{slug(base).lower().replace('.', '-')}-apt:{project.version}"


def inputs(project: Project, service: Service, *, online: bool) -> Inputs:
    """Work out the variants for *service*; pure apart from reading its Dockerfile.

    Online, every base with APT installs is (about to be) captured; offline,
    only those whose capture the bundle brought.
    """
    df = dockerfile.parse(service.dockerfile, service.build_args)
    bases = tuple(df.base_images())
    apts = apt_mod.analyse(df) if project.apt.enabled else {}
    captured = {b for b in apts if online or (capture_dir(project, b) / "lists").is_dir()}
    folder = project.cache_dir / "variants" / service.name
    var = variant_mod.offline_variant(df, captured) if captured or "syntax" in df.directives else None
    use_variant = var is not None and var.changed
    contexts = tuple((name, str(capture_dir(project, base))) for name, base in (var.contexts.items() if var else ()))
    classic = variant_mod.classic_variant(df, {b: preinstalled_image(project, b) for b in apts})
    return Inputs(service, bases, apts, folder / "Dockerfile.offline" if use_variant else service.dockerfile,
                  var if use_variant else None, contexts, folder / "Dockerfile.classic", classic)


def variant_steps(all_inputs: list[Inputs]) -> list[Step]:
    steps: list[Step] = []
    for i in all_inputs:
        if i.variant:
            steps.append(WriteFile(title=f"write {i.service.name}'s offline Dockerfile", path=i.dockerfile,
                                   text=i.variant.text))
        if i.classic.text is not None:
            steps.append(WriteFile(title=f"write {i.service.name}'s classic Dockerfile", path=i.classic_path,
                                   text=i.classic.text))
    return steps


def apt_union(all_inputs: list[Inputs]) -> dict[str, apt_mod.BaseApt]:
    """Per base image, every package any service installs on it."""
    union: dict[str, apt_mod.BaseApt] = {}
    for i in all_inputs:
        for base, use in i.apt.items():
            merged = union.setdefault(base, apt_mod.BaseApt(base))
            merged.packages += [p for p in use.packages if p not in merged.packages]
            merged.source_edits += [e for e in use.source_edits if e not in merged.source_edits]
            merged.no_recommends = merged.no_recommends and use.no_recommends
    return union


def capture_steps(project: Project, union: dict[str, apt_mod.BaseApt]) -> list[Step]:
    return [CaptureApt(title=f"capture APT for {base} ({len(use.packages)} packages)", base=base,
                       dest=capture_dir(project, base), packages=tuple(use.packages),
                       no_recommends=use.no_recommends,
                       source_edits=tuple(apt_mod.shell_join(e) for e in use.source_edits))
            for base, use in union.items()]


def preinstall_steps(project: Project, union: dict[str, apt_mod.BaseApt]) -> list[Step]:
    """Build ``<project>-<base>-apt`` per base: the classic builder's starting point."""
    steps: list[Step] = []
    for base, use in union.items():
        name = variant_mod.context_name(base)
        recommends = " --no-install-recommends" if use.no_recommends else ""
        folder = project.cache_dir / "variants" / "_preinstalled" / slug(base).lower()
        text = (f"FROM {base}\n"
                f"RUN --mount=type=bind,from={name},source=lists,target={variant_mod.LISTS},rw "
                f"--mount=type=bind,from={name},source=archives,target={variant_mod.ARCHIVES},rw "
                f"mkdir -p {variant_mod.LISTS}/partial {variant_mod.ARCHIVES}/partial "
                f"&& apt-get install -y{recommends} {' '.join(use.packages)}\n")
        steps.append(WriteFile(title=f"write the Dockerfile of {preinstalled_image(project, base)}",
                               path=folder / "Dockerfile", text=text))
        steps.append(Build(title=f"build {preinstalled_image(project, base)}", service="",
                           context=folder, dockerfile=folder / "Dockerfile",
                           tags=(preinstalled_image(project, base),), network="none",
                           build_contexts=((name, str(capture_dir(project, base))),), load=True,
                           platforms=project.platforms))
    if union:
        images = tuple(preinstalled_image(project, b) for b in union)
        steps.append(SaveImages(title=f"save {len(images)} preinstalled base image(s)", images=images,
                                store=project.store))
    return steps


def apt_capture(project: Project, docker: DockerClient, console: Console, *, dry_run: bool = False) -> None:
    """Capture APT for every base image the services install packages on."""
    union = apt_union([inputs(project, s, online=True) for s in project.services.values()])
    plan = Plan("apt-capture", tuple(capture_steps(project, union)))
    if not plan.steps:
        console.print("nothing to capture: no service installs APT packages")
        return
    if not dry_run:
        check_engine(docker)
    result = Executor(docker, console, dry_run=dry_run).run(plan)
    for r in result.results:
        console.print(f"  {r.step.dest}: {r.detail['debs']} .deb file(s)")  # type: ignore[attr-defined]


def base_images(project: Project, docker: DockerClient, console: Console, *, dry_run: bool = False) -> list[str]:
    """Capture APT and build ``<project>-<base>-apt`` for every base that gets packages."""
    union = apt_union([inputs(project, s, online=True) for s in project.services.values()])
    steps = capture_steps(project, union) + [s for s in preinstall_steps(project, union)
                                             if not isinstance(s, SaveImages)]
    if not steps:
        console.print("nothing to build: no service installs APT packages")
        return []
    if not dry_run:
        check_engine(docker)
    Executor(docker, console, dry_run=dry_run).run(Plan("base-images", tuple(steps)))
    return [preinstalled_image(project, b) for b in union]


def lint_project(project: Project, paths: list[Path] | None = None) -> list[lint_mod.Finding]:
    """Lint the services' Dockerfiles (or *paths*) knowing what the project handles.

    Every image a service's Dockerfile names travels in the bundle, and APT
    is captured when enabled; a file given by path is compared with the
    images the local store holds.
    """
    if paths:
        tags = Layout(project.store).tags() if Layout(project.store).exists() else {}
        recorded = project.cache_dir / "bundle.json"
        bundled = set(json.loads(recorded.read_text()).get("base_images", {})) if recorded.is_file() else set()
        ctx = lint_mod.Context(frozenset(bundled) if tags else None, project.apt.enabled, True)
        return [f for p in paths for f in lint_mod.lint_path(p, ctx)]
    bundled = frozenset(all_bases(project, list(project.services.values())))
    ctx = lint_mod.Context(bundled, project.apt.enabled, True)
    return [f for s in project.services.values() for f in lint_mod.lint_path(s.dockerfile, ctx, dict(s.build_args))]


def pick(project: Project, names: list[str] | None) -> list[Service]:
    return [project.service(n) for n in names] if names else list(project.services.values())


# --- build -------------------------------------------------------------------


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


def plan_offline_builds(project: Project, services: list[Service], caps: Capabilities | None,
                        everyone: list[Inputs] | None = None) -> Plan:
    """One offline build per service, using what the store holds.

    With *caps* None (a dry run, which must not touch the engine) the plan
    assumes an engine that reads ``oci-layout://`` contexts. *everyone* are
    the services' inputs when the caller already worked them out.
    """
    tags = Layout(project.store).tags()
    oci = caps.oci_layout_context if caps else True
    network = bundle_network(project)
    everyone = everyone if everyone is not None else [inputs(project, s, online=False) for s in services]
    steps: list[Step] = list(variant_steps(everyone))
    use_builder = ensure_builder(project.builder)
    if use_builder:
        steps.insert(0, use_builder)
    for i in everyone:
        use_oci = oci and all(base_tag(b) in tags for b in i.bases)
        steps.append(offline_build(project, i.service, i.bases, cache=cache_tag(i.service.name) in tags,
                                   oci_contexts=use_oci, network=network, dockerfile=i.dockerfile,
                                   contexts=i.contexts))
    return Plan("build", tuple(steps))


def bundle_network(project: Project) -> str | None:
    """The network mode the restored bundle was exported with (else the project's).

    Offline builds must use the same mode, or every ``RUN`` step misses the
    cache (seen: ``--network host`` then ``--network none`` re-runs them all).
    """
    recorded = restored_bundle(project)
    return (recorded.get("network") or None) if recorded is not None else project.network


def restored_bundle(project: Project) -> dict[str, Any] | None:
    """What setup recorded of the bundle it restored (``bundle.json``); None when none, or unreadable."""
    recorded = project.cache_dir / "bundle.json"
    if recorded.is_file():
        try:
            data = json.loads(recorded.read_text())
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return None


# BuildKit failures a classic build can get past, with the one-line reason
# printed for the fallback. Anything else (a failing RUN, a syntax error, a
# missing file) is the build's own and is not retried with another builder.
BUILDKIT_ONLY = {
    "moby.buildkit.frontend.contexts": "this engine's BuildKit has no named build contexts",
    "unknown scheme oci-layout": "this engine cannot read oci-layout:// contexts",
    "not supported for the docker driver": "this engine's build driver cannot import or export caches",
    "failed to resolve source metadata": "BuildKit tried to resolve an image it cannot reach offline",
    "pull access denied": "BuildKit tried to pull a base image",
    "unknown flag: mount": "this engine's Dockerfile frontend has no RUN --mount",
    "'buildx' is not a docker command": "buildx is not installed",
    "unknown command: docker buildx": "buildx is not installed",
    "no builder": "the buildx builder is unavailable",
    "failed to find driver": "the buildx builder is unavailable",
}


def buildkit_reason(message: str) -> str | None:
    lowered = message.lower()
    return next((why for marker, why in BUILDKIT_ONLY.items() if marker.lower() in lowered), None)


def classic_step(project: Project, i: Inputs) -> ClassicBuild | None:
    """The classic-builder build of a service, or None when it has no classic variant."""
    if i.classic.text is None:
        return None
    needs = tuple(dict.fromkeys(i.classic.bases.get(b, b) for b in i.bases))
    return ClassicBuild(title=f"build {i.service.name} (classic builder)", service=i.service.name,
                        context=i.service.context, dockerfile=i.classic_path,
                        tags=(f"{i.service.image}:{project.version}",), target=i.service.target,
                        build_args=tuple(sorted(i.service.build_args.items())), network="none",
                        needs_images=needs)


def build(project: Project, names: list[str] | None, docker: DockerClient, console: Console,
          *, dry_run: bool = False, fallback: bool = True, classic_only: bool = False) -> list[BuildOutcome]:
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
    caps = None if dry_run or classic_only else probe_engine(docker, project, need)
    everyone = [inputs(project, s, online=False) for s in services]
    plan = plan_offline_builds(project, services, caps, everyone)
    if pushes and caps is not None and not caps.cache_export:
        # Reading the team cache still helps; failing the build over the
        # write-back would not.
        console.print(f"note: this engine cannot export caches; builds read {project.cache.backend} "
                      "cache but do not write it back")
        plan = Plan(plan.name, tuple(replace(s, cache_to=()) if isinstance(s, Build) else s
                                     for s in plan.steps))
    by_name = {i.service.name: i for i in everyone}
    executor = Executor(docker, console, dry_run=dry_run)
    outcomes: list[BuildOutcome] = []
    for step in plan.steps:
        if not isinstance(step, Build):
            if not (classic_only and isinstance(step, EnsureBuilder)):  # the classic builder is the engine's
                executor.run(Plan("prepare", (step,)))
            continue
        i = by_name[step.service]
        if classic_only:
            outcomes.append(_run_classic(project, i, executor, console, reason=None))
            continue
        if cache_tag(step.service) not in step.needs_store_tags and not dry_run:
            console.print(f"[yellow]warning:[/] no cache for {step.service} in the store: "
                          "every step will run offline (run offline.setup with a bundle that has it)")
        try:
            result = executor.run(Plan("build", (step,)))
        except StepError as exc:
            reason = buildkit_reason(exc.message)
            if not fallback or reason is None:
                raise
            outcomes.append(_run_classic(project, i, executor, console, reason, exc))
            continue
        outcomes += [_outcome(project, r) for r in result.builds()]
    return outcomes


def _outcome(project: Project, r: StepResult) -> BuildOutcome:
    report = r.detail["report"]
    service = project.service(r.step.service)  # type: ignore[attr-defined]
    return BuildOutcome(service.name, f"{service.image}:{project.version}", len(report.steps),
                        len(report.cached), r.seconds, tuple(v.name for v in report.ran))


def _run_classic(project: Project, i: Inputs, executor: Executor, console: Console,
                 reason: str | None, error: StepError | None = None) -> BuildOutcome:
    step = classic_step(project, i)
    if step is None:
        why = i.classic.reason
        if error is None:
            raise StepError(f"build {i.service.name} (classic builder)", f"no classic variant: {why}")
        raise StepError(error.step, f"{error.message}\nno classic fallback for {i.service.name}: {why}",
                        "build on an engine whose BuildKit can run this Dockerfile "
                        "(offline.diagnose shows what this one can do)")
    if reason:
        console.print(f"fallback: {i.service.name}: {reason}; building with the classic builder")
    started = time.monotonic()
    executor.run(Plan("classic", (step,)))
    return BuildOutcome(i.service.name, step.tags[0], 0, 0, time.monotonic() - started, (), "classic builder")



def check_backend(project: Project, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a cache backend the chosen builder cannot serve, before any work.

    Docker's built-in BuildKit (the docker driver) has local and registry
    caches but no S3 (seen on Docker 26: 'unknown cache exporter: "s3"').
    Without credentials in the environment, the AWS SDK inside buildx asks
    the cloud instance-metadata address for some (seen): traffic an
    air-gapped team does not expect, so it is refused too.
    """
    if project.cache.backend != "s3":
        return
    if project.builder.named is None:
        raise OfflineBuildError(
            "the s3 cache backend needs a BuildKit builder; the engine's own (docker driver) has no S3 cache",
            "add builder: {name: ..., driver: docker-container} (or a remote one) to offline.yaml, "
            "or use cache.backend: registry")
    if not aws_credentials_set(os.environ if environ is None else environ):
        raise OfflineBuildError(
            "the s3 cache backend needs credentials, and none are set",
            "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or build without the bucket: "
            "OFFLINE_CACHE_BACKEND=local; without credentials buildx asks the cloud instance-metadata address")


# Every source the AWS SDK's default chain reads before it falls back to the
# instance-metadata address: set explicitly, each is the user's choice.
AWS_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def aws_credentials_set(env: Mapping[str, str]) -> bool:
    if any(env.get(name) for name in AWS_CREDENTIAL_VARIABLES):
        return True
    files = (env.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials",
             env.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config")
    return any(Path(f).is_file() for f in files)


def probe_engine(docker: DockerClient, project: Project, need: tuple[str, ...] = PROBES) -> Capabilities:
    """What the engine can do: probed once per engine, remembered in ``<cache_dir>/engines.json``.

    Results are keyed by the daemon's ID and version, so a reinstalled or
    upgraded engine is probed afresh.
    """
    info = engine_info(docker)  # one call: version, image store, ID
    if project.builder.named:
        # A docker-container or remote builder is a whole BuildKit, whatever
        # the engine's own build driver lacks; its problems show on its first build.
        return Capabilities(info.server_version or "unknown", buildx_version(docker), containerd_store(info),
                            cache_export=True, cache_import=True, oci_layout_context=True, named_contexts=True)
    key = engine_id(info)
    path = project.cache_dir / "engines.json"
    try:
        remembered = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        remembered = {}
    entry = remembered.get(key) or {}
    known = {k: bool(v) for k, v in entry.items() if k in PROBES}
    work = project.cache_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    caps = probe(docker, work, need, known, info=info, buildx=entry.get("buildx"))
    learned = {**known, **{n: bool(getattr(caps, n)) for n in need}, "buildx": caps.buildx_version}
    if learned != entry:
        remembered[key] = learned
        path.write_text(json.dumps(remembered, indent=2, sort_keys=True) + "\n")
    return caps


# --- export ------------------------------------------------------------------


def export_plan(project: Project, services: list[Service], today: date | None = None,
                since: Path | None = None, split_size: int | None = None) -> Plan:
    """Save bases, capture APT, write variants, build with cache export, preinstall, fetch, pack.

    APT is captured for the union of every service's packages, even when
    only one service is exported: the captures are shared per base image.
    Each service exports into its own folder, merged into the store
    afterwards (two exports into one folder race on its temp files).
    """
    everyone = [inputs(project, s, online=True) for s in project.services.values()]
    chosen = [i for i in everyone if i.service in services]
    union = apt_union(everyone)
    bases = all_bases(project, list(project.services.values()))
    work = project.cache_dir / ".work"
    steps: list[Step] = []
    use_builder = ensure_builder(project.builder)
    if use_builder:
        steps.append(use_builder)
    if bases:
        steps.append(SaveImages(title=f"save {len(bases)} base image(s)", images=bases, store=project.store,
                                platforms=project.platforms))
    if use_builder and use_builder.image:
        # No registry at the site: the builder's BuildKit image travels too.
        steps.append(SaveImages(title=f"save the BuildKit image {use_builder.image}", images=(use_builder.image,),
                                store=project.store))
    steps += capture_steps(project, union)
    steps += variant_steps(chosen)
    for i in chosen:
        dest = work / cache_tag(i.service.name)
        steps.append(online_build(project, i.service, cache_dest=dest, dockerfile=i.dockerfile, contexts=i.contexts,
                                  bases=i.bases))
        steps.append(MergeCache(title=f"merge {i.service.name} cache into the store", source=dest,
                                store=project.store, tag=cache_tag(i.service.name),
                                bases=tuple(base_tag(b) for b in i.bases)))
    steps += preinstall_steps(project, union)
    for res in project.resources:
        steps.append(FetchResource(title=f"fetch resource {res.name}", resource_name=res.name, kind=res.kind,
                                   source=res.source, ref=res.ref, sha256=res.sha256,
                                   dest=project.cache_dir / "resources" / res.dest))
    steps.append(Pack(title="pack the delta bundle" if since else "pack the bundle", cache_dir=project.cache_dir,
                      output=project.cache_dir / bundle_name(today, delta=since is not None),
                      services=tuple(s.name for s in services), since=since, split_size=split_size))
    return Plan("export", tuple(steps))


def export(project: Project, names: list[str] | None, docker: DockerClient, console: Console,
           *, dry_run: bool = False, today: date | None = None, strict: bool = False,
           since: Path | None = None, split_size: int | None = None) -> dict[str, Any]:
    services = pick(project, names)
    check_backend(project)
    if since is not None:
        bundle.load_manifest(since)  # refuse a bad --since before any build starts
    plan = export_plan(project, services, today, since, split_size)
    findings = [f for f in lint_project(project) if f.severity != "info"]
    if findings:
        counts = lint_mod.counts(findings)
        console.print(f"[yellow]lint:[/] {counts['error']} error(s), {counts['warning']} warning(s): steps that "
                      "need the network work offline only while their layer stays cached (offline.lint shows them)")
        if strict:
            raise OfflineBuildError(f"offline.lint found {len(findings)} problem(s) and --strict is on",
                                    "fix them or suppress them (# offline-build: ignore=<rule>), or drop --strict")
    if dry_run:
        Executor(docker, console, dry_run=True).run(plan)
        return {}
    caps = probe_engine(docker, project, ("cache_export",))
    if not caps.cache_export:
        raise EngineError(
            f"this engine (Docker {caps.server_version}) cannot export build caches",
            "export on Docker 26+ with the containerd image store on "
            '({"features": {"containerd-snapshotter": true}} in daemon.json)')
    work = project.cache_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    bases = all_bases(project, list(project.services.values()))
    with lock(project.cache_dir):
        _clear_partials(work, services)
        factory = lambda step: _manifest(project, bases, docker, caps)  # noqa: E731
        result = Executor(docker, console, manifest_factory=factory, apt_dir=project.apt.dir).run(plan)
    packed = result.of(Pack)[0]
    return {"output": packed.detail["output"], "size": packed.detail["size"],
            "blobs": packed.detail["blobs"], "unique_bytes": packed.detail["unique_bytes"],
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
    for service in services:
        shutil.rmtree(work / cache_tag(service.name), ignore_errors=True)


def _manifest(project: Project, bases: tuple[str, ...], docker: DockerClient,
              caps: Capabilities) -> bundle.Manifest:
    """The bundle manifest; ``services`` covers every cache the store holds."""
    tags = Layout(project.store).tags()
    services = {}
    for service in project.services.values():
        if cache_tag(service.name) not in tags:
            continue
        services[service.name] = {
            "image": f"{service.image}:{project.version}",
            "dockerfile": str(service.dockerfile.relative_to(project.root)),
            "dockerfile_sha256": sha256_file(service.dockerfile),
            "cache_tag": cache_tag(service.name),
            "base_images": list(service_bases(project, service)),
        }
    union = apt_union([inputs(project, s, online=True) for s in project.services.values()])
    preinstalled = {b: preinstalled_image(project, b) for b in union if base_tag(preinstalled_image(project, b)) in tags}
    refs = list(bases) + list(preinstalled.values())
    base_images = {ref: base_tag(ref) for ref in refs if base_tag(ref) in tags}
    builder = {}
    if project.builder.named:
        builder = {"name": project.builder.named, "driver": project.builder.driver}
        if project.builder.image and base_tag(project.builder.image) in tags:
            builder.update(image=project.builder.image, tag=base_tag(project.builder.image))
    return bundle.Manifest(project=project.name, version=project.version, platforms=list(project.platforms),
                           services=services, base_images=base_images, created=bundle.now(),
                           network=project.network or "", builder=builder,
                           engine={"server": caps.server_version, "buildx": caps.buildx_version or ""})


@contextmanager
def lock(cache_dir: Path) -> Iterator[None]:
    """One export or setup at a time per cache folder."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OfflineBuildError(f"another offline-build is working on {cache_dir}",
                                    "wait for it to finish, then run this again") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- setup -------------------------------------------------------------------


@dataclass
class SetupReport:
    bundle: Path
    manifest: bundle.Manifest
    blobs_added: int
    files: int
    loaded: list[tuple[str, str]]  # (image, "loaded" | "replaced" | "unchanged")
    caps: Capabilities | None


def setup(project: Project, bundle_path: Path | None, docker: DockerClient, console: Console,
          *, dry_run: bool = False) -> SetupReport | None:
    path = bundle_path or bundle.find_bundle(project.cache_dir)
    if dry_run:
        console.print(f"# verify {path} against its manifest, merge it into {project.store}")
        console.print("# docker load <base images>   (only if the engine cannot read oci-layout:// contexts)")
        return None
    with lock(project.cache_dir):
        # The probe also proves the engine answers, before the store is touched.
        caps = probe_engine(docker, project, ("oci_layout_context",))
        manifest, added, files = unpack(project, path, console, lambda: engine_platforms(docker))
        loaded = [] if caps.oci_layout_context else load_bases(project, manifest, docker, console)
        loaded += load_builder_image(project, manifest, docker, console)
    return SetupReport(path, manifest, added, files, loaded, caps)


def unpack(project: Project, path: Path, console: Console,
           platforms: Callable[[], tuple[str, ...]] | None = None) -> tuple[bundle.Manifest, int, int]:
    """Verify the whole bundle in a scratch folder, then merge it into the store.

    *platforms* tells what the engine can run (asked only for a bundle that
    names platforms: it costs a buildx call); a bundle for others is refused
    before anything is written. ``None``: not checked.
    """
    where = str(path)
    work = project.cache_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    with bundle.open_archive(path) as tar, tempfile.TemporaryDirectory(dir=work, prefix="setup-") as tmp:
        try:
            members = bundle.check_members(tar.getmembers(), where)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise bundle.BundleError(f"{where}: not a readable bundle archive ({exc})",
                                     "the copy is damaged or truncated: copy it again") from None
        manifest = bundle.read_manifest(tar, members, where)
        _check_project(project, manifest, where)
        if platforms is not None and manifest.platforms:
            _check_platforms(manifest, platforms(), where)
        if manifest.extends:
            _materialize(project, manifest, {m.name for m in members}, Path(tmp), where)
        total = sum(f.size for f in manifest.files)
        free = shutil.disk_usage(tmp).free
        if total > free:
            raise bundle.BundleError(f"{where} needs {total >> 20} MiB to set up and {project.cache_dir} has "
                                     f"{free >> 20} MiB free", "free disk space, or set CACHE_DIR to a larger disk")
        from .executor import _bar

        with _bar(console, "verify", total) as advance:
            bundle.extract_verified(tar, members, manifest, Path(tmp), where, advance)
        added = Layout(project.store).merge(Layout(Path(tmp)), move=True)
        files = _place_files(Path(tmp) / "files" / "resources", project.cache_dir / "resources")
        files += _place_captures(Path(tmp) / "files" / "apt", project.apt.dir)
    bundle_json = json.dumps({"bundle": path.name, **json.loads(manifest.to_json())}, indent=2)
    (project.cache_dir / "bundle.json").write_text(bundle_json + "\n")
    return manifest, added, files


def _materialize(project: Project, manifest: bundle.Manifest, present: set[str], dest: Path, where: str) -> None:
    """A delta omits what its base bundle held: take those files from this machine, checked.

    Afterwards the scratch folder holds exactly what the full bundle would,
    so the rest of setup cannot tell the two apart.
    """
    base = manifest.extends.get("bundle", "its base bundle")
    for entry in manifest.files:
        if entry.path in present:
            continue
        local = _local_copy(project, entry.path)
        if local is None or not local.is_file() or local.stat().st_size != entry.size \
                or sha256_file(local) != entry.sha256:
            raise bundle.BundleError(f"{where} is a delta of {base}, and {entry.path} from it is not here",
                                     f"run offline.setup with {base} (or a full bundle) first")
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)


def _local_copy(project: Project, name: str) -> Path | None:
    if name.startswith("blobs/sha256/"):
        return project.store / name
    if name.startswith("files/apt/"):
        return project.apt.dir / name.removeprefix("files/apt/")
    if name.startswith("files/resources/"):
        return project.cache_dir / "resources" / name.removeprefix("files/resources/")
    return None  # the index always travels: the local one may hold more entries


def _check_project(project: Project, manifest: bundle.Manifest, where: str) -> None:
    if manifest.project != project.name:
        raise bundle.BundleError(f"{where} is a bundle for project {manifest.project!r}, not {project.name!r}",
                                 "use the bundle exported from this project's offline.yaml")
    if project.platforms and manifest.platforms and set(project.platforms) - set(manifest.platforms):
        raise bundle.BundleError(f"{where} was built for {', '.join(manifest.platforms)}, "
                                 f"not {', '.join(project.platforms)}",
                                 "export again with --platform for this machine")


def _check_platforms(manifest: bundle.Manifest, available: tuple[str, ...], where: str) -> None:
    """Refuse a bundle for platforms this engine cannot run.

    A fully cached build would even succeed, but the first changed RUN step
    would fail with "exec format error" at the site, where nobody can fix it.
    """
    foreign = [p for p in manifest.platforms if not runs_platform(p, available)]
    if foreign:
        raise bundle.BundleError(
            f"{where} is for {', '.join(foreign)} and this engine runs {', '.join(available)}",
            f"export again with --platform {available[0]}, or give this machine emulation for "
            f"{', '.join(foreign)} (binfmt_misc with qemu-user-static) and run offline.setup again")


def _place_captures(src: Path, apt_dir: Path) -> int:
    """Each base image's capture replaces the local one whole, or not at all.

    Builds bind-mount the capture and BuildKit keys the step on its exact
    contents: a leftover ``.deb`` from an older bundle would miss the cache.
    """
    if not src.is_dir():
        return 0
    changed = 0
    for fresh in sorted(p for p in src.iterdir() if p.is_dir()):
        target = apt_dir / fresh.name
        if _tree_digest(target) == _tree_digest(fresh):
            continue
        for path in [fresh, *fresh.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        apt_dir.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.replace(old)
        fresh.replace(target)
        shutil.rmtree(old, ignore_errors=True)
        changed += 1
    return changed


def _tree_digest(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {}
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _place_files(src: Path, dest_root: Path) -> int:
    count = 0
    if not src.is_dir():
        return 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        target = dest_root / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or sha256_file(target) != sha256_file(path):
            path.replace(target)
            count += 1
    return count


def load_bases(project: Project, manifest: bundle.Manifest, docker: DockerClient,
               console: Console) -> list[tuple[str, str]]:
    """``docker load`` each base image from the store, for engines that need them loaded."""
    return load_images(project, manifest.base_images, docker, console)


def load_builder_image(project: Project, manifest: bundle.Manifest, docker: DockerClient,
                       console: Console) -> list[tuple[str, str]]:
    """The bundled BuildKit image: the docker-container driver starts its BuildKit from this engine's images."""
    image = manifest.builder.get("image")
    return load_images(project, {image: manifest.builder["tag"]}, docker, console) if image else []


def load_images(project: Project, images: dict[str, str], docker: DockerClient,
                console: Console) -> list[tuple[str, str]]:
    """``docker load`` images (reference -> store tag) from the store; says what each did."""
    layout = Layout(project.store)
    tags = layout.tags()
    out = []
    for ref, tag in images.items():
        before = _image_id(docker, ref)
        data = docker_archive(layout, tags[tag], ref)
        try:
            docker.image.load(data, quiet=True)
        except DockerException as exc:
            raise EngineError(f"docker load of {ref} failed: {engine_message(exc)}",
                              "check free disk space on the engine, then run offline.setup again") from None
        after = _image_id(docker, ref)
        state = "unchanged" if before == after else ("replaced" if before else "loaded")
        console.print(f"  {state}: {ref}")
        out.append((ref, state))
    return out


def _image_id(docker: DockerClient, ref: str) -> str | None:
    try:
        return docker.image.inspect(ref).id if image_present(docker, ref) else None
    except DockerException:
        return None


def docker_archive(layout: Layout, desc: Any, ref: str) -> bytes:
    """A ``docker load`` tar for one image: its OCI entry plus the classic manifest.json.

    The classic ``manifest.json`` is what Docker 20.10 reads; newer engines
    read the OCI index. Layers stay gzip-compressed: both accept that.
    """
    manifest_desc = _platform_manifest(layout, desc)
    doc = layout.read_json(manifest_desc.digest)
    blobs = [manifest_desc.digest, doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]
    classic = [{"Config": f"blobs/sha256/{doc['config']['digest'].split(':')[1]}",
                "RepoTags": [ref],
                "Layers": [f"blobs/sha256/{layer['digest'].split(':')[1]}" for layer in doc["layers"]]}]
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{**manifest_desc.to_json(), "annotations": {
                 "io.containerd.image.name": ref, REF_NAME: ref.rsplit(":", 1)[-1]}}]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                           ("index.json", json.dumps(index).encode()),
                           ("manifest.json", json.dumps(classic).encode())):
            _add(tar, name, data)
        for digest in dict.fromkeys(blobs):
            tar.add(layout.blob_path(digest), arcname=f"blobs/sha256/{digest.split(':')[1]}")
    return buf.getvalue()


def _platform_manifest(layout: Layout, desc: Any) -> Any:
    """The image manifest for this machine, resolving an index if there is one."""
    from .engine import _arch
    from .store import INDEX_TYPES, Descriptor

    if desc.media_type not in INDEX_TYPES:
        return desc
    children = [Descriptor.from_json(d) for d in layout.read_json(desc.digest)["manifests"]]
    for child in children:
        plat = child.platform or {}
        if plat.get("architecture") == _arch() and layout.blob_path(child.digest).is_file():
            return child
    raise OfflineBuildError(f"no {_arch()} image for {desc.digest[:19]} in the store",
                            "export the bundle with --platform for this machine")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


# --- engine facts for diagnose -------------------------------------------------




# --- verify ------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyOutcome:
    service: str
    status: str  # "all cached" | "rebuilt offline" | "failed"
    steps: int
    cached: int
    detail: str


def verify(project: Project, bundle_path: Path | None, docker: DockerClient, console: Console) -> list[VerifyOutcome]:
    """Set the bundle up into a throwaway store and build every service with no network.

    The engine given must hold none of the project's build cache (another
    engine, or this one after ``docker builder prune``): otherwise a step
    could pass from a local cache the bundle does not carry.
    """
    path = bundle_path or bundle.find_bundle(project.cache_dir)
    check_engine(docker)
    work = project.cache_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    outcomes = []
    with tempfile.TemporaryDirectory(dir=work, prefix="verify-") as tmp:
        # The APT captures go to the scratch folder too: the project's own stay
        # as they are. No team cache: the proof is of the bundle alone.
        scratch = replace(project, cache_dir=Path(tmp), cache=CacheOptions(),
                          apt=replace(project.apt, dir=Path(tmp) / "apt-lists"))
        manifest, _, _ = unpack(scratch, path, console, lambda: engine_platforms(docker))
        caps = probe_engine(docker, scratch, ("oci_layout_context",))
        if not caps.oci_layout_context:
            load_bases(scratch, manifest, docker, console)
        load_builder_image(scratch, manifest, docker, console)
        for service in pick(scratch, None):
            try:
                (done,) = build(scratch, [service.name], docker, console)
            except OfflineBuildError as exc:
                outcomes.append(VerifyOutcome(service.name, "failed", 0, 0, exc.message))
                continue
            if done.builder != "buildkit":
                status, detail = "rebuilt offline", f"built by the {done.builder} (BuildKit could not)"
            elif done.steps and done.cached == done.steps:
                status, detail = "all cached", "every step CACHED"
            else:
                status, detail = "rebuilt offline", "ran offline: " + ", ".join(done.ran)
            outcomes.append(VerifyOutcome(service.name, status, done.steps, done.cached, detail))
    return outcomes


def prune_build_cache(docker: DockerClient) -> None:
    """Empty the engine's build cache, so verify proves the bundle and not the engine."""
    try:
        docker.buildx.prune(all=True)
    except DockerException as exc:
        raise EngineError(f"could not prune the build cache: {engine_message(exc)}") from None

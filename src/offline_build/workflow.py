"""The workflows behind the tasks: export, setup, build, verify.

Each is a short chain: load what is needed, make the plan, run it, report.
Nothing here imports invoke; the tasks are a thin layer over these
functions, and so is anything else that wants to drive offline-build.
"""

from __future__ import annotations

import fcntl
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from rich.console import Console

from . import bundle, dockerfile
from .config import Project, Service
from .engine import Capabilities, buildx_version, engine_message, image_present, probe, server_version
from .errors import EngineError, OfflineBuildError
from .executor import Executor, RunResult, StepResult, check_engine
from .plan import Pack, Plan, base_tag, cache_tag, export_plan, offline_build, online_build, slug
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

    @property
    def status(self) -> str:
        if self.steps and self.cached == self.steps:
            return "all cached"
        return "rebuilt offline" if self.ran else "built"


def plan_offline_builds(project: Project, services: list[Service], caps: Capabilities | None) -> Plan:
    """One offline build per service, using what the store holds.

    With *caps* None (a dry run, which must not touch the engine) the plan
    assumes an engine that reads ``oci-layout://`` contexts.
    """
    tags = Layout(project.store).tags()
    oci = caps.oci_layout_context if caps else True
    network = bundle_network(project)
    steps = []
    for service in services:
        bases = service_bases(project, service)
        use_oci = oci and all(base_tag(b) in tags for b in bases)
        steps.append(offline_build(project, service, bases, cache=cache_tag(service.name) in tags,
                                   oci_contexts=use_oci, network=network))
    return Plan("build", tuple(steps))


def bundle_network(project: Project) -> str | None:
    """The network mode the restored bundle was exported with (else the project's).

    Offline builds must use the same mode, or every ``RUN`` step misses the
    cache (seen: ``--network host`` then ``--network none`` re-runs them all).
    """
    recorded = project.cache_dir / "bundle.json"
    if recorded.is_file():
        try:
            return json.loads(recorded.read_text()).get("network") or None
        except ValueError:
            pass
    return project.network


def build(project: Project, names: list[str] | None, docker: DockerClient, console: Console,
          *, dry_run: bool = False) -> list[BuildOutcome]:
    services = pick(project, names)
    caps = None if dry_run else probe_engine(docker, project)
    plan = plan_offline_builds(project, services, caps)
    for step in plan.steps:
        if not step.cache_from and not dry_run:  # type: ignore[attr-defined]
            console.print(f"[yellow]warning:[/] no cache for {step.service} in {project.store}: "  # type: ignore[attr-defined]
                          "every step will run offline (run offline.setup with a bundle that has it)")
    result = Executor(docker, console, dry_run=dry_run).run(plan)
    return [_outcome(project, r) for r in result.builds()]


def _outcome(project: Project, r: StepResult) -> BuildOutcome:
    report = r.detail["report"]
    service = project.service(r.step.service)  # type: ignore[attr-defined]
    return BuildOutcome(service.name, f"{service.image}:{project.version}", len(report.steps),
                        len(report.cached), r.seconds, tuple(v.name for v in report.ran))


def build_online(project: Project, names: list[str] | None, docker: DockerClient, console: Console,
                 *, dry_run: bool = False) -> RunResult:
    """Plain builds on the online engine (network allowed), tagged with the version."""
    plan = Plan("build-online", tuple(online_build(project, s) for s in pick(project, names)))
    if not dry_run:
        check_engine(docker)
    return Executor(docker, console, dry_run=dry_run).run(plan)


_caps_cache: dict[tuple[str, str], Capabilities] = {}


def probe_engine(docker: DockerClient, project: Project) -> Capabilities:
    """What the engine can do, probed once per engine per process."""
    key = (str(docker.client_config.host), server_version(docker))
    if key not in _caps_cache:
        work = project.cache_dir / ".work"
        work.mkdir(parents=True, exist_ok=True)
        _caps_cache[key] = probe(docker, work)
    return _caps_cache[key]


# --- export ------------------------------------------------------------------


def export(project: Project, names: list[str] | None, docker: DockerClient, console: Console,
           *, dry_run: bool = False, today: date | None = None) -> dict[str, Any]:
    services = pick(project, names)
    bases = all_bases(project, services if names else list(project.services.values()))
    work = project.cache_dir / ".work"
    pairs = [(s, service_bases(project, s)) for s in services]
    plan = export_plan(project, pairs, bases, work, today)
    if dry_run:
        Executor(docker, console, dry_run=True).run(plan)
        return {}
    caps = probe_engine(docker, project)
    if not caps.cache_export:
        raise EngineError(
            f"this engine (Docker {caps.server_version}) cannot export build caches",
            "export on Docker 26+ with the containerd image store on "
            '({"features": {"containerd-snapshotter": true}} in daemon.json)')
    work.mkdir(parents=True, exist_ok=True)
    with lock(project.cache_dir):
        _clear_partials(work, services)
        factory = lambda step: _manifest(project, bases, docker, caps)  # noqa: E731
        result = Executor(docker, console, manifest_factory=factory).run(plan)
    packed = result.of(Pack)[0]
    return {"output": packed.detail["output"], "size": packed.detail["size"],
            "blobs": packed.detail["blobs"], "unique_bytes": packed.detail["unique_bytes"],
            "services": [s.name for s in services], "result": result}


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
    base_images = {ref: base_tag(ref) for ref in bases if base_tag(ref) in tags}
    return bundle.Manifest(project=project.name, version=project.version, platforms=list(project.platforms),
                           services=services, base_images=base_images, created=bundle.now(),
                           network=project.network or "",
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
    check_engine(docker)
    with lock(project.cache_dir):
        manifest, added, files = unpack(project, path, console)
        caps = probe_engine(docker, project)
        loaded = [] if caps.oci_layout_context else load_bases(project, manifest, docker, console)
    return SetupReport(path, manifest, added, files, loaded, caps)


def unpack(project: Project, path: Path, console: Console) -> tuple[bundle.Manifest, int, int]:
    """Verify the whole bundle in a scratch folder, then merge it into the store."""
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
        total = sum(f.size for f in manifest.files)
        from .executor import _bar

        with _bar(console, "verify", total) as advance:
            bundle.extract_verified(tar, members, manifest, Path(tmp), where, advance)
        added = Layout(project.store).merge(Layout(Path(tmp)), move=True)
        files = _place_files(Path(tmp) / "files", project.cache_dir)
    bundle_json = json.dumps({"bundle": path.name, **json.loads(manifest.to_json())}, indent=2)
    (project.cache_dir / "bundle.json").write_text(bundle_json + "\n")
    return manifest, added, files


def _check_project(project: Project, manifest: bundle.Manifest, where: str) -> None:
    if manifest.project != project.name:
        raise bundle.BundleError(f"{where} is a bundle for project {manifest.project!r}, not {project.name!r}",
                                 "use the bundle exported from this project's offline.yaml")
    if project.platforms and manifest.platforms and set(project.platforms) - set(manifest.platforms):
        raise bundle.BundleError(f"{where} was built for {', '.join(manifest.platforms)}, "
                                 f"not {', '.join(project.platforms)}",
                                 "export again with --platform for this machine")


def _place_files(src: Path, cache_dir: Path) -> int:
    count = 0
    if not src.is_dir():
        return 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        target = cache_dir / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or sha256_file(target) != sha256_file(path):
            path.replace(target)
            count += 1
    return count


def load_bases(project: Project, manifest: bundle.Manifest, docker: DockerClient,
               console: Console) -> list[tuple[str, str]]:
    """``docker load`` each base image from the store, for engines that need them loaded."""
    layout = Layout(project.store)
    tags = layout.tags()
    out = []
    for ref, tag in manifest.base_images.items():
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
    blobs = [manifest_desc.digest, doc["config"]["digest"], *(l["digest"] for l in doc["layers"])]
    classic = [{"Config": f"blobs/sha256/{doc['config']['digest'].split(':')[1]}",
                "RepoTags": [ref],
                "Layers": [f"blobs/sha256/{l['digest'].split(':')[1]}" for l in doc["layers"]]}]
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


def engine_facts(docker: DockerClient) -> dict[str, Any]:
    return {"server": server_version(docker), "buildx": buildx_version(docker)}


def slugs(images: tuple[str, ...]) -> list[str]:
    return [slug(i) for i in images]


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
    from dataclasses import replace

    path = bundle_path or bundle.find_bundle(project.cache_dir)
    check_engine(docker)
    work = project.cache_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    outcomes = []
    with tempfile.TemporaryDirectory(dir=work, prefix="verify-") as tmp:
        scratch = replace(project, cache_dir=Path(tmp))
        manifest, _, _ = unpack(scratch, path, console)
        caps = probe_engine(docker, scratch)
        if not caps.oci_layout_context:
            load_bases(scratch, manifest, docker, console)
        plan = plan_offline_builds(scratch, pick(scratch, None), caps)
        executor = Executor(docker, console)
        for step in plan.steps:
            try:
                detail = executor.build(replace(step, load=False))  # type: ignore[arg-type]
            except OfflineBuildError as exc:
                outcomes.append(VerifyOutcome(step.service, "failed", 0, 0, str(exc.message)))  # type: ignore[attr-defined]
                continue
            report = detail["report"]
            status = "all cached" if report.all_cached() else "rebuilt offline"
            ran = ", ".join(v.name for v in report.ran)
            outcomes.append(VerifyOutcome(step.service, status, len(report.steps),  # type: ignore[attr-defined]
                                          len(report.cached), ran or "every step CACHED"))
    return outcomes


def prune_build_cache(docker: DockerClient) -> None:
    """Empty the engine's build cache, so verify proves the bundle and not the engine."""
    try:
        docker.buildx.prune(all=True)
    except DockerException as exc:
        raise EngineError(f"could not prune the build cache: {engine_message(exc)}") from None

"""``offline.diagnose``: will an offline build work here, and if not, why and what to do.

Every check is a row with a status: ``ok``, ``warn`` (works, with a cost or
a risk), ``fail`` (a build would fail) or ``info``. The exit status is
non-zero when any row fails, so CI and the make target can gate on it.
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from rich.console import Console
from rich.table import Table

from . import bundle, sbom, signing, unpacking
from . import proof as proofs
from .config import Project
from .engine import Capabilities, engine_platforms, image_present, native_platform, probe_engine
from .errors import OfflineBuildError
from .inputs import service_bases
from .plan import base_tag, build_platforms, cache_tag
from .platforms import runs_platform
from .files import display_path
from .report import human_size
from .state import proofs_of, restored_bundle
from .store import Layout, StoreError, misnamed

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "info": "dim"}


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    status: str
    detail: str
    fix: str = ""


def run(project: Project, docker: DockerClient, *, deep: bool = True) -> list[Check]:
    checks: list[Check] = []
    caps = _engine(project, docker, checks)
    if caps is not None:
        checks += _platforms(project, docker)
        checks += _builder(project, docker)
    checks += _cache_backend(project, caps)
    checks += _store(project, deep)
    checks += _services(project, docker, caps)
    checks += _bundle(project, deep)
    checks += _captures(project)
    checks += _lint(project)
    return checks


def _captures(project: Project) -> list[Check]:
    """What each capture (APT, ...) holds on this machine, in its own words."""
    from .captures import all_captures

    return [Check("captures", row.name, row.status, row.detail, row.fix)
            for capture in all_captures() for row in capture.rows(project)]


def _lint(project: Project) -> list[Check]:
    from . import lint
    from .inputs import lint_project

    try:
        found = lint_project(project)
    except OfflineBuildError as exc:
        return [Check("lint", "Dockerfiles", "warn", exc.message, exc.hint or "")]
    c = lint.counts(found)
    status = "warn" if c["error"] or c["warning"] else "ok"
    detail = f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} note(s)"
    fix = "offline.lint shows each with its fix; cached layers hide them until something above changes" \
        if status == "warn" else ""
    return [Check("lint", "Dockerfiles", status, detail, fix)]


def _engine(project: Project, docker: DockerClient, checks: list[Check]) -> Capabilities | None:
    try:
        caps = probe_engine(docker, project)
    except OfflineBuildError as exc:
        checks.append(Check("engine", "reachable", "fail", exc.message, exc.hint or ""))
        return None
    checks.append(Check("engine", "reachable", "ok", f"Docker {caps.server_version}"))
    if caps.buildx_version:
        checks.append(Check("engine", "buildx", "ok", f"{caps.buildx_version} ({_driver(docker)} driver)"))
    else:
        checks.append(Check("engine", "buildx", "warn", "not installed: only the classic builder is available",
                            "install the docker-buildx plugin"))
    checks.append(Check("engine", "containerd image store", "info", "on" if caps.containerd_store else "off"))
    checks.append(Check("engine", "export local caches", "ok" if caps.cache_export else "info",
                        "yes" if caps.cache_export else "no (needed on the online machine only)",
                        "" if caps.cache_export else "export on Docker 26+ with the containerd image store"))
    checks.append(Check("engine", "import local caches", "ok" if caps.cache_import else "fail",
                        "yes" if caps.cache_import else "no", "" if caps.cache_import else "install docker-buildx"))
    checks.append(Check("engine", "oci-layout:// contexts", "ok" if caps.oci_layout_context else "info",
                        "yes: base images are read from the store" if caps.oci_layout_context
                        else "no: offline.setup loads base images into the engine"))
    return caps


def _platforms(project: Project, docker: DockerClient) -> list[Check]:
    """The restored bundle's platforms (else the project's) against what the engine runs, and what a build makes."""
    available, native = engine_platforms(docker), native_platform(docker)
    wanted: list[str] = (restored_bundle(project) or {}).get("platforms") or list(project.platforms)
    return [platforms_check(wanted, available, native)]


def platforms_check(wanted: list[str], available: tuple[str, ...], native: str) -> Check:
    """One row: which of the bundle's platforms this engine runs, and which ``offline.build`` makes by default."""
    runs = [p for p in wanted if runs_platform(p, available)]
    foreign = [p for p in wanted if p not in runs]
    if wanted and not runs:
        return Check("engine", "platforms", "fail", f"the bundle is for {', '.join(wanted)}; this engine runs "
                     f"{', '.join(available)}",
                     f"export for {native}, or add emulation (binfmt_misc, qemu-user-static)")
    if not wanted:
        return Check("engine", "platforms", "info", f"the engine's own: {native}")
    built = build_platforms(tuple(wanted), native)
    others = [p for p in runs if p not in built]
    detail = (f"the bundle serves {', '.join(wanted)}; this engine is {native}"
              + (f", also runs {', '.join(others)}" if others else "")
              + f"; offline.build makes {', '.join(built)}"
              + ("" if any(runs_platform(native, (p,)) for p in built) else " under emulation")
              + (f" (--platform {','.join(runs)} for all it runs)" if others else ""))
    if foreign:
        return Check("engine", "platforms", "warn", detail + f"; cannot run {', '.join(foreign)}",
                     f"build {', '.join(foreign)} on a machine of that platform, or add emulation (qemu-user-static)")
    return Check("engine", "platforms", "ok", detail)


def _builder(project: Project, docker: DockerClient) -> list[Check]:
    """A named builder: does this engine have it, and the BuildKit image it runs (no registry to pull from)?"""
    b = project.builder
    if b.named is None:
        return []
    out = []
    try:
        driver = docker.buildx.inspect(b.name).driver
    except DockerException:
        out.append(Check("builder", b.name, "info", f"no {b.driver} builder by that name yet: builds create it"))
    else:
        if driver == b.driver:
            out.append(Check("builder", b.name, "ok", f"{b.driver} builder exists"))
        else:
            out.append(Check("builder", b.name, "fail", f"exists with the {driver} driver, not {b.driver}",
                             f"docker buildx rm {b.name}, or name another builder in offline.yaml"))
    if b.image:
        try:
            here = image_present(docker, b.image)
        except OfflineBuildError as exc:
            return out + [Check("builder", "BuildKit image", "fail", exc.message, exc.hint or "")]
        out.append(Check("builder", "BuildKit image", "ok" if here else "fail",
                         f"{b.image} {'is' if here else 'is not'} in the engine",
                         "" if here else "offline.setup loads it from a bundle exported with this builder "
                         f"(online: docker pull {b.image})"))
    return out


def _cache_backend(project: Project, caps: Capabilities | None) -> list[Check]:
    c = project.cache
    if c.backend == "local":
        return [Check("cache", "backend", "info", "local: the store only")]
    where = f"{c.location} ({c.region})" if c.backend == "s3" else c.location
    export = "export reads and writes it" if c.writes_back else "export reads it"
    offline = "offline builds read it after the store" + (" and write it back" if c.offline_writes_back else "")
    rows = [Check("cache", "backend", "info", f"{c.backend} {where}: {export}; {offline}",
                  f"if this engine cannot reach {where}: unset OFFLINE_CACHE_BACKEND and OFFLINE_CACHE_REF, "
                  "or OFFLINE_CACHE_BACKEND=local" if c.offline_writes_back else "")]
    if c.offline_writes_back and caps is not None and not caps.cache_export:
        rows.append(Check("cache", "write back", "warn", "this engine cannot export caches: builds only read it",
                          "Docker 26+ with the containerd image store, or a docker-container builder"))
    if c.backend == "s3" and project.builder.named is None:
        rows.append(Check("cache", "s3 on this builder", "fail", "the engine's own builder has no S3 cache",
                          "add builder: {name: ..., driver: docker-container}, or use a registry"))
    return rows


def _driver(docker: DockerClient) -> str:
    try:
        return str(docker.buildx.inspect().driver)
    except DockerException:
        return "unknown"


def _store(project: Project, deep: bool = True) -> list[Check]:
    layout = Layout(project.store)
    where = display_path(project.store, project.root)
    if not layout.exists():
        return [Check("store", where, "fail", "no store: nothing has been set up here",
                      "run offline.setup with the bundle (or offline.export on the online machine)")]
    try:
        reach = layout.reachable()
    except StoreError as exc:
        return [Check("store", where, "fail", exc.message, exc.hint or "")]
    # Cost: --quick compares sizes (a stat per blob); otherwise every reachable blob
    # is hashed once, a full read of the store, as the bundle's integrity row reads the bundle.
    bad = misnamed(layout, reach.values(), rehash=deep)
    if bad:
        return [Check("store", where, "fail",
                      f"{len(bad)} blob(s) do not hash to their name: {', '.join(d.digest for d in bad[:3])}",
                      "run offline.setup again with a good bundle (it replaces them), or offline.export online")]
    size = sum(d.size for d in reach.values())
    how = "sizes checked (--quick)" if not deep else "every blob re-hashed"
    return [Check("store", where, "ok",
                  f"{len(layout.tags())} entries, {len(reach)} blobs, {human_size(size)}; {how}")]


def _services(project: Project, docker: DockerClient, caps: Capabilities | None) -> list[Check]:
    tags = Layout(project.store).tags() if Layout(project.store).exists() else {}
    out: list[Check] = []
    bases_seen: set[str] = set()
    for service in project.services.values():
        area = f"service {service.name}"
        try:
            bases = service_bases(project, service)
        except OfflineBuildError as exc:
            out.append(Check(area, "Dockerfile", "fail", exc.message, exc.hint or ""))
            continue
        out.append(Check(area, "Dockerfile", "ok", str(service.dockerfile.relative_to(project.root))))
        has_cache = cache_tag(service.name) in tags
        out.append(Check(area, "build cache", "ok" if has_cache else "fail",
                         "in the store" if has_cache else "not in the store: every step would run offline",
                         "" if has_cache else "run offline.setup with a bundle exported for this service"))
        for base in bases:
            if base not in bases_seen:
                bases_seen.add(base)
                out.append(_base(base, tags, docker, caps))
    for res in project.resources:
        present = (project.cache_dir / "resources" / res.dest).exists()
        out.append(Check(f"resource {res.name}", res.dest, "ok" if present else "warn",
                         "present" if present else "missing",
                         "" if present else "run offline.setup (or offline.export online)"))
    return out


def _base(base: str, tags: dict[str, object], docker: DockerClient, caps: Capabilities | None) -> Check:
    in_store = base_tag(base) in tags
    try:
        in_engine = caps is not None and image_present(docker, base)
    except OfflineBuildError as exc:  # the engine went away after the probe: say so, not "missing"
        return Check("base image", base, "fail", exc.message, exc.hint or "")
    usable = in_engine or (in_store and caps is not None and caps.oci_layout_context)
    where = " and ".join(w for w, yes in (("the store", in_store), ("the engine", in_engine)) if yes)
    fix = ""
    if not usable:
        fix = "run offline.setup" if in_store or not tags else "export a bundle that includes it"
    return Check("base image", base, "ok" if usable else "fail",
                 f"in {where}" if where else "neither in the store nor in the engine", fix)


def _bundle(project: Project, deep: bool) -> list[Check]:
    try:
        path = unpacking.find_bundle(project.cache_dir)
    except bundle.BundleError:
        return [Check("bundle", "archive", "info", f"no build-cache-*.tar in {project.cache_dir}")]
    free = shutil.disk_usage(project.cache_dir).free
    need = path.stat().st_size
    out = [Check("disk", display_path(project.cache_dir, project.root), "ok" if free > need else "fail",
                 f"{human_size(free)} free, setup needs up to {human_size(need)}",
                 "" if free > need else "free disk space or set CACHE_DIR to a larger disk")]
    out.append(_proof(project, path))
    out += _trust(project, path)
    if not deep:
        return out + [Check("bundle", "integrity", "info", f"{path.name}: not re-hashed (--quick)")]
    try:
        manifest = verify_archive(path)
        out.append(Check("bundle", "integrity", "ok", f"{path.name}: {len(manifest.files)} files verified"))
    except bundle.BundleError as exc:
        out.append(Check("bundle", "integrity", "fail", exc.message, exc.hint or ""))
    except (tarfile.TarError, EOFError, OSError) as exc:
        # A copy cut short (a full stick, an interrupted scp) ends mid-member:
        # tarfile only notices while reading on, long after the archive opened.
        out.append(Check("bundle", "integrity", "fail", f"{path.name} is damaged or truncated ({exc})",
                         "copy the bundle again from the online machine"))
    return out


def _trust(project: Project, path: Path) -> list[Check]:
    """The bundle's signature as setup will judge it, and what its bill of materials lists (one read of it)."""
    try:
        claims = unpacking.read_claims(path)
    except (bundle.BundleError, tarfile.TarError, EOFError, OSError):
        return []  # not readable as a bundle: the integrity row names what is wrong
    return [_signature(project, path, claims), _sbom(path, claims)]


def _signature(project: Project, path: Path, claims: unpacking.Claims) -> Check:
    try:
        verdict = signing.claims_verdict(claims, signing.load_trusted(project.signing.trusted_keys), path.name)
    except signing.SigningError as exc:
        return Check("bundle", "signature", "fail", exc.message, exc.hint or "")
    fix = "" if verdict.state == "signed" else "sign it (offline.export --sign KEY) and trust the key here " \
                                                "(signing.trusted_keys)"
    return Check("bundle", "signature", "ok" if verdict.state == "signed" else "info",
                 f"{path.name}: {verdict.describe()}", fix)


def _sbom(path: Path, claims: unpacking.Claims) -> Check:
    try:
        raw = claims.sbom(str(path))
    except bundle.BundleError as exc:
        return Check("bundle", "sbom", "fail", exc.message, exc.hint or "")
    if raw is None:
        return Check("bundle", "sbom", "info", f"{path.name}: no bill of materials (an older bundle)",
                     "export again to carry one")
    return Check("bundle", "sbom", "info", f"{bundle.SBOM}: {sbom.summary(raw)} (offline.sbom prints it)")


def _proof(project: Project, path: Path) -> Check:
    """How far offline.verify proved this bundle: this machine's own record (the online machine's), else the proof
    carried with the bundle (the site's), believed only when a trusted key signed it."""
    try:
        sha = unpacking.load_manifest(path)[1]
    except (bundle.BundleError, tarfile.TarError, EOFError, OSError):
        # A damaged bundle is proven by nothing; the integrity row says what is wrong.
        return Check("proof", "offline.verify", "info", f"{path.name}: not proven by offline.verify", _PROVE)
    recorded = proofs_of(project.cache_dir).get(sha, {})
    if recorded:
        return _recorded(path, recorded)
    try:
        claim = proofs.find(project.cache_dir, path, sha, project.signing.trusted_keys)
    except OfflineBuildError as exc:  # borrowed, edited, unreadable: a warning, the builds themselves may work
        return Check("proof", "offline.verify", "warn", exc.message, exc.hint or "")
    if claim is None:
        return Check("proof", "offline.verify", "info", f"{path.name}: not proven by offline.verify", _PROVE)
    return _carried(path, claim)


_PROVE = "offline.verify --edits on an air-gapped engine proves a code change rebuilds with no network"
_AGAIN = "fix what it named, export again, and run offline.verify --edits on an air-gapped engine"


def _recorded(path: Path, proved: dict[str, Any]) -> Check:
    """This machine's own record (proofs.json): what its offline.verify said, trusted as its own."""
    edits, cached = proved.get("edits"), proved.get("cached")
    if edits and edits.get("passed") and not _full(edits):
        return Check("proof", "offline.verify", "warn",
                     f"{path.name}: offline.verify --edits passed {edits.get('when')}, on an engine that was not "
                     f"air-tight and empty ({edits.get('airtight')}, {edits.get('empty')})", _AGAIN)
    if edits and edits.get("passed"):
        return Check("proof", "offline.verify", "ok", f"{path.name}: edit loop proven {edits.get('when')} (offline.verify --edits)")
    if edits:
        return Check("proof", "offline.verify", "warn", f"{path.name}: offline.verify --edits failed {edits.get('when')}",
                     _AGAIN)
    if cached and cached.get("passed") and not _full(cached):
        return Check("proof", "offline.verify", "warn",
                     f"{path.name}: offline.verify passed {cached.get('when')}, on an engine that was not air-tight "
                     f"and empty ({cached.get('airtight')}, {cached.get('empty')}): not proven", _PROVE)
    if cached and cached.get("passed"):
        return Check("proof", "offline.verify", "info", f"{path.name}: builds all cached ({cached.get('when')}); "
                                                 "edit loop not proven", _PROVE)
    return Check("proof", "offline.verify", "info", f"{path.name}: not proven by offline.verify", _PROVE)


def _full(entry: dict[str, Any]) -> bool:
    """A record made before verify measured the engine has neither measure: it stands as it was recorded."""
    return entry.get("airtight", "air-tight") == "air-tight" and entry.get("empty", "empty") == "empty"


def _carried(path: Path, claim: proofs.ProofClaim) -> Check:
    """The proof that came with the bundle: ok only when a trusted key signed a full proof of the edit loop."""
    p = claim.proof
    if claim.state != "proven":
        return Check("proof", "offline.verify", "info", f"{path.name}: {claim.describe()}",
                     "sign the proof (offline.verify --sign KEY, or signing.key) and trust that key here "
                     "(signing.trusted_keys)")
    if not p.full:
        return Check("proof", "offline.verify", "warn", f"{path.name}: {p.summary()}", _AGAIN)
    if p.level != "edits":
        return Check("proof", "offline.verify", "info", f"{path.name}: {p.summary()}", _PROVE)
    return Check("proof", "offline.verify", "ok", f"{path.name}: {claim.describe()}")


def verify_archive(path: Path) -> bundle.Manifest:
    """Check every member's checksum without extracting anything."""
    import hashlib

    where = str(path)
    with unpacking.open_archive(path) as tar:
        members = unpacking.check_members(tar, where)
        manifest = unpacking.read_manifest(tar, members, where)
        expected = manifest.digests()
        for m in members:
            if m.name not in expected:
                continue
            fh = tar.extractfile(m)
            digest = hashlib.sha256()
            while fh and (chunk := fh.read(1 << 20)):
                digest.update(chunk)
            if digest.hexdigest() != expected[m.name]:
                raise bundle.BundleError(f"{where}: {m.name} is damaged (checksum mismatch)",
                                         "copy the bundle again from the online machine")
    return manifest


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == "fail"]


def render(console: Console, checks: list[Check]) -> None:
    table = Table(title="offline.diagnose", title_justify="left")
    for col in ("area", "check", "status", "detail", "fix"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(c.area, c.name, f"[{STYLE[c.status]}]{c.status}[/]", c.detail, c.fix)
    console.print(table)
    bad = failed(checks)
    if bad:
        console.print(f"[bold red]{len(bad)} problem(s): an offline build would fail.[/] First: "
                      f"{bad[0].area} / {bad[0].name}: {bad[0].detail}; fix: {bad[0].fix}")
    else:
        console.print("[green]ready: every service can build offline here.[/]")


def to_json(checks: list[Check]) -> list[dict[str, str]]:
    return [asdict(c) for c in checks]

"""Talking to a Docker engine: the client, and probes of what it can do.

Capabilities are found by trying them, not by reading version strings: a
Docker 26 without the containerd image store cannot export caches or read
``oci-layout://`` contexts, and Debian's 20.10 has no named contexts at all.
"""

from __future__ import annotations

import json
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from python_on_whales import DockerClient, Image
from python_on_whales.client_config import ClientNotFoundError
from python_on_whales.components.system.models import SystemInfo
from python_on_whales.exceptions import DockerException

from .errors import EngineError
from .files import create_ignored, write_atomic
from .platforms import ARCHES, arch

if TYPE_CHECKING:
    from .config import Project


def client(host: str | None = None) -> DockerClient:
    """A client for *host* (a URL or a socket's path), else ``DOCKER_HOST`` or the default socket."""
    return DockerClient(host=engine_host(host)) if host else DockerClient()


def engine_host(host: str) -> str:
    """*host* as the docker command takes it: a URL as given, the path of a socket as ``unix://PATH``.

    The docker command reads a bare path as a TCP address and fails with
    ``Cannot connect ... tcp://localhost:2375``, naming neither the value nor the mistake.
    """
    if "://" in host:
        return host
    path = Path(host).expanduser()
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = 0
    if stat.S_ISSOCK(mode):
        return f"unix://{path.absolute()}"
    what = "exists but is not a socket" if mode else "is neither an engine URL nor the path of a socket"
    raise EngineError(f"--host {host}: {what}",
                      "pass unix:///path/to/docker.sock (or that socket's path), tcp://HOST:PORT or ssh://USER@HOST")


def engine_message(exc: DockerException) -> str:
    """The engine's own words from a failed docker command, last lines first."""
    text = (exc.stderr or exc.stdout or str(exc)).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-6:]) if lines else str(exc)


@dataclass(frozen=True)
class Capabilities:
    """What an engine was seen to do."""

    server_version: str
    buildx_version: str | None
    containerd_store: bool
    cache_export: bool
    cache_import: bool
    oci_layout_context: bool
    named_contexts: bool
    # Probes that failed without the engine saying the feature is missing (a
    # transient fault): read as absent for this run, never remembered.
    unsettled: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        del data["unsettled"]
        return data


def server_version(docker: DockerClient) -> str:
    try:
        return docker.version().server.version or "unknown"
    except DockerException as exc:
        raise EngineError(f"cannot reach the Docker engine: {engine_message(exc)}",
                          "start the engine, or point --host / DOCKER_HOST at one") from None


def buildx_version(docker: DockerClient) -> str | None:
    try:
        # python-on-whales returns buildx's own line: "github.com/docker/buildx 0.13.1 <commit>".
        text = str(docker.buildx.version())
    except (DockerException, ClientNotFoundError):
        return None
    parts = text.split()
    return parts[1] if len(parts) >= 2 else text or None


def engine_info(docker: DockerClient) -> SystemInfo:
    """``docker info``, or one clear error when the engine cannot be reached."""
    try:
        info = docker.system.info()
    except DockerException as exc:
        raise EngineError(f"cannot reach the Docker engine: {engine_message(exc)}",
                          "start the engine, or point --host / DOCKER_HOST at one") from None
    if not info.os_type and not info.architecture:  # every engine fills them in
        # A docker CLI before 27 prints an empty info and exits 0 when it cannot reach the engine (the reason is
        # in ServerErrors, which python-on-whales drops): ``docker version`` fails and says why.
        server_version(docker)
    return info


def containerd_store(info: SystemInfo) -> bool:
    """Is the containerd image store on? (driver-type ``io.containerd.snapshotter.v1``)."""
    status = info.driver_status or []
    return any("containerd.snapshotter" in " ".join(map(str, pair)) for pair in status)


PROBES = ("named_contexts", "cache_export", "cache_import", "oci_layout_context")


def probe(docker: DockerClient, work: Path, need: tuple[str, ...] = PROBES,
          known: dict[str, bool] | None = None, info: SystemInfo | None = None,
          buildx: str | None = None) -> Capabilities:
    """Try each needed capability with a tiny build from ``scratch`` (no image, no network).

    Each probe is a build of about a second, so only *need* is tried;
    *known* holds answers from earlier probes of the same engine. A
    capability not asked for and not known reads as False.
    """
    info = info or engine_info(docker)
    version = info.server_version or "unknown"
    found = dict(known or {})
    missing = [n for n in need if n not in found]
    bx = buildx if buildx and not missing else buildx_version(docker)
    store = containerd_store(info)
    unsettled = []
    with tempfile.TemporaryDirectory(dir=work, prefix=".probe-") as tmp:
        root = Path(tmp)
        ctx = root / "ctx"
        ctx.mkdir()
        write_atomic(ctx / "Dockerfile", b"FROM scratch\nCOPY f /f\n")
        write_atomic(ctx / "f", b"probe\n")
        for name in missing:
            works = bx is not None and _PROBE_FNS[name](docker, root, ctx)
            if works is None:
                unsettled.append(name)
            found[name] = bool(works)
    return Capabilities(version, bx, store, found.get("cache_export", False), found.get("cache_import", False),
                        found.get("oci_layout_context", False), found.get("named_contexts", False),
                        unsettled=tuple(unsettled))


def _named(docker: DockerClient, root: Path, ctx: Path) -> bool | None:
    return _try(docker, ctx, build_contexts={"extra": str(ctx)}, dockerfile="FROM scratch\nCOPY --from=extra f /f\n")


def _export(docker: DockerClient, root: Path, ctx: Path) -> bool | None:
    return _try(docker, ctx, cache_to=f"type=local,dest={root / 'cache'},mode=max")


def _import(docker: DockerClient, root: Path, ctx: Path) -> bool | None:
    return _try(docker, ctx, cache_from=f"type=local,src={_probe_cache(root)}")


def _probe_cache(root: Path) -> Path:
    """An empty local cache folder (an OCI layout with no entries), so the import probe needs no export.

    BuildKit reports a cache it cannot use as a warning, so this probe shows
    whether the driver takes ``--cache-from type=local`` at all.
    """
    import hashlib

    cache = root / "empty-cache"
    blobs = cache / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        write_atomic(blobs / digest, data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = put(b'{"layers":[],"records":[]}')
    index = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": [{"mediaType": "application/vnd.buildkit.cacheconfig.v0", **config}]}).encode())
    write_atomic(cache / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    write_atomic(cache / "index.json", json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", **index,
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}).encode())
    return cache


def engine_id(info: SystemInfo) -> str:
    """The daemon's own ID (kept in its data root) and version: what a probe result belongs to."""
    return f"{info.id}@{info.server_version}"


def _oci_probe(docker: DockerClient, root: Path, ctx: Path) -> bool | None:
    # Needs named contexts too: on an engine without them this fails as well.
    layout = root / "layout"
    _empty_image_layout(layout)
    return _try(docker, ctx, build_contexts={"probe": f"oci-layout://{layout}:probe"},
                dockerfile="FROM probe\n")


_PROBE_FNS = {"named_contexts": _named, "cache_export": _export, "cache_import": _import,
              "oci_layout_context": _oci_probe}


def _try(docker: DockerClient, ctx: Path, *, dockerfile: str | None = None,
         build_contexts: dict[str, str] | None = None, cache_to: str | None = None,
         cache_from: str | None = None) -> bool | None:
    """True: it works; False: the engine refused the feature; None: it failed for another reason."""
    file = ctx / "Dockerfile"
    if dockerfile:
        file = ctx / "Probe.Dockerfile"
        write_atomic(file, dockerfile.encode())
    try:
        built = docker.buildx.build(ctx, file=file, build_contexts=build_contexts or {}, cache_to=cache_to,
                                    cache_from=cache_from, network="none", progress=False)
    except DockerException as exc:
        words = engine_message(exc)
    else:
        _remove_probe_image(docker, built)
        return True
    kind = failure_kind(words)
    if kind == "unreachable":
        raise EngineError(f"cannot reach the Docker engine: {words}",
                          "start the engine, or point --host / DOCKER_HOST at one")
    return False if kind == "refused" else None


def _remove_probe_image(docker: DockerClient, built: object) -> None:
    """The docker driver keeps what a probe built as an untagged image: a probe leaves nothing behind."""
    if isinstance(built, Image):
        try:
            docker.image.remove(built.id)
        except DockerException:
            pass  # in use by a container, or already gone: it was never the user's, and is harmless


# The engine's words for a feature it lacks (the docker driver's cache export,
# an old buildx's missing flags); a failure saying none of these is not proof.
REFUSED = ("not supported", "unsupported", "unknown flag", "unknown option", "not implemented",
           "is not available", "switch to a different driver")
# Faults of the moment: the next run may well succeed.
TRANSIENT = ("connection reset", "connection closed", "broken pipe", "deadline exceeded", "timeout",
             "timed out", "code = unavailable", "code = canceled", "unexpected eof", "no space left",
             "too many open files", "resource temporarily unavailable", "signal: killed", "context canceled")
UNREACHABLE = ("cannot connect to the docker daemon", "is the docker daemon running", "error during connect",
               "connection refused", "no such host")


def failure_kind(words: str) -> str:
    """What a failed docker command's words mean: ``unreachable``, ``transient``, ``refused`` or ``unknown``.

    Only ``refused`` may be remembered as a missing capability: anything else
    is probed again next time rather than cached as absent for good.
    """
    text = words.lower()
    for kind, markers in (("unreachable", UNREACHABLE), ("transient", TRANSIENT), ("refused", REFUSED)):
        if any(m in text for m in markers):
            return kind
    return "unknown"


def _empty_image_layout(root: Path) -> None:
    """A one-layer image in an OCI layout, made locally, to probe ``oci-layout://``."""
    import hashlib
    import io
    import tarfile

    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        write_atomic(blobs / digest, data)
        return f"sha256:{digest}", len(data)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("probe")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    layer = buf.getvalue()
    layer_digest, layer_size = put(layer)
    config = json.dumps({"architecture": arch(), "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode()
    config_digest, config_size = put(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    }).encode()
    manifest_digest, manifest_size = put(manifest)
    write_atomic(root / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    write_atomic(root / "index.json", json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": "probe"}}],
    }).encode())


def image_present(docker: DockerClient, ref: str) -> bool:
    """Is *ref* in the engine? Only the engine's "no such image" is a no; any other failure is an error.

    An unreachable engine answering "missing" would send the user to load
    or pull an image that is there.
    """
    try:
        return docker.image.exists(ref)  # False on "no such image" only
    except DockerException as exc:
        words = engine_message(exc)
    if failure_kind(words) == "unreachable":
        raise EngineError(f"cannot reach the Docker engine: {words}",
                          "start the engine, or point --host / DOCKER_HOST at one")
    raise EngineError(f"cannot tell whether {ref} is in the engine: {words}",
                      "check the image name; if the engine is busy or restarting, run this again")


def engine_platforms(docker: DockerClient, info: SystemInfo | None = None) -> tuple[str, ...]:
    """The platforms this engine's builder can run steps for: native plus any emulated.

    buildx lists emulated ones (binfmt/QEMU) too; without buildx, the
    engine's own OS and architecture.
    """
    try:
        nodes = docker.buildx.inspect().nodes
        found = tuple(p for n in nodes for p in (n.platforms or []))
        if found:
            return found
    except DockerException:
        pass
    return (native_platform(docker, info),)


def native_platform(docker: DockerClient, info: SystemInfo | None = None) -> str:
    """The engine's own platform (``linux/amd64``): what it builds and runs when no platform is asked for."""
    info = info or engine_info(docker)
    arch = ARCHES.get((info.architecture or "").lower(), (info.architecture or "").lower())
    return f"{info.os_type or 'linux'}/{arch}"


# --- the probe cache: what each engine can do, remembered per engine -------------


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
    create_ignored(project.cache_dir)  # diagnose and build may be the first to make it
    work = project.cache_dir / ".work"
    work.mkdir(exist_ok=True)
    caps = probe(docker, work, need, known, info=info, buildx=entry.get("buildx"))
    learned = remembered_entry(known, caps, need)
    if learned != entry:
        remembered[key] = learned
        write_atomic(path, (json.dumps(remembered, indent=2, sort_keys=True) + "\n").encode())
    return caps


def remembered_entry(known: dict[str, bool], caps: Capabilities, need: tuple[str, ...]) -> dict[str, object]:
    """What ``engines.json`` keeps for an engine after a probe: never a capability whose probe was unsettled."""
    settled = {n: bool(getattr(caps, n)) for n in need if n not in caps.unsettled}
    return {**known, **settled, "buildx": caps.buildx_version}

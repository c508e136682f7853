"""Planning's vocabulary: names in the store, cache specs, and the build steps shared by workflows.

The tags a store gives base images and caches, the team cache's ``type=...``
specs, the builder's ``buildx create``, and the online and offline
:class:`~offline_build.steps.Build` of a service. Pure: no I/O, so
``--dry-run`` and the unit tests see exactly what a real run would do.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from .config import BuilderOptions, CacheOptions, Project, Service
from .platforms import runs_platform
from .steps import Build, EnsureBuilder


def slug(ref: str) -> str:
    """A file- and tag-safe name for an image reference (``debian:bookworm-slim`` -> ``debian_bookworm-slim``)."""
    ref = ref.removeprefix("docker.io/").removeprefix("library/")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", ref).strip("_.-")[:120]


def cache_tag(service: str) -> str:
    """The tag of a service's cache inside the store's OCI index."""
    return f"cache-{service}"


def remote_cache(cache: CacheOptions, service: str) -> str | None:
    """The ``type=...`` spec of a service's cache in the project's remote backend, if any.

    One entry per service (registry tag, S3 manifest name) for the same
    reason the store has one tag per service: builds run side by side and
    mode=max caches of different Dockerfiles must not overwrite each other.
    """
    if cache.backend == "registry":
        return f"type=registry,ref={cache.ref}:{service}"
    if cache.backend == "s3":
        parts = ["type=s3", f"region={cache.region}", f"bucket={cache.bucket}", f"name={service}"]
        if cache.endpoint_url:
            parts.append(f"endpoint_url={cache.endpoint_url}")
        if cache.use_path_style:
            parts.append("use_path_style=true")
        if cache.prefix:
            parts += [f"blobs_prefix={cache.prefix}blobs/", f"manifests_prefix={cache.prefix}manifests/"]
        return ",".join(parts)
    return None


def remote_cache_to(cache: CacheOptions, service: str, *, offline: bool = False) -> tuple[str, ...]:
    """Where a build writes its cache back, when the project asks for it."""
    spec = remote_cache(cache, service)
    writes = cache.offline_writes_back if offline else cache.writes_back
    return (f"{spec},mode=max",) if spec and writes else ()


def ensure_builder(builder: BuilderOptions) -> EnsureBuilder | None:
    create = builder_create(builder)
    if create is None:
        return None
    return EnsureBuilder(title=f"use builder {builder.named} ({builder.driver})", name=builder.named or "",
                         driver=builder.driver, create=tuple(create), image=builder.image, endpoint=builder.endpoint)


def builder_create(builder: BuilderOptions) -> list[str] | None:
    """``docker buildx create`` for the project's builder, or None for the engine's own."""
    if builder.named is None:
        return None
    cmd = ["docker", "buildx", "create", "--name", builder.named, "--driver", builder.driver]
    opts = dict(builder.driver_opts)
    if builder.driver == "docker-container":
        # network=host: engines without a bridge network (and air-gapped
        # ones) have no other network to give the BuildKit container.
        opts = {"image": builder.image or "", "network": "host", **opts}
    for key, value in opts.items():
        cmd += ["--driver-opt", f"{key}={value}"]
    if builder.endpoint:
        cmd.append(builder.endpoint)
    return cmd


def base_tag(image: str) -> str:
    """The tag of a base image inside the store's OCI index."""
    return f"base-{slug(image)}"


def repository(name: str) -> str:
    """An image name as Docker normalises it: ``debian`` -> ``docker.io/library/debian``, ``me/app`` ->
    ``docker.io/me/app``; a first part with a dot, a port or ``localhost`` is a registry, kept. A tag or
    digest after the name goes along unchanged. A name to match and to write down, not a host anything here
    contacts."""
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{name}"
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"docker.io/{name}"


def full_name(ref: str) -> str:
    """``debian:bookworm-slim`` -> ``docker.io/library/debian:bookworm-slim``, ``debian`` ->
    ``docker.io/library/debian:latest``: the normalised reference containerd records in ``docker save`` output."""
    name = repository(ref)
    if ":" not in name.rsplit("/", 1)[-1] and "@" not in name:
        name += ":latest"
    return name


# --- builders ----------------------------------------------------------------


def image_tag(project: Project, service: Service) -> str:
    return f"{service.image}:{project.version}"


def classic_cache_image(project: Project, service: Service) -> str:
    """``<project>-<service>-classic:<version>``: the service built by the classic builder at export.

    The classic builder cannot read a BuildKit cache; this image, loaded at
    the site, is what its ``--cache-from`` matches steps against.
    """
    return f"{project.name}-{service.name}-classic:{project.version}"


def online_build(project: Project, service: Service, cache_dest: Path | None = None,
                 dockerfile: Path | None = None, contexts: tuple[tuple[str, str], ...] = (),
                 bases: tuple[str, ...] = ()) -> Build:
    """A build on the online machine; cache exported when asked.

    *dockerfile* and *contexts* are the offline variant and its APT
    captures, when the service has them: export and offline builds must
    build the same file to share cache keys. A named builder (its own
    BuildKit, in a container or elsewhere) cannot see the engine's images
    and would pull each ``FROM`` from its registry: it gets *bases* from the
    store instead, saved there by the plan's first steps.
    """
    if project.builder.named:
        contexts = contexts + tuple((b, f"oci-layout://{project.store}:{base_tag(b)}") for b in bases)
    local = (f"type=local,dest={cache_dest},mode=max,tag={cache_tag(service.name)}",) if cache_dest else ()
    remote = remote_cache(project.cache, service.name)
    return Build(
        title=f"build {service.name} (online)",
        service=service.name,
        context=service.context,
        dockerfile=dockerfile or service.dockerfile,
        build_contexts=contexts,
        tags=(image_tag(project, service),),
        target=service.target,
        build_args=tuple(sorted(service.build_args.items())),
        platforms=project.platforms,
        network=project.network,
        # A team cache makes a fresh export start warm; the store still gets
        # everything, because the bundle is made from the store alone.
        cache_from=(remote,) if remote else (),
        cache_to=local + remote_cache_to(project.cache, service.name),
        load=cache_dest is None,
        builder=project.builder.named,
        cache_write_fix="make it reachable from the engine, or only read it (cache.push: false), "
                        "or export without it (OFFLINE_CACHE_BACKEND=local)",
    )


def build_platforms(platforms: tuple[str, ...], native: str, asked: bool = False) -> tuple[str, ...]:
    """The platforms an offline build of a project for *platforms* makes on an engine whose own is *native*.

    All of them when *asked* for with ``--platform``; else, when the project builds for
    the engine's own platform, that one alone (the image ``docker run``
    uses here, and only its steps run: an arm64 rebuild under emulation is
    several times slower); else the project's (an arm64-only project on an
    amd64 engine builds under emulation, as it was exported).
    """
    if asked or not platforms:
        return platforms
    own = [p for p in platforms if runs_platform(native, (p,))]
    return (own[0],) if own else platforms


def offline_build(project: Project, service: Service, bases: tuple[str, ...],
                  *, cache: bool, oci_contexts: bool, network: str | None,
                  dockerfile: Path | None = None, contexts: tuple[tuple[str, str], ...] = (),
                  platforms: tuple[str, ...] | None = None) -> Build:
    """A build on the offline machine, with cache and base images from the store.

    *network* must be the mode the export built with: BuildKit puts the
    network mode into every ``RUN`` step's cache key, so any other mode
    misses the whole imported cache. *oci_contexts* says whether the engine
    can read base images straight from the store (``oci-layout://``);
    otherwise they must already be loaded. *platforms*: what it builds
    (:func:`build_platforms`); None, the project's.
    """
    store = project.store
    captures = tuple(path for _, path in contexts)
    contexts = contexts + (tuple((b, f"oci-layout://{store}:{base_tag(b)}") for b in bases) if oci_contexts else ())
    cache_from = (f"type=local,src={store},tag={cache_tag(service.name)}",) if cache else ()
    remote = remote_cache(project.cache, service.name)
    needs_tags = tuple(base_tag(b) for b in bases) if oci_contexts else ()
    return Build(
        title=f"build {service.name} (offline)",
        service=service.name,
        context=service.context,
        dockerfile=dockerfile or service.dockerfile,
        tags=(image_tag(project, service),),
        target=service.target,
        build_args=tuple(sorted(service.build_args.items())),
        platforms=project.platforms if platforms is None else platforms,
        network=network,
        build_contexts=contexts,
        cache_from=cache_from + ((remote,) if remote else ()),
        cache_to=remote_cache_to(project.cache, service.name, offline=True),
        load=True,
        builder=project.builder.named,
        needs_store_tags=needs_tags + ((cache_tag(service.name),) if cache else ()),
        needs_images=() if oci_contexts else bases,
        capture_dirs=captures,
        offline=True,
        cache_write_fix="make it reachable from the engine, or build without it: unset OFFLINE_CACHE_BACKEND "
                        "and OFFLINE_CACHE_REF (the project file's cache is only read), or OFFLINE_CACHE_BACKEND=local",
    )


def bundle_name(today: date | None = None, delta: bool = False) -> str:
    """``build-cache-YYYYMMDD.tar`` (the seed's name), ``...-delta.tar`` for a delta."""
    stamp = (today or date.today()).strftime("%Y%m%d")
    return f"build-cache-{stamp}{'-delta' if delta else ''}.tar"

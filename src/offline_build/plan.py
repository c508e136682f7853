"""Planning: project file + options in, a list of frozen steps out.

Planning does no I/O beyond what the project already read, so ``--dry-run``
and the unit tests see exactly what a real run would do. Each step knows the
docker command it amounts to (``argv``); the executor runs the step itself,
never a second, hand-written copy of that command.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from .config import BuilderOptions, CacheOptions, Project, Service


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


@dataclass(frozen=True)
class Step:
    """One unit of work. ``title`` is what progress output and errors call it."""

    title: str

    def argv(self) -> list[str] | None:
        """The docker command this step amounts to, or None for a local action."""
        return None

    def describe(self) -> str:
        argv = self.argv()
        return shlex.join(argv) if argv else f"# {self.title}"


@dataclass(frozen=True)
class ImageBuild(Step):
    """What every image build has, whichever builder runs it."""

    service: str = ""
    context: Path = Path(".")
    dockerfile: Path = Path("Dockerfile")
    tags: tuple[str, ...] = ()
    target: str | None = None
    build_args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Build(ImageBuild):
    """``docker buildx build`` of one service."""

    platforms: tuple[str, ...] = ()
    network: str | None = None
    build_contexts: tuple[tuple[str, str], ...] = ()
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    load: bool = True
    builder: str | None = None
    # Base images this build needs from the store; checked before the build,
    # because BuildKit quietly falls back to the network when they are absent.
    needs_store_tags: tuple[str, ...] = ()
    needs_images: tuple[str, ...] = ()
    # What to do when writing to the team cache fails: export and offline
    # builds have different ways out.
    cache_write_fix: str = ""

    def argv(self) -> list[str]:
        cmd = ["docker", "buildx", "build", "--progress", "rawjson"]
        if self.builder:
            cmd += ["--builder", self.builder]
        for name, value in self.build_args:
            cmd += ["--build-arg", f"{name}={value}"]
        for name, value in self.build_contexts:
            cmd += ["--build-context", f"{name}={value}"]
        for source in self.cache_from:
            cmd += ["--cache-from", source]
        for dest in self.cache_to:
            cmd += ["--cache-to", dest]
        cmd += ["--file", str(self.dockerfile)]
        if self.load:
            cmd.append("--load")
        if self.network:
            cmd += ["--network", self.network]
        if self.platforms:
            cmd += ["--platform", ",".join(self.platforms)]
        for tag in self.tags:
            cmd += ["--tag", tag]
        if self.target:
            cmd += ["--target", self.target]
        cmd.append(str(self.context))
        return cmd


@dataclass(frozen=True)
class EnsureBuilder(Step):
    """Use the project's buildx builder, creating it when this engine has none by that name."""

    name: str = ""
    driver: str = ""
    create: tuple[str, ...] = ()  # the ``docker buildx create`` argv
    image: str | None = None  # docker-container: the BuildKit image it runs, which must be here
    endpoint: str | None = None  # remote: the BuildKit it drives

    def argv(self) -> list[str]:
        return list(self.create)


@dataclass(frozen=True)
class SaveImages(Step):
    """``docker save`` base images, then merge them into the store."""

    images: tuple[str, ...] = ()
    store: Path = Path("store")
    platforms: tuple[str, ...] = ()  # each image must have content for these (the project's platforms)

    def argv(self) -> list[str]:
        return ["docker", "save", "--output", "<tmp>.tar", *self.images]


@dataclass(frozen=True)
class MergeCache(Step):
    """Move one service's freshly exported cache folder into the shared store."""

    source: Path = Path(".")
    store: Path = Path("store")
    tag: str = ""
    bases: tuple[str, ...] = ()  # store tags of this service's base images


@dataclass(frozen=True)
class FetchResource(Step):
    resource_name: str = ""
    kind: str = ""
    source: str = ""
    ref: str | None = None
    sha256: str | None = None
    dest: Path = Path(".")


@dataclass(frozen=True)
class Pack(Step):
    """Write the bundle: reachable blobs, files, manifest; atomically."""

    cache_dir: Path = Path(".")
    output: Path = Path("bundle.tar")
    services: tuple[str, ...] = ()
    since: Path | None = None  # a delta: omit what this earlier bundle (or its manifest) holds
    split_size: int | None = None  # cut into numbered parts of at most this many bytes


@dataclass(frozen=True)
class CaptureApt(Step):
    """``apt-get update`` and ``install --download-only`` in a throwaway container of *base*."""

    base: str = ""
    dest: Path = Path(".")
    packages: tuple[str, ...] = ()
    no_recommends: bool = True
    source_edits: tuple[str, ...] = ()
    network: str = "host"

    def script(self) -> str:
        recommends = " --no-install-recommends" if self.no_recommends else ""
        return "\n".join([
            "set -e",
            *self.source_edits,
            # Indexes stay gzip-compressed (apt reads them so) and without
            # translations: 80 MB of lists become about 9 MB in the bundle.
            "apt-get -o Acquire::GzipIndexes=true -o Acquire::CompressionTypes::Order::=gz"
            " -o Acquire::Languages=none update",
            f"apt-get install -y --download-only{recommends} {' '.join(shlex.quote(p) for p in self.packages)}",
        ])

    def argv(self) -> list[str]:
        return ["docker", "run", "--rm", "--network", self.network,
                "--volume", f"{self.dest}/lists:/var/lib/apt/lists",
                "--volume", f"{self.dest}/archives:/var/cache/apt/archives",
                self.base, "sh", "-c", self.script()]


@dataclass(frozen=True)
class WriteFile(Step):
    """A generated file (a Dockerfile variant); ``--dry-run`` shows its text."""

    path: Path = Path(".")
    text: str = ""

    def describe(self) -> str:
        body = "\n".join(f"#   {line}" for line in self.text.splitlines())
        return f"# write {self.path}:\n{body}"


@dataclass(frozen=True)
class ClassicBuild(ImageBuild):
    """``DOCKER_BUILDKIT=0 docker build``: the fallback for engines BuildKit cannot serve."""

    network: str | None = "none"
    needs_images: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        cmd = ["env", "DOCKER_BUILDKIT=0", "docker", "build", "--file", str(self.dockerfile)]
        for name, value in self.build_args:
            cmd += ["--build-arg", f"{name}={value}"]
        if self.network:
            cmd += ["--network", self.network]
        for tag in self.tags:
            cmd += ["--tag", tag]
        if self.target:
            cmd += ["--target", self.target]
        return [*cmd, str(self.context)]


@dataclass(frozen=True)
class Plan:
    """An ordered list of steps, and what the plan is for."""

    name: str
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        return "\n".join(step.describe() for step in self.steps)


# --- builders ----------------------------------------------------------------


def image_tag(project: Project, service: Service) -> str:
    return f"{service.image}:{project.version}"


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


def offline_build(project: Project, service: Service, bases: tuple[str, ...],
                  *, cache: bool, oci_contexts: bool, network: str | None,
                  dockerfile: Path | None = None, contexts: tuple[tuple[str, str], ...] = ()) -> Build:
    """A build on the offline machine, with cache and base images from the store.

    *network* must be the mode the export built with: BuildKit puts the
    network mode into every ``RUN`` step's cache key, so any other mode
    misses the whole imported cache. *oci_contexts* says whether the engine
    can read base images straight from the store (``oci-layout://``);
    otherwise they must already be loaded.
    """
    store = project.store
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
        platforms=project.platforms,
        network=network,
        build_contexts=contexts,
        cache_from=cache_from + ((remote,) if remote else ()),
        cache_to=remote_cache_to(project.cache, service.name, offline=True),
        load=True,
        builder=project.builder.named,
        needs_store_tags=needs_tags + ((cache_tag(service.name),) if cache else ()),
        needs_images=() if oci_contexts else bases,
        cache_write_fix="make it reachable from the engine, or build without it: unset OFFLINE_CACHE_BACKEND "
                        "and OFFLINE_CACHE_REF (the project file's cache is only read), or OFFLINE_CACHE_BACKEND=local",
    )


def bundle_name(today: date | None = None, delta: bool = False) -> str:
    """``build-cache-YYYYMMDD.tar`` (the seed's name), ``...-delta.tar`` for a delta."""
    stamp = (today or date.today()).strftime("%Y%m%d")
    return f"build-cache-{stamp}{'-delta' if delta else ''}.tar"

"""The steps a plan is made of: frozen data, each knowing the command it amounts to.

A step says *what* to do (``argv`` and ``describe`` derive the docker command
that ``--dry-run`` prints from the step's own fields); the executor and its
runners say *how*. Steps of one package ecosystem's capture live with that
capture (``captures/``), not here.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import Resource
from .signing import Signer


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
    capture_dirs: tuple[str, ...] = ()  # folders of captures it mounts: each must hold every platform built
    # What to do when writing to the team cache fails: export and offline
    # builds have different ways out.
    cache_write_fix: str = ""
    output: str | None = None  # --output (a capture build's type=local); replaces --load
    offline: bool = False  # built at the site: a step that needs the network is explained, not just reported
    secrets: tuple[str, ...] = ()  # --secret specs (the project's CA, in capture builds)
    # The replay capture (runners/proxy.py): record its steps' fetches into this folder (a capture build),
    # or serve them from these recordings; either starts a proxy its steps reach with RUN --network=host.
    record: str = ""
    replay: tuple[str, ...] = ()

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
        for secret in self.secrets:
            cmd += ["--secret", secret]
        if self.record or self.replay:
            cmd += ["--allow", "network.host"]
        if self.output:
            cmd += ["--output", self.output]
        elif self.load:
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
        return ["docker", "save", *self.images]  # read as a stream, blob by blob, into the store


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
    """Write the bundle: reachable blobs, files, manifest; atomically.

    *folders* are the local folders that travel as ``files/<name>/`` (the
    resources and each capture's); *manifest* is what the manifest says of
    the project, resolved against what the store holds once the builds ran.
    """

    cache_dir: Path = Path(".")
    store: Path = Path("store")
    output: Path = Path("bundle.tar")
    services: tuple[str, ...] = ()
    since: Path | None = None  # a delta: omit what this earlier bundle (or its manifest) holds
    split_size: int | None = None  # cut into numbered parts of at most this many bytes
    folders: tuple[tuple[str, Path], ...] = ()
    manifest: ManifestDraft | None = None
    resources: tuple[Resource, ...] = ()  # for the SBOM: each resource's source
    root: Path | None = None  # the project folder: the SBOM shows local sources relative to it
    signer: Signer | None = None  # sign the manifest (the key was unlocked when the plan was made)

    def describe(self) -> str:
        return f"# {self.title}" + (f" (signed with key {self.signer.key_id})" if self.signer else "")


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
    # Images whose layers the classic builder may reuse: it matches each step against their history, so an
    # image loaded from the bundle serves where no local chain of layers exists yet (a fresh site).
    cache_from: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        cmd = ["env", "DOCKER_BUILDKIT=0", "docker", "build", "--file", str(self.dockerfile)]
        for name, value in self.build_args:
            cmd += ["--build-arg", f"{name}={value}"]
        if self.network:
            cmd += ["--network", self.network]
        for image in self.cache_from:
            cmd += ["--cache-from", image]
        for tag in self.tags:
            cmd += ["--tag", tag]
        if self.target:
            cmd += ["--target", self.target]
        return [*cmd, str(self.context)]


@dataclass(frozen=True)
class OfflineBuild(Step):
    """Build one service offline: BuildKit first, the classic builder only where BuildKit cannot.

    The fallback is part of the plan, so ``--dry-run`` shows it; it runs only
    after a BuildKit-specific failure (an engine too old for named contexts,
    no buildx...), never after the build's own failure.
    """

    service: str = ""
    buildkit: Build | None = None  # None: classic only (offline.build-classic)
    classic: ClassicBuild | None = None
    no_classic: str = ""  # why there is no classic variant, when there is none
    fallback: bool = True  # False: --no-fallback, a BuildKit failure stays the answer

    def describe(self) -> str:
        lines = [self.buildkit.describe()] if self.buildkit else []
        if self.classic is None or (self.buildkit and not self.fallback):
            if not self.buildkit:
                lines.append(f"# {self.title}: no classic variant ({self.no_classic})")
            return "\n".join(lines)
        if self.buildkit:
            lines.append(f"# only if this engine's BuildKit cannot build {self.service}, the classic builder:")
        lines.append(self.classic.describe())
        return "\n".join(lines)


@dataclass(frozen=True)
class Unpack(Step):
    """Verify a bundle in a scratch folder, merge its blobs into the store, place its files.

    *places* maps a bundle folder (``files/apt``) to the local folder it
    goes to; setup records what it restored in ``<cache_dir>/bundle.json``.
    *project* and *platforms* are what the bundle must be for;
    *check_platforms*: refuse a bundle for platforms the engine cannot run.
    """

    bundle: Path = Path("bundle.tar")
    store: Path = Path("store")
    cache_dir: Path = Path(".")
    project: str = ""
    platforms: tuple[str, ...] = ()
    places: tuple[tuple[str, Path], ...] = ()
    check_platforms: bool = True
    trusted_keys: tuple[Path, ...] = ()  # with any: only a bundle one of them signed is set up
    keep_proof: bool = True  # check the offline.verify proof carried beside the bundle, keep it (not verify's own)

    def describe(self) -> str:
        lines = [f"# verify {self.bundle} against its manifest (every file's sha256), merge it into {self.store}"]
        lines += [f"# place the bundle's {name}/ in {dest}" for name, dest in self.places]
        if self.keep_proof:
            from .proof import proof_path  # here, not above: the plan's steps need none of proof's imports

            lines.append(f"# if {proof_path(self.bundle).name} is beside it: check it is this bundle's proof, keep it "
                         f"in {self.cache_dir / 'proofs'}")
        return "\n".join(lines)


@dataclass(frozen=True)
class LoadImages(Step):
    """``docker load`` images (reference, store tag) from the store, for engines that need them loaded."""

    images: tuple[tuple[str, str], ...] = ()
    store: Path = Path("store")
    why: str = ""

    def argv(self) -> list[str]:
        return ["docker", "load"]  # the archive goes to its standard input, built from the store as it is read

    def describe(self) -> str:
        note = f"; {self.why}" if self.why else ""
        return f"docker load  # stdin: {', '.join(ref for ref, _ in self.images)} from the store{note}"


@dataclass(frozen=True)
class DropBlobs(Step):
    """Remove store blobs no index entry reaches: (hex digest, bytes) of each, found when planned."""

    store: Path = Path("store")
    blobs: tuple[tuple[str, int], ...] = ()

    def describe(self) -> str:
        lines = [f"# drop {self.store / 'blobs' / 'sha256' / name} ({size} bytes)" for name, size in self.blobs]
        total = sum(size for _, size in self.blobs)
        return "\n".join([*lines, f"# {len(self.blobs)} unreachable blob(s), {total} bytes, would be dropped"])


@dataclass(frozen=True)
class Plan:
    """An ordered list of steps, and what the plan is for."""

    name: str
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        return "\n".join(step.describe() for step in self.steps)



@dataclass(frozen=True)
class ManifestDraft:
    """What the bundle's manifest will say of the project, before the builds ran.

    Which services and images the manifest lists depends on what the store
    holds when packing (a service whose cache was never exported is not in
    it): :meth:`resolve` keeps the entries whose store tag is there.
    """

    project: str
    version: str
    platforms: tuple[str, ...] = ()
    network: str = ""
    engine: tuple[tuple[str, str], ...] = ()
    services: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # name -> fields (cache_tag among them)
    base_images: tuple[tuple[str, str], ...] = ()  # reference -> store tag
    builder: tuple[tuple[str, str], ...] = ()  # name, driver; image and tag when the image is carried

    def resolve(self, tags: set[str]) -> dict[str, Any]:
        """The manifest's fields for a store holding *tags*."""
        services = {name: {k: list(v) if isinstance(v, tuple) else v for k, v in fields}
                    for name, fields in self.services if dict(fields)["cache_tag"] in tags}
        builder = dict(self.builder)
        if builder.get("tag") not in tags:
            builder.pop("image", None)
            builder.pop("tag", None)
        return {"project": self.project, "version": self.version, "platforms": list(self.platforms),
                "services": services, "base_images": {r: t for r, t in self.base_images if t in tags},
                "network": self.network, "builder": builder, "engine": dict(self.engine)}

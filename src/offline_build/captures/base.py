"""The capture protocol and what every capture shares (see the package docstring)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..config import Project
from ..dockerfile import Dockerfile, Instruction, Stage
from ..files import create_ignored, sha256_file
from ..platforms import normal_platform
from ..steps import Step


@dataclass(frozen=True)
class Served:
    """How the offline variant serves one ``RUN``: mounts to add and the new command text."""

    mounts: tuple[str, ...]
    command: str
    contexts: dict[str, str] = field(default_factory=dict)  # build context name -> the capture's key
    outputs: tuple[str, ...] = ()  # capture mode: stages whose capture folders the last stage copies out
    args: str = ""  # the ARG line its mounts' platform folder needs declared first (PLATFORM_ARGS), if any


@dataclass(frozen=True)
class Row:
    """One line of ``offline.diagnose`` about a capture."""

    name: str
    status: str  # ok | warn | fail | info
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Package:
    """One package a capture holds, as the bundle's SBOM lists it: the parts of its purl and where it is.

    Plain strings rather than a purl object: every command imports the
    captures, only the SBOM needs a purl library.
    """

    type: str  # the purl type: deb, pypi, npm, maven, golang
    name: str
    version: str
    path: str  # where it is, relative to the capture folder (``<key>/...``)
    namespace: str = ""
    qualifiers: tuple[tuple[str, str], ...] = ()
    whole: bool = True  # *path* is the package's own file, so its sha256 is the package's; False: kept unpacked
    sha512: str = ""  # hex: the registry tarball's, when the tool names the package by it (npm, yarn, pnpm)


class Capture(Protocol):
    """One package ecosystem's capture; see the module docstring for the life of one."""

    name: str  # the bundle folder (files/<name>/) and the name in reports

    def folder(self, project: Project) -> Path: ...

    def needs(self, project: Project, service: str, df: Dockerfile) -> Mapping[str, Any]: ...

    def captured(self, project: Project, key: str) -> bool: ...

    def serve(self, service: str, df: Dockerfile, stage: Stage, ins: Instruction, command: str,
              keys: Mapping[str, Any], capturing: bool = False) -> Served | None:
        """How the offline variant runs *ins*, or None; *keys* are the needs served, by key (as :meth:`needs` gave them)."""
        ...

    def context_dir(self, project: Project, key: str) -> Path: ...

    def capture_steps(self, project: Project, needs: list[Mapping[str, Any]]) -> list[Step]: ...

    def handlers(self) -> Mapping[type, Callable[..., dict[str, Any]]]: ...

    def rows(self, project: Project) -> list[Row]: ...

    def explain(self, step_text: str, message: str) -> tuple[str, str] | None:
        """(problem, fix) when a step this capture served failed offline for want of a package, else None."""
        ...

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """The packages among the capture's files (*paths*, relative to its folder); *read* gives a small one's bytes.

        Read from names where the tool's layout says enough, so the SBOM
        reads no package twice: the bundle's manifest has every file's sha256.
        """
        ...


# Every capture keeps one folder per platform under each key (``<key>/linux_arm64/``), named as
# BuildKit's own multi-platform output names them. A served step mounts the one for the platform
# being built: BuildKit expands the stage's build args in ``--mount`` options, so one Dockerfile
# serves every platform, in the export's build and the offline one alike (equal text, equal keys).
PLATFORM_ARGS = "ARG TARGETOS TARGETARCH TARGETVARIANT"
PLATFORM_DIR = "${TARGETOS}_${TARGETARCH}${TARGETVARIANT:+_${TARGETVARIANT}}"
# A stage FROM --platform=$BUILDPLATFORM (cross-compiling) runs on the builder's platform instead.
BUILD_ARGS = "ARG BUILDOS BUILDARCH BUILDVARIANT"
BUILD_DIR = "${BUILDOS}_${BUILDARCH}${BUILDVARIANT:+_${BUILDVARIANT}}"
BUILD_PLATFORM = "$BUILDPLATFORM"  # how a stage's platform is written when it is the builder's


def stage_platform(flag: str | None) -> str | None:
    """A stage's ``FROM --platform=``: None for the platform built, BUILD_PLATFORM, or a literal ``os/arch``.

    Any other expression (another build argument) is taken as the platform built.
    """
    value = (flag or "").strip().replace("{", "").replace("}", "")
    if value == "$BUILDPLATFORM":
        return BUILD_PLATFORM
    return value if value and "$" not in value else None


def platform_source(flag: str | None) -> tuple[str, str]:
    """(folder expression, ARG line it needs) of the capture a stage with this ``--platform`` runs on."""
    platform = stage_platform(flag)
    if platform is None:
        return PLATFORM_DIR, PLATFORM_ARGS
    if platform == BUILD_PLATFORM:
        return BUILD_DIR, BUILD_ARGS
    return platform_dir(platform), ""


def platform_dir(platform: str) -> str:
    """``linux/arm64`` -> ``linux_arm64``, ``linux/arm/v7`` -> ``linux_arm_v7``: what PLATFORM_DIR expands to.

    ``arm64/v8`` is plain ``arm64``, as BuildKit normalises it (TARGETVARIANT is empty).
    """
    return normal_platform(platform).replace("/", "_")


def has_platforms(key_dir: Path, project: Project, mark: str) -> bool:
    """Does a key's capture hold (file *mark* in) a folder for each platform the project builds for?

    Without ``platforms:``, any one: it was the engine's own. A key from before
    captures were per platform (flat) holds none, so it is captured again.
    """
    folders = [key_dir / platform_dir(p) for p in project.platforms]
    return all((f / mark).exists() for f in folders) if folders else any(key_dir.glob(f"*/{mark}"))


def replace_captures(src: Path, dest: Path) -> int:
    """Put each key's fresh capture (a folder under *src*) in *dest*, replacing the old one whole.

    Builds bind-mount a capture and BuildKit keys the step on its exact
    contents: a leftover file from an older bundle would miss the cache.
    Returns how many keys changed.
    """
    if not src.is_dir():
        return 0
    create_ignored(dest)  # setup may be the first to make apt-lists/ on this machine
    changed = 0
    for fresh in sorted(p for p in src.iterdir() if p.is_dir()):
        target = dest / fresh.name
        if tree_digest(target) == tree_digest(fresh):
            continue
        plain_modes(fresh)
        swap_in(fresh, target)
        changed += 1
    return changed


def plain_modes(folder: Path) -> None:
    """0755 folders and 0644 files throughout *folder*.

    BuildKit keys a bind-mounted capture on its files' modes too, and a
    bundle carries plain 0644 files: online and offline copies must agree.
    """
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def remove(path: Path) -> None:
    """Remove a file or a folder, if it is there."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def swap_in(fresh: Path, target: Path) -> None:
    """Replace *target* by *fresh* with two renames, so a reader sees the old or the new, never a mix."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.replace(old)
    fresh.replace(target)
    shutil.rmtree(old, ignore_errors=True)


def tree_digest(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {}
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}

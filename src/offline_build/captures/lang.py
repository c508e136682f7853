"""Captures of language dependencies (pip, uv, npm, yarn, pnpm): per ``RUN`` step, taken by a capture build.

Such a step runs after ``COPY . .`` in most real Dockerfiles, so any source
change re-runs it, and offline it would need the registry. Online, a
*capture build* runs the service's Dockerfile with each such step in capture
mode (the original command with the network, then the tool's own way of
keeping what it fetched, under ``/.offline-build/out/<tool>/<key>``) and a
last stage that copies those folders out (``--output type=local``). Offline,
and in the export's own build, the same step gets its capture bind-mounted
from a named context and the tool pointed at it with no registry
(``PIP_NO_INDEX``, ``npm_config_offline``). Export builds that very
variant, so a capture that missed something fails online, and the cache
keys online and offline are equal.

Keys are ``<service>-<n>``: the n-th step (from 1) of the service's
Dockerfile that uses the tool; each key holds one folder per platform
(``<key>/linux_arm64/``: a wheel for aarch64 is not one for x86_64), which a
multi-platform capture build writes side by side.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..config import Project, ca_file
from ..dockerfile import Dockerfile, Instruction, Stage
from ..files import display_path
from ..pkgs import Install, installs
from ..runners.proxy import ENV_PATH as PROXY_ENV
from ..steps import Build, Step
from .base import (
    PLATFORM_ARGS,
    PLATFORM_DIR,
    Row,
    Served,
    has_platforms,
    plain_modes,
    platform_dir,
    remove,
    swap_in,
)

MOUNTS = "/.offline-build"  # where captures are mounted in build containers
OUT = f"{MOUNTS}/out"  # where a capture build leaves them for the last stage to copy out
CA_SECRET = "offline-build-ca"  # the build secret holding the project's ca_file, in capture builds only
CA_PATH = f"/run/secrets/{CA_SECRET}"
CAPTURE_STAGE = "offline-build-capture"
MARKER = "offline-build-capture.txt"  # keeps an empty capture a folder, so it travels and is found


@dataclass(frozen=True)
class StepNeed:
    """One ``RUN`` a language capture serves."""

    service: str
    line: int
    installs: tuple[Install, ...]


class LangCapture:
    """What the language captures share; each says how to capture and serve, and what a missing package looks like."""

    name = ""
    rw = False  # npm writes to its cache even offline: the mount takes writes and throws them away
    ca_variables: tuple[str, ...] = ("NODE_EXTRA_CA_CERTS",)  # how the tool is told of the project's CA
    missing: re.Pattern[str] | None = None  # the tool's words for a package it cannot get offline
    changed = "the dependency files"  # what the user must have changed, when one is missing

    def folder(self, project: Project) -> Path:
        return project.cache_dir / "captures" / self.name

    def needs(self, project: Project, service: str, df: Dockerfile) -> dict[str, StepNeed]:
        return {} if self.name in project.captures_off else self.steps_of(service, df)

    def steps_of(self, service: str, df: Dockerfile) -> dict[str, StepNeed]:
        """The steps this tool's capture serves, by key (shell-form RUNs; heredocs and exec form are left to lint)."""
        found: dict[str, StepNeed] = {}
        for ins in (i for stage in df.stages for i in stage.instructions):
            mine = tuple(i for i in installs(ins) if i.tool == self.name)
            if mine and not ins.heredocs and not ins.json:
                found[f"{service}-{len(found) + 1}"] = StepNeed(service, ins.line, mine)
        return found

    def captured(self, project: Project, key: str) -> bool:
        return has_platforms(self.context_dir(project, key), project, MARKER)

    def context_dir(self, project: Project, key: str) -> Path:
        return self.folder(project) / key

    def serve(self, service: str, df: Dockerfile, stage: Stage, ins: Instruction, command: str,
              keys: Mapping[str, StepNeed], capturing: bool = False) -> Served | None:
        # Looked up among the needs served, not worked out again: this runs for every RUN.
        key = next((k for k, n in keys.items() if n.line == ins.line), None)
        if key is None:
            return None
        need = keys[key]
        if capturing:
            out = f"{OUT}/{self.name}/{key}"
            return Served((f"--mount=type=secret,id={CA_SECRET}",),
                          self.capture_command(command, out, need), outputs=(stage.name or str(stage.index),))
        target = f"{MOUNTS}/{self.name}/{key}"
        name = f"{self.name}-{key}"
        mount = f"--mount=type=bind,from={name},source={PLATFORM_DIR},target={target}" + (",rw" if self.rw else "")
        return Served((mount,), self.served_command(command, target), {name: key}, args=PLATFORM_ARGS)

    def served_command(self, command: str, target: str) -> str:
        """*command* with the tool pointed at the capture in *target* and kept off the network (both builders)."""
        return f"export {self.serve_env(target)} && {command}"

    def serve_env(self, target: str) -> str:
        raise NotImplementedError

    def capture_env(self, out: str) -> str:
        """The environment that makes the tool leave what it fetched in *out* (a cache it keeps anyway)."""
        raise NotImplementedError

    def capture_command(self, command: str, out: str, need: StepNeed) -> str:
        return f"{ca_env(self.ca_variables)}mkdir -p {out} && export {self.capture_env(out)} && {command}"

    def capture_steps(self, project: Project, needs: list[Mapping[str, Any]]) -> list[Step]:
        return []  # captured by the service's capture build (see capture_build below)

    def handlers(self) -> Mapping[type, Callable[..., dict[str, Any]]]:
        return {}  # its CaptureBuild is a build: runners/build.py runs it

    def explain(self, step_text: str, message: str) -> tuple[str, str] | None:
        """(problem, fix) when an offline step this capture served failed for want of a package."""
        found = self.missing.search(message) if self.missing else None
        if found is None or f"{MOUNTS}/{self.name}/" not in step_text:
            return None
        package = unquote(next(g for g in found.groups() if g))
        return (f"{package} is not in the bundle's {self.name} capture: {self.changed_in(step_text)} changed since "
                f"the export, and offline {self.name} installs only what the export captured", missing_package_fix())

    def changed_in(self, step_text: str) -> str:
        return self.changed

    def rows(self, project: Project) -> list[Row]:
        root = self.folder(project)
        captured = sorted(m.parent for m in root.glob(f"*/*/{MARKER}")) if root.is_dir() else []
        if not captured:
            return []
        keys = sorted({p.parent.name for p in captured})
        platforms = sorted({p.name for p in captured})
        files = [f for k in captured for f in k.rglob("*") if f.is_file() and f.name != MARKER]
        size = sum(f.stat().st_size for f in files)
        return [Row(self.name, "info", f"{len(keys)} step(s): {', '.join(keys)} for {', '.join(platforms)}; "
                                       f"{len(files)} file(s), {size / 1e6:.1f} MB in {display_path(root, project.root)}")]


def ca_env(variables: tuple[str, ...]) -> str:
    """Point the tool at the project's CA, when the capture build was given one (else nothing is set).

    Not in a step the replay capture records too: the tool's requests go through the recording proxy
    then, and the proxy's CA, which its file has set already, is the one to trust.
    """
    sets = " ".join(f"{v}={CA_PATH}" for v in variables)
    return f"if [ -f {CA_PATH} ] && [ ! -f {PROXY_ENV} ]; then export {sets}; fi; "


@dataclass(frozen=True)
class CaptureBuild(Build):
    """Build a service's capture variant and take its capture folders out (``--output type=local``).

    *dest* receives ``<tool>/<key>/`` per captured step; each key's folder
    is tidied and swapped into the project's capture folder whole.
    """

    dest: Path = Path(".")
    folders: tuple[tuple[str, Path], ...] = ()  # tool -> the project's capture folder for it


def gather_captured(sources: Mapping[str, Path], root: Path, scratch: Path) -> dict[str, int]:
    """Gather each captured key from every platform's output, tidy it and swap it into *root* whole.

    *sources* maps a platform's folder name (``linux_arm64``) to the capture
    build's output for this tool there (one folder per key); *scratch* is
    where a key is put together, on the same file system as *root*. Whole:
    a platform the project no longer builds for leaves with the rest.
    Returns the file count per key.
    """
    keys = sorted({p.name for src in sources.values() if src.is_dir() for p in src.iterdir() if p.is_dir()})
    out: dict[str, int] = {}
    for key in keys:
        fresh = scratch / key
        fresh.mkdir(parents=True)
        for platform, src in sorted(sources.items()):
            if (src / key).is_dir():
                (src / key).replace(fresh / platform)
            else:
                (fresh / platform).mkdir()
            _tidy(fresh / platform, f"{root.name} capture of {key} for {platform}")
        plain_modes(fresh)
        out[key] = sum(1 for p in fresh.rglob("*") if p.is_file() and p.name != MARKER)
        swap_in(fresh, root / key)
    return out


def _tidy(folder: Path, marker: str) -> None:
    """Drop the tool's logs and empty folders, and mark the folder (an empty capture must still travel)."""
    for junk in ("_logs", "_update-notifier-last-checked"):  # npm's run logs: not dependencies
        remove(folder / junk)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(sub.iterdir()):
            sub.rmdir()  # a bundle carries files only: an empty folder would differ offline, and the key with it
    (folder / MARKER).write_text(marker + "\n")


def platform_outputs(dest: Path, platforms: Sequence[str]) -> dict[str, Path]:
    """Where a capture build writing to *dest* left each platform's files, by the platform's folder name.

    BuildKit's local output puts each platform in its own folder (named as
    :func:`~offline_build.captures.base.platform_dir` names them) only when
    there are several.
    """
    if len(platforms) == 1:
        return {platform_dir(platforms[0]): dest}
    return {platform_dir(p): dest / platform_dir(p) for p in platforms}


def quoted(argv: tuple[str, ...]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def missing_package_fix() -> str:
    return ("export online again with the changed file (offline.export; --since <the last bundle> makes a small "
            "delta), then run offline.setup here with it")


def capture_build(project: Project, base: Build, dest: Path, tools: tuple[LangCapture, ...]) -> CaptureBuild:
    """The capture build of one service, from its online build of the capture Dockerfile: the last stage
    out instead of an image, no cache written, the CA as a secret."""
    ca = ca_file(project)
    fields = {f: getattr(base, f) for f in Build.__dataclass_fields__}
    fields.update(title=f"capture {base.service}'s {', '.join(t.name for t in tools)} dependencies",
                  tags=(), target=CAPTURE_STAGE, load=False,
                  # Capture mode fetches, whatever mode the project builds with (``none`` is
                  # the usual one): host, as the APT capture's container. Nothing of this
                  # build is cached for the site, so its keys need not match the export's.
                  network="host",
                  output=f"type=local,dest={dest}", cache_to=(),
                  secrets=(f"id={CA_SECRET},src={ca}",) if ca else ())
    return CaptureBuild(**fields, dest=dest, folders=tuple((t.name, t.folder(project)) for t in tools))

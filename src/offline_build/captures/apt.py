"""The APT capture: lists and ``.deb`` files per base image, served by bind mounts.

``apt-get update`` needs the network even when ``/var/cache/apt`` is a cache
mount, because the package index lives in ``/var/lib/apt/lists``. Online,
a throwaway container of each base image runs ``apt-get update`` and
``install --download-only`` for every package any service installs on it,
once per platform the project builds for, under emulation where the platform
is not the machine's (``apt-lists/<base>/<os>_<arch>/``: an arm64 build needs
``binary-arm64`` lists and ``_arm64.deb`` files); offline, the variant
bind-mounts the built platform's ``lists`` and ``archives`` into each ``RUN``
that uses APT and turns ``apt-get update`` into ``true``. The Dockerfile side (what a RUN installs)
is parsed in :mod:`offline_build.apt`.

A capture starts from an empty ``archives`` folder, so it holds exactly the
``.deb`` files apt downloads now, but it takes from the previous capture of
that platform (mounted read-only at :data:`PREVIOUS`) each file apt still
wants, by name and SHA-256 as apt prints them: a re-export with unchanged
lists and packages downloads no ``.deb`` again. The script checks the hash
itself because apt takes a file already in ``archives`` on its size alone.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from python_on_whales.exceptions import DockerException

from .. import capture_names as names
from .. import apt as parse
from ..config import Project
from ..dockerfile import Dockerfile, Instruction, Stage
from ..engine import engine_message, native_platform
from ..errors import StepError
from ..files import create_ignored, display_path
from ..plan import slug
from ..platforms import runs_platform
from ..steps import Step
from .base import (
    BUILD_PLATFORM,
    PLATFORM_DIR,
    Package,
    Row,
    Served,
    has_platforms,
    plain_modes,
    platform_dir,
    platform_source,
    remove,
    stage_platform,
    swap_in,
)

LISTS = "/var/lib/apt/lists"
ARCHIVES = "/var/cache/apt/archives"
PREVIOUS = "/var/cache/offline-build/previous"  # the previous capture's archives, read-only, when there is one
# apt-get/apt with options, then a verb, up to the next shell operator.
_APT_VERB = r"\b(?:apt-get|apt)\b(?:\s+(?:-o\s+\S+|-t\s+\S+|-\S+))*\s+{verb}\b[^;&|\n]*"
UPDATE = re.compile(_APT_VERB.format(verb="update"))
ANY_APT = re.compile(_APT_VERB.format(verb=r"(?:update|install|upgrade|dist-upgrade|reinstall)"))
# A captured package: <base>/archives/<name>_<version>_<arch>.deb, as apt names the files it downloads
# (the SBOM hands each capture its files without the platform folder).
_DEB = re.compile(r"(?P<key>[^/]+)/archives/(?P<name>[^/_]+)_(?P<version>[^/_]+)_(?P<arch>[^/_]+)\.deb")
_ORIGIN = re.compile(rb"^Origin:[ \t]*(\S[^\r\n]*?)[ \t]*\r?$", re.M)


def to_true(match: re.Match[str]) -> str:
    """An APT command replaced by ``true``, keeping the space before what follows."""
    return "true " if match.group(0).endswith((" ", "\t")) else "true"


def context_name(base: str) -> str:
    """The named build context holding one base image's APT capture."""
    return f"apt-{slug(base).lower()}"


@dataclass(frozen=True)
class CaptureApt(Step):
    """``apt-get update`` and ``install --download-only`` in a throwaway container of *base*, per platform.

    *platforms* empty: the engine's own, found when the step runs; *native*:
    that one too (a stage ``FROM --platform=$BUILDPLATFORM`` runs on it).
    """

    base: str = ""
    dest: Path = Path(".")
    platforms: tuple[str, ...] = ()
    native: bool = False
    packages: tuple[str, ...] = ()
    no_recommends: bool = True
    source_edits: tuple[str, ...] = ()
    network: str = "host"

    def script(self) -> str:
        recommends = " --no-install-recommends" if self.no_recommends else ""
        packages = " ".join(shlex.quote(p) for p in self.packages)
        return "\n".join([
            "set -e",
            *self.source_edits,
            # Indexes stay gzip-compressed (apt reads them so) and without
            # translations: 80 MB of lists become about 9 MB in the bundle.
            "apt-get -o Acquire::GzipIndexes=true -o Acquire::CompressionTypes::Order::=gz"
            " -o Acquire::Languages=none update",
            *_reuse(f"apt-get install -y -qq --print-uris{recommends}", packages),
            f"apt-get install -y --download-only{recommends} {packages}",
        ])

    def previous(self, platform: str) -> Path | None:
        """The ``archives`` folder of the capture being replaced, for *platform*, if it has one."""
        folder = self.dest / platform_dir(platform) / "archives"
        return folder if folder.is_dir() else None

    def argv(self, platform: str | None = None) -> list[str]:
        folder = self.dest / (platform_dir(platform) if platform else "<engine platform>")
        # The engine's own platform is known only when the step runs: its previous folder is mounted if it has one.
        previous = self.previous(platform) if platform else (
            folder / "archives" if any(self.dest.glob("*/archives")) else None)
        return ["docker", "run", "--rm", "--network", self.network, *(["--platform", platform] if platform else []),
                "--volume", f"{folder}/lists:{LISTS}", "--volume", f"{folder}/archives:{ARCHIVES}",
                *(["--mount", ",".join(previous_mount(previous))] if previous else []),
                self.base, "sh", "-c", self.script()]

    def describe(self) -> str:
        engine = [None] if self.native else []  # the engine's own, when not listed already
        return "\n".join(shlex.join(self.argv(p)) for p in [*self.platforms, *engine])


class AptCapture:
    """The :class:`~offline_build.captures.Capture` for APT; keys are base images."""

    name = names.APT

    def folder(self, project: Project) -> Path:
        return project.apt.dir

    def needs(self, project: Project, service: str, df: Dockerfile) -> dict[str, parse.BaseApt]:
        return parse.analyse(df) if project.apt.enabled else {}

    def captured(self, project: Project, key: str) -> bool:
        return has_platforms(self.context_dir(project, key), project, "lists")

    def context_dir(self, project: Project, key: str) -> Path:
        return project.apt.dir / slug(key).lower()

    def serve(self, service: str, df: Dockerfile, stage: Stage, ins: Instruction, command: str,
              keys: Mapping[str, Any], capturing: bool = False) -> Served | None:
        base = parse.external_base(df, stage)
        if base not in keys or not parse.uses_apt(ins):
            return None
        name = context_name(base)
        folder, args = platform_source(parse.platform_flag(df, stage))
        command = UPDATE.sub(to_true, command)
        if not ins.heredocs:
            # apt wants its partial/ folders; the capture leaves none (modes must match exactly).
            command = f"mkdir -p {LISTS}/partial {ARCHIVES}/partial && {command}"
        return Served(mounts(name, folder), command, {name: base}, args=args)

    def capture_steps(self, project: Project, needs: list[Mapping[str, Any]]) -> list[Step]:
        return [CaptureApt(title=f"capture APT for {base} ({len(use.packages)} packages{_listed(platforms)})",
                           base=base, dest=self.context_dir(project, base), platforms=platforms, native=native,
                           packages=tuple(use.packages),
                           no_recommends=use.no_recommends,
                           source_edits=tuple(parse.shell_join(e) for e in use.source_edits))
                for base, use in union(needs).items()
                for platforms, native in [capture_platforms(project.platforms, use.stage_platforms)]]

    def handlers(self) -> Mapping[type, Callable[..., dict[str, Any]]]:
        return {CaptureApt: capture_apt}

    def explain(self, step_text: str, message: str) -> tuple[str, str] | None:
        return None  # apt's own "Unable to locate package" already names it

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """Each ``.deb`` by its file name; apt writes an epoch's colon as ``%3a`` there.

        The purl's vendor (debian, ubuntu) is the Origin most of the base
        image's Release files name: its own distribution has several (the
        release, its updates, security), an added repository one.
        """
        debs = [(m, path) for path in paths if (m := _DEB.fullmatch(path))]
        vendors: dict[str, str] = {}
        for key in sorted({m["key"] for m, _ in debs}):
            releases = sorted(p for p in paths if p.startswith(f"{key}/lists/") and p.endswith("Release"))
            origins = Counter(found[1].decode(errors="replace").lower().replace(" ", "-")
                              for found in (_ORIGIN.search(read(r)) for r in releases) if found)
            vendors[key] = max(sorted(origins), key=origins.__getitem__, default="debian")
        return [Package("deb", m["name"], unquote(m["version"]), path, vendors[m["key"]], (("arch", m["arch"]),))
                for m, path in debs]

    def rows(self, project: Project) -> list[Row]:
        root = self.folder(project)
        captured = sorted(p.parent for p in root.glob("*/*/lists") if p.is_dir()) if root.is_dir() else []
        if not captured:
            return []
        debs = sum(len(list((p / "archives").glob("*.deb"))) for p in captured)
        bases = {p.parent for p in captured}
        platforms = sorted({p.name for p in captured})
        return [Row("apt", "info", f"{len(bases)} base image(s) for {', '.join(platforms)}, {debs} .deb file(s) "
                                   f"in {display_path(root, project.root)}")]


APT = AptCapture()


def union(needs: list[Mapping[str, Any]]) -> dict[str, parse.BaseApt]:
    """Per base image, every package any service installs on it."""
    merged_all: dict[str, parse.BaseApt] = {}
    for need in needs:
        for base, use in need.items():
            merged = merged_all.setdefault(base, parse.BaseApt(base))
            merged.packages += [p for p in use.packages if p not in merged.packages]
            merged.source_edits += [e for e in use.source_edits if e not in merged.source_edits]
            merged.no_recommends = merged.no_recommends and use.no_recommends
            merged.stage_platforms += [p for p in use.stage_platforms if p not in merged.stage_platforms]
    return merged_all


def capture_platforms(project: tuple[str, ...], flags: list[str]) -> tuple[tuple[str, ...], bool]:
    """(platforms to capture, whether the engine's own too) for a base whose APT stages run on *flags*.

    A stage on the platform built (flag ``""``) needs the project's platforms,
    or the engine's own without ``platforms:``; one ``FROM
    --platform=$BUILDPLATFORM`` the engine's own, and the project's too (a
    site builds on its own platform, one of them); one pinned to
    ``linux/amd64`` that platform.
    """
    kinds = [stage_platform(f) for f in flags or [""]]
    builder = BUILD_PLATFORM in kinds
    literal = [k for k in kinds if k and k != BUILD_PLATFORM]
    platforms = tuple(dict.fromkeys([*(project if None in kinds or builder else ()), *literal]))
    return platforms, (None in kinds and not project) or builder


def _listed(platforms: tuple[str, ...]) -> str:
    return f", {', '.join(platforms)}" if platforms else ""


def mounts(name: str, folder: str = PLATFORM_DIR) -> tuple[str, str]:
    """The bind mounts of a base image's capture (named context *name*): the platform being built, by default."""
    return (f"--mount=type=bind,from={name},source={folder}/lists,target={LISTS},rw",
            f"--mount=type=bind,from={name},source={folder}/archives,target={ARCHIVES},rw")


def _reuse(print_uris: str, packages: str) -> list[str]:
    """Script lines that copy into the empty ``archives`` the previous capture's files apt still downloads.

    ``--print-uris`` against an empty archives folder lists every file the
    install needs (``'URI' NAME SIZE SHA256:hex``); a file is taken only by
    that exact name and hash, since apt itself takes one already in
    ``archives`` on its size alone. What is not taken, the install downloads.
    """
    return [
        f"if [ -d {PREVIOUS} ]; then",
        "  none=$(mktemp -d) uris=$(mktemp) reused=0",
        f"  {print_uris} -o Acquire::ForceHash=SHA256 -o Dir::Cache::Archives=$none/ {packages} >$uris",
        "  while read -r uri name size hash; do",
        "    case $name in ''|.*|*/*) continue ;; esac",
        f"    [ -f \"{PREVIOUS}/$name\" ] && [ \"${{hash%%:*}}\" = SHA256 ] || continue",
        f"    [ \"$(sha256sum <\"{PREVIOUS}/$name\" | cut -d' ' -f1)\" = \"${{hash#SHA256:}}\" ] || continue",
        f"    cp \"{PREVIOUS}/$name\" {ARCHIVES}/",
        "    reused=$((reused + 1))",
        "  done <$uris",
        "  echo \"offline-build: took $reused of $(wc -l <$uris) .deb file(s) from the previous capture\"",
        "  rm -rf $none $uris",
        "fi",
    ]


def previous_mount(folder: Path) -> list[str]:
    """The read-only ``--mount`` of a previous capture's archives (a field with a comma or quote is CSV-quoted)."""
    source = f"source={folder}"
    if any(c in source for c in ',"'):
        source = '"' + source.replace('"', '""') + '"'
    return ["type=bind", source, f"target={PREVIOUS}", "readonly"]


def capture_apt(rt: Any, step: CaptureApt) -> dict[str, Any]:
    """Capture each platform into a fresh folder, tidy it, then swap the base's folder in whole.

    Whole: a platform the project no longer builds for leaves with the rest.
    Each platform's script takes what apt still wants from the folder it replaces.
    """
    create_ignored(step.dest.parent)  # apt-lists/ lives beside the project's files
    fresh = step.dest.with_name(f".{step.dest.name}.partial")
    shutil.rmtree(fresh, ignore_errors=True)
    debs = 0
    try:
        native = native_platform(rt.docker) if step.native else None
        extra = [native] if native and not any(runs_platform(native, (p,)) for p in step.platforms) else []
        for platform in [*step.platforms, *extra]:
            folder = fresh / platform_dir(platform)
            (folder / "lists").mkdir(parents=True)
            (folder / "archives").mkdir()
            previous = step.previous(platform)
            try:
                rt.docker.run(step.base, ["sh", "-c", step.script()], remove=True, networks=[step.network],
                              platform=None if platform == native else platform,
                              volumes=[(str(folder / "lists"), LISTS), (str(folder / "archives"), ARCHIVES)],
                              mounts=[previous_mount(previous)] if previous else [])
            except DockerException as exc:
                raise StepError(step.title, f"APT capture for {platform} failed: {engine_message(exc)}",
                                "check the package names, that this machine reaches the base image's APT mirror, "
                                "and that the engine runs this platform (offline.diagnose)") from None
            debs += _tidy(folder)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    swap_in(fresh, step.dest)
    return {"debs": debs}


def _tidy(folder: Path) -> int:
    """Drop apt's locks and partial folders and fix modes.

    The capture is bind-mounted into builds, and BuildKit's cache key covers
    the mounted files and their modes: online and offline copies must match
    bit for bit, and a bundle carries only plain 0644 files.
    """
    for sub in ("lists", "archives"):
        for name in ("lock", "partial", "auxfiles"):
            remove(folder / sub / name)
    plain_modes(folder)
    return len(list((folder / "archives").glob("*.deb")))

"""``offline.init``: a first ``offline.yaml`` from the Dockerfiles and compose files a repository has.

A team whose compose file only *runs* images (no ``build:`` sections) gets
nothing from ``services_from``, and writes every service by hand. This module
reads the tree once (:func:`find_files`, :func:`propose`) and turns what it
found into data, a :class:`Proposal`; :func:`render` makes the commented file
from that data alone. Every key written is one :mod:`offline_build.config`
accepts, and everything seen but left out is said in a comment, not dropped.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .config import DEFAULT_CACHE_DIR
from .dockerfile import parse as parse_dockerfile
from .errors import DockerfileError, OfflineBuildError
from .model import SERVICE_NAME
from .options import DEFAULT_APT_DIR
from .services import IMAGE_NAME, RESERVED_NAMES, SECRET_NAME

# Vendored code, virtualenvs, build output and the tool's own folders: a Dockerfile
# there is someone else's (a package's example) or a copy, never a service of the team's.
SKIP_DIRS = frozenset({"node_modules", "venv", "__pycache__", "dist", "build", "target",
                       DEFAULT_CACHE_DIR, DEFAULT_APT_DIR})
DOCKERFILE = re.compile(r"^(Dockerfile(\.[^/]+)?|[^/]+\.[Dd]ockerfile)$")
# Named like Dockerfiles but not ones: BuildKit's per-Dockerfile ignore files,
# templates that need rendering first, editors' leftovers.
NOT_DOCKERFILES = (".dockerignore", ".bak", ".orig", ".swp", ".j2", ".tmpl", ".template", ".in", "~")
COMPOSE_BASES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
COMPOSE = re.compile(r"^(docker-)?compose(\.[A-Za-z0-9_-]+)?\.ya?ml$")


@dataclass(frozen=True)
class Found:
    """What the walk found, relative to *root*; compose files base first, then their overrides."""

    root: Path
    dockerfiles: tuple[Path, ...]
    compose_files: tuple[Path, ...]


@dataclass(frozen=True)
class Proposed:
    """One service to write: paths absolute; *origin* is where it was found, as its comment says."""

    name: str
    context: Path
    dockerfile: Path
    image: str
    origin: str
    target: str | None = None
    build_args: tuple[tuple[str, str], ...] = ()
    # A multi-stage Dockerfile built without a target: its named stages, to choose from ("" last: an unnamed one).
    stages: tuple[str, ...] = ()
    remarks: tuple[str, ...] = ()  # what was left out of this service, and why


@dataclass(frozen=True)
class Proposal:
    project: str
    found: Found
    services: tuple[Proposed, ...]
    run_only: tuple[str, ...] = ()  # compose services that run an image nothing here builds
    notes: tuple[str, ...] = field(default=())  # what was seen and not written, and why


def find_files(root: Path) -> Found:
    """Every Dockerfile and compose file under *root*, skipping what is not the team's own."""
    dockerfiles: list[Path] = []
    composes: list[Path] = []
    for rel in _walk(root.resolve()):
        if DOCKERFILE.match(rel.name) and not rel.name.endswith(NOT_DOCKERFILES):
            dockerfiles.append(rel)
        elif COMPOSE.match(rel.name):
            composes.append(rel)
    dockerfiles.sort(key=lambda p: (p.parent.as_posix(), p.name != "Dockerfile", p.name))
    composes.sort(key=_compose_order)
    return Found(root.resolve(), tuple(dockerfiles), tuple(composes))


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        here = Path(folder).relative_to(root)
        yield from (here / name for name in sorted(files))


def _compose_order(rel: Path) -> tuple[str, int, str]:
    # compose reads the base file, then overrides: the first definition of a service is the base one.
    base = COMPOSE_BASES.index(rel.name) if rel.name in COMPOSE_BASES else len(COMPOSE_BASES)
    return (rel.parent.as_posix(), base, rel.name)


def propose(root: Path) -> Proposal:
    """Read *root*'s compose files and Dockerfiles into the services a first offline.yaml lists."""
    if not root.is_dir():
        raise OfflineBuildError(f"{root} is not a folder", "pass --root the repository's folder")
    found = find_files(root)
    project = slug(found.root.name) or "project"
    claims = _Claims(found, project)
    for rel in found.compose_files:
        claims.compose(rel)
    claims.pair_images()
    for rel in found.dockerfiles:
        claims.dockerfile(rel)
    if not claims.services:
        raise OfflineBuildError(
            f"no Dockerfile under {found.root} (Dockerfile, Dockerfile.*, *.Dockerfile; not in "
            f"{', '.join(sorted(SKIP_DIRS))} or hidden folders)",
            "pass --root the repository's folder, or write offline.yaml by hand (README: Quick start)")
    services, unread = _readable(claims.services, found.root)
    if not services:
        raise OfflineBuildError(f"no Dockerfile under {found.root} can be read: {'; '.join(unread)}",
                                "fix the Dockerfiles named, or write offline.yaml by hand (README: Quick start)")
    return Proposal(project, found, tuple(_with_stages(s) for s in services), tuple(claims.run_only),
                    (*claims.notes, *unread))


def _readable(services: list[Proposed], root: Path) -> tuple[list[Proposed], list[str]]:
    """The services whose Dockerfile can be read, and a note for each other one: written, it would make the
    whole project file refused (a dangling link, an empty or non-UTF-8 file). A file that reads but does not
    parse stays, with a remark (``FROM ${BASE}`` with no value for BASE here)."""
    kept, unread = [], []
    for service in services:
        try:
            blank = not service.dockerfile.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            blank = True  # parse says which
        if blank:
            try:
                parse_dockerfile(service.dockerfile)
            except DockerfileError as exc:
                shown = str(service.dockerfile)
                unread.append(f"{os.path.relpath(shown, root)}: not a service "
                              f"({exc.message.removeprefix(shown).removeprefix(': ')})")
                continue
        kept.append(service)
    return kept, unread


class _Claims:
    """The services found so far, the Dockerfiles they build and the names they took."""

    def __init__(self, found: Found, project: str) -> None:
        self.found = found
        self.project = project
        self.services: list[Proposed] = []
        self.claimed: set[Path] = set()
        self.names: set[str] = set(RESERVED_NAMES)
        self.builds: dict[tuple[Path, str], tuple[str, Proposed | str]] = {}  # (compose folder, service): first
        self.images: list[tuple[str, str, str]] = []  # (compose file, service, image) that only run
        self.run_only: list[str] = []
        self.notes: list[str] = []

    def add(self, service: Proposed) -> None:
        self.services.append(service)
        self.claimed.add(service.dockerfile)
        self.names.add(service.name)

    def compose(self, rel: Path) -> None:
        try:
            document = yaml.safe_load((self.found.root / rel).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            self.notes.append(f"{rel.as_posix()}: not read ({str(exc).splitlines()[0]})")
            return
        services = document.get("services") if isinstance(document, dict) else None
        for name, spec in (services or {}).items() if isinstance(services, dict) else ():
            if isinstance(spec, dict) and "build" in spec:
                self._compose_build(rel, str(name), spec)
            elif isinstance(spec, dict) and isinstance(spec.get("image"), str):
                self.images.append((rel.as_posix(), str(name), spec["image"]))

    def _compose_build(self, rel: Path, name: str, spec: dict[str, Any]) -> None:
        where = f"{rel.as_posix()}: services.{name}"
        key = (rel.parent, name)
        made = from_compose_build(self.found.root, rel, name, spec, self.project, self.names)
        if key in self.builds:
            first, kept = self.builds[key]
            if _build_of(made) != _build_of(kept):  # an override that only adds ports or env is no news
                self.notes.append(f"{where}: builds it otherwise than {first}, which is used")
            return
        self.builds[key] = (rel.as_posix(), made)
        if isinstance(made, str):
            self.notes.append(f"{where}: {made}")
        else:
            self.add(made)

    def pair_images(self) -> None:
        """A compose service that runs ``team/backend`` is built from a ``backend/Dockerfile`` here."""
        for rel, name, image in self.images:
            folder = slug(_repository(image).rsplit("/", 1)[-1])
            matches = [d for d in self.found.dockerfiles if self._unclaimed(d) and self._folder(d) == folder]
            plain = [d for d in matches if d.name == "Dockerfile"] or matches
            where = f"{rel}: services.{name} runs {image}"
            if len(plain) == 1 and (own := plain_image(image)):
                dockerfile = self.found.root / plain[0]
                self.add(Proposed(unique(slug(name) or folder, self.names), dockerfile.parent, dockerfile, own,
                                  f"{where}, built by {plain[0].as_posix()} (the folder of that name)"))
            elif len(plain) > 1:
                self.notes.append(f"{where}: {' and '.join(d.as_posix() for d in plain)} could both build it; "
                                  "each is written as a service of its own")
            else:
                self.run_only.append(f"{name} ({image})")

    def dockerfile(self, rel: Path) -> None:
        if not self._unclaimed(rel):
            return
        folder = self._folder(rel)
        variant = slug(_variant(rel.name) or "")
        base = f"{folder}-{variant}" if variant and variant != folder else folder
        path = self.found.root / rel
        name = unique(base or "service", self.names)
        self.add(Proposed(name, path.parent, path, f"{self.project}/{name}", rel.as_posix()))

    def _unclaimed(self, rel: Path) -> bool:
        return (self.found.root / rel).resolve() not in self.claimed

    def _folder(self, rel: Path) -> str:
        """The name a Dockerfile goes by: its folder's; the repository's for the one at the top."""
        return slug(rel.parent.name if rel.parent != Path(".") else self.found.root.name)


def _build_of(made: Proposed | str) -> tuple[object, ...]:
    return (made,) if isinstance(made, str) else (made.dockerfile, made.target, made.build_args)


def from_compose_build(root: Path, rel: Path, name: str, spec: dict[str, Any], project: str,
                       taken: set[str]) -> Proposed | str:
    """The service a compose ``build:`` describes, or why it cannot be written as one."""
    build = spec["build"]
    build = {"context": build} if isinstance(build, str) else build
    if not isinstance(build, dict):
        return "build is neither a path nor a mapping"
    if "dockerfile_inline" in build:
        return "its Dockerfile is inline (dockerfile_inline): there is no file to build from"
    context_text = str(build.get("context", "."))
    # What compose reads as a remote context (compose-go isRemoteContext: a URL, git@, github.com/) is no folder
    if "$" in context_text or "://" in context_text or context_text.startswith(("git@", "github.com/")):
        return f"build context {context_text!r} is a variable or a remote; give a folder under services:"
    context = ((root / rel).parent / context_text).resolve()
    dockerfile = (context / str(build.get("dockerfile", "Dockerfile"))).resolve()
    if not context.is_dir() or not dockerfile.is_file():
        return f"no Dockerfile at {_shown(dockerfile, root)}"
    remarks: list[str] = []
    image = plain_image(spec["image"]) if isinstance(spec.get("image"), str) else None
    if isinstance(spec.get("image"), str) and image is None:
        remarks.append(f"image {spec['image']!r} is not a plain image name; named after the project instead")
    args, left_out = build_args(build.get("args"))
    remarks += left_out
    target = build.get("target")
    if isinstance(target, str) and "$" in target:
        remarks.append(f"target {target!r} is a variable; set target: to the stage to build")
        target = None
    service = unique(slug(name) or "service", taken)
    return Proposed(service, context, dockerfile, image or f"{project}/{service}",
                    f"{rel.as_posix()}: services.{name} builds it", str(target) if target else None,
                    tuple(args.items()), remarks=tuple(remarks))


def build_args(node: object) -> tuple[dict[str, str], list[str]]:
    """Compose ``args`` (a mapping or ``KEY=VALUE`` lines) as config accepts them, and what was left out."""
    pairs: list[tuple[str, object]] = []
    if isinstance(node, dict):
        pairs = [(str(k), v) for k, v in node.items()]
    elif isinstance(node, list):
        pairs = [(str(i).partition("=")[0], str(i).partition("=")[2] if "=" in str(i) else None) for i in node]
    args: dict[str, str] = {}
    left_out: list[str] = []
    for key, value in pairs:
        if SECRET_NAME.search(key):
            # config refuses it: build args end up in image metadata and the bundle's cache.
            left_out.append(f"build arg {key} looks like a secret, and build args travel in the bundle: "
                            "pass it as a build secret (RUN --mount=type=secret)")
        elif value is None or "$" in str(value):
            left_out.append(f"build arg {key} takes its value from the environment; give it one under build_args:")
        else:
            args[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return args, left_out


def _with_stages(service: Proposed) -> Proposed:
    """A multi-stage Dockerfile built without a target builds its last stage: list them, choose none."""
    if service.target:
        return service
    try:
        stages = parse_dockerfile(service.dockerfile, dict(service.build_args)).stages
    except DockerfileError as exc:
        return replace(service, remarks=(*service.remarks, f"stages not read: {exc.message}"))
    names = tuple(s.name for s in stages if s.name)  # a target must be a name: an unnamed stage has none
    if len(stages) < 2 or not names:
        return service
    return replace(service, stages=names + (("",) if stages[-1].name is None else ()))


def slug(text: str) -> str:
    """*text* as a service name: lowercase letters, digits and single '-' (what a task name may be)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def unique(name: str, taken: set[str]) -> str:
    """*name*, or *name*-2, -3... : the first not taken (nor reserved for the tool's own tasks)."""
    if name not in taken and name not in RESERVED_NAMES:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def _variant(filename: str) -> str | None:
    """``Dockerfile.dev`` and ``dev.Dockerfile`` are the dev variant; ``Dockerfile`` none."""
    if filename.startswith("Dockerfile."):
        return filename[len("Dockerfile."):]
    if filename.lower().endswith(".dockerfile"):
        return filename[: -len(".dockerfile")]
    return None


def _repository(image: str) -> str:
    """*image* without its digest and tag (the tag is the project's version)."""
    ref = image.rsplit("@", 1)[0]
    return ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref


def plain_image(image: str) -> str | None:
    """*image* as ``services.<name>.image`` takes it (no tag), or None when config would refuse it."""
    if "$" in image:
        return None
    ref = _repository(image)
    first = ref.split("/", 1)[0]
    repo = ref.split("/", 1)[-1] if "." in first or ":" in first else ref  # a registry host, as config reads it
    return ref if IMAGE_NAME.match(repo) else None


# Said the way README's "The network mode" says it: the mode is part of the cache key.
NETWORK_COMMENT = """\
# Every build, export and offline alike, runs in this network mode: BuildKit
# keys its cache on it, so the site must build with the mode the export used.
# With none, the export proves the offline build itself: a step that needs the
# network fails here, before the trip (offline.lint names such steps). Use
# host or default only for a step that cannot do without the network."""


def render(proposal: Proposal, base: Path) -> str:
    """The commented offline.yaml for *proposal*; paths relative to *base*, the file's own folder."""
    found = proposal.found
    lines = [
        f"# Written by `offline-build offline.init` from {len(found.compose_files)} compose file(s) and "
        f"{len(found.dockerfiles)} Dockerfile(s).",
        "# A first draft: read it, then run offline-build offline.lint. Every key: README, \"The project file\".",
        f"project: {_scalar(proposal.project)}",
        '# version: "1.0.0"            # the image tag (default latest; OFFLINE_VERSION, --version override it)',
        "", NETWORK_COMMENT, "network: none", "", "services:",
    ]
    for service in proposal.services:
        lines += [*_service_lines(service, base.resolve()), ""]
    if proposal.run_only:
        lines.append("# Run by compose from an image nothing here builds: " + ", ".join(proposal.run_only))
    if proposal.notes:
        lines += ["# Seen and not written:", *(f"#   {note}" for note in proposal.notes)]
    return "\n".join(lines).rstrip("\n") + "\n"


def _service_lines(service: Proposed, base: Path) -> list[str]:
    lines = _comment(service.origin)
    if service.stages:
        named = ", ".join(n for n in service.stages if n)
        last = ", then an unnamed last one (what is built without a target)" if service.stages[-1] == "" else ""
        lines += _comment(f"stages: {named}{last}; set target: to build one")
    lines += [line for remark in service.remarks for line in _comment(f"left out: {remark}")]
    lines += [f"  {service.name}:", f"    context: {_scalar(_relative(service.context, base))}"]
    dockerfile = _relative(service.dockerfile, service.context)
    if dockerfile != "Dockerfile":
        lines.append(f"    dockerfile: {_scalar(dockerfile)}")
    lines.append(f"    image: {_scalar(service.image)}")
    if service.target:
        lines.append(f"    target: {_scalar(service.target)}")
    if service.build_args:
        lines.append("    build_args:")
        lines += [f"      {_scalar(k)}: {_scalar(v)}" for k, v in service.build_args]
    return lines


def _comment(text: str) -> list[str]:
    """*text* as a service's comment, wrapped to read without scrolling."""
    return textwrap.wrap(text, width=100, initial_indent="  # ", subsequent_indent="  #   ",
                         break_long_words=False, break_on_hyphens=False)


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./:@+-]*$")


def _scalar(text: str) -> str:
    """*text* as a YAML string: bare when YAML reads it back as that same string, else double-quoted."""
    if PLAIN.match(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def describe(proposal: Proposal, base: Path) -> list[str]:
    """One line per service, for the task to print: name, what builds it and, from compose, which service."""
    width = max(len(s.name) for s in proposal.services)
    rows = []
    for s in proposal.services:
        what = _relative(s.dockerfile, base.resolve()) + (f" (target {s.target})" if s.target else "")
        via = f"  from {s.origin.split(',')[0]}" if s.origin != _relative(s.dockerfile, proposal.found.root) else ""
        rows.append(f"  {s.name:<{width}}  {what}{via}")
    return rows


def refuse_overwrite(path: Path, force: bool) -> None:
    """A hand-edited project file is worth more than this draft: never replace it unasked."""
    if path.exists() and not force:
        raise OfflineBuildError(f"{path} already exists; offline.init leaves it as it is",
                                "pass --force to overwrite it, --output to write another file, "
                                "or --dry-run to print the draft")


__all__ = ["Found", "Proposal", "Proposed", "describe", "find_files", "propose",
           "refuse_overwrite", "render"]

"""A Dockerfile as data: stages, their instructions, and the images they need.

Parsing is done by the ``dockerfile`` package, which wraps BuildKit's own Go
parser, so line continuations, heredocs, exec-form JSON and ``# escape=``
behave exactly as they do in the engine. This module adds what that parser
leaves to the frontend: parser directives, ``ARG`` expansion in ``FROM`` and
the stage graph (which references are earlier stages, which are images).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile as _parser

from .errors import DockerfileError

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
                "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-+])(?P<word>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Instruction:
    """One instruction as BuildKit's parser sees it (lines are 1-based)."""

    cmd: str
    value: tuple[str, ...]
    flags: tuple[str, ...]
    original: str
    line: int
    end_line: int
    json: bool = False
    heredocs: tuple[str, ...] = ()

    def flag(self, name: str) -> str | None:
        """The value of ``--name=value`` on this instruction, if present."""
        prefix = f"--{name}="
        for item in self.flags:
            if item.startswith(prefix):
                return item[len(prefix):]
        return None

    def flag_values(self, name: str) -> list[str]:
        """Every value of a repeatable flag such as ``--mount``."""
        prefix = f"--{name}="
        return [item[len(prefix):] for item in self.flags if item.startswith(prefix)]

    def mounts(self) -> list[dict[str, str]]:
        """Each ``--mount`` as its options (see :func:`mount_options`)."""
        return [mount_options(value) for value in self.flag_values("mount")]


def mount_options(value: str) -> dict[str, str]:
    """One ``--mount`` value (``type=cache,target=/x``) as options, with BuildKit's default type: bind."""
    return {"type": "bind", **dict(part.split("=", 1) if "=" in part else (part, "") for part in value.split(","))}


@dataclass(frozen=True)
class Stage:
    """One ``FROM`` block; ``base`` is the reference after ``ARG`` expansion."""

    index: int
    base: str
    base_raw: str
    name: str | None
    platform: str | None
    line: int
    instructions: tuple[Instruction, ...] = ()


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    directives: Mapping[str, str]
    global_args: Mapping[str, str | None]
    stages: tuple[Stage, ...]
    text: str = field(default="", repr=False)  # as parsed: what the lines of its stages and instructions count

    def lines(self) -> list[str]:
        """The file's lines as parsed, for quoting a line or rewriting a step: not read again from the disk,
        where the file may have changed (or, parsed from text, not exist)."""
        return self.text.splitlines()

    def is_stage_ref(self, ref: str, before: int) -> bool:
        """Is *ref* (from ``FROM`` or ``--from``) one of the first *before* stages?"""
        if ref.isdigit():
            return int(ref) < before
        return any(s.name == ref.lower() for s in self.stages[:before])

    def stage_index(self, ref: str, before: int) -> int | None:
        """The stage *ref* names among the first *before* (parse refuses two of one name), or None."""
        if ref.isdigit():
            return int(ref) if int(ref) < before else None
        named = [s.index for s in self.stages[:before] if s.name == ref.lower()]
        return named[-1] if named else None

    def built_stages(self, target: str | None) -> frozenset[int]:
        """The stages a build of *target* (None: the last stage) may run: it and every stage before it.

        BuildKit runs fewer (only those the target starts ``FROM`` or copies
        ``--from``), the classic builder all of these; the fallback must be
        served too. A stage after the target never runs: a capture build
        must not run it (it may fetch what nothing serves).
        """
        found = None if target is None else self.stage_index(target, len(self.stages))
        last = len(self.stages) - 1 if found is None else found  # an unknown target: BuildKit refuses it itself
        return frozenset(range(last + 1))

    def base_images(self) -> list[str]:
        """External images this file needs, in first-seen order.

        ``FROM`` bases that are not earlier stages (nor ``scratch``), plus
        images named by ``COPY --from`` and ``RUN --mount=...,from=``.
        """
        seen: dict[str, None] = {}
        for stage in self.stages:
            if stage.base != "scratch" and not self.is_stage_ref(stage.base, stage.index):
                seen.setdefault(stage.base, None)
            for ins in stage.instructions:
                for ref in _from_refs(ins):
                    ref = expand(ref, _stage_args(self, stage))
                    if not self.is_stage_ref(ref, len(self.stages)) and ref != "scratch":
                        seen.setdefault(ref, None)
        return list(seen)


def _from_refs(ins: Instruction) -> list[str]:
    refs: list[str] = []
    if ins.cmd in ("COPY", "ADD"):
        ref = ins.flag("from")
        if ref:
            refs.append(ref)
    if ins.cmd == "RUN":
        for opts in ins.mounts():
            if opts.get("from") and opts["type"] in ("bind", "cache"):
                refs.append(opts["from"])
    return refs


def _stage_args(df: Dockerfile, stage: Stage) -> dict[str, str | None]:
    # Only global ARGs are visible in FROM; inside a stage BuildKit expands
    # --from with the stage's ARGs too. Globals are a safe approximation.
    return dict(df.global_args)


def expand(text: str, args: Mapping[str, str | None]) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-default}`` and ``${VAR:+alt}``."""

    def sub(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        value = args.get(name) or ""
        op, word = m.group("op"), m.group("word") or ""
        if op in (":-", "-"):
            return value or word
        if op in (":+", "+"):
            return word if value else ""
        return value

    return _VAR.sub(sub, text)


def read_directives(text: str) -> dict[str, str]:
    """Parser directives (``# syntax=``, ``# escape=``, ``# check=``) at the top."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _DIRECTIVE.match(line.strip())
        if not m or m.group(1).lower() in found:
            break
        found[m.group(1).lower()] = m.group(2)
    return found


def parse(path: Path, build_args: Mapping[str, str] | None = None) -> Dockerfile:
    """Read and parse *path*; errors name the file and, where known, the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DockerfileError(f"{path}: no such Dockerfile",
                              "check the path (for a service: its context and dockerfile in offline.yaml)") from None
    except IsADirectoryError:
        raise DockerfileError(f"{path} is a folder, not a Dockerfile", "name the Dockerfile inside it") from None
    except UnicodeDecodeError as exc:
        raise DockerfileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                              "save the Dockerfile as UTF-8 (is this a Dockerfile?)") from None
    except OSError as exc:
        raise DockerfileError(f"{path}: cannot read: {exc.strerror or exc}", "check the file's permissions") from None
    return parse_text(text, path, build_args)


def parse_text(text: str, path: Path | str = "Dockerfile",
               build_args: Mapping[str, str] | None = None) -> Dockerfile:
    path = Path(path)
    try:
        commands = _parser.parse_string(text)
    except _parser.GoParseError as exc:  # docker build would refuse the file as well
        raise DockerfileError(f"{path}: {exc}", "correct what it names: docker build refuses the file too") from None
    overrides = dict(build_args or {})
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    current: list[Instruction] = []
    for cmd in commands:
        ins = Instruction(
            cmd=cmd.cmd.upper(),
            value=tuple(cmd.value),
            flags=tuple(cmd.flags),
            original=cmd.original,
            line=cmd.start_line,
            end_line=cmd.end_line,
            json=cmd.json,
            heredocs=tuple(h.content for h in cmd.heredocs),
        )
        if ins.cmd == "FROM":
            if stages:
                stages[-1] = _with_instructions(stages[-1], current)
            current = []
            stage = _stage(ins, len(stages), global_args, path)
            first = next((s for s in stages if stage.name and s.name == stage.name), None)
            if first is not None:
                # Not for docker's sake: BuildKit only warns (build check DuplicateStageName) and takes the later
                # stage for the name; the classic builder accepts it too. Refused because a FROM a, --from=a or
                # --target a meant for the first stage would quietly build the other.
                raise DockerfileError(f"{path}:{ins.line}: a second stage named {stage.name!r} (the first is at "
                                      f"line {first.line}): docker build only warns (DuplicateStageName) and "
                                      "quietly builds from the later one", "give each stage a name of its own")
            stages.append(stage)
        elif not stages:
            if ins.cmd != "ARG":
                raise DockerfileError(
                    f"{path}:{ins.line}: {cmd.original.split(None, 1)[0][:40]!r} before the first FROM",
                    "only ARG may come before FROM (is this a Dockerfile?)",
                )
            for item in ins.value:
                name, _, default = item.partition("=")
                global_args[name] = overrides.get(name, default if "=" in item else None)
        elif ins.cmd not in INSTRUCTIONS:  # the parser takes any word; docker build refuses it
            near = difflib.get_close_matches(ins.cmd, INSTRUCTIONS, n=1)
            raise DockerfileError(f"{path}:{ins.line}: unknown instruction {cmd.original.split(None, 1)[0][:40]!r}",
                                  f"use one of docker's instructions ({', '.join(INSTRUCTIONS)})"
                                  + (f"; did you mean {near[0]}?" if near else ""))
        else:
            current.append(ins)
    if not stages:
        raise DockerfileError(f"{path}: no FROM instruction", "a Dockerfile needs at least one FROM")
    stages[-1] = _with_instructions(stages[-1], current)
    return Dockerfile(path, read_directives(text), global_args, tuple(stages), text)


def _with_instructions(stage: Stage, instructions: list[Instruction]) -> Stage:
    return Stage(stage.index, stage.base, stage.base_raw, stage.name, stage.platform,
                 stage.line, tuple(instructions))


def _stage(ins: Instruction, index: int, args: Mapping[str, str | None], path: Path) -> Stage:
    parts = list(ins.value)
    if not parts:
        raise DockerfileError(f"{path}:{ins.line}: FROM without an image", "name the base: FROM <image>[:tag] [AS name]")
    name = None
    if len(parts) >= 3 and parts[1].lower() == "as":
        name = parts[2].lower()
    base = expand(parts[0], args)
    if not base:
        raise DockerfileError(
            f"{path}:{ins.line}: FROM {parts[0]} expands to nothing",
            "give the ARG a default or pass it in build_args",
        )
    return Stage(index, base, parts[0], name, ins.flag("platform"), ins.line)

"""APT in Dockerfiles: what each build installs, and from which sources.

``apt-get update`` needs the network even when ``/var/cache/apt`` is a
cache mount, because the package index lives in ``/var/lib/apt/lists``.
This module finds, per base image, the packages every ``RUN`` installs and
the commands that change APT's sources first, so the lists and ``.deb``
files can be captured online and bind-mounted into the builds offline.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from .dockerfile import Dockerfile, Instruction, Stage

_APT = {"apt-get", "apt"}
_SHELLS = {"sh", "bash", "dash", "ash"}
# Options of apt-get/apt that take a separate value.
_WITH_VALUE = {"-o", "--option", "-t", "--target-release", "--default-release", "-c", "--config-file"}
_SOURCES = re.compile(r"/etc/apt/(sources\.list(\.d)?|trusted\.gpg|keyrings)|/usr/share/keyrings")


def pipelines(text: str) -> list[list[str]]:
    """Tokens of each pipeline in a shell string, pipes and redirections kept.

    Splits on ``&&``, ``||``, ``;``, ``&``, newlines and parentheses, drops
    leading ``VAR=value`` assignments and recurses into ``sh -c '...'``.
    Unbalanced quotes fall back to splitting on whitespace, never a failure.
    """
    text = text.replace("\\\n", " ")
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace = " \t\r"
        lexer.wordchars += "~-./*?=$%:@+,[]{}!#^"
        tokens = list(lexer)
    except ValueError:
        tokens = text.replace(";", " ; ").replace("&&", " && ").split()
    out: list[list[str]] = []
    current: list[str] = []
    for token in tokens:
        if token in _SEPARATORS:
            _flush(current, out)
            current = []
        else:
            current.append(token)
    _flush(current, out)
    return out


_SEPARATORS = {"&&", "||", ";", "&", "\n", "(", ")", ";;", "{", "}", "!"}
_REDIRECT = re.compile(r"^[0-9]*[<>]+&?[0-9-]*$")


def simple_commands(text: str) -> list[list[str]]:
    """The argv of each simple command: pipelines split, redirections dropped."""
    out: list[list[str]] = []
    for pipeline in pipelines(text):
        current: list[str] = []
        skip = False
        for token in pipeline + ["|"]:
            if token == "|":
                if current:
                    out.append(current)
                current = []
            elif skip:
                skip = False
            elif _REDIRECT.match(token):
                skip = not token.endswith(("&1", "&2", "&-"))  # "> file" takes the next word
            else:
                current.append(token)
    return out


def shell_join(tokens: list[str]) -> str:
    """Tokens back into shell text, leaving pipes and redirections unquoted."""
    return " ".join(t if t == "|" or _REDIRECT.match(t) else shlex.quote(t) for t in tokens)


# Words that open a shell compound command: what follows is a command of its own
# (``if [ -f package-lock.json ]; then npm ci; else npm install; fi``).
_KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until"}


def _flush(argv: list[str], out: list[list[str]]) -> None:
    while argv and argv[0] in _KEYWORDS:
        argv = argv[1:]
    while argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]):
        argv = argv[1:]
    while argv and argv[0] in ("sudo", "exec", "env", "nice", "time", "command"):
        argv = argv[1:]
    if not argv:
        return
    shell = argv[0].rsplit("/", 1)[-1] in _SHELLS
    flag = next((i for i, a in enumerate(argv[1:3], 1) if re.match(r"^-[a-z]*c[a-z]*$", a)), None)
    if shell and flag is not None and flag + 1 < len(argv):
        out.extend(pipelines(argv[flag + 1]))
        return
    out.append(argv)


def run_text(ins: Instruction) -> str:
    """The shell text a RUN executes: shell form, exec form or heredoc bodies."""
    if ins.heredocs:
        return "\n".join(ins.heredocs)
    if ins.json:
        return shlex.join(ins.value)
    return " ".join(ins.value)


@dataclass(frozen=True)
class AptCommand:
    verb: str  # "install", "update", ...
    packages: tuple[str, ...]
    no_recommends: bool
    release: str | None
    argv: tuple[str, ...]


def parse_apt(argv: list[str]) -> AptCommand | None:
    """An ``apt-get``/``apt`` command line, or None if *argv* is not one."""
    if not argv or argv[0].rsplit("/", 1)[-1] not in _APT:
        return None
    verb = None
    packages: list[str] = []
    no_recommends = False
    release = None
    args = iter(argv[1:])
    for arg in args:
        if arg in _WITH_VALUE:
            value = next(args, "")
            if arg in ("-t", "--target-release", "--default-release"):
                release = value
            elif "Install-Recommends" in value and value.rstrip().lower().endswith(("false", "0")):
                no_recommends = True
        elif arg.startswith("--target-release=") or arg.startswith("--default-release="):
            release = arg.split("=", 1)[1]
        elif arg == "--no-install-recommends":
            no_recommends = True
        elif arg.startswith("-"):
            continue
        elif verb is None:
            verb = arg
        else:
            packages.append(arg)
    if verb is None:
        return None
    return AptCommand(verb, tuple(packages), no_recommends, release, tuple(argv))



def edits_sources(argv: list[str]) -> bool:
    """Does this command change APT's sources or keys (a mirror switch, a new repository)?"""
    if argv and argv[0] in ("add-apt-repository", "apt-add-repository"):
        return True
    if argv and argv[0] in _APT:
        return False
    return any(_SOURCES.search(a) for a in argv) and argv[0] not in ("cat", "ls", "test", "[", "rm")


@dataclass
class BaseApt:
    """What the stages built on one base image do with APT."""

    base: str
    packages: list[str] = field(default_factory=list)
    source_edits: list[list[str]] = field(default_factory=list)
    no_recommends: bool = True
    lines: list[int] = field(default_factory=list)
    # The --platform of each stage that installs packages ("": the platform built; $BUILDPLATFORM,
    # linux/amd64): the platforms the capture must hold.
    stage_platforms: list[str] = field(default_factory=list)

    def add(self, cmd: AptCommand, line: int) -> None:
        for pkg in cmd.packages:
            if cmd.release and "=" not in pkg and "/" not in pkg:
                pkg = f"{pkg}/{cmd.release}"  # apt's own syntax for "from that release"
            if pkg not in self.packages:
                self.packages.append(pkg)
        self.no_recommends = self.no_recommends and cmd.no_recommends
        if line not in self.lines:
            self.lines.append(line)


def external_base(df: Dockerfile, stage: Stage) -> str:
    """The image a stage ultimately starts from, following ``FROM <stage>``."""
    return _chain(df, stage)[-1].base


def platform_flag(df: Dockerfile, stage: Stage) -> str | None:
    """The ``--platform`` a stage runs on: its own, else the one of the stage it starts from."""
    return next((s.platform for s in _chain(df, stage) if s.platform), None)


def _chain(df: Dockerfile, stage: Stage) -> list[Stage]:
    chain = [stage]
    while df.is_stage_ref(stage.base, stage.index) and len(chain) <= len(df.stages):
        ref = stage.base
        stage = df.stages[int(ref)] if ref.isdigit() else next(s for s in df.stages if s.name == ref.lower())
        chain.append(stage)
    return chain


def uses_apt(ins: Instruction) -> bool:
    return ins.cmd == "RUN" and any(parse_apt(a) for a in simple_commands(run_text(ins)))


def analyse(df: Dockerfile) -> dict[str, BaseApt]:
    """Per external base image: packages installed and source edits before them."""
    found: dict[str, BaseApt] = {}
    for stage in df.stages:
        base = external_base(df, stage)
        if base == "scratch":
            continue
        for ins in stage.instructions:
            if ins.cmd != "RUN":
                continue
            entry = found.setdefault(base, BaseApt(base))
            flag = platform_flag(df, stage) or ""
            if uses_apt(ins) and flag not in entry.stage_platforms:
                entry.stage_platforms.append(flag)
            for pipeline in pipelines(run_text(ins)):
                if edits_sources(pipeline) and pipeline not in entry.source_edits:
                    # Replayed before the capture: lists must come from the edited sources.
                    entry.source_edits.append(pipeline)
                    continue
                for argv in simple_commands(shell_join(pipeline)):
                    cmd = parse_apt(argv)
                    if cmd and cmd.verb in ("install", "reinstall") and cmd.packages:
                        entry.add(cmd, ins.line)
    return {base: apt for base, apt in found.items() if apt.packages}

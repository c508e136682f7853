"""Language package managers in Dockerfiles: which ``RUN`` installs what, with which tool.

Found wherever the shell runs them: after ``&&``, in ``sh -c '...'``, inside
``if ...; then npm ci; else npm install; fi``, behind ``VAR=value`` or a
venv's own ``/venv/bin/pip``. The same shell reading as APT's
(:mod:`offline_build.apt`), so lint and the captures agree on what they see.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .apt import pipelines, run_text, shell_join, simple_commands
from .dockerfile import Instruction

_PIP = re.compile(r"^pip(3(\.\d+)?)?$")
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
# Node package managers and the verbs that fetch from the registry ("" is a bare ``yarn``).
_NODE_VERBS = {"npm": ("ci", "install", "i"), "yarn": ("", "install"), "yarnpkg": ("", "install"),
               "pnpm": ("install", "i", "fetch")}
_MAVEN = ("mvn", "mvnw")
_MAVEN_NO_FETCH = {"-o", "--offline", "-v", "--version", "-h", "--help"}
# go subcommands that resolve modules (and download what the module cache lacks).
_GO_VERBS = {"build", "install", "test", "run", "vet", "list", "get", "generate"}
_GO_MOD_VERBS = {"download", "tidy", "vendor", "graph", "verify", "why"}


@dataclass(frozen=True)
class Install:
    """One install command: the tool, how to call that same tool again, and its arguments."""

    tool: str  # pip | uv | npm | yarn | pnpm | maven | go
    launcher: tuple[str, ...]  # argv that runs the same tool in the same environment (a venv's pip)
    args: tuple[str, ...]


def _verb(args: list[str]) -> str:
    return next((a for a in args if not a.startswith("-")), "")


def install_of(argv: list[str]) -> Install | None:
    """The install *argv* runs, or None when it installs nothing from a registry."""
    if not argv:
        return None
    prog = argv[0].rsplit("/", 1)[-1]
    if _PIP.match(prog):
        launcher, args = (argv[0],), argv[1:]
    elif _PYTHON.match(prog) and argv[1:3] == ["-m", "pip"]:
        launcher, args = tuple(argv[:3]), argv[3:]
    elif prog == "uv":
        args = argv[1:]
        wanted = (args[:2] in (["pip", "install"], ["pip", "sync"]) or _verb(args) == "sync") and "--offline" not in args
        return Install("uv", (argv[0],), tuple(args)) if wanted else None
    elif prog in _MAVEN:
        fetches = bool(argv[1:]) and not _MAVEN_NO_FETCH & set(argv[1:])
        return Install("maven", (argv[0],), tuple(argv[1:])) if fetches else None
    elif prog == "go":
        return _go(argv)
    elif prog in _NODE_VERBS:
        tool = "yarn" if prog == "yarnpkg" else prog
        wanted = _verb(argv[1:]) in _NODE_VERBS[prog] and "--offline" not in argv
        return Install(tool, (argv[0],), tuple(argv[1:])) if wanted else None
    else:
        return None
    if _verb(args) != "install" or "--no-index" in args:
        return None
    return Install("pip", launcher, tuple(args))


def go_args(args: list[str]) -> list[str]:
    """A go command's arguments without its leading ``-C dir`` (go's only flag before the verb: run in *dir*)."""
    if args[:1] == ["-C"]:
        return args[2:]
    return args[1:] if args[:1] and args[0].startswith("-C=") else args


def _go(argv: list[str]) -> Install | None:
    """A ``go`` command that resolves modules; not in vendor mode, not with the proxy switched off."""
    args = go_args(argv[1:])
    verb = _verb(args)
    fetches = verb in _GO_VERBS or (verb == "mod" and _verb(args[args.index("mod") + 1:]) in _GO_MOD_VERBS)
    pairs = zip(args, args[1:])
    vendored = "-mod=vendor" in args or ("-mod", "vendor") in pairs
    return Install("go", (argv[0],), tuple(argv[1:])) if fetches and not vendored else None


@functools.lru_cache(maxsize=4096)
def installs(ins: Instruction) -> tuple[Install, ...]:
    """Every registry install a ``RUN`` makes, in order (none for other instructions).

    Each language capture asks this of every ``RUN`` for the installs that are
    its own: the shell is read once per instruction (cached; instructions are
    frozen), not once per capture.
    """
    if ins.cmd != "RUN":
        return ()
    return tuple(found for pipeline in pipelines(run_text(ins))
                 for argv in simple_commands(shell_join(pipeline))
                 if (found := install_of(argv)) is not None)

"""The edit proof: a service's Dockerfile as if every file of its build context had changed.

``offline.verify --edits`` builds this *edited* Dockerfile with a fresh value
of one build argument. In each stage, ``ARG OFFLINE_BUILD_EDIT`` goes right
before the first instruction that reads the build context (a ``COPY`` or
``ADD`` without ``--from``, a ``RUN`` bind mount without ``from=``). Every
``RUN`` after it gets the argument in its environment, so its cache key
changes and it runs again, exactly from where a change to the context
would make it run; everything above stays CACHED, as it would. (The
``COPY`` steps themselves stay cached: they would copy the same files,
and copying needs no network.) A stage built on a stage that ran again, or
copying from it, runs again as it would after a real change.

This proves the worst case of an edit that adds no dependency: every file
changed at once (``pom.xml`` and ``requirements.txt`` included, with the same
content), so a dependency step above the broad ``COPY . .`` runs again too.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

from .dockerfile import Instruction, parse_text

EDIT_ARG = "OFFLINE_BUILD_EDIT"


def nonce() -> str:
    """A value no earlier build used: every proof starts from an edit the cache has never seen."""
    return uuid.uuid4().hex[:12]


def reads_context(ins: Instruction) -> bool:
    """Does *ins* read the build context?"""
    if ins.cmd in ("COPY", "ADD"):
        if ins.flag("from"):
            return False
        sources = ins.value[:-1]
        # A URL is fetched, a heredoc is the Dockerfile's own text: neither is the context.
        return any(not s.startswith(("http://", "https://", "git@", "<<")) for s in sources)
    return ins.cmd == "RUN" and any(m["type"] == "bind" and "from" not in m for m in ins.mounts())


def edited(text: str, path: Path, build_args: Mapping[str, str] | None = None) -> str | None:
    """*text* with ``ARG OFFLINE_BUILD_EDIT`` before each stage's first read of the context; None if none reads it.

    *build_args* are the service's: a ``FROM ${BASE}`` must expand as the build expands it.
    """
    df = parse_text(text, path, build_args)
    firsts = [next((ins.line for ins in stage.instructions if reads_context(ins)), None)
              for stage in df.stages]
    lines = text.splitlines()
    marked = sorted((line for line in firsts if line is not None), reverse=True)
    for line in marked:
        lines.insert(line - 1, f"ARG {EDIT_ARG}")
    return "\n".join(lines) + "\n" if marked else None

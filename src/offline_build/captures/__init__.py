"""Captures: what a build step needs from the network, taken online and served offline.

A capture is one package ecosystem (APT, pip, uv, npm, yarn, pnpm, Maven, Go modules), or the replay of
any other fetch a step makes (``replay``). Each follows the same life:

1. *needs*: parse a Dockerfile for the steps it serves (per key: a base
   image for APT);
2. *capture_steps*: online, planned steps that fetch what those steps need
   into the capture's folder (``apt-lists/<base>/``);
3. *serve*: the offline variant of a ``RUN`` it serves: bind mounts from a
   named build context and the command rewritten to use them; export builds
   the same variant, so the cache keys online and offline are equal;
4. *context_dir*: the folder behind each named context;
5. the folder travels in the bundle as ``files/<name>/`` and setup puts each
   key's capture in place whole (``replace_captures``);
6. *rows*: what ``offline.diagnose`` says of it.

A new ecosystem is one module here implementing :class:`Capture`, its name
added to :data:`offline_build.capture_names.CAPTURES` and the capture to
:func:`all_captures` (tests/unit/test_layout.py checks the two agree); the
bundle's member check and the project file's ``captures:`` keys take the
names from there.
"""

from __future__ import annotations

from .apt import APT
from .base import Capture, Row, Served, replace_captures, swap_in, tree_digest
from .gomod import GO
from .maven import MAVEN
from .npm import NPM
from .pip import PIP
from .pnpm import PNPM
from .replay import REPLAY
from .uv import UV
from .yarn import YARN


def all_captures() -> tuple[Capture, ...]:
    """Every capture offline-build knows, in the order they serve a step (capture_names.CAPTURES says why)."""
    return (APT, PIP, UV, NPM, YARN, PNPM, MAVEN, GO, REPLAY)


__all__ = ["Capture", "Row", "Served", "all_captures", "replace_captures", "swap_in", "tree_digest"]

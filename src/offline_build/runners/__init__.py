"""Runners: how each kind of step is carried out, one module per domain.

``build`` (BuildKit, the classic fallback, builders), ``images`` (save and
load), ``bundle_io`` (pack, unpack, merge caches, generated files),
``fetch`` (resources). Each runner is a function ``(runtime, step) -> detail``;
the executor maps step kinds to them (captures bring their own, see
``captures/``). Runners never import the workflows that plan their steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from python_on_whales import DockerClient
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn


@dataclass(frozen=True)
class Runtime:
    """What a runner works with: one engine's client and where progress goes."""

    docker: DockerClient
    console: Console


Runner = Callable[[Runtime, Any], dict[str, Any]]


@contextmanager
def bar(console: Console, what: str, total: int) -> Iterator[Callable[[int], None]]:
    """A byte progress bar (hash, pack, verify) that disappears when done."""
    columns = (TextColumn(f"{what:>5}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(what, total=total)
        yield lambda n: progress.advance(task, n)

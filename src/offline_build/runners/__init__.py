"""Runners: how each kind of step is carried out, one module per domain.

``build`` (BuildKit, the classic fallback, builders), ``images`` (save and
load), ``bundle_io`` (pack, unpack, merge caches, generated files),
``fetch`` (resources). Each runner is a function ``(runtime, step) -> detail``;
the executor maps step kinds to them (captures bring their own, see
``captures/``). Runners never import the workflows that plan their steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from python_on_whales import DockerClient
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn


@dataclass(frozen=True)
class Runtime:
    """What a runner works with: one engine's client and where progress goes."""

    docker: DockerClient
    console: Console


Runner = Callable[[Runtime, Any], dict[str, Any]]


@contextmanager
def bar(console: Console, what: str, total: int) -> Iterator[Callable[[int], None]]:
    """A byte progress bar (hash, pack, verify) with throughput; in a log or a pipe, one plain line at the end."""
    if not console.is_terminal:
        started = time.monotonic()
        yield lambda n: None
        seconds = max(time.monotonic() - started, 1e-6)
        console.print(f"    {what}: {total / 1e6:.1f} MB in {seconds:.1f}s ({total / 1e6 / seconds:.0f} MB/s)",
                      highlight=False)
        return
    columns = (TextColumn(f"{what:>6}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(what, total=total)
        yield lambda n: progress.advance(task, n)

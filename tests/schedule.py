"""A fixed plan for pytest-xdist's workers: which worker runs which engine test file, decided before the run.

Why not xdist's own ``loadgroup`` scheduling: it hands the next group to
whichever worker is free first, so a project's export lands on one engine set
in one run and on the other in the next, and starts cold there each time. A
fixed plan keeps each project on the engine set whose build cache already
holds it, and balances the workers by measured cost (tests/conftest.py's
``WORKER``). Unit tests alternate between the workers; each worker runs its
unit tests first, then its engine test files, in collection order.

Imported only when pytest-xdist runs the suite (``-n N --dist loadgroup``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from xdist.scheduler.each import EachScheduling


def group_of(nodeid: str) -> str | None:
    """The xdist group xdist appended to *nodeid* (``...::test@group``), or None."""
    at, bracket = nodeid.rfind("@"), nodeid.rfind("]")
    return nodeid[at + 1:] if at > bracket else None  # an '@' inside a parameter's id is not a group


def plan(collection: Sequence[str], workers: int, worker_of: Callable[[str], int | None]) -> list[list[int]]:
    """Each worker's test indexes: a group's tests all in its worker, other tests dealt out in turn."""
    planned: list[list[int]] = [[] for _ in range(workers)]
    dealt = 0
    for index, nodeid in enumerate(collection):
        group = group_of(nodeid)
        if group is None:
            planned[dealt % workers].append(index)
            dealt += 1
            continue
        worker = worker_of(group)
        if worker is None:  # a group the table does not name yet: a fixed worker all the same
            worker = zlib.crc32(group.encode())
        planned[worker % workers].append(index)
    return planned


class PlannedScheduling(EachScheduling):
    """EachScheduling's bookkeeping (pending items, a crashed worker replaced), with each worker given its plan."""

    def __init__(self, config: pytest.Config, log: Any, worker_of: Callable[[str], int | None]) -> None:
        super().__init__(config, log)
        self.worker_of = worker_of

    def schedule(self) -> None:
        assert self.collection_is_completed
        fresh = [node for node in self.node2pending if node not in self._started]
        new = sorted((node for node in fresh if not self.node2pending[node]), key=_number)
        if new:
            collections = {tuple(self.node2collection[node]) for node in new}
            if len(collections) != 1:
                raise pytest.UsageError("the pytest-xdist workers collected different tests")
            planned = plan(self.node2collection[new[0]], len(new), self.worker_of)
            for node, indexes in zip(new, planned):
                self.node2pending[node][:] = indexes
                if indexes:
                    node.send_runtest_some(indexes)
                node.shutdown()  # after its plan: a worker gets nothing more
                self._started.append(node)
        for node in fresh:
            if node not in new:  # replaces a worker that crashed: that worker's pending items, as EachScheduling does
                node.send_runtest_some(self.node2pending[node])
                self._started.append(node)


def _number(node: Any) -> int:
    return int(node.gateway.id.removeprefix("gw"))

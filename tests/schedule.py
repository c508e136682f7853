"""A fixed plan for pytest-xdist's workers: which worker runs which engine test file, decided before the run.

Why not xdist's own ``loadgroup`` scheduling: it hands the next group to
whichever worker is free first, so a project's export lands on one engine set
in one run and on the other in the next, and starts cold there each time. A
fixed plan keeps each project on the engine set whose build cache already
holds it, and balances the workers by measured cost (tests/conftest.py's
``WORKER``). Unit tests alternate between the workers; each worker runs its
unit tests first, then its engine test files, in collection order.

Imported only when pytest-xdist runs the suite (``-n N --dist loadgroup``). The groups are read from the
test's file, not from xdist's own ``xdist_group`` mark: pytest 9.2 keeps a node id where xdist 3.8 no longer
writes the group into it, and its ``loadgroup`` then hands out every test on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from xdist.scheduler.each import EachScheduling


def plan(collection: Sequence[str], workers: int, worker_of: Callable[[str], int | None]) -> list[list[int]]:
    """Each worker's test indexes: a test *worker_of* names goes to that worker, the others are dealt in turn."""
    planned: list[list[int]] = [[] for _ in range(workers)]
    dealt = 0
    for index, nodeid in enumerate(collection):
        worker = worker_of(nodeid)
        if worker is None:
            worker, dealt = dealt, dealt + 1
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

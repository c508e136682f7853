"""``offline.prune``: drop the store's blobs that no index entry reaches.

BuildKit never deletes a cache's old blobs, and each export replaces a tag
without removing what only the old entry named, so a store grows with every
export. The plan lists those blobs with their sizes (``--dry-run`` prints it);
running it removes them under the cache folder's lock, so no export or setup
can make one reachable in between.
"""

from __future__ import annotations

from dataclasses import dataclass

from python_on_whales import DockerClient
from rich.console import Console

from .config import Project
from .executor import Executor
from .state import lock
from .steps import DropBlobs, Plan
from .store import Layout, StoreError


@dataclass(frozen=True)
class PruneReport:
    blobs: int
    bytes: int


def prune_plan(project: Project) -> Plan:
    """One step naming every unreachable blob and its size; reads the store, changes nothing."""
    layout = Layout(project.store)
    if not layout.exists():
        raise _no_store(project)
    garbage = sorted(layout.garbage())
    blobs = tuple((p.name, p.stat().st_size) for p in garbage)
    total = sum(size for _, size in blobs)
    return Plan("prune", (DropBlobs(title=f"drop {len(blobs)} unreachable blob(s), {total} bytes",
                                    store=project.store, blobs=blobs),))


def _no_store(project: Project) -> StoreError:
    return StoreError(f"no store in {project.store}: nothing to prune",
                      "check --cache-dir; offline.setup or offline.export makes the store")


def prune(project: Project, console: Console, *, dry_run: bool = False) -> PruneReport:
    """Plan under the lock, then print (``dry_run``) or run the plan; what was (or would be) dropped."""
    # The client is only the executor's parameter: dropping blobs never talks to an engine.
    executor = Executor(DockerClient(), console, dry_run=dry_run)
    if dry_run:
        plan = prune_plan(project)  # reads only: no lock needed, nothing changes
        executor.run(plan)
        step = plan.steps[0]
        assert isinstance(step, DropBlobs)
        return PruneReport(len(step.blobs), sum(size for _, size in step.blobs))
    if not project.cache_dir.exists():  # the lock would make a mistyped --cache-dir (a file: the lock names it)
        raise _no_store(project)
    with lock(project.cache_dir):
        detail = executor.run(prune_plan(project)).results[0].detail
    return PruneReport(detail["blobs"], detail["bytes"])


__all__ = ["PruneReport", "prune", "prune_plan"]

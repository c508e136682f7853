"""Per-service tasks: ``<service>.offline-build`` and ``<service>.offline-export``."""

from __future__ import annotations

import time

from invoke import Collection, Context, Task

from .common import BUILD_FLAGS, Later, clean_exit, console, docker, helps, project

# The workflows, loaded when a task runs (see Later).
building = Later("offline_build.build")
exporting = Later("offline_build.export")
report = Later("offline_build.report")


def collection(name: str) -> Collection:
    """The collection for service *name*; the bodies close over the name."""

    @clean_exit
    def offline_build(c: Context, dry_run: bool = False, host: str | None = None,
                      version: str | None = None, cache_dir: str | None = None,
                      platform: str | None = None, no_fallback: bool = False) -> None:
        proj = project(c, version, cache_dir, platform)
        out = console()
        outcomes = building.build(proj, [name], docker(host), out, dry_run=dry_run, fallback=not no_fallback)
        if not dry_run:
            report.builds(out, outcomes, f"{name}.offline-build")

    @clean_exit
    def offline_export(c: Context, dry_run: bool = False, host: str | None = None,
                       version: str | None = None, cache_dir: str | None = None,
                       platform: str | None = None) -> None:
        proj = project(c, version, cache_dir, platform)
        out = console()
        started = time.monotonic()
        summary = exporting.export(proj, [name], docker(host), out, dry_run=dry_run)
        if not dry_run:
            report.export(out, summary, time.monotonic() - started)

    offline_build.__doc__ = (f"Build {name} offline from the restored store "
                             f"(cache and base images), tagged with the version; the classic builder as a fallback.")
    offline_export.__doc__ = (f"Re-export only {name}'s cache on the online engine and repack the bundle "
                              "(the store keeps the other services).")
    ns = Collection(name)
    ns.add_task(Task(offline_build, name="offline-build", auto_shortflags=False,
                     help=helps(*BUILD_FLAGS, no_fallback="never fall back to the classic builder")))
    ns.add_task(Task(offline_export, name="offline-export", auto_shortflags=False, help=helps(*BUILD_FLAGS)))
    return ns

"""The invoke task tree, generated from the project file.

``offline.*`` holds the project-wide tasks; each service gets a collection
of its own (``backend.offline-build``), mirroring the seed's make targets
(``backend-offline-build``). Task bodies are a few lines: load the project,
call the library, print the report. Known failures become ``invoke.Exit``
with one message and a non-zero code, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import Collection

from ..config import DEFAULT_FILE, Project, load
from ..errors import ConfigError
from . import offline, service


def project_file(config: str | os.PathLike[str] | None = None) -> Path:
    """The project file in use: *config*, else ``OFFLINE_BUILD_CONFIG``, else ``./offline.yaml``."""
    return Path(config or os.environ.get("OFFLINE_BUILD_CONFIG") or DEFAULT_FILE).absolute()


def config_message(exc: ConfigError) -> str:
    """How a bad or missing project file is told: the README shows this line."""
    return f"offline-build: {exc}"


def project_namespace(config: str | os.PathLike[str] | None = None) -> Collection:
    """The whole tree for the project file at *config* (default: ``./offline.yaml``).

    A broken project file stops here with its one-line error and exit code 2:
    there is no task tree to show without it.
    """
    try:
        project = load(project_file(config))
    except ConfigError as exc:
        print(config_message(exc), file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    return namespace_for(project)


def cli_namespace(config: str | os.PathLike[str] | None = None) -> tuple[Collection, ConfigError | None]:
    """The console script's tree, and why the project's tasks are missing (None when they are not).

    Where there is no project file, ``--help``, ``--version`` and linting a
    given file still work: a newcomer's first commands. A project file that
    exists but is broken stops here, as in :func:`project_namespace`.
    """
    path = project_file(config)
    try:
        return namespace_for(load(path)), None
    except ConfigError as exc:
        if path.exists():
            print(config_message(exc), file=sys.stderr)
            raise SystemExit(exc.exit_code) from None
        return without_project(path), exc


def without_project(path: Path) -> Collection:
    """The tasks that need no project file, for a folder without one (*path*: where it was looked for)."""
    ns = Collection()
    ns.add_collection(offline.without_project())
    ns.configure({"offline_build": {"config": str(path)}})
    return ns


def namespace_for(project: Project) -> Collection:
    ns = Collection()
    ns.add_collection(offline.collection())
    for name in project.services:
        ns.add_collection(service.collection(name))
    ns.configure({"offline_build": {"config": str(project.path)}})
    return ns


__all__ = ["cli_namespace", "config_message", "namespace_for", "project_file", "project_namespace", "without_project"]

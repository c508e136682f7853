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


def project_namespace(config: str | os.PathLike[str] | None = None) -> Collection:
    """The whole tree for the project file at *config* (default: ``./offline.yaml``).

    A broken project file stops here with its one-line error and exit code 2:
    there is no task tree to show without it.
    """
    path = Path(config or os.environ.get("OFFLINE_BUILD_CONFIG") or DEFAULT_FILE).absolute()
    try:
        project = load(path)
    except ConfigError as exc:
        print(f"offline-build: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    return namespace_for(project)


def namespace_for(project: Project) -> Collection:
    ns = Collection()
    ns.add_collection(offline.collection())
    for name in project.services:
        ns.add_collection(service.collection(name))
    ns.configure({"offline_build": {"config": str(project.path)}})
    return ns


__all__ = ["namespace_for", "project_namespace"]

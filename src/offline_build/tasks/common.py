"""What every task shares: flags, loading the project, one clean exit on failure."""

from __future__ import annotations

import errno
import functools
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from typing import TYPE_CHECKING

from invoke import Context, Exit

from ..config import Overrides, Project, load
from ..errors import OfflineBuildError

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])


class Later:
    """A module imported on first use. Every command builds the whole task tree (``--list``, ``--help``, tab
    completion too), and the workflows behind the tasks (python-on-whales, rich, the SBOM library) take most of
    a start: a task loads them when it runs."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

# Help lines for the flags most tasks take; invoke shows them in --help.
COMMON_HELP = {
    "dry_run": "print the docker commands and touch nothing",
    "host": "Docker engine to use: unix://..., tcp://..., ssh://... or a socket's path (default: DOCKER_HOST)",
    "version": "image tag (default: OFFLINE_VERSION, then offline.yaml's version)",
    "cache_dir": "where the store and bundles live (default: CACHE_DIR, then offline.yaml)",
    "platform": "target platform(s), comma-separated (default: offline.yaml's platforms)",
}


def helps(*names: str, **extra: str) -> dict[str, str]:
    """Help lines for the named common flags plus a task's own."""
    return {**{n: COMMON_HELP[n] for n in names}, **extra}


BUILD_FLAGS = ("dry_run", "host", "version", "cache_dir", "platform")


def clean_exit(body: F) -> F:
    """Turn a known failure into one message and a non-zero exit."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except OfflineBuildError as exc:
            raise Exit(f"offline-build: error: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("offline-build: interrupted; nothing was left half-written", code=130) from None
        except _client_not_found():
            # python-on-whales looks for the binary only on first use, wherever that is.
            raise Exit("offline-build: error: the docker command is not on PATH\n"
                       "  fix: install the Docker CLI with its buildx plugin (Debian: docker.io and docker-buildx), "
                       "or add its folder to PATH", code=1) from None
        except BrokenPipeError:
            raise  # the reader went away (`| head`): cli.main ends quietly, there is no one to tell
        except OSError as exc:
            raise Exit(os_error_message(exc), code=1) from None

    return wrapper  # type: ignore[return-value]


def _client_not_found() -> type[Exception]:
    """python-on-whales' error for a missing docker command, once a task has loaded it (else none can occur)."""
    loaded = sys.modules.get("python_on_whales.client_config")
    return loaded.ClientNotFoundError if loaded else _NeverRaised


class _NeverRaised(Exception):
    pass


# The fix for a file system refusal, by errno; the path itself is named beside it.
OS_FIXES = {
    errno.ENOENT: "it, or a folder on the way to it, does not exist: create the folder, or choose another path",
    errno.EACCES: "this user may not use that path: change its permissions or owner, or choose another path",
    errno.EPERM: "this user may not use that path: change its permissions or owner, or choose another path",
    errno.ENOTDIR: "a part of that path is a file, not a folder: move the file away, or choose another path",
    errno.EEXIST: "something is already there (a file where a folder is needed?): move it away, "
                  "or choose another path",
    errno.EISDIR: "that is a folder where a file is needed: name a file, or choose another path",
    errno.EROFS: "that file system is read-only: choose a path on a writable disk",
}
OS_FIX_OTHER = "check that path and the disk it is on, then run it again"
OS_FIX_NO_PATH = "check the disk and the folders this task uses, then run it again"


def os_error_message(exc: OSError) -> str:
    """One message for a file system refusal: the path(s), what went wrong and a fix that fits the errno."""
    if exc.errno == errno.ENOSPC:
        return (f"offline-build: error: no space left on the device ({exc.filename or 'disk'})\n"
                "  fix: free disk space or set CACHE_DIR to a larger disk, then run it again")
    what = exc.strerror or str(exc) or type(exc).__name__
    where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    return (f"offline-build: error: {where + ': ' if where else ''}{what}\n"
            f"  fix: {OS_FIXES.get(exc.errno or 0, OS_FIX_OTHER if where else OS_FIX_NO_PATH)}")


def project(c: Context, version: str | None = None, cache_dir: str | None = None,
            platform: str | None = None) -> Project:
    """The project file the tree was made from, with command-line overrides applied."""
    path = Path(c.config.offline_build.config)
    platforms = tuple(p.strip() for p in platform.split(",") if p.strip()) if platform else None
    return load(path, Overrides(version=version, cache_dir=cache_dir, platforms=platforms))


# Wide enough that no table cell is ever cut: in a CI log an image name split
# across two lines (debian:bookwor|m-slim) can be neither searched for nor copied.
UNWRAPPED = 10_000


def console() -> Console:
    """Where reports go: a terminal's own width; elsewhere (CI logs, ``| tee``) no width limit.

    rich falls back to 80 columns off a terminal (or takes the width of a
    terminal on stdin or stderr). ``COLUMNS`` still wins when set.
    """
    from rich.console import Console

    out = Console(highlight=False)
    if not out.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        out.width = UNWRAPPED
    return out


def docker(host: str | None):  # noqa: ANN201 (python-on-whales' client type)
    from ..engine import client

    return client(host)

"""What a cache folder records between runs: the lock, and the bundle setup restored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .config import Project
from .errors import OfflineBuildError
from .files import create_ignored, write_atomic


@contextmanager
def lock(cache_dir: Path) -> Iterator[None]:
    """One export or setup at a time per cache folder; a second is told at once, not kept waiting.

    filelock takes the platform's own lock on the open file (``flock`` on Linux and macOS, ``msvcrt`` on
    Windows), so the package imports on a Windows laptop, and a run that dies frees the lock with it.
    """
    create_ignored(cache_dir)
    if not cache_dir.is_dir():  # else filelock's own mkdir of it says only "File exists"
        raise OfflineBuildError(f"{cache_dir} is a file, not a folder",
                                "choose another --cache-dir (or CACHE_DIR), or move the file away")
    held = FileLock(cache_dir / ".lock", timeout=0)
    try:
        held.acquire()
    except Timeout:
        raise OfflineBuildError(f"another offline-build is working on {cache_dir}",
                                "wait for it to finish, then run this again") from None
    try:
        yield
    finally:
        held.release()


def restored_bundle(project: Project) -> dict[str, Any] | None:
    """What setup recorded of the bundle it restored (``bundle.json``); None when none, or unreadable."""
    recorded = project.cache_dir / "bundle.json"
    if recorded.is_file():
        try:
            data = json.loads(recorded.read_text())
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return None


def bundle_network(project: Project) -> str | None:
    """The network mode the restored bundle was exported with (else the project's).

    Offline builds must use the same mode, or every ``RUN`` step misses the
    cache (seen: ``--network host`` then ``--network none`` re-runs them all).
    """
    recorded = restored_bundle(project)
    return (recorded.get("network") or None) if recorded is not None else project.network


PROOFS = "proofs.json"  # what offline.verify proved of which bundle, kept beside the bundles


def record_proof(cache_dir: Path, manifest_sha: str, level: str, passed: bool, when: str, *,
                 airtight: str = "", empty: str = "") -> None:
    """Remember that ``offline.verify`` (*level* "cached" or "edits") passed or failed for the bundle whose
    manifest hashes to *manifest_sha* (its identity: a re-export, renamed or not, is another bundle).

    *airtight* and *empty* are the results of verify's measures of the engine ("air-tight", "empty" for a
    full proof); a record without them predates the measures."""
    proofs = proofs_of(cache_dir)
    entry: dict[str, Any] = {"passed": passed, "when": when}
    entry |= {k: v for k, v in (("airtight", airtight), ("empty", empty)) if v}
    proofs.setdefault(manifest_sha, {})[level] = entry
    write_atomic(cache_dir / PROOFS, (json.dumps(proofs, indent=2, sort_keys=True) + "\n").encode())


def proofs_of(cache_dir: Path) -> dict[str, Any]:
    """Every recorded proof, by bundle key; empty when none or unreadable (then nothing is claimed)."""
    try:
        data = json.loads((cache_dir / PROOFS).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: {level: entry for level, entry in value.items() if isinstance(entry, dict)}
            for key, value in data.items() if isinstance(value, dict)}

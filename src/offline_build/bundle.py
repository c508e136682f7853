"""The bundle file: its format and manifest, and packing the store into it (:mod:`.unpacking` reads one).

Layout inside the archive (all regular files, no links)::

    manifest.json          what is inside, with the size and sha256 of every file (and of the SBOM)
    manifest.json.sha256   the manifest's own checksum
    oci-layout, index.json the store's OCI index (only the reachable entries)
    blobs/sha256/<hex>     every blob once, by digest
    files/apt/...          APT captures (and files/pip/, files/maven/... for the language captures)
    files/resources/...    resources
    sbom.cdx.json          the bill of materials (CycloneDX), made from the manifest's digests
    manifest.json.minisig  with ``--sign``: the minisign signature over manifest.json (last)

The archive is a plain tar by default: image layers are already gzip
compressed, so compressing them again costs time for a few percent (see the
README for the numbers).

An archive too big for the medium is cut into parts and read back as one
by :mod:`offline_build.parts`; ``open_archive`` takes either form.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from . import __version__
from .capture_names import CAPTURES  # the folders a bundle may carry under files/: each capture's, and resources
from .files import fsync_dir
from .parts import BundleError as BundleError  # re-exported: callers catch bundle.BundleError
from .parts import parse_size as parse_size  # re-exported: export's --split-size
from .parts import split as split  # re-exported: the executor's Pack step
from .store import Layout

# 2: a file whose bytes another file already has is packed once (listed twice); 3: SBOM and signature members.
# 4: captures keep a folder per platform under each key (files/apt/<base>/linux_arm64/...);
# setup moves an older bundle's flat keys under the one platform it was made for.
FORMAT_VERSION = 5  # 5: files/replay/ (recordings), which a tool before it refuses (written only with them)
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.json.sha256"
SIGNATURE = "manifest.json.minisig"
MAX_SIGNATURE = 8 << 10  # a minisign signature is under 1 KiB even with the longest trusted comment
SBOM = "sbom.cdx.json"
# Members the manifest describes without listing them in its files: itself, its checksum, its signature
# (which signs it), and the SBOM (made from the listed files' digests, so written after them; its
# sha256 is the manifest's "sbom").
META = (MANIFEST, MANIFEST_SUM, SIGNATURE, SBOM)
FILE_FOLDERS = tuple(sorted((*CAPTURES, "resources")))
ALLOWED_MEMBERS = re.compile(r"^(oci-layout|index\.json|blobs/sha256/[0-9a-f]{64}|files/(" + "|".join(FILE_FOLDERS)
                      + r")/[^\0]+)$")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass
class Manifest:
    project: str
    version: str
    platforms: list[str]
    services: dict[str, dict[str, Any]]
    base_images: dict[str, str]
    files: list[FileEntry] = field(default_factory=list)
    engine: dict[str, str] = field(default_factory=dict)
    network: str = ""  # the build network mode; part of every RUN step's cache key
    extends: dict[str, str] = field(default_factory=dict)  # a delta: the bundle whose files it omits
    builder: dict[str, str] = field(default_factory=dict)  # a named builder: name, driver, image, tag
    sbom: str = ""  # the sha256 of the SBOM member ("" for none: a bundle older than format 3)
    signed_by: str = ""  # the id of the key that signs it, written before signing: a stripped signature shows
    created: str = ""
    tool_version: str = __version__
    format_version: int = FORMAT_VERSION

    def digests(self) -> dict[str, str]:
        """The sha256 every member but the manifest's own checksum and signature must have, by path: the
        listed files and the SBOM (described by its digest alone)."""
        return {f.path: f.sha256 for f in self.files} | ({SBOM: self.sbom} if self.sbom else {})

    def to_json(self) -> bytes:
        data = {
            "format_version": self.format_version,
            "tool_version": self.tool_version,
            "created": self.created,
            "project": self.project,
            "version": self.version,
            "platforms": self.platforms,
            "engine": self.engine,
            "network": self.network,
            "extends": self.extends,
            "builder": self.builder,
            "sbom": self.sbom,
            "signed_by": self.signed_by,
            "services": self.services,
            "base_images": self.base_images,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> Manifest:
        try:
            data = json.loads(raw)
            version = int(data["format_version"])
        except (ValueError, KeyError, TypeError):
            raise BundleError(f"{where}: {MANIFEST} is not a bundle manifest",
                              "this file was not written by offline.export") from None
        if version > FORMAT_VERSION:
            raise BundleError(f"{where}: bundle format {version} is newer than this tool reads ({FORMAT_VERSION})",
                              "upgrade offline-build on this machine to the version that wrote it"
                              f" ({data.get('tool_version', '?')})")
        try:
            files = [FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in data["files"]]
            return cls(project=str(data["project"]), version=str(data["version"]),
                       platforms=list(data.get("platforms") or []), services=dict(data["services"]),
                       base_images=dict(data.get("base_images") or {}), files=files,
                       engine=dict(data.get("engine") or {}), created=str(data.get("created", "")),
                       network=str(data.get("network") or ""),
                       extends=dict(data.get("extends") or {}),
                       builder=dict(data.get("builder") or {}), sbom=str(data.get("sbom") or ""),
                       signed_by=str(data.get("signed_by") or ""),
                       tool_version=str(data.get("tool_version", "")), format_version=version)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: {MANIFEST} is malformed ({exc})",
                              "re-export the bundle on the online machine") from None


# --- packing -----------------------------------------------------------------


def _hidden(folder: str, parts: tuple[str, ...]) -> bool:
    """Left out: a half-written or replaced capture (``.<key>.partial``, ``.<key>.old``), and dot files of resources.

    Inside a capture, dot files are the tool's own (yarn keeps ``.yarn-metadata.json``
    beside each package) and travel.
    """
    return any(p.startswith(".") for p in parts) if folder == "resources" else parts[0].startswith(".")


def collect(cache_dir: Path, folders: Mapping[str, Path] | None = None) -> list[tuple[str, Path]]:
    """(archive name, local path) of everything that goes in: reachable blobs and files.

    *folders* travel as ``files/<name>/`` (default: the resources); each
    capture's lives where the project keeps it (``apt-lists/`` for APT).
    """
    layout = Layout(cache_dir / "store")
    members = [("oci-layout", layout.root / "oci-layout"), ("index.json", layout.root / "index.json")]
    members += [(f"blobs/sha256/{d.hex}", layout.blob_path(d.digest))
                for d in sorted(layout.reachable().values(), key=lambda d: d.digest)]
    for sub, base in (folders if folders is not None else {"resources": cache_dir / "resources"}).items():
        if base.is_dir():
            for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.is_symlink()
                               and not _hidden(sub, p.relative_to(base).parts)):
                members.append((f"files/{sub}/{path.relative_to(base).as_posix()}", path))
    return members


def manifest_sum(raw: bytes) -> bytes:
    """What ``manifest.json.sha256`` holds."""
    return hashlib.sha256(raw).hexdigest().encode() + b"\n"


@contextmanager
def atomic_output(output: Path) -> Iterator[BinaryIO]:
    """A new file that gets *output*'s name only once it is whole and synced.

    A name of its own in the same folder: two exports never write one file,
    and the rename stays atomic. Whatever goes wrong, the partial file goes.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    try:
        with tmp.open("xb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, output)
        fsync_dir(output.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise BundleError(f"no space left on {output.parent} while writing {output.name}",
                              "free disk space or set CACHE_DIR to a larger disk; the store is intact") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

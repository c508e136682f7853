"""Reading a bundle: find it, check every member before anything is written, read its manifest and signature,
and extract it verified (each file hashed as it is written).

:mod:`offline_build.bundle` says what a bundle is (its format, the manifest) and packs one; this module
is the other side, which must treat the file as hostile until it is checked.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .bundle import ALLOWED_MEMBERS, MANIFEST, MANIFEST_SUM, MAX_SIGNATURE, META, SBOM, SIGNATURE, Manifest, Progress
from .files import copy_stream_hashed
from .parts import PARTS, BundleError, check_parts, open_parts, parts_folder


def load_manifest(path: Path) -> tuple[Manifest, str]:
    """A bundle's manifest, from its ``.manifest.json`` or from the bundle itself; with its sha256."""
    if path.is_file() and path.name.endswith(".json"):
        raw = path.read_bytes()
    else:
        with open_archive(path) as tar:
            members = check_members(tar, str(path))
            member = next((m for m in members if m.name == MANIFEST), None)
            if member is None:
                raise BundleError(f"{path}: no {MANIFEST} inside", "this is not an offline-build bundle")
            raw = _read_member(tar, member, str(path))
    return Manifest.from_json(raw, str(path)), hashlib.sha256(raw).hexdigest()


def carried_elsewhere(manifest: Manifest, present: set[str]) -> dict[str, str]:
    """Manifest paths not in the archive whose bytes it carries under another path: path -> that path."""
    carried = {f.sha256: f.path for f in manifest.files if f.path in present}
    return {f.path: carried[f.sha256] for f in manifest.files if f.path not in present and f.sha256 in carried}


def find_bundle(cache_dir: Path) -> Path:
    """The newest bundle in *cache_dir*: a ``build-cache-*.tar`` or a folder of its parts."""
    candidates = [p for p in cache_dir.glob("build-cache-*") if not p.name.startswith(".")
                  and ((p.is_file() and p.name.endswith(".tar")) or (p / PARTS).is_file())]
    if not candidates:
        raise BundleError(f"no bundle (build-cache-*.tar) in {cache_dir}",
                          "copy the bundle there, or pass --bundle PATH")
    # By the export date in the name, then by time on disk (a delta made the same day).
    return max(candidates, key=lambda p: (re.findall(r"\d{8}", p.name)[:1], p.stat().st_mtime, p.name))


# A real bundle holds a few thousand files; millions of tiny members are an attack on time and inodes.
MAX_MEMBERS = 200_000


def check_members(members: Iterable[tarfile.TarInfo], where: str) -> list[tarfile.TarInfo]:
    """The pre-pass: only regular files with expected, unique, safe names.

    Pass the open archive itself, not ``getmembers()``: iterating it reads one
    header at a time, so a flood is refused at member MAX_MEMBERS + 1 instead
    of after every header has been parsed into memory.
    """
    seen: dict[str, str] = {}
    out: list[tarfile.TarInfo] = []
    try:
        for count, m in enumerate(members, 1):
            _check_member(m, count, seen, where)
            if not m.isdir():
                out.append(m)
    except (tarfile.TarError, EOFError) as exc:  # a header cut off: a copy that stopped partway
        raise BundleError(f"{where} is damaged or truncated ({exc}, after {len(out)} member(s))",
                          "the copy is damaged or truncated: copy it again") from None
    return out


def _check_member(m: tarfile.TarInfo, count: int, seen: dict[str, str], where: str) -> None:
    if count > MAX_MEMBERS:
        raise BundleError(f"{where}: more than {MAX_MEMBERS} members", "this is not an offline-build bundle")
    name = m.name
    if m.isdir():
        return
    if not m.isreg():
        raise BundleError(f"{where}: member {name!r} is not a regular file", "the bundle is not safe to extract")
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or name != pure.as_posix():
        raise BundleError(f"{where}: member {name!r} has an unsafe path", "the bundle is not safe to extract")
    if name not in META and not ALLOWED_MEMBERS.match(name):
        raise BundleError(f"{where}: unexpected member {name!r}", "this is not an offline-build bundle")
    if name.lower() in seen:
        raise BundleError(f"{where}: member {name!r} appears twice (or differs only in case)",
                          "the bundle is not safe to extract")
    if m.mode & 0o7000:
        raise BundleError(f"{where}: member {name!r} has setuid/setgid/sticky bits",
                          "the bundle is not safe to extract")
    seen[name.lower()] = name


def open_archive(path: Path) -> tarfile.TarFile:
    folder = parts_folder(path)
    if folder is not None:
        return open_parts(folder)
    if path.is_dir():
        raise BundleError(f"{path} is a folder but not a bundle (no {PARTS} in it)",
                          "pass the build-cache-*.tar file, or the folder of its parts")
    try:
        return tarfile.open(path, "r:*")
    except FileNotFoundError:
        raise BundleError(f"{path}: no such bundle", "check the path given to --bundle") from None
    except IsADirectoryError:
        raise BundleError(f"{path} is a folder, not a bundle archive",
                          "pass the build-cache-*.tar file inside it") from None
    except (tarfile.TarError, EOFError):
        if not _tar_like(path):  # tarfile's own words list every compression it tried: not one line to show
            raise BundleError(f"{path}: not a bundle (not a tar archive)",
                              "pass the build-cache-*.tar offline.export wrote, or the folder of its parts") from None
        raise BundleError(f"{path} is damaged or truncated (its first header cannot be read)",
                          "the copy is damaged or truncated: copy it again") from None
    except OSError as exc:
        raise BundleError(f"{path}: not a readable bundle archive ({exc.strerror or exc})",
                          "check the file's permissions and the disk it is on") from None


def check_archive(path: Path) -> None:
    """What :func:`open_archive` would refuse of *path* as no bundle, found cheaply: a file's first tar header;
    a parts folder's manifest and its parts' sizes, not their hashes (the unpack hashes each part; twice would
    double the read of a bundle of many gigabytes)."""
    folder = parts_folder(path)
    if folder is not None:
        check_parts(folder)
        return
    with open_archive(path):
        pass  # tarfile has read the first header: the rest is the unpack's to check


def _tar_like(path: Path) -> bool:
    """Does *path* start as a tar (or a compressed one) does, though tarfile could not open it: a copy cut short?"""
    with path.open("rb") as fh:
        head = fh.read(512)
    if head[257:262] == b"ustar" or head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return True
    return len(head) < 262 and b"\0" in head  # cut inside the first header, before its magic


def read_manifest(tar: tarfile.TarFile, members: list[tarfile.TarInfo], where: str) -> Manifest:
    by_name = {m.name: m for m in members}
    if MANIFEST not in by_name:
        raise BundleError(f"{where}: no {MANIFEST} inside", "this is not an offline-build bundle")
    raw = _read_member(tar, by_name[MANIFEST], where)
    if MANIFEST_SUM in by_name:
        expected = _read_member(tar, by_name[MANIFEST_SUM], where).decode(errors="replace").strip()
        if hashlib.sha256(raw).hexdigest() != expected:
            raise BundleError(f"{where}: {MANIFEST} does not match its checksum",
                              "the bundle was altered or damaged: copy it again from the online machine")
    manifest = Manifest.from_json(raw, where)  # first: a newer format says so, whatever else it lacks
    if MANIFEST_SUM not in by_name:
        # Every bundle offline.export writes has it; without it a damaged manifest would go unnoticed.
        raise BundleError(f"{where}: no {MANIFEST_SUM} inside", "the copy is incomplete: copy it again")
    listed = {f.path for f in manifest.files}
    if misnamed := [f.path for f in manifest.files if f.path.startswith("blobs/sha256/")
                    and f.sha256 != f.path.rsplit("/", 1)[1]]:
        # The store is content-addressed: a manifest that lets other bytes carry a
        # blob's name (in the archive, as a packed-once copy or from a delta's base)
        # would poison it for every later build. Refused here, before anything is written.
        raise BundleError(f"{where}: {misnamed[0]} does not hash to its name in {MANIFEST}",
                          "the bundle was altered: copy it again from the online machine")
    # Paths that are not members (a delta's, a packed-once copy's) are written
    # by setup too: the same rules as for members.
    if unsafe := sorted(p for p in listed if not ALLOWED_MEMBERS.match(p) or ".." in PurePosixPath(p).parts):
        raise BundleError(f"{where}: {MANIFEST} names an unsafe path {unsafe[0]!r}", "the bundle is not safe to extract")
    if (SBOM in by_name or manifest.sbom) and not re.fullmatch(r"[0-9a-f]{64}", manifest.sbom):
        raise BundleError(f"{where}: the manifest's sbom digest {manifest.sbom!r} is malformed", "the bundle was altered")
    if manifest.sbom and SBOM not in by_name:
        raise BundleError(f"{where}: {SBOM} is missing from the bundle", "the copy is incomplete: copy it again")
    present = set(by_name) - set(META)
    if extra := sorted(present - listed):
        raise BundleError(f"{where}: {extra[0]} is not listed in the manifest", "the bundle was altered")
    if (missing := sorted(listed - present - set(carried_elsewhere(manifest, present)))) and not manifest.extends:
        raise BundleError(f"{where}: {missing[0]} is missing from the bundle",
                          "the copy is incomplete: copy it again")
    return manifest


def read_signed(tar: tarfile.TarFile, members: list[tarfile.TarInfo], where: str) -> tuple[bytes, bytes | None]:
    """The manifest's bytes as packed, and its signature's (None: an unsigned bundle)."""
    by_name = {m.name: m for m in members}
    signature = by_name.get(SIGNATURE)
    if signature is not None and signature.size > MAX_SIGNATURE:
        raise BundleError(f"{where}: {SIGNATURE} is {signature.size} bytes, not a minisign signature",
                          "the bundle was altered: copy it again from the online machine")
    raw = _read_member(tar, signature, where) if signature is not None else None
    return _read_member(tar, by_name[MANIFEST], where), raw


@dataclass(frozen=True)
class Claims:
    """What a bundle says of itself, read in one pass over its headers: the manifest (validated), its bytes as
    packed, its signature's and its SBOM's (not yet checked: a bad SBOM must not hide the signature's verdict)."""

    manifest: Manifest
    raw: bytes
    signature: bytes | None
    sbom_member: bytes | None

    def sbom(self, where: str) -> bytes | None:
        """The SBOM (None: a bundle without one), checked against the manifest's digest."""
        if self.sbom_member is None or not self.manifest.sbom:
            return None
        if hashlib.sha256(self.sbom_member).hexdigest() != self.manifest.sbom:
            raise BundleError(f"{where}: {SBOM} does not match the manifest",
                              "copy the bundle again from the online machine")
        return self.sbom_member


def read_claims(path: Path) -> Claims:
    where = str(path)
    with open_archive(path) as tar:
        members = check_members(tar, where)
        manifest = read_manifest(tar, members, where)
        raw, signature = read_signed(tar, members, where)
        sbom = next((_read_member(tar, m, where) for m in members if m.name == SBOM), None)
    return Claims(manifest, raw, signature, sbom)


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> bytes:
    try:
        fh = tar.extractfile(member)
        return fh.read() if fh else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"{where}: cannot read {member.name} ({exc})",
                          "the copy is damaged or truncated: copy it again") from None


def extract_verified(tar: tarfile.TarFile, members: list[tarfile.TarInfo], manifest: Manifest,
                     dest: Path, where: str, progress: Progress | None = None) -> dict[str, str]:
    """Extract into *dest* (a fresh folder) and check every file against the manifest.

    Each member is hashed as it is written (one read per byte); returns the
    sha256 of each path written, so the store need not read the blobs again.
    """
    expected, sizes = manifest.digests(), {f.path: f.size for f in manifest.files}
    hashed: dict[str, str] = {}
    for member in members:
        if member.name in (MANIFEST, MANIFEST_SUM, SIGNATURE):
            continue
        _stdlib_filter(member, dest, where)
        target = dest / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        size, digest = _extract_hashed(tar, member, target, where)
        target.chmod(0o644)  # captures are bind-mounted into builds: modes are part of the cache key
        if size != sizes.get(member.name, size) or digest != expected[member.name]:
            raise BundleError(f"{where}: {member.name} is damaged (checksum mismatch)",
                              "copy the bundle again from the online machine")
        hashed[member.name] = digest
        if progress:
            progress(size)

    for path, source in carried_elsewhere(manifest, {m.name for m in members}).items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dest / source, target)  # verified above, under its first name
        target.chmod(0o644)
        hashed[path] = hashed[source]
    return hashed


def _stdlib_filter(member: tarfile.TarInfo, dest: Path, where: str) -> None:
    """The stdlib's "data" filter: a second, independent check after our own pre-pass (it has had bypasses).

    Python has it from 3.10.12 and 3.11.4 on (and where a distribution backported
    it); requires-python cannot say "3.10.12+ but 3.11.4+", so without it the
    pre-pass, which refuses every link and odd path itself, stands alone.
    """
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:
        return
    try:
        data_filter(member, str(dest))
    except tarfile.FilterError as exc:
        raise BundleError(f"{where}: {exc}", "the bundle is not safe to extract") from None


def _extract_hashed(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, where: str) -> tuple[int, str]:
    """(size, sha256) of *member* written to *target*: hashed and synced as it is written (it is moved into the
    store by a rename next, so its bytes must be on disk first)."""
    try:
        src = tar.extractfile(member)
        assert src is not None
        digest = copy_stream_hashed(src, target)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"{where}: cannot read {member.name} ({exc})",
                          "the copy is damaged or truncated: copy it again") from None
    return target.stat().st_size, digest

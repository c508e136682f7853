"""Bundle I/O: packing the store into a bundle, unpacking one into it, and the store's own merges.

Unpacking verifies the whole bundle in a scratch folder before anything
reaches the store, so a damaged or foreign bundle changes nothing here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from .. import bundle, cachekeys, packing, proof, sbom, signing, unpacking
from ..capture_names import REPLAY
from ..captures import replace_captures
from ..captures.base import platform_dir
from ..engine import engine_platforms
from ..errors import StepError
from ..files import copy_hashed, fsync_dir, sha256_file, write_atomic
from ..platforms import arch, runs_platform
from ..steps import DropBlobs, MergeCache, Pack, Unpack, WriteFile
from ..store import Layout
from . import Runtime, bar

RESOURCES = "files/resources"  # placed file by file; every other folder is a capture's


def _format_of(names: Iterable[str]) -> int:
    """The oldest format that holds these members: 5 only with recordings (files/replay/), so that a site whose
    tool predates the replay capture still reads a bundle that carries none."""
    return bundle.FORMAT_VERSION if any(n.startswith(f"files/{REPLAY}/") for n in names) else 4


def pack(rt: Runtime, step: Pack) -> dict[str, Any]:
    """Write the bundle, each file hashed as it is written (one read per byte, see :mod:`..packing`)."""
    members = bundle.collect(step.cache_dir, dict(step.folders))
    total = sum(p.stat().st_size for _, p in members)
    if step.manifest is None:
        raise StepError(step.title, "no manifest for the bundle")
    manifest = bundle.Manifest(**step.manifest.resolve(set(Layout(step.store).tags())),
                               created=bundle.now(), format_version=_format_of(name for name, _ in members))
    base = None
    if step.since:
        base, base_sha = unpacking.load_manifest(step.since)
        manifest.extends = {"bundle": step.since.name.removesuffix(".manifest.json"), "manifest_sha256": base_sha}
    started = time.monotonic()
    paths, made = dict(members), {}
    signer = step.signer

    def bill(done: bundle.Manifest) -> bytes:
        made["sbom"] = sbom.document(done, paths, step.resources, step.root)
        return made["sbom"]

    with bar(rt.console, "pack", total) as advance:
        packed = packing.write_hashed(
            step.output, manifest, members, base, progress=advance, sbom=bill, signer=signer)
    beside = step.output.with_name(step.output.name.removesuffix(".tar") + ".manifest.json")
    write_atomic(beside, packed.manifest)
    signature = beside.with_name(beside.name + ".minisig")
    if packed.signature is not None:  # so that ``minisign -Vm <it>`` checks it with no tar in between
        write_atomic(signature, packed.signature)
    else:
        signature.unlink(missing_ok=True)  # an earlier signed export of the same name signed another manifest
    stale = proof.proof_path(step.output)  # an earlier export's of the same name proved another manifest
    for path in (proof.signature_path(stale), stale):
        path.unlink(missing_ok=True)
    output: Path = step.output
    if step.split_size:
        output = bundle.split(step.output, step.split_size)
    entries = packed.entries
    blobs = [e for e in entries if e.path.startswith("blobs/")]
    folders = {name: [e.size for e in entries if e.path.startswith(f"files/{name}/")] for name, _ in step.folders}
    return {"folders": {n: (len(sizes), sum(sizes)) for n, sizes in folders.items() if sizes}, "output": output,
            "size": packed.size, "blobs": len(blobs), "packed_files": len(packed.members),
            "unique_bytes": sum(e.size for e in blobs), "files": len(entries),
            "signed": signer.key_id if signer else "", "sbom": sbom.summary(made["sbom"]),
            "write_seconds": time.monotonic() - started}  # hashing included: it happens while writing


def merge_cache(rt: Runtime, step: MergeCache) -> dict[str, Any]:
    source = Layout(step.source)
    if not source.exists():
        raise StepError(step.title, f"the build wrote no cache to {step.source}",
                        "the engine must export caches: use Docker with the containerd image store")
    store = Layout(step.store)
    added = store.merge(source, move=True)
    shutil.rmtree(step.source, ignore_errors=True)
    tags = store.tags()
    keys = cachekeys.normalize(store, step.tag, [tags[t] for t in step.bases if t in tags])
    return {"blobs_added": added, "keys_added": keys}


def drop_blobs(rt: Runtime, step: DropBlobs) -> dict[str, Any]:
    """Remove the planned blobs (the caller holds the cache folder's lock, so none became reachable since)."""
    blobs = Layout(step.store).blobs
    dropped = 0
    for name, size in step.blobs:
        path = blobs / name
        if path.is_file():
            path.unlink()
            dropped += size
    if step.blobs:
        fsync_dir(blobs)
    return {"blobs": len(step.blobs), "bytes": dropped}


def write_file(rt: Runtime, step: WriteFile) -> dict[str, Any]:
    if not step.path.is_file() or step.path.read_text() != step.text:
        write_atomic(step.path, step.text.encode())
    return {"path": step.path}


class Unpacked(NamedTuple):
    manifest: bundle.Manifest
    blobs_added: int
    files: int
    signature: signing.Verdict
    manifest_sha256: str  # the bundle's identity (offline.verify records its proofs under it)
    proof: proof.ProofClaim | None = None  # the offline.verify proof carried with it, kept in the cache folder


def unpack(rt: Runtime, step: Unpack) -> dict[str, Any]:
    platforms = (lambda: engine_platforms(rt.docker)) if step.check_platforms else None
    done = unpack_bundle(step, rt.console, platforms)
    return {"manifest": done.manifest, "blobs_added": done.blobs_added, "files": done.files,
            "signature": done.signature, "proof": done.proof}


def unpack_bundle(step: Unpack, console: Any, platforms: Callable[[], tuple[str, ...]] | None = None) -> Unpacked:
    """Verify the whole bundle in a scratch folder, then merge it into the store.

    The signature is checked first (against *step*'s trusted keys), then
    project and platforms: a bundle refused for any of them writes nothing.
    *platforms* tells what the engine can run (asked only for a bundle that
    names platforms: it costs a buildx call); a bundle for others is refused
    before anything is written. ``None``: not checked.
    """
    where = str(step.bundle)
    trusted = signing.load_trusted(step.trusted_keys)  # a wrong key path fails before the archive is read
    work = step.cache_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    with unpacking.open_archive(step.bundle) as tar, tempfile.TemporaryDirectory(dir=work, prefix="setup-") as tmp:
        try:
            members = unpacking.check_members(tar, where)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise bundle.BundleError(f"{where}: not a readable bundle archive ({exc})",
                                     "the copy is damaged or truncated: copy it again") from None
        manifest = unpacking.read_manifest(tar, members, where)
        raw, signature = unpacking.read_signed(tar, members, where)
        verdict = signing.verdict(raw, signature, trusted, where, manifest.signed_by)
        _check_project(step, manifest, where)
        if platforms is not None and manifest.platforms:
            _check_platforms(manifest, platforms(), where)
        sha = hashlib.sha256(raw).hexdigest()
        # Judged before anything is written: a proof of another bundle, or edited, refuses the setup.
        claim = proof.beside(step.bundle, sha, step.trusted_keys) if step.keep_proof else None
        hashed: dict[str, str] = {}
        if manifest.extends:
            hashed = _materialize(step, manifest, {m.name for m in members}, Path(tmp), where)
        _check_space(step, manifest, Path(tmp), where)
        with bar(console, "verify", sum(f.size for f in manifest.files)) as advance:
            hashed |= unpacking.extract_verified(tar, members, manifest, Path(tmp), where, advance)
        blobs = {f"sha256:{name.rsplit('/', 1)[1]}": sha for name, sha in hashed.items()
                 if name.startswith("blobs/sha256/")}
        # The store checks each blob against its name with the hashes taken while extracting.
        added = Layout(step.store).merge(Layout(Path(tmp)), move=True, hashed=blobs)
        if manifest.format_version < 4:
            _per_platform(Path(tmp), step.places, manifest)
        files = sum(_place(name, Path(tmp) / name, dest) for name, dest in step.places)
        if manifest.sbom:  # kept with the record of the restored bundle: diagnose and offline.sbom read it
            write_atomic(step.cache_dir / bundle.SBOM, (Path(tmp) / bundle.SBOM).read_bytes())
        else:
            (step.cache_dir / bundle.SBOM).unlink(missing_ok=True)
    if claim is not None:
        proof.keep(step.cache_dir, claim)
    record = json.dumps({"bundle": step.bundle.name, "signature": verdict.describe(), "manifest_sha256": sha,
                         **json.loads(manifest.to_json())}, indent=2)
    write_atomic(step.cache_dir / "bundle.json", (record + "\n").encode())
    return Unpacked(manifest, added, files, verdict, sha, claim)


def flat_platform(manifest: bundle.Manifest) -> str:
    """The platform folder an older bundle's flat captures belong in: the one platform they were made for.

    Its captures came from the exporting engine's own platform (the manifest
    does not say which): this machine's, when the bundle names it or names
    none, as a site usually matches its build machine; else the bundle's first.
    """
    here = f"linux/{arch()}"
    named = [p for p in manifest.platforms if runs_platform(here, (p,))] or manifest.platforms or [here]
    return platform_dir(named[0])


def _per_platform(tmp: Path, places: tuple[tuple[str, Path], ...], manifest: bundle.Manifest) -> None:
    """An older bundle's capture keys (flat) moved under the platform it was made for: the layout builds mount.

    Its cached APT and package steps then miss (their mounts changed) and run from the capture.
    """
    folder = flat_platform(manifest)
    for name, _ in places:
        root = tmp / name
        if name == RESOURCES or not root.is_dir():
            continue
        for key in sorted(p for p in root.iterdir() if p.is_dir()):
            flat = key.with_name(f".{key.name}.flat")
            key.replace(flat)
            key.mkdir()
            flat.replace(key / folder)


def _place(name: str, src: Path, dest: Path) -> int:
    """Resources are placed file by file; a capture's keys each replace the old one whole."""
    return _place_files(src, dest) if name == RESOURCES else replace_captures(src, dest)


def _check_space(step: Unpack, manifest: bundle.Manifest, tmp: Path, where: str) -> None:
    total = sum(f.size for f in manifest.files)
    free = shutil.disk_usage(tmp).free
    if total > free:
        raise bundle.BundleError(f"{where} needs {total >> 20} MiB to set up and {step.cache_dir} has "
                                 f"{free >> 20} MiB free", "free disk space, or set CACHE_DIR to a larger disk")


def _materialize(step: Unpack, manifest: bundle.Manifest, present: set[str], dest: Path,
                 where: str) -> dict[str, str]:
    """A delta omits what its base bundle held: take those files from this machine, checked.

    Afterwards the scratch folder holds exactly what the full bundle would,
    so the rest of setup cannot tell the two apart. Each file is hashed as
    it is copied; returns those hashes (path -> sha256).
    """
    base = manifest.extends.get("bundle", "its base bundle")
    packed_once = unpacking.carried_elsewhere(manifest, present)  # written from the archive itself, after extraction
    hashed = {}
    for entry in manifest.files:
        if entry.path in present or entry.path in packed_once:
            continue
        local = _local_copy(step, entry.path, manifest)
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if local is None or not local.is_file() or local.stat().st_size != entry.size \
                or copy_hashed(local, target) != entry.sha256:
            raise bundle.BundleError(f"{where} is a delta of {base}, and {entry.path} from it is not here",
                                     f"run offline.setup with {base} (or a full bundle) first")
        hashed[entry.path] = entry.sha256
    return hashed


def _local_copy(step: Unpack, name: str, manifest: bundle.Manifest) -> Path | None:
    """Where this machine keeps a bundle member, for a delta: in the store, or placed by an earlier setup."""
    if name.startswith("blobs/sha256/"):
        return step.store / name
    for folder, local in step.places:
        if name.startswith(f"{folder}/"):
            rest = name.removeprefix(f"{folder}/")
            if manifest.format_version < 4 and folder != RESOURCES and "/" in rest:
                key, file = rest.split("/", 1)  # placed under its platform (see _per_platform)
                rest = f"{key}/{flat_platform(manifest)}/{file}"
            return local / rest
    return None  # the index always travels: the local one may hold more entries


def _check_project(step: Unpack, manifest: bundle.Manifest, where: str) -> None:
    if manifest.project != step.project:
        raise bundle.BundleError(f"{where} is a bundle for project {manifest.project!r}, not {step.project!r}",
                                 "use the bundle exported from this project's offline.yaml")
    if step.platforms and manifest.platforms and set(step.platforms) - set(manifest.platforms):
        raise bundle.BundleError(f"{where} was built for {', '.join(manifest.platforms)}, "
                                 f"not {', '.join(step.platforms)}",
                                 "export again with --platform for this machine")


def _check_platforms(manifest: bundle.Manifest, available: tuple[str, ...], where: str) -> None:
    """Refuse a bundle for no platform this engine can run.

    A fully cached build would even succeed, but the first changed RUN step
    would fail with "exec format error" at the site, where nobody can fix it.
    A multi-platform bundle needs one: an amd64 site and an arm64 one set up
    the same bundle, and each builds its own platform (diagnose says which).
    """
    foreign = [p for p in manifest.platforms if not runs_platform(p, available)]
    if foreign and len(foreign) == len(manifest.platforms):
        raise bundle.BundleError(
            f"{where} is for {', '.join(foreign)} and this engine runs {', '.join(available)}",
            f"export again with --platform {available[0]}, or give this machine emulation for "
            f"{', '.join(foreign)} (binfmt_misc with qemu-user-static) and run offline.setup again")


def _place_files(src: Path, dest_root: Path) -> int:
    count = 0
    if not src.is_dir():
        return 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        target = dest_root / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or sha256_file(target) != sha256_file(path):
            path.replace(target)  # from the scratch folder, whose files setup synced as it wrote them
            fsync_dir(target.parent)
            count += 1
    return count

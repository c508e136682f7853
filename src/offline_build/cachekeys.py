"""Make an exported BuildKit cache findable from both kinds of image store.

BuildKit keys a base image two ways: by its manifest digest and platform
(what an engine with the containerd image store, or an ``oci-layout://``
context, computes first) and by the chain ID of its layers (the only key an
engine with the classic store can compute for a ``docker load``ed image).
It exports the second key only when the first missed the online engine's
own cache, so a warm export is invisible to classic-store engines (seen:
Docker 26 without the containerd store re-ran every step).

Both keys follow from the base image alone, so after each export we add
whichever is missing as an alternative with the same links. Formulas from
BuildKit's source op (``buildkit.source.v0:<key>``, then ``<digest>@0``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .files import write_atomic
from .store import INDEX_TYPES, Descriptor, Layout

CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def record_digest(source_key: str) -> str:
    """The cache record digest of a source op whose cache key is *source_key*."""
    return _digest(_digest("buildkit.source.v0:" + source_key) + "@0")


def manifest_key(manifest_digest: str, os: str, arch: str, variant: str = "") -> str:
    """BuildKit's ``mainManifestKey``: Go's JSON of {Digest, OS, Arch, Variant?}."""
    fields: dict[str, str] = {"Digest": manifest_digest, "OS": os, "Arch": arch}
    if variant:
        fields["Variant"] = variant
    return _digest(json.dumps(fields, separators=(",", ":")))


def chain_id(diff_ids: list[str]) -> str:
    """The OCI chain ID of a layer stack."""
    chain = diff_ids[0]
    for diff in diff_ids[1:]:
        chain = _digest(f"{chain} {diff}")
    return chain


def base_record_pair(layout: Layout, base: Descriptor) -> tuple[str, str] | None:
    """(record by manifest, record by layer chain) for a base image in *layout*."""
    manifest = base
    if base.media_type in INDEX_TYPES:
        return None  # multi-platform bases: the platform is chosen by the engine
    doc = layout.read_json(manifest.digest)
    config = layout.read_json(doc["config"]["digest"])
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if not diff_ids:
        return None
    by_manifest = record_digest(manifest_key(manifest.digest, config.get("os", "linux"),
                                             config.get("architecture", ""), config.get("variant", "")))
    return by_manifest, record_digest(chain_id(diff_ids))


def add_alternatives(config: dict[str, Any], pairs: list[tuple[str, str]]) -> int:
    """For each (a, b): where one record exists and the other not, add the other.

    The new record gets the same layers and is linked wherever the existing
    one is, as an alternative for the same input. Returns records added.
    """
    records: list[dict[str, Any]] = config.setdefault("records", [])
    index = {r["digest"]: i for i, r in enumerate(records)}
    added = 0
    for a, b in pairs:
        for have, want in ((a, b), (b, a)):
            if have in index and want not in index:
                source = records[index[have]]
                records.append({k: v for k, v in source.items() if k != "digest"} | {"digest": want})
                index[want] = len(records) - 1
                _link_alongside(records, index[have], index[want])
                added += 1
    return added


def _link_alongside(records: list[dict[str, Any]], old: int, new: int) -> None:
    for record in records:
        for alternatives in record.get("inputs") or []:
            extra = [{**alt, "link": new} for alt in alternatives if alt.get("link") == old]
            alternatives.extend(extra)


def normalize(layout: Layout, cache_tag: str, bases: list[Descriptor]) -> int:
    """Rewrite *cache_tag*'s cache config in *layout* so both base keys are there."""
    tags = layout.tags()
    if cache_tag not in tags:
        return 0
    pairs = [p for p in (base_record_pair(layout, b) for b in bases) if p]
    entry = tags[cache_tag]
    index_doc = layout.read_json(entry.digest)
    for i, desc in enumerate(index_doc.get("manifests", [])):
        if desc["mediaType"] != CACHE_CONFIG:
            continue
        config = layout.read_json(desc["digest"])
        added = add_alternatives(config, pairs)
        if not added:
            return 0
        new_config = _put(layout, json.dumps(config, separators=(",", ":")).encode())
        index_doc["manifests"][i] = {**desc, "digest": new_config[0], "size": new_config[1]}
        new_index = _put(layout, json.dumps(index_doc, separators=(",", ":")).encode())
        replaced = Descriptor(entry.media_type, new_index[0], new_index[1], entry.annotations, entry.platform)
        layout.write_index([d for d in layout.index() if d.ref_name != cache_tag] + [replaced])
        return added
    return 0


def _put(layout: Layout, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout.blob_path(digest)
    if not path.is_file() or path.read_bytes() != data:  # a few hundred bytes: a damaged copy is rewritten
        write_atomic(path, data)
    return digest, len(data)

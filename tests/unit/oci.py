"""Tiny OCI layouts made by hand, for store and bundle tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from offline_build.store import REF_NAME, Descriptor, Layout


def put(layout: Layout, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    layout.blobs.mkdir(parents=True, exist_ok=True)
    (layout.blobs / digest).write_bytes(data)
    return f"sha256:{digest}"


def image(layout: Layout, tag: str, layers: list[bytes], extra_annotations: dict[str, str] | None = None) -> Descriptor:
    """An image manifest with *layers*, tagged *tag* in the layout's index."""
    layer_descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(layout, data), "size": len(data)} for data in layers]
    config = json.dumps({"rootfs": {"diff_ids": [d["digest"] for d in layer_descs]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(layout, config), "size": len(config)},
        "layers": layer_descs,
    }).encode()
    desc = Descriptor("application/vnd.oci.image.manifest.v1+json", put(layout, manifest), len(manifest),
                      {REF_NAME: tag, **(extra_annotations or {})})
    layout.write_index([d for d in layout.index() if d.ref_name != tag] + [desc])
    return desc


def new(root: Path) -> Layout:
    layout = Layout(root)
    layout.blobs.mkdir(parents=True, exist_ok=True)
    return layout

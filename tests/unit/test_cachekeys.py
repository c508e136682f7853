"""Cache keys for base images, checked against digests BuildKit itself wrote."""

from __future__ import annotations

import json
from pathlib import Path

from offline_build import cachekeys
from offline_build.store import REF_NAME, Descriptor, Layout
from tests.unit import oci

# From a real export (buildx 0.13.1, Docker 26 with the containerd store) of
# "FROM debian:bookworm-slim / RUN ..." with a debootstrapped base image.
MANIFEST = "sha256:01019bb3b50560c9f5cc9f1393e4247f0c0203302061c052954313be0d24cd19"
DIFF_ID = "sha256:a594b7247317e6babdd8752c1b628d8a9e722373878293f3171591a272ba539f"
BY_MANIFEST = "sha256:c51915ed41fff561c4106066f0cc0f15e6160e5dd0e673eb7b8541babc483059"
BY_CHAIN = "sha256:b82843c71c2369594be5d7a083cee1d9a341d9573a356d6a798d4ee673b7bb25"
RUN = "sha256:cc11a639a305fdc31974f47545f191da2114512b7b7f0b551359632e08c1dc59"
SELECTOR = "sha256:8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1"
# What the same export wrote when the online engine's cache was warm: only
# the manifest key, which a classic-store engine never computes.
WARM = {"layers": [], "records": [
    {"digest": BY_MANIFEST},
    {"digest": RUN, "layers": [{"layer": 0}], "inputs": [[{"selector": SELECTOR, "link": 0}]]},
]}


def test_both_keys_match_what_buildkit_wrote() -> None:
    assert cachekeys.record_digest(cachekeys.manifest_key(MANIFEST, "linux", "amd64")) == BY_MANIFEST
    assert cachekeys.record_digest(cachekeys.chain_id([DIFF_ID])) == BY_CHAIN


def test_a_warm_export_gains_the_chain_key_as_an_alternative() -> None:
    config = json.loads(json.dumps(WARM))
    assert cachekeys.add_alternatives(config, [(BY_MANIFEST, BY_CHAIN)]) == 1
    digests = [r["digest"] for r in config["records"]]
    assert digests == [BY_MANIFEST, RUN, BY_CHAIN]
    assert config["records"][1]["inputs"] == [[{"selector": SELECTOR, "link": 0}, {"selector": SELECTOR, "link": 2}]]
    # Idempotent: a second pass adds nothing.
    assert cachekeys.add_alternatives(config, [(BY_MANIFEST, BY_CHAIN)]) == 0


def test_unrelated_roots_are_left_alone() -> None:
    config = json.loads(json.dumps(WARM))
    assert cachekeys.add_alternatives(config, [("sha256:" + "1" * 64, "sha256:" + "2" * 64)]) == 0
    assert config == WARM


def test_normalize_rewrites_the_cache_entry_in_a_layout(tmp_path: Path) -> None:
    layout = oci.new(tmp_path / "store")
    base = oci.image(layout, "base-x", [b"rootfs"])
    pair = cachekeys.base_record_pair(layout, base)
    assert pair is not None
    config = {"layers": [], "records": [{"digest": pair[0]}, {"digest": RUN, "inputs": [[{"link": 0}]]}]}
    config_digest = oci.put(layout, json.dumps(config).encode())
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": cachekeys.CACHE_CONFIG, "digest": config_digest, "size": len(json.dumps(config))}]}).encode()
    entry = Descriptor("application/vnd.oci.image.index.v1+json", oci.put(layout, index), len(index), {REF_NAME: "cache-s"})
    layout.write_index(layout.index() + [entry])
    assert cachekeys.normalize(layout, "cache-s", [base]) == 1
    new_entry = Layout(layout.root).tags()["cache-s"]
    assert new_entry.digest != entry.digest
    new_config = layout.read_json(layout.read_json(new_entry.digest)["manifests"][0]["digest"])
    assert [r["digest"] for r in new_config["records"]] == [pair[0], RUN, pair[1]]
    assert layout.reachable()  # everything the new entry names is present

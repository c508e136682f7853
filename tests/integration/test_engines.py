"""What each harness engine can do, as offline-build's probes see it (the notes' matrix)."""

from __future__ import annotations

from pathlib import Path

import pytest
from python_on_whales import DockerClient

from offline_build.engine import probe

pytestmark = pytest.mark.engine

EXPECTED = {
    # engine: (containerd store, cache export, cache import, oci-layout contexts, named contexts)
    "online": (True, True, True, True, True),
    "offline": (True, True, True, True, True),
    "legacy": (False, False, True, False, True),
    "old": (False, False, True, False, False),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_probes_match_what_the_engine_can_do(engines: dict[str, str], name: str, tmp_path: Path) -> None:
    caps = probe(DockerClient(host=engines[name]), tmp_path)
    seen = (caps.containerd_store, caps.cache_export, caps.cache_import, caps.oci_layout_context,
            caps.named_contexts)
    assert seen == EXPECTED[name]
    assert caps.server_version.startswith("20.10" if name == "old" else "26.")

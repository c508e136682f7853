"""Signed bundles and the bill of materials, end to end on the harness's engines.

The demo as the suite exports it (conftest's ``demo``, signed with a key offline.keygen made); Debian's
``minisign`` (installed by the harness) checks the signature; the bundle is
set up on the empty air-gapped engine trusting the key, and refused, with the
store and the engine as they were, trusting another.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from python_on_whales import DockerClient

from offline_build import bundle
from tests.integration.conftest import Demo
from tests.integration.harness import build_report, carry, cli, plain, reset

pytestmark = pytest.mark.engine


def site(tmp_path: Path, demo: Demo, trusted: Path | None) -> Path:
    """The offline machine's checkout: the bundle carried in, the public key it trusts (if any) in its project file."""
    project = carry(demo.bundle, tmp_path / "demo")
    if trusted is not None:
        shutil.copy2(trusted, project / "trusted.pub")
        config = project / "offline.yaml"
        config.write_text(config.read_text() + "signing:\n  trusted_keys: [trusted.pub]\n")
    return project


def test_minisign_verifies_the_bundles_signature(demo: Demo, tmp_path: Path) -> None:
    archive = demo.bundle
    beside = archive.with_name(archive.name.removesuffix(".tar") + ".manifest.json")
    out = subprocess.run(["minisign", "-Vm", str(beside), "-p", str(demo.public_key)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "Trusted comment: offline-build bundle of demo 1.0.0, created " in out.stdout
    # The bundle's own copies, as a site checks them by hand: tar -xf, then minisign.
    inside = tmp_path / "inside"
    inside.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(inside), bundle.MANIFEST, bundle.SIGNATURE], check=True)
    own = subprocess.run(["minisign", "-Vm", str(inside / bundle.MANIFEST), "-p", str(demo.public_key)],
                         capture_output=True, text=True, check=False)
    assert own.returncode == 0, own.stderr
    assert (inside / bundle.MANIFEST).read_bytes() == beside.read_bytes()
    secret = demo.key.read_text().splitlines()[1]
    assert secret.encode() not in archive.read_bytes()


def test_the_sbom_lists_the_base_image_and_every_captured_deb(demo: Demo, tmp_path: Path) -> None:
    archive = demo.bundle
    plain(demo.project, "offline.sbom", "--output", str(tmp_path / "sbom.json"))
    raw = (tmp_path / "sbom.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(raw) is None
    doc = json.loads(raw)
    components = doc["components"]
    containers = {c["name"]: c for c in components if c["type"] == "container"}
    # The demo's base image, the classic builder's base with its packages preinstalled, and each service
    # built by the classic builder (export makes both, for the classic fallback).
    assert set(containers) == {"debian", "demo-debian_bookworm-slim-apt",
                               *(f"demo-{s}-classic" for s in ("backend", "worker", "web"))}
    base = containers["debian"]
    assert base["version"] == "bookworm-slim" and "arch=amd64" in base["purl"], base
    assert re.search(r"@sha256(:|%3A)[0-9a-f]{64}", base["purl"]), base
    debs = {c["name"]: c for c in components if c.get("purl", "").startswith("pkg:deb/")}
    with tarfile.open(archive) as tar:
        carried = [m.name for m in tar.getmembers() if m.name.endswith(".deb")]
    assert carried  # jq and its libraries, captured for the backend
    for member in carried:
        name, version, arch = Path(member).name.removesuffix(".deb").split("_")
        assert name in debs, name
        assert debs[name]["version"] == version.replace("%3a", ":")
        assert f"arch={arch}" in debs[name]["purl"]
        assert debs[name]["hashes"][0]["alg"] == "SHA-256"
    assert "jq" in debs


def test_a_trusted_signed_bundle_sets_up_and_builds_and_diagnose_says_so(
        engines: dict[str, str], demo: Demo, tmp_path: Path) -> None:
    key_id = demo.key_id
    reset("offline")
    host = engines["offline"]
    here = site(tmp_path, demo, demo.public_key)
    setup = cli(here, host, "offline.setup")
    assert f"signed by trusted key {key_id}" in setup.stdout
    checks = json.loads(cli(here, host, "offline.diagnose", "--json", "--quick").stdout)["checks"]
    rows = {c["name"]: c for c in checks if c["area"] == "bundle"}
    assert rows["signature"]["status"] == "ok" and key_id in rows["signature"]["detail"]
    assert re.search(r"\d+ deb", rows["sbom"]["detail"]), rows["sbom"]
    built = build_report(cli(here, host, "offline.build").stdout)
    assert set(built) == {"backend", "worker", "web"}
    assert all(cached == steps and status == "all cached" for steps, cached, status in built.values()), built


def test_a_bundle_signed_by_another_key_is_refused_and_nothing_changes(
        engines: dict[str, str], demo: Demo, tmp_path: Path) -> None:
    key_id = demo.key_id
    reset("offline")
    host = engines["offline"]
    plain(tmp_path, "offline.keygen", "--key", str(tmp_path / "other.key"))
    here = site(tmp_path, demo, tmp_path / "other.pub")
    engine = DockerClient(host=host)
    images = sorted(i.id for i in engine.image.list())
    out = cli(here, host, "offline.setup", check=False)
    assert out.returncode == 1
    assert f"is signed by key {key_id}, which is not trusted here" in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("offline-build: error:") == 1
    assert not (here / "build-cache" / "store").exists()
    assert sorted(i.id for i in engine.image.list()) == images
    # The same bundle with no key configured: set up, and said to be unchecked (once, not as an error).
    open_site = site(tmp_path / "open", demo, None)
    taken = cli(open_site, host, "offline.setup")
    assert f"signature claims key {key_id}, not checked" in taken.stdout

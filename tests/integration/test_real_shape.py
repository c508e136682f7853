"""A project in the shape of a real team's, through the whole loop with ``network: none``.

What the test projects before it never reached, and a new user's first run
did (issue 26): the shop of tests/integration/projects.py (a Vite-like
frontend built with ``target: runner`` while a later ``dev`` stage fetches
what nothing serves, a ``uv sync`` service whose ``.dockerignore``
allow-lists its files, a database image that copies ``.sql`` files, and one
service per language tool after ``COPY . .``). Exported online with
``network: none`` (every capture build still fetches), set up on an empty
air-gapped engine whose copy of the project file names a ``ca_file`` that
only the online machine has, all CACHED; each service changed and rebuilt
offline; and ``offline.verify --edits`` green there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from python_on_whales import DockerClient

from offline_build import unpacking
from tests.integration.harness import CA, build_report, carry, cli, reset
from tests.integration.projects import NODE_SERVICES, SERVICES, change_every_service

pytestmark = pytest.mark.engine


def site_copy(tmp_path: Path, bundle: Path) -> Path:
    """The sources at the site, the bundle beside them; its project file names a CA the site does not have."""
    project = carry(bundle, tmp_path / "shop")
    yaml = project / "offline.yaml"
    yaml.write_text(yaml.read_text().replace(f"ca_file: {CA}", "ca_file: certs/corporate-ca.pem"))
    assert not (project / "certs").exists()
    return project


def test_a_real_shaped_project_rebuilds_every_service_offline_after_a_change(
        engines: dict[str, str], shop: Path, tmp_path: Path) -> None:
    reset("offline")
    host = engines["offline"]
    project = site_copy(tmp_path, shop)
    cli(project, host, "offline.setup")
    first = build_report(cli(project, host, "offline.build").stdout, SERVICES)
    assert set(first) == set(SERVICES), first
    for service, (steps, cached, status) in first.items():
        assert steps > 0 and cached == steps and status == "all cached", (service, first)

    change_every_service(project, "v2")
    again = build_report(cli(project, host, "offline.build").stdout, SERVICES)
    assert set(again) == set(SERVICES), again
    for service, (steps, cached, status) in again.items():
        assert status == "rebuilt offline" and 0 < cached < steps, (service, again)

    docker = DockerClient(host=host)
    assert docker.run("shop/web:1", remove=True, networks=["none"]).split() == ["**v2", "1.16.0"]
    assert docker.run("shop/api:1", remove=True, networks=["none"]).strip() == "api v2 0.6.2 1.16.0"
    schema = docker.run("shop/db:1", remove=True, networks=["none"])
    assert "users_by_id_v2" in schema and "CREATE TABLE users" in schema
    # The allow-listed context: NOTES.md stayed out, VERSION came back in.
    listed = docker.run("shop/api:1", ["ls", "/app"], remove=True, networks=["none"]).split()
    assert "VERSION" in listed and "NOTES.md" not in listed
    for tool in ("py", "uv"):
        assert docker.run(f"deps/{tool}:1", remove=True, networks=["none"]).strip() == f"{tool} v2 0.6.2 1.16.0"
    for tool in NODE_SERVICES:
        assert docker.run(f"deps/{tool}:1", remove=True, networks=["none"]).strip() == f"{tool} v2 --x"


def test_the_edit_proof_passes_at_the_site_without_the_online_ca(engines: dict[str, str], shop: Path,
                                                                   tmp_path: Path) -> None:
    reset("offline")
    host = engines["offline"]
    project = site_copy(tmp_path, shop)
    proof = cli(project, host, "offline.verify", "--edits", check=False)
    assert proof.returncode == 0, proof.stdout + proof.stderr
    assert "is not a file" not in proof.stdout + proof.stderr
    for service in SERVICES:
        assert f"│ {service}" in proof.stdout and "failed" not in proof.stdout, proof.stdout


def test_the_dev_stage_after_the_target_was_never_captured(shop: Path) -> None:
    manifest, _ = unpacking.load_manifest(shop)
    names = [f.path for f in manifest.files]
    assert any(n.startswith("files/npm/web-1/") for n in names), names  # the deps stage's npm ci
    assert not any(n.startswith("files/npm/web-2/") for n in names)  # the dev stage's npm install -g
    assert any(n.startswith("files/pip/web-1/") for n in names)  # the runner's pip install
    assert any(n.startswith("files/uv/api-1/") for n in names)

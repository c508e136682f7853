"""Change the code offline and rebuild: pip, uv, npm, yarn and pnpm steps after ``COPY . .``, on the real engines.

The shop of tests/integration/projects.py, exported once per run (conftest's
``shop``, shared with test_real_shape.py, which rebuilds every service after
a change on the empty air-gapped engine): ``py`` installs a wheel and an
sdist-only package into a venv with pip, ``uv`` the same with ``uv pip
install``, ``node`` runs ``npm ci`` inside an ``if`` (the shape of a real
frontend Dockerfile), ``yarn`` and ``pnpm`` install from their lockfiles.
Here: what the bundle carries, the same rebuild on a classic-store engine and
on Docker 20.10's classic builder, and a dependency changed offline.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from offline_build import unpacking
from tests.integration.harness import build_report, carry, cli, reset
from tests.integration.projects import (
    DEPS_SERVICES,
    NODE_SERVICES,
    PY_REQUIREMENTS,
    SERVICES,
    change_deps_services,
    change_every_service,
)

pytestmark = pytest.mark.engine


def rows(stdout: str) -> dict[str, tuple[int, int, str]]:
    return build_report(stdout, SERVICES)


def test_the_bundle_carries_each_steps_capture(shop: Path) -> None:
    manifest, _ = unpacking.load_manifest(shop)
    names = [f.path for f in manifest.files]
    wheels = [n for n in names if n.startswith("files/pip/py-1/linux_amd64/") and n.endswith(".whl")]
    assert any("/docopt-0.6.2-" in w for w in wheels), wheels  # built from the sdist, online
    assert any("/six-1.16.0-" in w for w in wheels), wheels
    assert any(n.startswith("files/npm/node-1/linux_amd64/_cacache/content-v2/") for n in names)
    assert any(n.startswith("files/npm/pnpm-1/linux_amd64/_cacache/") for n in names)  # npm install -g pnpm
    assert any(n.startswith("files/yarn/yarn-1/linux_amd64/") and n.endswith("/.yarn-tarball.tgz") for n in names)
    assert any(n.startswith("files/pnpm/pnpm-1/linux_amd64/store/") for n in names)
    assert any(n.startswith("files/uv/uv-1/linux_amd64/") and "docopt" in n for n in names)  # built from the sdist, online
    assert any(n.startswith("files/pip/uv-1/linux_amd64/") and "/uv-0.13.9-" in n for n in names)  # pip install uv
    assert not any("/_logs/" in n for n in names)
    # The same left-pad tarball is in npm's cache and yarn's: listed at both paths, packed once.
    with tarfile.open(shop) as tar:
        packed = tar.getnames()
    assert len(packed) < len(names) + 2  # + the manifest and its checksum
    tarball = next(n for n in names if n.startswith("files/yarn/") and n.endswith("/.yarn-tarball.tgz"))
    digest = next(f.sha256 for f in manifest.files if f.path == tarball)
    assert len([f for f in manifest.files if f.sha256 == digest and f.path in packed]) == 1


def test_a_source_change_rebuilds_on_a_classic_store_engine(engines: dict[str, str], shop: Path,
                                                             tmp_path: Path) -> None:
    """Docker 26 without the containerd store (most laptops before Docker 29): setup loads the base images,
    BuildKit builds every service from the bundle's cache, then again after a change, with no network."""
    reset("legacy")
    host = engines["legacy"]
    project = carry(shop, tmp_path / "shop")
    cli(project, host, "offline.setup")
    first = rows(cli(project, host, "offline.build").stdout)
    assert set(first) == set(SERVICES)
    for service, (steps, cached, status) in first.items():
        assert steps > 0 and cached == steps and status == "all cached", (service, first)

    change_every_service(project, "v2")
    again = rows(cli(project, host, "offline.build").stdout)
    assert set(again) == set(SERVICES)
    for service, (steps, cached, status) in again.items():
        assert status == "rebuilt offline" and cached < steps, (service, again)

    docker = DockerClient(host=host)
    for tool in ("py", "uv"):
        assert docker.run(f"deps/{tool}:1", remove=True, networks=["none"]).strip() == f"{tool} v2 0.6.2 1.16.0"
    for tool in NODE_SERVICES:
        assert docker.run(f"deps/{tool}:1", remove=True, networks=["none"]).strip() == f"{tool} v2 --x"
    assert docker.run("shop/api:1", remove=True, networks=["none"]).strip() == "api v2 0.6.2 1.16.0"


def test_a_dependency_changed_offline_is_named_with_the_fix(engines: dict[str, str], shop: Path,
                                                            tmp_path: Path) -> None:
    reset("offline")
    host = engines["offline"]
    project = carry(shop, tmp_path / "shop")
    cli(project, host, "offline.setup")
    (project / "py" / "requirements.txt").write_text(PY_REQUIREMENTS + "attrs==23.2.0\n")
    out = cli(project, host, "py.offline-build", check=False)
    assert out.returncode == 1
    assert "attrs==23.2.0 is not in the bundle's pip capture: requirements.txt changed since the export" \
        in out.stderr, out.stderr
    assert "fix: export online again with the changed file" in out.stderr
    assert "Traceback" not in out.stderr


def test_docker_20_10_builds_them_with_the_classic_builder_from_the_captures(
        engines: dict[str, str], shop: Path, tmp_path: Path) -> None:
    """Its BuildKit has no named contexts: each service falls back to the classic variant, which copies the
    captures in from the service's captures image (setup loaded it), and still installs with no network."""
    reset("old")
    host = engines["old"]
    project = carry(shop, tmp_path / "shop")
    cli(project, host, "offline.setup")
    change_deps_services(project, "v3")
    built, said = {}, ""
    for tool in DEPS_SERVICES:  # each on its own, as a developer builds the one they changed
        out = cli(project, host, f"{tool}.offline-build")
        built.update(rows(out.stdout))
        said += out.stdout
    assert {s: status for s, (_, _, status) in built.items()} == dict.fromkeys(DEPS_SERVICES, "classic builder"), \
        built
    assert "fallback: py: this engine's BuildKit has no named build contexts" in " ".join(said.split())
    docker = DockerClient(host=host)
    for tool in ("py", "uv"):
        assert docker.run(f"deps/{tool}:1", remove=True, networks=["none"]).strip() == f"{tool} v3 0.6.2 1.16.0"
    for tool in NODE_SERVICES:
        assert docker.run(f"deps/{tool}:1", remove=True, networks=["none"]).strip() == f"{tool} v3 --x"
    # The captures were copied in for the install and removed by it: the image does not carry them.
    assert docker.run("deps/py:1", ["sh", "-c", "ls /.offline-build 2>&1 || true"], remove=True,
                      networks=["none"]).strip().endswith("No such file or directory")

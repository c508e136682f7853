"""Change the code offline and rebuild: pip and npm steps after ``COPY . .``, on the real engines.

One project, exported once per run (a session fixture: Python, Node and
yarn come from Debian through the APT capture, uv, pnpm and the packages
from PyPI and the npm registry): ``py`` installs a wheel and an sdist-only
package into a venv with pip, ``uv`` the same with ``uv pip install``, ``node`` runs ``npm ci`` inside an ``if`` (the shape of
a real frontend Dockerfile), ``yarn`` and ``pnpm`` install from their lockfiles. Offline, after setup on an empty air-gapped engine, every step
is CACHED; after a source change each rebuilds with no network and runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from offline_build import bundle, unpacking
from tests.integration.conftest import reset
from tests.integration.test_roundtrip import build_report, cli

pytestmark = pytest.mark.engine

CA = Path("/etc/ssl/certs/ca-certificates.crt")  # this machine's trust, which includes its TLS-inspecting proxy

PY_DOCKERFILE = """\
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv
WORKDIR /app
COPY . .
RUN python3 -m venv /venv && /venv/bin/pip install --no-cache-dir -r requirements.txt
CMD ["/venv/bin/python", "app.py"]
"""
UV_DOCKERFILE = """\
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY . .
RUN python3 -m venv /venv && /opt/uv/bin/uv pip install --python /venv/bin/python -r requirements.txt
CMD ["/venv/bin/python", "app.py"]
"""
PY_APP = 'import docopt, six\nprint("{tool}", "{version}", docopt.__version__, six.__version__)\n'
# docopt 0.6.2 exists only as an sdist: the capture must build its wheel online.
PY_REQUIREMENTS = "six==1.16.0\ndocopt==0.6.2\n"

NODE_DOCKERFILE = """\
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm
WORKDIR /app
COPY . .
RUN if [ -f package-lock.json ]; then npm ci; else npm install; fi
CMD ["node", "index.js"]
"""
YARN_DOCKERFILE = """\
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs yarnpkg
WORKDIR /app
COPY . .
RUN yarnpkg install --frozen-lockfile --ignore-scripts
CMD ["node", "index.js"]
"""
PNPM_DOCKERFILE = """\
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm
RUN npm install -g pnpm@9.15.9
WORKDIR /app
COPY . .
RUN pnpm install --frozen-lockfile
CMD ["node", "index.js"]
"""
NODE_APP = 'const pad = require("left-pad");\nconsole.log("{tool}", "{version}", pad("x", 3, "-"));\n'
PACKAGE_JSON = '{"name": "node-svc", "version": "1.0.0", "private": true, "dependencies": {"left-pad": "1.3.0"}}\n'


SERVICES = ("py", "uv", "node", "yarn", "pnpm")
NODE_SERVICES = ("node", "yarn", "pnpm")


def node_service(root: Path, name: str, dockerfile: str, lock: list[str]) -> None:
    """A Node service whose lockfile this machine's tool writes now (never committed: it names the registry)."""
    folder = root / name
    folder.mkdir()
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / "index.js").write_text(NODE_APP.format(version="v1", tool=name))
    (folder / "package.json").write_text(PACKAGE_JSON.replace("node-svc", f"{name}-svc"))
    subprocess.run(lock, cwd=folder, check=True, capture_output=True,
                   env={**os.environ, "NODE_EXTRA_CA_CERTS": str(CA)})
    shutil.rmtree(folder / "node_modules", ignore_errors=True)


def write_project(root: Path) -> Path:
    root.mkdir(parents=True)
    ca = f"ca_file: {CA}\n" if CA.is_file() else ""
    entries = "".join(f"  {s}: {{context: {s}, image: deps/{s}}}\n" for s in SERVICES)
    (root / "offline.yaml").write_text(f"project: deps\nversion: '1'\nnetwork: host\n{ca}services:\n{entries}")
    for name, dockerfile in (("py", PY_DOCKERFILE), ("uv", UV_DOCKERFILE)):
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "Dockerfile").write_text(dockerfile)
        (folder / "app.py").write_text(PY_APP.format(version="v1", tool=name))
        (folder / "requirements.txt").write_text(PY_REQUIREMENTS)
    quiet = ["--ignore-scripts", "--no-audit", "--no-fund"]
    node_service(root, "node", NODE_DOCKERFILE, ["npm", "install", "--package-lock-only", *quiet])
    node_service(root, "yarn", YARN_DOCKERFILE, ["npx", "--yes", "yarn@1.22.19", "install", "--ignore-scripts"])
    node_service(root, "pnpm", PNPM_DOCKERFILE, ["npx", "--yes", "pnpm@9.15.9", "install", "--lockfile-only"])
    assert (root / "node" / "package-lock.json").is_file() and (root / "yarn" / "yarn.lock").is_file()
    assert (root / "pnpm" / "pnpm-lock.yaml").is_file()
    return root


@pytest.fixture(scope="session")
def deps_bundle(engines: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = write_project(tmp_path_factory.mktemp("deps-online") / "deps")
    cli(project, engines["online"], "offline.export")
    (bundle,) = (project / "build-cache").glob("build-cache-*.tar")
    return bundle


def offline_copy(tmp_path: Path, bundle: Path) -> Path:
    """The same sources on the offline machine (lockfile included), with the bundle copied in."""
    project = tmp_path / "deps"
    shutil.copytree(bundle.parents[1], project, ignore=shutil.ignore_patterns("build-cache"))
    (project / "build-cache").mkdir()
    shutil.copy2(bundle, project / "build-cache" / bundle.name)
    return project


def rows(stdout: str) -> dict[str, tuple[int, int, str]]:
    return build_report(stdout, SERVICES)


def test_the_bundle_carries_each_steps_capture(deps_bundle: Path) -> None:
    manifest, _ = unpacking.load_manifest(deps_bundle)
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
    with tarfile.open(deps_bundle) as tar:
        packed = tar.getnames()
    assert len(packed) < len(names) + 2  # + the manifest and its checksum
    tarball = next(n for n in names if n.startswith("files/yarn/") and n.endswith("/.yarn-tarball.tgz"))
    digest = next(f.sha256 for f in manifest.files if f.path == tarball)
    assert len([f for f in manifest.files if f.sha256 == digest and f.path in packed]) == 1


@pytest.mark.parametrize("engine", ["offline", "legacy"])
def test_a_source_change_rebuilds_offline_and_runs(engines: dict[str, str], deps_bundle: Path, tmp_path: Path,
                                                   engine: str) -> None:
    reset(engine)
    host = engines[engine]
    project = offline_copy(tmp_path, deps_bundle)
    cli(project, host, "offline.setup")
    first = rows(cli(project, host, "offline.build").stdout)
    assert set(first) == set(SERVICES)
    for service, (steps, cached, status) in first.items():
        assert steps > 0 and cached == steps and status == "all cached", (service, first)

    for tool in ("py", "uv"):
        (project / tool / "app.py").write_text(PY_APP.format(version="v2", tool=tool))
    for tool in NODE_SERVICES:
        (project / tool / "index.js").write_text(NODE_APP.format(version="v2", tool=tool))
    again = rows(cli(project, host, "offline.build").stdout)
    for service, (steps, cached, status) in again.items():
        assert status == "rebuilt offline" and cached < steps, (service, again)

    docker = DockerClient(host=host)
    for tool in ("py", "uv"):
        assert docker.run(f"deps/{tool}:1", remove=True, networks=["none"]).strip() == f"{tool} v2 0.6.2 1.16.0"
    for tool in NODE_SERVICES:
        assert docker.run(f"deps/{tool}:1", remove=True, networks=["none"]).strip() == f"{tool} v2 --x"


def test_a_dependency_changed_offline_is_named_with_the_fix(engines: dict[str, str], deps_bundle: Path,
                                                            tmp_path: Path) -> None:
    reset("offline")
    host = engines["offline"]
    project = offline_copy(tmp_path, deps_bundle)
    cli(project, host, "offline.setup")
    (project / "py" / "requirements.txt").write_text(PY_REQUIREMENTS + "attrs==23.2.0\n")
    out = cli(project, host, "py.offline-build", check=False)
    assert out.returncode == 1
    assert "attrs==23.2.0 is not in the bundle's pip capture: requirements.txt changed since the export" \
        in out.stderr, out.stderr
    assert "fix: export online again with the changed file" in out.stderr
    assert "Traceback" not in out.stderr


def test_docker_20_10_builds_them_with_the_classic_builder_from_the_captures(
        engines: dict[str, str], deps_bundle: Path, tmp_path: Path) -> None:
    """Its BuildKit has no named contexts: each service falls back to the classic variant, which copies the
    captures in from the service's captures image (setup loaded it), and still installs with no network."""
    reset("old")
    host = engines["old"]
    project = offline_copy(tmp_path, deps_bundle)
    cli(project, host, "offline.setup")
    for tool in ("py", "uv"):
        (project / tool / "app.py").write_text(PY_APP.format(version="v3", tool=tool))
    for tool in NODE_SERVICES:
        (project / tool / "index.js").write_text(NODE_APP.format(version="v3", tool=tool))
    out = cli(project, host, "offline.build")
    built = rows(out.stdout)
    assert {s: status for s, (_, _, status) in built.items()} == dict.fromkeys(SERVICES, "classic builder"), built
    assert "fallback: py: this engine's BuildKit has no named build contexts" in out.stdout
    docker = DockerClient(host=host)
    for tool in ("py", "uv"):
        assert docker.run(f"deps/{tool}:1", remove=True, networks=["none"]).strip() == f"{tool} v3 0.6.2 1.16.0"
    for tool in NODE_SERVICES:
        assert docker.run(f"deps/{tool}:1", remove=True, networks=["none"]).strip() == f"{tool} v3 --x"
    # The captures were copied in for the install and removed by it: the image does not carry them.
    assert docker.run("deps/py:1", ["sh", "-c", "ls /.offline-build 2>&1 || true"], remove=True,
                      networks=["none"]).strip().endswith("No such file or directory")

"""Change the code offline and rebuild: pip and npm steps after ``COPY . .``, on the real engines.

One project, exported once per run (a session fixture: Python and Node come
from Debian through the APT capture, the packages from PyPI and the npm
registry): ``py`` installs a wheel and an sdist-only package into a venv,
``node`` runs ``npm ci`` inside an ``if`` (the shape of a real frontend
Dockerfile). Offline, after setup on an empty air-gapped engine, every step
is CACHED; after a source change each rebuilds with no network and runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from tests.integration.conftest import reset
from tests.integration.test_roundtrip import cli

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
PY_APP = 'import docopt, six\nprint("py", "{version}", docopt.__version__, six.__version__)\n'
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
NODE_APP = 'const pad = require("left-pad");\nconsole.log("node", "{version}", pad("x", 3, "-"));\n'
PACKAGE_JSON = '{"name": "node-svc", "version": "1.0.0", "private": true, "dependencies": {"left-pad": "1.3.0"}}\n'


def write_project(root: Path) -> Path:
    root.mkdir(parents=True)
    ca = f"ca_file: {CA}\n" if CA.is_file() else ""
    (root / "offline.yaml").write_text(
        f"project: deps\nversion: '1'\nnetwork: host\n{ca}services:\n  py: {{context: py, image: deps/py}}\n"
        f"  node: {{context: node, image: deps/node}}\n")
    py = root / "py"
    py.mkdir(parents=True)
    (py / "Dockerfile").write_text(PY_DOCKERFILE)
    (py / "app.py").write_text(PY_APP.format(version="v1"))
    (py / "requirements.txt").write_text(PY_REQUIREMENTS)
    node = root / "node"
    node.mkdir()
    (node / "Dockerfile").write_text(NODE_DOCKERFILE)
    (node / "index.js").write_text(NODE_APP.format(version="v1"))
    (node / "package.json").write_text(PACKAGE_JSON)
    # The lockfile is made here, by this machine's npm, never committed: it names the registry.
    subprocess.run(["npm", "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"],
                   cwd=node, check=True, capture_output=True, env={**os.environ, "NODE_EXTRA_CA_CERTS": str(CA)})
    assert (node / "package-lock.json").is_file()
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
    out = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 6 and cells[0] in ("py", "node"):
            out[cells[0]] = (int(cells[2]), int(cells[3]), cells[4])
    return out


def test_the_bundle_carries_each_steps_capture(deps_bundle: Path) -> None:
    import tarfile

    with tarfile.open(deps_bundle) as tar:
        names = tar.getnames()
    wheels = [n for n in names if n.startswith("files/pip/py-1/") and n.endswith(".whl")]
    assert any("/docopt-0.6.2-" in w for w in wheels), wheels  # built from the sdist, online
    assert any("/six-1.16.0-" in w for w in wheels), wheels
    assert any(n.startswith("files/npm/node-1/_cacache/content-v2/") for n in names)
    assert not any("/_logs/" in n for n in names)


@pytest.mark.parametrize("engine", ["offline", "legacy"])
def test_a_source_change_rebuilds_offline_and_runs(engines: dict[str, str], deps_bundle: Path, tmp_path: Path,
                                                   engine: str) -> None:
    reset(engine)
    host = engines[engine]
    project = offline_copy(tmp_path, deps_bundle)
    cli(project, host, "offline.setup")
    first = rows(cli(project, host, "offline.build").stdout)
    assert set(first) == {"py", "node"}
    for service, (steps, cached, status) in first.items():
        assert steps > 0 and cached == steps and status == "all cached", (service, first)

    (project / "py" / "app.py").write_text(PY_APP.format(version="v2"))
    (project / "node" / "index.js").write_text(NODE_APP.format(version="v2"))
    again = rows(cli(project, host, "offline.build").stdout)
    for service, (steps, cached, status) in again.items():
        assert status == "rebuilt offline" and cached < steps, (service, again)

    docker = DockerClient(host=host)
    assert docker.run("deps/py:1", remove=True, networks=["none"]).strip() == "py v2 0.6.2 1.16.0"
    assert docker.run("deps/node:1", remove=True, networks=["none"]).strip() == "node v2 --x"


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

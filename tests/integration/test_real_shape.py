"""A project in the shape of a real team's, through the whole loop with ``network: none``.

What the test projects before it never reached, and a new user's first run
did (issue 26): a Vite-like frontend (an npm builder stage and a runner
stage with a ``pip install``, built with ``target: runner`` while a later
``dev`` stage fetches what nothing serves), a ``uv sync`` service whose
``.dockerignore`` allow-lists its files (``*`` then ``!``), and a database
image that copies ``.sql`` files. Exported online with ``network: none``
(every capture build still fetches), set up on an empty air-gapped engine
whose copy of the project file names a ``ca_file`` that only the online
machine has, all CACHED; each service changed and rebuilt offline; and
``offline.verify --edits`` green there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from tests.integration.conftest import reset
from tests.integration.test_deps import offline_copy
from tests.integration.test_roundtrip import build_report, cli

pytestmark = pytest.mark.engine

CA = Path("/etc/ssl/certs/ca-certificates.crt")  # this machine's trust, which includes its TLS-inspecting proxy
SERVICES = ("web", "api", "db")
UV = "0.13.9"

WEB = """\
FROM debian:bookworm-slim AS deps
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM deps AS builder
COPY . .
RUN node build.js

FROM debian:bookworm-slim AS runner
RUN apt-get update \\
    && apt-get install -y --no-install-recommends python3 python3-venv
COPY requirements.txt /srv/requirements.txt
RUN python3 -m venv /venv && /venv/bin/pip install --no-cache-dir -r /srv/requirements.txt
COPY --from=builder /app/dist /srv/html
CMD ["sh", "-c", "cat /srv/html/index.html && /venv/bin/python -c 'import six; print(six.__version__)'"]

FROM builder AS dev
RUN npm install -g nodemon@3.1.0
"""
BUILD_JS = """\
const fs = require("fs");
const pad = require("left-pad");
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/index.html", pad(fs.readFileSync("src/main.txt", "utf8").trim(), 4, "*") + "\\n");
"""
PACKAGE_JSON = '{"name": "web", "version": "1.0.0", "private": true, "dependencies": {"left-pad": "1.3.0"}}\n'

API = f"""\
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir uv=={UV}
ENV UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/venv
WORKDIR /app
COPY . .
RUN /opt/uv/bin/uv sync --frozen --no-dev
CMD ["/venv/bin/python", "app.py"]
"""
PYPROJECT = """\
[project]
name = "api"
version = "1.0.0"
requires-python = ">=3.11"
dependencies = ["six==1.16.0", "docopt==0.6.2"]

[tool.uv]
package = false
"""
API_APP = 'import docopt, six\nprint("api", open("VERSION").read().strip(), docopt.__version__, six.__version__)\n'
# The allow-list shape: everything out, then the files the image needs back in. VERSION is re-included
# below a rule that hides it; NOTES.md stays out.
DOCKERIGNORE = "*\n!pyproject.toml\n!uv.lock\n!app.py\n*.md\n!VERSION\n"

DB = """\
FROM debian:bookworm-slim
ENV PGDATA=/var/lib/postgresql/data
ARG SCHEMA_VERSION=1
RUN mkdir -p /docker-entrypoint-initdb.d
COPY *.sql /docker-entrypoint-initdb.d/
COPY seed/ /docker-entrypoint-initdb.d/seed/
RUN cat /docker-entrypoint-initdb.d/*.sql /docker-entrypoint-initdb.d/seed/* > /schema.sql
CMD ["cat", "/schema.sql"]
"""


def _tool_env() -> dict[str, str]:
    return {**os.environ, "NODE_EXTRA_CA_CERTS": str(CA), "SSL_CERT_FILE": str(CA)}


def _uv(scratch: Path) -> Path:
    """uv on this machine, to write the lock file (never committed: it names the registry)."""
    target = scratch / "uv-tool"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), f"uv=={UV}"],
                   check=True, capture_output=True, env=_tool_env())
    return target / "bin" / "uv"


def write_project(root: Path, scratch: Path) -> Path:
    web = root / "frontend"
    (web / "src").mkdir(parents=True)
    (web / "Dockerfile").write_text(WEB)
    (web / "build.js").write_text(BUILD_JS)
    (web / "src" / "main.txt").write_text("v1\n")
    (web / "package.json").write_text(PACKAGE_JSON)
    (web / "requirements.txt").write_text("six==1.16.0\n")
    (web / ".dockerignore").write_text("node_modules\ndist\n")
    subprocess.run(["npm", "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"],
                   cwd=web, check=True, capture_output=True, env=_tool_env())

    api = root / "services" / "api"
    api.mkdir(parents=True)
    (api / "Dockerfile").write_text(API)
    (api / "pyproject.toml").write_text(PYPROJECT)
    (api / "app.py").write_text(API_APP)
    (api / "VERSION").write_text("v1\n")
    (api / "NOTES.md").write_text("not in the image\n")
    (api / ".dockerignore").write_text(DOCKERIGNORE)
    subprocess.run([str(_uv(scratch)), "lock"], cwd=api, check=True, capture_output=True, env=_tool_env())

    db = root / "db"
    (db / "seed").mkdir(parents=True)
    (db / "Dockerfile").write_text(DB)
    (db / "001-schema.sql").write_text("CREATE TABLE users (id int);\n")
    (db / "002-index.sql").write_text("CREATE INDEX users_id ON users (id);\n")
    (db / "seed" / "users.csv").write_text("1\n")

    (root / "offline.yaml").write_text(
        "project: shop\nversion: '1'\nnetwork: none\n"
        f"ca_file: {CA}\n"
        "services:\n"
        "  web: {context: frontend, image: shop/web, target: runner}\n"
        "  api: {context: services/api, image: shop/api}\n"
        "  db: {context: db, image: shop/db}\n")
    return root


@pytest.fixture(scope="session")
def shop_bundle(engines: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    scratch = tmp_path_factory.mktemp("shop-online")
    project = write_project(scratch / "shop", scratch)
    cli(project, engines["online"], "offline.export")
    (bundle,) = (project / "build-cache").glob("build-cache-*.tar")
    return bundle


def site_copy(tmp_path: Path, bundle: Path) -> Path:
    """The sources at the site, the bundle beside them; its project file names a CA the site does not have."""
    project = offline_copy(tmp_path, bundle)
    yaml = project / "offline.yaml"
    yaml.write_text(yaml.read_text().replace(f"ca_file: {CA}", "ca_file: certs/corporate-ca.pem"))
    assert not (project / "certs").exists()
    return project


def test_a_real_shaped_project_rebuilds_every_service_offline_after_a_change(
        engines: dict[str, str], shop_bundle: Path, tmp_path: Path) -> None:
    reset("offline")
    host = engines["offline"]
    project = site_copy(tmp_path, shop_bundle)
    cli(project, host, "offline.setup")
    first = build_report(cli(project, host, "offline.build").stdout, SERVICES)
    assert set(first) == set(SERVICES), first
    for service, (steps, cached, status) in first.items():
        assert steps > 0 and cached == steps and status == "all cached", (service, first)

    (project / "frontend" / "src" / "main.txt").write_text("v2\n")
    (project / "services" / "api" / "VERSION").write_text("v2\n")
    (project / "db" / "002-index.sql").write_text("CREATE INDEX users_by_id ON users (id);\n")
    again = build_report(cli(project, host, "offline.build").stdout, SERVICES)
    for service, (steps, cached, status) in again.items():
        assert status == "rebuilt offline" and 0 < cached < steps, (service, again)

    docker = DockerClient(host=host)
    assert docker.run("shop/web:1", remove=True, networks=["none"]).split() == ["**v2", "1.16.0"]
    assert docker.run("shop/api:1", remove=True, networks=["none"]).strip() == "api v2 0.6.2 1.16.0"
    schema = docker.run("shop/db:1", remove=True, networks=["none"])
    assert "users_by_id" in schema and "CREATE TABLE users" in schema
    # The allow-listed context: NOTES.md stayed out, VERSION came back in.
    listed = docker.run("shop/api:1", ["ls", "/app"], remove=True, networks=["none"]).split()
    assert "VERSION" in listed and "NOTES.md" not in listed


def test_the_edit_proof_passes_at_the_site_without_the_online_ca(engines: dict[str, str], shop_bundle: Path,
                                                                   tmp_path: Path) -> None:
    reset("offline")
    host = engines["offline"]
    project = site_copy(tmp_path, shop_bundle)
    proof = cli(project, host, "offline.verify", "--edits", check=False)
    assert proof.returncode == 0, proof.stdout + proof.stderr
    assert "is not a file" not in proof.stdout + proof.stderr
    for service in SERVICES:
        assert f"│ {service}" in proof.stdout and "failed" not in proof.stdout, proof.stdout


def test_the_dev_stage_after_the_target_was_never_captured(shop_bundle: Path) -> None:
    from offline_build import bundle, unpacking

    manifest, _ = unpacking.load_manifest(shop_bundle)
    names = [f.path for f in manifest.files]
    assert any(n.startswith("files/npm/web-1/") for n in names), names  # the deps stage's npm ci
    assert not any(n.startswith("files/npm/web-2/") for n in names)  # the dev stage's npm install -g
    assert any(n.startswith("files/pip/web-1/") for n in names)  # the runner's pip install
    assert any(n.startswith("files/uv/api-1/") for n in names)

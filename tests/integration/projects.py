"""The test projects shaped like real ones, written afresh for each run (their lockfiles name the registries,
so they are never committed): each a function that writes its sources and returns its project file's
``services:`` entries.

``shop`` is the suite's language-capture project, exported once per run (conftest's ``shop``) with
``network: none``: a Vite-like frontend built with ``target: runner`` (an npm builder stage, a runner stage
with a ``pip install``, a later ``dev`` stage that fetches what nothing serves), a ``uv sync`` service whose
``.dockerignore`` allow-lists its files, a database image that copies ``.sql`` files, and one service per
tool after ``COPY . .``: pip with an sdist-only package, ``uv pip install``, ``npm ci`` inside an ``if``,
yarn and pnpm from their lockfiles. Python, Node and yarn come from Debian through the APT capture; uv, pnpm
and the packages from PyPI and the npm registry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import CA

# --- one service per tool (the deps services) ---------------------------------------------------------

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

DEPS_SERVICES = ("py", "uv", "node", "yarn", "pnpm")
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


def deps_services(root: Path) -> str:
    """py, uv, node, yarn and pnpm under *root*; their ``services:`` entries (images deps/<name>)."""
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
    return "".join(f"  {s}: {{context: {s}, image: deps/{s}}}\n" for s in DEPS_SERVICES)


def write_deps(root: Path) -> Path:
    """The deps services alone, ``network: host``: the project benchmarks/deps.py and benchmarks/proof.py measure."""
    root.mkdir(parents=True)
    entries = deps_services(root)
    ca = f"ca_file: {CA}\n" if CA.is_file() else ""
    (root / "offline.yaml").write_text(f"project: deps\nversion: '1'\nnetwork: host\n{ca}services:\n{entries}")
    return root


# --- the real team's shape (web, api, db) -------------------------------------------------------------

SHOP_SERVICES = ("web", "api", "db")
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

WEB_PACKAGE_JSON = '{"name": "web", "version": "1.0.0", "private": true, "dependencies": {"left-pad": "1.3.0"}}\n'

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


def shop_services(root: Path, scratch: Path) -> str:
    """web, api and db under *root* (uv from PyPI into *scratch*, to write the lock file); their entries."""
    web = root / "frontend"
    (web / "src").mkdir(parents=True)
    (web / "Dockerfile").write_text(WEB)
    (web / "build.js").write_text(BUILD_JS)
    (web / "src" / "main.txt").write_text("v1\n")
    (web / "package.json").write_text(WEB_PACKAGE_JSON)
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

    return ("  web: {context: frontend, image: shop/web, target: runner}\n"
            "  api: {context: services/api, image: shop/api}\n"
            "  db: {context: db, image: shop/db}\n")


SERVICES = (*SHOP_SERVICES, *DEPS_SERVICES)


def write_shop(root: Path, scratch: Path) -> Path:
    """The whole shop: web, api, db and the deps services, ``network: none``, trusting this machine's CA."""
    entries = shop_services(root, scratch) + deps_services(root)
    (root / "offline.yaml").write_text(
        f"project: shop\nversion: '1'\nnetwork: none\nca_file: {CA}\nservices:\n{entries}")
    return root


def change_every_service(project: Path, version: str) -> None:
    """A developer's edit below each service's install step: every service must run steps again."""
    (project / "frontend" / "src" / "main.txt").write_text(f"{version}\n")
    (project / "services" / "api" / "VERSION").write_text(f"{version}\n")
    (project / "db" / "002-index.sql").write_text(f"CREATE INDEX users_by_id_{version} ON users (id);\n")
    change_deps_services(project, version)


def change_deps_services(project: Path, version: str) -> None:
    for tool in ("py", "uv"):
        (project / tool / "app.py").write_text(PY_APP.format(version=version, tool=tool))
    for tool in NODE_SERVICES:
        (project / tool / "index.js").write_text(NODE_APP.format(version=version, tool=tool))

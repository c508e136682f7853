"""The replay capture end to end: fetches no package capture serves, recorded online and replayed in the air gap.

A real-shaped service (builder and runner stages, ``target: runner``, a
``.dockerignore`` that re-includes a file, ``network: none``) fetches in the
ways the seed's own project does: ``curl`` of a model, a redirect, ``git
clone`` of a companion repository over smart HTTP, and a Python script
(``urlopen``, a gzip-encoded answer) listed under ``replay:``. The
"internet" is an HTTPS server on the host's loopback (tests/integration/upstream.py);
every command of the site runs inside the harness's air gap
(``ip netns exec``), where that server does not exist, so a build there
succeeds only if the replay proxy serves it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from tests.integration.harness import (
    CLI,
    build_report,
    bundle_in,
    carry,
    cli,
    in_airgap,
    reset,
)
from tests.integration.upstream import Upstream, make_repo, put_file, upstream

pytestmark = pytest.mark.engine

MODEL = os.urandom(2_000_000)  # not compressible: a proxy that re-encoded it would show
FONT = b"font bytes v1\n"
DATA = b"corpus line\n" * 5000
DOCKERFILE = """\
FROM debian:bookworm-slim AS builder
RUN apt-get update && apt-get install -y --no-install-recommends curl git python3
WORKDIR /src
COPY . .
RUN curl -fsS {url}/files/model.bin -o /model.bin && curl -fsSL {url}/redirect/font.txt -o /font.txt \\
    && git clone -q {repo} /companion
RUN python3 fetch.py {url}/gzip/data.txt /data.txt
RUN python3 -c "import urllib.request; urllib.request.urlretrieve('{url}/chunked/font.txt', '/chunked.txt')"
RUN cat main.txt > /version

FROM debian:bookworm-slim AS runner
COPY --from=builder /model.bin /font.txt /data.txt /chunked.txt /version /
COPY --from=builder /companion /companion
CMD ["sh", "-c", "sha256sum /model.bin /font.txt /data.txt /chunked.txt /companion/README && cat /version"]
"""
FETCH_LINE = 7  # the RUN that runs fetch.py: no lint rule sees a script's download, so the project lists it
# poetry from the package registry this machine reaches: its lock step before the source, its install after.
POETRY = """\
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv
RUN python3 -m venv /opt/poetry && /opt/poetry/bin/pip install poetry==2.5.1
ENV POETRY_VIRTUALENVS_IN_PROJECT=true
WORKDIR /app
COPY pyproject.toml ./
RUN /opt/poetry/bin/poetry lock
COPY . .
RUN /opt/poetry/bin/poetry install --no-root --no-interaction
CMD ["/app/.venv/bin/python", "-c", "import six; print(six.__version__, open('/app/main.txt').read().strip())"]
"""
PYPROJECT = """\
[project]
name = "app"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["six==1.16.0"]
"""
FETCH = """\
import gzip, sys, urllib.request
with urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers={"Accept-Encoding": "gzip"})) as r:
    body = r.read()
    body = gzip.decompress(body) if r.headers.get("Content-Encoding") == "gzip" else body
open(sys.argv[2], "wb").write(body)
"""
IMAGE = "replay/app:1"
SERVICES = ("app", "py")


@pytest.fixture(scope="module")
def internet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with upstream(tmp_path_factory.mktemp("upstream")) as up:
        put_file(up, "model.bin", MODEL)
        put_file(up, "font.txt", FONT)
        put_file(up, "data.txt", DATA)
        put_file(up, "extra.bin", b"added later\n")
        make_repo(up, "companion", {"README": "companion repository\n"})
        yield up


def write_project(root: Path, up: Upstream, network: str = "none", poetry: bool = True) -> Path:
    app = root / "app"
    app.mkdir(parents=True)
    (app / "Dockerfile").write_text(DOCKERFILE.format(url=up.url, repo=f"{up.url}/git/companion.git"))
    (app / "fetch.py").write_text(FETCH)
    (app / "main.txt").write_text("v1\n")
    (app / "notes.md").write_text("left out of the context\n")
    (app / ".dockerignore").write_text("*.md\n*.txt\n!main.txt\n")
    # What the builds trust upstream: this machine's CAs (its registry proxy) and the stand-in's.
    trust = root / "trusted.pem"
    trust.write_bytes(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes() + up.ca_file.read_bytes())
    services = f"  app: {{context: app, image: replay/app, target: runner, replay: [{FETCH_LINE}]}}\n"
    if poetry:
        (root / "py").mkdir()
        (root / "py" / "Dockerfile").write_text(POETRY)
        (root / "py" / "pyproject.toml").write_text(PYPROJECT)
        (root / "py" / "main.txt").write_text("v1\n")
        services += "  py: {context: py, image: replay/py}\n"
    (root / "offline.yaml").write_text(
        f"project: replay\nversion: '1'\nnetwork: {network}\nca_file: trusted.pem\nservices:\n{services}")
    return root


def site_checkout(tmp_path: Path, project: Path) -> Path:
    """A fresh checkout at the site: the sources and the bundle, no capture folder of the export's."""
    return carry(bundle_in(project), tmp_path / "site")


def expected_output() -> str:
    import hashlib

    sums = [hashlib.sha256(b).hexdigest() for b in (MODEL, FONT, DATA, FONT, b"companion repository\n")]
    names = ("/model.bin", "/font.txt", "/data.txt", "/chunked.txt", "/companion/README")
    return "\n".join(f"{s}  {n}" for s, n in zip(sums, names)) + "\n"


@pytest.fixture(scope="module")
def exported(engines: dict[str, str], internet: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = write_project(tmp_path_factory.mktemp("online") / "replay", internet)
    before = len(internet.requests)
    cli(project, engines["online"], "offline.export")
    fetched = internet.requests[before:]
    # Recorded once by the capture build; the export's own build was served by the replay proxy.
    assert fetched.count("GET /files/model.bin") == 1, fetched
    assert fetched.count("GET /redirect/font.txt") == 1 and fetched.count("GET /gzip/data.txt") == 1, fetched
    assert fetched.count("GET /chunked/font.txt") == 1, fetched
    assert any(line.startswith("POST /git/companion.git/git-upload-pack") for line in fetched), fetched
    return project


def test_the_bundle_carries_the_recording_and_the_site_rebuilds_from_it(
        engines: dict[str, str], internet: Upstream, exported: Path, tmp_path: Path) -> None:
    bundle = bundle_in(exported)
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        recorded = json.loads(tar.extractfile("files/replay/app/exchanges.json").read())  # type: ignore[union-attr]
    urls = {e["url"] for e in recorded["exchanges"]}
    assert f"{internet.url}/files/model.bin" in urls and f"{internet.url}/gzip/data.txt" in urls, urls
    import hashlib

    assert f"files/replay/app/bodies/{hashlib.sha256(MODEL).hexdigest()}" in names

    host = engines["offline"]
    reset("offline")
    site = site_checkout(tmp_path, exported)
    before = len(internet.requests)
    in_airgap(site, host, "offline.setup")
    diagnosed = in_airgap(site, host, "offline.diagnose", "--quick", check=False).stdout
    assert re.search(r"app: \d+ recorded request\(s\)", diagnosed) and re.search(r"py: \d+ recorded", diagnosed), \
        diagnosed
    built = in_airgap(site, host, "offline.build")
    for service, (steps, cached, status) in build_report(built.stdout, SERVICES).items():
        assert cached == steps and status == "all cached", (service, built.stdout)
    docker = DockerClient(host=host)
    assert docker.run(IMAGE, remove=True, networks=["none"]).strip() == expected_output() + "v1"
    assert docker.run("replay/py:1", remove=True, networks=["none"]).strip() == "1.16.0 v1"

    # A developer at the site edits the source: every step after COPY runs again, the fetches from the recording.
    for service in SERVICES:
        (site / service / "main.txt").write_text("v2\n")
    rebuilt = in_airgap(site, host, "offline.build")
    report = build_report(rebuilt.stdout, SERVICES)
    assert {s: r[2] for s, r in report.items()} == dict.fromkeys(SERVICES, "rebuilt offline"), rebuilt.stdout
    assert docker.run(IMAGE, remove=True, networks=["none"]).strip() == expected_output() + "v2"
    assert docker.run("replay/py:1", remove=True, networks=["none"]).strip() == "1.16.0 v2"
    assert internet.requests[before:] == []  # nothing reached upstream from the site

    # A request the export never made: named, with the way out, and nothing forwarded.
    dockerfile = site / "app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("/files/model.bin -o", "/files/extra.bin -o"))
    failed = in_airgap(site, host, "offline.build", check=False)
    assert failed.returncode != 0, failed.stdout
    assert f"GET {internet.url}/files/extra.bin was not recorded at export: the step's requests changed since" \
        in failed.stderr, failed.stderr
    assert "fix: export again (offline.export --since <the last bundle>" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr and internet.requests[before:] == []

    # The same request from a step that goes on after it (curl without -f): the build still fails, named.
    dockerfile.write_text(dockerfile.read_text().replace("curl -fsS ", "curl -sS "))
    went_on = in_airgap(site, host, "offline.build", check=False)
    assert went_on.returncode != 0, went_on.stdout
    assert "the build finished, but a replayed step was answered 502 (not recorded) and went on" in went_on.stderr
    assert f"GET {internet.url}/files/extra.bin was not recorded at export" in went_on.stderr, went_on.stderr


def test_a_site_process_outside_the_engines_network_is_told_so(engines: dict[str, str], exported: Path,
                                                                tmp_path: Path) -> None:
    """The replay proxy listens where offline-build runs: outside the engine's namespace, the step cannot reach it."""
    host = engines["offline"]
    site = site_checkout(tmp_path, exported)
    in_airgap(site, host, "offline.setup")
    (site / "app" / "main.txt").write_text("edited\n")  # so the replayed step runs
    failed = cli(site, host, "offline.build", check=False)  # from the host's namespace
    assert failed.returncode != 0, failed.stdout
    assert "could not reach offline-build's proxy on 127.0.0.1: the engine's network is not this process's" \
        in failed.stderr, failed.stderr
    assert "fix: run offline-build where the engine's network is" in failed.stderr and "Traceback" not in failed.stderr


def test_the_edit_proof_passes_and_the_sbom_lists_each_recorded_download(
        engines: dict[str, str], internet: Upstream, exported: Path, tmp_path: Path) -> None:
    host = engines["offline"]
    reset("offline")
    site = site_checkout(tmp_path, exported)
    in_airgap(site, host, "offline.setup")
    proof = in_airgap(site, host, "offline.verify", "--edits")
    flat = " ".join(proof.stdout.split())
    assert "rebuilt offline" in flat and "air-tight (measured: loopback only)" in flat, proof.stdout

    sbom = subprocess.run([*CLI, "offline.sbom", "--output", "sbom.json"], cwd=site, capture_output=True,
                          text=True, check=False)
    assert sbom.returncode == 0, sbom.stderr
    components = json.loads((site / "sbom.json").read_text())["components"]
    generic = {c["purl"] for c in components if c.get("purl", "").startswith("pkg:generic/")}
    assert any("model.bin" in p and "download_url" in p for p in generic), generic


def test_a_url_that_changes_every_run_is_named_at_export(engines: dict[str, str], internet: Upstream,
                                                        tmp_path: Path) -> None:
    project = write_project(tmp_path / "stamp", internet, network="host", poetry=False)
    dockerfile = project / "app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("/files/model.bin -o", '/files/model.bin?t="$(date +%s%N)" -o'))
    failed = cli(project, engines["online"], "offline.export", check=False)
    assert failed.returncode != 0, failed.stdout
    assert f"GET {internet.url}/files/model.bin?t=" in failed.stderr, failed.stderr
    assert "its URL or body changes every run" in failed.stderr and "Traceback" not in failed.stderr, failed.stderr


def test_an_export_on_a_warm_engine_records_every_replayed_step_again(
        engines: dict[str, str], internet: Upstream, exported: Path) -> None:
    """Nothing changed since the last export: BuildKit has every step cached, yet the recording must hold what
    the steps fetch (a cached step would fetch nothing through the proxy, and the bundle would carry none of it)."""
    before = len(internet.requests)
    cli(exported, engines["online"], "offline.export")
    assert internet.requests[before:].count("GET /files/model.bin") == 1, internet.requests[before:]
    bundle = bundle_in(exported)
    with tarfile.open(bundle) as tar:
        recorded = json.loads(tar.extractfile("files/replay/app/exchanges.json").read())  # type: ignore[union-attr]
    assert f"{internet.url}/files/model.bin" in {e["url"] for e in recorded["exchanges"]}, recorded

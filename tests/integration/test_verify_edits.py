"""Prove the edit loop before the trip: ``offline.verify --edits`` on an air-gapped engine.

Two services after ``COPY . .``: ``app`` installs a Debian package there (the
APT capture serves it offline), ``fetch`` downloads a file at build time
from a server the online machine reaches (one on loopback here) and no
capture covers. A plain verify passes (all CACHED: nothing changed); the
edit proof rebuilds each as if its context had changed and fails ``fetch``,
naming the step, its output and the lint rule; once the file is part of the
source (the download gone), the proof passes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import NETNS, cli, reset, serve_folder

pytestmark = pytest.mark.engine

SERVICES = ("app", "fetch")
TOOLS = "RUN apt-get update && apt-get install -y --no-install-recommends curl\n"
APP = f"""\
FROM debian:bookworm-slim
{TOOLS}WORKDIR /app
COPY . .
RUN apt-get update && apt-get install -y --no-install-recommends jq && jq --version > /jq-version
CMD ["cat", "/jq-version"]
"""
FETCH = f"""\
FROM debian:bookworm-slim
{TOOLS}WORKDIR /app
COPY . .
RUN curl -fsS {{url}}/model.bin -o /model.bin
CMD ["cat", "/model.bin"]
"""
FIXED = f"""\
FROM debian:bookworm-slim
{TOOLS}WORKDIR /app
COPY . .
RUN cp model.bin /model.bin
CMD ["cat", "/model.bin"]
"""
MODEL = b"weights v1\n"


@pytest.fixture(scope="session")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("models")
    (root / "model.bin").write_bytes(MODEL)
    with serve_folder(root) as url:
        yield url


@pytest.fixture(scope="module")
def exported(engines: dict[str, str], model_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project exported online, once: each test works on its own copy (sources, bundle and store)."""
    project = write_project(tmp_path_factory.mktemp("proof-online") / "proof", model_server)
    cli(project, engines["online"], "offline.export")
    return project


def write_project(root: Path, url: str) -> Path:
    for name, dockerfile in (("app", APP), ("fetch", FETCH.format(url=url))):
        (root / name).mkdir(parents=True)
        (root / name / "Dockerfile").write_text(dockerfile)
        (root / name / "main.txt").write_text("v1\n")
    (root / "offline.yaml").write_text("project: proof\nversion: '1'\nnetwork: host\nservices:\n"
                                       "  app: {context: app, image: proof/app}\n"
                                       "  fetch: {context: fetch, image: proof/fetch, replay: false}\n")
    return root


def verify_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """service -> (result, detail) from offline.verify's table (details may wrap onto the next lines)."""
    rows: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        line = line.strip()
        cells = [c.strip() for c in line[1:-1].split("│")] if line.startswith("│") else []
        if len(cells) != 5:
            continue
        if cells[0] in SERVICES:
            current = cells[0]
            rows[current] = [cells[1], cells[4]]
        elif current and not cells[0] and cells[4]:
            rows[current][1] += " " + cells[4]
    return {s: (r[0], r[1]) for s, r in rows.items()}


def test_the_edit_proof_finds_the_download_no_capture_covers(engines: dict[str, str], model_server: str,
                                                              exported: Path, tmp_path: Path) -> None:
    project = shutil.copytree(exported, tmp_path / "proof", symlinks=True)

    reset("offline")
    plain = cli(project, engines["offline"], "offline.verify")
    assert {s: r for s, (r, _) in verify_rows(plain.stdout).items()} == dict.fromkeys(SERVICES, "all cached")

    proof = cli(project, engines["offline"], "offline.verify", "--edits", check=False)
    assert proof.returncode == 1, proof.stdout + proof.stderr
    rows = verify_rows(proof.stdout)
    result, detail = rows["app"]
    assert result == "rebuilt offline", rows
    # The step after the copy ran (APT served it), the three above it came from the cache.
    assert detail.startswith("ran again offline: [stage-0 4/5] RUN ") and "apt-get install -y" in detail, detail
    assert detail.endswith("; 3 step(s) from the cache"), detail
    result, detail = rows["fetch"]
    assert result == "failed", rows
    assert f"step '[stage-0 4/5] RUN curl -fsS {model_server}/model.bin -o /model.bin' failed" in detail, detail
    assert "Failed to connect to 127.0.0.1" in detail  # the step's own output
    assert "it ran because the build context changed (offline.verify --edits)" in detail, detail
    assert "likely cause: downloads a file at build time (curl; offline.lint rule 'download')" in detail, detail
    assert "fix: the replay capture serves curl unless it is switched off (replay: false)" in detail, detail
    diagnosed = cli(project, engines["online"], "offline.diagnose", "--quick", check=False).stdout
    assert "offline.verify --edits failed" in diagnosed, diagnosed

    # A fix: the file travels with the source, the step no longer downloads.
    (project / "fetch" / "model.bin").write_bytes(MODEL)
    (project / "fetch" / "Dockerfile").write_text(FIXED)
    reset("offline")
    # Exported and proven in one command, as a team can make it part of every export.
    proof = cli(project, engines["online"], "offline.export", "--verify-edits", "--verify-host", engines["offline"])
    assert "offline.export" in proof.stdout and "offline.verify --edits" in proof.stdout
    rows = verify_rows(proof.stdout)
    assert {s: r for s, (r, _) in rows.items()} == dict.fromkeys(SERVICES, "rebuilt offline"), rows
    assert "RUN cp model.bin /model.bin" in rows["fetch"][1]
    diagnosed = cli(project, engines["online"], "offline.diagnose", "--quick", check=False).stdout
    assert "edit loop proven" in diagnosed, diagnosed


REACH = """\
FROM debian:bookworm-slim
{tools}WORKDIR /app
COPY . .
RUN curl -fsS {url}/status -o /status || echo "no answer from {url}" > /status
CMD ["cat", "/status"]
"""


@pytest.fixture()
def server_in_the_air_gap() -> Iterator[str]:
    """An HTTP server inside the air-gapped engines' network namespace, on its loopback: a host a build
    there can reach, as a proxy or a mirror left reachable at a site would be."""
    code = ("import http.server, sys\n"
            "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n"
            "print(s.server_address[1], flush=True)\ns.serve_forever()\n")
    proc = subprocess.Popen(["ip", "netns", "exec", NETNS, sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()  # the server prints its port once it listens
    try:
        assert port.isdigit(), "the server in the air gap did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


def test_verify_refuses_the_export_engine_that_reaches_the_server(engines: dict[str, str], model_server: str,
                                                                  exported: Path, tmp_path: Path) -> None:
    project = shutil.copytree(exported, tmp_path / "proof", symlinks=True)
    refused = cli(project, engines["online"], "offline.verify", "--edits", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    port = model_server.rsplit(":", 1)[1]
    assert "the engine is not air-tight" in refused.stderr and f"reached 127.0.0.1:{port} (Dockerfile:5 (fetch))" \
        in refused.stderr, refused.stderr
    assert "fix: verify on an air-gapped engine" in refused.stderr and "Traceback" not in refused.stderr
    diagnosed = cli(project, engines["online"], "offline.diagnose", "--quick", check=False).stdout
    assert "edit loop proven" not in diagnosed and "not proven by offline.verify" in diagnosed, diagnosed


def test_a_reachable_server_is_proven_only_with_the_override_and_never_as_proof(
        engines: dict[str, str], server_in_the_air_gap: str, tmp_path: Path) -> None:
    project = tmp_path / "reach"
    (project / "app").mkdir(parents=True)
    (project / "app" / "Dockerfile").write_text(REACH.format(tools=TOOLS, url=server_in_the_air_gap))
    (project / "offline.yaml").write_text("project: reach\nversion: '1'\nnetwork: host\nservices:\n"
                                          "  app: {context: app, image: reach/app, replay: false}\n")
    cli(project, engines["online"], "offline.export")
    reset("offline")
    host = engines["offline"]
    refused = cli(project, host, "offline.verify", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"reached {server_in_the_air_gap.removeprefix('http://')} (Dockerfile:5 (app))" in refused.stderr

    anyway = cli(project, host, "offline.verify", "--allow-network")
    assert "engine: NOT air-tight (measured), empty build cache (measured)" in " ".join(anyway.stdout.split())
    diagnosed = cli(project, engines["online"], "offline.diagnose", "--quick", check=False).stdout
    assert "builds all cached" not in diagnosed and "edit loop proven" not in diagnosed, diagnosed

    # The engine is left as verify found it: empty again, so the next proof is not refused for what this one built.
    cli(project, host, "offline.setup")
    cli(project, host, "offline.build")  # the site builds: now it holds the project's cache and image
    crowded = cli(project, host, "offline.verify", "--allow-network", check=False)
    assert crowded.returncode == 2 and "the engine is not empty" in crowded.stderr, crowded.stderr
    assert "reach/app:1" in crowded.stderr and "--prune-build-cache" in crowded.stderr
    pruned = cli(project, host, "offline.verify", "--allow-network", "--prune-build-cache")
    assert "empty build cache (measured)" in " ".join(pruned.stdout.split()), pruned.stdout

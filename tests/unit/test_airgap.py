"""What offline.verify measures before it may call a build a proof: air-tightness and emptiness (no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from offline_build import verify as verifying
from offline_build.airgap import (
    Emptiness,
    Target,
    apt_targets,
    could_serve,
    emptiness_of,
    judge,
    probe_dockerfile,
    project_images,
    size_bytes,
    targets,
    url_targets,
)
from offline_build.build import BuildOutcome
from offline_build.config import load
from offline_build.errors import StepError

SERVER = Target("127.0.0.1", 8123, "Dockerfile:3 (fetch)")
MIRROR = Target("mirror.example.invalid", 80, "an APT source the export captured")


def test_urls_name_their_hosts_with_the_schemes_port() -> None:
    text = ("RUN curl -fsS https://user:secret@files.example.invalid/m.bin -o m && "
            "git clone http://127.0.0.1:8123/repo.git && wget ftp://[::1]/x")
    assert [(t.host, t.port) for t in url_targets(text, "x")] == [
        ("files.example.invalid", 443), ("127.0.0.1", 8123), ("::1", 21)]


def test_apt_sources_come_from_the_captured_list_names(tmp_path: Path) -> None:
    lists = tmp_path / "debian_bookworm-slim" / "linux_amd64" / "lists"
    lists.mkdir(parents=True)
    for name in ("mirror.example.invalid_debian_dists_bookworm_InRelease",
                 "local.example.invalid%3a8080_debian_dists_bookworm_Release",
                 "mirror.example.invalid_debian_dists_bookworm_main_binary-amd64_Packages.lz4", "lock"):
        (lists / name).write_text("x")
    assert sorted((t.host, t.port) for t in apt_targets(tmp_path)) == [
        ("local.example.invalid", 8080), ("mirror.example.invalid", 80), ("mirror.example.invalid", 443)]


def test_the_project_names_its_run_steps_resources_and_apt_sources_once(tmp_path: Path) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\nRUN curl http://127.0.0.1:8123/a\nRUN curl http://127.0.0.1:8123/b\n")
    (tmp_path / "offline.yaml").write_text(
        "project: p\nservices:\n  svc: {context: svc}\nresources:\n"
        "  - {name: model, url: 'https://models.example.invalid/m.bin', dest: m.bin, sha256: " + "0" * 64 + "}\n")
    found = targets(load(tmp_path / "offline.yaml", environ={}), tmp_path / "no-apt")
    assert [(t.address, t.why) for t in found] == [("127.0.0.1:8123", "Dockerfile:2 (svc)"),
                                                    ("models.example.invalid:443", "resource model")]


def test_the_probe_runs_a_script_from_its_context_and_copies_its_report_out() -> None:
    text = probe_dockerfile("debian:bookworm-slim", [SERVER, MIRROR])
    assert text.startswith("FROM debian:bookworm-slim AS probe\nCOPY probe.sh ")
    assert "TARGETS='127.0.0.1:8123 mirror.example.invalid:80' sh /offline-build-probe.sh" in text
    assert text.endswith("FROM scratch\nCOPY --from=probe /offline-build-probe.txt /\n")


@pytest.mark.parametrize(("report", "result"), [
    # An air-gapped engine: loopback only, nothing answered.
    ("iface lo\nclosed 127.0.0.1:8123\nclosed mirror.example.invalid:80\n", "air-tight"),
    # The online engine, with the server up: refused, named.
    ("iface eth0\niface lo\nreached 127.0.0.1:8123\nclosed mirror.example.invalid:80\n", "reached"),
    # Loopback only, but a server on it answered (one inside the air gap): still reached.
    ("iface lo\nreached 127.0.0.1:8123\nclosed mirror.example.invalid:80\n", "reached"),
    # A network, and every host tried and closed: air-tight for what the export reached.
    ("iface eth0\niface lo\nclosed 127.0.0.1:8123\nclosed mirror.example.invalid:80\n", "air-tight"),
    # A network, and no tool to connect with: a missing tool is never an air gap.
    ("iface eth0\niface lo\nuntested 127.0.0.1:8123\nuntested mirror.example.invalid:80\n", "not measured"),
    # A network, and the probe tried only some: not measured.
    ("iface eth0\niface lo\nclosed 127.0.0.1:8123\n", "not measured"),
    # The probe said nothing at all.
    ("", "not measured"),
    # A proxy in the steps' environment: a step reaches through it what a direct connect does not.
    ("iface eth0\niface lo\nproxy HTTPS_PROXY=http://proxy.example.invalid:3128\nclosed 127.0.0.1:8123\n"
     "closed mirror.example.invalid:80\n", "not measured"),
])
def test_air_tightness_is_what_the_probe_saw(report: str, result: str) -> None:
    judged = judge(report, (SERVER, MIRROR), "host")
    assert judged.result == result, judged
    if result == "reached":
        assert judged.reached == (SERVER,)
        assert "reached 127.0.0.1:8123 (Dockerfile:3 (fetch))" in judged.detail
    assert "--network host" in judged.detail


def test_the_title_says_no_more_than_was_measured() -> None:
    gapped = judge("iface lo\nclosed 127.0.0.1:8123\nclosed mirror.example.invalid:80\n", (SERVER, MIRROR), "host")
    assert gapped.title() == "air-tight (measured: loopback only)"
    tried = judge("iface eth0\niface lo\nclosed 127.0.0.1:8123\nclosed mirror.example.invalid:80\n",
                  (SERVER, MIRROR), "host")
    assert tried.result == "air-tight" and tried.title().startswith("no named host reachable")
    assert "hosts no file names were not tried" in tried.detail
    assert Emptiness(0, 0, (), "the build cache of builder 'b'").title() == "build cache not measured"
    assert not Emptiness(0, 0, (), "the build cache of builder 'b'").empty


def test_a_network_and_no_host_to_try_is_not_measured() -> None:
    assert judge("iface eth0\niface lo\n", (), "host").result == "not measured"
    assert judge("iface lo\n", (), "none").result == "air-tight"


def test_emptiness_counts_what_could_serve_a_step_and_this_projects_images(tmp_path: Path) -> None:
    assert not could_serve({"CacheType": "source.local", "Description": "local source for context"})
    assert not could_serve({"CacheType": "regular", "Description": "pulled from docker.io/library/probe@sha256:ab"})
    assert could_serve({"CacheType": "regular", "Description": "mount / from exec /bin/sh -c pip install x"})
    assert could_serve({"CacheType": "regular", "Description": "pulled from docker.io/library/debian@sha256:ab"})
    assert size_bytes("10.24kB") == 10240 and size_bytes("1.5GB") == 1_500_000_000 and size_bytes("?") == 0
    (tmp_path / "offline.yaml").write_text("project: shop\nservices:\n  api: {context: .}\n")
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    project = load(tmp_path / "offline.yaml", environ={})
    tags = ["shop/api:1", "shop-debian-apt:1", "debian:bookworm-slim", "shopping/api:1", "shop-api-classic:1",
            "shop-api-captures:1", "shop-admin-api:latest", "shop-web-classic:1"]
    assert project_images(project, tags, {"api": "shop/api:1"}) == (
        "shop-api-captures:1", "shop-api-classic:1", "shop-debian-apt:1", "shop/api:1")  # not another team's
    held = Emptiness(2, 5_000_000, ("shop/api:1",))
    assert not held.empty and held.describe() == "2 build cache record(s), 5.0 MB; this project's image(s) shop/api:1"
    assert Emptiness(0, 0, ()).empty


def test_a_named_builders_cache_is_never_judged_empty(tmp_path: Path) -> None:
    # docker system df sees only the engine's own builder: no record there says nothing of a named builder's.
    (tmp_path / "offline.yaml").write_text("project: shop\nservices:\n  api: {context: .}\n"
                                           "builder:\n  name: ob\n  driver: docker-container\n")
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    named = emptiness_of(load(tmp_path / "offline.yaml", environ={}), [], [], {"api": "shop/api:1"})
    assert not named.empty and named.title() == "build cache not measured"
    assert named.as_record()["result"] == "not measured" and "'ob'" in named.describe()


def _project(tmp_path: Path):  # noqa: ANN202
    (tmp_path / "offline.yaml").write_text("project: p\nservices:\n  svc: {context: .}\n")
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\nRUN true\n")
    return load(tmp_path / "offline.yaml", environ={})


@pytest.mark.parametrize(("outcome", "status"), [
    (BuildOutcome("svc", "p/svc:1", 3, 3, 1.0, ()), "all cached"),
    (BuildOutcome("svc", "p/svc:1", 3, 1, 1.0, ("[2/3] RUN true",)), "rebuilt offline"),
    (StepError("build svc (offline)", "process did not complete"), "failed"),
])
def test_a_proof_says_what_the_build_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         outcome: object, status: str) -> None:
    def build(*_: object, **__: object) -> list[BuildOutcome]:
        if isinstance(outcome, Exception):
            raise outcome
        return [outcome]  # type: ignore[list-item]

    monkeypatch.setattr(verifying, "build", build)
    got = verifying._verify_one(_project(tmp_path), "svc", None, None, None)  # type: ignore[arg-type]
    assert got.status == status
    if status == "failed":
        assert "process did not complete" in got.detail


def test_the_probe_script_connects_and_never_calls_a_missing_tool_closed(tmp_path: Path) -> None:
    """The script itself, run here by sh against loopback: one listening port, one closed."""
    import socket
    import subprocess

    from offline_build.airgap import _PROBE

    script = tmp_path / "probe.sh"
    script.write_text(_PROBE)
    with socket.socket() as listening, socket.socket() as unused:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        unused.bind(("127.0.0.1", 0))  # bound, never listening: a connect is refused
        up, down = listening.getsockname()[1], unused.getsockname()[1]
        env = {"PATH": "/usr/bin:/bin", "TARGETS": f"127.0.0.1:{up} 127.0.0.1:{down}"}
        out = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, check=True).stdout
        assert f"reached 127.0.0.1:{up}" in out and f"closed 127.0.0.1:{down}" in out, out
        bare = subprocess.run(["/bin/sh", str(script)], env={**env, "PATH": str(tmp_path)}, capture_output=True,
                              text=True, check=True).stdout
    assert f"untested 127.0.0.1:{up}" in bare and "closed" not in bare, bare


def test_verify_dry_run_shows_the_checks_setup_and_builds_and_changes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from python_on_whales import DockerClient
    from rich.console import Console

    from tests.unit.helpers import pack, project, snapshot

    proj = project(tmp_path)
    (tmp_path / "svc" / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\nCOPY . .\nRUN curl -fsS https://files.example.invalid/m.bin -o /m\n")
    archive = pack(proj)
    before = snapshot(tmp_path)
    # No engine is asked (the unit suite fails any engine call): a dry run only describes.
    verifying.dry_run(proj, archive, DockerClient(), Console(width=200), edits=True)
    out = " ".join(capsys.readouterr().out.split())
    assert "the engine must be empty: no build cache record, none of this project's images (svc:latest)" in out
    assert "--network default, in debian:bookworm-slim" in out
    assert "files.example.invalid:443 (Dockerfile:3 (svc))" in out and "refused, nothing recorded, if one answers" in out
    assert "docker buildx build" in out and "--tag svc:latest" in out and "OFFLINE_BUILD_EDIT" in out
    assert "verify-<scratch>/apt-lists" in out  # the scratch store's, never the project's own
    assert snapshot(tmp_path) == before

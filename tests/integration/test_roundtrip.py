"""End to end on the harness's real engines: export online, carry, set up and build offline.

The ``offline``, ``legacy`` and ``old`` engines run in a network namespace
with nothing but loopback: a real air gap, whatever ``--network`` a build
asks for. ``online`` reaches the Debian mirror.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from offline_build.store import Layout
from tests.integration.conftest import Demo
from tests.integration.harness import build_report, carry, cli, copy_demo, reset

pytestmark = pytest.mark.engine


def test_a_service_builds_on_the_online_engine_and_runs(engines: dict[str, str], tmp_path: Path) -> None:
    project = copy_demo(tmp_path / "demo")
    cli(project, engines["online"], "web.offline-build", "--version", "it-1")
    docker = DockerClient(host=engines["online"])
    assert docker.image.exists("demo/web:it-1")
    out = docker.run("demo/web:it-1", remove=True, networks=["none"])
    assert out.strip() == "web: serving 18 bytes"


def test_round_trip_into_an_empty_offline_engine(engines: dict[str, str], demo: Demo, tmp_path: Path) -> None:
    reset("offline")
    host = engines["offline"]
    project = carry(demo.bundle, tmp_path / "demo")

    before = cli(project, host, "offline.diagnose", check=False)
    assert before.returncode == 1
    assert "run offline.setup" in before.stdout

    setup = cli(project, host, "offline.setup")
    assert "oci-layout contexts" in setup.stdout  # nothing had to be docker-loaded
    assert cli(project, host, "offline.diagnose").returncode == 0

    built = cli(project, host, "offline.build")
    rows = build_report(built.stdout)
    assert set(rows) == {"backend", "worker", "web"}
    for service, (steps, cached, status) in rows.items():
        assert steps > 0 and cached == steps and status == "all cached", (service, rows)

    docker = DockerClient(host=host)
    assert docker.run("demo/backend:1.0.0", remove=True, networks=["none"]).strip() == '"demo backend"'
    assert docker.run("demo/worker:1.0.0", remove=True, networks=["none"]).strip() == "worker: hello from the worker"
    assert docker.run("demo/web:1.0.0", remove=True, networks=["none"]).strip() == "web: serving 18 bytes"


def test_the_offline_engine_really_has_no_network(engines: dict[str, str], demo: Demo, tmp_path: Path) -> None:
    """A step that is not in the bundle's cache fails there: the round trip proves something."""
    project = carry(demo.bundle, tmp_path / "demo")
    cli(project, engines["offline"], "offline.setup")
    dockerfile = project / "services" / "backend" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("jq", "jq curl"))
    out = cli(project, engines["offline"], "backend.offline-build", check=False)
    assert out.returncode == 1
    assert "build backend (offline)" in out.stderr
    # The failure is the network's: apt had to fetch curl, and no name resolves in the air gap.
    assert "Temporary failure resolving" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_same_bundle_on_the_legacy_engine_loads_bases_and_builds_from_cache(
        engines: dict[str, str], demo: Demo, tmp_path: Path) -> None:
    reset("legacy")
    host = engines["legacy"]
    project = carry(demo.bundle, tmp_path / "demo")
    setup = cli(project, host, "offline.setup")
    assert "loaded into the engine" in setup.stdout
    assert "debian:bookworm-slim" in setup.stdout and "loaded" in setup.stdout
    again = cli(project, host, "offline.setup")
    assert "unchanged" in again.stdout
    rows = build_report(cli(project, host, "offline.build").stdout)
    assert rows and all(cached == steps and steps > 0 for steps, cached, _ in rows.values()), rows


def test_the_bundle_holds_each_blob_once(demo: Demo, tmp_path: Path) -> None:
    with tarfile.open(demo.bundle) as tar:
        names = [m.name for m in tar.getmembers() if m.name.startswith("blobs/")]
        tar.extractall(tmp_path / "x", filter="data")
    assert len(names) == len(set(names))
    layout = Layout(tmp_path / "x")
    referenced = layout.reachable()
    assert {f"sha256:{n.rsplit('/', 1)[1]}" for n in names} == set(referenced)
    # The base image's layer is referenced by the base image and by every
    # service's cache, and stored once.
    tags = layout.tags()
    base = layout.read_json(tags["base-debian_bookworm-slim"].digest)
    base_layer = base["layers"][0]["digest"]
    for service in ("backend", "worker", "web"):
        cache = layout.read_json(tags[f"cache-{service}"].digest)
        assert base_layer in {d["digest"] for d in cache["manifests"]}, service
    assert names.count(f"blobs/sha256/{base_layer.split(':')[1]}") == 1


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".work" not in p.parts and p.name != ".lock"}


def test_a_corrupted_or_incomplete_bundle_is_refused_and_nothing_changes(
        engines: dict[str, str], demo: Demo, tmp_path: Path) -> None:
    host = engines["offline"]
    project = carry(demo.bundle, tmp_path / "demo")
    cli(project, host, "offline.setup")
    cache = project / "build-cache"
    before = snapshot(cache / "store")
    docker = DockerClient(host=host)
    images_before = sorted(i.id for i in docker.image.list())

    bad = cache / "damaged.tar"
    flipped = ""
    with tarfile.open(demo.bundle) as tin, tarfile.open(bad, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()  # type: ignore[union-attr]
            if not flipped and m.name.startswith("blobs/") and m.size > 1000:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
                flipped = m.name
            tout.addfile(m, io.BytesIO(data))
    out = cli(project, host, "offline.setup", "--bundle", str(bad), check=False)
    assert out.returncode != 0
    assert f"{flipped} is damaged" in out.stderr

    missing = cache / "missing.tar"
    with tarfile.open(demo.bundle) as tin, tarfile.open(missing, "w") as tout:
        for m in tin.getmembers():
            if m.name == "files/resources/models/model.txt":
                continue
            tout.addfile(m, tin.extractfile(m))
    out = cli(project, host, "offline.setup", "--bundle", str(missing), check=False)
    assert out.returncode != 0
    assert "files/resources/models/model.txt is missing from the bundle" in out.stderr

    assert snapshot(cache / "store") == before
    assert sorted(i.id for i in docker.image.list()) == images_before


def build_cache_records(host: str) -> str:
    """What ``docker buildx du`` lists (python-on-whales has no disk usage of its own: NotImplementedError)."""
    out = subprocess.run(["docker", "--host", host, "buildx", "du"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_a_refused_setup_leaves_the_engine_exactly_as_it_was(engines: dict[str, str], demo: Demo,
                                                             tmp_path: Path) -> None:
    """The bundle is checked before the engine is asked anything but whether it answers; a probe leaves no image."""
    reset("offline")
    host = engines["offline"]
    docker = DockerClient(host=host)
    empty_cache = build_cache_records(host)
    project = carry(demo.bundle, tmp_path / "demo")
    cut = project / "build-cache" / "cut.tar"
    cut.write_bytes(demo.bundle.read_bytes()[: demo.bundle.stat().st_size // 2])
    out = cli(project, host, "offline.setup", "--bundle", str(cut), check=False)
    assert out.returncode == 1 and "copy it again" in out.stderr, out.stderr
    assert docker.image.list(all=True) == []
    assert build_cache_records(host) == empty_cache

    cli(project, host, "offline.setup")  # accepted: the capability probe runs now, and cleans up after itself
    assert docker.image.list(filters=[("dangling", "true")]) == []


def test_verify_proves_every_service_builds_offline(engines: dict[str, str], demo: Demo, tmp_path: Path) -> None:
    reset("offline")
    project = carry(demo.bundle, tmp_path / "demo")
    out = cli(project, engines["offline"], "offline.verify")
    assert out.returncode == 0
    assert out.stdout.count("all cached") == 3, out.stdout


def test_manifest_describes_the_bundle(demo: Demo) -> None:
    with tarfile.open(demo.bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["project"] == "demo" and manifest["version"] == "1.0.0"
    assert manifest["network"] == "none"
    assert set(manifest["services"]) == {"backend", "worker", "web"}
    assert manifest["services"]["worker"]["base_images"] == ["debian:bookworm-slim"]
    assert manifest["base_images"] == {
        "debian:bookworm-slim": "base-debian_bookworm-slim",
        # backend installs jq: the base with it preinstalled travels for the classic builder
        "demo-debian_bookworm-slim-apt:1.0.0": "base-demo-debian_bookworm-slim-apt_1.0.0",
        # each service built by the classic builder, the classic fallback's --cache-from at a 20.10 site
        **{f"demo-{s}-classic:1.0.0": f"base-demo-{s}-classic_1.0.0" for s in ("backend", "worker", "web")}}
    assert manifest["engine"]["server"].startswith("26.")
    paths = {f["path"] for f in manifest["files"]}
    assert {"files/resources/models/model.txt", "files/resources/src/greeting.tar"} <= paths


def test_a_delta_after_a_one_line_change_and_split_parts(engines: dict[str, str], demo: Demo,
                                                          tmp_path: Path) -> None:
    online = tmp_path / "online"
    shutil.copytree(demo.project, online)  # the exported project, store included
    (online / "services" / "web" / "index.html").write_text("<h1>demo web, one line changed</h1>\n")
    manifest = demo.bundle.with_name(demo.bundle.name.removesuffix(".tar") + ".manifest.json")
    cli(online, engines["online"], "offline.export", "--since", str(manifest))
    delta = next((online / "build-cache").glob("build-cache-*-delta.tar"))
    assert delta.stat().st_size < 0.05 * demo.bundle.stat().st_size

    reset("offline")
    offline = carry(demo.bundle, tmp_path / "demo")
    (offline / "services" / "web" / "index.html").write_text("<h1>demo web, one line changed</h1>\n")
    cli(offline, engines["offline"], "offline.setup")
    shutil.copy2(delta, offline / "build-cache" / delta.name)
    cli(offline, engines["offline"], "offline.setup", "--bundle", str(offline / "build-cache" / delta.name))
    rows = build_report(cli(offline, engines["offline"], "offline.build").stdout)
    assert set(rows) == {"backend", "worker", "web"}, rows
    assert all(cached == steps for steps, cached, _ in rows.values()), rows
    out = DockerClient(host=engines["offline"]).run("demo/web:1.0.0", remove=True, networks=["none"])
    assert out.strip() == "web: serving 36 bytes"

    cli(online, engines["online"], "offline.export", "--split-size", "20M")
    parts = next((online / "build-cache").glob("build-cache-*.parts"))
    assert len(list(parts.glob("*.tar.0*"))) >= 2
    empty = carry(demo.bundle, tmp_path / "from-parts")
    (empty / "build-cache" / demo.bundle.name).unlink()  # only the parts travel
    reset("legacy")
    setup = cli(empty, engines["legacy"], "offline.setup", "--bundle", str(sorted(parts.glob("*.tar.0*"))[0]))
    assert "verified files" in setup.stdout

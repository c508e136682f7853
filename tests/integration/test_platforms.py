"""Non-native platforms end to end on amd64: ARM64 under the harness's qemu emulation (exported, set up and
built offline, rebuilt from its own APT capture), and a platform the machine cannot run refused."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from offline_build import unpacking
from offline_build.store import Layout
from tests.integration.harness import CA, CLI, IMAGES, build_report, carry, cli, reset

pytestmark = pytest.mark.engine

def test_an_s390x_bundle_is_exported_for_s390x_and_refused_by_an_engine_that_cannot_run_it(
        engines: dict[str, str], tmp_path: Path) -> None:
    # A base without a registry: the harness's busybox rootfs, labelled s390x (the
    # harness emulates only arm64). The Dockerfile runs nothing, so nothing needs to run it.
    subprocess.run(["docker", "-H", engines["online"], "import", "--platform", "linux/s390x",
                    str(IMAGES / "busybox-v2.rootfs.tar"), "busybox-s390x:local"],
                   check=True, capture_output=True)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox-s390x:local\nCOPY f /f\n")
    (tmp_path / "app" / "f").write_text("f\n")
    (tmp_path / "offline.yaml").write_text("project: zarch\nnetwork: none\nservices:\n  app:\n    context: app\n")
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run([*CLI, "offline.export", "--platform", "linux/s390x", "--host", engines["online"]],
                         cwd=tmp_path, capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    (bundle,) = (tmp_path / "build-cache").glob("build-cache-*.tar")
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["platforms"] == ["linux/s390x"]
    # The base image in the store is the s390x one, and the cache is there.
    store = Layout(tmp_path / "build-cache" / "store")
    tags = store.tags()
    assert {"base-busybox-s390x_local", "cache-app"} <= set(tags)

    def blob(digest: str) -> dict:
        return json.loads((store.blobs / digest.split(":")[1]).read_text())

    base = blob(tags["base-busybox-s390x_local"].digest)
    manifests = [base] if "config" in base else [blob(m["digest"]) for m in base["manifests"]]
    assert {blob(m["config"]["digest"])["architecture"] for m in manifests} == {"s390x"}

    site = tmp_path / "site"
    setup = subprocess.run([*CLI, "offline.setup", "--bundle", str(bundle), "--host", engines["offline"]],
                           cwd=tmp_path, capture_output=True, text=True, env={**env, "CACHE_DIR": str(site)},
                           check=False)
    assert setup.returncode == 1, setup.stdout + setup.stderr
    assert "is for linux/s390x and this engine runs linux/amd64" in setup.stderr
    assert "export again with --platform linux/amd64" in setup.stderr and "Traceback" not in setup.stderr
    assert not (site / "store").exists() and not (site / "bundle.json").exists()  # nothing written


def test_a_base_image_without_a_wanted_platform_stops_the_export_before_any_build(
        engines: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:local\nCOPY f /f\n")
    (tmp_path / "app" / "f").write_text("f\n")
    (tmp_path / "offline.yaml").write_text("project: two\nnetwork: none\nservices:\n  app:\n    context: app\n")
    out = subprocess.run([*CLI, "offline.export", "--platform", "linux/amd64,linux/arm64", "--host", engines["online"]],
                         cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
                         check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "base image docker.io/library/busybox:local has linux/amd64 in this engine, not linux/arm64" in out.stderr
    assert "docker pull --platform linux/arm64" in out.stderr and "Traceback" not in out.stderr
    assert "==> build app" not in out.stdout  # stopped at the save, before any build
    assert not list((tmp_path / "build-cache").glob("build-cache-*.tar"))


def export_app(root: Path, host: str, yaml: str, files: dict[str, str], image: str) -> Path:
    """A one-service project (``app/``, tagged *image*) under *root*, exported on *host*; its bundle."""
    (root / "app").mkdir(parents=True)
    for name, text in files.items():
        (root / "app" / name).write_text(text)
    (root / "offline.yaml").write_text(f"{yaml}services:\n  app:\n    context: app\n    image: {image}\n")
    cli(root, host, "offline.export")
    (archive,) = (root / "build-cache").glob("build-cache-*.tar")
    return archive


def two_stages(base: str) -> str:
    """Two stages on *base*: an APT step (jq) below a copied marker, and what it made copied into the last."""
    return f"""\
FROM {base} AS build
COPY marker /marker
RUN apt-get update && apt-get install -y --no-install-recommends jq
RUN uname -m > /arch && jq -n '"jq works"' > /jq
FROM {base}
COPY --from=build /arch /jq /
COPY app.txt /app.txt
CMD ["sh", "-c", "cat /arch /jq /app.txt"]
"""


def test_an_arm64_project_with_apt_builds_offline_under_emulation_and_rebuilds_from_its_capture(
        engines: dict[str, str], tmp_path: Path) -> None:
    """arm64 only: an APT step and a multi-stage build (and a cross-compiling stage on the builder's platform),
    exported on amd64, built all cached on the empty air-gapped engine under emulation, then a change above the
    APT step rebuilt there from the bundle's arm64 capture."""
    online = tmp_path / "online"
    # A cross-compiling stage runs on the builder's platform (amd64): its APT step needs amd64's capture.
    tools = ("FROM --platform=$BUILDPLATFORM debian-multi:bookworm-slim AS tools\n"
             "RUN apt-get update && apt-get install -y --no-install-recommends jq\n"
             "RUN uname -m > /tools && jq --version >> /tools\n")
    dockerfile = tools + two_stages("debian-arm64:bookworm-slim") + "COPY --from=tools /tools /tools\n"
    archive = export_app(online, engines["online"], "project: arm\nnetwork: none\nplatforms: [linux/arm64]\n",
                         {"Dockerfile": dockerfile, "marker": "one\n", "app.txt": "arm app\n"}, "arm/app")
    # The manifest lists each file; the archive packs equal bytes once (the two bases' arm64 .debs are equal).
    debs = [f.path for f in unpacking.load_manifest(archive)[0].files if f.path.endswith(".deb")]
    found = {(base, platform): [Path(n).name for n in debs if n.startswith(f"files/apt/{base}/{platform}/")]
             for base in ("debian-arm64_bookworm-slim", "debian-multi_bookworm-slim")
             for platform in ("linux_amd64", "linux_arm64")}
    # The arm64 stages' capture; the builder stage's for this machine (amd64) and for an arm64 site's builder.
    assert not found["debian-arm64_bookworm-slim", "linux_amd64"], found
    for (base, platform), names in found.items():
        arch = platform.split("_")[1]
        assert base.startswith("debian-arm64") and arch == "amd64" or names, found
        assert all(d.endswith((f"_{arch}.deb", "_all.deb")) for d in names), found
    assert sum(map(len, found.values())) == len(debs), debs

    reset("offline")
    site = carry(archive, tmp_path / "site")
    cli(site, engines["offline"], "offline.setup")
    rows = build_report(cli(site, engines["offline"], "offline.build").stdout, ("app",))
    assert rows["app"][1] == rows["app"][0] and rows["app"][2] == "all cached", rows
    docker = DockerClient(host=engines["offline"])
    ran = docker.run("arm/app:latest", remove=True, networks=["none"], platform="linux/arm64")
    assert ran.split() == ["aarch64", '"jq', 'works"', "arm", "app"], ran
    built_on = docker.run("arm/app:latest", ["cat", "/tools"], remove=True, networks=["none"], platform="linux/arm64")
    assert built_on.split()[0] == "x86_64" and built_on.split()[1].startswith("jq-"), built_on

    (site / "app" / "marker").write_text("two\n")  # above the APT step: apt-get must run again, offline
    rebuilt = build_report(cli(site, engines["offline"], "offline.build").stdout, ("app",))
    assert rebuilt["app"][2] == "rebuilt offline", rebuilt
    assert docker.run("arm/app:latest", remove=True, networks=["none"], platform="linux/arm64").split()[0] == "aarch64"


def test_one_bundle_serves_amd64_and_arm64_each_from_its_own_capture(engines: dict[str, str], tmp_path: Path) -> None:
    """linux/amd64 and linux/arm64 in one export from a base holding both: each platform's APT capture in the
    bundle, set up on the empty air-gapped engine, each platform built all cached and run, the engine's own by
    default, then a change above the APT step rebuilt offline for both from their own captures."""
    online = tmp_path / "online"
    archive = export_app(online, engines["online"],
                         "project: multi\nnetwork: none\nplatforms: [linux/amd64, linux/arm64]\n",
                         {"Dockerfile": two_stages("debian-multi:bookworm-slim"), "marker": "one\n",
                          "app.txt": "multi app\n"}, "multi/app")
    with tarfile.open(archive) as tar:
        debs = [n for n in tar.getnames() if n.endswith(".deb")]
    capture = "files/apt/debian-multi_bookworm-slim"
    for platform, arch in (("linux_amd64", "amd64"), ("linux_arm64", "arm64")):
        mine = [Path(n).name for n in debs if n.startswith(f"{capture}/{platform}/archives/")]
        assert any(d.startswith("jq_") and d.endswith(f"_{arch}.deb") for d in mine), debs
        assert all(d.endswith((f"_{arch}.deb", "_all.deb")) for d in mine), debs
    assert len(debs) == len([n for n in debs if n.startswith((f"{capture}/linux_amd64/", f"{capture}/linux_arm64/"))])

    reset("offline")
    site = carry(archive, tmp_path / "site")
    setup = cli(site, engines["offline"], "offline.setup").stdout
    assert [line.split("│")[2].strip() for line in setup.splitlines() if "│ platforms" in line] == [
        "linux/amd64, linux/arm64"], setup
    # The proof covers both sites: the engine (empty of build cache) runs both platforms.
    proof = cli(site, engines["offline"], "offline.verify").stdout
    (row,) = [[c.strip() for c in line.split("│")[1:-1]] for line in proof.splitlines() if line.startswith("│ app ")]
    assert row[1:4] == ["all cached", "10", "10"], proof  # 5 steps for each platform
    checks = json.loads(cli(site, engines["offline"], "offline.diagnose", "--json", "--quick").stdout)["checks"]
    (row,) = [c for c in checks if c["name"] == "platforms"]
    assert row["status"] == "ok" and row["detail"].startswith(
        "the bundle serves linux/amd64, linux/arm64; this engine is linux/amd64, also runs linux/arm64; "
        "offline.build makes linux/amd64 "), row
    docker = DockerClient(host=engines["offline"])

    def runs(platform: str) -> list[str]:
        return docker.run("multi/app:latest", remove=True, networks=["none"], platform=platform).split()

    # The engine's own platform by default; the other with --platform: each all cached.
    for flags, platform, arch in (((), "linux/amd64", "x86_64"), (("--platform", "linux/arm64"), "linux/arm64",
                                                                   "aarch64")):
        rows = build_report(cli(site, engines["offline"], "offline.build", *flags).stdout, ("app",))
        assert rows["app"][1] == rows["app"][0] and rows["app"][2] == "all cached", (flags, rows)
        assert runs(platform) == [arch, '"jq', 'works"', "multi", "app"]

    (site / "app" / "marker").write_text("two\n")  # above the APT step: apt-get runs again, per platform
    both = cli(site, engines["offline"], "offline.build", "--platform", "linux/amd64,linux/arm64").stdout
    assert build_report(both, ("app",))["app"][2] == "rebuilt offline", both
    assert runs("linux/amd64")[0] == "x86_64" and runs("linux/arm64")[0] == "aarch64"


PIP_APP = """\
FROM debian-multi:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv
COPY requirements.txt /app/requirements.txt
RUN python3 -m venv /venv && /venv/bin/pip install -r /app/requirements.txt
COPY app.py /app/app.py
CMD ["/venv/bin/python", "/app/app.py"]
"""


def test_a_two_platform_pip_step_gets_each_platforms_wheel_and_installs_it_offline(
        engines: dict[str, str], tmp_path: Path) -> None:
    """A binary wheel differs per platform: the capture build keeps x86_64's and aarch64's apart, and each
    platform's offline install after a change to its requirements' neighbour takes its own."""
    online = tmp_path / "online"
    ca = f"ca_file: {CA}\n" if CA.is_file() else ""
    app = ("import markupsafe, platform\n"
           "print(platform.machine(), markupsafe._speedups.__file__.rsplit('/', 1)[1])\n")
    archive = export_app(online, engines["online"],
                         f"project: wheels\nnetwork: host\nplatforms: [linux/amd64, linux/arm64]\n{ca}",
                         {"Dockerfile": PIP_APP, "requirements.txt": "MarkupSafe==2.1.5\n", "app.py": app},
                         "wheels/app")
    with tarfile.open(archive) as tar:
        wheels = sorted(Path(n).parts[3] + "/" + Path(n).name for n in tar.getnames()
                        if n.startswith("files/pip/app-1/") and "MarkupSafe" in n)
    assert [w.split("/")[0] for w in wheels] == ["linux_amd64", "linux_arm64"], wheels
    assert "x86_64" in wheels[0] and "aarch64" in wheels[1], wheels

    reset("offline")
    site = carry(archive, tmp_path / "site")
    cli(site, engines["offline"], "offline.setup")
    (site / "app" / "requirements.txt").write_text("MarkupSafe==2.1.5  # pinned\n")  # the pip step runs again
    built = cli(site, engines["offline"], "offline.build", "--platform", "linux/amd64,linux/arm64").stdout
    assert build_report(built, ("app",))["app"][2] == "rebuilt offline", built
    docker = DockerClient(host=engines["offline"])
    for platform, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        ran = docker.run("wheels/app:latest", remove=True, networks=["none"], platform=platform).split()
        assert ran[0] == machine and ran[1].endswith(f"-{machine}-linux-gnu.so"), ran  # the compiled speedups

"""Which bundle platforms an engine can run, how a multi-platform export is planned, and what an offline build makes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from python_on_whales.exceptions import DockerException

from offline_build.build import plan_offline_builds
from offline_build.captures.apt import CaptureApt, capture_platforms
from offline_build.config import Overrides, Project, load
from offline_build.diagnose import platforms_check
from offline_build.engine import engine_platforms
from offline_build.platforms import runs_platform
from offline_build.errors import StepError
from offline_build.export import export_plan
from offline_build.plan import build_platforms
from offline_build.runners.build import preflight
from offline_build.steps import Build, OfflineBuild, Step, WriteFile
from offline_build.store import Descriptor, image_platforms
from tests.unit import oci

AMD64 = ("linux/amd64", "linux/amd64/v2", "linux/amd64/v3", "linux/386")


@pytest.mark.parametrize(("wanted", "available", "runs"), [
    ("linux/amd64", AMD64, True),
    ("linux/386", AMD64, True),
    ("linux/arm64", AMD64, False),
    ("linux/arm64", (*AMD64, "linux/arm64"), True),  # emulated (binfmt) platforms are listed too
    ("linux/arm/v7", ("linux/arm/v6",), False),  # a wanted variant needs that variant
    ("linux/arm", ("linux/arm/v7",), True),
    ("LINUX/AMD64", AMD64, True),
    ("linux/amd", AMD64, False),  # a prefix of a name is not the name
    ("linux/arm64", ("linux/arm64/v8",), True),  # v8 is arm64's only variant: written or not
    ("linux/arm64/v8", ("linux/arm64",), True),
    ("linux/amd64/v1", AMD64, True),  # BuildKit's linux/amd64: v1 is the baseline every amd64 runs
    ("linux/arm", ("linux/arm/v6",), False),  # BuildKit builds plain arm as arm/v7
])
def test_runs_platform(wanted: str, available: tuple[str, ...], runs: bool) -> None:
    assert runs_platform(wanted, available) is runs


def test_a_32_bit_arm_engine_without_buildx_names_its_variant() -> None:
    def no_buildx(*_: object) -> None:
        raise DockerException(["docker", "buildx", "inspect"], 1)

    docker = SimpleNamespace(buildx=SimpleNamespace(inspect=no_buildx))
    info = SimpleNamespace(architecture="armv7l", os_type="linux")
    platforms = engine_platforms(docker, info)  # type: ignore[arg-type]
    assert platforms == ("linux/arm/v7",) and runs_platform("linux/arm/v7", platforms)


def test_a_multi_platform_export_builds_every_platform_into_one_cache(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:local\nRUN true\n")
    (tmp_path / "offline.yaml").write_text("project: p\nservices:\n  app:\n    context: app\n")
    project = load(tmp_path / "offline.yaml", Overrides(platforms=("linux/amd64", "linux/arm64")), environ={})
    (build,) = [s for s in export_plan(project, list(project.services.values())).steps
                if isinstance(s, Build) and s.service]
    argv = build.argv()
    assert argv[argv.index("--platform") + 1] == "linux/amd64,linux/arm64"
    assert len(build.cache_to) == 1 and "tag=cache-app" in build.cache_to[0]


def test_image_platforms_counts_only_children_whose_manifests_are_here(tmp_path: Path) -> None:
    layout = oci.new(tmp_path / "layout")
    config = json.dumps({"os": "linux", "architecture": "arm", "variant": "v7"}).encode()
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": oci.put(layout, config), "size": len(config)},
                           "layers": []}).encode()
    single = Descriptor("application/vnd.oci.image.manifest.v1+json", oci.put(layout, manifest), len(manifest), {})
    assert image_platforms(layout, single) == {"linux/arm/v7"}
    absent = "sha256:" + "0" * 64  # listed by the registry's index, never pulled here
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"digest": single.digest, "size": single.size, "platform": {"os": "linux", "architecture": "arm",
                                                                     "variant": "v7"}},
        {"digest": absent, "size": 1, "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": single.digest, "size": 1, "platform": {"os": "unknown", "architecture": "unknown"}},
    ]}).encode()
    multi = Descriptor("application/vnd.oci.image.index.v1+json", oci.put(layout, index), len(index), {})
    assert image_platforms(layout, multi) == {"linux/arm/v7"}


@pytest.mark.parametrize(("platforms", "native", "asked", "built"), [
    (("linux/amd64", "linux/arm64"), "linux/amd64", False, ("linux/amd64",)),  # the engine's own, by default
    (("linux/amd64", "linux/arm64"), "linux/arm64", False, ("linux/arm64",)),  # an arm64 site of the same bundle
    (("linux/arm64/v8", "linux/amd64"), "linux/arm64", False, ("linux/arm64/v8",)),  # as the project spells it
    (("linux/arm64",), "linux/amd64", False, ("linux/arm64",)),  # not the engine's: under emulation, as exported
    (("linux/amd64", "linux/arm64"), "linux/amd64", True, ("linux/amd64", "linux/arm64")),  # --platform: all asked
    ((), "linux/amd64", False, ()),  # the engine's default, no --platform
])
def test_an_offline_build_makes_the_engines_own_platform_unless_asked(
        platforms: tuple[str, ...], native: str, asked: bool, built: tuple[str, ...]) -> None:
    assert build_platforms(platforms, native, asked) == built


def test_the_offline_build_plan_takes_the_engines_platform_and_the_command_lines(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:local\nRUN true\n")
    (tmp_path / "offline.yaml").write_text("project: p\nplatforms: [linux/amd64, linux/arm64]\n"
                                           "services:\n  app:\n    context: app\n")

    def platform(overrides: Overrides, native: str) -> str:
        project = load(tmp_path / "offline.yaml", overrides, environ={})
        (build,) = [s.buildkit for s in plan_offline_builds(project, list(project.services.values()), None,
                                                            native=native).steps if isinstance(s, OfflineBuild)]
        argv = build.argv()  # type: ignore[union-attr]
        return argv[argv.index("--platform") + 1]

    assert platform(Overrides(), "linux/arm64") == "linux/arm64"
    assert platform(Overrides(), "linux/amd64") == "linux/amd64"
    assert platform(Overrides(platforms=("linux/amd64", "linux/arm64")), "linux/amd64") == "linux/amd64,linux/arm64"


@pytest.mark.parametrize(("wanted", "status", "detail"), [
    (["linux/amd64", "linux/arm64"], "ok", "the bundle serves linux/amd64, linux/arm64; this engine is linux/amd64, "
     "also runs linux/arm64; offline.build makes linux/amd64 (--platform linux/amd64,linux/arm64 for all it runs)"),
    (["linux/arm64"], "ok", "the bundle serves linux/arm64; this engine is linux/amd64; "
     "offline.build makes linux/arm64 under emulation"),
    (["linux/amd64", "linux/s390x"], "warn", "the bundle serves linux/amd64, linux/s390x; this engine is linux/amd64; "
     "offline.build makes linux/amd64; cannot run linux/s390x"),
    (["linux/s390x"], "fail", "the bundle is for linux/s390x; this engine runs linux/amd64, linux/arm64"),
    ([], "info", "the engine's own: linux/amd64"),
])
def test_diagnose_says_which_platforms_the_bundle_serves_and_which_a_build_makes(
        wanted: list[str], status: str, detail: str) -> None:
    check = platforms_check(wanted, ("linux/amd64", "linux/arm64"), "linux/amd64")
    assert (check.status, check.detail) == (status, detail)


def test_a_build_for_a_platform_the_bundles_captures_lack_stops_before_it_starts(tmp_path: Path) -> None:
    capture = tmp_path / "apt-lists" / "debian_bookworm-slim"
    (capture / "linux_amd64" / "lists").mkdir(parents=True)
    step = Build(title="build app (offline)", platforms=("linux/amd64",), capture_dirs=(str(capture),))
    preflight(None, step, None)  # type: ignore[arg-type]  (the engine is not asked: no images needed)
    with pytest.raises(StepError) as caught:
        preflight(None, replace(step, platforms=("linux/amd64", "linux/arm64")), None)  # type: ignore[arg-type]
    assert caught.value.message == (f"build app (offline): the capture in {capture} has nothing for linux/arm64: "
                                    "the bundle was exported for other platforms")
    # Without --platform the engine builds its own: an arm64 site given an amd64 bundle is told so, not BuildKit's
    # '"/linux_arm64": not found'.
    arm = SimpleNamespace(docker=SimpleNamespace(system=SimpleNamespace(
        info=lambda: SimpleNamespace(os_type="linux", architecture="aarch64"))))
    with pytest.raises(StepError, match="has nothing for linux/arm64"):
        preflight(arm, replace(step, platforms=()), None)  # type: ignore[arg-type]


def apt_project(tmp_path: Path, platform: str) -> tuple[Project, tuple[Step, ...]]:
    """A one-service project with an APT step, built for amd64 and *platform*, and its export plan."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM debian:bookworm-slim\nRUN apt-get install -y jq\n")
    (tmp_path / "offline.yaml").write_text(f"project: p\nplatforms: [linux/amd64, {platform}]\n"
                                           "services:\n  app:\n    context: app\n")
    project = load(tmp_path / "offline.yaml", environ={})
    return project, export_plan(project, list(project.services.values())).steps


def test_apt_is_captured_once_per_platform_and_the_classic_bases_are_built_per_platform(tmp_path: Path) -> None:
    project, steps = apt_project(tmp_path, "linux/arm/v7")
    (capture,) = [s for s in steps if isinstance(s, CaptureApt)]
    commands = capture.describe().split("docker run ")[1:]
    assert len(commands) == 2 and commands[1].startswith("--rm --network host --platform linux/arm/v7 ")
    assert f"{capture.dest}/linux_arm_v7/lists:/var/lib/apt/lists" in commands[1]
    (dockerfile,) = [s.text for s in steps if isinstance(s, WriteFile) and "_preinstalled" in str(s.path)]
    assert dockerfile.splitlines()[1] == "ARG TARGETOS TARGETARCH TARGETVARIANT"
    assert "source=${TARGETOS}_${TARGETARCH}${TARGETVARIANT:+_${TARGETVARIANT}}/archives," in dockerfile
    (preinstall,) = [s for s in steps if isinstance(s, Build) and not s.service and "_preinstalled" in str(s.context)]
    assert preinstall.platforms == ("linux/amd64", "linux/arm/v7")


CROSS = """\
FROM --platform=$BUILDPLATFORM debian:bookworm-slim AS tools
RUN apt-get update && apt-get install -y gcc-aarch64-linux-gnu
FROM --platform=linux/amd64 debian:bookworm-slim AS pinned
RUN apt-get install -y file
FROM tools AS more
RUN apt-get install -y make
FROM debian:bookworm-slim
RUN apt-get install -y jq
"""


def test_a_stage_on_the_builders_platform_mounts_the_builders_capture_and_one_pinned_its_own(tmp_path: Path) -> None:
    """FROM --platform=$BUILDPLATFORM runs on the builder's platform whatever is built: its APT must not be the
    target's (an amd64 container given arm64 lists cannot install)."""
    from offline_build import apt, variant
    from offline_build.captures.apt import APT
    from offline_build.dockerfile import parse_text

    df = parse_text(CROSS, tmp_path / "Dockerfile")
    (tmp_path / "Dockerfile").write_text(CROSS)
    lines = variant.offline_variant(df, [(APT, apt.analyse(df))]).text.splitlines()
    builder, target = "${BUILDOS}_${BUILDARCH}${BUILDVARIANT:+_${BUILDVARIANT}}", "${TARGETOS}_${TARGETARCH}"
    assert lines[1] == "ARG BUILDOS BUILDARCH BUILDVARIANT" and f"source={builder}/lists," in lines[2]
    assert lines[4].startswith("RUN --mount=type=bind,from=apt-debian_bookworm-slim,source=linux_amd64/lists,")
    assert lines[6] == "ARG BUILDOS BUILDARCH BUILDVARIANT" and f"source={builder}/archives," in lines[7]  # inherited
    assert lines[9] == "ARG TARGETOS TARGETARCH TARGETVARIANT" and f"source={target}" in lines[10]
    # The capture holds what each stage runs on: the project's platforms, the pinned one, and the engine's own.
    assert apt.analyse(df)["debian:bookworm-slim"].stage_platforms == ["$BUILDPLATFORM", "linux/amd64", ""]
    assert capture_platforms(("linux/arm64",), ["$BUILDPLATFORM", "linux/amd64", ""]) == (
        ("linux/arm64", "linux/amd64"), True)
    # A base only builders run: the engine's own here, and each platform a site may build on.
    assert capture_platforms(("linux/arm64",), ["$BUILDPLATFORM"]) == (("linux/arm64",), True)
    assert capture_platforms(("linux/arm64",), [""]) == (("linux/arm64",), False)
    assert capture_platforms((), [""]) == ((), True)  # no platforms: the engine's own, as always
    assert capture_platforms((), ["linux/s390x"]) == (("linux/s390x",), False)


@pytest.mark.parametrize(("bundled", "containerd", "proven"), [
    (["linux/amd64", "linux/arm64"], True, ("linux/amd64", "linux/arm64")),  # both sites' images, one build
    (["linux/amd64", "linux/arm64"], False, ("linux/amd64",)),  # a classic store loads one platform: its own
    (["linux/arm64", "linux/s390x"], False, ("linux/arm64",)),  # what it runs
    ([], True, ()),  # no platforms: the engine's own, as a build makes
])
def test_verify_proves_every_platform_of_the_bundle_the_engine_runs(
        bundled: list[str], containerd: bool, proven: tuple[str, ...]) -> None:
    from offline_build.verify import proven_platforms

    caps = SimpleNamespace(containerd_store=containerd)
    assert proven_platforms(bundled, ("linux/amd64", "linux/amd64/v2", "linux/arm64"), caps) == proven  # type: ignore[arg-type]


def test_a_platform_written_arm64_v8_captures_into_the_folder_builds_mount(tmp_path: Path) -> None:
    """BuildKit normalises linux/arm64/v8 to linux/arm64 (TARGETVARIANT empty): a served step mounts
    ``${TARGETOS}_${TARGETARCH}${TARGETVARIANT:+_...}`` = linux_arm64, so the capture must write there."""
    from offline_build.captures.base import PLATFORM_DIR, has_platforms, platform_dir
    from offline_build.captures.lang import platform_outputs

    mounted = PLATFORM_DIR.replace("${TARGETOS}", "linux").replace("${TARGETARCH}", "arm64")
    mounted = mounted.replace("${TARGETVARIANT:+_${TARGETVARIANT}}", "")  # BuildKit's arm64/v8: no variant
    assert mounted == "linux_arm64"
    assert platform_dir("linux/arm64/v8") == platform_dir("Linux/ARM64") == mounted
    assert platform_dir("linux/arm/v7") == "linux_arm_v7"  # a real variant stays

    project, steps = apt_project(tmp_path, "linux/arm64/v8")
    (capture,) = [s for s in steps if isinstance(s, CaptureApt)]
    described = capture.describe()
    assert f"{capture.dest}/linux_arm64/lists:/var/lib/apt/lists" in described
    assert "linux_arm64_v8" not in described
    assert set(platform_outputs(tmp_path / "out", project.platforms)) == {"linux_amd64", "linux_arm64"}
    # A capture in the mounted folders counts as captured for that project.
    for folder in ("linux_amd64", "linux_arm64"):
        (capture.dest / folder / "lists").mkdir(parents=True)
    assert has_platforms(capture.dest, project, "lists")


@pytest.mark.parametrize(("written", "built"), [
    ("linux/amd64/v1", "linux_amd64"), ("linux/arm", "linux_arm_v7"), ("linux/arm/v7", "linux_arm_v7"),
    ("linux/arm/v6", "linux_arm_v6"), ("linux/amd64/v2", "linux_amd64_v2"),
])
def test_a_platform_buildkit_normalises_captures_into_the_folder_builds_mount(tmp_path: Path, written: str,
                                                                             built: str) -> None:
    """BuildKit builds linux/amd64/v1 as linux/amd64 (TARGETVARIANT empty) and linux/arm as linux/arm/v7
    (TARGETVARIANT=v7): the capture's folder must be the one ``${TARGETOS}_${TARGETARCH}...`` names."""
    from offline_build.captures.base import platform_dir

    assert platform_dir(written) == built
    _, steps = apt_project(tmp_path, written)
    (capture,) = [s for s in steps if isinstance(s, CaptureApt)]
    assert f"{capture.dest}/{built}/lists:/var/lib/apt/lists" in capture.describe()


@pytest.mark.parametrize("platforms", ["", "platforms: [linux/amd64]\n"])
def test_a_flat_capture_key_from_before_platform_folders_is_not_captured(tmp_path: Path, platforms: str) -> None:
    """An older bundle's key holds its files flat (``<key>/lists``, ``<key>/<marker>``): no build mounts
    ``<key>/lists``, so it must be captured again; a key with a platform folder is captured."""
    from offline_build.captures import all_captures
    from offline_build.captures.lang import MARKER

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (tmp_path / "offline.yaml").write_text(f"project: p\n{platforms}services:\n  app:\n    context: app\n")
    project = load(tmp_path / "offline.yaml", environ={})
    def mark_in(folder: Path, mark: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / mark).mkdir() if mark == "lists" else (folder / mark).write_text("x\n")

    checked = []
    for capture in all_captures():
        if not getattr(capture, "per_platform", True):
            continue  # the replay capture: one recording per service for every platform
        mark = "lists" if capture.name == "apt" else MARKER
        key = "debian:bookworm-slim" if capture.name == "apt" else "app-1"
        key_dir = capture.context_dir(project, key)
        assert not capture.captured(project, key)
        mark_in(key_dir, mark)  # flat, as before platform folders
        mark_in(key_dir / "deeper" / "linux_amd64", mark)  # not a platform folder either
        assert not capture.captured(project, key), capture.name
        mark_in(key_dir / "linux_amd64", mark)
        assert capture.captured(project, key), capture.name
        checked.append(capture.name)
    assert checked == ["apt", "pip", "uv", "npm", "yarn", "pnpm", "maven", "go"]

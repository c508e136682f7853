"""Which bundle platforms an engine can run, and how a multi-platform export is planned."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from python_on_whales.exceptions import DockerException

from offline_build.config import Overrides, load
from offline_build.engine import engine_platforms, runs_platform
from offline_build.export import export_plan
from offline_build.steps import Build
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

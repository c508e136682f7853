"""Planning is pure: the steps and the docker commands they amount to."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from offline_build import plan
from offline_build.captures.apt import CaptureApt
from offline_build.config import Overrides, load
from offline_build.export import export_plan
from offline_build.steps import Build, MergeCache, Pack, SaveImages

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo" / "offline.yaml"


def project(**overrides: object):  # noqa: ANN201
    return load(DEMO, Overrides(**overrides), environ={})  # type: ignore[arg-type]


def test_online_build_command_is_exact() -> None:
    proj = project(platforms=("linux/amd64",))
    step = plan.online_build(proj, proj.services["worker"])
    assert step.argv() == [
        "docker", "buildx", "build", "--progress", "rawjson",
        "--build-arg", "GREETING=hello from the worker",
        "--file", str(proj.services["worker"].dockerfile), "--load",
        "--network", "none", "--platform", "linux/amd64",
        "--tag", "demo/worker:1.0.0", str(proj.services["worker"].context),
    ]


def test_offline_build_reads_bases_and_cache_from_the_store() -> None:
    proj = project()
    step = plan.offline_build(proj, proj.services["web"], ("debian:bookworm-slim",), cache=True,
                              oci_contexts=True, network="host")
    store = proj.cache_dir / "store"
    assert ("debian:bookworm-slim", f"oci-layout://{store}:base-debian_bookworm-slim") in step.build_contexts
    assert step.cache_from == (f"type=local,src={store},tag=cache-web",)
    assert step.needs_store_tags == ("base-debian_bookworm-slim", "cache-web")
    assert step.needs_images == ()
    assert "--cache-to" not in step.argv()


def test_without_oci_layout_support_bases_must_be_loaded() -> None:
    proj = project()
    step = plan.offline_build(proj, proj.services["web"], ("debian:bookworm-slim",), cache=True,
                              oci_contexts=False, network=None)
    assert step.build_contexts == ()
    assert step.needs_images == ("debian:bookworm-slim",)
    assert "--network" not in step.argv()


def test_export_saves_bases_captures_apt_then_builds_each_service_into_its_own_folder() -> None:
    proj = project()
    steps = export_plan(proj, [proj.services["backend"], proj.services["web"]], date(2026, 1, 2)).steps
    assert isinstance(steps[0], SaveImages) and steps[0].images == ("debian:bookworm-slim",)
    capture = steps[1]
    assert isinstance(capture, CaptureApt) and capture.packages == ("jq",) and capture.no_recommends
    builds = [s for s in steps if isinstance(s, Build) and s.service]
    work = proj.cache_dir / ".work"
    # Two exports into one local cache folder race on its temp files.
    assert [s.cache_to for s in builds] == [
        (f"type=local,dest={work / 'cache-backend'},mode=max,tag=cache-backend",),
        (f"type=local,dest={work / 'cache-web'},mode=max,tag=cache-web",)]
    # backend builds its offline variant, with the capture as a named context.
    assert builds[0].dockerfile.name == "Dockerfile.offline"
    assert builds[0].build_contexts == (("apt-debian_bookworm-slim", str(proj.apt.dir / "debian_bookworm-slim")),)
    assert builds[1].dockerfile == proj.services["web"].dockerfile
    merges = [s for s in steps if isinstance(s, MergeCache)]
    assert [m.bases for m in merges] == [("base-debian_bookworm-slim",)] * 2
    preinstalled = [s for s in steps if isinstance(s, Build) and not s.service]
    assert preinstalled[0].tags == ("demo-debian_bookworm-slim-apt:1.0.0",)
    assert isinstance(steps[-1], Pack) and steps[-1].output.name == "build-cache-20260102.tar"


def test_dry_run_shows_the_generated_variant() -> None:
    proj = project()
    text = export_plan(proj, [proj.services["backend"]]).describe()
    assert "# write " in text and "Dockerfile.offline" in text
    assert "#   RUN --mount=type=bind,from=apt-debian_bookworm-slim,source=${TARGETOS}_${TARGETARCH}" in text


def test_slugs_are_tag_safe() -> None:
    assert plan.slug("docker.io/library/debian:bookworm-slim") == "debian_bookworm-slim"
    assert plan.slug("registry.example.invalid/org/app@sha256:abc") == "registry.example.invalid_org_app_sha256_abc"
    assert plan.base_tag("python:3.12-slim") == "base-python_3.12-slim"


def test_describe_shows_local_actions_as_comments() -> None:
    proj = project()
    text = export_plan(proj, []).describe()
    assert text.splitlines()[-1] == "# pack the bundle"

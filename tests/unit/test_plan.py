"""Planning is pure: the steps and the docker commands they amount to."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from offline_build import plan
from offline_build.config import Overrides, load
from offline_build.plan import Build, MergeCache, Pack, SaveImages

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
        "--network", "host", "--platform", "linux/amd64",
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


def test_export_saves_bases_first_and_gives_each_service_its_own_cache_folder(tmp_path: Path) -> None:
    proj = project()
    services = [(proj.services[n], ("debian:bookworm-slim",)) for n in ("backend", "web")]
    steps = plan.export_plan(proj, services, ("debian:bookworm-slim",), tmp_path, date(2026, 1, 2)).steps
    assert isinstance(steps[0], SaveImages)
    builds = [s for s in steps if isinstance(s, Build)]
    dests = [s.cache_to for s in builds]
    # Two exports into one local cache folder race on its temp files.
    assert dests == [f"type=local,dest={tmp_path / 'cache-backend'},mode=max,tag=cache-backend",
                     f"type=local,dest={tmp_path / 'cache-web'},mode=max,tag=cache-web"]
    merges = [s for s in steps if isinstance(s, MergeCache)]
    assert [m.bases for m in merges] == [("base-debian_bookworm-slim",)] * 2
    assert isinstance(steps[-1], Pack) and steps[-1].output.name == "build-cache-20260102.tar"


def test_slugs_are_tag_safe() -> None:
    assert plan.slug("docker.io/library/debian:bookworm-slim") == "debian_bookworm-slim"
    assert plan.slug("ghcr.io/org/app@sha256:abc") == "ghcr.io_org_app_sha256_abc"
    assert plan.base_tag("python:3.12-slim") == "base-python_3.12-slim"


def test_describe_shows_local_actions_as_comments(tmp_path: Path) -> None:
    proj = project()
    text = plan.export_plan(proj, [], (), tmp_path).describe()
    assert text.splitlines()[-1] == "# pack the bundle"

"""Setup's plan as data: what it unpacks, which images it loads and why (no engine: the plan is pure).

Written after a mutation run over setup.py left these alive: a plan that
loads base images into an engine that reads them from the store, or loads
nothing into one that cannot, changed no test.
"""

from __future__ import annotations

from pathlib import Path

from offline_build.bundle import Manifest
from offline_build.config import load
from offline_build.engine import Capabilities
from offline_build.setup import load_steps, setup_plan, unpack_step
from offline_build.steps import LoadImages, Unpack


def caps(oci_layout: bool) -> Capabilities:
    return Capabilities("26.1.5", "0.13.1", True, True, True, oci_layout, True)


def project(tmp_path: Path):  # noqa: ANN201
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (tmp_path / "offline.yaml").write_text("project: p\nplatforms: [linux/amd64]\nservices:\n  svc: {context: svc}\n")
    return load(tmp_path / "offline.yaml", environ={})


def manifest(builder: dict[str, str] | None = None) -> Manifest:
    return Manifest(project="p", version="1", platforms=["linux/amd64"], services={},
                    base_images={"debian:bookworm-slim": "base-debian_bookworm-slim"}, builder=builder or {})


def test_the_unpack_step_names_the_bundle_the_store_and_every_folder(tmp_path: Path) -> None:
    proj = project(tmp_path)
    bundle = proj.cache_dir / "build-cache-20261129.tar"
    step = unpack_step(proj, bundle)
    assert step == Unpack(title="verify and restore build-cache-20261129.tar", bundle=bundle, store=proj.store,
                          cache_dir=proj.cache_dir, project="p", platforms=("linux/amd64",),
                          places=step.places, check_platforms=True)
    assert ("files/resources", proj.cache_dir / "resources") in step.places
    assert ("files/maven", proj.cache_dir / "captures" / "maven") in step.places
    assert unpack_step(proj, bundle, check_platforms=False).check_platforms is False


def test_base_images_are_loaded_only_where_the_engine_cannot_read_the_store(tmp_path: Path) -> None:
    proj = project(tmp_path)
    assert load_steps(proj, manifest(), caps(oci_layout=True)) == []
    (step,) = load_steps(proj, manifest(), caps(oci_layout=False))
    assert step == LoadImages(title="load 1 base image(s)", images=(("debian:bookworm-slim", "base-debian_bookworm-slim"),),
                              store=proj.store, why="")
    # A dry run knows no engine: it lists the load and says when it happens.
    (dry,) = load_steps(proj, manifest(), None)
    assert dry.why == "only on engines that cannot read oci-layout:// contexts" and dry.images == step.images
    assert load_steps(proj, Manifest("p", "1", [], {}, {}), caps(oci_layout=False)) == []


def test_a_named_builders_buildkit_image_is_always_loaded(tmp_path: Path) -> None:
    proj = project(tmp_path)
    builder = {"name": "team", "driver": "docker-container", "image": "moby/buildkit:v0.13.1",
               "tag": "builder-moby_buildkit_v0.13.1"}
    steps = load_steps(proj, manifest(builder), caps(oci_layout=True))
    assert steps == [LoadImages(title="load the builder's BuildKit image moby/buildkit:v0.13.1",
                                images=(("moby/buildkit:v0.13.1", "builder-moby_buildkit_v0.13.1"),),
                                store=proj.store)]


def test_the_setup_plan_is_unpack_then_the_loads(tmp_path: Path) -> None:
    proj = project(tmp_path)
    bundle = proj.cache_dir / "build-cache-20261129.tar"
    plan = setup_plan(proj, bundle, manifest(), caps(oci_layout=False))
    assert plan.name == "setup"
    assert plan.steps == (unpack_step(proj, bundle), *load_steps(proj, manifest(), caps(oci_layout=False)))
    assert [type(s) for s in plan.steps] == [Unpack, LoadImages]
    assert setup_plan(proj, bundle, manifest(), None).steps[1].why  # no engine known: the dry-run wording

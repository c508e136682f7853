"""Cache backends (local, registry, s3) and named builders: what the project file accepts and what gets planned."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from offline_build import bake, bundle
from offline_build import build as building
from offline_build import export as exporting
from offline_build.backends import check_backend
from offline_build.build import plan_offline_builds
from offline_build.config import load
from offline_build.errors import ConfigError, OfflineBuildError
from offline_build.export import export_plan
from offline_build.plan import builder_create, remote_cache
from offline_build.steps import Build, EnsureBuilder, OfflineBuild, Plan, SaveImages


def make(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:local\nRUN true\n")
    path = tmp_path / "offline.yaml"
    path.write_text(f"project: p\nnetwork: none\nservices:\n  app:\n    context: app\n{extra}")
    return path


def error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, environ=environ or {})
    return str(info.value)


REGISTRY = "cache:\n  backend: registry\n  ref: 127.0.0.1:5000/team/cache\n"
S3 = ("cache:\n  backend: s3\n  bucket: team-cache\n  region: eu-west-1\n"
      "  endpoint_url: http://127.0.0.1:9000\n  use_path_style: true\n  prefix: ob/\n"
      "builder:\n  name: ob\n  driver: docker-container\n")


def builds(plan: Plan) -> list[Build]:
    steps = [s.buildkit if isinstance(s, OfflineBuild) else s for s in plan.steps]
    return [s for s in steps if isinstance(s, Build) and s.service]


# --- the project file ----------------------------------------------------------


def test_the_default_is_the_store_alone(tmp_path: Path) -> None:
    project = load(make(tmp_path, ""), environ={})
    assert project.cache.backend == "local" and remote_cache(project.cache, "app") is None
    assert builder_create(project.builder) is None


def test_a_registry_backend_needs_a_repository(tmp_path: Path) -> None:
    message = error(make(tmp_path, "cache:\n  backend: registry\n"))
    assert "offline.yaml:7:12" in message and "needs a registry repository" in message
    assert "cache.ref" in message and "OFFLINE_CACHE_REF" in message


def test_a_registry_ref_with_a_tag_is_refused_where_it_is_written(tmp_path: Path) -> None:
    message = error(make(tmp_path, "cache:\n  backend: registry\n  ref: 127.0.0.1:5000/team/cache:v1\n"))
    assert "offline.yaml:8:8" in message and "not a registry repository" in message
    assert "the service name becomes the tag" in message


def test_an_unknown_backend_names_the_known_ones(tmp_path: Path) -> None:
    message = error(make(tmp_path, "cache:\n  backend: gha\n"))
    assert "unknown cache backend 'gha'" in message and "local, registry, s3" in message


def test_s3_needs_bucket_and_region(tmp_path: Path) -> None:
    assert "needs cache.region" in error(make(tmp_path, "cache:\n  backend: s3\n  bucket: b\n"))


def test_keys_of_another_backend_are_named(tmp_path: Path) -> None:
    message = error(make(tmp_path, REGISTRY + "  bucket: b\n"))
    assert "cache.bucket does not apply to the registry backend" in message and ":9:" in message


def test_the_environment_picks_the_site_registry(tmp_path: Path) -> None:
    path = make(tmp_path, REGISTRY)
    site = load(path, environ={"OFFLINE_CACHE_REF": "127.0.0.1:5050/site/cache"})
    assert remote_cache(site.cache, "app") == "type=registry,ref=127.0.0.1:5050/site/cache:app"
    assert load(path, environ={"OFFLINE_CACHE_BACKEND": "local"}).cache.backend == "local"
    assert "OFFLINE_CACHE_BACKEND='nfs'" in error(path, {"OFFLINE_CACHE_BACKEND": "nfs"})
    assert "from OFFLINE_CACHE_REF" in error(path, {"OFFLINE_CACHE_REF": "Not A Ref"})


def test_the_environment_may_switch_a_local_file_to_its_bucket(tmp_path: Path) -> None:
    # A file kept local for laptops names the bucket a CI runner switches to.
    path = make(tmp_path, "cache:\n  bucket: b\n  region: r\n  prefix: team\n")
    assert load(path, environ={}).cache.backend == "local"
    s3 = load(path, environ={"OFFLINE_CACHE_BACKEND": "s3"}).cache
    assert (s3.backend, s3.bucket, s3.prefix) == ("s3", "b", "team/")
    message = error(make(tmp_path, ""), {"OFFLINE_CACHE_BACKEND": "s3"})
    assert "OFFLINE_CACHE_BACKEND=s3 needs cache.bucket" in message


def test_a_registry_ref_from_the_environment_needs_the_registry_backend(tmp_path: Path) -> None:
    bucket = make(tmp_path, "cache:\n  backend: s3\n  bucket: team\n  region: r\n")
    message = error(bucket, {"OFFLINE_CACHE_REF": "127.0.0.1:5050/site/cache"})
    assert "OFFLINE_CACHE_REF applies to the registry cache backend; this project uses s3" in message
    assert "OFFLINE_CACHE_BACKEND=registry" in message
    assert "this project uses local" in error(make(tmp_path, ""), {"OFFLINE_CACHE_REF": "127.0.0.1:5050/s/c"})
    # Switching the cache off keeps working whatever else the environment says.
    off = load(bucket, environ={"OFFLINE_CACHE_BACKEND": "local", "OFFLINE_CACHE_REF": "127.0.0.1:5050/s/c"})
    assert (off.cache.backend, off.cache.ref) == ("local", None)


def test_the_files_own_bucket_is_never_written_by_offline_builds(tmp_path: Path) -> None:
    project = load(make(tmp_path, S3), environ={})
    assert builds(plan_offline_builds(project, list(project.services.values()), None))[0].cache_to == ()


def test_keys_of_another_backend_are_named_whatever_the_environment(tmp_path: Path) -> None:
    message = error(make(tmp_path, REGISTRY + "  bucket: b\n"), {"OFFLINE_CACHE_BACKEND": "registry"})
    assert "cache.bucket does not apply to the registry backend" in message


@pytest.mark.parametrize(("prefix", "spec"), [
    ("team", "blobs_prefix=team/blobs/"), ("team/", "blobs_prefix=team/blobs/"),
    ("/team/x/", "blobs_prefix=team/x/blobs/"), ("/", None)])
def test_the_s3_prefix_is_a_folder(tmp_path: Path, prefix: str, spec: str | None) -> None:
    project = load(make(tmp_path, f"cache:\n  backend: s3\n  bucket: b\n  region: r\n  prefix: '{prefix}'\n"),
                   environ={})
    remote = remote_cache(project.cache, "app") or ""
    assert (spec in remote) if spec else "prefix" not in remote


def test_the_environment_may_switch_an_s3_file_to_a_registry(tmp_path: Path) -> None:
    path = make(tmp_path, "cache:\n  backend: s3\n  bucket: b\n  region: r\n")
    site = load(path, environ={"OFFLINE_CACHE_BACKEND": "registry", "OFFLINE_CACHE_REF": "127.0.0.1:5050/site/c"})
    assert site.cache.backend == "registry" and site.cache.ref == "127.0.0.1:5050/site/c"
    message = error(path, {"OFFLINE_CACHE_BACKEND": "registry"})
    assert "OFFLINE_CACHE_BACKEND=registry needs a registry repository" in message and "OFFLINE_CACHE_REF" in message


# --- what gets planned -----------------------------------------------------------


def test_export_reads_the_registry_and_writes_store_and_registry(tmp_path: Path) -> None:
    project = load(make(tmp_path, REGISTRY), environ={})
    (build,) = builds(export_plan(project, list(project.services.values())))
    assert build.cache_from == ("type=registry,ref=127.0.0.1:5000/team/cache:app",)
    assert build.cache_to[0].startswith("type=local,") and build.cache_to[1:] == (
        "type=registry,ref=127.0.0.1:5000/team/cache:app,mode=max",)
    argv = build.argv()
    assert argv.count("--cache-to") == 2  # the reason builds run their own argv


def test_push_false_only_reads(tmp_path: Path) -> None:
    project = load(make(tmp_path, REGISTRY + "  push: false\n"), environ={})
    (build,) = builds(export_plan(project, list(project.services.values())))
    assert len(build.cache_to) == 1 and build.cache_from


def test_offline_builds_read_the_store_first_then_the_remote(tmp_path: Path) -> None:
    project = load(make(tmp_path, REGISTRY), environ={})
    (build,) = builds(plan_offline_builds(project, list(project.services.values()), None))
    # No store yet: only the remote. The file's team cache is only read: at
    # the site it is usually out of reach, and a failed write fails the build.
    assert build.cache_from == ("type=registry,ref=127.0.0.1:5000/team/cache:app",)
    assert build.cache_to == ()
    assert json.loads(bake.render(project))["target"]["app"]["cache-to"][1:] == []


def test_offline_builds_write_back_to_a_cache_this_machine_names(tmp_path: Path) -> None:
    site = load(make(tmp_path, REGISTRY), environ={"OFFLINE_CACHE_REF": "127.0.0.1:5050/site/cache"})
    (build,) = builds(plan_offline_builds(site, list(site.services.values()), None))
    assert build.cache_to == ("type=registry,ref=127.0.0.1:5050/site/cache:app,mode=max",)
    quiet = load(make(tmp_path, REGISTRY + "  push: false\n"), environ={"OFFLINE_CACHE_REF": "127.0.0.1:5050/s/c"})
    assert builds(plan_offline_builds(quiet, list(quiet.services.values()), None))[0].cache_to == ()


def test_s3_spec_carries_endpoint_path_style_and_prefix(tmp_path: Path) -> None:
    project = load(make(tmp_path, S3), environ={})
    assert remote_cache(project.cache, "app") == (
        "type=s3,region=eu-west-1,bucket=team-cache,name=app,endpoint_url=http://127.0.0.1:9000,"
        "use_path_style=true,blobs_prefix=ob/blobs/,manifests_prefix=ob/manifests/")
    (build,) = builds(export_plan(project, list(project.services.values())))
    assert build.builder == "ob" and build.argv()[5:7] == ["--builder", "ob"]


def test_s3_on_the_engines_own_builder_is_refused_before_any_work(tmp_path: Path) -> None:
    path = make(tmp_path, "cache:\n  backend: s3\n  bucket: b\n  region: r\n")
    with pytest.raises(OfflineBuildError) as info:
        exporting.export(load(path, environ={}), None, None, Console(quiet=True), dry_run=True)  # type: ignore[arg-type]
    assert "no S3 cache" in str(info.value) and "driver: docker-container" in str(info.value)


# --- builders ------------------------------------------------------------------


def test_a_docker_container_builder_runs_the_bundled_buildkit_on_the_host_network(tmp_path: Path) -> None:
    project = load(make(tmp_path, "builder:\n  name: big\n  driver_opts:\n    memory: 8g\n"), environ={})
    assert project.builder.driver == "docker-container"
    assert builder_create(project.builder) == [
        "docker", "buildx", "create", "--name", "big", "--driver", "docker-container",
        "--driver-opt", "image=moby/buildkit:buildx-stable-1", "--driver-opt", "network=host",
        "--driver-opt", "memory=8g"]


def test_a_remote_builder_needs_an_endpoint(tmp_path: Path) -> None:
    assert "needs an endpoint" in error(make(tmp_path, "builder:\n  name: far\n  driver: remote\n"))
    project = load(make(tmp_path, "builder:\n  name: far\n  driver: remote\n  endpoint: tcp://127.0.0.1:1234\n"),
                   environ={})
    assert builder_create(project.builder)[-1] == "tcp://127.0.0.1:1234"  # type: ignore[index]


def test_builder_keys_that_do_not_fit_the_driver_are_named(tmp_path: Path) -> None:
    message = error(make(tmp_path, "builder:\n  name: x\n  driver: remote\n  endpoint: tcp://h:1\n  image: bk\n"))
    assert "image is for the docker-container driver, not remote" in message
    assert "needs a name" in error(make(tmp_path, "builder:\n  driver: docker-container\n"))
    assert "engine's own builder" in error(make(tmp_path, "builder:\n  name: default\n"))


def test_a_builder_image_or_endpoint_docker_could_not_read_is_named(tmp_path: Path) -> None:
    message = error(make(tmp_path, "builder:\n  name: x\n  image: Bad Image\n"))
    assert "'Bad Image' is not a valid image reference" in message and "fix: write it as docker pull" in message
    message = error(make(tmp_path, "builder:\n  name: x\n  driver: remote\n  endpoint: not a url\n"))
    assert "'not a url' is not a valid endpoint (scheme://address)" in message
    assert message.endswith("fix: e.g. tcp://buildkitd:1234")


def test_a_base_image_docker_could_not_read_is_named(tmp_path: Path) -> None:
    for bad in ("Bad Image!", "MyHost/foo", "a//b", "x:"):
        message = error(make(tmp_path, f"base_images: ['{bad}']\n"))
        assert f"{bad!r} is not a valid image reference" in message and "fix: write it as docker pull" in message
    # docker's grammar: '__' and dash runs in a path, a host with a port or in brackets, any digest algorithm
    good = ("localhost:5000/team/tool:1.2", "debian:bookworm-slim@sha256:" + "a" * 64, "foo__bar/baz:1",
            "registry.example.invalid/a/b--c:1", "[::1]:5000/foo:1", "foo@sha512:" + "b" * 128, "myhost:5000/x")
    listed = "".join(f"\n  - '{g}'" for g in good)
    assert load(make(tmp_path, f"base_images:{listed}\n"), environ={}).base_images == good


def test_boolean_driver_options_reach_buildx_as_buildx_spells_them(tmp_path: Path) -> None:
    project = load(make(tmp_path, "builder:\n  name: b\n  driver_opts:\n    memory-swap: 1g\n"
                                   "    default-load: true\n"), environ={})
    assert dict(project.builder.driver_opts) == {"memory-swap": "1g", "default-load": "true"}
    typed = load(make(tmp_path, "builder:\n  name: b\n  driver_opts:\n    cpu-quota: 1.10\n"), environ={})
    assert typed.builder.driver_opts["cpu-quota"] == "1.10"  # as typed, not the float 1.1


def test_a_named_builder_is_ensured_first_and_its_buildkit_image_travels(tmp_path: Path) -> None:
    project = load(make(tmp_path, "builder:\n  name: big\n  image: moby/buildkit:v0.13.2\n"), environ={})
    steps = export_plan(project, list(project.services.values())).steps
    assert isinstance(steps[0], EnsureBuilder) and steps[0].image == "moby/buildkit:v0.13.2"
    saves = [s for s in steps if isinstance(s, SaveImages) and "classic" not in s.title]
    assert [s.images for s in saves] == [("busybox:local",), ("moby/buildkit:v0.13.2",)]
    online = builds(export_plan(project, list(project.services.values())))
    assert [b.service for b in online] == ["app"]  # all() over no build would pass
    assert all(b.builder == "big" for b in online)
    offline = plan_offline_builds(project, list(project.services.values()), None)
    assert isinstance(offline.steps[0], EnsureBuilder)
    assert [(b.service, b.builder) for b in builds(offline)] == [("app", "big")]


def test_a_named_builder_reads_base_images_from_the_store_online_too(tmp_path: Path) -> None:
    # Its BuildKit cannot see the engine's images: a bare FROM would be a registry pull.
    project = load(make(tmp_path, "builder:\n  name: big\n"), environ={})
    (build,) = builds(export_plan(project, list(project.services.values())))
    assert build.build_contexts == (("busybox:local", f"oci-layout://{project.store}:base-busybox_local"),)
    own = load(make(tmp_path, ""), environ={})
    assert builds(export_plan(own, list(own.services.values())))[0].build_contexts == ()


def test_a_classic_only_build_does_not_touch_the_named_builder(tmp_path: Path) -> None:
    project = load(make(tmp_path, "builder:\n  name: big\n"), environ={})

    def printed(**flags: bool) -> str:
        console = Console(record=True, width=300)
        building.build(project, None, None, console, dry_run=True, **flags)  # type: ignore[arg-type]
        return console.export_text()

    assert "buildx create" not in printed(classic_only=True)
    assert "buildx create --name big" in printed()


def test_the_manifest_keeps_the_builder() -> None:
    manifest = bundle.Manifest(project="p", version="1", platforms=[], services={}, base_images={},
                               builder={"name": "big", "driver": "docker-container",
                                        "image": "moby/buildkit:v0.13.2", "tag": "base-moby_buildkit_v0.13.2"})
    assert bundle.Manifest.from_json(manifest.to_json(), "m").builder == manifest.builder


def test_the_bake_file_reads_and_writes_the_team_cache_too(tmp_path: Path) -> None:
    project = load(make(tmp_path, REGISTRY), environ={"OFFLINE_CACHE_BACKEND": "registry"})
    target = json.loads(bake.render(project))["target"]["app"]
    assert target["cache-from"][1:] == ["type=registry,ref=127.0.0.1:5000/team/cache:app"]
    assert target["cache-to"][1:] == ["type=registry,ref=127.0.0.1:5000/team/cache:app,mode=max"]


@pytest.mark.parametrize(("buildx", "warns"), [
    ("0.13.1+ds1", True), ("v0.16.2", True), ("0.17.0", False), ("v0.29.1-desktop.1", False), (None, False)])
def test_bake_warns_when_its_buildx_would_drop_the_network(tmp_path: Path, buildx: str | None, warns: bool) -> None:
    project = load(make(tmp_path, ""), environ={})
    warning = bake.network_warning(project, buildx)
    assert (warning is not None) is warns
    if warning:
        assert "--network none" in warning and "offline.build" in warning
    assert bake.network_warning(replace(project, network=None), "0.13.1") is None


def test_s3_without_credentials_is_refused_before_buildx_goes_looking(tmp_path: Path) -> None:
    project = load(make(tmp_path, S3), environ={})
    empty = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    with pytest.raises(OfflineBuildError) as info:
        check_backend(project, empty)
    assert "needs credentials" in str(info.value) and "AWS_ACCESS_KEY_ID" in str(info.value)
    check_backend(project, {**empty, "AWS_ACCESS_KEY_ID": "x"})  # no error
    (tmp_path / "creds").write_text("[default]\n")
    check_backend(project, {**empty, "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "creds")})
    check_backend(project, {**empty, "AWS_CONFIG_FILE": str(tmp_path / "creds")})  # sso, credential_process
    check_backend(project, {**empty, "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token"})  # CI's OIDC


def test_only_a_failed_write_to_the_team_cache_is_blamed_on_it(tmp_path: Path) -> None:
    from offline_build.runners.build import _remote_cache_failure

    project = load(make(tmp_path, REGISTRY), environ={})
    (build,) = builds(export_plan(project, list(project.services.values())))
    registry = "step 'exporting cache to registry' failed: error writing layer blob: connection refused"
    local = "step 'exporting cache to client directory' failed: error writing layer blob: no space left"
    assert _remote_cache_failure(build, registry) == "127.0.0.1:5000/team/cache:app"
    assert _remote_cache_failure(build, local) is None
    assert _remote_cache_failure(build, "step 'RUN make' failed: exit code 2") is None
    s3_project = load(make(tmp_path, S3), environ={})
    (s3,) = builds(export_plan(s3_project, list(s3_project.services.values())))
    assert _remote_cache_failure(s3, "step 'exporting cache to Amazon S3' failed: AccessDenied") == "s3://team-cache"
    # A RUN step that mentions s3 is the build's own failure, not the team cache's.
    assert _remote_cache_failure(s3, "step 'RUN aws s3 cp model.bin .' failed: exit code 1") is None

"""The project file: what is accepted, and one clear error for each kind of mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from offline_build.config import Overrides, load
from offline_build.errors import ConfigError

GOOD = """\
project: shop
version: "2.1"
services:
  backend:
    context: backend
    image: shop/backend
    build_args:
      PIP_INDEX: local
      DEBUG: false
  deer-flow-backend:
    context: dfb
    dockerfile: docker/Dockerfile.prod
    target: runtime
resources:
  - name: model
    url: https://example.invalid/model.bin
    sha256: "%s"
  - name: lib
    git: https://example.invalid/lib.git
    ref: v1.2.0
    dest: src/lib.tar
""" % ("a" * 64)


def make(tmp_path: Path, text: str, files: tuple[str, ...] = ("backend/Dockerfile", "dfb/docker/Dockerfile.prod")) -> Path:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("FROM debian:bookworm-slim\n")
    path = tmp_path / "offline.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_file_resolves_paths_like_compose(tmp_path: Path) -> None:
    project = load(make(tmp_path, GOOD), environ={})
    assert project.name == "shop"
    assert project.version == "2.1"
    assert project.cache_dir == tmp_path / "build-cache"
    backend = project.services["backend"]
    assert backend.dockerfile == tmp_path / "backend" / "Dockerfile"
    assert backend.build_args == {"PIP_INDEX": "local", "DEBUG": "false"}
    dfb = project.services["deer-flow-backend"]
    assert dfb.dockerfile == tmp_path / "dfb" / "docker" / "Dockerfile.prod"
    assert dfb.image == "deer-flow-backend"
    assert dfb.target == "runtime"
    assert [r.kind for r in project.resources] == ["url", "git"]
    assert project.resources[0].dest == "model"
    assert project.network is None


def test_precedence_flag_over_environment_over_file_over_default(tmp_path: Path) -> None:
    path = make(tmp_path, GOOD)
    env = {"OFFLINE_VERSION": "3.0", "CACHE_DIR": "env-cache"}
    assert load(path, environ={}).version == "2.1"
    assert load(path, environ=env).version == "3.0"
    assert load(path, environ=env).cache_dir == tmp_path / "env-cache"
    flagged = load(path, Overrides(version="4.0", cache_dir="flag-cache"), environ=env)
    assert (flagged.version, flagged.cache_dir) == ("4.0", tmp_path / "flag-cache")
    bare = make(tmp_path, GOOD.replace('version: "2.1"\n', ""))
    assert load(bare, environ={}).version == "latest"


@pytest.mark.parametrize("platform", ["linux/", "garbage", "LINUX/AMD64", "linux/amd64/v8/x"])
def test_a_platform_flag_is_checked_as_the_files_platforms_are(tmp_path: Path, platform: str) -> None:
    path = make(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=f"--platform '{platform}' is not a valid platform") as info:
        load(path, Overrides(platforms=("linux/amd64", platform)), environ={})
    assert "e.g. linux/amd64" in str(info.value)
    assert load(path, Overrides(platforms=("linux/arm64", "linux/arm/v7")), environ={}).platforms == (
        "linux/arm64", "linux/arm/v7")


def test_a_build_arg_name_with_an_equals_sign_is_refused(tmp_path: Path) -> None:
    """``{A=B: 1}`` became ``--build-arg A=B=1``: the argument A set to 'B=1'."""
    path = make(tmp_path, GOOD.replace("DEBUG: false", "A=B: 1"))
    with pytest.raises(ConfigError, match="build arg name 'A=B' holds '=' or a space") as info:
        load(path, environ={})
    assert "(NAME: value)" in str(info.value)


def test_version_keeps_what_was_typed(tmp_path: Path) -> None:
    assert load(make(tmp_path, GOOD.replace('"2.1"', "1.10")), environ={}).version == "1.10"


BROKEN = {
    "bad yaml": ("project: shop\nservices: [unclosed\n", 3, "invalid YAML"),
    "empty file": ("", 1, "empty"),
    "top level is a list": ("- project\n", 1, "expected a mapping"),
    "unknown top key": ("project: shop\nservice:\n  a: {}\n", 2, "unknown key 'service'"),
    "unknown service key": (GOOD.replace("    target: runtime", "    targt: runtime"), 13, "did you mean 'target'"),
    "missing services": ("project: shop\n", 1, "missing required key 'services'"),
    "wrong type": (GOOD.replace("    context: backend\n", "    context: [backend]\n"), 5, "expected a single value"),
    "missing dockerfile": (GOOD.replace("docker/Dockerfile.prod", "Dockerfile.missing"), 12, "no Dockerfile at dfb/Dockerfile.missing"),
    "missing context": (GOOD.replace("context: dfb", "context: nowhere"), 11, "is not a folder"),
    "duplicate service": (GOOD.replace("  deer-flow-backend:", "  backend:"), 10, "duplicate key 'backend'"),
    "invalid service name": (GOOD.replace("  deer-flow-backend:", "  Deer_Flow:"), 10, "cannot be a task name"),
    "reserved service name": (GOOD.replace("  deer-flow-backend:", "  offline:"), 10, "reserved"),
    "image with tag": (GOOD.replace("image: shop/backend", "image: shop/backend:1"), 6, "has a tag"),
    "bad sha256": (GOOD.replace("a" * 64, "xyz"), 17, "not a valid sha256"),
    "git without ref": (GOOD.replace("    ref: v1.2.0\n", ""), 18, "needs a 'ref'"),
    "resource escapes bundle": (GOOD.replace("dest: src/lib.tar", "dest: ../../etc/x"), 21, "must stay inside"),
    "bad network": ("project: shop\nnetwork: bridge0\nservices:\n  a: {}\n", 2, "unknown network"),
    "bad platform": (GOOD.replace('version: "2.1"', 'platforms: ["amd64"]'), 2, "not a valid platform"),
    "list as build arg": (GOOD.replace("DEBUG: false", "DEBUG: [1]"), 9, "expected a single value"),
    "no services": ("project: shop\nservices: {}\n", 2, "no services"),
    "a tag of the user's": ("project: !foo shop\nservices:\n  a: {}\n", 1, "the tag '!foo' is not supported"),
    "a python tag": ("project: !!python/object:os.system shop\nservices:\n  a: {}\n", 1, "is not supported"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_project_files_name_file_and_line(tmp_path: Path, name: str) -> None:
    text, line, words = BROKEN[name]
    path = make(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert words in message
    assert info.value.exit_code != 0


def test_a_file_nested_too_deeply_is_named_not_a_recursion_error(tmp_path: Path) -> None:
    path = make(tmp_path, "project: shop\nservices: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply") as info:
        load(path, environ={})
    assert str(info.value).startswith(str(path))


def test_a_list_a_folder_or_latin1_bytes_are_named_with_a_fix(tmp_path: Path) -> None:
    cases = {make(tmp_path / "list", "- project\n"): ("expected a mapping, got a list", "'key: value' lines"),
             tmp_path: ("is a folder, not a project file", "pass --config the offline.yaml itself"),
             make(tmp_path / "latin1", ""): ("not UTF-8 text", "save the file as UTF-8")}
    (tmp_path / "latin1" / "offline.yaml").write_bytes("project: caf\xe9\n".encode("latin-1"))
    for path, (problem, fix) in cases.items():
        with pytest.raises(ConfigError) as info:
            load(path, environ={})
        assert problem in info.value.message and info.value.hint and fix in info.value.hint, info.value


def test_unknown_key_error_names_the_key_path_and_column(tmp_path: Path) -> None:
    path = make(tmp_path, BROKEN["unknown service key"][0])
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert str(info.value).startswith(f"{path}:13:5: services.deer-flow-backend.targt: unknown key 'targt'")


def test_missing_project_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no project file here") as info:
        load(tmp_path / "offline.yaml", environ={})
    assert "quick start" in str(info.value)


def test_bad_version_from_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OFFLINE_VERSION"):
        load(make(tmp_path, GOOD), environ={"OFFLINE_VERSION": "not a tag"})

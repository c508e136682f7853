"""Bad input, told before the engine (issue 34): one message naming the problem and its fix, a non-zero exit,
nothing written, no traceback."""

from __future__ import annotations

import ast
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from offline_build import dockerfile, unpacking
from offline_build.config import Overrides, load
from offline_build.errors import ConfigError, DockerfileError, OfflineBuildError

from .test_boundary import one_message
from .test_cli import DEMO, ROOT, run

SRC = ROOT / "src" / "offline_build"
NO_ENGINE = "unix:///nonexistent.sock"


def demo(tmp_path: Path) -> Path:
    """A copy of the demo project to spoil."""
    shutil.copytree(DEMO, tmp_path / "demo")
    return tmp_path / "demo"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def written(root: Path) -> list[str]:
    """What a refused command may have left in the project: the cache folder, the captures' folder."""
    return [name for name in ("build-cache", "apt-lists", "docker-bake.json") if (root / name).exists()]


# --- 1. replay: lines that start no RUN step ------------------------------------------------------------------
# The demo's backend Dockerfile: 1 FROM, 2-3 one RUN over two lines, 4 COPY, 5 CMD.


@pytest.mark.parametrize(("lines", "there"), [
    ("[999]", "past the end of the file (it has 5 lines)"),
    ("[4]", "line 4 is 'COPY config.json /etc/backend/config.json'"),
    ("[3]", "line 3 is inside the RUN step that starts at line 2"),
    ("[2, 1]", "line 1 is 'FROM debian:bookworm-slim'"),
])
def test_replay_naming_a_line_with_no_run_is_an_error_of_lint_diagnose_and_export(
        tmp_path: Path, lines: str, there: str) -> None:
    root = demo(tmp_path)
    edit(root / "offline.yaml", "    image: demo/backend\n", f"    image: demo/backend\n    replay: {lines}\n")
    line = lines.strip("[]").split(", ")[-1]
    for args in (["offline.lint"], ["offline.export", "--dry-run"], ["offline.bake", "--dry-run"]):
        out = run(args, root)
        assert out.returncode != 0, (args, out)
        message = one_message(out.stderr)
        assert f"services.backend.replay names line {line} of " in message, message
        assert there in message, message
        assert "\n  fix: list the line numbers where the RUN steps to replay start (here: 2)" in message, message
    diagnosed = run(["offline.diagnose", "--json", "--host", NO_ENGINE], root)
    assert diagnosed.returncode == 1, diagnosed
    rows = {(c["area"], c["name"]): c for c in json.loads(diagnosed.stdout)["checks"]}
    row = rows[("service backend", "Dockerfile")]
    assert row["status"] == "fail" and there in row["detail"] and row["fix"].startswith("list the line numbers")
    assert written(root) == []


@pytest.mark.parametrize("off", ["captures:\n  replay: false\n", "    replay: false\n"], ids=["project", "service"])
def test_replay_lines_are_not_checked_when_the_replay_capture_is_off(tmp_path: Path, off: str) -> None:
    """Off, the capture reads no replay lines: a project that names a stale one loads, as it did before the check."""
    root = demo(tmp_path)
    if off.startswith("captures"):
        edit(root / "offline.yaml", "services:\n", f"{off}services:\n")
        edit(root / "offline.yaml", "    image: demo/backend\n", "    image: demo/backend\n    replay: [999]\n")
    else:
        edit(root / "offline.yaml", "    image: demo/backend\n", f"    image: demo/backend\n{off}")
    for args in (["offline.lint"], ["offline.export", "--dry-run"], ["offline.bake", "--dry-run"]):
        out = run(args, root)
        assert "replay names line" not in out.stdout + out.stderr, (args, out)
        assert out.returncode == 0, (args, out)


# --- 2. platforms: architectures docker builds for ------------------------------------------------------------

GOOD = "project: shop\nservices:\n  app: {}\n"


def project_file(tmp_path: Path, text: str) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    path = tmp_path / "offline.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("platform", "problem"), [
    ("linux/amd65", "unknown architecture 'amd65'"),
    ("linux/arm/v9", "unknown variant 'v9' of arm"),
    ("linux/arm64/v7", "unknown variant 'v7' of arm64"),
])
def test_an_unknown_architecture_is_refused_from_the_flag_and_the_file(tmp_path: Path, platform: str,
                                                                        problem: str) -> None:
    path = project_file(tmp_path, GOOD)
    with pytest.raises(ConfigError) as flag:
        load(path, Overrides(platforms=("linux/amd64", platform)), environ={})
    assert flag.value.message == f"{path}: --platform {platform!r} is not a valid platform: {problem}"
    in_file = project_file(tmp_path, f"project: shop\nplatforms: [linux/arm64, {platform}]\nservices:\n  app: {{}}\n")
    with pytest.raises(ConfigError) as read:
        load(in_file, environ={})
    assert read.value.message == f"{path}:2:26: platforms[1]: {platform!r} is not a valid platform: {problem}"
    for hint in (flag.value.hint, read.value.hint):
        assert hint is not None and hint.startswith("use an architecture docker builds for, e.g. linux/arm64: "), hint
        for arch in ("amd64 (v1-v4)", "arm64", "arm (v5, v6, v7, v8)", "386", "ppc64", "ppc64le", "mips", "mipsle",
                     "mips64", "mips64le", "loong64", "riscv64", "s390x", "wasm"):
            assert arch in hint, (arch, hint)


@pytest.mark.parametrize(("platform", "canonical"), [
    ("linux/x86_64", "linux/amd64"), ("linux/aarch64", "linux/arm64"), ("linux/armhf", "linux/arm/v7"),
    ("linux/armel", "linux/arm/v6"), ("linux/i386", "linux/386"),
])
def test_an_architecture_docker_calls_otherwise_is_refused_with_its_docker_name(tmp_path: Path, platform: str,
                                                                               canonical: str) -> None:
    """docker takes these aliases, but names folders and TARGETARCH by its own names: the fix gives that one."""
    alias, docker_name = platform.split("/", 1)[1], canonical.split("/", 1)[1]
    path = project_file(tmp_path, GOOD)
    with pytest.raises(ConfigError) as flag:
        load(path, Overrides(platforms=(platform,)), environ={})
    assert flag.value.message == (f"{path}: --platform {platform!r} is not a valid platform: "
                                  f"architecture {alias!r} is not docker's name for it")
    in_file = project_file(tmp_path, f"project: shop\nplatforms: [{platform}]\nservices:\n  app: {{}}\n")
    with pytest.raises(ConfigError) as read:
        load(in_file, environ={})
    for told in (flag.value, read.value):
        assert told.hint == f"docker calls {alias} {docker_name}: write {canonical}", told


def test_every_known_architecture_is_taken(tmp_path: Path) -> None:
    """The OCI image spec's architectures and variants, on any OS docker names: none may drop out of the list."""
    known = ("linux/amd64", "linux/amd64/v2", "linux/arm64", "linux/arm64/v8", "linux/arm", "linux/arm/v6",
             "linux/arm/v7", "linux/arm/v8", "linux/386", "linux/ppc64", "linux/ppc64le", "linux/s390x",
             "linux/riscv64", "linux/mips", "linux/mipsle", "linux/mips64", "linux/mips64le", "linux/loong64",
             "wasi/wasm", "windows/amd64", "darwin/arm64", "freebsd/amd64")
    assert load(project_file(tmp_path, GOOD), Overrides(platforms=known), environ={}).platforms == known
    listed = project_file(tmp_path, f"project: shop\nplatforms: [{', '.join(known)}]\nservices:\n  app: {{}}\n")
    assert load(listed, environ={}).platforms == known


def test_export_for_an_unknown_architecture_plans_nothing(tmp_path: Path) -> None:
    root = demo(tmp_path)
    out = run(["offline.export", "--dry-run", "--platform", "linux/amd65"], root)
    assert out.returncode == 2 and out.stdout == "", out
    assert "--platform 'linux/amd65' is not a valid platform: unknown architecture 'amd65'" in one_message(out.stderr)
    assert "linux_amd65" not in out.stdout and written(root) == []


# --- 3. every refusal of the project file carries a fix -------------------------------------------------------

BASE = """\
project: shop
version: "1.0"
services:
  app:
    context: app
    build_args:
      DEBUG: "false"
resources:
  - name: model
    url: https://example.invalid/model.bin
"""

# name -> (the file, or (old, new) in BASE; words of the problem). Each reaches one raise site at least.
BAD_FILES: dict[str, tuple[str | tuple[str, str], str]] = {
    "a list as version": (('version: "1.0"', "version: [1, 2]"), "expected a single value, got a list"),
    "a string as replay": (("    context: app\n", '    context: app\n    replay: "yes"\n'), "expected a list, got 'yes'"),
    "a tab in the YAML": (("  app:\n", "  app:\n\t"), "invalid YAML: found character '\\t'"),
    "a tab as indent": (("    context: app\n", "\tcontext: app\n"), "invalid YAML"),
    "a project name with ø": (("project: shop", "project: spø"), "'spø' is not a valid project name"),
    "unclosed bracket": (("version: \"1.0\"", "version: [1.0"), "invalid YAML"),
    "a control character": (("project: shop", "project: sh\x07op"), "invalid YAML"),
    "a list as a key": (("version: \"1.0\"", "[a]: 1"), "keys must be plain strings"),
    "a top key twice": (("version: \"1.0\"", "project: again"), "duplicate key 'project'"),
    "no project": (("project: shop\n", ""), "missing required key 'project'"),
    "a resource without name": (("  - name: model\n    url:", "  - url:"), "missing required key 'name'"),
    "services as a list": ("project: shop\nservices: [app]\n", "expected a mapping, got a list"),
    "build args as a list": (('      DEBUG: "false"', "      - DEBUG"), "expected a mapping, got a list"),
    "an empty build arg name": (('      DEBUG: "false"', '      "": x'), "keys must be non-empty strings"),
    "a service twice": (("resources:", "  app:\n    context: app\nresources:"), "duplicate key 'app'"),
    "platforms as text": (('version: "1.0"', "platforms: linux/amd64"), "expected a list, got 'linux/amd64'"),
    "yes as project": (("project: shop", "project: yes"), "expected a string, got bool True"),
    "nothing as context": (("    context: app", "    context:"), "expected a string, got nothing"),
    "an empty image": (("    context: app", '    context: app\n    image: ""'), "must not be empty"),
    "nothing as a build arg": (('      DEBUG: "false"', "      DEBUG:"), "expected a string, got nothing"),
    "a list as a build arg": (('      DEBUG: "false"', "      DEBUG: [1]"), "expected a single value"),
    "maybe as a boolean": (('version: "1.0"', "apt: {enabled: maybe}"), "expected true or false"),
    "a capture switched maybe": (('version: "1.0"', "captures: {pip: maybe}"), "expected true or false"),
    "a bad platform": (('version: "1.0"', "platforms: [amd64]"), "'amd64' is not a valid platform"),
    "a bad resource name": (("name: model", "name: Model"), "'Model' is not a valid resource name"),
    "a bad sha256": (("    url: https://example.invalid/model.bin", ("    url: https://example.invalid/model.bin\n"
                                                                 "    sha256: xyz")), "'xyz' is not a valid sha256"),
    "two resources of one name": (("    url: https://example.invalid/model.bin",
                                   ("    url: https://example.invalid/m\n"
                                    "  - name: model\n    url: https://example.invalid/n")),
                                  "two resources share the name 'model'"),
    "a resource of two kinds": (("    url: https://example.invalid/model.bin",
                                 ("    url: https://example.invalid/m\n"
                                  "    path: app")), "needs exactly one of url, git, path (has 2)"),
    "an ftp resource": (("https://example.invalid/model.bin", "ftp://example.invalid/model.bin"),
                        "is not an http(s) URL"),
    "a bad builder name": (('version: "1.0"', "builder: {name: Bad_Name}"), "'Bad_Name' is not a valid builder name"),
    "an endpoint without remote": (('version: "1.0"', "builder: {name: b, endpoint: 'tcp://x:1'}"),
                                   "endpoint is for the remote driver, not docker-container"),
    "an image for a remote builder": (('version: "1.0"', ("builder: {name: b, driver: remote, endpoint: 'tcp://x:1', "
                                                          "image: 'moby/buildkit:v0.13'}")),
                                      "image is for the docker-container driver, not remote"),
    "a compose file without services": (('version: "1.0"', "services_from: compose.yaml"),
                                        "no 'services' in the compose file"),
    "a list as ca_file": (('version: "1.0"', "ca_file: [a, b]"), "expected a single value"),
    "trusted keys as text": (('version: "1.0"', "signing: {trusted_keys: team.pub}"), "expected a list"),
    "an unknown key": (('version: "1.0"', "verison: 1"), "unknown key 'verison'"),
    "a tag of the user's": (("project: shop", "project: !shop shop"), "is not supported"),
}


def spoil(tmp_path: Path, how: str | tuple[str, str]) -> Path:
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (tmp_path / "compose.yaml").write_text("version: '3'\n")
    text = how if isinstance(how, str) else BASE.replace(*how, 1)
    assert text != BASE
    path = tmp_path / "offline.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", BAD_FILES)
def test_every_refusal_of_the_project_file_names_a_fix(tmp_path: Path, name: str) -> None:
    how, problem = BAD_FILES[name]
    path = spoil(tmp_path, how)
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    first, *rest = str(info.value).splitlines()
    assert first.startswith(str(tmp_path)) and problem in first, first  # the project file, or its compose file
    assert len(rest) == 1 and rest[0].startswith("  fix: ") and len(rest[0]) > len("  fix: ") + 10, str(info.value)


def test_the_base_of_the_bad_files_is_good(tmp_path: Path) -> None:
    path = spoil(tmp_path, BASE + "\n")
    assert load(path, environ={}).name == "shop"


@pytest.mark.parametrize("how", [("version: \"1.0\"", "version: [1, 2]"),
                                 ("    context: app\n", '    context: app\n    replay: "yes"\n'),
                                 ("  app:\n", "  app:\n\t"), ("project: shop", "project: spø")])
def test_the_command_line_tells_the_fix_of_a_broken_project_file(tmp_path: Path, how: tuple[str, str]) -> None:
    path = spoil(tmp_path, how)
    out = run(["offline.lint"], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out
    first, fix = out.stderr.splitlines()
    assert first.startswith(f"offline-build: {path}:") and fix.startswith("  fix: "), out.stderr


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _named(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def test_every_raise_site_of_a_project_file_refusal_gives_a_fix() -> None:
    """Property over the source: a ConfigError, a node's error() and a checked string() each carry a hint."""
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        for call in _calls(ast.parse(path.read_text(), str(path))):
            keywords = {k.arg for k in call.keywords}
            name = _named(call)
            if name == "ConfigError" and "hint" not in keywords:
                missing.append(f"{path.name}:{call.lineno}: ConfigError without hint=")
            elif name == "error" and isinstance(call.func, ast.Attribute) and len(call.args) == 1 \
                    and "hint" not in keywords:
                missing.append(f"{path.name}:{call.lineno}: .error() without a hint")
            elif name == "string" and call.args and len(call.args) < 3 and "hint" not in keywords:
                missing.append(f"{path.name}:{call.lineno}: .string() checked against a pattern without a hint")
    assert missing == []


# --- 6. Dockerfiles docker refuses, or builds otherwise than they read ------------------------------------------

REFUSED = {
    "unknown instruction": ("FROM debian:bookworm-slim\nRUN true\nFROBNICATE --hard /x\n",
                            "Dockerfile:3: unknown instruction 'FROBNICATE'",
                            "use one of docker's instructions (ADD, ARG, CMD, COPY"),
    "two stages of one name": ("FROM debian:bookworm-slim AS a\nRUN true\n\nFROM debian:bookworm-slim as A\n",
                               ("Dockerfile:4: a second stage named 'a' (the first is at line 1): docker build "
                                "only warns (DuplicateStageName) and quietly builds from the later one"),
                               "give each stage a name of its own"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_dockerfile_docker_refuses_is_refused_by_the_parser(case: str) -> None:
    """An unknown instruction docker build refuses; two stages of one name it builds from the later, warning only."""
    text, problem, fix = REFUSED[case]
    with pytest.raises(DockerfileError) as info:
        dockerfile.parse_text(text, "Dockerfile")
    assert info.value.message == problem and info.value.hint and info.value.hint.startswith(fix), info.value
    assert "refuses the file too" not in info.value.hint  # docker build takes two stages of one name


@pytest.mark.parametrize("case", REFUSED)
def test_lint_bake_and_build_refuse_a_dockerfile_docker_refuses(tmp_path: Path, case: str) -> None:
    text, problem, fix = REFUSED[case]
    root = demo(tmp_path)
    dockerfile_path = root / "services" / "web" / "web.Dockerfile"
    dockerfile_path.write_text(text)
    for args in (["offline.lint"], ["offline.lint", "--path", str(dockerfile_path)], ["offline.bake", "--dry-run"],
                 ["offline.bake"], ["offline.build", "--dry-run"], ["web.offline-build", "--dry-run"]):
        out = run(args, root)
        assert out.returncode == 2, (args, out)
        message = one_message(out.stderr)
        assert f"{dockerfile_path}:{problem.split(':', 1)[1]}\n  fix: {fix}" in message, (args, message)
    assert written(root) == []


# Each of docker's instructions, with arguments docker takes: the refusal of unknown ones must take every one.
VALID = {
    "ADD": "a.txt /a.txt", "ARG": "X=1", "CMD": '["true"]', "COPY": "a.txt /a.txt", "ENTRYPOINT": '["/bin/sh"]',
    "ENV": "A=1", "EXPOSE": "80/tcp", "FROM": "debian:bookworm-slim AS two", "HEALTHCHECK": "CMD true",
    "LABEL": 'a="b"', "MAINTAINER": "someone", "ONBUILD": "RUN true", "RUN": "true",
    "SHELL": '["/bin/sh", "-c"]', "STOPSIGNAL": "SIGTERM", "USER": "nobody", "VOLUME": "/data", "WORKDIR": "/app",
}


def test_the_valid_instructions_are_docker_s_eighteen() -> None:
    assert sorted(VALID) == sorted(dockerfile.INSTRUCTIONS) and len(VALID) == 18


@pytest.mark.parametrize("word", [w for name in VALID for w in (name, name.lower())])
def test_each_instruction_docker_takes_parses_in_either_case(word: str) -> None:
    df = dockerfile.parse_text(f"FROM debian:bookworm-slim\n{word} {VALID[word.upper()]}\n", "Dockerfile")
    if word.upper() == "FROM":
        assert [s.name for s in df.stages] == [None, "two"]
    else:
        assert [(i.cmd, i.line) for i in df.stages[0].instructions] == [(word.upper(), 2)]


@pytest.mark.parametrize(("text", "check"), [
    ("FROM debian:bookworm-slim\nONBUILD RUN apt-get update\n",
     lambda df: [(i.cmd, i.value) for i in df.stages[0].instructions] == [("ONBUILD", ("apt-get update",))]),
    ("FROM debian:bookworm-slim\nCOPY <<EOT /etc/motd\nhello\nEOT\nRUN true\n",
     lambda df: [(i.cmd, i.line) for i in df.stages[0].instructions] == [("COPY", 2), ("RUN", 5)]
     and df.stages[0].instructions[0].heredocs == ("hello\n",)),
    ("# escape=`\nFROM debian:bookworm-slim\nRUN echo a `\n    && echo b\n",
     lambda df: df.directives == {"escape": "`"} and df.stages[0].instructions[0].end_line == 4),
    ("FROM --platform=$BUILDPLATFORM debian:bookworm-slim AS Build\nRUN true\nFROM build\n",
     lambda df: df.stages[0].name == "build" and df.is_stage_ref(df.stages[1].base, 1)
     and df.base_images() == ["debian:bookworm-slim"]),
], ids=["ONBUILD RUN", "COPY <<EOT", "escape=`", "AS Build, FROM build"])
def test_docker_s_other_forms_parse(text: str, check: Callable[[dockerfile.Dockerfile], bool]) -> None:
    assert check(dockerfile.parse_text(text, "Dockerfile"))


# --- 4. and 5. a bundle that is no bundle, named before anything else -----------------------------------------

NOT_A_TAR = "pass the build-cache-*.tar offline.export wrote, or the folder of its parts"


def test_sbom_of_a_file_that_is_no_tar_is_one_message(tmp_path: Path) -> None:
    root = demo(tmp_path)
    junk = tmp_path / "notes.tar"
    junk.write_text("hello\n")
    out = run(["offline.sbom", "--bundle", str(junk)], root)
    assert out.returncode == 1 and out.stdout == "", out
    assert one_message(out.stderr) == (f"offline-build: error: {junk}: not a bundle (not a tar archive)\n"
                                       f"  fix: {NOT_A_TAR}\n")


@pytest.mark.parametrize("content", [b"", b"hello\n", b"not a tar at all" * 100, b"PK\x03\x04" + bytes(600)])
def test_open_archive_tells_a_file_that_is_no_tar_in_one_line(tmp_path: Path, content: bytes) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(content)
    with pytest.raises(OfflineBuildError) as info:
        unpacking.open_archive(junk)
    assert str(info.value) == f"{junk}: not a bundle (not a tar archive)\n  fix: {NOT_A_TAR}"


def test_a_tar_cut_in_its_first_header_is_still_a_damaged_copy(tmp_path: Path) -> None:
    import io
    import tarfile

    whole = io.BytesIO()
    with tarfile.open(fileobj=whole, mode="w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    for cut in (300, 100):
        cut_short = tmp_path / f"cut-{cut}.tar"
        cut_short.write_bytes(whole.getvalue()[:cut])
        with pytest.raises(OfflineBuildError) as told:
            unpacking.open_archive(cut_short)
        assert told.value.message.startswith(f"{cut_short} is damaged or truncated ("), told.value
        assert told.value.hint == "the copy is damaged or truncated: copy it again"
        assert "\n" not in told.value.message


@pytest.mark.parametrize("what", ["missing", "folder", "not a tar"])
def test_setup_names_a_bad_bundle_before_the_engine_and_writes_nothing(tmp_path: Path, what: str) -> None:
    root = demo(tmp_path)
    given = {"missing": tmp_path / "nope.tar", "folder": tmp_path / "a-folder", "not a tar": tmp_path / "notes.tar"}
    given["folder"].mkdir()
    given["not a tar"].write_text("hello\n")
    out = run(["offline.setup", "--bundle", str(given[what]), "--host", NO_ENGINE], root)
    assert out.returncode == 1, out
    message = one_message(out.stderr)
    assert message.startswith(f"offline-build: error: {given[what]}"), message
    assert "Docker engine" not in message
    assert written(root) == []


@pytest.mark.parametrize("damage", ["missing part", "short part", "no parts.json"])
def test_setup_names_a_bad_parts_folder_before_the_engine_and_writes_nothing(tmp_path: Path, damage: str) -> None:
    from offline_build import parts

    from .helpers import pack, project

    folder = parts.split(pack(project(tmp_path / "online")), 4096)
    first = min(folder.glob("*.tar.*"))
    if damage == "missing part":
        first.unlink()
    elif damage == "short part":
        first.write_bytes(first.read_bytes()[:-1])
    else:
        (folder / parts.PARTS).unlink()
    root = demo(tmp_path)
    out = run(["offline.setup", "--bundle", str(folder), "--host", NO_ENGINE], root)
    assert out.returncode == 1, out
    message = one_message(out.stderr)
    assert message.startswith(f"offline-build: error: {folder}"), message
    assert "Docker engine" not in message
    assert written(root) == []


def test_setup_hashes_each_part_of_a_split_bundle_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check before the engine reads parts.json and the parts' sizes; the unpack hashes every part, once."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from offline_build import parts
    from offline_build import setup as setup_mod
    from offline_build.files import sha256_file

    from .helpers import pack, project

    folder = parts.split(pack(project(tmp_path / "online")), 4096)
    names = sorted(p.name for p in folder.glob("*.tar.*"))
    assert len(names) > 1, names
    hashed: list[str] = []

    def counted(path: Path) -> str:
        hashed.append(path.name)
        return sha256_file(path)

    class Probed(Exception):
        """The unpack is done: setup asks the engine what it reads next."""

    def probe(*_: object, **__: object) -> None:
        raise Probed

    monkeypatch.setattr(parts, "sha256_file", counted)
    monkeypatch.setattr(setup_mod, "check_engine", lambda docker: None)
    monkeypatch.setattr(setup_mod, "probe_engine", probe)
    with pytest.raises(Probed):
        no_engine: Any = SimpleNamespace()  # check_engine and probe_engine are stand-ins: nothing asks it
        setup_mod.setup(project(tmp_path / "site"), folder, no_engine, Console(file=io.StringIO()))
    assert sorted(hashed) == names


# --- 7. and 8. signing keys ------------------------------------------------------------------------------------


def test_signing_with_the_public_key_says_so_before_any_permission_advice(tmp_path: Path,
                                                                          keys: dict[str, Path]) -> None:
    from offline_build import signing

    public = keys["team.pub"]
    public.chmod(0o644)  # as keygen writes it: a permission warning would advise chmod 600 on it
    root = demo(tmp_path)
    out = run(["offline.export", "--dry-run", "--sign", str(public)], root)
    assert out.returncode == 1, out
    assert "chmod" not in out.stdout + out.stderr and out.stdout == "", out
    assert one_message(out.stderr) == (
        f"offline-build: error: {public} is a public key: signing needs the secret key\n"
        f"  fix: give --sign (or signing.key) the secret key ({keys['team']} if it is this key's pair), not the .pub\n")
    assert written(root) == []
    with pytest.raises(signing.SigningError, match="is a public key: signing needs the secret key"):
        signing.load_signer(public)


@pytest.mark.parametrize("secret_name", ["team.key", "team.sec", "team", "my.team.key"])
def test_signing_with_the_public_key_names_the_secret_key_keygen_wrote_beside_it(tmp_path: Path,
                                                                                 secret_name: str) -> None:
    """keygen writes X.key and X.pub, else X and X.pub (team.sec, team.sec.pub): either pair is found from its .pub."""
    from offline_build import signing

    secret, public = signing.keygen(tmp_path / "keys" / secret_name, None)
    with pytest.raises(signing.SigningError) as told:
        signing.load_signer(public)
    assert told.value.hint == (f"give --sign (or signing.key) the secret key ({secret} if it is this key's pair), "
                               "not the .pub")


def test_keygen_quotes_a_path_with_a_space_in_its_hints(tmp_path: Path) -> None:
    import shlex

    key = tmp_path / "my keys" / "team.key"
    out = run(["offline.keygen", "--key", str(key)], tmp_path)
    assert out.returncode == 0, out
    said = " ".join(out.stdout.split())  # however the console wrapped it
    assert f"sign with: offline.export --sign {shlex.quote(str(key))};" in said, said
    assert f"offline.setup --trust {shlex.quote(str(key.with_suffix('.pub')))}" in said, said
    from offline_build import signing

    key.chmod(0o644)
    assert signing.loose_permissions(key).endswith(f": run chmod 600 {shlex.quote(str(key))}")


# --- 9. setup --dry-run tells an unchecked proof as diagnose does ---------------------------------------------


def test_setup_dry_run_says_an_unsigned_proof_only_claims(tmp_path: Path) -> None:
    import io

    from python_on_whales import DockerClient
    from rich.console import Console

    from offline_build import diagnose, proof, setup

    from .test_bundle import pack, project

    online = project(tmp_path / "online")
    archive = pack(online)
    sha = unpacking.load_manifest(archive)[1]
    proven = proof.Proof(manifest_sha256=sha, level="edits", passed=True, when="2026-12-04T10:00:00Z",
                         engine={"server_version": "27.3.1", "image_store": "containerd", "platforms": "linux/amd64"},
                         airtight={"result": "air-tight"}, empty={"result": "empty"})
    proof.write_proof(archive, proven, None)  # no key signed it: it only claims
    offline = project(tmp_path / "offline")
    said = io.StringIO()
    setup.setup(offline, archive, DockerClient(host=NO_ENGINE), Console(file=said, width=10_000), dry_run=True)
    (line,) = [x for x in said.getvalue().splitlines() if x.startswith("# proof: ")]
    assert line.startswith("# proof: claims edit loop proven "), line
    row = diagnose._proof(offline, archive)
    assert row.detail == f"{archive.name}: {line.removeprefix('# proof: ')}", (row, line)


# --- 10. the docker CLI: none, or one that says the engine is away with exit 0 --------------------------------

UNREACHABLE = "Cannot connect to the Docker daemon at unix:///nonexistent.sock. Is the docker daemon running?"
# What a docker CLI before 27 does without its engine: `docker info` prints an empty info and exits 0.
OLD_CLI = f"""#!/bin/sh
for a in "$@"; do
  case "$a" in
    info) echo '{{"ServerVersion":"","ServerErrors":["{UNREACHABLE}"]}}'; exit 0;;
    version) echo '{{"Client":{{"Version":"26.1.5"}},"Server":null}}'; echo '{UNREACHABLE}' >&2; exit 1;;
  esac
done
echo '{UNREACHABLE}' >&2
exit 1
"""
# A CLI from 27 on: every command that needs the engine fails.
NEW_CLI = f"""#!/bin/sh
echo '{UNREACHABLE}' >&2
exit 1
"""


def docker_cli(folder: Path, script: str | None) -> dict[str, str]:
    """PATH holding only *script* as ``docker`` (None: no docker at all): the machine's own CLI is never used."""
    folder.mkdir()
    if script is not None:
        (folder / "docker").write_text(script)
        (folder / "docker").chmod(0o755)
    return {"PATH": str(folder)}


@pytest.mark.parametrize(("cli", "told"), [
    (None, "the docker command is not on PATH\n  fix: install the Docker CLI"),
    (OLD_CLI, f"cannot reach the Docker engine: {UNREACHABLE}\n  fix: start the engine"),
    (NEW_CLI, f"cannot reach the Docker engine: {UNREACHABLE}\n  fix: start the engine"),
])
def test_a_classic_build_without_a_docker_cli_or_engine_writes_nothing(tmp_path: Path, cli: str | None,
                                                                       told: str) -> None:
    root = demo(tmp_path)
    out = run(["offline.build-classic", "--host", NO_ENGINE, "--cache-dir", str(tmp_path / "new-cache")], root,
              **docker_cli(tmp_path / "bin", cli))
    assert out.returncode == 1, out
    assert one_message(out.stderr).startswith(f"offline-build: error: {told}"), out.stderr
    assert "==>" not in out.stdout, out.stdout  # no step began
    assert not (tmp_path / "new-cache").exists() and written(root) == []

"""The console script and inv: same task tree, clean errors, dry runs that touch nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.unit.helpers import DEMO, ROOT, SCRIPT, run


def task_names(listing: str) -> set[str]:
    """Task names from --list output (wrapped help lines are indented deeper)."""
    return {line.split()[0] for line in listing.splitlines()
            if line.startswith("  ") and not line.startswith("   ")}


def test_console_script_lists_the_same_tasks_as_inv() -> None:
    ours = run(["--list"], DEMO)
    assert ours.returncode == 0, ours.stderr
    inv = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert task_names(ours.stdout) == task_names(inv.stdout) - {"dev.test", "dev.engines"}
    assert {"offline.export", "backend.offline-build", "worker.offline-export"} <= task_names(ours.stdout)


def test_dry_run_prints_the_exact_buildx_command() -> None:
    out = run(["backend.offline-build", "--dry-run"], DEMO)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    (line,) = [x for x in lines if x.startswith("docker buildx build --progress rawjson ")]
    assert "--network none" in line and "--tag demo/backend:1.0.0" in line
    # The classic fallback is planned too, and shown after the BuildKit build it stands in for.
    assert lines[-2] == "# only if this engine's BuildKit cannot build backend, the classic builder:"
    assert lines[-1].startswith("env DOCKER_BUILDKIT=0 docker build --file ")
    assert lines.index(line) < len(lines) - 2


def test_dry_run_with_no_fallback_shows_only_buildkit() -> None:
    out = run(["backend.offline-build", "--dry-run", "--no-fallback"], DEMO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("docker buildx build --progress rawjson ")
    assert "DOCKER_BUILDKIT=0" not in out.stdout


def test_version_flag_and_environment_reach_the_tag() -> None:
    assert "--tag demo/web:7.7" in run(["web.offline-build", "--dry-run"], DEMO, OFFLINE_VERSION="7.7").stdout
    assert "--tag demo/web:8.8" in run(["web.offline-build", "--dry-run", "--version", "8.8"], DEMO,
                                       OFFLINE_VERSION="7.7").stdout


def test_config_flag_picks_another_project_file(tmp_path: Path) -> None:
    shutil.copytree(DEMO, tmp_path / "demo")
    (tmp_path / "demo" / "offline.yaml").rename(tmp_path / "demo" / "other.yaml")
    out = run(["--config", "demo/other.yaml", "--list"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "web.offline-build" in out.stdout


def test_broken_project_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "offline.yaml").write_text("project: x\nservices:\n  a:\n    contxt: .\n")
    out = run(["--list"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"offline-build: {tmp_path / 'offline.yaml'}:4:5: services.a.contxt: "
                                  "unknown key 'contxt'\n  fix: did you mean 'context'?")
    assert "Traceback" not in out.stderr


def test_no_project_file_says_what_to_do(tmp_path: Path) -> None:
    out = run(["--list"], tmp_path)
    assert out.returncode == 2
    assert "no project file here" in out.stderr and "Traceback" not in out.stderr


def test_a_failing_task_exits_non_zero_with_one_message(tmp_path: Path) -> None:
    out = run(["offline.setup", "--cache-dir", str(tmp_path / "empty")], DEMO)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "offline-build: error:" in out.stderr


def test_every_task_and_flag_has_help() -> None:
    listing = run(["--list"], DEMO).stdout
    for name in sorted(task_names(listing)):
        text = run(["--help", name], DEMO).stdout
        docstring = text.split("Docstring:")[1].split("\n")[1].strip() if "Docstring:" in text else ""
        assert docstring and docstring.lower() != "none", f"{name} has no help line"
        options = text.split("Options:")[1] if "Options:" in text else ""
        for line in options.splitlines():
            if line.strip().startswith("--"):
                assert len(line.split(None, 1)) == 2, f"{name}: flag without help: {line}"


def test_lint_exit_codes_and_json() -> None:
    assert run(["offline.lint"], DEMO).returncode == 0  # one warning, on purpose (worker's cache mount)
    strict = run(["offline.lint", "--strict"], DEMO)
    assert strict.returncode == 1
    assert "services/worker/Dockerfile:8:5: warning cache-mount" in strict.stdout
    corpus = ROOT / "tests" / "lint-corpus" / "node-npm.Dockerfile"
    errors = run(["offline.lint", "--path", str(corpus), "--format", "json"], DEMO)
    assert errors.returncode == 1
    data = __import__("json").loads(errors.stdout)
    assert data["summary"]["error"] == 1 and data["findings"][0]["rule"] == "npm-install"
    bad = run(["offline.lint", "--format", "yaml"], DEMO)
    assert bad.returncode == 2 and "unknown --format 'yaml'" in bad.stderr


def test_without_the_docker_command_tasks_say_so_and_bake_still_writes(tmp_path: Path) -> None:
    shutil.copytree(DEMO, tmp_path / "demo")
    bare = {"PATH": str(tmp_path / "empty")}  # sys.executable is absolute: Python needs no PATH
    out = run(["offline.build"], tmp_path / "demo", **bare)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "the docker command is not on PATH" in out.stderr and "docker.io" in out.stderr
    baked = run(["offline.bake", "--output", str(tmp_path / "bake.json")], tmp_path / "demo", **bare)
    assert baked.returncode == 0, baked.stderr
    assert (tmp_path / "bake.json").is_file()


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    # Enough tasks that --list fills the pipe, so writing goes on after the reader left (`| head -1`).
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    services = "".join(f"  service-{i}:\n    context: .\n" for i in range(300))
    (tmp_path / "offline.yaml").write_text(f"project: big\nservices:\n{services}")
    environ = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    with subprocess.Popen([*SCRIPT, "--list"], cwd=tmp_path, env=environ, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.readline() == "Subcommands:\n"
        child.stdout.close()
        stderr = child.stderr.read()
        assert child.wait(timeout=60) == 141  # as a shell reports a process stopped by SIGPIPE
    assert stderr == ""


CORPUS = ROOT / "tests" / "lint-corpus" / "node-npm.Dockerfile"


def test_outside_a_project_version_help_and_lint_of_a_file_work(tmp_path: Path) -> None:
    from offline_build import __version__

    version = run(["--version"], tmp_path)
    assert (version.returncode, version.stdout) == (0, f"offline-build {__version__}\n")
    for args in (["--help"], []):
        shown = run(args, tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert task_names(shown.stdout.split("Subcommands:")[1]) == {"offline.lint", "offline.keygen", "offline.init"}
        assert "appear where an offline.yaml is" in shown.stdout
    linted = run(["offline.lint", "--path", str(CORPUS)], tmp_path)
    assert linted.returncode == 1 and "error npm-install" in linted.stdout, linted.stderr
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\nCOPY . /app\n")
    clean = run(["offline.lint", "--path", "Dockerfile"], tmp_path)
    assert clean.returncode == 0, clean.stderr
    made = run(["offline.keygen", "--key", "keys/team.key"], tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "keys" / "team.key").is_file() and (tmp_path / "keys" / "team.pub").is_file()
    assert "offline.export --sign keys/team.key" in made.stdout
    again = run(["offline.keygen", "--key", "keys/team.key"], tmp_path)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.startswith("offline-build: error: keys/team.key already exists\n  fix: ")


def test_outside_a_project_every_other_task_says_so_and_exits_2(tmp_path: Path) -> None:
    for args in (["offline.export", "--dry-run"], ["backend.offline-build"], ["--help", "offline.setup"],
                 ["offline.lint"], ["--list"]):
        out = run(args, tmp_path)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert f"{tmp_path / 'offline.yaml'}: no project file here" in out.stderr, args
        assert "Traceback" not in out.stderr and out.stdout == "", args


def test_config_and_f_both_name_the_project_file_and_help_says_so(tmp_path: Path) -> None:
    help_text = run(["--help"], DEMO).stdout
    (line,) = [x for x in help_text.splitlines() if "--config" in x]
    assert line.split()[:3] == ["-f", "STRING,", "--config=STRING"] and "project file" in line
    assert "Runtime configuration" not in help_text
    shutil.copytree(DEMO, tmp_path / "demo")
    (tmp_path / "demo" / "offline.yaml").rename(tmp_path / "demo" / "other.yaml")
    for args in (["-f", "other.yaml"], ["-f=other.yaml"], ["-fother.yaml"], ["--config=other.yaml"]):
        out = run([*args, "--list"], tmp_path / "demo")
        assert out.returncode == 0, (args, out.stderr)
        assert "web.offline-build" in task_names(out.stdout), args
    # A cluster invoke would read as its own runtime configuration is refused, not half-obeyed.
    clustered = run(["-df", "other.yaml", "--list"], tmp_path / "demo")
    assert clustered.returncode == 2 and "was not read as the project file" in clustered.stderr


def test_the_edit_proof_needs_an_engine_of_its_own() -> None:
    out = run(["offline.export", "--verify-edits"], DEMO)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == ("offline-build: error: --verify-edits needs an engine with no network and none of this "
                          "project's build cache\n  fix: pass --verify-host unix://... (e.g. an air-gapped engine)\n")
    dry = run(["offline.verify", "--edits"], DEMO)
    assert dry.returncode == 2 and "verify needs an engine without this project's build cache" in dry.stderr


def test_the_edit_proof_and_a_delta_are_not_one_export() -> None:
    out = run(["offline.export", "--verify-edits", "--verify-host", "unix:///nowhere", "--since", "x.tar"], DEMO)
    assert out.returncode == 2 and "--verify-edits proves a whole bundle, and --since writes a delta" in out.stderr


def test_export_signs_with_the_key_given_and_a_missing_key_stops_it_before_any_build(tmp_path: Path) -> None:
    missing = run(["offline.export", "--dry-run", "--sign", str(tmp_path / "nowhere.key")], DEMO)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (f"offline-build: error: signing key {tmp_path / 'nowhere.key'} does not exist\n"
                              "  fix: make one with offline.keygen --key PATH (or minisign -G), or fix --sign\n")
    assert run(["offline.keygen", "--key", "team.key"], tmp_path).returncode == 0
    (tmp_path / "team.key").chmod(0o640)
    plan = run(["offline.export", "--dry-run", "--sign", str(tmp_path / "team.key")], DEMO, COLUMNS="300")
    assert plan.returncode == 0, plan.stderr
    key_id = (tmp_path / "team.pub").read_text().split()[-2]
    assert f"# pack the bundle (signed with key {key_id})" in plan.stdout
    # Wide: rich wraps at the terminal's width, and tmp_path's length depends on where pytest puts it (xdist).
    assert f"warning: {tmp_path / 'team.key'} is readable by others (mode 0640)" in plan.stdout
    secret = (tmp_path / "team.key").read_text().splitlines()[1]
    assert secret not in plan.stdout + plan.stderr
    encrypted = run(["offline.keygen", "--key", "enc.key", "--encrypt"], tmp_path)
    assert encrypted.returncode == 1
    assert "--encrypt needs a password and there is no terminal to ask it on" in encrypted.stderr
    assert not (tmp_path / "enc.key").exists()


def test_a_signing_key_inside_a_build_context_is_refused(tmp_path: Path) -> None:
    import shutil

    demo = tmp_path / "demo"
    shutil.copytree(DEMO, demo, ignore=shutil.ignore_patterns("build-cache", "apt-lists"))
    made = run(["offline.keygen", "--key", "services/web/team.key"], demo)
    assert made.returncode == 0, made.stderr
    out = run(["offline.export", "--dry-run", "--sign", "services/web/team.key"], demo)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == (f"offline-build: error: signing key {demo / 'services/web/team.key'} is inside web's build "
                          "context\n  fix: keep it outside every build context, e.g. ~/.minisign/\n")


def test_setup_and_sbom_say_what_is_wrong_without_touching_anything(tmp_path: Path) -> None:
    import shutil

    demo = tmp_path / "demo"
    shutil.copytree(DEMO, demo, ignore=shutil.ignore_patterns("build-cache", "apt-lists"))
    (demo / "build-cache").mkdir()
    (demo / "build-cache" / "build-cache-20261129.tar").write_bytes(b"")
    trust = run(["offline.setup", "--dry-run", "--trust", "nowhere.pub"], demo)
    assert trust.returncode == 1
    assert trust.stderr.startswith(f"offline-build: error: trusted key {demo / 'nowhere.pub'} does not exist")
    nothing = run(["offline.sbom"], tmp_path / "demo" / "services")
    assert nothing.returncode == 2  # no project file there
    (demo / "build-cache" / "build-cache-20261129.tar").unlink()
    none = run(["offline.sbom", "--output", str(tmp_path)], demo)
    assert none.returncode == 1 and "Traceback" not in none.stderr
    assert none.stderr.startswith("offline-build: error: no bundle in ")
    from offline_build.config import load
    from tests.unit.helpers import packed

    packed(load(demo / "offline.yaml", environ={}), None)
    into_folder = run(["offline.sbom", "--output", str(tmp_path)], demo)
    assert into_folder.returncode == 1 and "Traceback" not in into_folder.stderr
    assert into_folder.stderr.startswith(f"offline-build: error: cannot write {tmp_path} (")
    printed = run(["offline.sbom"], demo)
    assert printed.returncode == 0 and json.loads(printed.stdout)["bomFormat"] == "CycloneDX"
    config = demo / "offline.yaml"
    config.write_text(config.read_text() + "signing:\n  trusted_keys: []\n")
    empty = run(["offline.setup", "--dry-run"], demo)
    assert empty.returncode == 2
    assert "signing.trusted_keys: an empty list trusts no key, so every bundle would be taken" in empty.stderr

"""The console script's edges: a file system refusal is one message naming the path, with a fix, never a
traceback; and the command line takes only the options the tool honours."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from invoke import Exit

from offline_build.cli import NOT_OFFERED
from offline_build.tasks.common import clean_exit, os_error_message

from .test_cli import DEMO, run


def one_message(stderr: str) -> str:
    """The whole of stderr, checked to be one offline-build error and no traceback."""
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("offline-build: error: "), stderr
    assert stderr.count("offline-build:") == 1, stderr
    return stderr


def test_keygen_into_a_folder_that_cannot_exist(tmp_path: Path) -> None:
    out = run(["offline.keygen", "--key", "/proc/nope/team.key"], tmp_path)  # no project file needed
    assert out.returncode == 1
    message = one_message(out.stderr)
    assert message.startswith("offline-build: error: /proc/nope: ")
    assert "does not exist: create the folder, or choose another path" in message
    assert not list(tmp_path.iterdir())


def test_prune_with_a_file_as_cache_dir(tmp_path: Path) -> None:
    shutil.copytree(DEMO, tmp_path / "demo")
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    out = run(["offline.prune", "--cache-dir", str(afile)], tmp_path / "demo")
    assert out.returncode == 1
    message = one_message(out.stderr)
    assert message == (f"offline-build: error: {afile} is a file, not a folder\n"
                       "  fix: choose another --cache-dir (or CACHE_DIR), or move the file away\n")
    assert afile.read_text() == "not a folder\n"


def test_makefile_onto_a_folder_names_it(tmp_path: Path) -> None:
    shutil.copytree(DEMO, tmp_path / "demo")
    (tmp_path / "out.mk").mkdir()
    out = run(["offline.makefile", "--output", str(tmp_path / "out.mk")], tmp_path / "demo")
    assert out.returncode == 1
    message = one_message(out.stderr)
    assert f" -> {tmp_path / 'out.mk'}: Is a directory" in message  # filename2: where it was going
    assert "that is a folder where a file is needed" in message


@pytest.mark.parametrize(("code", "fix"), [
    (errno.ENOENT, "does not exist: create the folder, or choose another path"),
    (errno.EACCES, "may not use that path: change its permissions"),
    (errno.EPERM, "may not use that path: change its permissions"),
    (errno.ENOTDIR, "a part of that path is a file, not a folder"),
    (errno.EROFS, "read-only: choose a path on a writable disk"),
    (errno.EIO, "check that path and the disk it is on, then run it again"),
])
def test_each_errno_gets_a_fix_that_fits(code: int, fix: str) -> None:
    exc = OSError(code, os.strerror(code), "/srv/cache/x", None, "/srv/cache/y")
    first, second = os_error_message(exc).splitlines()
    assert first == f"offline-build: error: /srv/cache/x -> /srv/cache/y: {exc.strerror}"
    assert second.startswith("  fix: ") and fix in second


def test_disk_full_is_told_as_before() -> None:
    message = os_error_message(OSError(errno.ENOSPC, "No space left on device", "/srv/cache/blob"))
    assert message == ("offline-build: error: no space left on the device (/srv/cache/blob)\n"
                       "  fix: free disk space or set CACHE_DIR to a larger disk, then run it again")


def test_an_os_error_without_a_path_still_says_what_went_wrong() -> None:
    assert os_error_message(OSError("the socket went away")).splitlines() == [
        "offline-build: error: the socket went away",
        "  fix: check the disk and the folders this task uses, then run it again"]


def test_the_boundary_turns_os_errors_into_exit_1_and_leaves_a_broken_pipe_alone() -> None:
    def fails(exc: BaseException) -> None:
        raise exc

    with pytest.raises(Exit) as told:
        clean_exit(fails)(FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope/x"))
    assert told.value.code == 1 and "/nope/x: No such file or directory" in str(told.value.message)
    with pytest.raises(BrokenPipeError):  # cli.main ends those quietly with 141
        clean_exit(fails)(BrokenPipeError(errno.EPIPE, "Broken pipe"))


# invoke's flags for its own shell commands: offline-build runs none, so it must not offer them.
IGNORED = {"-R": "--dry", "-e": "--echo", "-w": "--warn-only", "-T": "--command-timeout", "-p": "--pty"}
IGNORED_LONG = ("--hide", "--prompt-for-sudo-password", "--write-pyc")


def test_help_offers_only_the_options_the_tool_honours() -> None:
    out = run(["--help"], DEMO)
    assert out.returncode == 0, out.stderr
    core = out.stdout.split("Core options:")[1].split("Subcommands:")[0]
    offered = {word.rstrip(",").split("=")[0].split("[")[0] for word in core.split() if word.startswith("-")}
    assert offered == {"--complete", "--print-completion-script", "-d", "--debug", "-D", "--list-depth",
                       "-f", "--config", "-F", "--list-format", "-h", "--help", "-l", "--list", "-V", "--version"}
    for flag in (*IGNORED, *IGNORED.values(), *IGNORED_LONG):
        assert flag not in core.split(), flag
    assert "Echo commands" not in out.stdout and "shell commands" not in out.stdout
    assert {f"--{name}" for name in NOT_OFFERED} == {*IGNORED.values(), *IGNORED_LONG}


def test_a_dry_flag_the_tool_would_ignore_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    shutil.copytree(DEMO, tmp_path / "demo")
    for flag in ("-R", "--dry", *IGNORED, "--hide=both", "--prompt-for-sudo-password", "--write-pyc"):
        args = [flag, "5", "offline.makefile"] if flag == "-T" else [flag, "offline.makefile"]
        out = run([*args, "--output", "x.mk"], tmp_path / "demo")
        assert out.returncode != 0, flag
        assert f"No idea what '{flag.split('=')[0]}' is!" in out.stderr, (flag, out.stderr)
        assert not (tmp_path / "demo" / "x.mk").exists(), flag
    # The same task without it writes: what was refused is the flag, not the task.
    assert run(["offline.makefile", "--output", "x.mk"], tmp_path / "demo").returncode == 0
    assert (tmp_path / "demo" / "x.mk").is_file()


def test_the_options_kept_still_work(tmp_path: Path) -> None:
    assert run(["--version"], DEMO).stdout.startswith("offline-build ")
    assert "offline.makefile" in run(["--complete", "--", "offline."], DEMO).stdout.split()
    assert "complete -F" in run(["--print-completion-script", "bash"], DEMO).stdout
    listed = run(["--list", "offline", "--list-format", "json"], DEMO)
    assert listed.returncode == 0 and '"name": "offline"' in listed.stdout
    debug = run(["-d", "--version"], DEMO)
    assert debug.returncode == 0 and "Saw --version" in debug.stderr


@pytest.mark.parametrize("args", [["nosuch.offline-build"], ["offline.export", "--bogus"], ["--bogus"],
                                  ["--help", "nosuch"]])
def test_an_unknown_task_or_flag_says_where_the_known_ones_are(args: list[str]) -> None:
    out = run(args, DEMO)
    assert out.returncode == 2, out
    assert out.stderr.startswith(f"offline-build: error: No idea what '{args[-1]}' is!\n"), out.stderr
    assert out.stderr.endswith("fix: offline-build --list shows the tasks, offline-build --help TASK the flags a "
                               "task takes\n"), out.stderr


@pytest.mark.parametrize("args", [["--config", "", "--list"], ["--config=", "--list"], ["-f", "", "--list"]])
def test_an_empty_config_flag_is_refused_not_read_as_the_default(args: list[str]) -> None:
    out = run(args, DEMO)  # the demo's own offline.yaml would be read otherwise
    assert out.returncode == 2 and out.stdout == "", out
    assert out.stderr == "offline-build: error: --config is empty\n  fix: give the project file's path, or leave " \
                         "the flag out\n"


def test_a_classic_build_without_an_engine_writes_nothing(tmp_path: Path) -> None:
    """It wrote the cache folder and every variant, then said the engine could not be reached.

    The docker CLI is the test's own, alone on PATH: the machine's (a CLI before 27 answers ``docker info``
    with exit 0 when the engine is away) must not decide the outcome."""
    shutil.copytree(DEMO, tmp_path / "demo")
    cli = tmp_path / "bin" / "docker"
    cli.parent.mkdir()
    cli.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///nonexistent/docker.sock. "
                   "Is the docker daemon running?' >&2\nexit 1\n")
    cli.chmod(0o755)
    out = run(["offline.build-classic", "--cache-dir", str(tmp_path / "new-cache")], tmp_path / "demo",
              PATH=str(cli.parent))
    assert out.returncode == 1 and "cannot reach the Docker engine" in out.stderr, out
    assert not (tmp_path / "new-cache").exists()


def test_bake_onto_a_pipe_is_refused_before_any_variant_is_written(tmp_path: Path) -> None:
    shutil.copytree(DEMO, tmp_path / "demo")
    os.mkfifo(tmp_path / "pipe")
    out = run(["offline.bake", "--output", str(tmp_path / "pipe")], tmp_path / "demo")
    assert out.returncode == 1 and "pipe is a device, pipe or socket, not a file to write" in out.stderr, out
    assert not (tmp_path / "demo" / "build-cache").exists()

"""The APT capture takes the .debs it already holds when apt still wants them (issue 34), and stays exact."""

from __future__ import annotations

import csv
import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from offline_build.captures.apt import (
    ARCHIVES,
    PREVIOUS,
    CaptureApt,
    capture_apt,
    previous_mount,
)
from offline_build.errors import StepError

BASE = "debian:bookworm-slim"


def step_for(dest: Path, *platforms: str, native: bool = False, **kwargs: Any) -> CaptureApt:
    return CaptureApt(title="capture", base=BASE, dest=dest, packages=kwargs.pop("packages", ("jq",)),
                      platforms=platforms, native=native, **kwargs)


class FakeEngine:
    """``rt.docker`` for capture_apt: records each run's keyword arguments, leaves one .deb per run."""

    def __init__(self, deb: str = "jq_1.6_amd64.deb", arch: str = "x86_64") -> None:
        self.runs: list[dict[str, Any]] = []
        self.deb = deb
        self.system = SimpleNamespace(info=lambda: SimpleNamespace(architecture=arch, os_type="linux"))

    def run(self, image: str, command: list[str], **kwargs: Any) -> str:
        self.runs.append(kwargs)
        (_, _), (archives, _) = kwargs["volumes"]
        (Path(archives) / self.deb).write_bytes(b"deb")
        return ""


def runtime(engine: FakeEngine) -> SimpleNamespace:
    return SimpleNamespace(docker=engine)


def mounted(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "--mount"]


def test_the_previous_archives_are_mounted_read_only_only_when_they_exist(tmp_path: Path) -> None:
    dest = tmp_path / "apt-lists" / "debian-bookworm-slim"
    step = step_for(dest, "linux/amd64")
    engine = FakeEngine()
    assert mounted(step.argv("linux/amd64")) == []
    assert capture_apt(runtime(engine), step) == {"debs": 1}
    assert engine.runs[0]["mounts"] == []  # a first capture has nothing to take from

    previous = dest / "linux_amd64" / "archives"
    expected = ["type=bind", f"source={previous}", f"target={PREVIOUS}", "readonly"]
    # --dry-run shows the mount the run passes.
    assert mounted(step.argv("linux/amd64")) == [",".join(expected)]
    assert f"--mount {shlex.quote(','.join(expected))} " in step.describe()
    assert capture_apt(runtime(engine), step) == {"debs": 1}
    assert engine.runs[1]["mounts"] == [expected]
    # Read-only: the folder the run reads from is the one it replaces, untouched until the swap.
    assert sorted(p.name for p in dest.parent.iterdir()) == [".gitignore", dest.name]


def test_a_platform_the_previous_capture_lacks_gets_no_mount(tmp_path: Path) -> None:
    dest = tmp_path / "apt-lists" / "debian-bookworm-slim"
    engine = FakeEngine()
    capture_apt(runtime(engine), step_for(dest, "linux/amd64"))
    both = step_for(dest, "linux/amd64", "linux/arm64")
    assert [len(mounted(both.argv(p))) for p in both.platforms] == [1, 0]
    capture_apt(runtime(engine), both)
    amd64, arm64 = engine.runs[1:]
    assert amd64["platform"] == "linux/amd64" and amd64["mounts"][0][1] == f"source={dest}/linux_amd64/archives"
    assert arm64["platform"] == "linux/arm64" and arm64["mounts"] == []


def test_the_engine_platform_takes_from_its_own_previous_folder(tmp_path: Path) -> None:
    dest = tmp_path / "apt-lists" / "debian-bookworm-slim"
    engine = FakeEngine(arch="aarch64")
    step = step_for(dest, native=True)
    assert "--mount" not in step.describe()
    capture_apt(runtime(engine), step)
    capture_apt(runtime(engine), step)
    assert engine.runs[1]["platform"] is None  # the engine's own
    assert engine.runs[1]["mounts"][0][1] == f"source={dest}/linux_arm64/archives"
    assert f"source={dest}/<engine platform>/archives" in step.describe()


def test_a_failed_capture_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    dest = tmp_path / "apt-lists" / "debian-bookworm-slim"
    step = step_for(dest, "linux/amd64")
    capture_apt(runtime(FakeEngine()), step)
    before = sorted((p.relative_to(dest), p.read_bytes()) for p in dest.rglob("*") if p.is_file())

    def fail(image: str, command: list[str], **kwargs: Any) -> None:
        (_, _), (archives, _) = kwargs["volumes"]
        (Path(archives) / "half.deb").write_bytes(b"half")
        raise DockerException(["docker", "run"], 100, stderr=b"E: Unable to locate package jqq")

    with pytest.raises(StepError):
        capture_apt(SimpleNamespace(docker=SimpleNamespace(run=fail)), step)
    assert sorted((p.relative_to(dest), p.read_bytes()) for p in dest.rglob("*") if p.is_file()) == before
    assert sorted(p.name for p in dest.parent.iterdir()) == [".gitignore", dest.name]  # no .partial left


def test_a_path_with_a_comma_or_quote_is_one_mount_field(tmp_path: Path) -> None:
    folder = tmp_path / 'a,b "c"' / "archives"
    fields = next(csv.reader([",".join(previous_mount(folder))]))  # as docker reads --mount
    assert fields == ["type=bind", f"source={folder}", f"target={PREVIOUS}", "readonly"]
    assert previous_mount(Path("/plain/archives"))[1] == "source=/plain/archives"


@pytest.mark.parametrize("no_recommends", [True, False])
def test_apt_is_asked_about_exactly_what_the_capture_installs(no_recommends: bool) -> None:
    packages = ("curl=7.88.1-10+deb12u5", "golang/bookworm-backports", "libc6:amd64")
    script = step_for(Path("x"), "linux/amd64", packages=packages, no_recommends=no_recommends).script()
    (asked,) = [line for line in script.splitlines() if "--print-uris" in line]
    (install,) = [line for line in script.splitlines() if "--download-only" in line]
    assert shlex.split(asked)[-4:] == [*packages, ">$uris"] and shlex.split(install)[-3:] == list(packages)
    assert ("--no-install-recommends" in asked) is ("--no-install-recommends" in install) is no_recommends
    lines = script.splitlines()  # after the lists are fresh, before the install
    assert [line.endswith(" update") for line in lines].index(True) < lines.index(asked) < lines.index(install)


# --- the script itself, run by the host's sh with a stand-in for apt-get ---------------------------

FAKE_APT = r"""#!/bin/sh
echo "$*" >>"$LOG"
case "$*" in
*--print-uris*)
    uris=$URIS_MD5  # apt's own default: it names each file by its MD5Sum: unless told to use SHA256
    for arg; do  # apt must be asked against an empty archives folder, or it leaves out what it holds
        case $arg in
        Dir::Cache::Archives=*) [ -z "$(ls -A "${arg#*=}")" ] || exit 9 ;;
        Acquire::ForceHash=SHA256) uris=$URIS ;;
        esac
    done
    cat "$uris" ;;
*--download-only*)  # apt's own rule: a file already in archives counts when its size matches
    while read -r uri name size hash; do
        case $name in */*) continue ;; esac
        if [ ! -f "$ARCH/$name" ] || [ "$(wc -c <"$ARCH/$name")" -ne "$size" ]; then
            cp "$MIRROR/$name" "$ARCH/$name"
            echo "download $name" >>"$LOG"
        fi
    done <"$URIS" ;;
esac
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_script(tmp_path: Path, mirror: dict[str, bytes], previous: dict[str, bytes] | None,
               hashes: dict[str, str] | None = None) -> tuple[dict[str, bytes], list[str], str]:
    """Run the capture's script with apt-get faked; (archives afterwards, apt-get's log, the script's output)."""
    for sh_tool in ("sh", "sha256sum", "mktemp", "cut", "wc"):
        if not shutil.which(sh_tool):
            pytest.skip(f"no {sh_tool} here")
    root = tmp_path / "run"
    (root / "bin").mkdir(parents=True)
    (root / "mirror").mkdir()
    (root / "archives").mkdir()
    apt = root / "bin" / "apt-get"
    apt.write_text(FAKE_APT)
    apt.chmod(0o755)
    for name, data in mirror.items():
        if "/" not in name:
            (root / "mirror" / name).write_bytes(data)
    hashes = hashes or {}
    for uris, named in (("uris", lambda data: "SHA256:" + sha256(data)),
                        ("uris-md5", lambda data: "MD5Sum:" + hashlib.md5(data).hexdigest())):
        (root / uris).write_text("".join(
            f"'http://deb.example/pool/{name}' {name} {len(data)} {hashes.get(name, named(data))}\n"
            for name, data in mirror.items()))
    if previous is not None:
        for name, data in previous.items():
            (root / "previous" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "previous" / name).write_bytes(data)
    script = step_for(tmp_path, "linux/amd64", packages=("jq", "curl")).script()
    script = script.replace(PREVIOUS, str(root / "previous")).replace(ARCHIVES, str(root / "archives"))
    env = {**os.environ, "PATH": f"{root / 'bin'}:{os.environ['PATH']}", "LOG": str(root / "log"),
           "URIS": str(root / "uris"), "URIS_MD5": str(root / "uris-md5"), "ARCH": str(root / "archives"), "MIRROR": str(root / "mirror")}
    done = subprocess.run(["sh", "-c", script], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    held = {p.name: p.read_bytes() for p in (root / "archives").iterdir()}
    return held, (root / "log").read_text().splitlines(), done.stdout


MIRROR = {"jq_1.6-2.1_amd64.deb": b"jq now" * 50, "libjq1_1.6-2.1_amd64.deb": b"libjq1 now" * 50,
          "libonig5_6.9.8-1_amd64.deb": b"onig now" * 50, "libcap2_1%3a2.66-4_amd64.deb": b"cap now" * 50}


def test_the_script_takes_only_the_files_apt_names_with_their_hash(tmp_path: Path) -> None:
    previous = {
        "jq_1.6-2.1_amd64.deb": MIRROR["jq_1.6-2.1_amd64.deb"],  # still wanted: taken
        "libcap2_1%3a2.66-4_amd64.deb": MIRROR["libcap2_1%3a2.66-4_amd64.deb"],  # an epoch in its name: taken
        "libjq1_1.6-2.1_amd64.deb": b"LIBJQ1 NOW" * 50,  # same name and size, other bytes: apt would keep it
        "jq_1.5_amd64.deb": b"jq then",  # a stale version
        "curl_7.88_amd64.deb": b"curl",  # a package no longer asked for
    }
    held, log, out = run_script(tmp_path, MIRROR, previous)
    assert held == MIRROR  # exactly what apt wants now, byte for byte
    assert sorted(line for line in log if line.startswith("download ")) == [
        "download libjq1_1.6-2.1_amd64.deb", "download libonig5_6.9.8-1_amd64.deb"]
    assert "offline-build: took 2 of 4 .deb file(s) from the previous capture" in out


def test_an_unchanged_capture_downloads_nothing(tmp_path: Path) -> None:
    held, log, out = run_script(tmp_path, MIRROR, dict(MIRROR))
    assert held == MIRROR
    assert not [line for line in log if line.startswith("download ")]
    assert "took 4 of 4" in out


def test_without_a_previous_capture_apt_is_not_asked_and_everything_downloads(tmp_path: Path) -> None:
    held, log, out = run_script(tmp_path, MIRROR, None)
    assert held == MIRROR
    assert not [line for line in log if "--print-uris" in line]
    assert len([line for line in log if line.startswith("download ")]) == 4
    assert "offline-build:" not in out


def test_a_file_apt_names_without_a_sha256_or_outside_the_folder_is_not_taken(tmp_path: Path) -> None:
    mirror = {"jq_1.6-2.1_amd64.deb": b"jq", "libjq1_1.6-2.1_amd64.deb": b"libjq1", "sub/evil.deb": b"evil",
              ".hidden.deb": b"hidden"}
    held, log, _ = run_script(tmp_path, mirror, dict(mirror),
                              hashes={"jq_1.6-2.1_amd64.deb": "MD5Sum:" + hashlib.md5(b"jq").hexdigest(),
                                      "libjq1_1.6-2.1_amd64.deb": ""})
    assert "sub" not in held  # a name with a slash is never copied, though the previous folder has it
    assert held[".hidden.deb"] == b"hidden" and "download .hidden.deb" in log  # downloaded, not taken
    assert sorted(line for line in log if line.startswith("download ")) == [
        "download .hidden.deb", "download jq_1.6-2.1_amd64.deb", "download libjq1_1.6-2.1_amd64.deb"]

"""The uv capture's two helpers, run on a cache laid out as uv 0.13 lays it out, with file:// URLs for the index."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from offline_build.captures.lang import StepNeed
from offline_build.captures.uv import ARCHIVES, CACHE_ARCHIVE, CAPTURE, SERVE, UV, inline
from offline_build.pkgs import Install


def wheel(path: Path, files: dict[str, tuple[bytes, int]]) -> bytes:
    with zipfile.ZipFile(path, "w") as z:
        for name, (data, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            z.writestr(info, data)
    return path.read_bytes()


def unpack(whl: Path, into: Path) -> None:
    with zipfile.ZipFile(whl) as z:
        for m in z.infolist():
            os.chmod(z.extract(m, into), (m.external_attr >> 16) & 0o777)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """An index (files), and a cache after uv installed a wheel from it and built one from an sdist."""
    index, c = tmp_path / "index", tmp_path / "cache"
    index.mkdir()
    six = index / "six-1.17.0-py2.py3-none-any.whl"
    data = wheel(six, {"six.py": (b"x = 1\n", 0o644), "six-1.17.0.data/scripts/six": (b"#!python\n", 0o755),
                       "six-1.17.0.dist-info/METADATA": (b"Name: six\n", 0o644)})
    sdist = index / "docopt-0.6.2.tar.gz"
    sdist.write_bytes(b"an sdist")
    entry = c / "wheels-v8/pypi/six"
    entry.mkdir(parents=True)
    (entry / "1.17.0-py2.py3-none-any.http").write_bytes(
        b"\x95\xb0AbC\x91\x81\xa6Sha256\xd9@" + hashlib.sha256(data).hexdigest().encode()
        + b"\xd9 " + six.name.encode() + b"\x00" + six.as_uri().encode() + b"\x00")
    (entry / "1.17.0-py2.py3-none-any.lock").write_bytes(b"")
    unpack(six, c / "archive-v0/AbC")
    (entry / "1.17.0-py2.py3-none-any").symlink_to("../../../archive-v0/AbC")
    built = c / "sdists-v11/pypi/docopt/0.6.2/XyZ"
    built.mkdir(parents=True)
    (built.parent / "revision.http").write_bytes(b"\x92\xb0XyZ" + hashlib.sha256(b"an sdist").hexdigest().encode()
                                                 + b"\xd9" + sdist.as_uri().encode())
    wheel(built / "docopt-0.6.2-py2.py3-none-any.whl", {"docopt.py": (b"y = 2\n", 0o644)})
    unpack(built / "docopt-0.6.2-py2.py3-none-any.whl", c / "archive-v0/Ghi")
    (built / "docopt-0.6.2-py2.py3-none-any").symlink_to("../../../../../archive-v0/Ghi")
    (c / "simple-v28/pypi").mkdir(parents=True)
    (c / "simple-v28/pypi/six.rkyv").write_bytes(b"index page")
    return c


def tree(root: Path) -> dict[str, object]:
    return {str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else None,
                                       p.is_symlink() or p.stat().st_mode & 0o111 != 0)
            for p in sorted(root.rglob("*"))}


def run(script: str, *args: Path) -> subprocess.CompletedProcess[str]:
    """As the step runs it: through the shell, the script given inline."""
    return subprocess.run(["sh", "-c", f"{sys.executable} -c {inline(script)} {' '.join(map(str, args))}"],
                          capture_output=True, text=True)


def test_the_capture_is_the_downloaded_files_and_one_archive_and_the_site_gets_the_same_cache_back(
        cache: Path, tmp_path: Path) -> None:
    out, again = tmp_path / "out", tmp_path / "again"
    out.mkdir()
    assert run(CAPTURE, cache, out).returncode == 0
    index = tmp_path / "index"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["six-1.17.0-py2.py3-none-any.whl", "docopt-0.6.2.tar.gz", CACHE_ARCHIVE, ARCHIVES])
    for name in ("six-1.17.0-py2.py3-none-any.whl", "docopt-0.6.2.tar.gz"):
        assert (out / name).read_bytes() == (index / name).read_bytes()  # byte for byte what the index served
    assert (out / ARCHIVES).read_text() == ("archive-v0/AbC\tcapture\tsix-1.17.0-py2.py3-none-any.whl\n"
                                            "archive-v0/Ghi\tcache\tsdists-v11/pypi/docopt/0.6.2/XyZ/"
                                            "docopt-0.6.2-py2.py3-none-any.whl\n")
    with tarfile.open(out / CACHE_ARCHIVE) as tar:
        kept = tar.getnames()
    assert "simple-v28/pypi/six.rkyv" in kept and "wheels-v8/pypi/six/1.17.0-py2.py3-none-any" in kept
    assert not [n for n in kept if n.startswith("archive-v0/")]  # the wheels rebuild them: the size this saves
    for p in index.iterdir():
        p.unlink()  # the site has no index
    assert run(SERVE, out, again).returncode == 0
    assert tree(again) == tree(cache)  # links, files, and the executable bit uv had set


def test_a_file_that_differs_from_the_hash_uv_recorded_fails_the_capture(cache: Path, tmp_path: Path) -> None:
    (tmp_path / "index/docopt-0.6.2.tar.gz").write_bytes(b"changed since")
    (tmp_path / "out").mkdir()
    done = run(CAPTURE, cache, tmp_path / "out")
    assert done.returncode != 0 and "docopt-0.6.2.tar.gz differs from what uv downloaded" in done.stderr


def test_the_served_command_rebuilds_a_scratch_cache_before_the_step_and_removes_it_after() -> None:
    text = UV.served_command("uv sync --frozen", "/.offline-build/uv/svc-1")
    assert text.startswith("export UV_CACHE_DIR=/tmp/.offline-build-uv-cache UV_OFFLINE=1 ")
    assert text.index(" /.offline-build/uv/svc-1 /tmp/.offline-build-uv-cache && ( uv sync --frozen )") > 0
    assert text.endswith("( uv sync --frozen ) && rm -rf /tmp/.offline-build-uv-cache")
    assert UV.served_command("uv sync", "/t") == UV.served_command("uv sync", "/t")  # a cache key: no randomness
    assert "\n" not in text  # a Dockerfile's RUN is one line


def test_capture_mode_asks_the_steps_own_uv_for_python_when_there_is_no_python3() -> None:
    need = StepNeed("svc", 3, (Install("uv", ("/opt/uv bin/uv",), ("sync",)),))
    text = UV.capture_command("uv sync", "/.offline-build/out/uv/svc-1", need)
    assert "( uv sync ) && mkdir -p /.offline-build/out/uv/svc-1 && \"$(command -v python3 || '/opt/uv bin/uv' " \
           "python find)\" -c " in text


def test_the_sbom_lists_the_downloaded_files_and_not_the_cache_archive() -> None:
    paths = ["uv-1/six-1.17.0-py2.py3-none-any.whl", "uv-1/docopt-0.6.2.tar.gz", f"uv-1/{CACHE_ARCHIVE}",
             f"uv-1/{ARCHIVES}", "uv-1/offline-build-capture.txt"]
    found = UV.packages(paths, lambda p: b"")
    assert [(p.name, p.version, p.path) for p in found] == [("six", "1.17.0", paths[0]),
                                                            ("docopt", "0.6.2", paths[1])]

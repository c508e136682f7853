"""Fetching resources (a URL, a git repository, a local path) into the cache folder.

Downloads are retried on a server's or the network's bad moment, never on
a 4xx; every fetch lands under a temporary name and is renamed into place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import StepError
from ..files import fsync_dir, sha256_file
from ..retry import retrying
from ..steps import FetchResource
from . import Runtime


def fetch_resource(rt: Runtime, step: FetchResource) -> dict[str, Any]:
    dest = step.dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        if step.kind == "url":
            _download(step, tmp)
            if step.sha256 and sha256_file(tmp) != step.sha256:
                raise StepError(step.title, f"{step.source} does not match its expected sha256",
                                "check the URL, or update sha256 in offline.yaml if the file changed on purpose")
        elif step.kind == "git":
            _git_archive(step, tmp)
        else:
            _copy_path(step, tmp)
        _replace(tmp, dest)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return {"dest": str(dest)}


def _download(step: FetchResource, dest: Path) -> None:
    try:
        _get(step.source, dest)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise StepError(step.title, f"{step.source} answered {exc.code} {exc.reason}",
                        "check the URL in offline.yaml") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StepError(step.title, f"cannot download {step.source}: {reason}",
                        "check the network on this (online) machine, then export again") from None


@retrying
def _get(url: str, dest: Path) -> None:
    try:
        resp = urllib.request.urlopen(url, timeout=60)  # noqa: S310 (http(s) checked in config)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            exc.close()  # retried: release the connection first
        raise
    with resp, dest.open("wb") as out:
        shutil.copyfileobj(resp, out)
        out.flush()
        os.fsync(out.fileno())  # renamed into place next: the bytes must be on disk first


def _git_archive(step: FetchResource, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "repo"
        _git(["clone", "--quiet", "--no-checkout", step.source, str(clone)], step)
        _git(["-C", str(clone), "archive", "--format=tar", f"--output={out}", step.ref or "HEAD"], step)


def _git(args: list[str], step: FetchResource) -> None:
    proc = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StepError(step.title, f"git {args[0]} failed: {proc.stderr.strip()}",
                        "check the repository URL and that the ref exists")


def _copy_path(step: FetchResource, out: Path) -> None:
    source = Path(step.source)
    if source.is_dir():
        shutil.copytree(source, out, symlinks=False)
    elif source.is_file():
        shutil.copyfile(source, out)
    else:
        raise StepError(step.title, f"{source} does not exist", "fix the resource's path in offline.yaml")


def _replace(tmp: Path, dest: Path) -> None:
    if dest.is_dir():
        shutil.rmtree(dest)
    tmp.replace(dest)
    fsync_dir(dest.parent)

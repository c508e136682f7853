"""Resources: HTTP with retries and a checksum, git at a pinned ref, local paths."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_on_whales import DockerClient
from rich.console import Console

from offline_build.errors import StepError
from offline_build.executor import Executor
from offline_build.steps import FetchResource, Plan

BODY = b"model weights\n" * 100


class Flaky(http.server.BaseHTTPRequestHandler):
    """Serves BODY; /flaky fails with 503 the first time it is asked. Each server counts its own requests."""

    failures: dict[str, int]
    requests: list[str]

    def do_GET(self) -> None:  # noqa: N802
        self.requests.append(self.path)
        if self.path == "/flaky" and not self.failures.get(self.path):
            self.failures[self.path] = 1
            self.send_response(503)
            self.end_headers()
            return
        if self.path == "/missing":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def served() -> Iterator[tuple[str, list[str]]]:
    """(URL, the paths it was asked for): a fresh handler class per test, so no count leaks between tests."""
    handler = type("Handler", (Flaky,), {"failures": {}, "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def server(served: tuple[str, list[str]]) -> str:
    return served[0]


def fetch(step: FetchResource) -> None:
    Executor(DockerClient(), Console(quiet=True)).run(Plan("fetch", (step,)))


def step(tmp_path: Path, kind: str, source: str, **kw: object) -> FetchResource:
    return FetchResource(title="fetch resource r", resource_name="r", kind=kind, source=source,
                         dest=tmp_path / "out" / "r.bin", **kw)  # type: ignore[arg-type]


def test_download_checks_sha256(server: str, tmp_path: Path) -> None:
    good = step(tmp_path, "url", f"{server}/m", sha256=hashlib.sha256(BODY).hexdigest())
    fetch(good)
    assert good.dest.read_bytes() == BODY
    bad = step(tmp_path, "url", f"{server}/m", sha256="0" * 64)
    with pytest.raises(StepError, match="does not match its expected sha256"):
        fetch(bad)
    assert good.dest.read_bytes() == BODY  # the earlier file was not replaced
    assert not list((tmp_path / "out").glob(".*partial"))


def test_a_server_error_is_retried(served: tuple[str, list[str]], tmp_path: Path) -> None:
    url, requests = served
    s = step(tmp_path, "url", f"{url}/flaky")
    fetch(s)
    assert s.dest.read_bytes() == BODY
    assert requests == ["/flaky", "/flaky"]  # a 503, then the retry that got it


def test_a_404_is_not_retried_and_is_one_error(served: tuple[str, list[str]], tmp_path: Path) -> None:
    url, requests = served
    with pytest.raises(StepError, match="answered 404"):
        fetch(step(tmp_path, "url", f"{url}/missing"))
    assert requests == ["/missing"]  # asked once: a 4xx will not change


def test_git_resource_is_an_archive_of_the_pinned_ref(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f").write_text("v1\n")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    subprocess.run([*git, "tag", "v1"], check=True)
    (repo / "f").write_text("v2\n")
    subprocess.run([*git, "commit", "-qam", "v2"], check=True)
    s = step(tmp_path, "git", str(repo), ref="v1")
    fetch(s)
    with tarfile.open(s.dest) as tar:
        assert tar.extractfile("f").read() == b"v1\n"  # type: ignore[union-attr]
    with pytest.raises(StepError, match="ref exists"):
        fetch(step(tmp_path, "git", str(repo), ref="no-such-tag"))


def test_local_path_is_copied(tmp_path: Path) -> None:
    src = tmp_path / "data.txt"
    src.write_text("x")
    s = step(tmp_path, "path", str(src))
    fetch(s)
    assert s.dest.read_text() == "x"

"""--host: a URL goes to the docker command as given, a socket's path becomes unix://PATH, anything else is named."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from offline_build.engine import engine_host
from offline_build.errors import EngineError
from tests.unit.helpers import DEMO, run


@pytest.fixture
def sock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    server = socket.socket(socket.AF_UNIX)
    server.bind("docker.sock")  # relative: a socket's path has a length limit tmp_path may pass
    yield tmp_path / "docker.sock"
    server.close()


@pytest.mark.parametrize("url", ["unix:///run/docker.sock", "tcp://127.0.0.1:2375", "ssh://me@build"])
def test_a_url_is_passed_as_given(url: str) -> None:
    assert engine_host(url) == url


def test_the_path_of_a_socket_becomes_a_unix_url(sock: Path) -> None:
    assert engine_host(str(sock)) == f"unix://{sock}"
    assert engine_host("docker.sock") == f"unix://{sock}"  # relative to where the command runs


@pytest.mark.parametrize("value", ["/nonexistent/docker.sock", "localhost:2375", "file"])
def test_anything_else_is_one_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("not a socket\n")
    with pytest.raises(EngineError) as err:
        engine_host(value)
    assert err.value.message.startswith(f"--host {value}: ")
    assert "unix://" in (err.value.hint or "")


def test_a_task_given_a_bad_host_names_it_before_any_docker_call() -> None:
    out = run(["offline.build", "--dry-run", "--host", "/nonexistent/docker.sock"], DEMO)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("offline-build: error: --host /nonexistent/docker.sock: is neither an engine URL")

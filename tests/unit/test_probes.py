"""Probes: only an engine's refusal is remembered as a missing capability; an unreachable engine is one error.

The docker client here is a stand-in that answers or fails as told: what is
under test is what the tool concludes from the engine's words, not the engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from offline_build import engine
from offline_build.errors import EngineError

UNREACHABLE = "Cannot connect to the Docker daemon at unix:///run/x.sock. Is the docker daemon running?"
TRANSIENT = "ERROR: failed to solve: rpc error: code = Unavailable desc = connection reset by peer"
REFUSED = "ERROR: Cache export is not supported for the docker driver.\nSwitch to a different driver"


def failing(words: str) -> DockerException:
    return DockerException(["docker", "buildx", "build"], 1, stderr=words.encode())


@pytest.mark.parametrize(("words", "kind"), [
    (UNREACHABLE, "unreachable"),
    ("error during connect: Get \"http://docker/v1.45/info\": EOF", "unreachable"),
    (TRANSIENT, "transient"),
    ("failed to solve: context deadline exceeded", "transient"),
    (REFUSED, "refused"),
    ("unknown flag: --build-context", "refused"),
    ("failed to solve: something nobody has seen before", "unknown"),
])
def test_the_engines_words_are_read_for_what_they_prove(words: str, kind: str) -> None:
    assert engine.failure_kind(words) == kind


class FakeDocker:
    """An engine that answers ``docker info`` and fails every probe build with *words* (or succeeds)."""

    def __init__(self, words: str | None) -> None:
        self.words = words
        self.builds = 0
        info = SimpleNamespace(server_version="26.1.5", id="engine-1", driver_status=[], architecture="x86_64",
                               os_type="linux")
        self.system = SimpleNamespace(info=lambda: info)
        self.buildx = SimpleNamespace(version=lambda: "github.com/docker/buildx 0.13.1 abc", build=self.build)

    def build(self, *args: Any, **kwargs: Any) -> None:
        self.builds += 1
        if self.words is not None:
            raise failing(self.words)


def project(tmp_path: Path) -> Any:
    return SimpleNamespace(builder=SimpleNamespace(named=None), cache_dir=tmp_path / "build-cache")


def remembered(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "build-cache" / "engines.json").read_text())["engine-1@26.1.5"]


def test_a_transient_probe_failure_is_not_remembered_and_is_probed_again(tmp_path: Path) -> None:
    proj = project(tmp_path)
    flaky = FakeDocker(TRANSIENT)
    caps = engine.probe_engine(flaky, proj, ("cache_export",))  # type: ignore[arg-type]
    assert not caps.cache_export and caps.unsettled == ("cache_export",)
    assert "cache_export" not in remembered(tmp_path)
    healthy = FakeDocker(None)
    assert engine.probe_engine(healthy, proj, ("cache_export",)).cache_export  # type: ignore[arg-type]
    assert healthy.builds == 1 and remembered(tmp_path)["cache_export"] is True


def test_a_refusal_is_remembered_and_not_probed_again(tmp_path: Path) -> None:
    proj = project(tmp_path)
    engine.probe_engine(FakeDocker(REFUSED), proj, ("cache_export",))  # type: ignore[arg-type]
    assert remembered(tmp_path)["cache_export"] is False
    again = FakeDocker(None)
    assert not engine.probe_engine(again, proj, ("cache_export",)).cache_export  # type: ignore[arg-type]
    assert again.builds == 0


def test_an_engine_that_goes_away_mid_probe_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="cannot reach the Docker engine: Cannot connect to the Docker daemon"):
        engine.probe_engine(FakeDocker(UNREACHABLE), project(tmp_path), ("cache_export",))  # type: ignore[arg-type]
    assert not (tmp_path / "build-cache" / "engines.json").exists()


def test_an_unreachable_engine_is_not_an_image_missing() -> None:
    def exists(ref: str) -> bool:
        raise failing(UNREACHABLE)

    docker = SimpleNamespace(image=SimpleNamespace(exists=exists))
    with pytest.raises(EngineError, match="cannot reach the Docker engine") as info:
        engine.image_present(docker, "debian:bookworm-slim")  # type: ignore[arg-type]
    assert info.value.hint == "start the engine, or point --host / DOCKER_HOST at one"
    assert engine.image_present(SimpleNamespace(image=SimpleNamespace(exists=lambda ref: False)),  # type: ignore[arg-type]
                                "debian:bookworm-slim") is False


def test_the_remembered_entry_leaves_out_what_was_unsettled() -> None:
    caps = engine.Capabilities("26", "0.13.1", True, cache_export=False, cache_import=True, oci_layout_context=False,
                               named_contexts=True, unsettled=("cache_export",))
    entry = engine.remembered_entry({"named_contexts": True}, caps, ("cache_export", "cache_import"))
    assert entry == {"named_contexts": True, "cache_import": True, "buildx": "0.13.1"}
    assert "unsettled" not in caps.to_json()

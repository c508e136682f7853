"""Export names every absent base image at once (no engine: a stand-in answers image.exists)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from offline_build.errors import StepError
from offline_build.runners import Runtime
from offline_build.runners.images import save_images
from offline_build.steps import SaveImages


def test_every_missing_base_image_is_named_in_one_message(tmp_path: Path) -> None:
    present = {"debian:bookworm-slim"}
    docker = SimpleNamespace(image=SimpleNamespace(exists=lambda ref: ref in present))
    step = SaveImages(title="save 4 base image(s)", store=tmp_path / "store",
                      images=("debian:bookworm-slim", "postgres:16", "nginx:1.27", "node:22-slim"))
    with pytest.raises(StepError) as raised:
        save_images(Runtime(docker, Console()), step)  # type: ignore[arg-type]
    text = str(raised.value)
    assert "3 base images are not in the engine: postgres:16, nginx:1.27, node:22-slim" in text
    assert "docker pull postgres:16; docker pull nginx:1.27; docker pull node:22-slim" in text
    assert "debian:bookworm-slim" not in text
    assert not (tmp_path / "store").exists()  # nothing written before the check


def test_one_missing_base_image_reads_as_one(tmp_path: Path) -> None:
    docker = SimpleNamespace(image=SimpleNamespace(exists=lambda ref: False))
    step = SaveImages(title="save 1 base image(s)", store=tmp_path / "store", images=("postgres:16",))
    with pytest.raises(StepError, match=r"base image postgres:16 is not in the engine") as raised:
        save_images(Runtime(docker, Console()), step)  # type: ignore[arg-type]
    assert "docker pull postgres:16" in str(raised.value)

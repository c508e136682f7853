"""Unit tests run with no engine: any docker call through python-on-whales fails loudly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import python_on_whales  # noqa: F401  (loads every component module)
import python_on_whales.utils as utils

from offline_build import signing


class EngineCalled(AssertionError):
    pass


def _refuse(*args: object, **kwargs: object) -> None:
    raise EngineCalled(f"a unit test reached for the Docker engine: {args[:1]}")


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    # Components import run() by name, so replace every module's reference.
    originals = {utils.run, utils.stream_stdout_and_stderr}
    for name, module in list(sys.modules.items()):
        if not name.startswith("python_on_whales"):
            continue
        for attr in ("run", "stream_stdout_and_stderr"):
            if getattr(module, attr, None) in originals:
                monkeypatch.setattr(module, attr, _refuse)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Two minisign key pairs without passwords: "team" and "other" (and their ".pub" halves)."""
    made = {}
    for name in ("team", "other"):
        secret, public = signing.keygen(tmp_path / "keys" / f"{name}.key", None)
        made[name], made[f"{name}.pub"] = secret, public
    return made

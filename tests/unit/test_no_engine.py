from __future__ import annotations

import pytest
from python_on_whales import DockerClient

from tests.unit.conftest import EngineCalled


def test_an_accidental_engine_call_fails_loudly() -> None:
    with pytest.raises(EngineCalled):
        DockerClient().version()

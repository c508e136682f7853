"""offline.verify --sign: the proof is signed with the key given, else the project's signing.key."""

from __future__ import annotations

from pathlib import Path

import pytest

from offline_build import signing
from tests.unit.helpers import project


@pytest.mark.parametrize("how", ["--sign", "signing.key", "neither"])
def test_offline_verify_signs_its_proof_with_sign_or_the_projects_key(tmp_path: Path, keys: dict[str, Path],
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      how: str) -> None:
    from invoke import Config, Context

    from offline_build.tasks import offline as tasks

    root = tmp_path / "p"
    project(root)
    if how == "signing.key":
        with (root / "offline.yaml").open("a") as fh:
            fh.write(f"signing:\n  key: {keys['other']}\n")
    seen: dict[str, object] = {}

    def verify(proj, bundle_path, engine, out, *, edits=False, signer=None, allow_network=False):  # noqa: ANN001, ANN202
        seen["signer"] = signer.key_id if signer else None
        return [], None

    monkeypatch.setattr(tasks.verifying, "verify", verify)
    monkeypatch.setattr(tasks.report, "verify", lambda *args, **kwargs: None)
    monkeypatch.setattr(tasks, "docker", lambda host: None)
    c = Context(Config(overrides={"offline_build": {"config": str(root / "offline.yaml")}}))
    tasks.verify.body(c, host="unix:///elsewhere", sign=str(keys["team"]) if how == "--sign" else None)
    expected = {"--sign": "team", "signing.key": "other", "neither": None}[how]
    assert seen["signer"] == (signing.load_signer(keys[expected]).key_id if expected else None)

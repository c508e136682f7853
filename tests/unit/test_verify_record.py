"""What offline.verify records: a proof passes only when no service failed (no engine: its collaborators faked).

verify() itself needs an engine to measure and build; here every call it makes
to one is replaced, so what is left is the part that turns outcomes into a
proof: the ``passed`` it hands ``proof.record``, the proof file beside the
bundle, this machine's ``proofs.json``, and what diagnose would say of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from offline_build import proof
from offline_build import verify as verifying
from offline_build.airgap import Airtightness, Emptiness
from offline_build.config import load
from offline_build.engine import Capabilities
from offline_build.state import proofs_of

SHA = "ab" * 32


def _project(root: Path):  # noqa: ANN202
    for name in ("api", "web"):
        (root / name).mkdir(parents=True)
        (root / name / "Dockerfile").write_text("FROM debian:bookworm-slim\nRUN true\n")
    (root / "offline.yaml").write_text("project: p\nservices:\n  api: {context: api}\n  web: {context: web}\n")
    return load(root / "offline.yaml", environ={})


def _no_engine(monkeypatch: pytest.MonkeyPatch, statuses: dict[str, str]) -> list[str]:
    """Fake every engine call verify makes; each service's build ends as *statuses* says. Returns who was built."""
    built: list[str] = []

    class Executor:
        def __init__(self, *_: Any, **__: Any) -> None:
            pass

        def run(self, plan: Any) -> None:
            assert plan.steps == ()

    def verify_one(scratch: Any, name: str, docker: Any, console: Any, edit: Any) -> verifying.VerifyOutcome:
        built.append(name)
        status = statuses[name]
        return verifying.VerifyOutcome(name, status, 0 if status == "failed" else 3,
                                       3 if status == "all cached" else 0, f"{name}: {status}")

    caps = Capabilities("27.3.1", "0.17.1", False, True, True, True, True)
    fakes = {
        "check_engine": lambda docker: None,
        "measure_emptiness": lambda docker, project, images: Emptiness(0, 0, ()),
        "_tags": lambda docker: set(),
        "engine_platforms": lambda docker: ("linux/amd64",),
        "unpack": lambda scratch, path, console, platforms: SimpleNamespace(
            manifest=SimpleNamespace(platforms=["linux/amd64"]), manifest_sha256=SHA),
        "probe_engine": lambda docker, scratch, need: caps,
        "load_steps": lambda scratch, manifest, caps: [],
        "Executor": Executor,
        "_airtightness": lambda *_: Airtightness("air-tight", "nothing answered", loopback_only=True),
        "_verify_one": verify_one,
        "_leave_empty": lambda docker, before, records, prune: None,
        "cache_records": lambda docker: [],
    }
    for name, fake in fakes.items():
        assert hasattr(verifying, name), name  # a renamed collaborator would leave the engine reachable
        monkeypatch.setattr(verifying, name, fake)
    return built


@pytest.mark.parametrize(("statuses", "passed"), [
    ({"api": "all cached", "web": "rebuilt offline"}, True),
    ({"api": "all cached", "web": "failed"}, False),
    ({"api": "failed", "web": "failed"}, False),
])
def test_verify_records_a_proof_that_passed_only_when_no_service_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, statuses: dict[str, str], passed: bool) -> None:
    project = _project(tmp_path / "p")
    archive = project.cache_dir / "build-cache-20260101.tar"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"not read: unpack is faked")
    built = _no_engine(monkeypatch, statuses)

    outcomes, measured = verifying.verify(project, archive, None, Console(quiet=True))  # type: ignore[arg-type]

    assert built == ["api", "web"]
    assert [(o.service, o.status) for o in outcomes] == list(statuses.items())
    assert measured.title() == "air-tight (measured: loopback only), empty build cache (measured)"
    # The proof that travels beside the bundle.
    written = proof.Proof.from_json(proof.proof_path(archive).read_bytes(), "proof")
    assert written.passed is passed
    assert written.full is passed  # air-tight and empty: only the outcome decides
    assert written.manifest_sha256 == SHA and written.level == "cached"
    assert [(s.service, s.status) for s in written.services] == list(statuses.items())
    failed = [name for name, status in statuses.items() if status == "failed"]
    if passed:
        assert written.summary().startswith("builds all cached (")
    else:
        assert written.summary().startswith("offline.verify failed ")
        assert written.summary().endswith(f"({', '.join(failed)})")
    # This machine's record, which diagnose reads.
    entry = proofs_of(project.cache_dir)[SHA]["cached"]
    assert entry["passed"] is passed
    assert (entry["airtight"], entry["empty"]) == ("air-tight", "empty")
    assert json.loads(proof.proof_path(archive).read_text())["passed"] is passed

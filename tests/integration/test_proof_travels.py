"""The proof travels: offline.verify's signed proof, carried with the bundle, is what diagnose shows at the site.

Exported online, proven with ``--edits`` on an empty engine (``legacy``,
reset), then bundle and proof are copied to a fresh project folder (the
site, trusting the team's public key): setup keeps the proof, diagnose
says the edit loop was proven; a proof edited on the way is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from offline_build import proof, signing, unpacking
from tests.integration.harness import cli, reset

pytestmark = pytest.mark.engine

DOCKERFILE = """\
FROM debian:bookworm-slim
WORKDIR /app
COPY . .
RUN cat main.txt > /out
CMD ["cat", "/out"]
"""


def write_project(root: Path, signing_yaml: str) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "app" / "Dockerfile").write_text(DOCKERFILE)
    (root / "app" / "main.txt").write_text("v1\n")
    (root / "offline.yaml").write_text("project: travels\nversion: '1'\nnetwork: none\nservices:\n"
                                       "  app: {context: app, image: travels/app}\n" + signing_yaml)
    return root


def proof_row(diagnosed: str) -> str:
    return next(line for line in diagnosed.splitlines() if "offline.verify" in line and "proof" in line)


def test_the_proof_travels_with_the_bundle_and_diagnose_shows_it_at_the_site(engines: dict[str, str],
                                                                           tmp_path: Path) -> None:
    secret, public = signing.keygen(tmp_path / "keys" / "team.key", None)
    online = write_project(tmp_path / "online", f"signing:\n  key: {secret}\n")
    cli(online, engines["online"], "offline.export")
    (archive,) = (online / "build-cache").glob("build-cache-*.tar")
    reset("legacy")  # an empty engine: the proof is of the bundle alone
    cli(online, engines["legacy"], "offline.verify", "--edits")
    made = proof.proof_path(archive)
    assert made.is_file() and proof.signature_path(made).is_file()

    site = write_project(tmp_path / "site", f"signing:\n  trusted_keys: [{public}]\n")
    carried = site / "build-cache"
    carried.mkdir()
    for path in (archive, made, proof.signature_path(made)):
        shutil.copy2(path, carried / path.name)
    reset("legacy")
    cli(site, engines["legacy"], "offline.setup")
    sha = unpacking.load_manifest(archive)[1]
    assert (carried / "proofs" / f"{sha}.proof.json").read_bytes() == made.read_bytes()
    diagnosed = cli(site, engines["legacy"], "offline.diagnose", "--quick", check=False).stdout
    row = proof_row(diagnosed)
    assert "│ ok " in row and "edit loop proven" in row, row
    assert "signed by trusted key" in diagnosed, diagnosed  # the detail wraps onto the next line

    # A proof changed on the way (say, a failure turned into a pass) is refused, named, and the store stays.
    edited = carried / made.name
    edited.write_text(edited.read_text().replace('"level": "edits"', '"level": "cached"'))
    refused = cli(site, engines["legacy"], "offline.setup", check=False)
    assert refused.returncode != 0 and f"{edited}: edited after signing" in refused.stderr, refused.stderr

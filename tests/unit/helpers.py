"""What several unit test files share: a small project and its bundle, the CLI run with no engine.

Test modules import from here, never from one another.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from offline_build import bundle, packing, sbom, signing
from offline_build.config import Project, load
from offline_build.dockerfile import parse_text
from offline_build.model import Resource
from tests.unit import oci, twopass


def project(root: Path, name: str = "demo") -> Project:
    """A one-service project (svc, FROM debian:bookworm-slim) under *root*."""
    (root / "svc").mkdir(parents=True, exist_ok=True)
    (root / "svc" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (root / "offline.yaml").write_text(f"project: {name}\nservices:\n  svc:\n    context: svc\n")
    return load(root / "offline.yaml", environ={})


def pack(proj: Project) -> Path:
    """A small real bundle of *proj*: a cache and a base image in its store, one resource."""
    store = oci.new(proj.store)
    oci.image(store, "cache-svc", [b"base", b"svc layer"])
    oci.image(store, "base-debian_bookworm-slim", [b"base"])
    (proj.cache_dir / "resources" / "models").mkdir(parents=True)
    (proj.cache_dir / "resources" / "models" / "m.txt").write_text("weights\n")
    members = bundle.collect(proj.cache_dir)
    manifest = bundle.Manifest(project=proj.name, version="1", platforms=[], services={"svc": {}},
                               base_images={"debian:bookworm-slim": "base-debian_bookworm-slim"})
    manifest.files = twopass.hash_members(members)
    out = proj.cache_dir / "build-cache-20260101.tar"
    twopass.write(out, manifest, members)
    return out


def snapshot(root: Path) -> dict[str, str]:
    """Each file under *root* and its sha256: what "nothing changed" is compared on."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".work" not in p.parts}


def rewrite(src: Path, dst: Path, change) -> None:  # noqa: ANN001
    """Copy a tar member by member, letting *change* edit (name, data) or drop a member."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()  # type: ignore[union-attr]
            result = change(m, data)
            if result is None:
                continue
            m2, data2 = result
            m2.size = len(data2)
            tout.addfile(m2, io.BytesIO(data2))


def packed(proj, signer: signing.Signer | None) -> Path:  # noqa: ANN001
    """A small real bundle of *proj*, signed by *signer* (or not), with an SBOM member."""
    store = oci.new(proj.store)
    oci.image(store, "cache-svc", [b"base", b"svc layer"])
    oci.image(store, "base-debian_bookworm-slim", [b"base"])
    (proj.cache_dir / "resources" / "models").mkdir(parents=True, exist_ok=True)
    (proj.cache_dir / "resources" / "models" / "m.txt").write_text("weights\n")
    manifest = bundle.Manifest(project=proj.name, version="1", platforms=[], services={"svc": {}},
                               base_images={"debian:bookworm-slim": "base-debian_bookworm-slim"},
                               created="2026-11-29T12:00:00Z")
    out = proj.cache_dir / "build-cache-20261129.tar"
    members = bundle.collect(proj.cache_dir)
    model = Resource("model", "url", "https://example.com/m.txt", "models/m.txt")
    packing.write_hashed(out, manifest, members, sbom=lambda m: sbom.document(m, dict(members), (model,)),
                         signer=signer)
    return out


ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo"
SCRIPT = [sys.executable, "-c", "from offline_build.cli import main; main()"]


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The console script in *cwd*, as a user runs it, with no engine to reach."""
    # An unreachable engine: a dry run must not need one. This checkout's code, whatever the
    # cwd: a relative PYTHONPATH (or an editable install of another checkout) would test other code.
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    environ = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock", "PYTHONPATH": path, **env}
    return subprocess.run([*SCRIPT, *args], cwd=cwd, capture_output=True, text=True, env=environ, check=False,
                          stdin=subprocess.DEVNULL)  # never a terminal: a task that would ask must say so


def df(text: str, tmp_path: Path):  # noqa: ANN201
    """*text* written as tmp_path/Dockerfile and parsed, as lint and the captures read it."""
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return parse_text(text, path)

"""``offline.setup``: plan the restore of a bundle on the offline machine, then run it.

The plan: verify and merge the bundle (``Unpack``: every file checked
against the manifest in a scratch folder before the store is touched), then
``docker load`` the base images where the engine cannot read them from the
store, and the named builder's BuildKit image. ``--dry-run`` prints it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from rich.console import Console

from . import bundle, unpacking
from .config import Project
from .engine import Capabilities, probe_engine
from .executor import Executor, RunResult, check_engine
from .export import bundle_folders
from .runners.bundle_io import Unpacked, unpack_bundle
from .proof import ProofClaim, beside
from .signing import Verdict, claims_verdict, load_trusted
from .state import lock
from .steps import LoadImages, Plan, Step, Unpack


@dataclass
class SetupReport:
    bundle: Path
    manifest: bundle.Manifest
    blobs_added: int
    files: int
    loaded: list[tuple[str, str]]  # (image, "loaded" | "replaced" | "unchanged")
    caps: Capabilities | None
    signature: Verdict | None = None
    proof: ProofClaim | None = None  # the offline.verify proof carried with the bundle, kept


def unpack_step(project: Project, path: Path, *, check_platforms: bool = True, keep_proof: bool = True) -> Unpack:
    return Unpack(title=f"verify and restore {path.name}", bundle=path, store=project.store,
                  cache_dir=project.cache_dir, project=project.name, platforms=project.platforms,
                  places=tuple((f"files/{name}", folder) for name, folder in bundle_folders(project)),
                  check_platforms=check_platforms, trusted_keys=project.signing.trusted_keys, keep_proof=keep_proof)


def load_steps(project: Project, manifest: bundle.Manifest, caps: Capabilities | None) -> list[Step]:
    """``docker load`` what the engine needs: bases unless it reads ``oci-layout://``; the builder's image."""
    steps: list[Step] = []
    if manifest.base_images and (caps is None or not caps.oci_layout_context):
        why = "only on engines that cannot read oci-layout:// contexts" if caps is None else ""
        steps.append(LoadImages(title=f"load {len(manifest.base_images)} base image(s)",
                                images=tuple(manifest.base_images.items()), store=project.store, why=why))
    image = manifest.builder.get("image")
    if image:
        steps.append(LoadImages(title=f"load the builder's BuildKit image {image}",
                                images=((image, manifest.builder["tag"]),), store=project.store))
    return steps


def setup_plan(project: Project, path: Path, manifest: bundle.Manifest, caps: Capabilities | None) -> Plan:
    return Plan("setup", (unpack_step(project, path), *load_steps(project, manifest, caps)))


def setup(project: Project, bundle_path: Path | None, docker: DockerClient, console: Console,
          *, dry_run: bool = False) -> SetupReport | None:
    path = bundle_path or unpacking.find_bundle(project.cache_dir)
    if dry_run:
        trusted = load_trusted(project.signing.trusted_keys)  # a wrong key path first, as setup says it
        claims = unpacking.read_claims(path)  # reads, never writes: the plan lists the images by name
        verdict = claims_verdict(claims, trusted, str(path))  # refused here as setup would refuse it
        console.print(f"# signature: {verdict.describe()}", markup=False, highlight=False)
        claim = beside(path, hashlib.sha256(claims.raw).hexdigest(), project.signing.trusted_keys)
        if claim is not None:  # refused here as setup would refuse it
            console.print(f"# proof: {claim.describe()}", markup=False, highlight=False)
        Executor(docker, console, dry_run=True).run(setup_plan(project, path, claims.manifest, None))
        return None
    # The file first: a path that is no bundle is named as such, not as an engine out of reach.
    unpacking.check_archive(path)
    # The engine must answer before anything is written (the lock creates the cache folder); its capability
    # probe (a build) waits until the bundle is accepted, so a refused bundle leaves the engine exactly as it was.
    check_engine(docker)
    with lock(project.cache_dir):
        executor = Executor(docker, console)
        restored = executor.run(Plan("setup", (unpack_step(project, path),))).results[0].detail
        caps = probe_engine(docker, project, ("oci_layout_context",))
        loads = executor.run(Plan("load", tuple(load_steps(project, restored["manifest"], caps))))
    return SetupReport(path, restored["manifest"], restored["blobs_added"], restored["files"], _loaded(loads), caps,
                       restored["signature"], restored["proof"])


def _loaded(result: RunResult) -> list[tuple[str, str]]:
    return [pair for r in result.of(LoadImages) for pair in r.detail["loaded"]]


def unpack(project: Project, path: Path, console: Console,
           platforms: Callable[[], tuple[str, ...]] | None = None, *, keep_proof: bool = False) -> Unpacked:
    """Verify *path* and merge it into *project*'s store (the library call behind the Unpack step).

    Verify's scratch setup calls it without *keep_proof*: a proof beside the
    bundle is the one it is about to replace, not one to judge.
    """
    step = unpack_step(project, path, check_platforms=platforms is not None, keep_proof=keep_proof)
    return unpack_bundle(step, console, platforms)


__all__ = ["SetupReport", "load_steps", "setup", "setup_plan", "unpack", "unpack_step"]

"""Project-wide tasks: ``offline.export``, ``setup``, ``build``, ``diagnose``, ``verify``..."""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection, Context, Exit, task

from ..config import Project
from ..errors import ConfigError, OfflineBuildError
from ..model import PASSWORD_ENV
from .common import (
    BUILD_FLAGS,
    COMMON_HELP,
    Later,
    clean_exit,
    console,
    docker,
    helps,
    project,
)
from .service import collection as service_collection

if TYPE_CHECKING:
    from python_on_whales import DockerClient
    from rich.console import Console

# The workflows, loaded when a task runs (see Later).
building = Later("offline_build.build")
bundle_mod = Later("offline_build.bundle")
diagnosis = Later("offline_build.diagnose")
exporting = Later("offline_build.export")
lint_mod = Later("offline_build.lint")
makefile = Later("offline_build.makefile")
preinstall = Later("offline_build.preinstall")
report = Later("offline_build.report")
signing = Later("offline_build.signing")
pruning = Later("offline_build.prune")
sbom_mod = Later("offline_build.sbom")
restoring = Later("offline_build.setup")
verifying = Later("offline_build.verify")
engine = Later("offline_build.engine")
inputs = Later("offline_build.inputs")


@task(auto_shortflags=False, help=helps(
    *BUILD_FLAGS, strict="stop when offline.lint finds errors or warnings",
    since="write a delta: only what this earlier bundle (or its .manifest.json) lacks",
    split_size="cut the bundle into numbered parts of at most this size, 1M or more (e.g. 3900M for FAT32)",
    verify_edits="then prove the edit loop (as offline.verify --edits does) on the engine given as --verify-host",
    verify_host="the engine for --verify-edits: one with no network and none of this project's build cache",
    sign="sign the bundle with this minisign secret key (default: offline.yaml's signing.key; encrypted keys "
         f"read their password from {PASSWORD_ENV} or the terminal)"))
@clean_exit
def export(c: Context, dry_run: bool = False, host: str | None = None, version: str | None = None,
           cache_dir: str | None = None, platform: str | None = None, strict: bool = False,
           since: str | None = None, split_size: str | None = None, verify_edits: bool = False,
           verify_host: str | None = None, sign: str | None = None) -> None:
    """Build every service on the online engine with cache export; pack the bundle."""
    if verify_edits and since:
        raise Exit("offline-build: error: --verify-edits proves a whole bundle, and --since writes a delta\n"
                   "  fix: export without --since and --verify-edits, or prove the full bundle the delta extends "
                   "(offline.verify --edits --bundle <it>)", code=2)
    if verify_edits and not verify_host and not dry_run:
        raise Exit("offline-build: error: --verify-edits needs an engine with no network and none of this "
                   "project's build cache\n  fix: pass --verify-host unix://... (e.g. an air-gapped engine)", code=2)
    proj = project(c, version, cache_dir, platform)
    out = console()
    started = time.monotonic()
    size = bundle_mod.parse_size(split_size) if split_size else None
    signer = _signer(proj, Path(sign).resolve() if sign else proj.signing.key, out)  # a typo fails before any build
    try:
        summary = exporting.export(proj, None, docker(host), out, dry_run=dry_run, strict=strict,
                                  since=Path(since) if since else None, split_size=size, signer=signer)
        if not dry_run:
            report.export(out, summary, time.monotonic() - started)
            if verify_edits:  # its proof is signed with the bundle's key
                _prove(proj, Path(summary["output"]), docker(verify_host), out, edits=True, signer=signer)
    finally:
        if signer:
            signer.key.wipe()  # the unlocked key leaves memory with the export (and its proof)


def _signer(proj: Project, key: Path | None, out: Console) -> signing.Signer | None:
    if key is None:
        return None
    for service in proj.services.values():
        if key.is_relative_to(service.context.resolve()):
            # Inside a build context, a COPY . would put the secret key into the image (and the bundle's cache).
            raise signing.SigningError(f"signing key {key} is inside {service.name}'s build context",
                                       "keep it outside every build context, e.g. ~/.minisign/")
    return signing.load_signer(key, warn=lambda warning: out.print(f"[yellow]warning:[/] {warning}"))


@task(auto_shortflags=False, iterable=["trust"], help=helps(
    "dry_run", "host", "cache_dir",
    bundle="bundle to restore: a build-cache-*.tar, a folder of its parts, or the first part "
           "(default: the newest in the cache dir)",
    trust="set up only bundles signed by this minisign public key (repeatable; adds to offline.yaml's "
          "signing.trusted_keys)"))
@clean_exit
def setup(c: Context, bundle: str | None = None, dry_run: bool = False, host: str | None = None,
          cache_dir: str | None = None, trust: list[str] | None = None) -> None:
    """Verify a bundle (and its signature), merge it into the local store, load base images where needed."""
    proj = _trusting(project(c, None, cache_dir), trust)
    out = console()
    started = time.monotonic()
    rep = restoring.setup(proj, Path(bundle) if bundle else None, docker(host), out, dry_run=dry_run)
    if rep:
        report.setup(out, rep, time.monotonic() - started)


@task(auto_shortflags=False, help=helps(*BUILD_FLAGS, no_fallback="never fall back to the classic builder"))
@clean_exit
def build(c: Context, dry_run: bool = False, host: str | None = None, version: str | None = None,
          cache_dir: str | None = None, platform: str | None = None, no_fallback: bool = False) -> None:
    """Build every service from the restored store: BuildKit first, the classic builder as a fallback."""
    proj = project(c, version, cache_dir, platform)
    out = console()
    outcomes = building.build(proj, None, docker(host), out, dry_run=dry_run, fallback=not no_fallback)
    if not dry_run:
        report.builds(out, outcomes, "offline.build")


@task(name="build-classic", auto_shortflags=False, help=helps(*BUILD_FLAGS))
@clean_exit
def build_classic(c: Context, dry_run: bool = False, host: str | None = None, version: str | None = None,
                  cache_dir: str | None = None, platform: str | None = None) -> None:
    """Build every service with the classic builder, from the bases with APT packages preinstalled."""
    proj = project(c, version, cache_dir, platform)
    out = console()
    outcomes = building.build(proj, None, docker(host), out, dry_run=dry_run, classic_only=True)
    if not dry_run:
        report.builds(out, outcomes, "offline.build-classic")


@task(auto_shortflags=False, iterable=["path"], help={
    "path": "lint this Dockerfile instead of the services' (repeatable; works without a project file)",
    "format": "text (default) or json",
    "strict": "exit non-zero on warnings too",
    "cache_dir": COMMON_HELP["cache_dir"]})
@clean_exit
def lint(c: Context, path: list[str] | None = None, format: str = "text", strict: bool = False,  # noqa: A002
         cache_dir: str | None = None) -> None:
    """Find every network dependency in the Dockerfiles: rule, file:line:col, text and fix."""
    if format not in ("text", "json"):
        raise Exit(f"offline-build: error: unknown --format {format!r}\n  fix: use text or json", code=2)
    findings = lint_findings(c, [Path(p) for p in path or ()], cache_dir)
    print(lint_mod.render_json(findings) if format == "json" else lint_mod.render_text(findings), end="")
    status = lint_mod.exit_status(findings, strict)
    if status:
        raise Exit(code=status)


def lint_findings(c: Context, paths: list[Path], cache_dir: str | None) -> list[lint_mod.Finding]:
    """With a project, lint knows what it captures and carries; a file given outside one is linted bare."""
    config = Path(c.config.offline_build.config)
    if config.exists():
        return inputs.lint_project(project(c, None, cache_dir), paths or None)
    if not paths:
        raise ConfigError("no project file here: without --path, offline.lint checks the services' Dockerfiles",
                          path=config, hint="lint a file with --path FILE, or run this beside offline.yaml "
                                            "(or pass --config FILE)")
    return [f for p in paths for f in lint_mod.lint_path(p)]


@task(name="base-images", auto_shortflags=False, help=helps("dry_run", "host", "cache_dir", "version"))
@clean_exit
def base_images(c: Context, dry_run: bool = False, host: str | None = None, cache_dir: str | None = None,
                version: str | None = None) -> None:
    """Build <project>-<base>-apt images: each base with every APT package the services install on it."""
    proj = project(c, version, cache_dir)
    out = console()
    for image in preinstall.base_images(proj, docker(host), out, dry_run=dry_run):
        if not dry_run:
            out.print(f"  built {image}")


@task(name="apt-capture", auto_shortflags=False, help=helps("dry_run", "host", "cache_dir"))
@clean_exit
def apt_capture(c: Context, dry_run: bool = False, host: str | None = None, cache_dir: str | None = None) -> None:
    """Capture APT lists and .debs per base image (apt-lists/<base>/) for what the Dockerfiles install."""
    proj = project(c, None, cache_dir)
    out = console()
    preinstall.apt_capture(proj, docker(host), out, dry_run=dry_run)


@task(auto_shortflags=False, help=helps("host", "cache_dir",
                                      json="print the checks as JSON instead of a table",
                                      quick="skip re-hashing the bundle archive and the store's blobs (sizes only)"))
@clean_exit
def diagnose(c: Context, host: str | None = None, cache_dir: str | None = None, json_: bool = False,
             quick: bool = False) -> None:
    """Check engine, store, base images, caches, resources, disk and bundle; exit 1 if a build would fail."""
    proj = project(c, None, cache_dir)
    checks = diagnosis.run(proj, docker(host), deep=not quick)
    if json_:
        print(json.dumps({"ok": not diagnosis.failed(checks), "checks": diagnosis.to_json(checks)}, indent=2))
    else:
        diagnosis.render(console(), checks)
    if diagnosis.failed(checks):
        raise Exit(code=1)


@task(auto_shortflags=False, help=helps("cache_dir", dry_run="list the blobs it would drop and their bytes; drop nothing"))
@clean_exit
def prune(c: Context, dry_run: bool = False, cache_dir: str | None = None) -> None:
    """Drop the store's blobs that no index entry reaches (old caches and images); needs no engine."""
    proj = project(c, None, cache_dir)
    out = console()
    done = pruning.prune(proj, out, dry_run=dry_run)
    if not dry_run:
        out.print(f"dropped {done.blobs} unreachable blob(s), {report.human_size(done.bytes)}")


def _trusting(proj: Project, trust: list[str] | None) -> Project:
    """*proj* with --trust's public keys added to the project file's."""
    if not trust:
        return proj
    keys = proj.signing.trusted_keys + tuple(Path(t).resolve() for t in trust)
    return replace(proj, signing=replace(proj.signing, trusted_keys=keys))


@task(auto_shortflags=False, iterable=["trust"], help=helps(
    "cache_dir", bundle="bundle to verify (default: the newest build-cache-*.tar in the cache dir)",
    trust="as offline.setup --trust: prove only a bundle signed by this public key (repeatable)",
    host="engine to verify on: one holding none of this project's build cache (e.g. the offline machine's)",
    prune_build_cache="use the --host (or default) engine after emptying its whole build cache and removing "
                      "this project's images",
    edits="rebuild every service as if its build context had changed: the steps a code change re-runs must "
          "work with no network",
    allow_network="build even when the engine's build steps reach a host the export reached; the result is "
                  "recorded as not air-tight, never as proven",
    sign="sign the proof file (beside the bundle, it travels with it) with this minisign secret key (default: "
         "offline.yaml's signing.key)",
    dry_run="show the checks, the scratch setup and the builds, changing nothing"))
@clean_exit
def verify(c: Context, bundle: str | None = None, host: str | None = None, cache_dir: str | None = None,
           prune_build_cache: bool = False, edits: bool = False, trust: list[str] | None = None,
           allow_network: bool = False, dry_run: bool = False, sign: str | None = None) -> None:
    """Prove the bundle: set it up in a scratch store and build every service on an empty, air-tight engine."""
    if dry_run:
        proj = _trusting(project(c, None, cache_dir), trust)
        verifying.dry_run(proj, Path(bundle) if bundle else None, docker(host), console(), edits=edits,
                          allow_network=allow_network)
        return
    if not host and not prune_build_cache:
        raise Exit("offline-build: error: verify needs an engine without this project's build cache\n"
                   "  fix: pass --host unix://... (another engine), or --prune-build-cache to empty this one's",
                   code=2)
    proj = _trusting(project(c, None, cache_dir), trust)
    out = console()
    signer = _signer(proj, Path(sign).resolve() if sign else proj.signing.key, out)  # a wrong password fails first
    try:
        engine = docker(host)
        if prune_build_cache:
            verifying.prune_build_cache(engine, proj)
        _prove(proj, Path(bundle) if bundle else None, engine, out, edits=edits, allow_network=allow_network,
               signer=signer)
    finally:
        if signer:
            signer.key.wipe()


def _prove(proj: Project, bundle: Path | None, engine: DockerClient, out: Console, *, edits: bool,
           allow_network: bool = False, signer: signing.Signer | None = None) -> None:
    outcomes, measured = verifying.verify(proj, bundle, engine, out, edits=edits, signer=signer,
                                          allow_network=allow_network)
    report.verify(out, outcomes, measured, edits=edits)
    if any(o.status == "failed" for o in outcomes):
        raise Exit(code=1)


@task(auto_shortflags=False, help={
    "output": "where to write it (default: docker-bake.json beside offline.yaml)",
    "dry_run": "print the file instead of writing it",
    "cache_dir": COMMON_HELP["cache_dir"], "version": COMMON_HELP["version"]})
@clean_exit
def bake(c: Context, output: str | None = None, dry_run: bool = False, cache_dir: str | None = None,
         version: str | None = None) -> None:
    """Write docker-bake.json: every service as a bake target with the same inputs offline-build uses."""
    from .. import bake as bake_mod
    from ..files import create_ignored, refuse_special, write_atomic

    proj = project(c, version, cache_dir)
    text = bake_mod.render(proj)
    if dry_run:
        print(text, end="")
        return
    path = Path(output) if output else proj.root / "docker-bake.json"
    refuse_special(path)  # before the variants: a refused output leaves nothing behind
    variants = bake_mod.variant_files(proj)
    if variants:
        create_ignored(proj.cache_dir)  # the variants go there
    for variant, body in variants:
        write_atomic(variant, body.encode())
    write_atomic(path, text.encode())
    out = console()
    out.print(f"wrote {path}")
    # Only a network mode can be dropped; without one, no need to ask for buildx at all.
    warning = bake_mod.network_warning(proj, engine.buildx_version(docker(None))) if proj.network else None
    if warning:
        out.print(f"[yellow]warning:[/] {warning}")


@task(auto_shortflags=False, help={"output": "where to write the make targets (default: Makefile.offline.mk beside offline.yaml)",
            "runner": "the command the targets call: offline-build (default) or inv",
            "dry_run": "print the file instead of writing it"})
@clean_exit
def makefile_(c: Context, output: str | None = None, runner: str = "offline-build", dry_run: bool = False) -> None:
    """Write Makefile.offline.mk: the seed's make targets, each delegating to its task."""
    proj = project(c)
    names = {f"offline.{n}" for n in collection().task_names}
    names |= {f"{s}.{n}" for s in proj.services for n in service_collection(s).task_names}
    text = makefile.render(proj, runner, names)
    if dry_run:
        console().print(text, markup=False, highlight=False, end="")
        return
    path = Path(output) if output else proj.root / "Makefile.offline.mk"
    makefile.write(path, text)
    console().print(f"wrote {path}")


@task(auto_shortflags=False, help={
    "key": "where to write the secret key (default: ~/.minisign/offline-build.key, outside every project); "
           "the public key goes beside it (.pub)",
    "encrypt": f"protect the secret key with a password (from {PASSWORD_ENV}, or asked twice)"})
@clean_exit
def keygen(c: Context, key: str = "~/.minisign/offline-build.key", encrypt: bool = False) -> None:
    """Make a minisign key pair for signing bundles (export --sign KEY; setup trusts KEY's .pub)."""
    password = signing.ask_password("password: ", "offline.keygen --encrypt", confirm=True) if encrypt else None
    secret, public = signing.keygen(Path(key).expanduser(), password)
    out = console()
    out.print(f"wrote {secret} (secret: keep it on the online machine, mode 0600) and {public} (public: give it "
              "to every site that sets bundles up)", markup=False)
    (loaded,) = signing.load_trusted((public,))
    out.print(f"key id {signing.key_id(loaded)}; sign with: offline.export --sign {shlex.quote(str(secret))}; "
              f"trust with: signing.trusted_keys: [{public}] in offline.yaml, or offline.setup --trust "
              f"{shlex.quote(str(public))}", markup=False)


@task(auto_shortflags=False, help={
    "bundle": "the bundle to read (default: the newest build-cache-*.tar; without one, the last bundle set up)",
    "output": "write the CycloneDX JSON here instead of printing it",
    "cache_dir": COMMON_HELP["cache_dir"]})
@clean_exit
def sbom(c: Context, bundle: str | None = None, output: str | None = None, cache_dir: str | None = None) -> None:
    """Print a bundle's bill of materials (CycloneDX JSON): base images, packages, resources."""
    proj = project(c, None, cache_dir)
    raw, where = sbom_mod.of_bundle(proj.cache_dir, Path(bundle) if bundle else None)
    if output:
        from ..files import write_atomic

        try:
            write_atomic(Path(output), raw)
        except OSError as exc:
            raise OfflineBuildError(f"cannot write {output} ({exc.strerror})",
                                    "pass --output a file path in a folder that exists") from None
        console().print(f"wrote {output} ({where}): {sbom_mod.summary(raw)}", markup=False)
    else:
        print(raw.decode(), end="" if raw.endswith(b"\n") else "\n")


@task(name="init", auto_shortflags=False, help={
    "root": "the repository to read (default: the current folder)",
    "output": "where to write it (default: offline.yaml in the folder read)",
    "force": "overwrite the file if it exists (it is refused otherwise)",
    "dry_run": "print the file instead of writing it"})
@clean_exit
def init_(c: Context, root: str = ".", output: str | None = None, force: bool = False, dry_run: bool = False) -> None:
    """Write a first offline.yaml from the repository's Dockerfiles and compose files; never overwrites unasked."""
    from .. import init as init_mod
    from ..config import DEFAULT_FILE
    from ..files import write_atomic

    path = Path(output).absolute() if output else Path(root).absolute() / DEFAULT_FILE
    if not dry_run:
        init_mod.refuse_overwrite(path, force)  # before the walk: a refusal is quick and touches nothing
    proposal = init_mod.propose(Path(root))
    text = init_mod.render(proposal, path.parent)
    if dry_run:
        print(text, end="")  # the file alone, so `--dry-run > offline.yaml` is the file
        return
    write_atomic(path, text.encode())
    out = console()
    found = proposal.found
    out.print(f"found {len(found.compose_files)} compose file(s) and {len(found.dockerfiles)} Dockerfile(s) "
              f"under {found.root}; wrote {path} with {len(proposal.services)} service(s):", markup=False)
    for line in init_mod.describe(proposal, found.root):
        out.print(line, markup=False)
    config = "" if path == Path.cwd() / DEFAULT_FILE else f" --config {os.path.relpath(path)}"
    out.print(f"next: offline-build{config} offline.lint (the steps that need a network), "
              f"then offline-build{config} offline.diagnose", markup=False)


def without_project() -> Collection:
    """The ``offline`` tasks that work where there is no project file."""
    ns = Collection("offline")
    ns.add_task(lint)
    ns.add_task(keygen)
    ns.add_task(init_)
    return ns


def collection() -> Collection:
    ns = Collection("offline")
    for t in (export, setup, build, build_classic, apt_capture, base_images, lint, verify, keygen, sbom):
        ns.add_task(t)
    ns.add_task(diagnose)
    ns.add_task(prune)
    ns.add_task(makefile_, name="makefile")
    ns.add_task(bake)
    ns.add_task(init_)
    return ns

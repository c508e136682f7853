"""Running a plan: each step kind maps to python-on-whales calls or local work.

The docker client is a parameter, so the same executor drives the online
engine, the offline one, or any other. Retries (tenacity) live here, around
the few things that can fail transiently (a download, a dropped engine
connection), and nowhere else: a Dockerfile error is not retried.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import stream_stdout_and_stderr
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from . import bundle, cachekeys
from .engine import engine_message, image_present, runs_platform, server_version
from .errors import StepError
from .plan import (
    Build,
    CaptureApt,
    ClassicBuild,
    EnsureBuilder,
    FetchResource,
    MergeCache,
    Pack,
    Plan,
    SaveImages,
    Step,
    WriteFile,
    base_tag,
)
from .progress import BuildReport
from .store import IMAGE_NAME, Layout, image_platforms, sha256_file

# Engine errors worth a second try: the connection, not the build, failed.
TRANSIENT = ("connection reset", "broken pipe", "unexpected eof", ": eof", "connection refused",
             "cannot connect to the docker daemon", "i/o timeout", "tls handshake timeout",
             "context deadline exceeded", "error reading from server", "transport is closing")
# A step that ran and failed is the build's own failure, whatever else was said.
DETERMINISTIC = ("did not complete successfully", "dockerfile parse error", "failed to compute cache key",
                 "not found", "no such file")

# Called with a one-line reason before each retry; tests use it to restart an engine.
retry_listeners: list[Callable[[str], None]] = []


class TransientError(StepError):
    """A failure of the connection to the engine, not of the build: worth another try."""


def is_transient(text: str) -> bool:
    lowered = text.lower()
    return any(m in lowered for m in TRANSIENT) and not any(m in lowered for m in DETERMINISTIC)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500  # a server's bad moment; 4xx will not change
    return isinstance(exc, (ConnectionError, TimeoutError, urllib.error.URLError))


def _announce(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    line = f"retry {state.attempt_number}/2 in {state.next_action.sleep if state.next_action else 0:.0f}s: {exc}"
    print(f"offline-build: {line.splitlines()[0]}", file=sys.stderr)
    for listener in retry_listeners:
        listener(line)


retrying = retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(3),
                 wait=wait_exponential(multiplier=1, min=1, max=8), reraise=True, before_sleep=_announce)


@dataclass
class StepResult:
    step: Step
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    results: list[StepResult] = field(default_factory=list)

    def builds(self) -> list[StepResult]:
        return [r for r in self.results if isinstance(r.step, Build)]

    def of(self, kind: type) -> list[StepResult]:
        return [r for r in self.results if isinstance(r.step, kind)]


class Executor:
    """Runs steps against one engine; prints progress to *console*."""

    def __init__(self, docker: DockerClient, console: Console, *, dry_run: bool = False,
                 manifest_factory: Callable[[Pack], bundle.Manifest] | None = None,
                 apt_dir: Path | None = None) -> None:
        self.docker = docker
        self.apt_dir = apt_dir
        self.console = console
        self.dry_run = dry_run
        self.manifest_factory = manifest_factory
        self.handlers: dict[type, Callable[[Any], dict[str, Any]]] = {
            Build: self.build,
            MergeCache: self.merge_cache,
            SaveImages: self.save_images,
            EnsureBuilder: self.ensure_builder,
            FetchResource: self.fetch_resource,
            Pack: self.pack,
            CaptureApt: self.capture_apt,
            WriteFile: self.write_file,
            ClassicBuild: self.classic_build,
        }

    def run(self, plan: Plan) -> RunResult:
        result = RunResult()
        for step in plan.steps:
            if self.dry_run:
                self.console.print(step.describe(), markup=False, highlight=False, soft_wrap=True)
                continue
            self.console.print(f"[bold]==>[/] {step.title}")
            started = time.monotonic()
            detail = self.handlers[type(step)](step)
            result.results.append(StepResult(step, time.monotonic() - started, detail))
        return result

    # --- build -----------------------------------------------------------

    def preflight(self, step: Build, store: Path | None) -> None:
        """Check the store and engine hold what the build needs, before it starts.

        BuildKit treats a missing cache as a warning and rebuilds from the
        network; offline that is a failure found far too late.
        """
        if step.needs_store_tags:
            tags = Layout(store).tags() if store else {}
            for tag in step.needs_store_tags:
                if tag not in tags:
                    raise StepError(step.title, f"{tag!r} is not in the store {store}",
                                    "run offline.setup with a bundle that holds it (offline.diagnose shows what is there)")
            Layout(store).reachable([tags[t] for t in step.needs_store_tags])  # type: ignore[arg-type]
        for image in step.needs_images:
            if not image_present(self.docker, image):
                raise StepError(step.title, f"base image {image} is not in the engine",
                                "run offline.setup: it loads base images into engines that need them")

    def build(self, step: Build, store: Path | None = None) -> dict[str, Any]:
        store = store or _store_from(step)
        self.preflight(step, store)
        report = self._run_build(step)
        return {"report": report, "cached": len(report.cached), "steps": len(report.steps)}

    @retrying
    def _run_build(self, step: Build) -> BuildReport:
        report = BuildReport()
        try:
            # The step's own argv, run through python-on-whales' streaming
            # helper with this client's connection flags: one definition of
            # the command (``--dry-run`` prints the same), and several
            # --cache-to (store and team registry), which its build() cannot pass.
            argv = [*self.docker.client_config.docker_cmd, *step.argv()[1:]]
            stream = (line.decode(errors="replace") for _, line in stream_stdout_and_stderr(argv))
            with self.console.status(f"{step.title}…") as status:
                for chunk in stream:
                    report.feed(chunk)
                    status.update(f"{step.title}: {len(report.cached)} cached, {len(report.ran)} run")
            report.close()
        except DockerException as exc:
            report.close()
            message = _build_failure(report, exc)
            remote = _remote_cache_failure(step, message)
            if remote:
                # Not retried: an unreachable cache registry stays unreachable,
                # and the site may simply not have one.
                raise StepError(step.title, message,
                                f"the build itself finished; writing its cache to {remote} failed: "
                                + (step.cache_write_fix or "make it reachable from the engine")) from None
            if is_transient(message):
                raise TransientError(step.title, message, "check the engine, then run the build again") from None
            raise StepError(step.title, message,
                            "offline.lint names steps that need the network; "
                            "offline.diagnose checks the store and engine") from None
        return report

    # --- export ----------------------------------------------------------

    def merge_cache(self, step: MergeCache) -> dict[str, Any]:
        source = Layout(step.source)
        if not source.exists():
            raise StepError(step.title, f"the build wrote no cache to {step.source}",
                            "the engine must export caches: use Docker with the containerd image store")
        store = Layout(step.store)
        added = store.merge(source, move=True)
        shutil.rmtree(step.source, ignore_errors=True)
        tags = store.tags()
        keys = cachekeys.normalize(store, step.tag, [tags[t] for t in step.bases if t in tags])
        return {"blobs_added": added, "keys_added": keys}

    def ensure_builder(self, step: EnsureBuilder) -> dict[str, Any]:
        """Use the named builder if this engine has it, else create it (``buildx create`` does not boot it).

        Its BuildKit image must already be in the engine: with no registry,
        a missing image would only show later, as a pull that cannot work.
        """
        try:
            existing = self.docker.buildx.inspect(step.name)
        except DockerException:
            existing = None
        if existing is not None:
            problem = _foreign_builder(step, existing, self.docker.client_config.host)
            if problem:
                raise StepError(step.title, problem,
                                f"remove it (docker buildx rm {step.name}) or name another builder in offline.yaml")
        if step.image and not image_present(self.docker, step.image):
            raise StepError(step.title, f"the builder's BuildKit image {step.image} is not in this engine",
                            f"online: docker pull {step.image}; offline: run offline.setup with a bundle "
                            "exported with this builder (it carries the image)")
        if existing is not None:
            return {"created": False}
        try:
            subprocess.run([*map(str, self.docker.client_config.docker_cmd), *step.create[1:]],
                           check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise StepError(step.title, (exc.stderr or exc.stdout or "").strip() or "docker buildx create failed",
                            "check builder: in offline.yaml (driver, driver_opts, endpoint)") from None
        return {"created": True}

    def save_images(self, step: SaveImages) -> dict[str, Any]:
        """``docker save`` into a temp layout, check it is complete, merge it in."""
        missing = [i for i in step.images if not image_present(self.docker, i)]
        if missing:
            raise StepError(step.title, f"base image {missing[0]} is not in the engine",
                            f"pull or build it on this machine first (docker pull {missing[0]})")
        work = step.store.parent / ".work"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work, prefix="save-") as tmp:
            tar_path = Path(tmp) / "images.tar"
            try:
                self.docker.image.save(list(step.images), output=tar_path)
            except DockerException as exc:
                raise StepError(step.title, engine_message(exc)) from exc
            layout_dir = Path(tmp) / "layout"
            with tarfile.open(tar_path) as tar:
                tar.extractall(layout_dir, filter="data")
            saved = Layout(layout_dir)
            if not saved.exists():
                raise StepError(step.title, "docker save wrote no OCI index (index.json)",
                                "use an engine with the containerd image store for export")
            # docker save with the containerd store has been reported to omit
            # shared blobs: reachable() raises if any referenced blob is absent.
            retag = {_full_name(i): base_tag(i) for i in step.images}
            _check_names(saved, retag, step)
            _check_platforms(saved, step)
            added = Layout(step.store).merge(saved, retag=retag, move=True)
        return {"images": list(step.images), "blobs_added": added}

    def _download(self, step: FetchResource, dest: Path) -> None:
        try:
            _get(step.source, dest)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise StepError(step.title, f"{step.source} answered {exc.code} {exc.reason}",
                            "check the URL in offline.yaml") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StepError(step.title, f"cannot download {step.source}: {reason}",
                            "check the network on this (online) machine, then export again") from None

    def fetch_resource(self, step: FetchResource) -> dict[str, Any]:
        dest = step.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.partial")
        try:
            if step.kind == "url":
                self._download(step, tmp)
                if step.sha256 and sha256_file(tmp) != step.sha256:
                    raise StepError(step.title, f"{step.source} does not match its expected sha256",
                                    "check the URL, or update sha256 in offline.yaml if the file changed on purpose")
            elif step.kind == "git":
                _git_archive(step, tmp)
            else:
                _copy_path(step, tmp)
            _replace(tmp, dest)
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        return {"dest": str(dest)}

    def write_file(self, step: WriteFile) -> dict[str, Any]:
        step.path.parent.mkdir(parents=True, exist_ok=True)
        if not step.path.is_file() or step.path.read_text() != step.text:
            step.path.write_text(step.text)
        return {"path": step.path}

    def capture_apt(self, step: CaptureApt) -> dict[str, Any]:
        """Capture into a fresh folder, tidy it, then swap it in whole."""
        fresh = step.dest.with_name(f".{step.dest.name}.partial")
        shutil.rmtree(fresh, ignore_errors=True)
        (fresh / "lists").mkdir(parents=True)
        (fresh / "archives").mkdir()
        try:
            self.docker.run(step.base, ["sh", "-c", step.script()], remove=True, networks=[step.network],
                            volumes=[(str(fresh / "lists"), "/var/lib/apt/lists"),
                                     (str(fresh / "archives"), "/var/cache/apt/archives")])
        except DockerException as exc:
            shutil.rmtree(fresh, ignore_errors=True)
            raise StepError(step.title, f"APT capture failed: {engine_message(exc)}",
                            "check the package names and that this machine reaches the base image's APT mirror") from None
        debs = _tidy_capture(fresh)
        old = step.dest.with_name(f".{step.dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if step.dest.exists():
            step.dest.replace(old)
        fresh.replace(step.dest)
        shutil.rmtree(old, ignore_errors=True)
        return {"debs": debs}

    def classic_build(self, step: ClassicBuild) -> dict[str, Any]:
        for image in step.needs_images:
            if not image_present(self.docker, image):
                raise StepError(step.title, f"image {image} is not in the engine",
                                "run offline.setup: it loads the preinstalled base images for the classic builder")
        try:
            with self.console.status(f"{step.title}…"):
                self.docker.legacy_build(step.context, file=step.dockerfile, tags=list(step.tags),
                                         target=step.target, build_args=dict(step.build_args),
                                         network=step.network)
        except DockerException as exc:
            raise StepError(step.title, f"classic build failed: {engine_message(exc)}") from None
        return {}

    def pack(self, step: Pack) -> dict[str, Any]:
        members = bundle.collect(step.cache_dir, self.apt_dir)
        total = sum(p.stat().st_size for _, p in members)
        started = time.monotonic()
        with _bar(self.console, "hash", total) as advance:
            entries = bundle.hash_members(members, advance)
        hashed = time.monotonic()
        manifest = self.manifest_factory(step) if self.manifest_factory else None
        if manifest is None:
            raise StepError(step.title, "no manifest for the bundle")
        manifest.files = entries
        if step.since:
            base, base_sha = bundle.load_manifest(step.since)
            members = bundle.delta_members(members, entries, base)
            manifest.extends = {"bundle": step.since.name.removesuffix(".manifest.json"),
                                "manifest_sha256": base_sha}
            total = sum(p.stat().st_size for _, p in members)
        with _bar(self.console, "pack", total) as advance:
            size = bundle.write(step.output, manifest, members, progress=advance)
        step.output.with_name(step.output.name.removesuffix(".tar") + ".manifest.json").write_bytes(manifest.to_json())
        output: Path = step.output
        if step.split_size:
            output = bundle.split(step.output, step.split_size)
        blobs = [e for e in entries if e.path.startswith("blobs/")]
        return {"output": output, "size": size, "blobs": len(blobs), "packed_files": len(members),
                "unique_bytes": sum(e.size for e in blobs), "files": len(entries),
                "hash_seconds": hashed - started, "write_seconds": time.monotonic() - hashed}


def _tidy_capture(folder: Path) -> int:
    """Drop apt's locks and partial folders and fix modes.

    The capture is bind-mounted into builds, and BuildKit's cache key covers
    the mounted files and their modes: online and offline copies must match
    bit for bit, and a bundle carries only plain 0644 files.
    """
    for sub in ("lists", "archives"):
        for name in ("lock", "partial", "auxfiles"):
            target = folder / sub / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return len(list((folder / "archives").glob("*.deb")))


def _store_from(step: Build) -> Path | None:
    for source in step.cache_from:
        for part in source.split(","):
            if part.startswith("src="):
                return Path(part[4:])
    for _, value in step.build_contexts:
        if value.startswith("oci-layout://"):
            return Path(value.removeprefix("oci-layout://").rsplit(":", 1)[0])
    return None


@retrying
def _get(url: str, dest: Path) -> None:
    try:
        resp = urllib.request.urlopen(url, timeout=60)  # noqa: S310 (http(s) checked in config)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            exc.close()  # retried: release the connection first
        raise
    with resp, dest.open("wb") as out:
        shutil.copyfileobj(resp, out)


def _foreign_builder(step: EnsureBuilder, existing: Any, host: str | None) -> str | None:
    """Why an existing builder of that name is not the one the project file describes, if it is not.

    Reusing another driver would build with other limits (or none); builders
    are the client's, not the engine's, so one made for another engine (or
    another remote endpoint) would quietly build there.
    """
    if existing.driver != step.driver:
        return f"builder {step.name} exists with the {existing.driver} driver, not {step.driver}"
    endpoints = [n.endpoint for n in existing.nodes if "://" in (n.endpoint or "")]
    wanted = step.endpoint if step.driver == "remote" else host
    elsewhere = [e for e in endpoints if wanted and e != wanted]
    if elsewhere:
        return f"builder {step.name} drives {elsewhere[0]}, not {wanted}"
    return None


def _remote_cache_failure(step: Build, message: str) -> str | None:
    """The remote cache a failed build was writing to, when that is what failed.

    BuildKit names the vertex after the exporter ("exporting cache to
    registry", "exporting cache to Amazon S3"); a local export's failure ("... to client directory") is not
    the team cache's.
    """
    lowered = message.lower()
    for dest in step.cache_to:
        options = dict(part.split("=", 1) for part in dest.split(",") if "=" in part)
        if options.get("type") == "registry" and "exporting cache to registry" in lowered:
            return options.get("ref")
        if options.get("type") == "s3" and "exporting cache to amazon s3" in lowered:
            return f"s3://{options.get('bucket')}"
    return None


def _build_failure(report: BuildReport, exc: DockerException) -> str:
    """The engine's own words: buildx's closing ERROR line, else the failed vertex."""
    errors = [line for line in report.other if line.strip()]
    failed = report.failed
    parts = []
    if failed:
        parts.append(f"step {failed.name!r} failed: {failed.error}")
        # buildx's closing line often repeats the vertex's error: say it once.
        errors = [line for line in errors if failed.error.strip() not in line]
    if errors:
        parts.append("\n".join(errors[-4:]))
    if not parts:
        parts.append(engine_message(exc))
    tail = "".join(report.logs).strip().splitlines()[-8:]
    if tail:
        parts.append("last output:\n  " + "\n  ".join(tail))
    return "\n".join(parts)


def _full_name(ref: str) -> str:
    """``debian:bookworm-slim`` -> ``docker.io/library/debian:bookworm-slim``.

    The normalised reference containerd records in ``docker save`` output;
    a name to match, not a host anything here contacts.
    """
    name = ref
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if ":" not in name.rsplit("/", 1)[-1] and "@" not in name:
        name += ":latest"
    return name


def _check_platforms(saved: Layout, step: SaveImages) -> None:
    """Every base image must carry each platform the project builds for.

    Otherwise BuildKit looks the missing one up in a registry: online it
    would quietly fetch it outside the store, offline the build fails.
    """
    if not step.platforms:
        return
    for desc in saved.index():
        have = tuple(sorted(image_platforms(saved, desc)))
        missing = [p for p in step.platforms if not runs_platform(p, have)]
        if missing:
            name = desc.annotations.get(IMAGE_NAME, desc.digest)
            raise StepError(step.title, f"base image {name} has {', '.join(have) or 'no platform'} in this engine, "
                                        f"not {', '.join(missing)}",
                            f"pull it for those platforms first (docker pull --platform {missing[0]} {name}), "
                            "or export for the platforms it has")


def _check_names(saved: Layout, retag: dict[str, str], step: SaveImages) -> None:
    names = {d.annotations.get(IMAGE_NAME) for d in saved.index()}
    for full, _ in retag.items():
        if full not in names:
            raise StepError(step.title, f"docker save wrote no entry named {full}",
                            "check the base image name in offline.yaml or the Dockerfile")


def _git_archive(step: FetchResource, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "repo"
        _git(["clone", "--quiet", "--no-checkout", step.source, str(clone)], step)
        _git(["-C", str(clone), "archive", "--format=tar", f"--output={out}", step.ref or "HEAD"], step)


def _git(args: list[str], step: FetchResource) -> None:
    proc = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StepError(step.title, f"git {args[0]} failed: {proc.stderr.strip()}",
                        "check the repository URL and that the ref exists")


def _copy_path(step: FetchResource, out: Path) -> None:
    source = Path(step.source)
    if source.is_dir():
        shutil.copytree(source, out, symlinks=False)
    elif source.is_file():
        shutil.copyfile(source, out)
    else:
        raise StepError(step.title, f"{source} does not exist", "fix the resource's path in offline.yaml")


def _replace(tmp: Path, dest: Path) -> None:
    if dest.is_dir():
        shutil.rmtree(dest)
    tmp.replace(dest)


@contextmanager
def _bar(console: Console, what: str, total: int) -> Iterator[Callable[[int], None]]:
    columns = (TextColumn(f"{what:>5}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(what, total=total)
        yield lambda n: progress.advance(task, n)


def check_engine(docker: DockerClient) -> None:
    """Fail with one clear message, before any work, when the engine does not answer."""
    server_version(docker)

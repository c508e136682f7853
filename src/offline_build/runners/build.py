"""Running builds: BuildKit (buildx) with its failure triage, the classic fallback, named builders.

A failed build is sorted into one of three: the connection to the engine
dropped (retried), writing the team cache failed (not retried: an
unreachable registry stays unreachable), or the build's own failure. An
:class:`~offline_build.steps.OfflineBuild` falls back to the classic builder
only after a failure that is BuildKit's, not the Dockerfile's.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from python_on_whales.exceptions import DockerException
from python_on_whales.utils import stream_stdout_and_stderr
from rich.markup import escape

from ..captures import all_captures
from ..captures.base import platform_dir, swap_in
from ..captures.lang import CA_SECRET, MOUNTS, CaptureBuild, platform_outputs, gather_captured
from ..captures.replay import RECORDING_ARG
from ..dockerignore import hiding_rule, ignore_file, ignore_rules
from ..edits import EDIT_ARG
from ..engine import engine_message, image_present, native_platform
from ..errors import StepError
from ..lint import likely_cause
from ..plan import cache_tag
from ..progress import BuildReport
from ..retry import TransientError, is_transient, retrying
from ..steps import Build, EnsureBuilder, OfflineBuild
from ..store import Layout
from . import Runtime
from .classic import classic_build
from .proxy import Running, recording_proxy, replay_proxy

# BuildKit failures a classic build can get past, with the one-line reason
# printed for the fallback. Anything else (a failing RUN, a syntax error, a
# missing file) is the build's own and is not retried with another builder.
BUILDKIT_ONLY = {
    "moby.buildkit.frontend.contexts": "this engine's BuildKit has no named build contexts",
    "unknown scheme oci-layout": "this engine cannot read oci-layout:// contexts",
    "not supported for the docker driver": "this engine's build driver cannot import or export caches",
    "failed to resolve source metadata": "BuildKit tried to resolve an image it cannot reach offline",
    "pull access denied": "BuildKit tried to pull a base image",
    "unknown flag: mount": "this engine's Dockerfile frontend has no RUN --mount",
    "'buildx' is not a docker command": "buildx is not installed",
    "unknown command: docker buildx": "buildx is not installed",
    "no builder": "the buildx builder is unavailable",
    "failed to find driver": "the buildx builder is unavailable",
}


def buildkit_reason(message: str) -> str | None:
    lowered = message.lower()
    return next((why for marker, why in BUILDKIT_ONLY.items() if marker.lower() in lowered), None)


def offline_build(rt: Runtime, step: OfflineBuild) -> dict[str, Any]:
    """BuildKit first; the classic builder only after a BuildKit-specific failure, saying why."""
    if step.buildkit is None:
        return _classic_instead(rt, step, None, None)
    if cache_tag(step.service) not in step.buildkit.needs_store_tags:
        rt.console.print(f"[yellow]warning:[/] no cache for {step.service} in the store: "
                         "every step will run offline (run offline.setup with a bundle that has it)")
    try:
        return {**build(rt, step.buildkit), "builder": "buildkit"}
    except StepError as exc:
        reason = buildkit_reason(exc.message)
        if not step.fallback or reason is None:
            raise
        return _classic_instead(rt, step, reason, exc)


def _classic_instead(rt: Runtime, step: OfflineBuild, reason: str | None, error: StepError | None) -> dict[str, Any]:
    if step.classic is None:
        if error is None:
            raise StepError(f"build {step.service} (classic builder)", f"no classic variant: {step.no_classic}")
        raise StepError(error.step, f"{error.message}\nno classic fallback for {step.service}: {step.no_classic}",
                        "build on an engine whose BuildKit can run this Dockerfile "
                        "(offline.diagnose shows what this one can do)")
    if reason:
        rt.console.print(f"fallback: {step.service}: {reason}; building with the classic builder")
    if step.buildkit is not None:
        rt.console.print(f"[bold]==>[/] {step.classic.title}")
    started = time.monotonic()
    counts = classic_build(rt, step.classic)
    return {**counts, "builder": "classic builder", "seconds": time.monotonic() - started, "tag": step.classic.tags[0]}


def capture_build(rt: Runtime, step: CaptureBuild) -> dict[str, Any]:
    """Build the capture variant into a scratch folder, then swap each captured step's folder into place."""
    shutil.rmtree(step.dest, ignore_errors=True)
    try:
        detail = build(rt, step)
        outputs = platform_outputs(step.dest, step.platforms or (native_platform(rt.docker),))
        counts = {tool: gather_captured({p: out / tool for p, out in outputs.items()}, root, step.dest / ".keys" / tool)
                  for tool, root in step.folders}
    finally:
        shutil.rmtree(step.dest, ignore_errors=True)
    return {**detail, "captured": counts}


def preflight(rt: Runtime, step: Build, store: Path | None) -> None:
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
        if not image_present(rt.docker, image):
            raise StepError(step.title, f"base image {image} is not in the engine",
                            "run offline.setup: it loads base images into engines that need them")
    # Without --platform BuildKit builds the engine's own: a bundle from another machine may lack it.
    platforms = step.platforms or ((native_platform(rt.docker),) if step.capture_dirs else ())
    for folder in step.capture_dirs:
        for platform in platforms:
            if not (Path(folder) / platform_dir(platform)).is_dir():
                # BuildKit would say only '"/linux_arm64" not found', at the step.
                raise StepError(step.title, f"the capture in {folder} has nothing for {platform}: the bundle was "
                                "exported for other platforms",
                                f"build for the bundle's platforms (offline.diagnose lists them), or export again "
                                f"with {platform} in offline.yaml's platforms")


def build(rt: Runtime, step: Build) -> dict[str, Any]:
    preflight(rt, step, _store_from(step))
    if step.record:  # every recorded step runs again (a fresh RECORDING_ARG): its fetches are the recording
        step = replace(step, build_args=(*step.build_args, (RECORDING_ARG, secrets.token_hex(8))))
    with _proxy(step) as running:
        try:
            report = _run_build(rt, replace(step, secrets=step.secrets + running.secrets) if running else step)
        except StepError as exc:
            raise _replay_failure(step, running, exc) if running else exc from None
        if running and running.misses:  # a step that went on after a 502 (curl without -f, "|| true")
            raise _replay_failure(step, running, StepError(step.title, "the build finished, but a replayed step "
                                                            "was answered 502 (not recorded) and went on"))
    return {"report": report, "cached": len(report.cached), "steps": len(report.steps)}


@contextmanager
def _proxy(step: Build) -> Iterator[Running | None]:
    """The replay capture's proxy for this build, if its steps need one: recording (kept only when the build
    succeeds, swapped in whole) or replaying."""
    if step.record:
        dest = Path(step.record)
        fresh = dest.with_name(f".{dest.name}.recording")
        # Upstream, the proxy trusts the project's CA too (the capture build's CA secret).
        trust = tuple(Path(s.split("src=", 1)[1]) for s in step.secrets if s.startswith(f"id={CA_SECRET},src="))
        with recording_proxy(fresh, trust) as running:
            yield running
        swap_in(fresh, dest)
    elif step.replay:
        with replay_proxy(tuple(Path(p) for p in step.replay)) as running:
            yield running
    else:
        yield None


def _replay_failure(step: Build, running: Running, exc: StepError) -> StepError:
    """A failed build whose replayed steps asked what was not recorded, or could not reach the proxy at all."""
    if running.misses:
        first = running.misses[0]
        more = f" (and {len(running.misses) - 1} more)" if len(running.misses) > 1 else ""
        if step.offline:
            return StepError(step.title, f"{exc.message}\n{first} was not recorded at export{more}: the step's "
                             "requests changed since", "export again (offline.export --since <the last bundle> "
                             "makes a small delta) and carry the new bundle")
        return StepError(step.title, f"{exc.message}\n{first} was recorded by the capture build but asked "
                         f"differently when replayed{more}: its URL or body changes every run (a timestamp, a "
                         "random query)", "make the request the same every run, or carry the file as a resource "
                         "(resources: in offline.yaml) and COPY it")
    if running.seen == 0 and any(m in exc.message.lower() for m in ("connection refused", "failed to connect to")):
        return StepError(step.title, f"{exc.message}\nthe replayed steps could not reach offline-build's proxy on "
                         "127.0.0.1: the engine's network is not this process's (DOCKER_HOST names another "
                         "machine, or the engine runs in another network namespace)",
                         "run offline-build where the engine's network is: on its machine, inside its network "
                         "namespace (ip netns exec <name> ...), with DOCKER_HOST a local socket")
    return exc


@retrying
def _run_build(rt: Runtime, step: Build) -> BuildReport:
    report = BuildReport()
    try:
        # The step's own argv, run through python-on-whales' streaming
        # helper with this client's connection flags: one definition of
        # the command (``--dry-run`` prints the same), and several
        # --cache-to (store and team registry), which its build() cannot pass.
        argv = [*rt.docker.client_config.docker_cmd, *step.argv()[1:]]
        stream = (line.decode(errors="replace") for _, line in stream_stdout_and_stderr(argv))
        _follow(rt, step, report, stream)
    except DockerException as exc:
        report.close()
        raise _triage(step, report, exc) from None
    return report


def _follow(rt: Runtime, step: Build, report: BuildReport, stream: Iterator[str]) -> None:
    """Feed BuildKit's stream to *report*, showing progress as it comes.

    On a terminal, one live line (the step running, counts, time); in a log
    or a pipe, a plain line per finished step, so CI shows where a long
    build is.
    """
    started = time.monotonic()
    live = rt.console.is_terminal
    with rt.console.status(f"{step.title}…") if live else nullcontext() as status:
        for chunk in stream:
            report.feed(chunk)
            if status is not None:
                now = report.running
                # One line: a long RUN is cut, and its "[2/4]" is text, not rich markup.
                doing = f"running {escape(_short(now.name))}" if now else "working"
                status.update(f"{step.title}: {doing}; {len(report.cached)} cached, {len(report.ran)} run, "
                              f"{time.monotonic() - started:.0f}s")
            else:
                for v in report.newly_done():
                    rt.console.print(f"    {v.name}: {'CACHED' if v.cached else 'done'}", markup=False,
                                     highlight=False, soft_wrap=True)
    report.close()


def _short(name: str, width: int = 60) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


def _triage(step: Build, report: BuildReport, exc: DockerException) -> StepError:
    """The one error a failed build becomes: the team cache's, the connection's, or the build's own."""
    message = _build_failure(report, exc)
    missing = _missing_package(report, message)
    if missing:
        return StepError(step.title, *missing)
    remote = _remote_cache_failure(step, message)
    if remote:
        # Not retried: an unreachable cache registry stays unreachable,
        # and the site may simply not have one.
        return StepError(step.title, message,
                         f"the build itself finished; writing its cache to {remote} failed: "
                         + (step.cache_write_fix or "make it reachable from the engine"))
    if is_transient(message):
        return TransientError(step.title, message, "check the engine, then run the build again")
    if step.offline and any(m in message.lower() for m in _NO_NETWORK):
        rule = _lint_rule(report)
        why = _why_it_ran(report, edited=EDIT_ARG in dict(step.build_args))
        if rule:
            return StepError(step.title, f"{message}\n{why}\n{rule[0]}",
                             f"{rule[1]}; then export online again and carry the new bundle")
        return StepError(step.title, f"{message}\n{why}",
                         "export online again and carry the new bundle (offline.export --since <the last bundle> "
                         "makes a small delta), or make the step need no network (offline.lint shows how)")
    problem, fix = explain_failure(message, step.context, step.dockerfile)
    return StepError(step.title, f"{message}\n{problem}" if problem else message, fix)


# How a step that reached for the network fails in an air gap (resolvers, curl, pip, npm, apt, go, git).
_NO_NETWORK = ("temporary failure in name resolution", "eai_again", "could not resolve host",
               "network is unreachable", "name or service not known", "no route to host",
               "failed to establish a new connection", "could not resolve", "dial tcp: lookup",
               "failed to connect to", "connection refused", "connection timed out", "etimedout")
_LINT_FIX = "offline.lint names steps that need the network; offline.diagnose checks the store and engine"
_UNKNOWN_FIX = "read the step's output above; offline.diagnose checks the store and the engine"
# BuildKit's words for a COPY/ADD source (or bind mount) it could not find: the path is the context's.
_NOT_FOUND = re.compile(r'failed to calculate checksum of ref [^"\n]*"(?P<path>[^"\n]+)": not found')
_FAILED_STEP = re.compile(r"^step '(?P<name>.*)' failed:", re.M)


def explain_failure(message: str, context: Path, dockerfile: Path) -> tuple[str, str]:
    """(problem, fix) of a build's own failure: the cause named only where BuildKit's error says it.

    *problem* is "" when the message already says all that is known; a fix
    that guesses sends the user to the wrong place (lint for a missing file).
    """
    missing = _NOT_FOUND.search(message)
    step = _FAILED_STEP.search(message)
    # Another stage's or image's file (COPY --from, a mount from=) is not the context's.
    if missing and not (step and "from=" in step["name"]):
        return _missing_source(missing["path"].lstrip("/"), context, dockerfile)
    if any(m in message.lower() for m in _NO_NETWORK):
        return "", _LINT_FIX
    return "", _UNKNOWN_FIX


def _missing_source(path: str, context: Path, dockerfile: Path) -> tuple[str, str]:
    ignore = ignore_file(context, dockerfile)
    rules = ignore_rules(ignore.read_text(encoding="utf-8", errors="replace")) if ignore else []
    hidden = hiding_rule(path, rules)
    if ignore and hidden:
        line, rule = hidden
        return (f"cause: {path} is left out of the build context by the rule '{rule}' (line {line}) of {ignore}",
                f"re-include it with a line '!{path}' below that rule, or narrow the rule")
    if (context / path).exists():
        return "", _UNKNOWN_FIX  # there and not ignored: a symlink out of the context, a context other than this
    return (f"cause: {path} is not in the build context ({context}) at that path",
            "COPY and ADD sources are relative to the context, not the Dockerfile: put the file there or fix "
            "the source path (or the service's context)")


_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


def plain_text(text: str) -> str:
    """*text* without terminal escapes: a tool's colours (Maven's ``\\x1b[1;31mERROR``) are noise in a message."""
    return _ANSI.sub("", text)


def _lint_rule(report: BuildReport) -> tuple[str, str] | None:
    _, _, command = (report.failed.name if report.failed else "").partition("RUN ")
    return likely_cause(command, MOUNTS)


def _why_it_ran(report: BuildReport, *, edited: bool = False) -> str:
    """Why a step that needs the network ran offline at all: an input above it changed, or it was never cached
    (or, *edited*, the edit proof ran it)."""
    failed = report.failed
    earlier = [v for v in report.ran if v is not failed and v.completed]
    name = failed.name if failed else "the step"
    if edited:
        return (f"{name} needed the network; it ran because the build context changed (offline.verify --edits): "
                "at the site, any edit to this service's source runs it again")
    if earlier:
        return (f"{name} needed the network; it ran because a step above it did ({earlier[0].name}): an input "
                "changed since the export, and the bundle's cache holds only what the export built")
    return (f"{name} needed the network; it ran because the bundle's cache does not hold it: the step or its "
            "Dockerfile changed since the export, or it was never exported")


def _missing_package(report: BuildReport, message: str) -> tuple[str, str] | None:
    """A served step that failed for want of a package the bundle does not carry: say which, and why."""
    text = report.failed.name if report.failed else ""
    return next((found for c in all_captures() if (found := c.explain(text, message))), None)


def ensure_builder(rt: Runtime, step: EnsureBuilder) -> dict[str, Any]:
    """Use the named builder if this engine has it, else create it (``buildx create`` does not boot it).

    Its BuildKit image must already be in the engine: with no registry,
    a missing image would only show later, as a pull that cannot work.
    """
    try:
        existing = rt.docker.buildx.inspect(step.name)
    except DockerException:
        existing = None
    if existing is not None:
        problem = _foreign_builder(step, existing, rt.docker.client_config.host)
        if problem:
            raise StepError(step.title, problem,
                            f"remove it (docker buildx rm {step.name}) or name another builder in offline.yaml")
    if step.image and not image_present(rt.docker, step.image):
        raise StepError(step.title, f"the builder's BuildKit image {step.image} is not in this engine",
                        f"online: docker pull {step.image}; offline: run offline.setup with a bundle "
                        "exported with this builder (it carries the image)")
    if existing is not None:
        return {"created": False}
    try:
        subprocess.run([*map(str, rt.docker.client_config.docker_cmd), *step.create[1:]],
                       check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        raise StepError(step.title, (exc.stderr or exc.stdout or "").strip() or "docker buildx create failed",
                        "check builder: in offline.yaml (driver, driver_opts, endpoint)") from None
    return {"created": True}


def _store_from(step: Build) -> Path | None:
    for source in step.cache_from:
        for part in source.split(","):
            if part.startswith("src="):
                return Path(part[4:])
    for _, value in step.build_contexts:
        if value.startswith("oci-layout://"):
            return Path(value.removeprefix("oci-layout://").rsplit(":", 1)[0])
    return None


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
    registry", "exporting cache to Amazon S3"); a local export's failure
    ("... to client directory") is not the team cache's.
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
    tail = plain_text("".join(report.logs)).strip().splitlines()[-8:]
    if tail:
        parts.append("last output:\n  " + "\n  ".join(tail))
    return plain_text("\n".join(parts))

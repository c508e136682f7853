"""What each service builds from: base images, captures, and the generated Dockerfile variants.

Export, build, verify, bake and lint all start here, so they agree on the
file and the named contexts a build uses (equal inputs, equal cache keys).
Pure apart from reading the Dockerfiles and, offline, which captures exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from . import dockerfile
from . import lint as lint_mod
from . import variant as variant_mod
from .captures import all_captures
from .captures.apt import APT
from .captures.lang import MOUNTS, LangCapture, StepNeed
from .captures.replay import REPLAY, ReplayNeed, check_lines
from .config import Project, Service
from .errors import DockerfileError
from .plan import slug
from .steps import Step, WriteFile
from .store import Layout


def read_dockerfile(project: Project, service: Service) -> dockerfile.Dockerfile:
    """*service*'s Dockerfile, parsed and checked against what the project file says of it: its ``target`` is a
    stage, its ``replay`` lines start RUN steps (else the build would fail, or replay nothing, only later).

    The replay lines only while the replay capture is on: off (``captures: {replay: false}``) nothing reads them.
    """
    df = dockerfile.parse(service.dockerfile, service.build_args)
    check_target(df, service)
    if REPLAY.name not in project.captures_off and service.replay not in (True, False):
        check_lines(df, service.name, service.replay)
    return df


def service_bases(project: Project, service: Service) -> tuple[str, ...]:
    """External images *service*'s Dockerfile needs (``FROM``, ``COPY --from``)."""
    return tuple(read_dockerfile(project, service).base_images())


def all_bases(project: Project, services: list[Service]) -> tuple[str, ...]:
    """Base images to carry: ``base_images`` from the project file plus every derived one."""
    found: dict[str, None] = dict.fromkeys(project.base_images or ())
    for service in services:
        found.update(dict.fromkeys(service_bases(project, service)))
    return tuple(found)


@dataclass(frozen=True)
class Inputs:
    """What one service builds from: its Dockerfile or the generated variants."""

    service: Service
    bases: tuple[str, ...]
    needs: dict[str, Any]  # capture name -> what that capture found in the Dockerfile (by key)
    dockerfile: Path  # the offline variant when a capture serves a step, else the user's file
    variant: variant_mod.Variant | None
    contexts: tuple[tuple[str, str], ...]
    classic_path: Path
    classic: variant_mod.ClassicVariant
    # Online only: the capture build's Dockerfile, when a language capture
    # (pip, npm) serves a step, and the named contexts it reads (APT's).
    capture: variant_mod.Variant | None = None
    capture_contexts: tuple[tuple[str, str], ...] = ()
    replays: tuple[str, ...] = ()  # the recordings its replayed steps are served from (runners/proxy.py)

    @property
    def capture_path(self) -> Path:
        return self.classic_path.parent / "Dockerfile.capture"  # the variants' folder, never the user's

    @property
    def apt(self) -> dict[str, Any]:
        """Per base image, what the service installs with APT."""
        return self.needs.get(APT.name, {})


def preinstalled_image(project: Project, base: str) -> str:
    """``<project>-<base slug>-apt:<version>``: the base with its APT packages installed."""
    return f"{project.name}-{slug(base).lower().replace('.', '-')}-apt:{project.version}"


def inputs(project: Project, service: Service, *, online: bool) -> Inputs:
    """Work out the variants for *service*; pure apart from reading its Dockerfile.

    Online, every key a capture finds is (about to be) captured; offline,
    only those whose capture the bundle brought.
    """
    df = read_dockerfile(project, service)
    captures = all_captures()
    needs = {c.name: _built_only(c.needs(project, service.name, df), df, service.target) for c in captures}
    served = [(c, {k: n for k, n in needs[c.name].items() if online or c.captured(project, k)}) for c in captures]
    folder = project.cache_dir / "variants" / service.name
    any_served = any(keys for _, keys in served)
    var = variant_mod.offline_variant(df, served, service=service.name) \
        if any_served or "syntax" in df.directives else None
    use_variant = var is not None and var.changed
    capture = None
    if online and any(needs[c.name] for c in captures if c is not APT):
        capture = variant_mod.offline_variant(df, served, service=service.name, capturing=True)
    replays = tuple(str(REPLAY.context_dir(project, k)) for c, keys in served if c is REPLAY for k in keys)
    # The classic builder takes no build secrets: it cannot be given the replay proxy.
    classic = variant_mod.ClassicVariant(None, "its replayed steps need the replay proxy, which the classic builder "
                                         "cannot be given (no build secrets)") if replays else \
        _classic(project, service, df, needs)
    return Inputs(service, tuple(df.base_images()), needs,
                  folder / "Dockerfile.offline" if use_variant else service.dockerfile,
                  var if use_variant else None, _contexts(project, var), folder / "Dockerfile.classic",
                  classic, capture, _contexts(project, capture), replays)


def _built_only(needs: dict[str, Any], df: dockerfile.Dockerfile, target: str | None) -> dict[str, Any]:
    """The steps of a capture that the service's build runs: one in a stage its ``target`` skips is neither
    captured nor served (its keys keep their numbers, so changing the target moves no other capture)."""
    lines = {i.line for s in df.stages if s.index in df.built_stages(target) for i in s.instructions}
    out: dict[str, Any] = {}
    for key, need in needs.items():
        if isinstance(need, ReplayNeed):  # one key for several steps: keep the steps built
            need = replace(need, lines=tuple(n for n in need.lines if n in lines))
            if need.lines:
                out[key] = need
        elif not isinstance(need, StepNeed) or need.line in lines:
            out[key] = need
    return out


def _contexts(project: Project, var: variant_mod.Variant | None) -> tuple[tuple[str, str], ...]:
    by_name = {c.name: c for c in all_captures()}
    return tuple((name, str(by_name[cap].context_dir(project, key)))
                 for name, (cap, key) in (var.contexts.items() if var else ()))


def captures_image(project: Project, service: Service) -> str:
    """``<project>-<service>-captures:<version>``: a service's language captures, for the classic builder."""
    return f"{project.name}-{service.name}-captures:{project.version}"


def _classic(project: Project, service: Service, df: dockerfile.Dockerfile,
             needs: dict[str, Any]) -> variant_mod.ClassicVariant:
    """The classic variant; a step a language capture serves copies it in from the service's captures image."""
    image = captures_image(project, service)
    served: dict[int, list[tuple[str, Callable[[str], str]]]] = {}
    for capture in (c for c in all_captures() if isinstance(c, LangCapture)):
        for key, need in needs[capture.name].items():
            target = f"{MOUNTS}/{capture.name}/{key}"
            served.setdefault(need.line, []).append(
                (f"COPY --from={image} /{capture.name}/{key} {target}", partial(capture.served_command, target=target)))
    return variant_mod.classic_variant(df, {b: preinstalled_image(project, b) for b in needs[APT.name]},
                                       served, (image,) if served else ())


def variant_steps(all_inputs: list[Inputs]) -> list[Step]:
    steps: list[Step] = []
    for i in all_inputs:
        written = [(what, path, text) for what, path, text in (
            ("offline", i.dockerfile, i.variant.text if i.variant else None),
            ("capture", i.capture_path, i.capture.text if i.capture else None),
            ("classic", i.classic_path, i.classic.text)) if text is not None]
        steps += [WriteFile(title=f"write {i.service.name}'s {what} Dockerfile", path=path, text=text)
                  for what, path, text in written]
        steps += _ignore_files(i, [path for _, path, _ in written])
    return steps


def _ignore_files(i: Inputs, variants: list[Path]) -> list[Step]:
    """A ``.dockerignore`` beside each variant: BuildKit reads the one named after the Dockerfile it builds
    first, so the variants get the user's ``<Dockerfile>.dockerignore`` (else the context's, else none: always
    written, so a copy left from before never outlives the user's file)."""
    own = i.service.dockerfile.with_name(i.service.dockerfile.name + ".dockerignore")
    shared = i.service.context / ".dockerignore"
    source = own if own.is_file() else shared if shared.is_file() else None
    text = source.read_text(encoding="utf-8") if source else ""
    return [WriteFile(title=f"write {i.service.name}'s {path.name}.dockerignore",
                      path=path.with_name(path.name + ".dockerignore"), text=text) for path in variants]


def capture_steps(project: Project, everyone: list[Inputs]) -> list[Step]:
    """Every capture's online steps, for what all the services need (captures are shared)."""
    return [step for c in all_captures() for step in c.capture_steps(project, [i.needs[c.name] for i in everyone])]


def pick(project: Project, names: list[str] | None) -> list[Service]:
    return [project.service(n) for n in names] if names else list(project.services.values())


def check_target(df: dockerfile.Dockerfile, service: Service) -> None:
    """A ``target:`` the Dockerfile has no stage for (else BuildKit names it only once the build starts)."""
    # By name only, in any case, as BuildKit and the classic builder match it (an index is no target).
    if service.target and not any(s.name == service.target.lower() for s in df.stages):
        named = ", ".join(s.name for s in df.stages if s.name) or "none is named: FROM <image> AS <name> names one"
        raise DockerfileError(f"{service.dockerfile}: no stage {service.target!r}, the target of service "
                              f"{service.name!r}", f"set target: to one of its stages ({named})")


def lint_project(project: Project, paths: list[Path] | None = None) -> list[lint_mod.Finding]:
    """Lint the services' Dockerfiles (or *paths*) knowing what the project handles.

    Every image a service's Dockerfile names travels in the bundle, and APT
    is captured when enabled; a file given by path is compared with the
    images the local store holds.
    """
    if paths:
        tags = Layout(project.store).tags() if Layout(project.store).exists() else {}
        recorded = project.cache_dir / "bundle.json"
        bundled = set(json.loads(recorded.read_text()).get("base_images", {})) if recorded.is_file() else set()
        ctx = lint_mod.Context(frozenset(bundled) if tags else None, project.apt.enabled, True)
        return [f for p in paths for f in lint_mod.lint_path(p, ctx)]
    bundled = frozenset(all_bases(project, list(project.services.values())))
    captured = frozenset(c.name for c in all_captures() if c is not APT and c.name not in project.captures_off)
    ctx = lint_mod.Context(bundled, project.apt.enabled, True, captured)
    replay_off = replace(ctx, captured=captured - {REPLAY.name})  # replay: false, for one service
    found: list[lint_mod.Finding] = []
    for s in project.services.values():
        df = read_dockerfile(project, s)  # once: for the checks and for the rules
        found += lint_mod.lint_dockerfile(df, ctx if s.replay is not False else replay_off)
    return found

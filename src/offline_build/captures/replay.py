"""The replay capture: any other fetch of a ``RUN`` step, recorded online and replayed offline.

The other captures know a package manager each. Real Dockerfiles also
``curl`` a model, ``git clone`` a companion repository, run
``nltk.download`` or ``poetry install``: steps that no capture serves and
that break the offline edit loop as soon as a source change re-runs them.

Which steps: every shell-form ``RUN`` with a command offline.lint flags as
fetching and that no other capture serves (:data:`~offline_build.fetches.REPLAYED`;
``git`` over ssh cannot go through an HTTP proxy and stays an error), and the
lines a service lists under ``replay:``; ``replay: false`` switches a service off.

How: each such step is written, in the export's build and at the site alike,
as ``RUN --network=host`` with two build secrets, and sources the first one
(the proxy and its CA: ``runners/proxy.py``). The text is the same on both
sides, so the cache keys are; the port and the CA change every run, by
secret, outside the keys. Online, the capture build runs the step through a
recording proxy, which keeps each exchange under ``captures/replay/<service>/``;
then the export's own build runs it through a replay proxy serving that
recording, so a request that changes every run (a timestamp in the URL) fails
there, online, and not at the site. Offline, ``offline.build`` and
``offline.verify`` start the replay proxy: nothing is forwarded anywhere.

The key is the service: one recording per service, all its replayed steps'
exchanges, for every platform (one file fetched for two platforms is one URL).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import capture_names as names
from .. import recording
from ..apt import run_text, simple_commands
from ..config import Project
from ..dockerfile import Dockerfile, Instruction, Stage
from ..errors import DockerfileError, OfflineBuildError
from ..fetches import command_rules, replays
from ..files import display_path
from ..runners.proxy import CA_SECRET, ENV_PATH, ENV_SECRET
from ..steps import Step
from .base import Package, Row, Served
from .lang import OUT

RECORDING_ARG = "OFFLINE_BUILD_RECORDING"  # the capture build's build argument that no cache holds
MOUNTS = (f"--network=host --mount=type=secret,id={ENV_SECRET},mode=0444 "
          f"--mount=type=secret,id={CA_SECRET},mode=0444",)
# The served command's prefix: without the secret (a build not started by offline-build) it says why.
_SOURCE = (f"{{ [ -f {ENV_PATH} ] || {{ echo 'offline-build: this step is replayed: build it with offline-build "
           f"(its replay proxy)' >&2; exit 1; }}; }} && . {ENV_PATH} && ")


@dataclass(frozen=True)
class ReplayNeed:
    """The steps of one service the replay capture serves (its key is the service)."""

    service: str
    lines: tuple[int, ...]


def replayed(ins: Instruction) -> bool:
    """Does lint flag a command of this RUN as fetching in a way only the replay capture serves?"""
    if ins.cmd != "RUN" or ins.heredocs or ins.json:
        return False
    return any(replays(rule, argv) for argv in simple_commands(run_text(ins)) for rule, _ in command_rules(argv))


def _shell_run(ins: Instruction) -> bool:
    return ins.cmd == "RUN" and not ins.heredocs and not ins.json


def check_lines(df: Dockerfile, service: str, lines: Sequence[int]) -> None:
    """Each line a service lists under ``replay:`` must start a shell-form ``RUN`` step; else the error names the
    line and what is there (checked by lint, diagnose and every plan, before any engine is asked)."""
    starts = [i.line for stage in df.stages for i in stage.instructions if _shell_run(i)]
    for line in lines:
        if line in starts:
            continue
        listed = ", ".join(map(str, starts[:12])) + (", ..." if len(starts) > 12 else "")
        raise DockerfileError(f"services.{service}.replay names line {line} of {df.path}, which does not start a "
                              f"shell-form RUN step: {_what_is_at(df, line)}",
                              f"list the line numbers where the RUN steps to replay start (here: {listed})"
                              if starts else "this Dockerfile has no shell-form RUN step: remove replay:")


def _what_is_at(df: Dockerfile, line: int) -> str:
    """What line *line* of *df* holds, in words: past the end, inside a step, or its text."""
    raw = df.lines()
    steps = [(s.line, s.line, f"FROM {s.base_raw}") for s in df.stages] + \
            [(i.line, i.end_line, i.cmd) for s in df.stages for i in s.instructions]
    if line > max(len(raw), max(end for _, end, _ in steps)):
        return f"past the end of the file (it has {len(raw)} lines)"
    for start, end, cmd in steps:
        if start < line <= end:
            return f"line {line} is inside the {cmd} step that starts at line {start}"
    text = raw[line - 1].strip() if line <= len(raw) else ""
    ins = next((i for s in df.stages for i in s.instructions if i.line == line), None)
    if ins is not None and ins.cmd == "RUN":  # a RUN, not in shell form: no shell to give the proxy to
        return f"line {line} is a RUN {'with a heredoc' if ins.heredocs else 'in exec form (JSON)'}: {text!r}"
    return f"line {line} is {text!r}" if text else f"line {line} is blank"


class ReplayCapture:
    name = names.REPLAY
    per_platform = False  # one recording per service, whatever the platforms (the SBOM reads it so)

    def folder(self, project: Project) -> Path:
        return project.cache_dir / "captures" / self.name

    def needs(self, project: Project, service: str, df: Dockerfile) -> dict[str, ReplayNeed]:
        chosen = project.services[service].replay if service in project.services else True
        if self.name in project.captures_off or chosen is False:
            return {}
        runs = {i.line: i for stage in df.stages for i in stage.instructions if i.cmd == "RUN"}
        extra = () if chosen is True else chosen  # checked by inputs.read_dockerfile, which parsed df
        lines = tuple(sorted({line for line, ins in runs.items() if replayed(ins)} | set(extra)))
        return {service: ReplayNeed(service, lines)} if lines else {}

    def captured(self, project: Project, key: str) -> bool:
        return recording.recorded(self.context_dir(project, key))

    def context_dir(self, project: Project, key: str) -> Path:
        return self.folder(project) / key

    def serve(self, service: str, df: Dockerfile, stage: Stage, ins: Instruction, command: str,
              keys: Mapping[str, ReplayNeed], capturing: bool = False) -> Served | None:
        if not any(ins.line in need.lines for need in keys.values()):
            return None
        if capturing:
            # The capture stage copies OUT/ of this stage: it must exist, though the proxy keeps the recording.
            # RECORDING_ARG, a fresh value each capture build, runs the step again: a cached step would
            # fetch nothing through the proxy, and the recording would lose what it fetched.
            return Served(MOUNTS, f"mkdir -p {OUT}/{self.name} && {_SOURCE}{command}",
                          outputs=(stage.name or str(stage.index),), args=f"ARG {RECORDING_ARG}")
        return Served(MOUNTS, f"{_SOURCE}{command}")

    def capture_steps(self, project: Project, needs: list[Mapping[str, Any]]) -> list[Step]:
        return []  # recorded by the service's capture build (runners/build.py starts the proxy)

    def handlers(self) -> Mapping[type, Callable[..., dict[str, Any]]]:
        return {}

    def explain(self, step_text: str, message: str) -> tuple[str, str] | None:
        return None  # a replay miss is named by the build runner, which knows the proxy's misses

    def rows(self, project: Project) -> list[Row]:
        root = self.folder(project)
        keys = sorted(p.name for p in root.iterdir() if recording.recorded(p) and not p.name.startswith(".")) \
            if root.is_dir() else []
        out = []
        for key in keys:
            try:
                exchanges = recording.read(root / key)
            except OfflineBuildError as exc:
                out.append(Row(self.name, "fail", f"{key}: {exc.message}", exc.hint or ""))
                continue
            size = sum(f.stat().st_size for f in (root / key / recording.BODIES).glob("*"))
            out.append(Row(self.name, "info", f"{key}: {len(exchanges)} recorded request(s), {size / 1e6:.1f} MB "
                                              f"in {display_path(root / key, project.root)}"))
        return out

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """Each recorded response body, as a generic resource: its URL (credentials hidden) and sha256."""
        out = []
        for path in (p for p in paths if p.endswith(f"/{recording.EXCHANGES}")):
            folder = path.rsplit("/", 1)[0]
            for exchange in recording.parse(json.loads(read(path)), Path(path)):
                if recording.downloaded(exchange):
                    url = recording.shown_url(exchange.url)
                    out.append(Package("generic", url.rsplit("/", 1)[-1].split("?")[0] or url, "",
                                       f"{folder}/{recording.BODIES}/{exchange.body_sha256}",
                                       qualifiers=(("download_url", url),)))
        return out


REPLAY = ReplayCapture()

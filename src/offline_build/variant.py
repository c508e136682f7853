"""Generated Dockerfile variants; the user's Dockerfile is never touched.

The *offline* variant lets each capture (``captures/``) serve the ``RUN``
steps it knows: APT gets the captured lists and ``.deb`` files as bind
mounts (``rw``: apt may write, the writes are thrown away) and
``apt-get update`` becomes ``true``. The export builds it too, so the cache
it exports has the very keys the offline build looks up.

The *classic* variant is for the classic builder (no ``RUN --mount``, no
named contexts): stages start from the base image with the packages
preinstalled, APT commands become ``true``, and BuildKit-only syntax is
removed where that keeps the meaning (cache mounts, ``COPY --link``).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .apt import external_base, uses_apt
from .captures.apt import ANY_APT, to_true
from .captures.lang import CAPTURE_STAGE, MOUNTS, OUT
from .dockerfile import Dockerfile, Instruction, mount_options

if TYPE_CHECKING:
    from .captures import Capture

# BuildKit-only RUN flags the classic builder cannot take at all.
_UNREMOVABLE = ("--mount=type=bind", "--mount=type=secret", "--mount=type=ssh", "--mount=type=tmpfs",
                "--network", "--security")


@dataclass
class Variant:
    text: str
    contexts: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (capture, key)
    notes: list[str] = field(default_factory=list)
    changed: bool = False


@dataclass
class ClassicVariant:
    text: str | None  # None: no classic variant is possible
    reason: str = ""
    bases: dict[str, str] = field(default_factory=dict)  # original base -> preinstalled image
    images: tuple[str, ...] = ()  # other images it copies from (a service's captures image)


def _replace(lines: list[str], edits: dict[int, tuple[int, str]]) -> str:
    """Replace instruction line ranges (1-based start -> (end, new text))."""
    out: list[str] = []
    i = 1
    while i <= len(lines):
        if i in edits:
            end, text = edits[i]
            out.append(text)
            i = end + 1
        else:
            out.append(lines[i - 1])
            i += 1
    return "\n".join(out) + "\n"


def _drop_syntax(lines: list[str], df: Dockerfile, notes: list[str], keep: bool) -> None:
    if "syntax" not in df.directives or keep:
        return
    for i, line in enumerate(lines):
        if re.match(r"^#\s*syntax\s*=", line.strip(), re.I):
            lines[i] = "# (offline-build: '# syntax=' dropped: the frontend image is not in the bundle)"
            notes.append(f"{df.path.name}: dropped '# syntax={df.directives['syntax']}': with no network the "
                         "frontend image cannot be fetched; the engine's built-in frontend is used")
            return


def _run_parts(ins: Instruction) -> tuple[list[str], str]:
    """(flags, command text) of a RUN, from BuildKit's parse."""
    text = ins.original.split(None, 1)[1] if " " in ins.original.strip() else ""
    flags = list(ins.flags)
    for flag in flags:
        text = text.replace(flag, "", 1)
    return flags, text.strip()


def offline_variant(df: Dockerfile, served: list[tuple[Capture, Mapping[str, Any]]], keep_syntax: bool = False,
                    service: str = "", capturing: bool = False) -> Variant:
    """The offline variant of *df*: each capture serves the ``RUN`` steps it can, for its keys in *served*.

    With *capturing*, the steps a capture takes online run in capture mode
    instead, and a last stage (``offline-build-capture``) copies what they
    captured out of their stages: the capture build's Dockerfile.
    """
    lines = df.lines()
    notes: list[str] = []
    _drop_syntax(lines, df, notes, keep_syntax)
    edits: dict[int, tuple[int, str]] = {}
    contexts: dict[str, tuple[str, str]] = {}
    outputs: list[str] = []
    for stage in df.stages:
        for ins in stage.instructions:
            if ins.cmd != "RUN":
                continue
            flags, command = _run_parts(ins)
            mounts: list[str] = []
            args: list[str] = []
            for capture, keys in served:
                serving = capture.serve(service, df, stage, ins, command, keys, capturing)
                if serving is None:
                    continue
                mounts += serving.mounts
                command = serving.command
                args += [serving.args] if serving.args and serving.args not in args else []
                contexts.update({name: (capture.name, key) for name, key in serving.contexts.items()})
                outputs += [o for o in serving.outputs if o not in outputs]
            if mounts:
                # The ARG line makes the platform's folder name expand in the mounts; declaring it
                # again in a stage changes nothing, so each served RUN gets its own.
                declared = "".join(f"{line}\n" for line in args)
                edits[ins.line] = (ins.end_line, f"{declared}RUN {' '.join(mounts + flags)} {command}")
    text = _replace(lines, edits)
    if capturing and outputs:
        copies = "".join(f"COPY --from={stage} {OUT}/ /\n" for stage in outputs)
        text += f"\nFROM scratch AS {CAPTURE_STAGE}\n{copies}"
    changed = bool(edits) or bool(notes)
    return Variant(text, contexts, notes, changed)


def classic_variant(df: Dockerfile, preinstalled: dict[str, str],
                    served: dict[int, list[tuple[str, Callable[[str], str]]]] | None = None, images: tuple[str, ...] = ()) -> ClassicVariant:
    """The classic-builder variant, or why there can be none.

    *preinstalled* maps a base image to the image with its APT packages
    already installed (``offline.base-images``). *served* maps a ``RUN``'s
    line to the language captures it uses, each as (``COPY --from=`` line,
    environment): the classic builder cannot mount, so the capture is copied
    in from a captures image (*images*) and removed again by the step.
    """
    lines = df.lines()
    _drop_syntax(lines, df, [], keep=False)
    edits: dict[int, tuple[int, str]] = {}
    used: dict[str, str] = {}
    for stage in df.stages:
        base = external_base(df, stage)
        if not df.is_stage_ref(stage.base, stage.index) and base in preinstalled:
            name = f" AS {stage.name}" if stage.name else ""
            edits[stage.line] = (stage.line, f"FROM {preinstalled[base]}{name}")
            used[base] = preinstalled[base]
        for ins in stage.instructions:
            new, reason = _classic_instruction(ins, base in preinstalled)
            if reason:
                return ClassicVariant(None, f"{df.path.name}:{ins.line}: {reason}")
            if served and ins.line in served:
                new = _copied_in(ins, served[ins.line], base in preinstalled)
            if new is not None:
                edits[ins.line] = (ins.end_line, new)
    return ClassicVariant(_replace(lines, edits), "", used, images)


def _copied_in(ins: Instruction, uses: list[tuple[str, Callable[[str], str]]], apt_preinstalled: bool) -> str:
    """A served ``RUN`` for the classic builder: its captures copied in, the tools pointed at them, then removed."""
    flags, command = _run_parts(ins)
    if uses_apt(ins) and apt_preinstalled:
        command = ANY_APT.sub(to_true, command)
    kept = [f for f in flags if not f.startswith("--mount=type=cache")]
    for _, served in uses:
        command = served(command)
    run = " ".join(["RUN", *kept, f"( {command} ) && rm -rf {MOUNTS}"])
    return "\n".join([*(copy for copy, _ in uses), run])


def _classic_instruction(ins: Instruction, apt_preinstalled: bool) -> tuple[str | None, str]:
    """(new text or None to keep, reason there can be no classic variant)."""
    if ins.heredocs:
        return None, "a heredoc needs BuildKit"
    if ins.cmd in ("COPY", "ADD"):
        flags = [f for f in ins.flags if not f.startswith("--link")]
        if any(f.startswith(("--chmod", "--checksum", "--keep-git-dir", "--parents", "--exclude")) for f in flags):
            return None, f"{ins.cmd} {flags[0]} needs BuildKit"
        if len(flags) != len(ins.flags):
            return _rebuild(ins, flags), ""
        return None, ""
    if ins.cmd != "RUN":
        return None, ""
    flags, command = _run_parts(ins)
    blocking = [f for f in flags if f.startswith(_UNREMOVABLE) or _mount_type(f) not in (None, "cache")]
    if blocking:
        return None, f"RUN {blocking[0]} needs BuildKit"
    kept = [f for f in flags if _mount_type(f) != "cache"]
    # BuildKit always mounts a cache's target (empty the first time); steps
    # rely on it existing, so the classic variant makes it.
    targets = [_mount_target(f) for f in flags if _mount_type(f) == "cache"]
    made = f"mkdir -p {' '.join(shlex.quote(t) for t in targets)} && " if targets else ""
    if uses_apt(ins) and not apt_preinstalled:
        return None, "installs APT packages but its base has no preinstalled image"
    if ins.json:
        values = [ANY_APT.sub(to_true, v) for v in ins.value] if uses_apt(ins) else list(ins.value)
        if kept == flags and values == list(ins.value):
            return None, ""
        if made:  # exec form has no shell to run mkdir in: a small one runs it, then execs the command
            values = ["sh", "-c", f'{made}exec "$@"', "sh", *values]
        return " ".join(["RUN", *kept, json.dumps(values)]), ""
    if uses_apt(ins):
        command = ANY_APT.sub(to_true, command)
    if kept == flags and command == _run_parts(ins)[1]:
        return None, ""
    return " ".join(["RUN", *kept, made + command]), ""


def _mount_options(flag: str) -> dict[str, str] | None:
    """``--mount=type=cache,target=/x`` as options (BuildKit's default type is bind); None for other flags."""
    return mount_options(flag.removeprefix("--mount=")) if flag.startswith("--mount=") else None


def _mount_type(flag: str) -> str | None:
    options = _mount_options(flag)
    return options["type"] if options else None


def _mount_target(flag: str) -> str:
    options = _mount_options(flag) or {}
    return next((options[k] for k in ("target", "dst", "destination") if k in options), "")


def _rebuild(ins: Instruction, flags: list[str]) -> str:
    if ins.json:
        return f"{ins.cmd} {' '.join(flags)} {json.dumps(list(ins.value))}".replace("  ", " ")
    return " ".join([ins.cmd, *flags, *ins.value])

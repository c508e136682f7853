"""``offline.lint``: every network dependency in the Dockerfiles, before the trip.

A step that needs the network only works offline while its layer stays
cached; the first change above it sends the offline machine looking for a
registry it cannot reach. Each finding names the rule, where it is, and what
offline-build offers instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from . import capture_names as names
from .apt import edits_sources, pipelines, run_text, shell_join, simple_commands
from .dockerfile import Dockerfile, Instruction, parse
from .files import display_path
from .fetches import command_rules, replays
from .pkgs import install_of
from .variant import classic_variant

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Rule:
    severity: str
    title: str
    hint: str


RULES: dict[str, Rule] = {
    "apt-update": Rule("error", "APT index refresh needs the network",
                       "offline-build captures lists and .debs per base image (offline.apt-capture) and "
                       "mounts them into the build; keep apt.enabled on"),
    "apk-add": Rule("error", "apk fetches from a remote repository",
                    "install from a local repository (apk add --repository /path) carried as a resource, "
                    "or use a base image with the packages preinstalled"),
    "yum-dnf": Rule("error", "yum/dnf fetch from remote repositories",
                    "use a base image with the packages preinstalled, listed under base_images"),
    "download": Rule("error", "downloads a file at build time",
                     "the replay capture serves curl unless it is switched off (replay: false); list another "
                     "client's line under services.<name>.replay; or declare the file under resources: (url + "
                     "sha256), which carries it to build-cache/resources/<dest>, and copy it into the build context"),
    "add-url": Rule("error", "ADD of a URL fetches at build time",
                    "declare it under resources: (url + sha256), which carries it to build-cache/resources/<dest>; "
                    "copy it into the build context and COPY it from there"),
    "git-clone": Rule("error", "git reaches a remote repository",
                      "over HTTP(S) the replay capture serves it; over ssh, declare the repository under resources: "
                      "(git + ref), which carries its archive to build-cache/resources/<dest>, and copy that into "
                      "the build context"),
    "go-mod-download": Rule("error", "go fetches modules",
                            "vendor the modules (go mod vendor) and build with -mod=vendor"),
    "cargo-fetch": Rule("error", "cargo fetches crates",
                        "vendor the crates (cargo vendor) and build with --offline"),
    "pip-install": Rule("error", "pip reaches a package index",
                        "carry wheels as a resource and install with --no-index --find-links; "
                        "copy requirements files before the install so its layer stays cached"),
    "pipx": Rule("error", "pipx reaches a package index", "carry wheels as a resource and install them offline"),
    "poetry-install": Rule("error", "poetry reaches a package index",
                           "export requirements and install from wheels carried as a resource"),
    "uv-sync": Rule("error", "uv reaches a package index", "run uv with --offline and a pre-filled cache resource"),
    "npm-install": Rule("error", "npm reaches the registry",
                        "copy package*.json before the install so its layer stays cached, "
                        "or install with --offline from a cache carried as a resource"),
    "yarn": Rule("error", "yarn reaches the registry", "use yarn's offline mirror carried as a resource"),
    "pnpm": Rule("error", "pnpm reaches the registry", "pnpm fetch into a store carried as a resource, then --offline"),
    "mvn": Rule("error", "Maven reaches remote repositories",
                "resolve into a repository carried as a resource and build with -o (offline)"),
    "mvn-update": Rule("error", "mvn -U always goes to the network", "drop -U; build with -o from a carried repository"),
    "gradle": Rule("error", "Gradle reaches remote repositories",
                   "build with --offline from a dependency cache carried as a resource"),
    "runtime-fetch": Rule("error", "a script downloads data at build time",
                          "the replay capture serves a client that takes the proxy from the environment (a script's "
                          "line listed under services.<name>.replay); or carry the data as a resource and point the "
                          "library at it"),
    "remote-image": Rule("warning", "image is not in the bundle",
                         "list it under base_images: in offline.yaml so offline.export carries it"),
    "mutable-tag": Rule("warning", "mutable image tag",
                        "pin a version tag or a digest: ':latest' changes under you between trips"),
    "copy-before-install": Rule("warning", "dependency install after a broad COPY",
                                "copy only the lockfiles before the install, the rest after: any code change "
                                "otherwise re-runs the install, which needs the network"),
    "apt-sources-edit": Rule("warning", "APT sources edited in the Dockerfile",
                             "offline-build replays the edit before capturing; the edited mirror must be "
                             "reachable from the online machine"),
    "buildkit-only": Rule("info", "BuildKit-only syntax: no classic fallback",
                          "fine where BuildKit works; engines without it cannot build this file"),
    "cache-mount": Rule("warning", "RUN --mount=type=cache contents are not exported",
                        "nothing offline may depend on what the cache mount held online"),
    "syntax-directive": Rule("warning", "# syntax= fetches the frontend image before the build starts",
                             "offline-build drops it in the offline variant; remove it unless you need "
                             "a newer frontend"),
}

_SUPPRESS = re.compile(r"#\s*offline-build:\s*ignore=([a-z0-9,\- ]+)")
_INSTALLS = {"pip-install", "poetry-install", "uv-sync", "npm-install", "yarn", "pnpm", "mvn", "gradle",
             "go-mod-download", "cargo-fetch", "pipx"}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    path: str
    line: int
    column: int
    text: str
    message: str
    hint: str


@dataclass(frozen=True)
class Context:
    """What the project already takes care of; lint of a bare file assumes nothing."""

    bundled_images: frozenset[str] | None = None  # None: no bundle to compare with
    apt_captured: bool = False
    project: bool = False
    captured: frozenset[str] = frozenset()  # language captures that serve their steps offline (pip, npm)


# rule -> the capture that serves it, and what the note says then ({cmd}: the command as the user wrote it).
SERVED_BY = {"pip-install": (names.PIP, "{cmd}: served by the bundle's pip capture offline"),
             "npm-install": (names.NPM, "{cmd}: served by the bundle's npm capture offline"),
             "yarn": (names.YARN, "{cmd}: served by the bundle's yarn capture offline"),
             "uv-sync": (names.UV, "{cmd}: served by the bundle's uv capture offline"),
             "pnpm": (names.PNPM, "{cmd}: served by the bundle's pnpm capture offline"),
             "mvn": (names.MAVEN, "{cmd}: served by the bundle's Maven capture offline (with -o)"),
             "mvn-update": (names.MAVEN, "{cmd}: served by the bundle's Maven capture offline; -o keeps -U off the network"),
             "go-mod-download": (names.GO, "{cmd}: modules served by the bundle's Go capture offline")}
_URL = re.compile(r"^(git\+|hg\+|svn\+|bzr\+)?(https?|ftp|ssh)://|^git@")
def _served(rule: str, argv: list[str], ins: Instruction, context: Context) -> str | None:
    """The note for a step a capture serves, or None when it is not served (then it stays an error).

    A capture serves shell-form steps; a URL or VCS requirement on the command
    line is fetched from there, never from the capture.
    """
    if rule == "apt-update" and context.apt_captured:
        return f"{_said(argv)}: served by the bundle's APT capture offline"
    if replays(rule, argv) and names.REPLAY in context.captured and not (ins.heredocs or ins.json):
        return f"{_said(argv)}: served offline by the bundle's replay of what it fetched online"
    tool, note = SERVED_BY.get(rule, ("", ""))
    if not tool or tool not in context.captured or ins.heredocs or ins.json:
        return None
    install = install_of(argv)
    if install is None or install.tool != tool:  # e.g. ``uv lock``: the rule's, not a served install
        return None
    return None if any(_URL.match(a) for a in argv) else note.format(cmd=_said(argv))


def likely_cause(command: str, mounts: str) -> tuple[str, str] | None:
    """(cause, fix) from the rule that names a command of a failed step's *command*, when one does: the likely
    cause of a network call no capture covers (a capture's folder under *mounts* in the step serves its rule)."""
    for argv in simple_commands(command):
        for rule, word in command_rules(argv):
            served = SERVED_BY.get(rule, ("",))[0]
            if served and f"{mounts}/{served}/" in command:
                continue  # a capture serves this command here: the cause is elsewhere in the step
            spec = RULES[rule]
            return f"likely cause: {spec.title.lower()} ({word}; offline.lint rule '{rule}')", spec.hint
    return None


def _said(argv: list[str]) -> str:
    """The command as the user wrote it, up to its verb (``apt update``, ``npm ci``, ``python3 -m pip``)."""
    verb = next((i for i, a in enumerate(argv[1:], 1) if not a.startswith("-")), len(argv) - 1)
    return " ".join(argv[:verb + 1])


# --- the linter ------------------------------------------------------------------


def lint_dockerfile(df: Dockerfile, context: Context = Context()) -> list[Finding]:
    raw = df.lines()
    found: list[Finding] = []
    if "syntax" in df.directives:
        line = next((i + 1 for i, text in enumerate(raw) if re.match(r"^#\s*syntax\s*=", text.strip(), re.I)), 1)
        severity = "warning" if context.project else "error"
        found.append(_finding(df, "syntax-directive", line, 1, raw, f"# syntax={df.directives['syntax']}",
                              severity=severity))
    for stage in df.stages:
        found += _image_findings(df, stage.base, stage.line, stage.index, raw, context)
        broad_copy: int | None = None
        installed: set[str] = set()  # install rules run before the broad COPY: the good pattern's
        for ins in stage.instructions:
            if ins.cmd in ("COPY", "ADD"):
                ref = ins.flag("from")
                if ref and not df.is_stage_ref(ref, len(df.stages)):
                    found += _image_findings(df, ref, ins.line, None, raw, context)
                if ins.cmd == "ADD" and any(re.match(r"^https?://", v) for v in ins.value):
                    found.append(_at(df, ins, raw, "add-url", "http"))
                if not ref and any(map(_is_folder, ins.value[:-1])):
                    broad_copy = ins.line
            if ins.cmd == "RUN":
                found += _run_findings(df, ins, raw, context, broad_copy, installed)
    found += _classic_findings(df, raw)
    return sorted(_unsuppressed(found, raw), key=lambda f: (f.path, f.line, f.column, f.rule))


def _run_findings(df: Dockerfile, ins: Instruction, raw: list[str], context: Context,
                  broad_copy: int | None, installed: set[str]) -> list[Finding]:
    """Each command's findings, at the physical line where that command starts (a chain spans lines)."""
    out = []
    if any(m.startswith("type=cache") or ",type=cache" in m for m in ins.flag_values("mount")):
        out.append(_at(df, ins, raw, "cache-mount", "--mount=type=cache"))
    text = run_text(ins)
    cursor = (ins.line, 0)  # where the command before ended: the next is searched from there
    for pipeline in pipelines(text):
        if edits_sources(pipeline):
            severity = "info" if context.apt_captured else None
            out.append(_at(df, ins, raw, "apt-sources-edit", pipeline[0], severity=severity, after=cursor))
            cursor = _after(raw, ins, pipeline[0], cursor)
            continue
        for argv in simple_commands(shell_join(pipeline)):
            needle = " ".join(argv[:2])
            for rule, word in command_rules(argv):
                note = _served(rule, argv, ins, context)
                out.append(_at(df, ins, raw, rule, word, severity="info" if note else None, message=note,
                               needle=needle, after=cursor, hint="" if note else None))
                if rule in _INSTALLS and broad_copy is None:
                    installed.add(rule)
                elif rule in _INSTALLS and rule not in installed:
                    # Served, a re-run after a source change works offline: it only costs time.
                    out.append(_at(df, ins, raw, "copy-before-install", word, needle=needle, after=cursor,
                                   severity="info" if note else None,
                                   message=f"{RULES['copy-before-install'].title} (line {broad_copy})"
                                           + ("; it re-runs offline from the capture" if note else "")))
            cursor = _after(raw, ins, argv[0] if argv else "", cursor)
    return out


# Folders copied before an install because the install needs them: dependencies, not the code.
_DEPENDENCY_FOLDERS = {"wheels", "vendor", "gradle", "patches", "prisma"}
# Files with no extension that manifests and wrappers use: copying one is the good pattern.
_PLAIN_FILES = {"Gemfile", "Pipfile", "Makefile", "Procfile", "Dockerfile", "LICENSE", "VERSION", "mvnw", "gradlew"}


def _is_folder(source: str) -> bool:
    """Does a COPY source look like a folder of the context (``.``, ``src/``, ``frontend``), so any code change
    re-runs what follows? A lockfile, a manifest, a glob of them (``package*.json``) or a dependency folder is not.
    """
    if source.startswith(("<<", "http://", "https://", "git@")) or any(c in source for c in "*?["):
        return False
    name = source.rstrip("/").rsplit("/", 1)[-1]
    if name in ("", ".", ".."):
        return True
    if name in _DEPENDENCY_FOLDERS:
        return False
    return source.endswith("/") or ("." not in name and name not in _PLAIN_FILES)


def _image_findings(df: Dockerfile, image: str, line: int, stage: int | None, raw: list[str],
                    context: Context) -> list[Finding]:
    if image == "scratch" or (stage is not None and df.is_stage_ref(image, stage)):
        return []
    out = []
    last = image.rsplit("/", 1)[-1]
    if "@" not in image and (":" not in last or last.endswith(":latest")):
        out.append(_finding(df, "mutable-tag", line, _column(raw, line, image), raw, image))
    if context.bundled_images is not None and image not in context.bundled_images:
        out.append(_finding(df, "remote-image", line, _column(raw, line, image), raw, image))
    return out


def _classic_findings(df: Dockerfile, raw: list[str]) -> list[Finding]:
    # APT is never the blocker here: offline-build preinstalls it for the classic builder.
    classic = classic_variant(df, preinstalled={b: b for b in df.base_images()})
    if classic.text is not None:
        return []
    _, _, rest = classic.reason.partition(":")
    line = int(rest.split(":", 1)[0]) if rest.split(":", 1)[0].isdigit() else 1
    return [_finding(df, "buildkit-only", line, 1, raw, raw[line - 1].strip() if line <= len(raw) else "",
                     message=f"{RULES['buildkit-only'].title} ({classic.reason.split(': ', 1)[-1]})")]


def _at(df: Dockerfile, ins: Instruction, raw: list[str], rule: str, word: str,
        severity: str | None = None, message: str | None = None, needle: str | None = None,
        after: tuple[int, int] | None = None, hint: str | None = None) -> Finding:
    """A finding located at *needle* (the command and its first word), else *word*, from *after* on."""
    line, column = ins.line, 1
    for target in ([needle] if needle else []) + [word]:
        hit = _find(raw, ins, target, after or (ins.line, 0))
        if hit:
            line, column = hit[0], hit[1] + 1
            break
    text = raw[line - 1].strip() if 0 < line <= len(raw) else ins.original
    return _finding(df, rule, line, column, raw, text, severity=severity, message=message, exact_text=True,
                    hint=hint)


def _find(raw: list[str], ins: Instruction, target: str, start: tuple[int, int]) -> tuple[int, int] | None:
    """(line, 0-based column) of *target* in *ins*'s lines, at or after *start* (line, column)."""
    for n in range(start[0], min(ins.end_line, len(raw)) + 1):
        index = raw[n - 1].find(target, start[1] if n == start[0] else 0)
        if index >= 0:
            return n, index
    return None


def _after(raw: list[str], ins: Instruction, word: str, start: tuple[int, int]) -> tuple[int, int]:
    """Just past *word* (a command's first word) found from *start*: where the next command is looked for."""
    hit = _find(raw, ins, word, start) if word else None
    return (hit[0], hit[1] + len(word)) if hit else start


def _finding(df: Dockerfile, rule: str, line: int, column: int, raw: list[str], text: str,
             severity: str | None = None, message: str | None = None, exact_text: bool = False,
             hint: str | None = None) -> Finding:
    """*hint* "" for a served step: there is nothing to fix, and the rule's fix would say otherwise."""
    spec = RULES[rule]
    shown = text if exact_text else (raw[line - 1].strip() if 0 < line <= len(raw) else text)
    return Finding(rule, severity or spec.severity, display_path(df.path), line, column, shown,
                   message or spec.title, spec.hint if hint is None else hint)


def _column(raw: list[str], line: int, word: str) -> int:
    index = raw[line - 1].find(word) if 0 < line <= len(raw) else -1
    return index + 1 if index >= 0 else 1


def _unsuppressed(found: list[Finding], raw: list[str]) -> list[Finding]:
    """Drop findings named in a ``# offline-build: ignore=<rule>`` comment right above their instruction."""
    out = []
    for f in found:
        above = _comment_above(raw, f.line)
        m = _SUPPRESS.search(above) if above else None
        ignored = {r.strip() for r in m.group(1).split(",")} if m else set()
        if f.rule not in ignored and "all" not in ignored:
            out.append(f)
    return out


def _comment_above(raw: list[str], line: int) -> str:
    # Walk up over continuation lines of the same instruction to the comment before it.
    number = line - 1
    while number >= 1 and raw[number - 1].rstrip().endswith("\\"):
        number -= 1
    return raw[number - 1] if number >= 1 and raw[number - 1].lstrip().startswith("#") else ""


def lint_path(path: Path, context: Context = Context(), build_args: dict[str, str] | None = None) -> list[Finding]:
    return lint_dockerfile(parse(path, build_args), context)


# --- output ----------------------------------------------------------------------


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    out = dict.fromkeys(SEVERITIES, 0)
    for f in findings:
        out[f.severity] += 1
    return out


def render_text(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{f.path}:{f.line}:{f.column}: {f.severity} {f.rule}: {f.message}")
        lines.append(f"    {f.text}")
        if f.hint:
            lines.append(f"    fix: {f.hint}")
    c = counts(findings)
    lines.append(f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} note(s)")
    return "\n".join(lines) + "\n"


def render_json(findings: list[Finding]) -> str:
    return json.dumps({"findings": [asdict(f) for f in findings], "summary": counts(findings)}, indent=2) + "\n"


def exit_status(findings: Collection[Finding], strict: bool = False) -> int:
    c = counts(findings)
    return 1 if c["error"] or (strict and c["warning"]) else 0

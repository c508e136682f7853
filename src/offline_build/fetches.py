"""Which shell commands reach the network, by lint's rule names, and which of them the replay capture serves.

Lint (lint.py) turns these into findings, the build's failure report
(runners/build.py) names the rule of a step that failed, and the replay
capture (captures/replay.py) picks the steps it serves: one reading of a
command for all three.
"""

from __future__ import annotations

import re

from .apt import parse_apt
from .pkgs import go_args

_PY_FETCH = re.compile(r"nltk\.download|spacy\.cli\.download|snapshot_download|hf_hub_download|from_pretrained"
                       r"|torch\.hub\.|urllib\.request\.url(?:retrieve|open)|requests\.get\(")

# Fetches no package capture serves, replayed (captures/replay.py): their clients take the proxy and its CA from
# the environment (wget, Gradle and cargo do not: a project lists such a step under services.<name>.replay).
REPLAYED = frozenset({"download", "git-clone", "runtime-fetch", "poetry-install"})


def replays(rule: str, argv: list[str]) -> bool:
    """Does the replay capture serve this command (of a shell-form RUN) for *rule*? (No proxy carries ssh.)"""
    if rule == "download":
        return argv[0].rsplit("/", 1)[-1] == "curl"
    return rule in REPLAYED and not (rule == "git-clone" and any(a.startswith(("git@", "ssh://")) for a in argv))


def command_rules(argv: list[str]) -> list[tuple[str, str]]:
    """(rule, word to point at) for one simple command."""
    if not argv:
        return []
    prog = argv[0].rsplit("/", 1)[-1].removesuffix(".exe")
    args = argv[1:]
    words = set(args)
    flags = {a for a in args if a.startswith("-")}
    sub = next((a for a in args if not a.startswith("-")), "")
    apt = parse_apt(argv)
    if apt and apt.verb == "update":
        return [("apt-update", argv[0])]
    if prog == "apk" and sub in ("add", "update", "upgrade"):
        local = any(a.startswith(("--repository", "-X")) and "http" not in a for a in args) or "--no-network" in flags
        return [] if local else [("apk-add", "apk")]
    if prog in ("yum", "dnf", "microdnf") and sub in ("install", "update", "upgrade", "makecache", "groupinstall"):
        return [("yum-dnf", prog)]
    if prog in ("wget", "curl") and any(re.match(r"^(https?|ftp)://", a) for a in args):
        return [("download", prog)]
    if prog.lower() in ("powershell", "pwsh") and re.search(r"Invoke-WebRequest|\biwr\b|DownloadFile",
                                                          " ".join(args), re.I):
        return [("download", "Invoke-WebRequest")]
    if prog == "git" and sub in ("clone", "fetch", "pull", "ls-remote") or (
            prog == "git" and sub == "submodule" and "update" in words):
        return [("git-clone", "git")]
    if prog == "go":
        gargs = go_args(args)
        gsub = next((a for a in gargs if not a.startswith("-")), "")
        if gsub == "get" or gargs[:2] == ["mod", "download"] or (gsub == "install" and any("@" in a for a in gargs)):
            return [("go-mod-download", "go")]
    if prog == "cargo" and (sub == "fetch" or (sub in ("build", "install") and not flags & {"--offline", "--frozen"})):
        return [("cargo-fetch", "cargo")]
    if _is_pip(prog, args):
        if "--no-index" in flags or "install" not in args:
            return []
        return [("pip-install", prog)]
    if prog == "pipx" and sub in ("install", "run", "inject"):
        return [("pipx", "pipx")]
    if prog == "poetry" and sub in ("install", "add", "lock", "update"):
        return [("poetry-install", "poetry")]
    if prog == "uv" and (sub == "sync" or args[:2] == ["pip", "install"] or sub in ("add", "lock")):
        return [] if "--offline" in flags else [("uv-sync", "uv")]
    if prog == "npm" and sub in ("ci", "install", "i", "add", "update"):
        return [] if "--offline" in flags else [("npm-install", "npm")]
    if prog == "yarn" and sub in ("", "install", "add", "upgrade"):
        return [] if "--offline" in flags else [("yarn", "yarn")]
    if prog == "pnpm" and sub in ("install", "i", "add", "fetch", "update"):
        return [] if "--offline" in flags else [("pnpm", "pnpm")]
    if prog in ("mvn", "mvnw"):
        out = [("mvn-update", prog)] if flags & {"-U", "--update-snapshots"} else []
        if not flags & {"-o", "--offline"}:
            out.append(("mvn", prog))
        return out
    if prog in ("gradle", "gradlew") and "--offline" not in flags:
        return [("gradle", prog)]
    if prog.startswith("python") and ("-c" in args and _PY_FETCH.search(" ".join(args))
                                      or args[:3] == ["-m", "spacy", "download"]
                                      or args[:2] == ["-m", "nltk.downloader"]):
        return [("runtime-fetch", prog)]
    return []


def _is_pip(prog: str, args: list[str]) -> bool:
    return prog in ("pip", "pip3") or bool(re.match(r"^pip3\.\d+$", prog)) or (
        prog.startswith("python") and args[:2] == ["-m", "pip"])

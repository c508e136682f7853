"""Which files a ``.dockerignore`` leaves out of a build context, read as Docker reads it.

Used to explain a build's failure: BuildKit says only that a ``COPY`` source
is "not found"; the rule that hid it is what the user has to change.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from pathlib import Path


def ignore_file(context: Path, dockerfile: Path) -> Path | None:
    """The ignore file BuildKit reads: ``<Dockerfile>.dockerignore`` beside the Dockerfile, else the context's."""
    for candidate in (dockerfile.with_name(f"{dockerfile.name}.dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            return candidate
    return None


def ignore_rules(text: str) -> list[tuple[int, str]]:
    """(line number, rule as written) of an ignore file's rules: comments and blank lines are not rules."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def hiding_rule(path: str, rules: Sequence[tuple[int, str]]) -> tuple[int, str] | None:
    """The rule that leaves *path* (relative to the context) out of it, or None when it is sent.

    Docker's semantics: every rule is tried in order and the last that
    matches decides (``!`` re-includes); a rule matching a folder matches
    all under it.
    """
    parents = [posixpath.join(*path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
    decided: tuple[int, str] | None = None
    for line, rule in rules:
        exclude = rule.startswith("!")
        pattern = _rule_regex(rule[1:].strip() if exclude else rule)
        if any(pattern.fullmatch(p) for p in (path, *parents)):
            decided = None if exclude else (line, rule)
    return decided


def _rule_regex(rule: str) -> re.Pattern[str]:
    """A rule as Go's filepath.Match per path segment, with ``**`` for any number of segments."""
    rule = posixpath.normpath(rule).lstrip("/")  # "./x", "/x" and "x/" are all "x"
    out, i = "", 0
    while i < len(rule):
        c = rule[i]
        if rule.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
            continue
        if rule.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[" and "]" in rule[i + 2:]:
            end = rule.index("]", i + 2)
            body = rule[i + 1:end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out += f"[^/{body}]" if negate else f"[{body}]"
            i = end
        elif c == "\\" and i + 1 < len(rule):
            i += 1
            out += re.escape(rule[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)

"""A YAML file as PyYAML's node tree, each node with the key path that led to it.

Validation walks nodes rather than plain dicts so that every error can name
the file, line, column and key path of what is wrong: in the project file
and in a compose file it names with ``services_from``.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

KEY_HINT = "write each key as plain text before its colon"
TWICE_HINT = "keep one of them: each key may appear once"


class Node:
    """A YAML node with the key path that led to it, for error messages."""

    def __init__(self, node: yaml.Node, key: str, path: Path) -> None:
        self.node = node
        self.key = key
        self.path = path

    def error(self, message: str, hint: str) -> ConfigError:
        mark = self.node.start_mark
        return ConfigError(message, path=self.path, line=mark.line + 1,
                           column=mark.column + 1, key=self.key or None, hint=hint)

    def mapping(self, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Node]:
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"expected a mapping, got {_kind(self.node)}",
                             "write it as 'key: value' lines (docs/project-file.md lists the keys)")
        out: dict[str, Node] = {}
        for knode, vnode in self.node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise Node(knode, self.key, self.path).error("keys must be plain strings", KEY_HINT)
            key = knode.value
            child_key = f"{self.key}.{key}" if self.key else key
            if allowed and key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"valid keys: {', '.join(allowed)}"
                raise Node(knode, child_key, self.path).error(f"unknown key {key!r}", hint)
            if key in out:
                raise Node(knode, child_key, self.path).error(f"duplicate key {key!r}", TWICE_HINT)
            out[key] = Node(vnode, child_key, self.path)
        for key in required:
            if key not in out:
                raise self.error(f"missing required key {key!r}",
                                 f"add a '{key}:' line there (docs/project-file.md says what it takes)")
        return out

    def items(self) -> list[tuple[str, Node, Node]]:
        """Mapping with free-form keys: (key, key node, value node)."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"expected a mapping, got {_kind(self.node)}",
                             "write it as 'name: value' lines, one per entry")
        seen: set[str] = set()
        out = []
        for knode, vnode in self.node.value:
            key = str(knode.value) if isinstance(knode, yaml.ScalarNode) else ""
            child_key = f"{self.key}.{key}"
            if not isinstance(knode, yaml.ScalarNode) or not key:
                raise Node(knode, self.key, self.path).error("keys must be non-empty strings", KEY_HINT)
            if key in seen:
                raise Node(knode, child_key, self.path).error(f"duplicate key {key!r}", TWICE_HINT)
            seen.add(key)
            out.append((key, Node(knode, child_key, self.path), Node(vnode, child_key, self.path)))
        return out

    def sequence(self, hint: str = "write it as a list: [a, b], or one '- item' line each") -> list[Node]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"expected a list, got {_kind(self.node)}", hint)
        return [Node(n, f"{self.key}[{i}]", self.path) for i, n in enumerate(self.node.value)]

    def scalar(self) -> Any:
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error(f"expected a single value, got {_kind(self.node)}",
                             "give it one value; quote it (\"...\") if brackets or braces belong in it")
        # The resolver has already tagged the scalar (int, bool, null, str...);
        # SafeConstructor turns that tag into the value YAML users expect.
        try:
            return yaml.constructor.SafeConstructor().construct_object(self.node)
        except yaml.YAMLError:  # a tag of the user's (``!reset``, ``!!python/object``): nothing to build it with
            raise self.error(f"the tag {self.node.tag!r} is not supported here",
                             "write the plain value, without the tag") from None

    def string(self, pattern: re.Pattern[str] | None = None, what: str = "", hint: str | None = None) -> str:
        value = self.scalar()
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            raise self.error(f"expected a string, got {_kind_value(value)}", _text_hint(value, self.node.value))
        # Keep what the user typed: "version: 1.10" is the tag 1.10, not 1.1.
        text = self.node.value if isinstance(value, (int, float)) else str(value)
        if not text:
            raise self.error("must not be empty", "give it a value, or remove the key")
        if pattern and not pattern.match(text):
            raise self.error(f"{text!r} is not a valid {what or 'value'}",
                             hint or "docs/project-file.md says what this key takes")
        return text

    def option(self) -> str:
        """A value passed on to a tool as text: ``true`` stays ``true``, not ``True``."""
        value = self.scalar()
        if isinstance(value, bool):
            return str(value).lower()
        if value is None or isinstance(value, (dict, list)):
            raise self.error(f"expected a string, got {_kind_value(value)}", _text_hint(value, self.node.value))
        return self.node.value if isinstance(value, (int, float)) else str(value)

    def boolean(self) -> bool:
        value = self.scalar()
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {_kind_value(value)}", "write true or false")
        return value


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}" if node.value else "nothing"


def _text_hint(value: Any, typed: str) -> str:
    """The fix for a value that is not text: *value* is what YAML read of what was *typed*."""
    if value is None:
        return "give it a value after the colon, or remove the key"
    if isinstance(value, bool):
        return f"quote it if it is text (\"{typed}\"): unquoted, YAML reads {typed} as {str(value).lower()}"
    return "give it one value, not a list or a mapping"


def _kind_value(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def compose_yaml(path: Path, empty: tuple[str, str] = ("the project file is empty",
                                                      "it needs at least 'project' and 'services'")) -> yaml.Node:
    """The file's node tree (``yaml.compose``, not ``load``): nodes keep the marks errors point at.

    *empty* is the message and fix for a file with nothing in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no project file here", path=path,
                          hint="create offline.yaml (see the README's quick start) or pass --config") from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a project file", path=path,
                          hint="pass --config the offline.yaml itself (or run where it is)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path,
                          hint="save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=path,
                          hint="check the file's permissions, or pass --config another file") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = exc.problem or exc.context or ""
        raise ConfigError(f"invalid YAML: {problem}", path=path, line=line, column=column,
                          hint="indent with spaces: YAML takes no tabs" if "'\\t'" in problem
                          else "correct the YAML there (quote a value that holds ': ', ' #' or brackets)") from None
    except yaml.reader.ReaderError as exc:  # a control character: YAML takes printable text only
        before = text[:exc.position]
        raise ConfigError(f"invalid YAML: character #x{exc.character:04x} is not allowed", path=path,
                          line=before.count("\n") + 1, column=exc.position - before.rfind("\n"),
                          hint="remove it: YAML takes printable text only (no control characters)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {' '.join(str(exc).split())}", path=path,
                          hint="correct the YAML there, or write the file again") from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply to read", path=path,
                          hint="a project file needs a few levels: look for runaway brackets") from None
    if node is None:
        raise ConfigError(empty[0], path=path, line=1, column=1, hint=empty[1])
    return node

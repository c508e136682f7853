"""``resources:`` in the project file: URLs, git checkouts and local paths a build needs besides images."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from .model import NAME_HINT, SERVICE_NAME, Resource
from .yamlnode import Node

SHA256 = re.compile(r"^[0-9a-f]{64}$")
RESOURCE_KEYS = ("name", "url", "git", "path", "ref", "sha256", "dest")


def read_resources(node: Node | None, root: Path) -> tuple[Resource, ...]:
    if node is None:
        return ()
    resources = tuple(_resource(item, root) for item in node.sequence())
    _unique(resources, lambda r: r.name, "name", node)
    _unique(resources, lambda r: r.dest, "dest", node)
    return resources


def _unique(resources: tuple[Resource, ...], key: Callable[[Resource], str], what: str, node: Node) -> None:
    seen: set[str] = set()
    for i, res in enumerate(resources):
        if key(res) in seen:
            raise node.sequence()[i].error(f"two resources share the {what} {key(res)!r}",
                                           f"give each resource a {what} of its own")
        seen.add(key(res))


def _resource(node: Node, root: Path) -> Resource:
    fields = node.mapping(RESOURCE_KEYS, required=("name",))
    name = fields["name"].string(SERVICE_NAME, "resource name (lowercase letters, digits, '-')", NAME_HINT)
    kinds = [k for k in ("url", "git", "path") if k in fields]
    if len(kinds) != 1:
        raise node.error(f"resource {name!r} needs exactly one of url, git, path (has {len(kinds)})",
                         "keep the one it is fetched from; a second source is a second resource")
    kind = kinds[0]
    source = fields[kind].string()
    if kind == "url" and not source.startswith(("http://", "https://")):
        raise fields[kind].error(f"{source!r} is not an http(s) URL",
                                 "give an http:// or https:// URL; a file here is a path:, a repository a git:")
    if kind == "git" and "ref" not in fields:
        raise node.error(f"git resource {name!r} needs a 'ref'", "pin a tag or commit so the bundle is reproducible")
    sha = fields["sha256"].string(SHA256, "sha256 (64 lowercase hex digits)",
                                  "give what sha256sum prints for the file") if "sha256" in fields else None
    if kind == "path" or (kind == "git" and (root / source).exists()):
        # Local sources are read relative to the project file, like contexts.
        source = str((root / source).resolve())
        if _holds_credentials(Path(source)):
            raise fields[kind].error(f"{fields[kind].string()!r} holds Docker or cloud credentials",
                                     "never carry credential files in a bundle")
        if not Path(source).exists():
            raise fields[kind].error(f"{fields[kind].string()!r} does not exist",
                                     "paths are read relative to the folder holding offline.yaml")
    dest = fields["dest"].string() if "dest" in fields else name
    if dest.startswith("/") or ".." in Path(dest).parts:
        raise fields["dest"].error(f"dest {dest!r} must stay inside the bundle", "use a relative path without '..'")
    return Resource(name, kind, source, dest, fields["ref"].string() if "ref" in fields else None, sha)


_CREDENTIAL_DIRS = (".docker", ".aws", ".ssh", ".gnupg", ".kube", ".config/gcloud")


def _holds_credentials(path: Path) -> bool:
    """Is *path* (or something under it) a credential store, such as ``~/.docker/config.json``?"""
    home = Path.home().resolve()
    for sub in _CREDENTIAL_DIRS:
        secret = home / sub
        if path == secret or secret in path.parents or path in secret.parents:
            return True
    return path.name in (".dockercfg", ".netrc", ".git-credentials")

"""The project file, ``offline.yaml``: read, validate strictly, resolve.

Validation walks PyYAML's node tree rather than plain dicts so that every
error can name the file, line, column and key path of what is wrong. Values
are then resolved with the precedence the seed's make targets use:
command-line flag > environment (``OFFLINE_VERSION``, ``CACHE_DIR``) >
``offline.yaml`` > default.

This module reads the top level; each section has a module of its own
(services, compose, resources, options), all over the node wrapper in
yamlnode and making the values in model, none importing this one. Every
name this module held before the split is still importable from here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .capture_names import SWITCHABLE
from .compose import COMPOSE_BUILD_KEYS, read_compose
from .errors import ConfigError
from .model import (
    NAME_HINT,
    SERVICE_NAME,
    AptOptions,
    BuilderOptions,
    CacheOptions,
    Overrides,
    Project,
    Resource,
    Service,
    SigningOptions,
)
from .options import (
    APT_KEYS,
    BUILDER_DRIVERS,
    BUILDER_KEYS,
    CACHE_BACKENDS,
    CACHE_KEYS,
    DEFAULT_APT_DIR,
    DEFAULT_BUILDKIT_IMAGE,
    REGISTRY_REF,
    S3_KEYS,
    read_apt,
    read_builder,
    read_cache,
)
from .platforms import platform_problem
from .resources import RESOURCE_KEYS, SHA256, read_resources
from .services import (IMAGE_HINT, IMAGE_NAME, IMAGE_REF, RESERVED_NAMES, SECRET_NAME, SERVICE_KEYS, ComposeBuild,
                       read_services)
from .yamlnode import Node, compose_yaml

# The names importers used before the sections moved out; keep them here.
__all__ = [
    "APT_KEYS", "BUILDER_DRIVERS", "BUILDER_KEYS", "CACHE_BACKENDS", "CACHE_KEYS", "COMPOSE_BUILD_KEYS",
    "DEFAULT_APT_DIR", "DEFAULT_BUILDKIT_IMAGE", "DEFAULT_CACHE_DIR", "DEFAULT_FILE", "IMAGE_NAME", "NETWORKS",
    "PLATFORM", "REGISTRY_REF", "RESERVED_NAMES", "RESOURCE_KEYS", "S3_KEYS", "SECRET_NAME", "SERVICE_KEYS",
    "SERVICE_NAME", "SHA256", "TAG", "TOP_KEYS",
    "AptOptions", "BuilderOptions", "CacheOptions", "ComposeBuild", "Overrides", "Project", "Resource", "Service",
    "load",
]

DEFAULT_FILE = "offline.yaml"
DEFAULT_CACHE_DIR = "build-cache"
NETWORKS = ("host", "none", "default")
PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
PLATFORM_HINT = "name it as docker does, e.g. linux/amd64 or linux/arm64"

TOP_KEYS = ("project", "version", "cache_dir", "platforms", "network", "services", "services_from",
            "base_images", "resources", "apt", "cache", "builder", "ca_file",
            "captures", "signing")


def load(path: Path | str | None = None, overrides: Overrides | None = None,
         environ: Mapping[str, str] | None = None) -> Project:
    """Read and validate the project file; every error is a :class:`ConfigError`."""
    path = Path(path or os.environ.get("OFFLINE_BUILD_CONFIG") or DEFAULT_FILE).absolute()
    overrides = overrides or Overrides()
    env = os.environ if environ is None else environ
    top = Node(compose_yaml(path), "", path).mapping(TOP_KEYS, required=("project",))
    if "services" not in top and "services_from" not in top:
        raise top["project"].error("missing required key 'services'",
                                   "list services, or read them from a compose file with services_from")
    root = path.parent
    name = top["project"].string(SERVICE_NAME, "project name (lowercase letters, digits, '-')", NAME_HINT)
    version = _pick(overrides.version, env.get("OFFLINE_VERSION"),
                    top["version"].string() if "version" in top else None, "latest")
    cache_dir = _pick(overrides.cache_dir, env.get("CACHE_DIR"),
                      top["cache_dir"].string() if "cache_dir" in top else None, DEFAULT_CACHE_DIR)
    return Project(
        path=path,
        root=root,
        name=name,
        version=_check_tag(version, top.get("version"), path),
        cache_dir=(root / cache_dir).resolve(),
        platforms=_asked_platforms(overrides.platforms, path) or _platforms(top.get("platforms")),
        platforms_asked=bool(overrides.platforms),
        network=_network(top.get("network")),
        services=read_services(top.get("services"), root, read_compose(top.get("services_from"), root)),
        base_images=_base_images(top.get("base_images")),
        resources=read_resources(top.get("resources"), root),
        apt=read_apt(top.get("apt"), root),
        cache=read_cache(top.get("cache"), env, path),
        builder=read_builder(top.get("builder")),
        **_ca_file(top.get("ca_file"), env.get("OFFLINE_CA_FILE"), root),
        captures_off=_captures_off(top.get("captures")),
        signing=_signing(top.get("signing"), root),
    )


def _pick(*values: str | None) -> str:
    return next(v for v in values if v not in (None, ""))  # type: ignore[return-value]


TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _check_tag(version: str, node: Node | None, path: Path) -> str:
    if TAG.match(version):
        return version
    if node is not None and node.scalar() == version:
        raise node.error(f"{version!r} is not a valid image tag", "use letters, digits, '_', '.', '-'")
    raise ConfigError(f"version {version!r} (from the command line or OFFLINE_VERSION) is not a valid image tag",
                      path=path, hint="use letters, digits, '_', '.', '-'")


def _platforms(node: Node | None) -> tuple[str, ...]:
    if node is None:
        return ()
    out = []
    for item in node.sequence("list them, e.g. platforms: [linux/amd64, linux/arm64]"):
        platform = item.string(PLATFORM, "platform (os/arch[/variant])", PLATFORM_HINT)
        if told := platform_problem(platform):  # else export plans linux_amd65 folders and BuildKit names it mid-build
            raise item.error(f"{platform!r} is not a valid platform: {told[0]}", told[1])
        out.append(platform)
    return tuple(out)


def _asked_platforms(asked: tuple[str, ...] | None, path: Path) -> tuple[str, ...] | None:
    """``--platform``, checked as the file's ``platforms:`` are (docker would otherwise name it mid-build)."""
    for platform in asked or ():
        if not PLATFORM.match(platform):
            raise ConfigError(f"--platform {platform!r} is not a valid platform (os/arch[/variant])", path=path,
                              hint=PLATFORM_HINT + " (commas between several)")
        if told := platform_problem(platform):
            raise ConfigError(f"--platform {platform!r} is not a valid platform: {told[0]}", path=path,
                              hint=told[1])
    return asked


def _network(node: Node | None) -> str | None:
    if node is None:
        return None
    value = node.string()
    if value not in NETWORKS:
        raise node.error(f"unknown network {value!r}", f"use one of: {', '.join(NETWORKS)}")
    return None if value == "default" else value


def _captures_off(node: Node | None) -> frozenset[str]:
    fields = node.mapping(SWITCHABLE) if node is not None else {}
    return frozenset(name for name, value in fields.items() if not value.boolean())


def _signing(node: Node | None, root: Path) -> SigningOptions:
    """Paths only, checked when used: the online machine has no need of the site's keys, nor the site of ours."""
    if node is None:
        return SigningOptions()
    fields = node.mapping(("key", "trusted_keys"))
    key = (root / fields["key"].string()).resolve() if "key" in fields else None
    trusted: tuple[Path, ...] = ()
    if "trusted_keys" in fields:
        items = fields["trusted_keys"].sequence("list the .pub files, e.g. trusted_keys: [keys/team.pub]")
        if not items:  # written to switch trust on, it would quietly switch it off
            raise fields["trusted_keys"].error("an empty list trusts no key, so every bundle would be taken",
                                               "list the .pub files to trust, or remove trusted_keys")
        trusted = tuple((root / item.string()).resolve() for item in items)
    return SigningOptions(key, trusted)


def _ca_file(node: Node | None, from_env: str | None, root: Path) -> dict[str, Any]:
    """``ca_file`` (or ``OFFLINE_CA_FILE``, which wins), resolved but not checked: only capture builds
    read it, so a path that exists on the online machine alone must not stop the site (see :func:`ca_file`)."""
    value = from_env or (node.string() if node is not None else None)
    if not value:
        return {}
    line = None if from_env or node is None else node.node.start_mark.line + 1
    return {"ca_file": (root / value).resolve(), "ca_file_line": line}


def ca_file(project: Project) -> Path | None:
    """The project's CA bundle, checked now that a capture build is about to read it."""
    found = project.ca_file
    if found is None or found.is_file():
        return found
    key = "ca_file" if project.ca_file_line else "OFFLINE_CA_FILE"
    raise ConfigError(f"{found} is not a file", path=project.path, line=project.ca_file_line, key=key,
                      hint="point it at a PEM bundle (e.g. /etc/ssl/certs/ca-certificates.crt), or remove it")


def _base_images(node: Node | None) -> tuple[str, ...] | None:
    if node is None:
        return None
    return tuple(item.string(IMAGE_REF, "image reference ([host/]name[:tag][@sha256:digest])", IMAGE_HINT)
                 for item in node.sequence())

"""The project file's ``apt``, ``cache`` and ``builder`` sections: how services are built, not what."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError
from .model import NAME_HINT, SERVICE_NAME, AptOptions, BuilderOptions, CacheOptions
from .services import IMAGE_HINT, IMAGE_REF
from .yamlnode import Node

DEFAULT_APT_DIR = "apt-lists"

CACHE_BACKENDS = ("local", "registry", "s3")
BUILDER_DRIVERS = ("docker", "docker-container", "remote")
# What buildx's docker-container driver runs unless told otherwise.
DEFAULT_BUILDKIT_IMAGE = "moby/buildkit:buildx-stable-1"
ENDPOINT = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")  # tcp://, unix://, ssh://, docker-container://
REGISTRY_REF = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$")

APT_KEYS = ("enabled", "dir")
CACHE_KEYS = ("backend", "ref", "push", "bucket", "region", "endpoint_url", "use_path_style", "prefix")
S3_KEYS = ("bucket", "region", "endpoint_url", "use_path_style", "prefix")
BUILDER_KEYS = ("name", "driver", "driver_opts", "endpoint", "image")


def read_apt(node: Node | None, root: Path) -> AptOptions:
    fields = node.mapping(APT_KEYS) if node is not None else {}
    enabled = fields["enabled"].boolean() if "enabled" in fields else True
    folder = fields["dir"].string() if "dir" in fields else DEFAULT_APT_DIR
    return AptOptions(enabled, (root / folder).resolve())


def read_cache(node: Node | None, env: Mapping[str, str], path: Path) -> CacheOptions:
    """``cache:``; ``OFFLINE_CACHE_BACKEND`` and ``OFFLINE_CACHE_REF`` override it.

    The overrides exist for the far side: the same project file names the
    team's registry, and a site with its own registry (or none) says so
    without editing the file.
    """
    fields = node.mapping(CACHE_KEYS) if node is not None else {}
    text = {k: fields[k].string() for k in ("ref", "bucket", "region", "endpoint_url", "prefix") if k in fields}
    file_backend = fields["backend"].string() if "backend" in fields else "local"
    if file_backend not in CACHE_BACKENDS:
        raise fields["backend"].error(f"unknown cache backend {file_backend!r}",
                                      f"use one of: {', '.join(CACHE_BACKENDS)}")
    chosen = env.get("OFFLINE_CACHE_BACKEND")
    backend = chosen or file_backend
    if backend not in CACHE_BACKENDS:
        raise ConfigError(f"OFFLINE_CACHE_BACKEND={backend!r} is not a cache backend", path=path,
                          hint=f"use one of: {', '.join(CACHE_BACKENDS)}")
    _no_foreign_keys(fields, file_backend)
    env_ref = env.get("OFFLINE_CACHE_REF")
    if env_ref and backend != "registry" and chosen != "local":
        # Silently ignored, it would leave the user thinking builds share a registry.
        raise ConfigError(f"OFFLINE_CACHE_REF applies to the registry cache backend; this project uses {backend}",
                          path=path, hint="also set OFFLINE_CACHE_BACKEND=registry, or unset OFFLINE_CACHE_REF")
    where = fields.get("backend") or node
    source = f"OFFLINE_CACHE_BACKEND={backend}" if chosen else f"the {backend} cache backend"

    def missing(message: str, hint: str) -> ConfigError:
        return where.error(message, hint) if where else ConfigError(message, path=path, hint=hint)

    ref = (env_ref or text.get("ref")) if backend == "registry" else None
    if backend == "registry":
        if not ref:
            raise missing(f"{source} needs a registry repository",
                          "set cache.ref in the project file or OFFLINE_CACHE_REF, "
                          "e.g. registry.example.invalid:5000/team/cache")
        _check_registry_ref(ref, fields.get("ref"), path)
    if backend == "s3":
        for key in ("bucket", "region"):
            if key not in text:
                raise missing(f"{source} needs cache.{key}",
                              "set cache.bucket and cache.region in the project file "
                              "(endpoint_url for a non-AWS store)")
    return CacheOptions(
        backend=backend, ref=ref,
        push=fields["push"].boolean() if "push" in fields else True,
        bucket=text.get("bucket"), region=text.get("region"), endpoint_url=text.get("endpoint_url"),
        use_path_style=fields["use_path_style"].boolean() if "use_path_style" in fields else False,
        prefix=_prefix(text.get("prefix")),
        from_environment=bool(chosen or (env_ref and backend == "registry")),
    )


def _prefix(prefix: str | None) -> str | None:
    """BuildKit joins prefix and blob name as is: ``team`` and ``team/`` are different keys."""
    folder = (prefix or "").strip("/")
    return folder + "/" if folder else None


def _no_foreign_keys(fields: dict[str, Node], backend: str) -> None:
    """Keys of another backend in the file are a mistake worth naming.

    Beside ``backend: local`` nothing is: ``OFFLINE_CACHE_BACKEND`` may
    switch the same file to its registry or its bucket.
    """
    foreign = {"local": (), "registry": S3_KEYS, "s3": ("ref",)}[backend]
    for key in foreign:
        if key in fields:
            raise fields[key].error(f"cache.{key} does not apply to the {backend} backend",
                                    "set cache.backend, or drop the key")


def _check_registry_ref(ref: str, node: Node | None, path: Path) -> None:
    if REGISTRY_REF.match(ref):
        return
    message, hint = (f"{ref!r} is not a registry repository",
                     "host[:port]/path in lowercase, without a tag: the service name becomes the tag")
    if node is not None and node.scalar() == ref:
        raise node.error(message, hint)
    raise ConfigError(message + " (from OFFLINE_CACHE_REF)", path=path, hint=hint)


def read_builder(node: Node | None) -> BuilderOptions:
    if node is None:
        return BuilderOptions()
    fields = node.mapping(BUILDER_KEYS)
    driver = fields["driver"].string() if "driver" in fields else "docker-container"
    if driver not in BUILDER_DRIVERS:
        raise fields["driver"].error(f"unknown builder driver {driver!r}", f"use one of: {', '.join(BUILDER_DRIVERS)}")
    name = fields["name"].string(SERVICE_NAME, "builder name (lowercase letters, digits, '-')", NAME_HINT) \
        if "name" in fields else None
    if name == "default":
        raise fields["name"].error("'default' is the engine's own builder",
                                   "leave builder: out to use it, or give this builder another name")
    if driver != "docker" and not name:
        raise node.error(f"a {driver} builder needs a name", "e.g. name: offline-build")
    opts = {k: v.option() for k, _, v in fields["driver_opts"].items()} if "driver_opts" in fields else {}
    endpoint = fields["endpoint"].string(ENDPOINT, "endpoint (scheme://address)", "e.g. tcp://buildkitd:1234") \
        if "endpoint" in fields else None
    if driver == "remote" and not endpoint:
        raise node.error("a remote builder needs an endpoint", "e.g. endpoint: tcp://buildkitd.example.invalid:1234")
    if endpoint and driver != "remote":
        raise fields["endpoint"].error(f"endpoint is for the remote driver, not {driver}",
                                       "set driver: remote, or remove endpoint")
    image = fields["image"].string(IMAGE_REF, "image reference", IMAGE_HINT) if "image" in fields else None
    if image and driver != "docker-container":
        raise fields["image"].error(f"image is for the docker-container driver, not {driver}",
                                    "set driver: docker-container, or remove image")
    if driver == "docker-container":
        image = image or opts.get("image") or DEFAULT_BUILDKIT_IMAGE
        opts = {k: v for k, v in opts.items() if k != "image"}
    return BuilderOptions(name=name, driver=driver, driver_opts=opts, endpoint=endpoint, image=image)

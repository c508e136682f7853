"""The project file, ``offline.yaml``: read, validate strictly, resolve.

Validation walks PyYAML's node tree rather than plain dicts so that every
error can name the file, line, column and key path of what is wrong. Values
are then resolved with the precedence the seed's make targets use:
command-line flag > environment (``OFFLINE_VERSION``, ``CACHE_DIR``) >
``offline.yaml`` > default.

The values it makes are in model and the node wrapper in yamlnode, so the
modules that read a section each can share them without importing this
one. Every name this module held before is still importable from here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ConfigError
from .model import (
    SERVICE_NAME,
    AptOptions,
    BuilderOptions,
    CacheOptions,
    Overrides,
    Project,
    Resource,
    Service,
)
from .yamlnode import Node, compose_yaml

# The names importers used before the values and the node wrapper moved out; keep them here.
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
DEFAULT_APT_DIR = "apt-lists"
# The collection name every project gets; a service may not shadow it.
RESERVED_NAMES = frozenset({"offline"})
NETWORKS = ("host", "none", "default")
PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")

CACHE_BACKENDS = ("local", "registry", "s3")
BUILDER_DRIVERS = ("docker", "docker-container", "remote")
# What buildx's docker-container driver runs unless told otherwise.
DEFAULT_BUILDKIT_IMAGE = "moby/buildkit:buildx-stable-1"
REGISTRY_REF = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$")


# --- building the Project ----------------------------------------------------

TOP_KEYS = ("project", "version", "cache_dir", "platforms", "network", "services", "services_from",
            "base_images", "resources", "apt", "cache", "builder")
SERVICE_KEYS = ("context", "dockerfile", "image", "target", "build_args")
RESOURCE_KEYS = ("name", "url", "git", "path", "ref", "sha256", "dest")
APT_KEYS = ("enabled", "dir")
CACHE_KEYS = ("backend", "ref", "push", "bucket", "region", "endpoint_url", "use_path_style", "prefix")
S3_KEYS = ("bucket", "region", "endpoint_url", "use_path_style", "prefix")
BUILDER_KEYS = ("name", "driver", "driver_opts", "endpoint", "image")


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
    name = top["project"].string(SERVICE_NAME, "project name (lowercase letters, digits, '-')")
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
        platforms=overrides.platforms or _platforms(top.get("platforms")),
        network=_network(top.get("network")),
        services=_services(top.get("services"), root, _from_compose(top.get("services_from"), root)),
        base_images=_base_images(top.get("base_images")),
        resources=_resources(top.get("resources"), root),
        apt=_apt(top.get("apt"), root),
        cache=_cache(top.get("cache"), env, path),
        builder=_builder(top.get("builder")),
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
    return tuple(item.string(PLATFORM, "platform (os/arch[/variant])") for item in node.sequence())


def _network(node: Node | None) -> str | None:
    if node is None:
        return None
    value = node.string()
    if value not in NETWORKS:
        raise node.error(f"unknown network {value!r}", f"use one of: {', '.join(NETWORKS)}")
    return None if value == "default" else value


@dataclass(frozen=True)
class ComposeBuild:
    """A compose service's ``build`` and ``image``, as defaults for ``services.<name>``."""

    node: Node
    context: Path
    dockerfile: str | None
    image: str | None
    target: str | None
    args: dict[str, str]


COMPOSE_BUILD_KEYS = ("context", "dockerfile", "args", "target", "dockerfile_inline", "cache_from", "cache_to",
                      "labels", "network", "shm_size", "extra_hosts", "isolation", "platforms", "ssh",
                      "secrets", "tags", "ulimits", "additional_contexts", "no_cache", "pull", "privileged")


def _from_compose(node: Node | None, root: Path) -> dict[str, ComposeBuild]:
    """The services a compose file builds; those with only ``image`` are run, not built, and skipped."""
    if node is None:
        return {}
    path = (root / node.string()).resolve()
    if not path.is_file():
        raise node.error(f"no compose file at {_rel(path, root)}", "services_from is read relative to offline.yaml")
    document = Node(compose_yaml(path), "", path)
    top = document.mapping(())
    if "services" not in top:
        raise document.error("no 'services' in the compose file")
    out: dict[str, ComposeBuild] = {}
    for name, knode, vnode in top["services"].items():
        fields = vnode.mapping(())
        if "extends" in fields:
            raise fields["extends"].error(f"compose service {name!r} uses extends, which offline-build does not follow",
                                          f"give {name!r} its own build section, or describe it under services:")
        if "build" not in fields:
            continue
        out[name.replace("_", "-")] = _compose_build(fields, path.parent)
    return out


def _compose_build(fields: dict[str, Node], base: Path) -> ComposeBuild:
    build = fields["build"]
    image = fields["image"].string().rsplit("@", 1)[0] if "image" in fields else None
    if image and ":" in image.rsplit("/", 1)[-1]:
        image = image.rsplit(":", 1)[0]  # the tag is the project's version
    if isinstance(build.node, yaml.ScalarNode):
        return ComposeBuild(build, (base / build.string()).resolve(), None, image, None, {})
    spec = build.mapping(COMPOSE_BUILD_KEYS)
    args: dict[str, str] = {}
    if "args" in spec and isinstance(spec["args"].node, yaml.SequenceNode):
        for item in spec["args"].sequence():
            key, _, value = item.string().partition("=")
            args[key] = value
    elif "args" in spec:
        args = _build_args(spec["args"])
    context = (base / (spec["context"].string() if "context" in spec else ".")).resolve()
    return ComposeBuild(build, context, spec["dockerfile"].string() if "dockerfile" in spec else None, image,
                        spec["target"].string() if "target" in spec else None, args)


def _services(node: Node | None, root: Path, composed: dict[str, ComposeBuild]) -> dict[str, Service]:
    items = node.items() if node is not None else []
    services = {name: _service(name, knode, vnode, root, composed.get(name)) for name, knode, vnode in items}
    for name, build in composed.items():
        if name not in services:
            services[name] = _service(name, build.node, None, root, build)
    if not services:
        if node is None:
            raise ConfigError("the compose file builds no service (none has a build section)", path=root,
                              hint="add services under 'services' in offline.yaml")
        raise node.error("no services", "add at least one service under 'services'")
    return services


def _service(name: str, knode: Node, node: Node | None, root: Path, base: ComposeBuild | None = None) -> Service:
    if not SERVICE_NAME.match(name):
        raise knode.error(f"service name {name!r} cannot be a task name",
                          "use lowercase letters, digits and '-', starting with a letter or digit")
    if name in RESERVED_NAMES:
        raise knode.error(f"service name {name!r} is reserved for the tool's own tasks", "rename the service")
    fields = node.mapping(SERVICE_KEYS) if node is not None and node.node.tag != "tag:yaml.org,2002:null" else {}
    # offline.yaml wins field by field over the compose file's build section.
    where = base.node if base else knode
    if "context" in fields:
        context = (root / fields["context"].string()).resolve()
        where = fields["context"]
    else:
        context = base.context if base else root.resolve()
    if not context.is_dir():
        raise where.error(f"build context {context.name!r} is not a folder",
                          "context is read relative to the file that names it")
    name_of_file = fields["dockerfile"].string() if "dockerfile" in fields else (
        base.dockerfile if base and base.dockerfile else "Dockerfile")
    dockerfile = context / name_of_file
    if not dockerfile.is_file():
        raise fields.get("dockerfile", where).error(
            f"no Dockerfile at {_rel(dockerfile, root)}",
            "dockerfile is read relative to the service's context, as in docker-compose")
    image = fields["image"].string() if "image" in fields else (base.image if base and base.image else name)
    return Service(
        name=name,
        context=context,
        dockerfile=dockerfile,
        image=_image_name(image, fields.get("image") or where),
        target=fields["target"].string() if "target" in fields else (base.target if base else None),
        build_args={**(base.args if base else {}), **_build_args(fields.get("build_args"))},
    )


IMAGE_NAME = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


def _image_name(image: str, node: Node) -> str:
    repo = image.split("/", 1)[-1] if "." in image.split("/", 1)[0] or ":" in image.split("/", 1)[0] else image
    if ":" in repo or "@" in repo:
        raise node.error(f"image {image!r} has a tag", "give the name only; the tag is the project's version")
    if not IMAGE_NAME.match(repo):
        raise node.error(f"{image!r} is not a valid image name", "use lowercase letters, digits, '.', '_', '-', '/'")
    return image


SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|PRIVATE_KEY|API_KEY|CREDENTIAL", re.I)


def _build_args(node: Node | None) -> dict[str, str]:
    if node is None:
        return {}
    out = {}
    for key, knode, value in node.items():
        if SECRET_NAME.search(key):
            # Build args end up in image metadata and in the exported cache, so
            # a secret would travel in the bundle to the customer's site.
            raise knode.error(f"build arg {key!r} looks like a secret; build args travel in the bundle",
                              "pass it as a build secret (RUN --mount=type=secret) instead")
        out[key] = value.option()
    return out


def _base_images(node: Node | None) -> tuple[str, ...] | None:
    if node is None:
        return None
    return tuple(item.string() for item in node.sequence())


def _resources(node: Node | None, root: Path) -> tuple[Resource, ...]:
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
            raise node.sequence()[i].error(f"two resources share the {what} {key(res)!r}")
        seen.add(key(res))


def _resource(node: Node, root: Path) -> Resource:
    fields = node.mapping(RESOURCE_KEYS, required=("name",))
    name = fields["name"].string(SERVICE_NAME, "resource name (lowercase letters, digits, '-')")
    kinds = [k for k in ("url", "git", "path") if k in fields]
    if len(kinds) != 1:
        raise node.error(f"resource {name!r} needs exactly one of url, git, path (has {len(kinds)})")
    kind = kinds[0]
    source = fields[kind].string()
    if kind == "url" and not source.startswith(("http://", "https://")):
        raise fields[kind].error(f"{source!r} is not an http(s) URL")
    if kind == "git" and "ref" not in fields:
        raise node.error(f"git resource {name!r} needs a 'ref'", "pin a tag or commit so the bundle is reproducible")
    sha = fields["sha256"].string(SHA256, "sha256 (64 lowercase hex digits)") if "sha256" in fields else None
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


def _apt(node: Node | None, root: Path) -> AptOptions:
    fields = node.mapping(APT_KEYS) if node is not None else {}
    enabled = fields["enabled"].boolean() if "enabled" in fields else True
    folder = fields["dir"].string() if "dir" in fields else DEFAULT_APT_DIR
    return AptOptions(enabled, (root / folder).resolve())


def _cache(node: Node | None, env: Mapping[str, str], path: Path) -> CacheOptions:
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


def _builder(node: Node | None) -> BuilderOptions:
    if node is None:
        return BuilderOptions()
    fields = node.mapping(BUILDER_KEYS)
    driver = fields["driver"].string() if "driver" in fields else "docker-container"
    if driver not in BUILDER_DRIVERS:
        raise fields["driver"].error(f"unknown builder driver {driver!r}", f"use one of: {', '.join(BUILDER_DRIVERS)}")
    name = fields["name"].string(SERVICE_NAME, "builder name (lowercase letters, digits, '-')") \
        if "name" in fields else None
    if name == "default":
        raise fields["name"].error("'default' is the engine's own builder",
                                   "leave builder: out to use it, or give this builder another name")
    if driver != "docker" and not name:
        raise node.error(f"a {driver} builder needs a name", "e.g. name: offline-build")
    opts = {k: v.option() for k, _, v in fields["driver_opts"].items()} if "driver_opts" in fields else {}
    endpoint = fields["endpoint"].string() if "endpoint" in fields else None
    if driver == "remote" and not endpoint:
        raise node.error("a remote builder needs an endpoint", "e.g. endpoint: tcp://buildkitd.example.invalid:1234")
    if endpoint and driver != "remote":
        raise fields["endpoint"].error(f"endpoint is for the remote driver, not {driver}")
    image = fields["image"].string() if "image" in fields else None
    if image and driver != "docker-container":
        raise fields["image"].error(f"image is for the docker-container driver, not {driver}")
    if driver == "docker-container":
        image = image or opts.get("image") or DEFAULT_BUILDKIT_IMAGE
        opts = {k: v for k, v in opts.items() if k != "image"}
    return BuilderOptions(name=name, driver=driver, driver_opts=opts, endpoint=endpoint, image=image)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)

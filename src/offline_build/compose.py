"""``services_from``: the services a docker compose file builds, as defaults for ``services:``."""

from __future__ import annotations

from pathlib import Path

import yaml

from .services import ComposeBuild, check_build_arg, read_build_args, rel
from .yamlnode import Node, compose_yaml

COMPOSE_BUILD_KEYS = ("context", "dockerfile", "args", "target", "dockerfile_inline", "cache_from", "cache_to",
                      "labels", "network", "shm_size", "extra_hosts", "isolation", "platforms", "ssh",
                      "secrets", "tags", "ulimits", "additional_contexts", "no_cache", "pull", "privileged")


def read_compose(node: Node | None, root: Path) -> dict[str, ComposeBuild]:
    """The services a compose file builds; those with only ``image`` are run, not built, and skipped."""
    if node is None:
        return {}
    path = (root / node.string()).resolve()
    if not path.is_file():
        raise node.error(f"no compose file at {rel(path, root)}", "services_from is read relative to offline.yaml")
    document = Node(compose_yaml(path, ("the compose file is empty", "it needs a 'services' section with a build: "
                                                                     "per service to build")), "", path)
    top = document.mapping(())
    if "services" not in top:
        raise document.error("no 'services' in the compose file",
                             "point services_from at the compose file that lists the services to build")
    if "include" in top:  # services from other files: not read, so they would be missing without a word
        raise top["include"].error("the compose file uses include, which offline-build does not follow",
                                   "point services_from at the included file, or list its services under services:")
    out: dict[str, ComposeBuild] = {}
    named: dict[str, str] = {}
    for name, knode, vnode in top["services"].items():
        fields = vnode.mapping(())
        merged = next((k for key, k, _ in vnode.items() if key == "<<"), None)  # <<: *common: its build unseen
        for key, where in (("extends", fields.get("extends")), ("<<", merged)):
            if where is not None:
                raise where.error(f"compose service {name!r} uses {key}, which offline-build does not follow",
                                  f"give {name!r} its own build section, or describe it under services:")
        if "build" not in fields:
            continue
        service = name.replace("_", "-")
        if service in named:  # backend_x and backend-x: one task name, and one of them was dropped
            raise knode.error(f"compose services {named[service]!r} and {name!r} both become the service {service!r}",
                              "rename one of them, or describe them under services:")
        named[service] = name
        out[service] = _compose_build(fields, path.parent)
    return out


def _compose_build(fields: dict[str, Node], base: Path) -> ComposeBuild:
    build = fields["build"]
    image = fields["image"].string().rsplit("@", 1)[0] if "image" in fields else None
    if image and ":" in image.rsplit("/", 1)[-1]:
        image = image.rsplit(":", 1)[0]  # the tag is the project's version
    if isinstance(build.node, yaml.ScalarNode):
        return ComposeBuild(build, (base / _literal(build, "context")).resolve(), None, image, None, {})
    spec = build.mapping(COMPOSE_BUILD_KEYS)
    if "dockerfile_inline" in spec:  # else the context's Dockerfile would be built in its place
        raise spec["dockerfile_inline"].error("dockerfile_inline is not read by offline-build",
                                              "write the Dockerfile into the context and name it with dockerfile:")
    args: dict[str, str] = {}
    if "args" in spec and isinstance(spec["args"].node, yaml.SequenceNode):
        for item in spec["args"].sequence():
            key, _, value = item.string().partition("=")
            check_build_arg(key, item)
            args[key] = _literal_arg(key, value, item)
    elif "args" in spec:
        args = read_build_args(spec["args"])
        for key, _, value in spec["args"].items():
            _literal_arg(key, args[key], value)
    context = (base / (_literal(spec["context"], "context") if "context" in spec else ".")).resolve()
    dockerfile = _literal(spec["dockerfile"], "dockerfile") if "dockerfile" in spec else None
    return ComposeBuild(build, context, dockerfile, image,
                        _literal(spec["target"], "target") if "target" in spec else None, args)


def _literal(node: Node, what: str) -> str:
    """A path as written: compose would expand ``${VAR:-default}`` from the environment, offline-build does not."""
    text = node.string()
    if "$" in text:
        raise node.error(f"{what} {text!r} uses a variable, which offline-build does not expand",
                         f"write the {what} out, or set it under services: in offline.yaml")
    return text


def _literal_arg(key: str, value: str, node: Node) -> str:
    if "$" in value:
        raise node.error(f"build arg {key} takes its value from a variable ({value}), which offline-build does not "
                         "expand", "give it a value under services: build_args")
    return value

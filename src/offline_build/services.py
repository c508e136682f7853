"""``services:`` in the project file: each service's context, Dockerfile, image and build args.

A service may also come from a compose file (``services_from``, read by
:mod:`offline_build.compose`): its build section is the default, and
``services.<name>`` overrides it field by field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .model import SERVICE_NAME, Service
from .yamlnode import Node

# The collection name every project gets; a service may not shadow it.
RESERVED_NAMES = frozenset({"offline"})
SERVICE_KEYS = ("context", "dockerfile", "image", "target", "build_args", "replay")


@dataclass(frozen=True)
class ComposeBuild:
    """A compose service's ``build`` and ``image``, as defaults for ``services.<name>``."""

    node: Node
    context: Path
    dockerfile: str | None
    image: str | None
    target: str | None
    args: dict[str, str]


def read_services(node: Node | None, root: Path, composed: dict[str, ComposeBuild]) -> dict[str, Service]:
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
            f"no Dockerfile at {rel(dockerfile, root)}",
            "dockerfile is read relative to the service's context, as in docker-compose")
    image = fields["image"].string() if "image" in fields else (base.image if base and base.image else name)
    return Service(
        name=name,
        context=context,
        dockerfile=dockerfile,
        image=_image_name(image, fields.get("image") or where),
        target=fields["target"].string() if "target" in fields else (base.target if base else None),
        build_args={**(base.args if base else {}), **read_build_args(fields.get("build_args"))},
        replay=_replay(fields.get("replay")),
    )


def _replay(node: Node | None) -> bool | tuple[int, ...]:
    """``replay: false``, or a list of the Dockerfile's RUN lines to record and replay besides those lint flags."""
    if node is None:
        return True
    if node.node.tag == "tag:yaml.org,2002:bool":
        return node.boolean()
    lines = []
    for item in node.sequence("write replay: false, or list the RUN lines to replay by number, e.g. replay: [12]"):
        value = item.scalar()
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise item.error(f"{value!r} is not a line number", "list the RUN lines by number (from 1), "
                             "or write replay: false")
        lines.append(value)
    return tuple(lines)


# docker's reference grammar (distribution/reference): path components joined by '.', '_', '__' or dashes.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"{_COMPONENT}(?:/{_COMPONENT})*"
IMAGE_NAME = re.compile(rf"^{_NAME}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
# The host is the first component only when it has a '.' or a ':' or is localhost (else docker reads a path).
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})+|localhost|{_LABEL}(?=:)|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
# A whole reference, as docker reads one: [host[:port]/]name[:tag][@algorithm:digest].
IMAGE_HINT = "write it as docker pull takes it, e.g. debian:bookworm-slim or registry:5000/team/tool:1.2"
IMAGE_REF = re.compile(rf"^(?:{_HOST}/)?{_NAME}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
                       r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")


def _image_name(image: str, node: Node) -> str:
    repo = image.split("/", 1)[-1] if "." in image.split("/", 1)[0] or ":" in image.split("/", 1)[0] else image
    if ":" in repo or "@" in repo:
        raise node.error(f"image {image!r} has a tag", "give the name only; the tag is the project's version")
    if not IMAGE_NAME.match(repo):
        raise node.error(f"{image!r} is not a valid image name", "use lowercase letters, digits, '.', '_', '-', '/'")
    return image


SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|PRIVATE_KEY|API_KEY|CREDENTIAL", re.I)


def read_build_args(node: Node | None) -> dict[str, str]:
    if node is None:
        return {}
    out = {}
    for key, knode, value in node.items():
        check_build_arg(key, knode)
        out[key] = value.option()
    return out


def check_build_arg(key: str, node: Node) -> None:
    """A build argument's name, refused where docker would read it otherwise or it would carry a secret."""
    if SECRET_NAME.search(key):
        # Build args end up in image metadata and in the exported cache, so
        # a secret would travel in the bundle to the customer's site.
        raise node.error(f"build arg {key!r} looks like a secret; build args travel in the bundle",
                         "pass it as a build secret (RUN --mount=type=secret) instead")
    if "=" in key or not key.strip() or any(c.isspace() for c in key):
        raise node.error(f"build arg name {key!r} holds '=' or a space: docker would read another name",
                         "give the name alone as the key and the value after the colon (NAME: value)")


def rel(path: Path, root: Path) -> str:
    """*path* as messages show it: relative to *root* when it is inside."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)

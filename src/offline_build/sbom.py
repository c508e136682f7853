"""The bundle's SBOM: a CycloneDX 1.6 document of what a bundle carries.

A site that takes a bundle across an air gap is asked what is in it. The
answer is made at export, after every file was hashed, from the bundle's
manifest: each sha256 is the manifest's, and only small metadata files are
read (the OCI index, image manifests and configs, npm's and yarn's
indexes), never a package or a layer.

It lists, as components:

- each base image (``container``): its manifest digest and platforms,
  ``pkg:oci/<name>@sha256:...``; an image index gets one nested component
  per platform the store holds;
- each package a capture holds (``library``), named by the capture's own
  module (:meth:`~offline_build.captures.Capture.packages`): ``.deb``,
  wheels, npm/yarn/pnpm packages, Maven artifacts, Go modules. One package
  kept in several places (two base images, npm's cache and yarn's) is listed
  once, with every place as an ``offline-build:bundle-path`` property;
- each resource (``file``): its source, and the sha256 of its file, or of
  each of its files as nested components (a folder has no digest of its own
  that a standard tool could check).

The same bundle gives the same bytes: bom-refs come from purls and paths,
the serial number from the manifest, the time is the manifest's.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from packageurl import PackageURL

from . import __version__
from .bundle import SBOM as SBOM  # the member the bundle carries it as (re-exported)
from .bundle import BundleError, FileEntry, Manifest
from .unpacking import find_bundle, read_claims
from .captures import all_captures
from .captures.base import Package
from .captures.pip import canonical_name
from .errors import OfflineBuildError
from .model import Resource
from .plan import repository
from .store import INDEX_TYPES, Descriptor

SCHEMA = SchemaVersion.V1_6
PATH = "offline-build:bundle-path"  # a place in the bundle a component is at (repeated when it is in several)
PLATFORM = "offline-build:platform"
_BUG = "this is a bug in offline-build: report it with the bundle's manifest.json"
_ORDER = ("deb", "pypi", "npm", "maven", "golang")  # how summary() orders the package kinds
_PLURAL = ("base image", "resource")  # summary()'s nouns; purl types stay as they are ("42 deb")

Read = Callable[[str], bytes]


class SbomError(OfflineBuildError):
    """The SBOM could not be made: the bundle's files disagree with its manifest, or the document is invalid."""


def document(manifest: Manifest, paths: Mapping[str, Path], resources: Sequence[Resource],
             root: Path | None = None) -> bytes:
    """The CycloneDX JSON of the bundle *manifest* describes, validated against the 1.6 schema.

    *paths* maps bundle members (``index.json``, ``blobs/sha256/<hex>``,
    ``files/...``) to local files; only the small ones listed in the module
    docstring are opened. A resource's local ``path`` source is shown
    relative to *root* (the project folder), so no machine path travels.
    """
    files = {f.path: f for f in manifest.files}
    read = _reader(paths)
    components = [*_images(manifest, files, read), *_packages(files, read),
                  *(_resource(r, files, root) for r in sorted(resources, key=lambda r: r.name))]
    project = Component(type=ComponentType.APPLICATION, name=manifest.project, version=manifest.version,
                        bom_ref=f"project:{manifest.project}")
    tool = Component(type=ComponentType.APPLICATION, name="offline-build", version=__version__)
    metadata = BomMetaData(component=project, tools=ToolRepository(components=[tool]), timestamp=_created(manifest),
                           properties=[Property(name=PLATFORM, value=p) for p in manifest.platforms])
    bom = Bom(components=components, metadata=metadata, serial_number=_serial(manifest))
    bom.register_dependency(project, components)  # the project's builds use all of it
    return _validated(make_outputter(bom, OutputFormat.JSON, SCHEMA).output_as_string(indent=2)).encode() + b"\n"


def of_bundle(cache_dir: Path, path: Path | None) -> tuple[bytes, str]:
    """The SBOM of *path* (default: the newest bundle here; with none, the one offline.setup restored last),
    and where it came from."""
    restored = cache_dir / SBOM
    if path is None:
        try:
            path = find_bundle(cache_dir)
        except BundleError:
            if restored.is_file():
                return restored.read_bytes(), "the bundle set up last"
            raise BundleError(f"no bundle in {cache_dir} and none set up here",
                              "pass --bundle PATH, or run offline.export (or offline.setup) first") from None
    raw = read_claims(path).sbom(str(path))
    if raw is None:
        raise BundleError(f"{path} carries no bill of materials (written before format 3)",
                          "export it again with this version of offline-build")
    return raw, path.name


def summary(raw: bytes) -> str:
    """One line of what an SBOM lists, for export's report: ``1 base image, 42 deb, 7 pypi, 2 resources``."""
    counts = Counter(_kind(c) for c in json.loads(raw).get("components", []))
    others = sorted(set(counts) - {"base image", "resource", *_ORDER})
    return ", ".join(f"{counts[k]} {k}{'s' if k in _PLURAL and counts[k] > 1 else ''}"
                     for k in ("base image", *_ORDER, *others, "resource") if counts[k]) or "nothing"


def _kind(component: Mapping[str, Any]) -> str:
    """What summary() counts a top-level component as: a base image, a resource, or its purl's type."""
    if component["type"] == "container":
        return "base image"
    if component["type"] == "file":
        return "resource"
    return str(component.get("purl", "pkg:other/")).split(":", 1)[1].split("/", 1)[0]


# --- reading ------------------------------------------------------------------


def _reader(paths: Mapping[str, Path]) -> Read:
    """Read a bundle member from its local file; what is missing is named."""
    def read(member: str) -> bytes:
        try:
            return paths[member].read_bytes()
        except KeyError:
            raise SbomError(f"no local file for the bundle member {member}", _BUG) from None
        except OSError as exc:
            raise SbomError(f"cannot read {member} from {paths[member].name} ({exc.strerror})",
                            "export again: the cache folder changed while the bundle was written") from None
    return read


def _json(read: Read, member: str) -> Any:
    try:
        return json.loads(read(member))
    except ValueError as exc:
        raise SbomError(f"{member} is not JSON ({exc})", "export again: the store is damaged") from None


def _sha256(files: Mapping[str, FileEntry], member: str) -> list[HashType]:
    entry = files.get(member)
    return [HashType(alg=HashAlgorithm.SHA_256, content=entry.sha256)] if entry else []


def _places(members: Sequence[str]) -> list[Property]:
    return [Property(name=PATH, value=m) for m in sorted(set(members))]


# --- base images ----------------------------------------------------------------


def _images(manifest: Manifest, files: Mapping[str, FileEntry], read: Read) -> list[Component]:
    """One container per base image, found in the OCI index by the tag the store gave it."""
    index = _json(read, "index.json")
    tags = {d.ref_name: d for d in map(Descriptor.from_json, index.get("manifests", [])) if d.ref_name}
    out = []
    for name, tag in sorted(manifest.base_images.items()):
        if tag not in tags:
            raise SbomError(f"the base image {name} (tag {tag}) is not in the bundle's index.json",
                            "export again: the manifest and the store disagree")
        try:
            out.append(_image(name, tag, tags[tag], files, read))
        except (KeyError, TypeError, AttributeError) as exc:
            raise SbomError(f"the base image {name}: its manifest or config is malformed ({exc!r})",
                            "export again: the store is damaged") from None
    return out


def _image(name: str, tag: str, desc: Descriptor, files: Mapping[str, FileEntry], read: Read) -> Component:
    """The image's component; an index's platforms (those the store holds) nested in it."""
    ref = _reference(name)
    if desc.media_type in INDEX_TYPES:
        children = [Descriptor.from_json(c) for c in _json(read, f"blobs/sha256/{desc.hex}").get("manifests", [])]
        held = [c.platform | {"digest": c.digest} for c in children if c.platform and f"blobs/sha256/{c.hex}" in files
                and c.platform.get("architecture") not in (None, "unknown")]  # attestations are unknown/unknown
        nested = [_container(ref, p["digest"], files, [_platform(p)], p["architecture"]) for p in held]
        return _container(ref, desc.digest, files, sorted(_platform(p) for p in held), None, nested, tag)
    manifest = _json(read, f"blobs/sha256/{desc.hex}")
    config = _json(read, f"blobs/sha256/{Descriptor.from_json(manifest['config']).hex}")
    return _container(ref, desc.digest, files, [_platform(config)], config.get("architecture"), (), tag)


@dataclass(frozen=True)
class _Ref:
    """An image reference: as written (``debian``), where a registry has it, and its tag."""

    name: str
    repository: str
    tag: str | None


def _reference(image: str) -> _Ref:
    """Split ``[registry/]path[:tag][@digest]`` the way Docker reads it (``debian`` is ``docker.io/library/debian``)."""
    rest, _, digest = image.partition("@")
    head, colon, tag = rest.rpartition(":")
    if not colon or "/" in tag:
        head, tag = rest, ""
    return _Ref(head, repository(head), tag or (None if digest else "latest"))


def _container(ref: _Ref, digest: str, files: Mapping[str, FileEntry], platforms: Sequence[str], arch: str | None,
               nested: Sequence[Component] = (), store_tag: str | None = None) -> Component:
    """A container component: *digest* is its manifest's (or index's), *arch* the purl's when it is one platform."""
    qualifiers = {"repository_url": ref.repository, "tag": ref.tag, "arch": arch}
    purl = PackageURL("oci", None, ref.repository.rsplit("/", 1)[-1].lower(), digest,
                      {k: v for k, v in qualifiers.items() if v})
    blob = f"blobs/sha256/{digest.split(':', 1)[1]}"
    properties = [*(Property(name=PLATFORM, value=p) for p in platforms if p), *_places([blob])]
    if store_tag:
        properties.append(Property(name="offline-build:store-tag", value=store_tag))
    return Component(type=ComponentType.CONTAINER, name=ref.name, version=ref.tag or digest, purl=purl,
                     bom_ref=purl.to_string(), hashes=_sha256(files, blob), properties=properties, components=nested)


def _platform(spec: Mapping[str, Any]) -> str:
    """``os/architecture[/variant]`` of an image config or an index entry's platform."""
    return "/".join(str(spec[k]) for k in ("os", "architecture", "variant") if spec.get(k))


# --- packages -------------------------------------------------------------------


@dataclass
class _Listed:
    """One package as the SBOM lists it, with every place it is in."""

    purl: PackageURL
    sha256: str = ""
    sha512: str = ""
    places: list[str] = field(default_factory=list)


def _packages(files: Mapping[str, FileEntry], read: Read) -> list[Component]:
    """What every capture holds, each package once (same purl, same bytes), with the places it is in."""
    listed: dict[tuple[str, str], _Listed] = {}
    for folder, package in _captured_packages(files, read):
        member = f"files/{folder}/{package.path}"
        sha256 = files[member].sha256 if package.whole and member in files else ""
        purl = _purl(package)
        entry = listed.setdefault((purl.to_string(), package.sha512 or sha256), _Listed(purl))
        entry.sha256 = entry.sha256 or sha256
        entry.sha512 = entry.sha512 or package.sha512
        entry.places.append(member)
    shared = Counter(purl for purl, _ in listed)
    return [_library(entry, ref if shared[ref] == 1 else f"{ref}#{digest[:16] or 'unhashed'}")
            for (ref, digest), entry in sorted(listed.items())]


def _captured_packages(files: Mapping[str, FileEntry], read: Read) -> list[tuple[str, Package]]:
    """(capture folder, package) for every package each capture names among its files in the bundle."""
    found = []
    for capture in all_captures():
        prefix = f"files/{capture.name}/"
        mine = sorted(p[len(prefix):] for p in files if p.startswith(prefix))
        if not mine:
            continue
        try:
            if not getattr(capture, "per_platform", True):  # one folder per key for every platform (replay)
                found += [(capture.name, p) for p in capture.packages(mine, lambda rel: read(prefix + rel))]
                continue
            for platform, paths in _by_platform(mine).items():
                found += [(capture.name, _placed(p, platform))
                          for p in capture.packages(paths, _platform_reader(read, prefix, platform))]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SbomError(f"files/{capture.name}: cannot tell which packages it holds ({exc!r})",
                            f"export again; if it persists, {_BUG}") from None
    return found


def _by_platform(paths: Sequence[str]) -> dict[str, list[str]]:
    """A capture's files (``<key>/<platform>/<file>``) per platform, each as ``<key>/<file>``.

    Each capture reads its own layout under a key; the platform folder is
    the same for all of them, so it is taken off here and put back by :func:`_placed`.
    """
    out: dict[str, list[str]] = {}
    for path in paths:
        parts = path.split("/", 2)
        if len(parts) == 3:
            out.setdefault(parts[1], []).append(f"{parts[0]}/{parts[2]}")
    return dict(sorted(out.items()))


def _placed(package: Package, platform: str) -> Package:
    key, rest = package.path.split("/", 1)
    return replace(package, path=f"{key}/{platform}/{rest}")


def _platform_reader(read: Read, prefix: str, platform: str) -> Read:
    """*read* for ``<key>/<file>`` paths of one platform: a capture reads its own folder."""

    def read_one(rel: str) -> bytes:
        key, rest = rel.split("/", 1)
        return read(f"{prefix}{key}/{platform}/{rest}")

    return read_one


def _purl(package: Package) -> PackageURL:
    name = canonical_name(package.name) if package.type == "pypi" else package.name
    return PackageURL(package.type, package.namespace or None, name, package.version or None,
                      dict(package.qualifiers) or None)


def _library(entry: _Listed, ref: str) -> Component:
    hashes = [HashType(alg=HashAlgorithm.SHA_256, content=entry.sha256)] if entry.sha256 else []
    hashes += [HashType(alg=HashAlgorithm.SHA_512, content=entry.sha512)] if entry.sha512 else []
    return Component(type=ComponentType.LIBRARY, name=entry.purl.name, group=entry.purl.namespace,
                     version=entry.purl.version, purl=entry.purl, bom_ref=ref, hashes=hashes,
                     properties=_places(entry.places))


# --- resources ------------------------------------------------------------------


def _resource(res: Resource, files: Mapping[str, FileEntry], root: Path | None) -> Component:
    """A resource: its source, and the sha256 of its one file or of each of its files (nested)."""
    base = f"files/resources/{res.dest}"
    own = sorted(p for p in files if p == base or p.startswith(f"{base}/"))
    single = own == [base]
    source = _source(res, root)
    properties = [Property(name="offline-build:resource-kind", value=res.kind),
                  Property(name="offline-build:source", value=source), *_places([base])]
    if res.ref:
        properties.append(Property(name="offline-build:ref", value=res.ref))
    return Component(type=ComponentType.FILE, name=res.name, version=res.ref, bom_ref=f"resource:{res.name}",
                     hashes=_sha256(files, base) if single else [], properties=properties,
                     components=[] if single else [_file(res, p[len(base) + 1:], files[p]) for p in own],
                     external_references=_where(res, source))


def _file(res: Resource, name: str, entry: FileEntry) -> Component:
    """One file of a folder resource, by its path inside it."""
    return Component(type=ComponentType.FILE, name=name, bom_ref=f"resource:{res.name}/{name}",
                     hashes=[HashType(alg=HashAlgorithm.SHA_256, content=entry.sha256)])


def _source(res: Resource, root: Path | None) -> str:
    """Where the resource came from, as safe to carry: a URL without its user, password and query (a signed
    download link's token lives there), a local path (a ``path`` resource, a git repository on disk) relative
    to the project."""
    parts = urlsplit(res.source)
    if parts.scheme and ("@" in parts.netloc or parts.query):
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1], query="", fragment=""))
    local = Path(res.source)
    if not parts.scheme and root is not None and local.is_absolute() and local.is_relative_to(root):
        return local.relative_to(root).as_posix()
    return res.source


def _where(res: Resource, source: str) -> list[ExternalReference]:
    if res.kind == "url":
        return [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(source))]
    if res.kind == "git":
        return [ExternalReference(type=ExternalReferenceType.VCS, url=XsUri(source), comment=f"ref {res.ref}")]
    return []


# --- the document ---------------------------------------------------------------


def _created(manifest: Manifest) -> datetime:
    """The bundle's creation time (``2024-05-01T12:00:00Z``): the SBOM's, so a rerun gives the same bytes."""
    try:
        when = datetime.fromisoformat(manifest.created.replace("Z", "+00:00"))
    except ValueError:
        raise SbomError(f"the manifest's creation time {manifest.created!r} is not an ISO 8601 time", _BUG) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _serial(manifest: Manifest) -> uuid.UUID:
    """A serial number the bundle determines: the same export, the same number; another, another."""
    digest = hashlib.sha256()
    for part in (manifest.project, manifest.version, manifest.created,
                 *sorted(f"{f.path} {f.sha256}" for f in manifest.files)):
        digest.update(part.encode() + b"\n")
    return uuid.uuid5(uuid.NAMESPACE_URL, f"offline-build:sbom:{digest.hexdigest()}")


def _validated(text: str) -> str:
    """*text*, once CycloneDX's own schema accepts it: an invalid document is a bug, never shipped."""
    # Imported here: jsonschema takes seconds to import, and every other task (--help too) would wait for it.
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SCHEMA).validate_str(text)
    if error is not None:
        first = str(error).splitlines()[0] if str(error) else repr(error)
        raise SbomError(f"the SBOM is not valid CycloneDX {SCHEMA.to_version()}: {first}", _BUG)
    return text

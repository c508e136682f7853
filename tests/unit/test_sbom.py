"""The bundle's SBOM: what a bundle carries, as CycloneDX 1.6, from the manifest's hashes.

Each test builds a small cache folder on disk (an OCI store, capture
folders as the tools lay them out, resources), lists it with the bundle's
own ``collect`` and hashes it as export does, then reads the document back.
npm's, yarn's and pnpm's caches are real ones (tests/unit/data/sbom/,
made by make_caches.py there).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from offline_build import __version__, sbom
from offline_build.bundle import FileEntry, Manifest, collect
from offline_build.captures.gomod import GO
from offline_build.captures.maven import MAVEN
from offline_build.captures.npm import NPM
from offline_build.captures.pip import PIP
from offline_build.model import Resource
from offline_build.plan import base_tag, slug
from offline_build.store import REF_NAME, Descriptor, Layout
from tests.unit import oci

DATA = Path(__file__).parent / "data" / "sbom"
DEBIAN = "debian:bookworm-slim"
TOOL = "ghcr.io/acme/tool:1.2"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Exported:
    """A bundle as export sees it right before packing: the manifest, the local files, the resources."""

    manifest: Manifest
    paths: dict[str, Path]
    resources: list[Resource]
    root: Path
    digests: dict[str, str]  # what the tests need to know of the store: name -> digest

    def document(self) -> bytes:
        return sbom.document(self.manifest, self.paths, self.resources, self.root)

    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.document())
        return data


# --- building a cache folder ---------------------------------------------------


def platform_manifest(layout: Layout, platform: dict[str, str], layer: bytes) -> dict[str, Any]:
    """An image manifest whose config names its platform, as an engine's image does; its index descriptor."""
    config = json.dumps({**platform, "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    body = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": oci.put(layout, config), "size": len(config)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                   "digest": oci.put(layout, layer), "size": len(layer)}]}).encode()
    return {"mediaType": MANIFEST, "digest": oci.put(layout, body), "size": len(body), "platform": platform}


def store(root: Path) -> dict[str, str]:
    """debian as an index of two platforms and an attestation; the tool as one arm64 manifest."""
    layout = oci.new(root)
    amd64 = platform_manifest(layout, {"os": "linux", "architecture": "amd64"}, b"debian amd64 rootfs")
    arm64 = platform_manifest(layout, {"os": "linux", "architecture": "arm64", "variant": "v8"}, b"debian arm64")
    attestation = platform_manifest(layout, {"os": "unknown", "architecture": "unknown"}, b"in-toto")
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [amd64, arm64, attestation]}).encode()
    debian = Descriptor(INDEX, oci.put(layout, index), len(index), {REF_NAME: base_tag(DEBIAN)})
    tool = platform_manifest(layout, {"os": "linux", "architecture": "arm64", "variant": "v8"}, b"tool rootfs")
    tool_desc = Descriptor(MANIFEST, tool["digest"], tool["size"], {REF_NAME: base_tag(TOOL)})
    cache = oci.image(layout, "cache-web", [b"a build cache layer"])  # a service's cache: not a base image
    layout.write_index([debian, tool_desc, cache])
    return {DEBIAN: debian.digest, TOOL: tool["digest"], "amd64": amd64["digest"], "arm64": arm64["digest"],
            "attestation": attestation["digest"]}


AMD, ARM = "linux_amd64", "linux_arm64"  # the platforms' folders under each capture's key


def write(root: Path, files: dict[str, bytes | str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def release(origin: str) -> str:
    return f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: {origin}\nLabel: {origin}\nSuite: stable\n"


def apt(root: Path) -> None:
    """Three bases' APT captures: jq's very file in two Debian ones, an Ubuntu one, an epoch, a third-party list."""
    debian, python, ubuntu = (slug(b).lower() for b in (DEBIAN, "python:3.12-slim", "ubuntu:24.04"))
    write(root, {
        f"{debian}/{AMD}/lists/mirror.example.invalid_debian_dists_bookworm_InRelease": release("Debian"),
        f"{debian}/{AMD}/lists/mirror.example.invalid_debian-security_dists_bookworm-security_InRelease":
            release("Debian"),
        f"{debian}/{AMD}/lists/nodes.example.invalid_node%5f20.x_dists_nodistro_InRelease": release("Node Source"),
        f"{debian}/{AMD}/lists/mirror.example.invalid_debian_dists_bookworm_main_binary-amd64_Packages.gz":
            b"\x1f\x8b index",
        f"{debian}/{AMD}/archives/jq_1.6-2.1_amd64.deb": b"jq 1.6 for bookworm",
        f"{debian}/{AMD}/archives/libcap2_1%3a2.66-4_amd64.deb": b"libcap2 with an epoch",
        f"{debian}/{AMD}/archives/tzdata_2024a-0+deb12u1_all.deb": b"tzdata, for every arch",
        # The same base for arm64 (a multi-platform project): its own lists and .debs, one shared _all.deb.
        f"{debian}/{ARM}/lists/mirror.example.invalid_debian_dists_bookworm_InRelease": release("Debian"),
        f"{debian}/{ARM}/archives/jq_1.6-2.1_arm64.deb": b"jq 1.6 for bookworm on arm64",
        f"{debian}/{ARM}/archives/tzdata_2024a-0+deb12u1_all.deb": b"tzdata, for every arch",
        f"{python}/{AMD}/lists/mirror.example.invalid_debian_dists_bookworm_InRelease": release("Debian"),
        f"{python}/{AMD}/archives/jq_1.6-2.1_amd64.deb": b"jq 1.6 for bookworm",
        f"{ubuntu}/{AMD}/lists/ubuntu.example.invalid_ubuntu_dists_noble_InRelease": release("Ubuntu"),
        f"{ubuntu}/{AMD}/archives/jq_1.7.1-3build1_amd64.deb": b"jq 1.7 for noble",
    })


def languages(root: Path) -> None:
    """pip, uv, Maven and Go captures as each tool leaves them; npm, yarn and pnpm copied from real caches."""
    write(root / "pip", {
        "py-1/requests-2.31.0-py3-none-any.whl": b"requests wheel",
        "py-1/zope_interface-6.0-cp311-cp311-manylinux_2_17_x86_64.whl": b"zope wheel",
        "py-1/docopt-0.6.2.tar.gz": b"docopt sdist",
        "py-1/offline-build-capture.txt": "pip capture of py-1\n",
        "py-2/requests-2.31.0-py3-none-any.whl": b"requests wheel",
    })
    write(root / "uv", {
        "uv-1/archive-v0/AbC/six-1.16.0.dist-info/METADATA": "Name: six\n",
        "uv-1/archive-v0/AbC/six-1.16.0.dist-info/RECORD": "six.py,,\n",
        "uv-1/archive-v0/AbC/six.py": "",
        "uv-1/archive-v0/Ghi/docopt-0.6.2.dist-info/METADATA": "Name: docopt\n",
        "uv-1/sdists-v11/pypi/docopt/0.6.2/XyZ/docopt-0.6.2-py2.py3-none-any.whl": b"docopt built by uv",
        "uv-1/archive-v0/Vv/virtualenv/seed/wheels/embed/pip-24.0-py3-none-any.whl": b"a file inside a package",
        "uv-1/simple-v28/pypi/six.rkyv": b"index page",
    })
    write(root / "maven", {
        "api-1/org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0.jar": b"lang3 jar",
        "api-1/org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0.pom": "<project/>",
        "api-1/org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0.jar.sha1": "abc",
        "api-1/org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0-sources.jar": b"sources",
        "api-1/org/apache/commons/commons-lang3/maven-metadata-central.xml": "<metadata/>",
        "api-1/org/junit/junit-bom/5.10.0/junit-bom-5.10.0.pom": "<project/>",
    })
    write(root / "go", {
        "tool-1/github.com/!burnt!sushi/toml/@v/v1.3.2.zip": b"toml source",
        "tool-1/github.com/!burnt!sushi/toml/@v/v1.3.2.mod": "module github.com/BurntSushi/toml\n",
        "tool-1/github.com/!burnt!sushi/toml/@v/v1.3.2.info": "{}",
        "tool-1/golang.org/x/text/@v/v0.14.0.mod": "module golang.org/x/text\n",  # the graph's: no source
    })
    shutil.copytree(DATA / "npm" / "web-1", root / "npm" / "web-1")
    shutil.copytree(DATA / "npm" / "web-1", root / "npm" / "web-2")
    shutil.copytree(DATA / "yarn", root / "yarn")
    shutil.copytree(DATA / "pnpm", root / "pnpm")
    for key in (k for tool in root.iterdir() for k in list(tool.iterdir())):  # the layout captures keep: per platform
        moved = key.with_name(f".{key.name}")
        key.replace(moved)
        key.mkdir()
        moved.replace(key / AMD)


def resources(cache: Path, project: Path) -> list[Resource]:
    write(cache / "resources", {"tool.tgz": b"a downloaded tool", "lib.tar": b"git archive of lib",
                                "vendored.tar": b"git archive of a repository on disk",
                                "certs/ca.pem": "ca\n", "certs/extra/site.pem": "site\n"})
    return [Resource("tool", "url", "https://robot:s3cret@downloads.example.invalid/tool.tgz?X-Token=s3cret#part", "tool.tgz"),
            Resource("lib", "git", "https://git.example.invalid/acme/lib.git", "lib.tar", ref="v1.2"),
            Resource("vendored", "git", str(project / "vendor" / "lib"), "vendored.tar", ref="abc123"),
            Resource("certs", "path", str(project / "certs"), "certs")]


def exported(tmp_path: Path) -> Exported:
    """A whole cache folder, listed by the bundle's own ``collect`` and hashed as export hashes it."""
    cache, captures, project = tmp_path / "cache", tmp_path / "captures", tmp_path / "project"
    digests = store(cache / "store")
    apt(tmp_path / "apt-lists")
    languages(captures)
    folders = {"apt": tmp_path / "apt-lists", "resources": cache / "resources",
               **{name: captures / name for name in ("pip", "uv", "npm", "yarn", "pnpm", "maven", "go")}}
    res = resources(cache, project)
    members = collect(cache, folders)
    entries = [FileEntry(name, path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
               for name, path in members]
    manifest = Manifest(project="shop", version="2024.05", platforms=["linux/amd64", "linux/arm64"], services={},
                        base_images={DEBIAN: base_tag(DEBIAN), TOOL: base_tag(TOOL)}, files=entries,
                        created="2024-05-01T12:00:00Z")
    return Exported(manifest, dict(members), res, project, digests)


@pytest.fixture
def bundle(tmp_path: Path) -> Exported:
    return exported(tmp_path)


# --- reading the document back ---------------------------------------------------


def walk(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for component in components:
        yield component
        yield from walk(component.get("components", []))


def by_purl(data: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {c["purl"]: c for c in data["components"] if c.get("purl", "").startswith(f"pkg:{kind}/")}


def sha256(component: dict[str, Any]) -> str:
    return next((h["content"] for h in component.get("hashes", []) if h["alg"] == "SHA-256"), "")


def props(component: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in component.get("properties", []) if p["name"] == name]


def entry(bundle: Exported, member: str) -> str:
    return next(f.sha256 for f in bundle.manifest.files if f.path == member)


# --- the tests ------------------------------------------------------------------


def test_the_document_is_valid_cyclonedx_1_6_about_the_project(bundle: Exported) -> None:
    raw = bundle.document()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(raw.decode()) is None
    data = json.loads(raw)
    assert (data["bomFormat"], data["specVersion"]) == ("CycloneDX", "1.6")
    meta = data["metadata"]
    assert (meta["component"]["name"], meta["component"]["version"]) == ("shop", "2024.05")
    assert meta["timestamp"].startswith("2024-05-01T12:00:00")
    assert meta["tools"]["components"] == [{"name": "offline-build", "type": "application", "version": __version__}]
    assert props(meta, sbom.PLATFORM) == ["linux/amd64", "linux/arm64"]
    refs = [c["bom-ref"] for c in walk(data["components"])]
    assert len(refs) == len(set(refs))


def test_a_base_image_index_lists_its_digest_and_each_platform_the_store_holds(bundle: Exported) -> None:
    images = [c for c in bundle.data()["components"] if c["type"] == "container"]
    assert [c["name"] for c in images] == ["debian", "ghcr.io/acme/tool"]  # the service's cache is no base image
    debian = images[0]
    digest = bundle.digests[DEBIAN]
    assert debian["purl"] == (f"pkg:oci/debian@{digest}?repository_url=docker.io/library/debian&tag=bookworm-slim")
    assert debian["version"] == "bookworm-slim" and sha256(debian) == digest.split(":")[1]
    assert props(debian, sbom.PLATFORM) == ["linux/amd64", "linux/arm64/v8"]  # not the attestation's unknown/unknown
    assert props(debian, "offline-build:store-tag") == [base_tag(DEBIAN)]
    nested = {c["purl"]: props(c, sbom.PLATFORM) for c in debian["components"]}
    assert nested == {
        f"pkg:oci/debian@{bundle.digests['amd64']}?arch=amd64&repository_url=docker.io/library/debian"
        "&tag=bookworm-slim": ["linux/amd64"],
        f"pkg:oci/debian@{bundle.digests['arm64']}?arch=arm64&repository_url=docker.io/library/debian"
        "&tag=bookworm-slim": ["linux/arm64/v8"]}


def test_a_single_platform_image_takes_its_platform_from_its_config(bundle: Exported) -> None:
    tool = next(c for c in bundle.data()["components"] if c["name"] == "ghcr.io/acme/tool")
    digest = bundle.digests[TOOL]
    assert tool["purl"] == f"pkg:oci/tool@{digest}?arch=arm64&repository_url=ghcr.io/acme/tool&tag=1.2"
    assert props(tool, sbom.PLATFORM) == ["linux/arm64/v8"] and sha256(tool) == digest.split(":")[1]
    assert "components" not in tool


def test_a_platform_whose_manifest_the_bundle_lacks_is_not_listed(bundle: Exported) -> None:
    arm64 = f"blobs/sha256/{bundle.digests['arm64'].split(':')[1]}"
    bundle.manifest.files = [f for f in bundle.manifest.files if f.path != arm64]
    debian = next(c for c in bundle.data()["components"] if c["name"] == "debian")
    assert props(debian, sbom.PLATFORM) == ["linux/amd64"]
    assert [props(c, sbom.PLATFORM) for c in debian["components"]] == [["linux/amd64"]]


def test_each_deb_is_listed_with_name_version_arch_sha256_and_vendor(bundle: Exported) -> None:
    debs = by_purl(bundle.data(), "deb")
    debian = slug(DEBIAN).lower()
    assert set(debs) == {"pkg:deb/debian/jq@1.6-2.1?arch=amd64", "pkg:deb/debian/libcap2@1:2.66-4?arch=amd64",
                         "pkg:deb/debian/jq@1.6-2.1?arch=arm64", "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all",
                         "pkg:deb/ubuntu/jq@1.7.1-3build1?arch=amd64"}
    libcap = debs["pkg:deb/debian/libcap2@1:2.66-4?arch=amd64"]
    assert (libcap["name"], libcap["version"]) == ("libcap2", "1:2.66-4")  # %3a decoded: the epoch's colon
    member = f"files/apt/{debian}/{AMD}/archives/libcap2_1%3a2.66-4_amd64.deb"
    assert sha256(libcap) == entry(bundle, member) == hashlib.sha256(b"libcap2 with an epoch").hexdigest()
    assert props(libcap, sbom.PATH) == [member]


def test_a_package_kept_in_several_places_is_listed_once_with_each_place(bundle: Exported) -> None:
    data = bundle.data()
    jq = by_purl(data, "deb")["pkg:deb/debian/jq@1.6-2.1?arch=amd64"]
    assert props(jq, sbom.PATH) == [f"files/apt/{slug(b).lower()}/{AMD}/archives/jq_1.6-2.1_amd64.deb"
                                    for b in (DEBIAN, "python:3.12-slim")]
    # One platform's package is not another's; an _all.deb both captured is one component in two places.
    arm = by_purl(data, "deb")["pkg:deb/debian/jq@1.6-2.1?arch=arm64"]
    assert props(arm, sbom.PATH) == [f"files/apt/{slug(DEBIAN).lower()}/{ARM}/archives/jq_1.6-2.1_arm64.deb"]
    tzdata = by_purl(data, "deb")["pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all"]
    assert props(tzdata, sbom.PATH) == [f"files/apt/{slug(DEBIAN).lower()}/{p}/archives/tzdata_2024a-0+deb12u1_all.deb"
                                        for p in (AMD, ARM)]
    npm = by_purl(data, "npm")
    assert set(npm) == {"pkg:npm/tiny-pad@1.0.0", "pkg:npm/%40acme/ms-lite@0.2.0-rc.1"}
    pad = npm["pkg:npm/tiny-pad@1.0.0"]
    places = props(pad, sbom.PATH)
    # npm's cache in two steps, yarn's tarball and pnpm's index: the same tarball, by its sha512.
    assert [p.split("/")[1:3] for p in places] == [["npm", "web-1"], ["npm", "web-2"], ["pnpm", "pnpm-1"],
                                                   ["yarn", "yarn-1"]]
    tarball = next(p for p in places if p.endswith(".yarn-tarball.tgz"))
    assert sha256(pad) == entry(bundle, tarball)
    sha512 = next(h["content"] for h in pad["hashes"] if h["alg"] == "SHA-512")
    assert sha512 == hashlib.sha512(bundle.paths[tarball].read_bytes()).hexdigest()
    requests = by_purl(data, "pypi")["pkg:pypi/requests@2.31.0?file_name=requests-2.31.0-py3-none-any.whl"]
    assert len(props(requests, sbom.PATH)) == 2


def test_the_same_name_and_version_with_other_bytes_stays_two_components(tmp_path: Path) -> None:
    bundle = exported(tmp_path)
    python = slug("python:3.12-slim").lower()
    member = f"files/apt/{python}/{AMD}/archives/jq_1.6-2.1_amd64.deb"
    bundle.manifest.files = [replace(f, sha256="ab" * 32) if f.path == member else f for f in bundle.manifest.files]
    jqs = [c for c in bundle.data()["components"] if c.get("purl") == "pkg:deb/debian/jq@1.6-2.1?arch=amd64"]
    assert sorted(sha256(c) for c in jqs) == sorted(["ab" * 32, hashlib.sha256(b"jq 1.6 for bookworm").hexdigest()])
    assert len({c["bom-ref"] for c in jqs}) == 2


def test_python_npm_maven_and_go_packages_have_their_purls(bundle: Exported) -> None:
    data = bundle.data()
    assert set(by_purl(data, "pypi")) == {
        "pkg:pypi/requests@2.31.0?file_name=requests-2.31.0-py3-none-any.whl",
        "pkg:pypi/zope-interface@6.0?file_name=zope_interface-6.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "pkg:pypi/docopt@0.6.2?file_name=docopt-0.6.2.tar.gz",
        "pkg:pypi/docopt@0.6.2?file_name=docopt-0.6.2-py2.py3-none-any.whl",  # uv built it: its unpacked copy is not
        "pkg:pypi/six@1.16.0"}  # kept unpacked by uv: no file, no hash
    six = by_purl(data, "pypi")["pkg:pypi/six@1.16.0"]
    assert "hashes" not in six and props(six, sbom.PATH) == [f"files/uv/uv-1/{AMD}/archive-v0/AbC"]
    assert set(by_purl(data, "maven")) == {"pkg:maven/org.apache.commons/commons-lang3@3.12.0",
                                           "pkg:maven/org.junit/junit-bom@5.10.0?type=pom"}
    lang3 = by_purl(data, "maven")["pkg:maven/org.apache.commons/commons-lang3@3.12.0"]
    assert sha256(lang3) == hashlib.sha256(b"lang3 jar").hexdigest() and lang3["group"] == "org.apache.commons"
    assert set(by_purl(data, "golang")) == {"pkg:golang/github.com/BurntSushi/toml@v1.3.2"}
    toml = by_purl(data, "golang")["pkg:golang/github.com/BurntSushi/toml@v1.3.2"]
    assert sha256(toml) == hashlib.sha256(b"toml source").hexdigest()
    scoped = by_purl(data, "npm")["pkg:npm/%40acme/ms-lite@0.2.0-rc.1"]
    assert (scoped["group"], scoped["name"], scoped["version"]) == ("@acme", "ms-lite", "0.2.0-rc.1")


def test_hashes_are_the_manifests_not_read_again(bundle: Exported) -> None:
    member = f"files/go/tool-1/{AMD}/github.com/!burnt!sushi/toml/@v/v1.3.2.zip"
    bundle.paths[member].write_bytes(b"changed after the export hashed it")
    toml = by_purl(bundle.data(), "golang")["pkg:golang/github.com/BurntSushi/toml@v1.3.2"]
    assert sha256(toml) == entry(bundle, member) == hashlib.sha256(b"toml source").hexdigest()


def test_resources_carry_their_source_and_digests(bundle: Exported) -> None:
    found = {c["name"]: c for c in bundle.data()["components"] if c["type"] == "file"}
    tool, lib, certs = found["tool"], found["lib"], found["certs"]
    assert sha256(tool) == hashlib.sha256(b"a downloaded tool").hexdigest()
    assert props(tool, "offline-build:source") == ["https://downloads.example.invalid/tool.tgz"]  # no credentials, no token
    assert tool["externalReferences"] == [{"type": "distribution", "url": "https://downloads.example.invalid/tool.tgz"}]
    assert lib["version"] == "v1.2" and props(lib, "offline-build:ref") == ["v1.2"]
    assert lib["externalReferences"] == [{"type": "vcs", "url": "https://git.example.invalid/acme/lib.git",
                                          "comment": "ref v1.2"}]
    assert props(certs, "offline-build:source") == ["certs"]  # relative to the project: no machine path
    assert found["vendored"]["externalReferences"] == [{"type": "vcs", "url": "vendor/lib", "comment": "ref abc123"}]
    assert "hashes" not in certs
    assert {c["name"]: sha256(c) for c in certs["components"]} == {
        "ca.pem": hashlib.sha256(b"ca\n").hexdigest(), "extra/site.pem": hashlib.sha256(b"site\n").hexdigest()}


def test_the_same_export_gives_the_same_bytes_and_another_another_serial(tmp_path: Path) -> None:
    first = exported(tmp_path / "a")
    second = exported(tmp_path / "b")  # the same content in another folder: no machine path in the document
    assert first.document() == second.document()
    assert first.document() == first.document()
    member = "files/resources/tool.tgz"
    second.manifest.files = [replace(f, sha256="cd" * 32) if f.path == member else f for f in second.manifest.files]
    assert json.loads(second.document())["serialNumber"] != json.loads(first.document())["serialNumber"]


def test_summary_counts_what_it_lists(bundle: Exported) -> None:
    assert sbom.summary(bundle.document()) == "2 base images, 5 deb, 5 pypi, 2 npm, 2 maven, 1 golang, 4 resources"
    assert sbom.summary(b'{"components": [{"type": "container", "name": "x"}]}') == "1 base image"
    assert sbom.summary(b"{}") == "nothing"


def test_an_invalid_document_is_refused_naming_the_schema_error(bundle: Exported) -> None:
    member = "files/resources/tool.tgz"
    bundle.manifest.files = [replace(f, sha256="not a digest") if f.path == member else f
                             for f in bundle.manifest.files]
    with pytest.raises(sbom.SbomError, match=r"not valid CycloneDX 1\.6: 'not a digest' does not match"):
        bundle.document()


def test_a_base_image_missing_from_the_store_is_named(bundle: Exported) -> None:
    bundle.manifest.base_images["alpine:3.20"] = base_tag("alpine:3.20")
    with pytest.raises(sbom.SbomError, match=r"alpine:3\.20 \(tag base-alpine_3\.20\) is not in the bundle"):
        bundle.document()


def test_a_capture_file_without_a_local_copy_is_named(bundle: Exported) -> None:
    member = next(p for p in bundle.paths if p.endswith("/.yarn-metadata.json"))
    del bundle.paths[member]
    with pytest.raises(sbom.SbomError, match=f"no local file for the bundle member {member}"):
        bundle.document()


# --- the captures' parsing, on names alone ---------------------------------------------


def no_read(path: str) -> bytes:
    raise AssertionError(f"read {path}: these names should need no reading")


@pytest.mark.parametrize(("path", "expected"), [
    ("k/Foo_Bar-1.0-1-py3-none-any.whl", ("Foo_Bar", "1.0")),  # a build tag
    ("k/numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", ("numpy", "1.26.4")),
    ("k/python-dateutil-2.9.0.tar.gz", ("python-dateutil", "2.9.0")),  # an old sdist keeps its dashes
    ("k/sub/requests-2.31.0-py3-none-any.whl", None),  # pip's wheel folder is flat
    ("k/offline-build-capture.txt", None),
])
def test_pip_reads_wheel_and_sdist_names(path: str, expected: tuple[str, str] | None) -> None:
    found = [(p.name, p.version) for p in PIP.packages([path], no_read)]
    assert found == ([expected] if expected else [])


def test_maven_and_go_read_the_repository_layouts() -> None:
    maven = MAVEN.packages(["k/com/acme/app/1.0/app-1.0.war", "k/com/acme/app/1.0/app-1.0.pom",
                            "k/com/acme/app/1.0/app-1.0-classes.jar"], no_read)
    assert [(p.namespace, p.name, p.version, p.qualifiers) for p in maven] == [("com.acme", "app", "1.0",
                                                                                 (("type", "war"),))]
    go = GO.packages(["k/gopkg.in/yaml.v3/@v/v3.0.1.zip", "k/example.com/!x/@v/v1.0.0-!r!c1.zip"], no_read)
    assert [(p.namespace, p.name, p.version) for p in go] == [("gopkg.in", "yaml.v3", "v3.0.1"),
                                                              ("example.com", "X", "v1.0.0-RC1")]


def test_npm_keeps_the_last_whole_entry_and_tarballs_only() -> None:
    def line(entry: dict[str, Any]) -> str:
        body = json.dumps(entry)
        return f"{hashlib.sha1(body.encode()).hexdigest()}\t{body}"

    key = "make-fetch-happen:request-cache:https://npm.example.invalid/api/npm/@acme/ms-lite/-/ms-lite-1.0.0.tgz"
    old = line({"key": key, "integrity": "sha512-" + "A" * 86 + "=="})
    new = line({"key": key, "integrity": "sha1-" + "D" * 27 + "= sha512-" + "B" * 86 + "=="})  # the strongest counts
    torn = new[:-20]  # an append cut short: its sha1 fails, the entry before it stands
    local = line({"key": "pacote:tarball:file:ms-lite-1.0.0.tgz", "integrity": "sha512-" + "C" * 86 + "=="})
    buckets = {"k/_cacache/index-v5/aa/bb/one": f"{old}\n{new}\n{torn}", "k/_cacache/index-v5/aa/bb/two": local}
    found = NPM.packages(list(buckets), lambda p: buckets[p].encode())
    assert [(p.namespace, p.name, p.version, p.path.split("/")[3], p.sha512[:4]) for p in found] == [
        ("@acme", "ms-lite", "1.0.0", "sha512", "0410")]


@pytest.mark.parametrize(("image", "expected"), [
    ("debian:bookworm-slim", ("debian", "docker.io/library/debian", "bookworm-slim")),
    ("acme/app", ("acme/app", "docker.io/acme/app", "latest")),
    ("ghcr.io/org/app:1.0", ("ghcr.io/org/app", "ghcr.io/org/app", "1.0")),
    ("localhost:5000/app@sha256:" + "0" * 64, ("localhost:5000/app", "localhost:5000/app", None)),
])
def test_an_image_reference_is_read_as_docker_reads_it(image: str, expected: tuple[str, str, str | None]) -> None:
    ref = sbom._reference(image)
    assert (ref.name, ref.repository, ref.tag) == expected

"""Images between the engine and the store: ``docker save`` in, ``docker load`` out.

Export saves base images into the store (checked complete, named and for
every wanted platform); setup loads them back into engines that cannot read
``oci-layout://`` contexts, and the named builder's BuildKit image into any.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from .. import tarstream
from ..engine import engine_message, image_present
from ..errors import EngineError, OfflineBuildError, StepError
from ..files import copy_stream_hashed
from ..plan import base_tag, full_name
from ..platforms import arch, runs_platform
from ..steps import LoadImages, SaveImages
from ..store import IMAGE_NAME, INDEX_TYPES, REF_NAME, Descriptor, Layout, StoreError, image_platforms
from . import Runtime

# What read_saved keeps of a docker save archive: the OCI layout, nothing else.
_SAVED = re.compile(r"^(oci-layout|index\.json|blobs/sha256/[0-9a-f]{64})$")


def save_images(rt: Runtime, step: SaveImages) -> dict[str, Any]:
    """``docker save`` into a temp layout, check it is complete, merge it in."""
    missing = [i for i in step.images if not image_present(rt.docker, i)]
    if missing:
        raise missing_images(step.title, missing)
    work = step.store.parent / ".work"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix="save-") as tmp:
        layout_dir = Path(tmp) / "layout"
        # Read as docker save writes it: each blob goes to the scratch layout
        # (on the store's disk, so merging is a rename) hashed on the way, and
        # no whole tar lands on disk first.
        with saved_stream(rt.docker, step) as stream:
            hashed = read_saved(stream, layout_dir, step.title)
        saved = Layout(layout_dir)
        if not saved.exists():
            raise StepError(step.title, "docker save wrote no OCI index (index.json)",
                            "use an engine with the containerd image store for export")
        # docker save with the containerd store has been reported to omit
        # shared blobs: reachable() raises if any referenced blob is absent.
        retag = {full_name(i): base_tag(i) for i in step.images}
        _check_names(saved, retag, step)
        _check_platforms(saved, step)
        added = Layout(step.store).merge(saved, retag=retag, move=True, hashed=hashed)
    return {"images": list(step.images), "blobs_added": added}


def missing_images(title: str, missing: list[str]) -> StepError:
    """All the absent base images in one message: named one at a time, a user would pull, export, fail, repeat."""
    if len(missing) == 1:
        return StepError(title, f"base image {missing[0]} is not in the engine",
                         f"pull or build it on this machine first (docker pull {missing[0]})")
    return StepError(title, f"{len(missing)} base images are not in the engine: {', '.join(missing)}",
                     "pull or build them on this machine first: "
                     + "; ".join(f"docker pull {image}" for image in missing))


def load_images(rt: Runtime, step: LoadImages) -> dict[str, Any]:
    """``docker load`` images (reference -> store tag) from the store; says what each did."""
    layout = Layout(step.store)
    tags = layout.tags()
    out = []
    for ref, tag in step.images:
        before = _image_id(rt.docker, ref)
        chunks = _Ended(docker_archive(layout, tags[tag], ref))
        try:
            # python-on-whales writes each chunk to docker load's stdin as it comes.
            rt.docker.image.load(chunks, quiet=True)
        except DockerException as exc:
            chunks.raise_cause()  # the store failed mid-stream: that, not the cut archive, is the news
            raise EngineError(f"docker load of {ref} failed: {engine_message(exc)}",
                              "check free disk space on the engine, then run offline.setup again") from None
        except BrokenPipeError:
            # docker load stopped reading before the end; its own words went to stderr.
            raise EngineError(f"docker load of {ref} stopped before the whole image was sent",
                              "check free disk space on the engine, then run offline.setup again") from None
        chunks.raise_cause()
        after = _image_id(rt.docker, ref)
        state = "unchanged" if before == after else ("replaced" if before else "loaded")
        rt.console.print(f"  {state}: {ref}")
        out.append((ref, state))
    return {"loaded": out}


class _Ended:
    """The archive's chunks, ended early instead of raising when reading the store fails mid-stream.

    python-on-whales feeds ``docker load`` from a generator and does not
    clean up when the generator raises: the CLI would be left waiting on its
    standard input. Ended, the stream closes normally, ``docker load``
    refuses the cut archive and is waited for; :meth:`raise_cause` then says
    what went wrong in the store.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        except (OfflineBuildError, OSError) as exc:
            self._error = exc

    def raise_cause(self) -> None:
        if self._error is not None:
            raise self._error


@contextmanager
def saved_stream(docker: DockerClient, step: SaveImages) -> Iterator[BinaryIO]:
    """The step's ``docker save`` as a pipe to read, with this client's connection flags.

    Not python-on-whales' ``image.save()`` generator: it yields the binary
    stream split at newline bytes (a chunk of any length), and after the
    last one allows the CLI 0.1 s to exit before raising ``TimeoutExpired``.
    """
    argv = [*map(str, docker.client_config.docker_cmd), *step.argv()[1:]]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: nothing the CLI says can block it
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        broken: Exception | None = None
        try:
            yield proc.stdout
            proc.stdout.read()  # the rest (record padding), so the CLI never waits on a full pipe
        except (tarfile.TarError, EOFError) as exc:
            broken = exc  # the stream ended early or is no tar: the CLI's exit status says why
        finally:
            proc.stdout.close()  # the CLI stops on a broken pipe if the reader gave up (Ctrl-C, a bad blob)
            code = proc.wait()
        if code != 0:
            err.seek(0)
            words = err.read().decode(errors="replace").strip() or f"exit status {code}"
            raise StepError(step.title, f"docker save failed: {words}")
        if broken is not None:
            raise StepError(step.title, f"docker save wrote an unreadable archive ({broken})")


def read_saved(stream: BinaryIO, dest: Path, title: str) -> dict[str, str]:
    """Write the OCI layout of a ``docker save`` stream into *dest*; digest -> sha256 of each blob written.

    One pass over the stream (``r|``: no seeking back). Only the layout's
    own files are written: ``oci-layout``, ``index.json`` and regular
    ``blobs/sha256/<hex>`` files; the classic ``manifest.json``, legacy
    folders and links are not needed, and never touch the disk. Each blob
    is hashed as it is written; one whose bytes do not match its name is
    refused here, before the store sees it. A truncated or foreign stream
    raises ``tarfile.TarError`` (:func:`saved_stream` says what the CLI said).
    """
    hashed: dict[str, str] = {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            target = dest / member.name
            if not member.isreg() or not _SAVED.match(member.name) or target.exists():
                continue
            source = tar.extractfile(member)
            assert source is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            sha = copy_stream_hashed(source, target)
            if member.name.startswith("blobs/"):
                hexpart = member.name.rsplit("/", 1)[1]
                if sha != hexpart:
                    raise StepError(title, f"docker save wrote {member.name} with content of sha256 {sha}",
                                    "the engine's image store is damaged: pull the image again")
                hashed[f"sha256:{hexpart}"] = sha
    return hashed


def _image_id(docker: DockerClient, ref: str) -> str | None:
    try:
        return docker.image.inspect(ref).id if image_present(docker, ref) else None
    except DockerException:
        return None


def docker_archive(layout: Layout, desc: Any, ref: str) -> Iterator[bytes]:
    """A ``docker load`` tar for one image, as chunks: its OCI entry plus the classic manifest.json.

    The classic ``manifest.json`` is what Docker 20.10 reads; newer engines
    read the OCI index. Layers stay gzip-compressed: both accept that.
    Everything that can fail before the engine is asked (no image for this
    machine, a blob not in the store) fails here, when called; the bytes
    are read only as ``docker load`` takes them, one chunk at a time, so
    memory does not grow with the layers.
    """
    manifest_desc = _platform_manifest(layout, desc)
    doc = layout.read_json(manifest_desc.digest)
    blobs = [manifest_desc.digest, doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]
    classic = [{"Config": f"blobs/sha256/{doc['config']['digest'].split(':')[1]}",
                "RepoTags": [ref],
                "Layers": [f"blobs/sha256/{layer['digest'].split(':')[1]}" for layer in doc["layers"]]}]
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{**manifest_desc.to_json(), "annotations": {
                 "io.containerd.image.name": ref, REF_NAME: ref.rsplit(":", 1)[-1]}}]}
    members: list[tarstream.Member] = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                                       ("index.json", json.dumps(index).encode()),
                                       ("manifest.json", json.dumps(classic).encode())]
    for digest in dict.fromkeys(blobs):
        path = layout.blob_path(digest)
        if not path.is_file():
            raise StoreError(f"blob {digest} of {ref} is missing from {layout.root}",
                             "run offline.setup again with the bundle")
        members.append((f"blobs/sha256/{digest.split(':')[1]}", path))
    return tarstream.stream(members)


def _platform_manifest(layout: Layout, desc: Any) -> Any:
    """The image manifest for this machine, resolving an index if there is one."""
    if desc.media_type not in INDEX_TYPES:
        return desc
    children = [Descriptor.from_json(d) for d in layout.read_json(desc.digest)["manifests"]]
    for child in children:
        plat = child.platform or {}
        if plat.get("architecture") == arch() and layout.blob_path(child.digest).is_file():
            return child
    raise OfflineBuildError(f"no {arch()} image for {desc.digest[:19]} in the store",
                            "export the bundle with --platform for this machine")


def _check_platforms(saved: Layout, step: SaveImages) -> None:
    """Every base image must carry each platform the project builds for.

    Otherwise BuildKit looks the missing one up in a registry: online it
    would quietly fetch it outside the store, offline the build fails.
    """
    if not step.platforms:
        return
    for desc in saved.index():
        have = tuple(sorted(image_platforms(saved, desc)))
        missing = [p for p in step.platforms if not runs_platform(p, have)]
        if missing:
            name = desc.annotations.get(IMAGE_NAME, desc.digest)
            raise StepError(step.title, f"base image {name} has {', '.join(have) or 'no platform'} in this engine, "
                                        f"not {', '.join(missing)}",
                            f"pull it for those platforms first (docker pull --platform {missing[0]} {name}), "
                            "or export for the platforms it has")


def _check_names(saved: Layout, retag: dict[str, str], step: SaveImages) -> None:
    names = {d.annotations.get(IMAGE_NAME) for d in saved.index()}
    for full, _ in retag.items():
        if full not in names:
            raise StepError(step.title, f"docker save wrote no entry named {full}",
                            "check the base image name in offline.yaml or the Dockerfile")

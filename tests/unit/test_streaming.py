"""The data path streams: memory flat in layer size, one copy on disk, one read per byte.

Each test compares against the way it was done before (kept here, frozen,
as the reference) or measures what the streaming promises.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from offline_build import bundle, packing, tarstream, unpacking
from offline_build.errors import OfflineBuildError, StepError
from offline_build.runners import Runtime, bundle_io
from offline_build.runners import images as images_mod
from offline_build.steps import LoadImages, ManifestDraft, Pack, SaveImages
from offline_build.store import REF_NAME, StoreError
from tests.unit import oci, twopass

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


# --- the references: the two-pass, in-memory ways, as they were -------------


def old_docker_archive(layout: Any, desc: Any, ref: str) -> bytes:
    """images.docker_archive before streaming: the whole tar in a BytesIO."""
    manifest_desc = images_mod._platform_manifest(layout, desc)
    doc = layout.read_json(manifest_desc.digest)
    blobs = [manifest_desc.digest, doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]
    classic = [{"Config": f"blobs/sha256/{doc['config']['digest'].split(':')[1]}",
                "RepoTags": [ref],
                "Layers": [f"blobs/sha256/{layer['digest'].split(':')[1]}" for layer in doc["layers"]]}]
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{**manifest_desc.to_json(), "annotations": {
                 "io.containerd.image.name": ref, REF_NAME: ref.rsplit(":", 1)[-1]}}]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                           ("index.json", json.dumps(index).encode()),
                           ("manifest.json", json.dumps(classic).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for digest in dict.fromkeys(blobs):
            tar.add(layout.blob_path(digest), arcname=f"blobs/sha256/{digest.split(':')[1]}")
    return buf.getvalue()


def old_write(output: Path, manifest: bundle.Manifest, members: list[tuple[str, Path]]) -> None:
    """The bundle writer before streaming: tarfile, members copied by addfile."""
    raw = manifest.to_json()
    with tarfile.open(output, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((bundle.MANIFEST, raw),
                           (bundle.MANIFEST_SUM, hashlib.sha256(raw).hexdigest().encode() + b"\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, path in members:
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            with path.open("rb") as fh:
                tar.addfile(info, fh)


def old_pack(output: Path, manifest: bundle.Manifest, members: list[tuple[str, Path]],
             base: bundle.Manifest | None = None) -> None:
    """runners.bundle_io.pack before: hash everything, then choose, then write."""
    manifest.files = twopass.hash_members(members)
    if base is not None:
        members = twopass.delta_members(members, manifest.files, base)
    old_write(output, manifest, twopass.unique_members(members, manifest.files))


def members_of(data: bytes) -> list[tuple[str, bytes, int, int]]:
    """(name, content, type, mode) of every member, in order."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, tar.extractfile(m).read() if m.isreg() else b"", int.from_bytes(m.type, "big"), m.mode)
                for m in tar.getmembers()]  # type: ignore[union-attr]


# --- docker_archive / load_images ---------------------------------------------


def small_image(root: Path) -> tuple[Any, Any]:
    layout = oci.new(root)
    desc = oci.image(layout, "base-debian", [b"layer one" * 100, os.urandom(3000), b""])
    return layout, desc


def test_docker_archive_has_the_members_and_bytes_the_old_one_had(tmp_path: Path) -> None:
    layout, desc = small_image(tmp_path / "store")
    new = b"".join(images_mod.docker_archive(layout, desc, "debian:bookworm-slim"))
    old = old_docker_archive(layout, desc, "debian:bookworm-slim")
    # Same members, same order, same bytes; headers differ only in owner and time (now 0/none).
    assert [(n, d, t) for n, d, t, _ in members_of(new)] == [(n, d, t) for n, d, t, _ in members_of(old)]
    assert len(new) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(new), mode="r|") as tar:  # docker load reads it as a stream
        assert [m.name for m in tar][-1].startswith("blobs/sha256/")


def test_tarstream_frames_exactly_as_tarfile_does(tmp_path: Path) -> None:
    """Byte for byte, with a long (PAX) name, an empty member and a block-sized one."""
    files = {"files/resources/" + "deep/" * 30 + "long-name.bin": os.urandom(1000),
             "files/resources/empty": b"", "files/resources/block": b"x" * 512}
    members = []
    for name, data in files.items():
        path = tmp_path / hashlib.sha256(name.encode()).hexdigest()
        path.write_bytes(data)
        members.append((name, path))
    manifest = bundle.Manifest("p", "1", [], {}, {})
    manifest.files = twopass.hash_members(members)
    raw = manifest.to_json()
    new = b"".join(tarstream.stream([(bundle.MANIFEST, raw), (bundle.MANIFEST_SUM, bundle.manifest_sum(raw)),
                                     *members]))
    old_write(tmp_path / "old.tar", manifest, members)
    assert new == (tmp_path / "old.tar").read_bytes()
    # The tests' reference packer writes the same bytes, by tarfile alone.
    twopass.write(tmp_path / "reference.tar", manifest, members)
    assert (tmp_path / "reference.tar").read_bytes() == new


def test_docker_archive_fails_before_the_engine_when_a_blob_is_missing(tmp_path: Path) -> None:
    layout, desc = small_image(tmp_path / "store")
    layer = layout.read_json(desc.digest)["layers"][1]["digest"]
    layout.blob_path(layer).unlink()
    with pytest.raises(StoreError, match="missing"):
        images_mod.docker_archive(layout, desc, "debian:bookworm-slim")  # not iterated: raised when called


class FakeImages:
    """python-on-whales' image component, as load_images uses it; load takes the stream like the CLI's stdin."""

    def __init__(self) -> None:
        self.loaded = bytearray()
        self.biggest = 0
        self.calls = 0

    def exists(self, ref: str) -> bool:
        return False

    def load(self, input: Any, quiet: bool = False) -> list[str]:
        assert not isinstance(input, (bytes, str, Path)), "load_images must hand docker load a stream"
        self.calls += 1
        for chunk in input:
            self.biggest = max(self.biggest, len(chunk))
            self.loaded += chunk
        return []


def test_load_images_hands_docker_load_chunks_not_a_whole_image(tmp_path: Path) -> None:
    layout = oci.new(tmp_path / "store")
    desc = oci.image(layout, "base-x", [os.urandom(3 * MiB + 5)])
    fake = FakeImages()
    rt = Runtime(docker=SimpleNamespace(image=fake), console=Console(file=io.StringIO()))  # type: ignore[arg-type]
    images_mod.load_images(rt, LoadImages("load", images=(("x:1", "base-x"),), store=layout.root))
    assert fake.calls == 1
    old = old_docker_archive(layout, desc, "x:1")
    assert [m[:3] for m in members_of(bytes(fake.loaded))] == [m[:3] for m in members_of(old)]
    assert fake.biggest <= 1 * MiB + 2 * tarfile.BLOCKSIZE  # one read of the store at a time


def test_a_store_read_failing_mid_load_ends_the_stream_for_docker_load_and_names_the_store(tmp_path: Path) -> None:
    """python-on-whales leaves docker load waiting when the chunk generator raises: the stream must end cleanly,
    and the store's failure be the error the user sees."""
    layout = oci.new(tmp_path / "store")
    desc = oci.image(layout, "base-x", [os.urandom(3 * MiB)])
    blob = layout.blob_path(layout.read_json(desc.digest)["layers"][0]["digest"])

    class Shrinking(FakeImages):
        def load(self, input: Any, quiet: bool = False) -> list[str]:
            self.calls += 1
            for chunk in input:  # read to the end, as the CLI reads its stdin
                if len(chunk) == MiB and blob.stat().st_size == 3 * MiB:
                    blob.write_bytes(blob.read_bytes()[:MiB])  # the store loses a layer's tail mid-stream
                self.loaded += chunk
            self.finished = True  # the stream ended: a CLI would now see EOF, fail the cut archive, and exit
            return []

    fake = Shrinking()
    fake.finished = False
    rt = Runtime(docker=SimpleNamespace(image=fake), console=Console(file=io.StringIO()))  # type: ignore[arg-type]
    with pytest.raises(OfflineBuildError, match="changed size while it was being archived"):
        images_mod.load_images(rt, LoadImages("load", images=(("x:1", "base-x"),), store=layout.root))
    assert fake.finished and fake.calls == 1 and 0 < len(fake.loaded) < 3 * MiB  # ended early, nothing raised into load


PEAK_SCRIPT = textwrap.dedent("""
    import hashlib, io, json, os, resource, sys
    from pathlib import Path
    from types import SimpleNamespace
    from rich.console import Console
    from offline_build.runners import Runtime, images
    from offline_build.steps import LoadImages
    from offline_build.store import REF_NAME, Descriptor, Layout

    root, size = Path(sys.argv[1]), int(sys.argv[2])
    layout = Layout(root)
    layout.blobs.mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    digest = hashlib.sha256()
    tmp = root / "layer.tmp"
    with tmp.open("wb") as fh:
        for _ in range(size >> 20):
            fh.write(chunk)
            digest.update(chunk)
    layer = "sha256:" + digest.hexdigest()
    tmp.rename(layout.blob_path(layer))

    def put(data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        layout.blob_path(d).write_bytes(data)
        return {"digest": d, "size": len(data)}

    config = put(json.dumps({"rootfs": {"diff_ids": [layer]}}).encode())
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": size}]})
    m = put(manifest.encode())
    layout.write_index([Descriptor("application/vnd.oci.image.manifest.v1+json", m["digest"], m["size"],
                                   {REF_NAME: "base-big"})])

    seen = {"bytes": 0}
    def load(input, quiet=False):
        for c in ([input] if isinstance(input, bytes) else input):  # as python-on-whales takes either
            seen["bytes"] += len(c)
        return []
    docker = SimpleNamespace(image=SimpleNamespace(exists=lambda ref: False, load=load))
    rt = Runtime(docker=docker, console=Console(file=io.StringIO()))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    images.load_images(rt, LoadImages("load", images=(("big:1", "base-big"),), store=root))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "after_kib": after, "sent": seen["bytes"]}))
""")


def peak(tmp_path: Path, size: int) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp_path / "store"), str(size)],
                         capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out)


def test_loading_a_256_mib_layer_keeps_peak_memory_flat(tmp_path: Path) -> None:
    """Before streaming, the archive sat whole in memory: peak RSS grew by the layer (here 256 MiB, and more)."""
    result = peak(tmp_path, 256 * MiB)
    assert result["sent"] > 256 * MiB
    growth_mib = (result["after_kib"] - result["before_kib"]) / 1024
    assert growth_mib < 32, f"peak RSS grew by {growth_mib:.0f} MiB while loading a 256 MiB layer"


# --- save_images ----------------------------------------------------------------


def docker_save_tar(tmp_path: Path, corrupt: bool = False) -> tuple[Path, Any, dict[str, bytes]]:
    """What ``docker save`` writes with the containerd store, plus the legacy bits a classic engine adds."""
    src = oci.new(tmp_path / "engine")
    name = images_mod.full_name("debian:bookworm-slim")  # the normalised name containerd records
    desc = oci.image(src, name, [os.urandom(2 * MiB + 7), b"small"], {"io.containerd.image.name": name})
    blobs = {f"blobs/sha256/{p.name}": p.read_bytes() for p in src.blobs.iterdir()}
    out = tmp_path / "saved.tar"
    with tarfile.open(out, "w") as tar:
        for name in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in blobs.items():
            info = tarfile.TarInfo(name)
            payload = (b"X" + data[1:]) if corrupt and len(data) > MiB else data
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo("abc123/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = f"../{next(iter(blobs))}"
        tar.addfile(link)
        for name in ("index.json", "oci-layout", "manifest.json", "repositories"):
            data = (src.root / name).read_bytes() if name in ("index.json", "oci-layout") else b"{}"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out, desc, blobs


class OneWay(io.RawIOBase):
    """A pipe's end: read() only, no seek, so a reader that goes back fails as on a real pipe."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._src.read(min(len(b), 4096))
        b[:len(data)] = data
        return len(data)


def test_read_saved_takes_the_layout_from_a_one_way_stream(tmp_path: Path) -> None:
    tar, _, blobs = docker_save_tar(tmp_path)
    dest = tmp_path / "layout"
    hashed = images_mod.read_saved(io.BufferedReader(OneWay(tar.read_bytes())), dest, "save")
    written = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert written == sorted(["index.json", "oci-layout", *blobs])  # no manifest.json, legacy folder, link
    assert hashed == {f"sha256:{n.rsplit('/', 1)[1]}": hashlib.sha256(d).hexdigest() for n, d in blobs.items()}
    assert all((dest / n).read_bytes() == d for n, d in blobs.items())


def test_read_saved_refuses_a_blob_that_is_not_its_name(tmp_path: Path) -> None:
    tar, _, _ = docker_save_tar(tmp_path, corrupt=True)
    with pytest.raises(StepError, match="with content of sha256"):
        images_mod.read_saved(io.BufferedReader(OneWay(tar.read_bytes())), tmp_path / "layout", "save")


FAKE_CLI = textwrap.dedent("""
    import shutil, sys
    args = sys.argv[1:]
    assert args[:1] == ["save"], args
    if "missing:1" in args:
        sys.stderr.write("Error response from daemon: No such image: missing:1\\n")
        sys.exit(1)
    with open(sys.argv[0] + ".tar", "rb") as fh:
        if "truncated:1" in args:
            sys.stdout.buffer.write(fh.read(3000))
            sys.stderr.write("error: context canceled\\n")
            sys.exit(1)
        shutil.copyfileobj(fh, sys.stdout.buffer)
""")


def save_runtime(tmp_path: Path, tar: Path) -> Runtime:
    cli = tmp_path / "fake-docker.py"
    cli.write_text(FAKE_CLI)
    tar.rename(cli.with_name(cli.name + ".tar"))
    docker = SimpleNamespace(image=SimpleNamespace(exists=lambda ref: True),
                             client_config=SimpleNamespace(docker_cmd=[sys.executable, str(cli)]))
    return Runtime(docker=docker, console=Console(file=io.StringIO()))  # type: ignore[arg-type]


def test_save_images_streams_into_the_store_with_one_copy_on_disk(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tar, desc, blobs = docker_save_tar(tmp_path)
    rt = save_runtime(tmp_path, tar)
    cache = tmp_path / "cache"
    on_disk: list[int] = []
    merge = images_mod.Layout.merge

    def measuring_merge(self: Any, other: Any, **kwargs: Any) -> int:
        # The moment of most disk use: everything saved is on disk, nothing moved yet.
        on_disk.append(sum(p.stat().st_size for p in (cache / ".work").rglob("*") if p.is_file()))
        assert kwargs.get("hashed"), "the hashes taken while writing must reach the store"
        return merge(self, other, **kwargs)

    monkeypatch.setattr(images_mod.Layout, "merge", measuring_merge)
    step = SaveImages("save", images=("debian:bookworm-slim",), store=cache / "store")
    result = images_mod.save_images(rt, step)
    assert result["blobs_added"] == len(blobs)
    layout_bytes = sum(len(d) for d in blobs.values()) + 1024  # the blobs, index.json and oci-layout
    assert on_disk and on_disk[0] <= layout_bytes, f"{on_disk[0]} bytes on disk for {layout_bytes} of layout"
    store = images_mod.Layout(cache / "store")
    assert store.tags()["base-debian_bookworm-slim"].digest == desc.digest
    assert all(store.blob_path(f"sha256:{n.rsplit('/', 1)[1]}").read_bytes() == d for n, d in blobs.items())


@pytest.mark.parametrize(("image", "words"), [("missing:1", "No such image: missing:1"),
                                              ("truncated:1", "context canceled")])
def test_save_images_says_what_the_cli_said(tmp_path: Path, image: str, words: str) -> None:
    """A failed save names the engine's words, not the truncated tar it left."""
    tar, _, _ = docker_save_tar(tmp_path)
    rt = save_runtime(tmp_path, tar)
    step = SaveImages("save", images=(image,), store=tmp_path / "cache" / "store")
    with pytest.raises(StepError, match=words):
        images_mod.save_images(rt, step)
    assert not (tmp_path / "cache" / "store").exists()


# --- packing --------------------------------------------------------------------


def pack_input(root: Path) -> list[tuple[str, Path]]:
    """A store with shared layers, and files with a duplicate and a same-size neighbour."""
    store = oci.new(root / "store")
    shared = os.urandom(300_000)
    oci.image(store, "cache-svc", [shared, os.urandom(200_001)])
    oci.image(store, "base-debian", [shared])
    res = root / "resources"
    res.mkdir()
    (res / "model.bin").write_bytes(os.urandom(150_000))
    (res / "copy-of-model.bin").write_bytes((res / "model.bin").read_bytes())
    (res / "notes.txt").write_text("weights\n")
    return bundle.collect(root)


class CountingFile:
    """Wraps an open file; adds what each read() returns to the path's count."""

    def __init__(self, fh: Any, counts: Counter[str], key: str) -> None:
        self._fh, self._counts, self._key = fh, counts, key

    def read(self, *args: Any) -> bytes:
        data = self._fh.read(*args)
        self._counts[self._key] += len(data)
        return data

    def __enter__(self) -> CountingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def count_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    counts: Counter[str] = Counter()
    original = Path.open

    def counting_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = original(self, mode, *args, **kwargs)
        return CountingFile(fh, counts, str(self)) if "r" in mode else fh

    monkeypatch.setattr(Path, "open", counting_open)
    return counts


def test_packing_reads_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = pack_input(tmp_path)
    counts = count_reads(monkeypatch)
    packed = packing.write_hashed(tmp_path / "b.tar", bundle.Manifest("p", "1", [], {}, {}), members)
    monkeypatch.undo()
    assert {str(p): p.stat().st_size for _, p in members} == dict(counts)  # every byte once, no more
    assert len(packed.members) == len(members) - 1  # the copy was hashed, and left out


def test_a_delta_reads_nothing_twice_and_no_blob_its_base_has(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    members = pack_input(tmp_path)
    base = bundle.Manifest("p", "0", [], {}, {})
    base.files = twopass.hash_members(members)
    (tmp_path / "resources" / "notes.txt").write_text("other w\n")  # same size, new content
    counts = count_reads(monkeypatch)
    packed = packing.write_hashed(tmp_path / "d.tar", bundle.Manifest("p", "1", [], {}, {}), members, base)
    monkeypatch.undo()
    assert [n for n, _ in packed.members] == ["oci-layout", "index.json", "files/resources/notes.txt"]
    blobs = [str(p) for n, p in members if n.startswith("blobs/")]
    assert len(blobs) == 6  # two layers (one shared), two configs, two manifests: not any() over none
    assert not any(counts[b] for b in blobs)
    notes = tmp_path / "resources" / "notes.txt"
    # It could have been the base's (same path, same size): hashed first, then written.
    assert counts[str(notes)] == 2 * notes.stat().st_size
    others = [p for _, p in members if p != notes]
    assert len(others) == len(members) - 1 == 10
    assert all(counts[str(p)] <= p.stat().st_size for p in others)


@pytest.mark.parametrize("delta", [False, True])
def test_packing_writes_the_archive_the_two_pass_way_wrote(tmp_path: Path, delta: bool) -> None:
    members = pack_input(tmp_path)
    base = None
    if delta:
        base = bundle.Manifest("p", "0", [], {}, {})
        base.files = twopass.hash_members(members)[:4]
        (tmp_path / "resources" / "notes.txt").write_text("other w\n")
    old_manifest, new_manifest = (bundle.Manifest("p", "1", ["linux/amd64"], {"svc": {}}, {}) for _ in "ab")
    old_pack(tmp_path / "old.tar", old_manifest, members, base)
    packed = packing.write_hashed(tmp_path / "new.tar", new_manifest, members, base)
    assert new_manifest.to_json() == old_manifest.to_json()  # the same checksums, byte for byte
    assert (tmp_path / "new.tar").read_bytes() == (tmp_path / "old.tar").read_bytes()
    assert packed.size == (tmp_path / "new.tar").stat().st_size


def test_packing_refuses_a_blob_that_is_not_its_name_and_leaves_nothing(tmp_path: Path) -> None:
    members = pack_input(tmp_path)
    blob = next(p for n, p in members if n.startswith("blobs/") and p.stat().st_size == 200_001)
    blob.write_bytes(b"Z" + blob.read_bytes()[1:])
    with pytest.raises(bundle.BundleError, match="does not match its digest"):
        packing.write_hashed(tmp_path / "out" / "b.tar", bundle.Manifest("p", "1", [], {}, {}), members)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_file_that_changes_size_while_packed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = pack_input(tmp_path)
    notes = tmp_path / "resources" / "notes.txt"
    real = tarstream.file_chunks

    def growing(path: Path, size: int, digest: Any = None) -> Any:
        if path == notes:
            notes.write_text("weights, and more\n")
        return real(path, size, digest)

    monkeypatch.setattr(tarstream, "file_chunks", growing)
    with pytest.raises(OfflineBuildError, match="changed size"):
        packing.write_hashed(tmp_path / "out" / "b.tar", bundle.Manifest("p", "1", [], {}, {}), members)
    assert list((tmp_path / "out").iterdir()) == []


def test_the_pack_step_reads_each_layer_and_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the runner: no hashing pass before the writing one."""
    members = pack_input(tmp_path)
    step = Pack("pack", cache_dir=tmp_path, store=tmp_path / "store", output=tmp_path / "out" / "b.tar",
                folders=(("resources", tmp_path / "resources"),), manifest=ManifestDraft("p", "1"))
    rt = Runtime(docker=None, console=Console(file=io.StringIO()))  # type: ignore[arg-type]
    counts = count_reads(monkeypatch)
    result = bundle_io.pack(rt, step)
    monkeypatch.undo()
    big = {str(p): p.stat().st_size for _, p in members if p.stat().st_size > 1000}  # layers and files, not JSON
    assert len(big) == 4  # two layers (one shared), a file and its copy
    assert {k: counts[k] for k in big} == big
    assert result["packed_files"] == len(members) - 1
    manifest, _ = unpacking.load_manifest(step.output)
    assert [(f.path, f.sha256) for f in manifest.files] == [(e.path, e.sha256) for e in twopass.hash_members(members)]

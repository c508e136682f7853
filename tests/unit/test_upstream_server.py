"""The loopback stand-in for the internet (tests/integration/upstream.py) serves what integration tests rely on."""

from __future__ import annotations

import gzip
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPResponse
from pathlib import Path

import pytest

from tests.integration.upstream import Upstream, make_repo, put_file, upstream

DATA = bytes(range(256)) * 400  # 100 KiB, every byte value: a truncated or re-encoded body cannot pass


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Upstream]:
    with upstream(tmp_path / "up") as server:
        yield server


def fetch(up: Upstream, url: str | urllib.request.Request, headers: dict[str, str] | None = None
          ) -> tuple[HTTPResponse, bytes]:
    """Open *url* trusting only the stand-in's CA, never through a proxy; the response (closed) and its body."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=up.ca_file)))
    request = url if isinstance(url, urllib.request.Request) else urllib.request.Request(url, headers=headers or {})
    with opener.open(request, timeout=30) as resp:
        return resp, resp.read()


def git_env() -> dict[str, str]:
    """This machine's environment minus any proxy, and no user git config.

    GIT_SSL_CAINFO / GIT_SSL_CAPATH go too: git lets them override ``-c http.sslCAInfo`` (this machine sets one).
    """
    dropped = ("http_proxy", "https_proxy", "all_proxy", "git_ssl_cainfo", "git_ssl_capath")
    env = {k: v for k, v in os.environ.items() if k.lower() not in dropped}
    return {**env, "no_proxy": "*", "NO_PROXY": "*", "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def test_a_file_is_served_whole_and_the_query_is_ignored(up: Upstream) -> None:
    url = put_file(up, "blob.bin", DATA)
    assert url == f"{up.url}/files/blob.bin" and up.url.startswith("https://127.0.0.1:")
    resp, body = fetch(up, url + "?t=123")
    assert (resp.status, body, resp.headers["Content-Length"]) == (200, DATA, str(len(DATA)))


def test_a_range_is_served_as_206_with_its_content_range(up: Upstream) -> None:
    url = put_file(up, "blob.bin", DATA)
    resp, body = fetch(up, url, {"Range": "bytes=10-19"})
    assert (resp.status, body, resp.headers["Content-Range"]) == (206, DATA[10:20], f"bytes 10-19/{len(DATA)}")
    resp, body = fetch(up, url, {"Range": "bytes=-5"})
    assert (resp.status, body, resp.headers["Content-Range"]) == (206, DATA[-5:], f"bytes {len(DATA) - 5}-{len(DATA) - 1}/{len(DATA)}")


def test_a_range_past_the_end_is_416(up: Upstream) -> None:
    url = put_file(up, "small", b"abc")
    with pytest.raises(urllib.error.HTTPError) as err:
        fetch(up, url, {"Range": "bytes=3-"})
    err.value.close()
    assert (err.value.code, err.value.headers["Content-Range"]) == (416, "bytes */3")


def test_a_redirect_is_followed_to_the_same_bytes(up: Upstream) -> None:
    put_file(up, "blob.bin", DATA)
    resp, body = fetch(up, f"{up.url}/redirect/blob.bin")
    assert (resp.status, body, resp.url) == (200, DATA, f"{up.url}/files/blob.bin")
    assert up.requests == ["GET /redirect/blob.bin", "GET /files/blob.bin"]


def test_chunked_is_sent_in_chunks_and_arrives_whole(up: Upstream) -> None:
    put_file(up, "blob.bin", DATA)
    resp, body = fetch(up, f"{up.url}/chunked/blob.bin")
    assert resp.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in resp.headers
    assert body == DATA


def test_gzip_is_encoded_and_decodes_to_the_file(up: Upstream) -> None:
    put_file(up, "blob.bin", DATA)
    resp, body = fetch(up, f"{up.url}/gzip/blob.bin")
    assert resp.headers["Content-Encoding"] == "gzip" and body != DATA
    assert gzip.decompress(body) == DATA


@pytest.mark.parametrize("path", ["/files/missing", "/nowhere", "/files/..%2Fca.pem", "/files/"])
def test_what_is_not_served_is_404(up: Upstream, path: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        fetch(up, up.url + path)
    err.value.close()
    assert err.value.code == 404


def test_every_request_line_is_recorded_even_concurrently(up: Upstream) -> None:
    url = put_file(up, "a.txt", b"a")
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda i: fetch(up, f"{url}?n={i}")[1], range(24)))
    fetch(up, f"{up.url}/gzip/a.txt?x=1")
    assert bodies == [b"a"] * 24
    assert sorted(up.requests[:24]) == sorted(f"GET /files/a.txt?n={i}" for i in range(24))
    assert up.requests[24:] == ["GET /gzip/a.txt?x=1"]


def test_a_client_without_the_ca_refuses_the_server(up: Upstream) -> None:
    url = put_file(up, "a.txt", b"a")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the default context: system CAs only
    with pytest.raises(urllib.error.URLError) as err:
        opener.open(url, timeout=30)
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)
    assert up.requests == []  # refused at the handshake: no request ever reached the server


def test_ca_pem_holds_the_ca_certificate_only(up: Upstream) -> None:
    text = up.ca_file.read_text()
    assert up.ca_file == up.root / "ca.pem"
    assert text.count("BEGIN CERTIFICATE") == 1 and "PRIVATE KEY" not in text


@pytest.mark.parametrize("version", [0, 2])
def test_git_clones_over_smart_http(up: Upstream, tmp_path: Path, version: int) -> None:
    url = make_repo(up, "proj", {"README": "hello\n", "src/main.py": "print(1)\n"})
    assert url == f"{up.url}/git/proj.git"
    proc = subprocess.run(
        ["git", "-c", f"http.sslCAInfo={up.ca_file}", "-c", f"protocol.version={version}", "clone", url, str(tmp_path / "c")],
        capture_output=True, text=True, check=False, timeout=120, env={**git_env(), "GIT_TRACE_PACKET": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "c" / "src" / "main.py").read_text() == "print(1)\n"
    assert (tmp_path / "c" / "README").read_text() == "hello\n"
    assert ("git< version 2" in proc.stderr) == (version == 2)  # the Git-Protocol header reached the backend
    assert up.requests[0] == "GET /git/proj.git/info/refs?service=git-upload-pack"
    assert "POST /git/proj.git/git-upload-pack" in up.requests


def test_git_without_the_ca_cannot_clone(up: Upstream, tmp_path: Path) -> None:
    url = make_repo(up, "proj", {"README": "hello\n"})
    proc = subprocess.run(["git", "clone", url, str(tmp_path / "c")],
                          capture_output=True, text=True, check=False, timeout=120, env=git_env())
    assert proc.returncode != 0 and "certificate" in proc.stderr.lower()
    assert up.requests == []


def add_branches(bare: Path, count: int) -> None:
    """*count* more branches, each its own commit: enough wants to make git's fetch request big."""
    script = "".join(f"commit refs/heads/b{i}\ncommitter t <t@example.invalid> 0 +0000\ndata {len(str(i))}\n{i}\n"
                     f"M 644 inline f\ndata {len(str(i))}\n{i}\n" for i in range(count))
    subprocess.run(["git", "-C", str(bare), "fast-import", "--quiet"], input=script, text=True, check=True, env=git_env())


@pytest.mark.parametrize(("post_buffer", "header"), [("1m", "Content-Encoding: gzip"), ("66000", "Transfer-Encoding: chunked")])
def test_git_sends_big_requests_gzipped_or_chunked_and_still_clones(
        up: Upstream, tmp_path: Path, post_buffer: str, header: str) -> None:
    """Under http.postBuffer git gzips a big request body; over it, git streams it chunked. Both must reach the backend."""
    url = make_repo(up, "big", {"README": "hello\n"})
    add_branches(up.root / "git" / "big.git", 2000)
    proc = subprocess.run(
        ["git", "-c", f"http.sslCAInfo={up.ca_file}", "-c", f"http.postBuffer={post_buffer}",
         "clone", "-q", "--mirror", url, str(tmp_path / "m")],
        capture_output=True, text=True, check=False, timeout=120, env={**git_env(), "GIT_TRACE_CURL": "1",
                                                                       "GIT_TRACE_CURL_NO_DATA": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Send header: {header}" in proc.stderr  # else this test no longer exercises that encoding
    refs = subprocess.run(["git", "-C", str(tmp_path / "m"), "for-each-ref"], capture_output=True, text=True, check=True)
    assert len(refs.stdout.splitlines()) == 2001


def pkt(line: str) -> bytes:
    return b"%04x%s" % (len(line) + 4, line.encode())


def test_a_gzip_encoded_upload_pack_request_is_inflated(up: Upstream) -> None:
    """git gzips large fetch requests; http-backend must get told so, or it reads garbage and sends no pack."""
    make_repo(up, "proj", {"README": "hello\n"})
    head = subprocess.run(["git", "-C", str(up.root / "git" / "proj.git"), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    request = urllib.request.Request(
        f"{up.url}/git/proj.git/git-upload-pack", method="POST",
        data=gzip.compress(pkt(f"want {head}\n") + b"0000" + pkt("done\n")),
        headers={"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"})
    resp, body = fetch(up, request)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/x-git-upload-pack-result"
    assert body.startswith(b"0008NAK\n" + b"PACK")


def test_the_server_is_gone_after_the_block(tmp_path: Path) -> None:
    with upstream(tmp_path) as up:
        port = int(up.url.rsplit(":", 1)[1])
        assert fetch(up, put_file(up, "a.txt", b"a"))[1] == b"a"  # serving inside the block
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

"""The replay capture's real proxies (mitmproxy in a thread) on loopback, against the HTTPS stand-in for the internet.

Record through one proxy while the stand-in serves, stop the stand-in, replay through the other:
what comes back must be byte for byte what was recorded, and nothing may reach upstream.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import select
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from offline_build import recording
from offline_build.runners.proxy import (
    CA_PATH,
    CA_VARIABLES,
    Running,
    _Recorder,
    env_text,
    recording_proxy,
    replay_proxy,
)
from tests.integration.upstream import make_repo, put_file, upstream

MODEL = bytes(range(256)) * 400  # every byte value: a re-encoded or truncated body cannot pass
TEXT = b"corpus line\n" * 2000  # compressible: the gzip route's body differs from the file


def proxy_ca(running: Running) -> str:
    (ca,) = [s.split("src=", 1)[1] for s in running.secrets if s.startswith("id=offline-build-proxy-ca,src=")]
    return ca


def fetch(running: Running, url: str, headers: dict[str, str] | None = None, data: bytes | None = None,
          method: str | None = None) -> tuple[int, dict[str, str], bytes, str]:
    """(status, headers, raw body, final URL) of *url* through the proxy, trusting only the proxy's CA.

    An HTTP error status is returned like any other (its response closed).
    """
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"https": f"http://127.0.0.1:{running.port}"}),
        urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=proxy_ca(running))))
    request = urllib.request.Request(url, data=data, headers=headers or {},
                                     method=method or ("POST" if data is not None else "GET"))
    try:
        with opener.open(request, timeout=60) as resp:
            return resp.status, dict(resp.headers.items()), resp.read(), resp.url
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read(), url


def test_files_gzip_and_redirects_replay_byte_for_byte_with_upstream_gone(tmp_path: Path) -> None:
    dest = tmp_path / "recorded"
    with upstream(tmp_path / "up") as up:
        url = put_file(up, "model.bin", MODEL)
        put_file(up, "corpus.txt", TEXT)
        gz = f"{up.url}/gzip/corpus.txt"
        with recording_proxy(dest, (up.ca_file,)) as running:
            recorded = [fetch(running, url), fetch(running, gz, {"Accept-Encoding": "gzip"}),
                        fetch(running, f"{up.url}/redirect/model.bin")]
            assert running.seen == 4  # the redirect is two requests
        seen_upstream = list(up.requests)
    assert seen_upstream == ["GET /files/model.bin", "GET /gzip/corpus.txt", "GET /redirect/model.bin",
                             "GET /files/model.bin"]
    assert [r[0] for r in recorded] == [200, 200, 200] and recorded[0][2] == recorded[2][2] == MODEL
    assert recorded[1][1]["Content-Encoding"] == "gzip" and gzip.decompress(recorded[1][2]) == TEXT
    # the recording keeps the body as it came over the wire: compressed
    (gz_exchange,) = [e for e in recording.read(dest) if e.url == gz]
    assert gz_exchange.body_sha256 == hashlib.sha256(recorded[1][2]).hexdigest()
    assert (dest / "bodies" / gz_exchange.body_sha256).read_bytes() == recorded[1][2]

    with replay_proxy((dest,)) as running:  # the stand-in is stopped: only the recording can answer
        replayed = [fetch(running, url), fetch(running, gz, {"Accept-Encoding": "gzip"}),
                    fetch(running, f"{up.url}/redirect/model.bin")]
        miss = fetch(running, f"{up.url}/files/never-fetched.bin?token=s3cr3t")
        assert running.seen == 5
        assert running.misses == [f"GET {up.url}/files/never-fetched.bin?token=***"]
    assert [(status, body, final) for status, _, body, final in replayed] == \
           [(status, body, final) for status, _, body, final in recorded]
    assert replayed[2][3] == url  # the 302 was replayed and followed, to the recorded file
    assert replayed[1][1]["Content-Encoding"] == "gzip" and replayed[1][1]["Content-Length"] == str(len(recorded[1][2]))
    assert (miss[0], miss[1]["X-Offline-Build"]) == (502, "not recorded") and b"was not recorded at export" in miss[2]
    assert b"s3cr3t" not in miss[2]
    assert up.requests == seen_upstream  # nothing new reached upstream


def test_a_request_body_is_part_of_what_must_match(tmp_path: Path) -> None:
    """Git POSTs what it wants: the same URL with another body is another request (and git gzips its bodies)."""
    dest = tmp_path / "recorded"
    with upstream(tmp_path / "up") as up:
        url = f"{up.url}/files/wants"
        with recording_proxy(dest, (up.ca_file,)) as running:
            status, _, body, _ = fetch(running, url, data=b"want aaaa\n")
        assert up.requests == ["POST /files/wants"]
    assert (status, body) == (404, b"not found\n")  # the stand-in refuses POST to files: still an answer to record
    (posted,) = recording.read(dest)
    assert (posted.method, posted.request_sha256) == ("POST", hashlib.sha256(b"want aaaa\n").hexdigest())
    with replay_proxy((dest,)) as running:
        same = fetch(running, url, data=b"want aaaa\n")
        zipped = fetch(running, url, {"Content-Encoding": "gzip"}, gzip.compress(b"want aaaa\n"))
        other = fetch(running, url, data=b"want bbbb\n")
        assert running.misses == [f"POST {url}"]
    assert (same[0], same[2]) == (zipped[0], zipped[2]) == (404, b"not found\n")
    assert other[0] == 502


def test_a_range_request_replays_its_own_answer(tmp_path: Path) -> None:
    """A client that reads part of a file first asks the same URL twice: two answers, by Range."""
    dest = tmp_path / "recorded"
    with upstream(tmp_path / "up") as up:
        url = put_file(up, "model.bin", MODEL)
        with recording_proxy(dest, (up.ca_file,)) as running:
            part, whole = fetch(running, url, {"Range": "bytes=0-9"}), fetch(running, url)
    assert (part[0], part[2], whole[0], whole[2]) == (206, MODEL[:10], 200, MODEL)
    with replay_proxy((dest,)) as running:
        assert fetch(running, url)[2] == MODEL
        replayed = fetch(running, url, {"Range": "bytes=0-9"})
        assert (replayed[0], replayed[2], replayed[1]["Content-Range"]) == (206, MODEL[:10], f"bytes 0-9/{len(MODEL)}")
        assert fetch(running, url, {"Range": "bytes=5-9"})[0] == 502  # a range never asked online
        assert running.misses == [f"GET {url}"]


def test_a_head_request_replays_the_recorded_content_length(tmp_path: Path) -> None:
    """A HEAD answer has no body: its Content-Length is the file's, and clients that HEAD a file for its size
    first (hf_hub_download, curl -I) must see the length they saw online."""
    dest = tmp_path / "recorded"
    with upstream(tmp_path / "up") as up:
        url = put_file(up, "model.bin", MODEL)
        with recording_proxy(dest, (up.ca_file,)) as running:
            online = fetch(running, url, method="HEAD")
    assert (online[0], online[1]["Content-Length"], online[2]) == (200, str(len(MODEL)), b"")
    with replay_proxy((dest,)) as running:
        offline = fetch(running, url, method="HEAD")
    assert (offline[0], offline[1]["Content-Length"], offline[2]) == (200, str(len(MODEL)), b"")


def test_the_replay_proxy_never_connects_upstream() -> None:
    """Its requests all get an answer from the recording, but a CONNECT whose bytes are neither TLS nor HTTP is a
    raw TCP tunnel, which mitmproxy opens upstream unless told not to: the tunnel is closed, nothing connects."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        host, port = listening.getsockname()[:2]
        with replay_proxy(()) as running, socket.create_connection(("127.0.0.1", running.port), timeout=30) as client:
            client.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            assert client.recv(1024).startswith(b"HTTP/1.1 200")
            client.sendall(b"\x00raw bytes, neither a TLS hello nor HTTP\r\n")
            ready, _, _ = select.select([client, listening], [], [], 30)
            assert ready == [client] and client.recv(1024) == b""  # closed, not tunnelled
        assert select.select([listening], [], [], 0)[0] == []  # no connection waits to be accepted


def test_the_recording_proxy_asks_upstream_for_the_whole_not_a_304() -> None:
    """A client with a cache of its own asks conditionally; recorded, the 304 would replay to a step with no cache."""
    from mitmproxy.test import tflow

    flow = tflow.tflow()
    flow.request.headers.update({"If-None-Match": '"v1"', "If-Modified-Since": "Wed, 02 Dec 2026 10:00:00 GMT",
                                 "Accept": "*/*"})
    _Recorder(Running(0, ())).request(flow)  # the request hook: mitmproxy sends upstream what it leaves
    assert "if-none-match" not in flow.request.headers and "if-modified-since" not in flow.request.headers
    assert flow.request.headers["accept"] == "*/*"


def test_a_recording_keeps_the_response_headers_but_set_cookie(tmp_path: Path) -> None:
    from mitmproxy.test import tflow

    flow = tflow.tflow(resp=True)
    for name, value in (("Set-Cookie", "session=s3cret; HttpOnly"), ("set-cookie", "csrf=t0ken"), ("ETag", '"v1"')):
        flow.response.headers.add(name, value)
    running = Running(0, ())
    _Recorder(running).response(flow)
    recording.write(tmp_path / "recorded", running.exchanges)
    (stored,) = recording.read(tmp_path / "recorded")
    assert ("ETag", '"v1"') in stored.headers and ("header-response", "svalue") in stored.headers
    assert not [k for k, _ in stored.headers if k.lower() == "set-cookie"]
    assert not [p for p in (tmp_path / "recorded").rglob("*")
                if p.is_file() and (b"s3cret" in p.read_bytes() or b"t0ken" in p.read_bytes())]


def git_env(running: Running, home: Path) -> dict[str, str]:
    """Built from nothing: this machine's GIT_SSL_CAINFO, SSL_CERT_FILE and proxies must not leak in."""
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LANG": "C",
            "HTTPS_PROXY": f"http://127.0.0.1:{running.port}", "GIT_SSL_CAINFO": proxy_ca(running),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}


def clone(running: Running, url: str, into: Path, home: Path) -> None:
    proc = subprocess.run(["git", "clone", "-q", url, str(into)], capture_output=True, text=True, check=False,
                          timeout=120, env=git_env(running, home))
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_git_clone_replays_with_upstream_gone(tmp_path: Path) -> None:
    dest, home = tmp_path / "recorded", tmp_path / "home"
    home.mkdir()
    with upstream(tmp_path / "up") as up:
        url = make_repo(up, "companion", {"README": "companion repository\n", "src/main.py": "print(1)\n"})
        with recording_proxy(dest, (up.ca_file,)) as running:
            clone(running, url, tmp_path / "online", home)
        seen_upstream = list(up.requests)
    assert seen_upstream[0] == "GET /git/companion.git/info/refs?service=git-upload-pack"
    assert "POST /git/companion.git/git-upload-pack" in seen_upstream
    with replay_proxy((dest,)) as running:
        clone(running, url, tmp_path / "offline", home)
        assert running.misses == [] and running.seen == len(seen_upstream)
    for name in ("README", "src/main.py"):
        assert (tmp_path / "offline" / name).read_text() == (tmp_path / "online" / name).read_text()
    assert (tmp_path / "offline" / "README").read_text() == "companion repository\n"
    assert up.requests == seen_upstream


def test_a_recording_whose_build_failed_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "recorded"
    with upstream(tmp_path / "up") as up:
        url = put_file(up, "model.bin", MODEL)
        with pytest.raises(RuntimeError, match="the build failed"):
            with recording_proxy(dest, (up.ca_file,)) as running:
                assert fetch(running, url)[2] == MODEL
                raise RuntimeError("the build failed")
    assert up.requests == ["GET /files/model.bin"]  # it did go through the proxy
    assert not dest.exists()


def test_a_recording_with_no_request_is_an_empty_recording(tmp_path: Path) -> None:
    dest = tmp_path / "recorded"
    with recording_proxy(dest) as running:
        assert running.port > 0 and running.seen == 0
    assert recording.read(dest) == [] and recording.body_files(dest) == []


def test_the_secrets_name_the_env_file_and_the_ca(tmp_path: Path) -> None:
    with replay_proxy(()) as running:
        env_secret, ca_secret = running.secrets
        assert env_secret.startswith("id=offline-build-proxy,src=")
        env_file = Path(env_secret.split("src=", 1)[1])
        assert env_file.read_text() == env_text(running.port)
        assert "BEGIN CERTIFICATE" in Path(proxy_ca(running)).read_text()
        assert "PRIVATE KEY" not in Path(proxy_ca(running)).read_text()  # a step gets the certificate only
    assert not env_file.exists()  # the scratch folder goes with the proxy


def test_env_text_points_every_client_at_the_proxy_and_its_ca() -> None:
    words = env_text(41234).split()
    assert words[0] == "export"
    assert "HTTPS_PROXY=http://127.0.0.1:41234" in words and "https_proxy=http://127.0.0.1:41234" in words
    assert "HTTP_PROXY=http://127.0.0.1:41234" in words
    assert "NO_PROXY=" in words and "no_proxy=" in words
    assert CA_PATH == "/run/secrets/offline-build-proxy-ca"
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT",
                 "NODE_EXTRA_CA_CERTS"):
        assert name in CA_VARIABLES and f"{name}={CA_PATH}" in words
    assert env_text(41234).endswith("\n") and env_text(41234).count("\n") == 1


def test_the_proxy_s_port_is_closed_when_the_with_ends() -> None:
    """master.shutdown() ends mitmproxy's run(), not its listening socket: _main closes that itself."""
    with replay_proxy(()) as running:
        port = running.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_without_mitmproxy_the_proxy_says_so_with_the_fix_before_any_thread(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    """Python 3.10 and 3.11 install offline-build without mitmproxy: one message, not an ImportError's traceback."""
    from offline_build.errors import OfflineBuildError
    from offline_build.runners import proxy

    real = proxy.importlib.util.find_spec
    monkeypatch.setattr(proxy.importlib.util, "find_spec", lambda name: None if name == "mitmproxy" else real(name))
    with pytest.raises(OfflineBuildError) as caught, replay_proxy(()):
        pass
    assert "needs mitmproxy, which is not installed here (it needs Python 3.12 or newer)" in caught.value.message
    assert "captures: {replay: false}" in (caught.value.hint or "")


def test_a_proxy_that_cannot_listen_is_one_message(tmp_path: Path) -> None:
    """Its port taken: mitmproxy stops before it listens, and the error says so, whatever the thread's timing."""
    from offline_build.errors import OfflineBuildError
    from offline_build.runners import proxy

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        for _ in range(3):  # the start and the failure race in mitmproxy's thread: the message must not
            with pytest.raises(OfflineBuildError) as caught, \
                    proxy._serving(tmp_path, object(), Running(0, ()), listen_port=taken.getsockname()[1]):
                pass
            assert caught.value.message.startswith("the replay capture's proxy did not start on 127.0.0.1: ")

"""A stand-in for "the internet" that tests run on loopback.

Integration tests build images whose steps fetch things (curl, git, urllib,
poetry) through the recording proxy. Those fetches need a real HTTPS origin
that the test controls and can count, without reaching any real host: this
module serves one on 127.0.0.1 with a CA made on the spot, so clients must
be told to trust ``ca.pem`` exactly as they would trust a corporate CA.

Routes (everything else is 404)::

    GET /files/<name>     root/files/<name>; Range: bytes=a-b gives 206
    GET /redirect/<name>  302 to /files/<name>
    GET /chunked/<name>   the file, Transfer-Encoding: chunked
    GET /gzip/<name>      the file, Content-Encoding: gzip
    /git/<repo>.git/...   git smart HTTP (v0 and v2) via git http-backend
"""

from __future__ import annotations

import datetime
import functools
import gzip
import ipaddress
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"  # never anything else: the stand-in must not be reachable off the machine
# git run by this module reads no user or system config (an insteadOf or a proxy there would change what it does)
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}


@dataclass
class Upstream:
    """A running stand-in: where it is, what to trust, and every request it has seen."""

    url: str  # https://127.0.0.1:PORT, no trailing slash
    ca_file: Path  # the CA certificate (only) that signed the server's: what clients must trust
    root: Path  # files/ and git/ under it are what is served
    # "METHOD /path?query", in arrival order: tests assert what did (or did not) reach upstream
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def record(self, line: str) -> None:
        """Handler threads call this concurrently."""
        with self._lock:
            self.requests.append(line)


def put_file(up: Upstream, name: str, data: bytes) -> str:
    """Serve *data* as ``/files/<name>``; returns its URL."""
    path = up.root / "files" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"{up.url}/files/{name}"


def make_repo(up: Upstream, name: str, files: dict[str, str]) -> str:
    """A bare repository ``git/<name>.git`` whose branch main has one commit holding *files*; returns its clone URL."""
    bare = up.root / "git" / f"{name}.git"
    _git("init", "-q", "--bare", "-b", "main", str(bare))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _git("init", "-q", "-b", "main", str(work))
        for rel, text in files.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(text)
        _git("-C", tmp, "add", "-A")
        _git("-C", tmp, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", name)
        _git("-C", tmp, "push", "-q", str(bare), "main")
    return f"{up.url}/git/{name}.git"


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True, check=False, env={**os.environ, **GIT_ENV})
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


@contextmanager
def upstream(root: Path) -> Iterator[Upstream]:
    """Serve *root* over HTTPS on 127.0.0.1 (an ephemeral port) until the block ends.

    A fresh CA per call, so nothing trusts the server unless given ``root/ca.pem``.
    """
    root.mkdir(parents=True, exist_ok=True)
    ca_file = root / "ca.pem"
    context = _tls_context(ca_file)
    server = _Server((HOST, 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.upstream = Upstream(f"https://{HOST}:{server.server_address[1]}", ca_file, root)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="upstream", daemon=True)  # prompt shutdown()
    thread.start()
    try:
        yield server.upstream
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def _tls_context(ca_file: Path) -> ssl.SSLContext:
    """Make the CA and the server's certificate; write the CA's to *ca_file*; a server context holding the other."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "offline-build test upstream CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (_builder(ca_name, ca_name, ca_key.public_key(), now)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_key_usage(cert_sign=True), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    sans = [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
    cert = (_builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain reads files only; the key lives on disk briefly
        pem = Path(tmp) / "server.pem"
        pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        context.load_cert_chain(pem)
    return context


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             now: datetime.datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1)))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)


class _Server(ThreadingHTTPServer):
    upstream: Upstream

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that refuses our certificate, or hangs up, is routine here (tests do it on purpose)."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


@functools.cache
def _http_backend() -> str:
    return str(Path(_git("--exec-path").strip()) / "git-http-backend")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses, as real servers do
    timeout = 30  # a client that goes quiet frees its thread
    server: _Server

    def setup(self) -> None:
        """The TLS handshake runs here, in the connection's thread, so a stalled client cannot stop accept()."""
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_GET

    def _dispatch(self) -> None:
        self.server.upstream.record(f"{self.command} {self.path}")
        body = self._read_body()
        parts = urlsplit(self.path)
        route, _, rest = parts.path.lstrip("/").partition("/")
        if route == "git":
            self._git(rest, parts.query, body)
            return
        data = self._file(unquote(rest)) if self.command != "POST" else None
        if route == "redirect" and self.command != "POST":
            self._send(302, b"", {"Location": f"/files/{rest}"})
        elif data is None:
            self._send(404, b"not found\n")
        elif route == "files":
            self._ranged(data)
        elif route == "chunked":
            self._chunked(data)
        elif route == "gzip":
            self._send(200, gzip.compress(data, mtime=0), {"Content-Encoding": "gzip"})
        else:
            self._send(404, b"not found\n")

    def _read_body(self) -> bytes:
        """The request's body, whole, whether sent with Content-Length or chunked (git chunks large POSTs)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _file(self, name: str) -> bytes | None:
        files = (self.server.upstream.root / "files").resolve()
        path = (files / name).resolve()
        return path.read_bytes() if name and path.is_relative_to(files) and path.is_file() else None

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _ranged(self, data: bytes) -> None:
        """Whole, or one ``bytes=a-b`` range (206); anything else in Range is ignored, which RFC 9110 allows."""
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if not match or match.groups() == ("", ""):
            self._send(200, data, {"Accept-Ranges": "bytes"})
            return
        first, last = match.groups()
        start = int(first) if first else max(len(data) - int(last), 0)
        end = min(int(last), len(data) - 1) if first and last else len(data) - 1
        if start >= len(data) or start > end:
            self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            return
        self._send(206, data[start:end + 1], {"Content-Range": f"bytes {start}-{end}/{len(data)}"})

    def _chunked(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        step = max(1, -(-len(data) // 3))
        for i in range(0, len(data), step):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data[i:i + step]), data[i:i + step]))
        self.wfile.write(b"0\r\n\r\n")

    def _git(self, rest: str, query: str, body: bytes) -> None:
        """Run git http-backend as a CGI. It inflates gzip bodies itself when told the encoding."""
        env = {"PATH": os.environ.get("PATH", os.defpath), **GIT_ENV,
               "GIT_PROJECT_ROOT": str(self.server.upstream.root / "git"), "GIT_HTTP_EXPORT_ALL": "1",
               "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
               "REQUEST_METHOD": self.command, "PATH_INFO": "/" + unquote(rest), "QUERY_STRING": query,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_ADDR": self.client_address[0]}
        for header in ("Git-Protocol", "Content-Encoding"):  # protocol v2; gzip-encoded request bodies
            if value := self.headers.get(header):
                env["HTTP_" + header.upper().replace("-", "_")] = value
        proc = subprocess.run([_http_backend()], input=body, env=env, capture_output=True, check=False, timeout=120)
        end = re.search(rb"\r?\n\r?\n", proc.stdout)  # the CGI's headers end at the first blank line
        if not end:
            self._send(500, proc.stderr or b"git http-backend wrote no headers\n")
            return
        status, headers = 200, {}
        for line in proc.stdout[:end.start()].decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key.lower() not in ("content-length", "transfer-encoding"):
                headers[key] = value.strip()
        self._send(status, proc.stdout[end.end():], headers)

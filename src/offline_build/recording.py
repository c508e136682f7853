"""The replay capture's recordings: the HTTP(S) exchanges a service's fetching steps made online.

One folder per service (``captures/replay/<service>/``, ``files/replay/<service>/`` in a bundle)::

    exchanges.json       {"version": 1, "exchanges": [{method, url, request_sha256, status, reason,
                                                       headers, body_sha256}, ...]}
    bodies/<sha256>      each response body, as it came over the wire (still compressed if it was)

Bodies are content-addressed, as every other blob: a file fetched by two
steps is kept once, and the bundle's manifest and signature cover each one.
Pure: no proxy, no engine (``runners/proxy.py`` records and serves).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import OfflineBuildError

VERSION = 1
EXCHANGES = "exchanges.json"
BODIES = "bodies"
# Query parameters whose values are secrets: shown as "***" in reports and the SBOM.
_DIGEST = re.compile(r"(?:[0-9a-f]{64})?")
_SECRET_QUERY = ("token", "key", "secret", "signature", "sig", "password", "auth", "credential")


@dataclass(frozen=True)
class Exchange:
    """One request and the response it got, as replayed: the body by its sha256."""

    method: str
    url: str
    request_sha256: str  # of the request body ("" when it had none): a git fetch POSTs what it wants
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body_sha256: str
    request_range: str = ""  # the request's Range header: a client that reads part of a file first (poetry
    # reads a wheel's metadata so) asks the same URL twice, for two answers

    @property
    def key(self) -> Key:
        return request_key(self.method, self.url, self.request_sha256, self.request_range)


Key = tuple[str, str, str, str]


def request_key(method: str, url: str, request_sha256: str, request_range: str = "") -> Key:
    """What a replayed request must equal: method, URL (query included), the request body's digest and its
    Range header."""
    return method.upper(), url, request_sha256, request_range.strip()


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest() if body else ""


def shown_url(url: str) -> str:
    """*url* as a report shows it: no user or password, secret query values as ``***``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    query = urlencode([(k, "***" if any(s in k.lower() for s in _SECRET_QUERY) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*/:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def write(folder: Path, exchanges: Iterable[tuple[Exchange, bytes]]) -> int:
    """Write a recording into *folder* (which must not exist yet); returns the number of exchanges.

    A URL fetched twice with the same request keeps its first answer: the
    replay serves one answer per request.
    """
    bodies = folder / BODIES
    bodies.mkdir(parents=True)
    kept: dict[Key, Exchange] = {}
    for exchange, body in exchanges:
        if exchange.key in kept:
            continue
        kept[exchange.key] = exchange
        if exchange.body_sha256 and not (bodies / exchange.body_sha256).exists():
            (bodies / exchange.body_sha256).write_bytes(body)
    data = {"version": VERSION, "exchanges": [asdict(e) for e in kept.values()]}
    (folder / EXCHANGES).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return len(kept)


def read(folder: Path) -> list[Exchange]:
    """The exchanges recorded in *folder*; a missing or damaged recording is one clear error."""
    path = folder / EXCHANGES
    try:
        return parse(json.loads(path.read_text(encoding="utf-8")), path)
    except (OSError, ValueError) as exc:
        raise OfflineBuildError(f"cannot read the replay recording {path}: {exc}",
                                "run offline.setup again with the bundle (or export again online)") from None


def parse(data: object, path: Path) -> list[Exchange]:
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("exchanges"), list):
        raise ValueError(f"not a version {VERSION} recording")
    out = []
    for item in data["exchanges"]:
        try:
            exchange = Exchange(**{**item, "headers": tuple((str(k), str(v)) for k, v in item["headers"])})
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"a damaged exchange in {path.name}: {exc}") from None
        # The body's name is a path under bodies/: nothing but a digest may name one.
        if not _DIGEST.fullmatch(exchange.body_sha256) or type(exchange.status) is not int:
            raise ValueError(f"a damaged exchange in {path.name}: {exchange.method} {shown_url(exchange.url)}")
        out.append(exchange)
    return out


def downloaded(exchange: Exchange) -> bool:
    """Is this exchange a file as a client downloads it: a whole GET body, not compressed for the wire, and not
    a git smart-HTTP exchange (the SBOM lists these)?"""
    encoded = any(k.lower() == "content-encoding" for k, _ in exchange.headers)
    path = urlsplit(exchange.url).path
    git = path.endswith(("/info/refs", "/git-upload-pack", "/git-receive-pack"))
    return exchange.method == "GET" and exchange.status == 200 and bool(exchange.body_sha256) and not encoded \
        and not git


def read_all(folders: Iterable[Path]) -> dict[Key, tuple[Exchange, Path]]:
    """Every exchange of *folders*, by request key, with the file holding its body."""
    found: dict[Key, tuple[Exchange, Path]] = {}
    for folder in folders:
        for exchange in read(folder):
            found.setdefault(exchange.key, (exchange, folder / BODIES / exchange.body_sha256))
    return found


def recorded(folder: Path) -> bool:
    return (folder / EXCHANGES).is_file()


def body_files(folder: Path) -> list[str]:
    """The bodies' paths relative to *folder*."""
    bodies = folder / BODIES
    return sorted(f"{BODIES}/{name}" for name in os.listdir(bodies)) if bodies.is_dir() else []

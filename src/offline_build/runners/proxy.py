"""The replay capture's HTTP(S) proxies: one records a build's fetches online, the other replays them offline.

Both are mitmproxy, used as a library, in a thread of this process with its
own event loop, listening on 127.0.0.1 of the network namespace the tool
runs in: at the site that must be the engine's (the README says so). Each
run makes a fresh CA in a scratch folder; build steps get the proxy's
address and that CA through two build secrets, never through a layer:

- ``offline-build-proxy``: a shell file the served step sources, setting the
  proxy variables and every usual CA variable to the CA's path;
- ``offline-build-proxy-ca``: the CA certificate.

Recording forwards upstream (trusting the machine's CAs and the project's
``ca_file``) and keeps each exchange; the recording is written whole, only
when the build succeeded. Replaying never connects anywhere: a request
that was not recorded gets a 502 and is counted in :attr:`Running.misses`,
which the build's error names.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import shutil
import ssl
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import recording
from ..errors import OfflineBuildError

ENV_SECRET = "offline-build-proxy"
CA_SECRET = "offline-build-proxy-ca"
CA_PATH = f"/run/secrets/{CA_SECRET}"
ENV_PATH = f"/run/secrets/{ENV_SECRET}"
# Where the usual clients look for a CA (curl, git, Python's ssl and requests, pip, Node.js).
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT",
                "NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE")
MISS_STATUS = 502
MISS_HEADER = "X-Offline-Build"


@dataclass
class Running:
    """A proxy that is up: the build secrets that reach it, and what it could not serve."""

    port: int
    secrets: tuple[str, ...]
    misses: list[str] = field(default_factory=list)  # "GET https://..." (credentials hidden)
    seen: int = 0  # requests that reached it: none, when a step failed to connect, means it is out of reach
    exchanges: list[tuple[recording.Exchange, bytes]] = field(default_factory=list)


def env_text(port: int) -> str:
    """The file a served step sources: the proxy for every client, the CA for every TLS library."""
    url = f"http://127.0.0.1:{port}"
    proxies = " ".join(f"{name}={url}" for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"))
    cas = " ".join(f"{name}={CA_PATH}" for name in CA_VARIABLES)
    return f"export {proxies} NO_PROXY= no_proxy= {cas}\n"


@contextmanager
def recording_proxy(dest: Path, trust: tuple[Path, ...] = ()) -> Iterator[Running]:
    """Record what passes through into *dest* (written only if the body of the ``with`` succeeds).

    *trust*: extra CA files for upstream servers (the project's ``ca_file``).
    """
    with _scratch() as scratch:
        upstream = _trust_bundle(scratch / "upstream-ca.pem", trust)
        running = Running(0, ())
        addon = _Recorder(running)
        with _serving(scratch, addon, running, ssl_verify_upstream_trusted_ca=str(upstream)):
            yield running
        shutil.rmtree(dest, ignore_errors=True)
        recording.write(dest, running.exchanges)


@contextmanager
def replay_proxy(folders: tuple[Path, ...]) -> Iterator[Running]:
    """Serve what *folders* recorded, and nothing else: no request ever leaves this process."""
    exchanges = recording.read_all(f for f in folders if recording.recorded(f))
    with _scratch() as scratch:
        running = Running(0, ())
        # upstream_cert off and a lazy strategy: mitmproxy signs for the name asked and
        # connects nowhere before a response is needed, which the addon always gives.
        with _serving(scratch, _Replayer(running, exchanges), running,
                      upstream_cert=False, connection_strategy="lazy"):
            yield running


@contextmanager
def _scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="offline-build-proxy-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _trust_bundle(path: Path, extra: tuple[Path, ...]) -> Path:
    """The machine's CAs (else certifi's) and *extra*, in one file: mitmproxy takes a single one."""
    machine = ssl.get_default_verify_paths()
    sources = [Path(p) for p in (machine.cafile, machine.openssl_cafile) if p and Path(p).is_file()][:1]
    if not sources:
        import certifi  # mitmproxy depends on it

        sources = [Path(certifi.where())]
    path.write_bytes(b"\n".join(p.read_bytes() for p in (*sources, *extra)))
    return path


class _Recorder:
    def __init__(self, running: Running) -> None:
        self.state = running

    def request(self, flow: Any) -> None:
        self.state.seen += 1
        # A client with a cache of its own asks conditionally, and a 304 replays to nobody: ask for the whole.
        # Its "Connection: close" is not passed on either: upstream closing while the client does is a race
        # in mitmproxy 12.3 that leaves the upstream socket unclosed (ResourceWarnings, seen in the tests).
        for name in ("if-none-match", "if-modified-since", "connection"):
            flow.request.headers.pop(name, None)

    def response(self, flow: Any) -> None:
        body = flow.response.raw_content or b""
        headers = tuple((k, v) for k, v in flow.response.headers.items(multi=True)
                        if k.lower() not in ("transfer-encoding", "connection", "keep-alive", "set-cookie"))
        self.state.exchanges.append((recording.Exchange(
            flow.request.method, flow.request.pretty_url, recording.body_digest(_request_body(flow)),
            flow.response.status_code, flow.response.reason, headers, recording.body_digest(body),
            flow.request.headers.get("range", "")), body))


class _Replayer:
    def __init__(self, running: Running, exchanges: dict[recording.Key, tuple[recording.Exchange, Path]]):
        self.state = running
        self.exchanges = exchanges

    def request(self, flow: Any) -> None:
        from mitmproxy import http

        self.state.seen += 1
        key = recording.request_key(flow.request.method, flow.request.pretty_url,
                                    recording.body_digest(_request_body(flow)), flow.request.headers.get("range", ""))
        found = self.exchanges.get(key)
        if found is None:
            shown = f"{flow.request.method} {recording.shown_url(flow.request.pretty_url)}"
            self.state.misses.append(shown)
            flow.response = http.Response.make(MISS_STATUS, f"offline-build: {shown} was not recorded at export\n",
                                               {MISS_HEADER: "not recorded", "Content-Type": "text/plain"})
            return
        exchange, body = found
        content = body.read_bytes() if exchange.body_sha256 else b""
        response = http.Response.make(exchange.status)
        response.reason = exchange.reason
        response.raw_content = content  # as recorded: still compressed when it came compressed
        # The recorded headers as they were (make() and raw_content would set a Content-Length of their own:
        # a HEAD's is the file's, not its empty body's); a body that came chunked gets its length.
        response.headers = http.Headers([(k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
                                         for k, v in exchange.headers])
        if "content-length" not in response.headers and flow.request.method != "HEAD":
            response.headers["content-length"] = str(len(content))
        flow.response = response

    def server_connect(self, data: Any) -> None:
        data.server.error = "offline-build's replay proxy never connects upstream"


def _request_body(flow: Any) -> bytes:
    """The request body decoded (git gzips its requests): the same request matches however it was sent."""
    return flow.request.get_content(strict=False) or b""


_STARTUP_ERRORS: list[str] = []  # what mitmproxy logged as an error while starting (it exits on one)


class _Errors(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            _STARTUP_ERRORS.append(record.getMessage())


class _Ready:
    """The addon that says when the proxy listens (mitmproxy's ``running`` hook, called in its loop)."""

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    def running(self) -> None:
        self.event.set()


@contextmanager
def _serving(scratch: Path, addon: Any, running: Running, **options: Any) -> Iterator[None]:
    """Run mitmproxy with *addon* in a thread until the ``with`` ends; fill in *running*'s port and secrets."""
    _require_mitmproxy()
    master_box: dict[str, Any] = {}
    ready = threading.Event()
    thread = threading.Thread(target=_run, args=(scratch, addon, options, master_box, ready), daemon=True,
                              name="offline-build-proxy")
    thread.start()
    ready.wait()
    try:
        if "port" not in master_box:
            error = master_box.get("error") or "it stopped before it listened"
            if isinstance(error, OfflineBuildError):
                raise error
            raise OfflineBuildError(f"the replay capture's proxy did not start on 127.0.0.1: {error}",
                                    "run again; if it persists, switch the replay capture off (captures: "
                                    "{replay: false}) and report it")
        running.port = master_box["port"]
        running.secrets = _secrets(scratch, running.port)
        yield
    finally:
        loop, master = master_box.get("loop"), master_box.get("master")
        if loop is not None and master is not None and thread.is_alive():
            try:
                loop.call_soon_threadsafe(master.shutdown)
            except RuntimeError:  # its loop closed in between: it has stopped already
                pass
        thread.join()
        _release(master_box)


def _release(box: dict[str, Any]) -> None:
    """Drop the stopped proxy and collect it now, quietly.

    mitmproxy's module-level ``ctx`` keeps the last master, and with it whatever it still holds, until the
    next proxy starts; anything left is collected here, at a moment of the tool's choosing.
    """
    box.clear()
    ctx = sys.modules.get("mitmproxy.ctx")
    for name in ("master", "options", "log") if ctx else ():
        if hasattr(ctx, name):
            delattr(ctx, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _secrets(scratch: Path, port: int) -> tuple[str, ...]:
    env = scratch / "proxy.env"
    env.write_text(env_text(port), encoding="utf-8")
    return (f"id={ENV_SECRET},src={env}", f"id={CA_SECRET},src={scratch / 'conf' / 'mitmproxy-ca-cert.pem'}")


def _run(scratch: Path, addon: Any, options: dict[str, Any], box: dict[str, Any], ready: threading.Event) -> None:
    try:
        asyncio.run(_main(scratch, addon, options, box, ready))
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported by _serving, in the caller's thread
        box.setdefault("error", exc if isinstance(exc, OfflineBuildError) else str(exc) or type(exc).__name__)
    finally:
        ready.set()


async def _main(scratch: Path, addon: Any, options: dict[str, Any], box: dict[str, Any], ready: threading.Event) -> None:
    _STARTUP_ERRORS.clear()
    errors = _Errors()
    logging.getLogger("mitmproxy").addHandler(errors)
    try:
        await _serve_until_shutdown(scratch, addon, options, box, ready)
    finally:
        logging.getLogger("mitmproxy").removeHandler(errors)


async def _serve_until_shutdown(scratch: Path, addon: Any, options: dict[str, Any], box: dict[str, Any],
                                ready: threading.Event) -> None:
    master = _master(scratch, options)
    # mitmproxy's errorcheck would sys.exit() this thread on a start-up error: the caller reports it instead.
    master.addons.remove(master.addons.get("errorcheck"))
    up = asyncio.Event()
    master.addons.add(addon, _Ready(up))
    box.update(loop=asyncio.get_running_loop(), master=master)
    task = asyncio.create_task(master.run())
    waiter = asyncio.create_task(up.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    addrs = master.addons.get("proxyserver").listen_addrs() if up.is_set() else []
    if addrs:
        box["port"] = addrs[0][1]
    else:  # it does not listen: say why before the caller is woken, and stop it
        waiter.cancel()
        failed = task.exception() if task.done() and not task.cancelled() else None
        said = str(failed or "") or "; ".join(e.splitlines()[0] for e in _STARTUP_ERRORS if e)
        box["error"] = said or "it listens nowhere"
        master.shutdown()
    ready.set()
    try:
        await task
    finally:
        await master.addons.get("proxyserver").servers.update([])  # shutdown() ends run(), not the listening socket
        master._legacy_log_events.uninstall()  # its root logging handler, should run() end before it does so


def _require_mitmproxy() -> None:
    """One message, before any thread starts, when the proxy cannot run here."""
    if importlib.util.find_spec("mitmproxy") is None:
        raise OfflineBuildError(
            "the replay capture needs mitmproxy, which is not installed here (it needs Python 3.12 or newer)",
            "install offline-build under Python 3.12+, or switch the replay capture off in offline.yaml "
            "(captures: {replay: false}; its steps then need the network)")


def _master(scratch: Path, options: dict[str, Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # mitmproxy's own imports
            from mitmproxy.options import Options
            from mitmproxy.tools.dump import DumpMaster
    except ImportError:
        raise OfflineBuildError(
            "the replay capture needs mitmproxy, which is not installed (it needs Python 3.12 or newer)",
            "install offline-build under Python 3.12+, or switch the replay capture off in offline.yaml "
            "(captures: {replay: false})") from None
    opts = Options(listen_host="127.0.0.1", listen_port=0, confdir=str(scratch / "conf"))
    master = DumpMaster(opts, with_termlog=False, with_dumper=False)
    opts.update(**options)  # the addons declare these options: known only now
    return master

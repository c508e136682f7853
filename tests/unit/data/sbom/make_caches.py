"""Make the npm, yarn and pnpm caches test_sbom.py reads, with the real tools against a registry on 127.0.0.1.

The SBOM reads these caches' own files (npm's cacache index, yarn's
.yarn-metadata.json, pnpm's store index), so the tests use what the tools
really write, not a copy of the format made by hand. The packages are two
tiny ones made here (one scoped, one with a prerelease version), served by
a throwaway registry on the loopback address, so nothing in the caches
comes from (or names) a public registry.

Run from the repository root when the formats need refreshing (needs node,
npm, and npx's yarn@1.22.19 and pnpm@9.15.9)::

    python tests/unit/data/sbom/make_caches.py

It replaces tests/unit/data/sbom/{npm,yarn,pnpm}/ and leaves the tools'
logs and temporary folders out, as a capture does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

HERE = Path(__file__).resolve().parent
PACKAGES = {"tiny-pad": "1.0.0", "@acme/ms-lite": "0.2.0-rc.1"}


def pack(name: str, version: str, work: Path) -> bytes:
    """A real tarball of a two-file package, made by ``npm pack``."""
    folder = work / "src" / name.replace("/", "__")
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"name": name, "version": version, "main": "index.js",
                                                     "license": "MIT"}))
    (folder / "index.js").write_text(f"module.exports = {json.dumps(name)};\n")
    out = subprocess.run(["npm", "pack", "--json", "--pack-destination", str(work)], cwd=folder, check=True,
                         capture_output=True, text=True).stdout
    return (work / str(json.loads(out)[0]["filename"])).read_bytes()


def registry(tarballs: dict[str, tuple[str, bytes]]) -> tuple[ThreadingHTTPServer, str]:
    """A registry serving each package's document and tarball, as npm's registry lays them out."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = unquote(self.path.split("?", 1)[0]).lstrip("/")
            body, kind = b"", "application/json"
            if "/-/" in path:
                name = path.split("/-/", 1)[0]
                if name in tarballs:
                    body, kind = tarballs[name][1], "application/octet-stream"
            elif path in tarballs:
                body = json.dumps(document(path, *tarballs[path], url)).encode()
            self.send_response(200 if body else 404)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, url


def document(name: str, version: str, tarball: bytes, url: str) -> dict[str, object]:
    base = name.rsplit("/", 1)[-1]
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    dist = {"tarball": f"{url}/{name}/-/{base}-{version}.tgz", "integrity": integrity,
            "shasum": hashlib.sha1(tarball).hexdigest()}
    return {"name": name, "dist-tags": {"latest": version},
            "versions": {version: {"name": name, "version": version, "dist": dist}}}


def tidy(folder: Path) -> None:
    """What a capture keeps: no logs, no temporary or empty folders."""
    for junk in ("_logs", "_update-notifier-last-checked", "_cacache/tmp", "v6/.tmp"):
        path = folder / junk
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(sub.iterdir()):
            sub.rmdir()


def without_paths(folder: Path, work: Path) -> None:
    """yarn records where it unpacked each package (``_loc``): a machine path, dropped."""
    for meta in folder.rglob(".yarn-metadata.json"):
        data = json.loads(meta.read_text())
        data["manifest"].pop("_loc", None)
        meta.write_text(json.dumps(data))
    for path in (p for p in folder.rglob("*") if p.is_file()):
        assert str(work).encode() not in path.read_bytes(), path


def run(cwd: Path, argv: list[str], **env: str) -> None:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false", **env}
    subprocess.run(argv, cwd=cwd, check=True, env=env, stdout=subprocess.DEVNULL)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tarballs = {name: (version, pack(name, version, work)) for name, version in PACKAGES.items()}
        server, url = registry(tarballs)
        out = work / "out"
        project = work / "project"
        project.mkdir()
        (project / "package.json").write_text(json.dumps({"name": "web", "version": "1.0.0",
                                                          "dependencies": PACKAGES}))
        (project / ".yarnrc").write_text(f'registry "{url}/"\n')  # yarn's own file: npx must still reach yarn
        run(project, ["npm", "install", "--ignore-scripts", "--no-audit", f"--registry={url}/",
                      "--cache", str(out / "npm" / "web-1")])
        run(project, ["npx", "--yes", "yarn@1.22.19", "install", "--ignore-scripts", "--no-lockfile",
                      "--cache-folder", str(out / "yarn" / "yarn-1"), "--modules-folder", str(work / "ym")])
        run(project, ["npx", "--yes", "pnpm@9.15.9", "install", "--ignore-scripts", "--no-lockfile",
                      f"--registry={url}/", "--modules-dir", str(work / "pm")],
            npm_config_store_dir=str(out / "pnpm" / "pnpm-1" / "store"),
            npm_config_cache_dir=str(out / "pnpm" / "pnpm-1" / "cache"))
        server.shutdown()
        for tool in ("npm", "yarn", "pnpm"):
            for key in (out / tool).iterdir():
                tidy(key)
            without_paths(out / tool, work)
            shutil.rmtree(HERE / tool, ignore_errors=True)
            shutil.copytree(out / tool, HERE / tool)


if __name__ == "__main__":
    main()

"""Replay capture: cost of recording. Export time and bundle bytes with the replay capture and without it.

The project is tests/integration/test_replay.py's ``app`` service (no poetry
service), written by its own ``write_project(..., network="host",
poetry=False)``: ``curl`` of a 2 MB incompressible model and of a redirect,
``git clone`` over smart HTTP, a gzip-encoded ``urlopen`` (listed under
``replay:``) and a chunked download, all after ``COPY . .``, from the test's
loopback HTTPS stand-in for the internet (tests/integration/upstream.py, run
in this process, as the test's ``internet`` fixture does).

Each run writes it twice into fresh folders: "with" (as written) and
"without" (the same, plus ``captures: {replay: false}`` in offline.yaml),
both ``network: host`` so that the plain build can reach the stand-in. Both
build ``FROM`` a base image that trusts the stand-in's CA (the plain build
has no other way to trust it: ``ca_file`` goes to capture builds only), so
the Dockerfiles are the same too. Each run edits ``main.txt`` (the same new
text on both sides), as a developer's change does: every step after
``COPY . .`` runs again, the fetches included; on an unchanged project the
warm engine would answer them all from its cache. Each side is exported
into a fresh cache folder on the harness's online engine, in-process; the
side that goes first alternates from run to run. The first pair runs after
``scripts/engines.sh reset online`` (cold, reported apart); medians of the
warm runs; ratio = with / without, from the same run.

    .venv/bin/python benchmarks/replay.py [--runs 3] [--out BENCHMARKS.md]

It writes its own section of BENCHMARKS.md (replacing the one of an earlier
run); bench.py keeps it when it rewrites the rest.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from pathlib import Path

from python_on_whales import DockerClient
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.deps import replace_section  # noqa: E402
from offline_build import export as exporting  # noqa: E402
from offline_build.config import load  # noqa: E402
from offline_build.steps import ClassicBuild, Pack  # noqa: E402
from tests.integration import upstream as upstream_mod  # noqa: E402
from tests.integration.test_replay import DATA, FONT, MODEL, write_project  # noqa: E402

HARNESS = ROOT / "scripts" / "engines.sh"
SECTION = "## Replay capture: cost of recording"
OFF = "captures: {replay: false}\n"
TRUSTING = "bench-replay-ca:bookworm"  # debian:bookworm-slim with the stand-in's CA trusted by curl, git, Python


def harness(*args: str) -> str:
    return subprocess.run([str(HARNESS), *args], check=True, capture_output=True, text=True).stdout


# --- what the stand-in served: response bodies as written (after gzip, before chunk framing) -----------

class Served:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0

    def add(self, size: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += size

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.requests, self.bytes


SERVED = Served()


def count_served() -> None:
    """Wrap the stand-in's two ways of answering so each response's body bytes are counted."""
    handler = upstream_mod._Handler
    send, chunked = handler._send, handler._chunked

    def _send(self, status, body, headers=None):  # type: ignore[no-untyped-def]
        SERVED.add(0 if self.command == "HEAD" else len(body))
        return send(self, status, body, headers)

    def _chunked(self, data):  # type: ignore[no-untyped-def]
        SERVED.add(0 if self.command == "HEAD" else len(data))
        return chunked(self, data)

    handler._send, handler._chunked = _send, _chunked


# --- the project ----------------------------------------------------------------------------------------

def trusting_base(online: DockerClient, ca: Path, work: Path) -> None:
    folder = work / "base-ca"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca, folder / "ca.crt")
    env = " ".join(f"{v}=/usr/local/share/bench-ca.crt" for v in
                   ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "REQUESTS_CA_BUNDLE"))
    (folder / "Dockerfile").write_text(
        f"FROM debian:bookworm-slim\nCOPY ca.crt /usr/local/share/bench-ca.crt\nENV {env}\n")
    online.buildx.build(folder, tags=[TRUSTING], network="none", load=True)


def write_side(folder: Path, up: upstream_mod.Upstream, edit: str, replay: bool) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    write_project(folder, up, network="host", poetry=False)
    dockerfile = folder / "app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("FROM debian:bookworm-slim", f"FROM {TRUSTING}"))
    (folder / "app" / "main.txt").write_text(edit)
    if not replay:
        config = folder / "offline.yaml"
        config.write_text(config.read_text() + OFF)
    return folder


def export(project_dir: Path, online: DockerClient) -> dict[str, float]:
    project = load(project_dir / "offline.yaml", environ={})
    shutil.rmtree(project.cache_dir, ignore_errors=True)
    requests, served = SERVED.snapshot()
    started = time.monotonic()
    summary = exporting.export(project, None, online, Console(quiet=True))
    seconds = time.monotonic() - started
    after_requests, after_served = SERVED.snapshot()
    pack = summary["result"].of(Pack)[0].detail
    replay_files, replay_bytes = pack["folders"].get("replay", (0, 0))
    bodies, exchanges, payload = 0, 0, 0
    with tarfile.open(pack["output"]) as tar:
        for member in tar.getmembers():
            payload += member.size
            if member.name.startswith("files/replay/") and "/bodies/" in member.name:
                bodies += member.size
            elif member.name.startswith("files/replay/") and member.name.endswith("/exchanges.json"):
                exchanges += len(json.loads(tar.extractfile(member).read())["exchanges"])  # type: ignore[union-attr]
    classic = len(summary["result"].of(ClassicBuild))
    return {"export": seconds, "bytes": pack["size"], "payload": payload, "replay": replay_bytes, "replay_bodies": bodies,
            "exchanges": exchanges, "upstream_requests": after_requests - requests,
            "upstream_bytes": after_served - served, "classic_builds": classic}


def one_pair(work: Path, online: DockerClient, up: upstream_mod.Upstream, with_first: bool,
             ) -> dict[str, dict[str, float]]:
    edit = f"edited {uuid.uuid4().hex}\n"  # the same change on both sides; new every run
    sides = {"with": write_side(work / "with", up, edit, replay=True),
             "without": write_side(work / "without", up, edit, replay=False)}
    order = ("with", "without") if with_first else ("without", "with")
    out = {side: export(sides[side], online) for side in order}
    if out["with"]["exchanges"] == 0:
        sys.exit("the with-replay export carried an empty recording: its numbers would measure nothing")
    return {"with": out["with"], "without": out["without"], "first": order[0]}  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    started = time.monotonic()
    hosts = dict(line.split("=", 1) for line in harness("hosts").splitlines() if "=" in line)
    if "online" not in hosts:
        sys.exit("the harness's online engine is not running: scripts/engines.sh up online")
    online = DockerClient(host=hosts["online"])
    work = Path(tempfile.mkdtemp(prefix="offline-build-bench-replay-"))
    count_served()
    with upstream_mod.upstream(work / "upstream") as up:  # as test_replay's `internet` fixture
        upstream_mod.put_file(up, "model.bin", MODEL)
        upstream_mod.put_file(up, "font.txt", FONT)
        upstream_mod.put_file(up, "data.txt", DATA)
        upstream_mod.put_file(up, "extra.bin", b"added later\n")
        upstream_mod.make_repo(up, "companion", {"README": "companion repository\n"})
        harness("reset", "online")
        harness("images", "online")  # the reset drops the base images too
        trusting_base(online, up.ca_file, work)
        print("cold pair", flush=True)
        cold = one_pair(work, online, up, with_first=True)
        warm = []
        for i in range(args.runs):
            print(f"warm pair {i + 1}/{args.runs}", flush=True)
            warm.append(one_pair(work, online, up, with_first=i % 2 == 1))
    write_report(args, cold, warm, time.monotonic() - started)
    shutil.rmtree(work, ignore_errors=True)


def median(runs: list[dict[str, dict[str, float]]], side: str, key: str) -> float:
    return statistics.median(r[side][key] for r in runs)


def write_report(args: argparse.Namespace, cold: dict[str, dict[str, float]],
                 warm: list[dict[str, dict[str, float]]], took: float) -> None:
    mb = 1e6
    w_export, wo_export = median(warm, "with", "export"), median(warm, "without", "export")
    rows = [
        ("export after a source change, warm engine", w_export, wo_export, "s", 2),
        ("export, first pair on a reset engine (one run)", cold["with"]["export"], cold["without"]["export"], "s", 2),
        ("bundle bytes", median(warm, "with", "bytes") / mb, median(warm, "without", "bytes") / mb, "MB", 3),
        ("bundle payload (the sum of its files' sizes)", median(warm, "with", "payload") / mb,
         median(warm, "without", "payload") / mb, "MB", 3),
        ("of which files/replay/", median(warm, "with", "replay") / mb, 0.0, "MB", 3),
        ("requests that reached the stand-in", median(warm, "with", "upstream_requests"),
         median(warm, "without", "upstream_requests"), "", 0),
        ("response body bytes the stand-in served", median(warm, "with", "upstream_bytes") / mb,
         median(warm, "without", "upstream_bytes") / mb, "MB", 3),
        ("classic builds made for the classic fallback", median(warm, "with", "classic_builds"),
         median(warm, "without", "classic_builds"), "", 0),
    ]
    bodies, served = median(warm, "with", "replay_bodies"), median(warm, "with", "upstream_bytes")
    replay_total = median(warm, "with", "replay")
    ratio = w_export / wo_export
    lines = [
        SECTION,
        "",
        f"`.venv/bin/python benchmarks/replay.py --runs {args.runs}` on {platform.platform()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, the harness's online Docker 26 engine, "
        f"{datetime.date.today().isoformat()} ({took / 60:.0f} min in all). The project is "
        "tests/integration/test_replay.py's `app` service (its `write_project(..., network=\"host\", "
        "poetry=False)`): `curl` of a 2 MB incompressible model and of a redirect, `git clone` over smart HTTP, a "
        "gzip-encoded `urlopen` listed under `replay:` and a chunked download, each after `COPY . .`, from the "
        "test's loopback HTTPS stand-in for the internet (run in the benchmark's process). \"With\" is the "
        "project as written; \"without\" adds `captures: {replay: false}` to offline.yaml; both `network: host`, "
        f"both `FROM {TRUSTING}`, Debian with the stand-in's CA trusted by curl, git and Python (the plain "
        "build has no other way to trust it: `ca_file` reaches capture builds only). Each run changes "
        "`main.txt` on both sides, so every step after `COPY . .` runs again, fetches included (an unchanged "
        "project is answered from the warm engine's cache); each side exports into a fresh cache folder, "
        "in-process, the first side alternating from run to run. Warm rows: medians of "
        f"{args.runs} runs; the cold row is the pair after `scripts/engines.sh reset online`, with first (the "
        "without export then runs on an engine the other warmed). Ratio = with / without, from the same run.",
        "",
        "| measure | with replay | without | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, with_, without, unit, digits in rows:
        shown = f"{with_ / without:.2f}" if without else "-"
        unit = f" {unit}" if unit else ""
        lines.append(f"| {name} | {with_:.{digits}f}{unit} | {without:.{digits}f}{unit} | {shown} |")
    lines += [
        "",
        "Bytes, defined: \"served\" counts the body of every response the stand-in wrote during the export, as "
        "written (after its gzip, before chunk framing; no headers, no TLS), counted in its handler. With "
        "replay, all of it is the capture build's: the export's own build is answered by the replay proxy and "
        f"reaches nothing. The recording's bodies in the bundle come to {bodies / mb:.3f} MB against "
        f"{served / mb:.3f} MB served ({bodies / served:.3f}); files/replay/ as a whole, with "
        f"exchanges.json, {replay_total / mb:.3f} MB ({median(warm, 'with', 'exchanges'):.0f} exchanges).",
        "",
        "The bundles come out about the same size: with replay it carries the recording (the model once "
        "more, as it came), without it the classic image's layers (which hold the model too); the tar "
        "rounds to 10 KiB records, the payload row does not. "
        f"Payload, with minus without: {median(warm, 'with', 'payload') - median(warm, 'without', 'payload'):+,.0f} "
        "bytes.",
        "",
        "Why the without export is not simply the cheaper one: without replay, the export makes a second, "
        "classic build of `app` for the classic fallback (export.py's `classic_cache_steps`, with the "
        "project's network), which runs every step after `COPY . .` again and fetches everything from "
        "upstream a second time (twice the served bytes), then saves that image into the store, so the "
        "bundle carries its layers. With replay, inputs.py gives a service with replayed steps no classic "
        "variant (the classic builder takes no build secrets, so it cannot be given the proxy), and the "
        "export makes no classic build of it; instead it runs a capture build that fetches through the "
        "recording proxy (mitmproxy, intercepting TLS in Python) and then its own build through the replay "
        "proxy: two BuildKit builds, two proxy start-ups. "
        + (f"Here the recording costs {100 * (ratio - 1):.0f} % more export time."
           if ratio >= 1 else f"Here the export with replay is {100 * (1 - ratio):.0f} % quicker: the classic "
           "build it skips costs more than the recording."),
        "",
        "Raw runs:",
        "",
        "```",
        f"cold {cold}",
        *(f"warm {r}" for r in warm),
        "```",
        "",
    ]
    text = args.out.read_text() if args.out.is_file() else ""
    args.out.write_text(replace_section(text, SECTION, "\n".join(lines)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""What the language captures cost: export time and bundle bytes with and without them.

``--project python-node`` (the default) is the deps project of
tests/integration/projects.py (``write_deps``): five services whose Dockerfiles install
after ``COPY . .`` with pip (a wheel and an sdist-only package), uv, npm,
yarn and pnpm. ``--project maven-go`` is tests/integration/test_deps_maven_go.py's:
``mvn -U clean package`` and ``go build``, served from the test's loopback
mirror (Debian's packaged Maven repository, a GOPROXY tree); its baseline
needs no trusted base (the mirror is plain HTTP). Each run exports it into a fresh
cache folder twice on the harness's online engine: with the captures (the
default) and with ``captures: {pip: false, npm: false, yarn: false, pnpm:
false}``, the baseline that builds the same Dockerfiles as they are, from a
base image that trusts this machine's TLS-inspecting proxy (what a team
behind it needs without the captures, which get the CA as a secret). The
first pair runs after the online engine was reset (a cold first export, which
fetches every package); the others on the warm engine, as repeated exports
are. Medians of the warm runs; ratio = with / without, from the same run.

    .venv/bin/python benchmarks/deps.py [--project python-node|maven-go] [--runs 3] [--out BENCHMARKS.md]

It writes its section of BENCHMARKS.md (replacing its own from an earlier
run, leaving the other project's); bench.py keeps both when it rewrites the rest.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from python_on_whales import DockerClient
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from offline_build import export as exporting  # noqa: E402
from offline_build.config import load  # noqa: E402
from offline_build.steps import Pack  # noqa: E402
from tests.integration import test_deps_maven_go as maven_go  # noqa: E402
from tests.integration.harness import CA  # noqa: E402
from tests.integration.projects import write_deps as write_project  # noqa: E402

HARNESS = ROOT / "scripts" / "engines.sh"
SECTION = "## Language dependency captures"  # where this script's part of BENCHMARKS.md starts
SECTIONS = {"python-node": SECTION, "maven-go": "### Maven and Go captures"}  # the second sits inside the first
OFF = {"python-node": "captures: {pip: false, uv: false, npm: false, yarn: false, pnpm: false}\n",
       "maven-go": "captures: {maven: false, go: false}\n"}


def harness(*args: str) -> str:
    return subprocess.run([str(HARNESS), *args], check=True, capture_output=True, text=True).stdout


def export(project_dir: Path, online: DockerClient) -> dict[str, float]:
    project = load(project_dir / "offline.yaml", environ={})
    shutil.rmtree(project.cache_dir, ignore_errors=True)
    started = time.monotonic()
    summary = exporting.export(project, None, online, Console(quiet=True))
    seconds = time.monotonic() - started
    pack = summary["result"].of(Pack)[0].detail
    captured = sum(size for name, (_, size) in pack["folders"].items() if name not in ("apt", "resources"))
    return {"export": seconds, "bytes": pack["size"], "captured": captured}


TRUSTING = "bench-debian-ca:bookworm"  # the baseline's base: Debian with the proxy's CA trusted by every tool


def trusting_base(online: DockerClient, work: Path) -> None:
    folder = work / "base-ca"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CA, folder / "ca.crt")
    # Not /etc/ssl/certs: Debian's ca-certificates, when a step installs it, rewrites that file.
    env = " ".join(f"{v}=/usr/local/share/bench-ca.crt" for v in
                   ("PIP_CERT", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE"))
    (folder / "Dockerfile").write_text(
        f"FROM debian:bookworm-slim\nCOPY ca.crt /usr/local/share/bench-ca.crt\nENV {env}\n")
    online.buildx.build(folder, tags=[TRUSTING], network="none", load=True)


def one_run(work: Path, online: DockerClient, project: str, mirror: tuple[str, dict[str, str]] | None,
            ) -> dict[str, dict[str, float]]:
    with_dir, without_dir = work / "with", work / "without"
    for folder in (with_dir, without_dir):
        shutil.rmtree(folder, ignore_errors=True)
    if mirror:
        with_dir.mkdir()
        maven_go.write_project(with_dir, *mirror)
    else:
        write_project(with_dir)
    shutil.copytree(with_dir, without_dir)
    config = without_dir / "offline.yaml"
    config.write_text(config.read_text() + OFF[project])
    for dockerfile in () if mirror else without_dir.glob("*/Dockerfile"):
        dockerfile.write_text(dockerfile.read_text().replace("FROM debian:bookworm-slim", f"FROM {TRUSTING}"))
    return {"with": export(with_dir, online), "without": export(without_dir, online)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", choices=sorted(SECTIONS), default="python-node")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    hosts = dict(line.split("=", 1) for line in harness("up", "online").splitlines() if "=" in line)
    online = DockerClient(host=hosts["online"])
    work = Path(tempfile.mkdtemp(prefix="offline-build-bench-deps-"))
    harness("reset", "online")
    harness("images", "online")  # the reset drops the base images too
    server, mirror = None, None
    if args.project == "maven-go":
        (work / "mirror").mkdir()
        server, url, sums = maven_go.serve_mirror(work / "mirror")
        mirror = (url, sums)
    else:
        trusting_base(online, work)
    try:
        cold = one_run(work, online, args.project, mirror)
        warm = [one_run(work, online, args.project, mirror) for _ in range(args.runs)]
    finally:
        if server:
            server.shutdown()
            server.server_close()
    write_report(args, cold, warm)
    shutil.rmtree(work, ignore_errors=True)


def median(runs: list[dict[str, dict[str, float]]], side: str, key: str) -> float:
    return statistics.median(r[side][key] for r in runs)


DESCRIPTIONS = {
    "python-node": ("The deps project of tests/integration/projects.py (pip with an sdist-only package, uv, npm, yarn, "
                    "pnpm; each install after `COPY . .`), exported with the captures and without them (`captures: "
                    "{...: false}`, from a base image that trusts this machine's TLS-inspecting proxy, which the "
                    "plain builds need)."),
    "maven-go": ("The project of tests/integration/test_deps_maven_go.py (`mvn -B -U clean package` with a lazily "
                 "loaded plugin, `go build`; each after `COPY . .`, the JDK, Maven and Go from Debian through the APT "
                 "capture), exported with the captures and without them (`captures: {maven: false, go: false}`), "
                 "both from the test's loopback mirror."),
}


def write_report(args: argparse.Namespace, cold: dict[str, dict[str, float]],
                 warm: list[dict[str, dict[str, float]]]) -> None:
    mb = 1e6
    rows = [
        ("bundle bytes", median(warm, "with", "bytes") / mb, median(warm, "without", "bytes") / mb, "MB"),
        ("of which language captures", median(warm, "with", "captured") / mb, 0.0, "MB"),
        ("export, warm engine", median(warm, "with", "export"), median(warm, "without", "export"), "s"),
        ("export, first on a reset engine", cold["with"]["export"], cold["without"]["export"], "s"),
    ]
    lines = [
        SECTIONS[args.project],
        "",
        f"`.venv/bin/python benchmarks/deps.py --project {args.project} --runs {args.runs}` on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, the harness's online Docker 26 engine. "
        f"{DESCRIPTIONS[args.project]} Warm rows: "
        f"medians of {args.runs} runs; the cold row is one run after `scripts/engines.sh reset online` (the "
        "without-captures export then runs on an engine the with-captures one warmed, so its cold figure is low).",
        "",
        "| measure | with captures | without | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, with_, without, unit in rows:
        ratio = f"{with_ / without:.2f}" if without else "-"
        lines.append(f"| {name} | {with_:.2f} {unit} | {without:.2f} {unit} | {ratio} |")
    lines += ["", "Without the captures the bundle is smaller and the export quicker, and a change to any "
              "service's source makes its install step fail at the site; with them it rebuilds there "
              f"({DESCRIPTIONS[args.project].split(' (')[0].removeprefix('The project of ')}).", "", "Raw runs:", "",
              "```", f"cold {cold}", *(f"warm {r}" for r in warm), "```", ""]
    text = args.out.read_text() if args.out.is_file() else ""
    args.out.write_text(replace_section(text, SECTIONS[args.project], "\n".join(lines)))
    print("\n".join(lines))


def replace_section(text: str, heading: str, body: str) -> str:
    """*text* with the section under *heading* (up to the next ``##``/``###`` heading) replaced by *body*,
    or *body* appended when there is none; every other section stays where it is."""
    if heading not in text:
        return text.rstrip() + "\n\n" + body.rstrip() + "\n"
    head, _, rest = text.partition(heading)
    following = re.search(r"^#{2,3} ", rest, re.M)
    tail = rest[following.start():] if following else ""
    return head.rstrip() + "\n\n" + body.rstrip() + "\n" + (f"\n{tail}" if tail else "")


if __name__ == "__main__":
    main()

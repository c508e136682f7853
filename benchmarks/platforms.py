"""What emulation costs: the same small project for linux/amd64 (native) and linux/arm64 (qemu), same run.

The project is tests/integration/test_platforms.py's arm64 one, once per
platform: two stages, ``network: none``, ``platforms: [linux/<arch>]``, an
APT step installing ``jq`` with a copied marker file above it, a source file
copied below it and a small ``RUN`` after; ``FROM debian:bookworm-slim`` for
amd64, ``FROM debian-arm64:bookworm-slim`` (the harness's arm64 base, on the
online engine) for arm64. Per run and platform, with the ``offline-build``
command in its own process: ``offline.export`` on the harness's online engine
from a fresh project folder (so the APT capture, the builds and the packing
all run), ``offline.setup`` on the air-gapped ``offline`` engine, its first
``offline.build`` (all cached), then ``offline.build`` again after a change to
the marker, above the APT step: ``apt-get install`` runs again from the
bundle's capture, under emulation for arm64.

Neither engine's build cache is pruned (other work shares them): instead each
run writes a marker of its own, so no step of the service below ``FROM`` can
be found in a cache from an earlier run or invocation. The one export step
that can be is the preinstalled classic variant's APT install, keyed on the
captured packages only (shared with any project installing jq on that base,
so even in a first run): the report counts such steps per run.
Between runs the project's own images (``benchplat/*``, ``benchplat-*``) are
removed from both engines, nothing else. Medians of the runs; ratio = arm64 /
amd64, both measured in the same run. Prints a markdown table; ``--out FILE``
also writes it as a section of FILE. The work folder is made under $TMPDIR
and removed at the end.

    .venv/bin/python benchmarks/platforms.py [--runs 3] [--out BENCHMARKS.md]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.deps import replace_section  # noqa: E402
from tests.integration.harness import CLI, build_report  # noqa: E402

HARNESS = ROOT / "scripts" / "engines.sh"
SECTION = "## Emulated platforms"
PROJECT = "benchplat"
PLATFORMS = {"linux/amd64": "debian:bookworm-slim", "linux/arm64": "debian-arm64:bookworm-slim"}
PHASES = (("export", "offline.export (online engine)"), ("setup", "offline.setup (air-gapped engine)"),
          ("build", "first offline.build after setup (all cached)"),
          ("rebuild", "offline.build after a change above the APT step (apt-get from the capture)"))
STEP = re.compile(r"^ +\[[^]]+\] .*: (done|CACHED)$", re.M)  # each build step the export prints, and its fate
DOCKERFILE = """\
FROM {base} AS build
COPY marker /marker
RUN apt-get update && apt-get install -y --no-install-recommends jq
COPY app.txt /app.txt
RUN uname -m > /arch && jq -n '"jq works"' > /jq && cat /marker /app.txt > /app.out
FROM {base}
COPY --from=build /arch /jq /app.out /
CMD ["sh", "-c", "cat /arch /jq /app.out"]
"""


def harness(*args: str) -> str:
    return subprocess.run([str(HARNESS), *args], check=True, capture_output=True, text=True).stdout


def offline_build(project: Path, host: str, *args: str) -> tuple[float, str]:
    """Seconds and stdout of one ``offline-build`` command in *project*; exits on a failure."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("OFFLINE_VERSION", None)
    env.pop("CACHE_DIR", None)
    started = time.monotonic()
    proc = subprocess.run([*CLI, *args, "--host", host], cwd=project, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"offline-build {' '.join(args)} failed in {project}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def write_project(root: Path, plat: str, marker: str) -> Path:
    arch = plat.split("/")[1]
    (root / "app").mkdir(parents=True)
    (root / "app" / "Dockerfile").write_text(DOCKERFILE.format(base=PLATFORMS[plat]))
    (root / "app" / "marker").write_text(marker)
    (root / "app" / "app.txt").write_text(f"{arch} app\n")
    (root / "offline.yaml").write_text(f"project: {PROJECT}\nnetwork: none\nplatforms: [{plat}]\n"
                                       f"services:\n  app:\n    context: app\n    image: {PROJECT}/{arch}\n")
    return root


def remove_own_images(docker: DockerClient) -> None:
    """This benchmark's images only: those tagged ``benchplat/...`` or ``benchplat-...``."""
    ours = [t for image in docker.image.list() for t in image.repo_tags if t.startswith((f"{PROJECT}/", f"{PROJECT}-"))]
    if ours:
        docker.image.remove(ours, force=True)


def one_run(work: Path, plat: str, hosts: dict[str, str], offline: DockerClient, run: int) -> dict[str, float]:
    token = f"{plat} run {run} {os.getpid()} {time.time_ns()}"  # unique: nothing below FROM is in any cache
    online = write_project(work / "online", plat, f"{token}\n")
    export, out = offline_build(online, hosts["online"], "offline.export")
    steps = STEP.findall(out)
    (bundle,) = (online / "build-cache").glob("build-cache-*.tar")
    site = work / "site"
    shutil.copytree(online, site, ignore=shutil.ignore_patterns("build-cache", "apt-lists"))
    (site / "build-cache").mkdir()
    shutil.move(bundle, site / "build-cache" / bundle.name)
    size = (site / "build-cache" / bundle.name).stat().st_size
    setup, _ = offline_build(site, hosts["offline"], "offline.setup")
    build, out = offline_build(site, hosts["offline"], "offline.build")
    assert build_report(out, ("app",))["app"][2] == "all cached", out
    tag = f"{PROJECT}/{plat.split('/')[1]}:latest"
    first = offline.image.inspect(tag).id
    (site / "app" / "marker").write_text(f"{token}, changed\n")  # above the APT step: apt-get runs again, offline
    rebuild, out = offline_build(site, hosts["offline"], "offline.build")
    assert build_report(out, ("app",))["app"][2] == "rebuilt offline", out
    arch = offline.image.inspect(tag).architecture
    assert arch == plat.split("/")[1], f"{tag} is {arch}"
    offline.image.remove(first, force=True)  # the first build's image, untagged by the rebuild
    shutil.rmtree(online)
    shutil.rmtree(site)
    return {"export": export, "setup": setup, "build": build, "rebuild": rebuild, "bytes": size,
            "export_steps": len(steps), "export_cached": steps.count("CACHED")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the section into this file (e.g. BENCHMARKS.md)")
    args = parser.parse_args()
    hosts = dict(line.split("=", 1) for line in harness("hosts").splitlines() if "=" in line)
    if not {"online", "offline"} <= set(hosts):
        sys.exit("the harness's online and offline engines must run: scripts/engines.sh up online offline")
    docker = {name: DockerClient(host=hosts[name]) for name in ("online", "offline")}
    missing = [base for base in PLATFORMS.values() if not docker["online"].image.exists(base)]
    if missing:
        sys.exit(f"not on the online engine: {', '.join(missing)} (scripts/engines.sh images online)")
    for engine in docker.values():
        remove_own_images(engine)  # an interrupted run's
    work = Path(tempfile.mkdtemp(prefix="offline-build-bench-platforms-"))
    results: dict[str, list[dict[str, float]]] = {plat: [] for plat in PLATFORMS}
    try:
        for i in range(args.runs):
            for plat in PLATFORMS:  # alternating, so both platforms see the same engines and machine load
                print(f"{plat}: run {i + 1}/{args.runs}", flush=True)
                results[plat].append(one_run(work, plat, hosts, docker["offline"], i))
                for engine in docker.values():
                    remove_own_images(engine)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, results)


def report(args: argparse.Namespace, results: dict[str, list[dict[str, float]]]) -> None:
    amd, arm = results["linux/amd64"], results["linux/arm64"]

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    lines = [SECTION, "",
             f"`.venv/bin/python benchmarks/platforms.py --runs {args.runs}` on {platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}, the harness's Docker 26 engines: "
             "tests/integration/test_platforms.py's project (two stages, an APT step installing jq, a source file "
             "copied below it) for linux/amd64 (native) and linux/arm64 (qemu-aarch64 emulation), exported on the "
             "online engine from a fresh folder, set up and built on the air-gapped `offline` engine, then rebuilt "
             "there after a change above the APT step. Build caches are not pruned (shared engines): a marker "
             "unique to each run keeps every step of the service below `FROM` out of them, in the first run as in "
             "the later ones. The one step that can still be found there is the export's preinstalled classic "
             "variant (`benchplat-<base>-apt`, its APT install keyed on the captured packages only, which every "
             "project installing jq on that base shares, so even a first run can find it): the last row counts "
             f"such steps (per run in the raw runs). Medians of {args.runs} run(s); ratio = arm64 / amd64, "
             "same run.", "",
             "| phase | linux/amd64 | linux/arm64 (emulated) | ratio |", "| --- | ---: | ---: | ---: |"]
    for key, label in PHASES:
        a, b = med(amd, key), med(arm, key)
        lines.append(f"| {label} | {a:.2f} s | {b:.2f} s | {b / a:.2f} |")
    lines.append(f"| bundle bytes | {med(amd, 'bytes') / 1e6:.2f} MB | {med(arm, 'bytes') / 1e6:.2f} MB | "
                 f"{med(arm, 'bytes') / med(amd, 'bytes'):.2f} |")
    cached = [f"{med(rows, 'export_cached'):.0f} of {med(rows, 'export_steps'):.0f}" for rows in (amd, arm)]
    lines.append(f"| export steps found in the online engine's build cache | {' | '.join(cached)} | |")
    lines += ["", "Raw runs:", "", "```", *(f"{plat} {r}" for plat, rows in results.items() for r in rows), "```", ""]
    if args.out:
        text = args.out.read_text() if args.out.is_file() else ""
        args.out.write_text(replace_section(text, SECTION, "\n".join(lines)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

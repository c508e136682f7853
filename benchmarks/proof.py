"""What the edit proof costs: ``offline.verify --edits`` against a plain ``offline.verify``, same bundle, same run.

Projects: the demo (examples/demo), the Python/Node deps project of
tests/integration/projects.py (``write_deps``) and the Maven/Go project of
tests/integration/test_deps_maven_go.py (served from that test's loopback
mirror). Each is exported once on the harness's online engine; then, per
run, the air-gapped ``offline`` engine is reset (no images, no build cache)
and the bundle verified, plainly and with ``--edits``, alternating. Medians
of the runs; ratio = edits / plain.

    .venv/bin/python benchmarks/proof.py [--runs 3] [--out BENCHMARKS.md]

It writes its section of BENCHMARKS.md (replacing its own from an earlier
run); bench.py keeps it, with the other sections after its own.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.deps import replace_section  # noqa: E402
from tests.integration import test_deps_maven_go  # noqa: E402
from tests.integration.projects import write_deps  # noqa: E402

HARNESS = ROOT / "scripts" / "engines.sh"
CLI = [str(ROOT / ".venv" / "bin" / "offline-build")]
SECTION = "### The edit proof"


def harness(*args: str) -> str:
    return subprocess.run([str(HARNESS), *args], check=True, capture_output=True, text=True).stdout


def offline_build(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    if proc.returncode != 0:
        sys.exit(f"offline-build {' '.join(args)} failed in {project}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def projects(work: Path, mirror: tuple[str, dict[str, str]]) -> dict[str, Path]:
    demo = work / "demo"
    shutil.copytree(ROOT / "examples" / "demo", demo, ignore=shutil.ignore_patterns("build-cache", "apt-lists"))
    deps = write_deps(work / "deps")
    (work / "jvmgo").mkdir()
    jvmgo = test_deps_maven_go.write_project(work / "jvmgo", *mirror)
    return {"demo": demo, "pip, uv, npm, yarn, pnpm": deps, "Maven, Go": jvmgo}


def timed(project: Path, offline: str, *flags: str) -> float:
    harness("reset", "offline")
    started = time.monotonic()
    offline_build(project, "offline.verify", "--host", offline, *flags)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    hosts = dict(line.split("=", 1) for line in harness("up", "online", "offline").splitlines() if "=" in line)
    work = Path(tempfile.mkdtemp(prefix="offline-build-bench-proof-"))
    (work / "mirror").mkdir()
    server, url, sums = test_deps_maven_go.serve_mirror(work / "mirror")
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for name, project in projects(work, (url, sums)).items():
            offline_build(project, "offline.export", "--host", hosts["online"])
            runs: dict[str, list[float]] = {"plain": [], "edits": []}
            for _ in range(args.runs):
                runs["plain"].append(timed(project, hosts["offline"]))
                runs["edits"].append(timed(project, hosts["offline"], "--edits"))
            results[name] = runs
            print(name, runs, flush=True)
    finally:
        server.shutdown()
        server.server_close()
    write_report(args, results)
    shutil.rmtree(work, ignore_errors=True)


def write_report(args: argparse.Namespace, results: dict[str, dict[str, list[float]]]) -> None:
    lines = [SECTION, "",
             f"`.venv/bin/python benchmarks/proof.py --runs {args.runs}` on {platform.machine()}, {os.cpu_count()} "
             f"cores, Python {platform.python_version()}: each project exported once on the harness's online engine, "
             "then verified on the air-gapped `offline` engine, reset before every run (setup into a scratch store, "
             f"base images loaded, every service built). Medians of {args.runs} runs.", "",
             "| project | offline.verify | offline.verify --edits | ratio |", "| --- | ---: | ---: | ---: |"]
    for name, runs in results.items():
        plain, edits = statistics.median(runs["plain"]), statistics.median(runs["edits"])
        lines.append(f"| {name} | {plain:.1f} s | {edits:.1f} s | {edits / plain:.2f} |")
    lines += ["", "Raw runs (seconds):", "", "```", *(f"{n} {r}" for n, r in results.items()), "```", ""]
    text = args.out.read_text() if args.out.is_file() else ""
    args.out.write_text(replace_section(text, SECTION, "\n".join(lines)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

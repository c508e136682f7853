"""How cost grows with bundle size: ours against the seed's literal way, at about 0.1, 1 and 4 GB.

The subject is bench.py's generated project (4 services over two base
images) with its incompressible layer raised so the project carries about
the size asked for. Per size, on the harness's real engines and in the same
run: our export (the ``offline-build`` command, in its own process) and the
seed's (``--cache-to type=local`` per service, ``docker save``, ``tar
-czf``); then, on the air-gapped engine reset each time, our setup and the
first rebuild of one service against the seed's ``tar -xzf``, ``docker
load`` and ``--cache-from``. For each: wall time; peak RSS (the largest
process of the step: ours, or the seed's ``tar``/``docker`` commands);
bytes written to the disk (the block device's own counter, after ``sync``:
the engines' writes included) per bundle byte.

    .venv/bin/python benchmarks/size.py [--sizes 0.1,1,4] [--runs 1] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import ast
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench import BASES, Subject, harness, seed_build  # noqa: E402
from benchmarks.deps import replace_section  # noqa: E402

SECTION = "## Growth with bundle size"
SERVICES = 4
CLI = str(ROOT / ".venv" / "bin" / "offline-build")


def device() -> str:
    """The block device behind the work folder (its counters count every writer: us, the engines, tar)."""
    dev = os.stat(tempfile.gettempdir()).st_dev
    name = os.path.basename(os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"))
    parent = Path(f"/sys/class/block/{name}/partition")
    return Path(os.path.realpath(f"/sys/class/block/{name}/..")).name if parent.exists() else name


def written(dev: str) -> int:
    subprocess.run(["sync"], check=True)
    return int(Path(f"/sys/block/{dev}/stat").read_text().split()[6]) * 512


def step(cmds: list[list[str]], dev: str, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> dict[str, float]:
    """Run *cmds* one after another: seconds, the largest peak RSS among them (MB), bytes written to the disk."""
    before, peak, started, last = written(dev), 0, time.monotonic(), 0.0
    out = Path(tempfile.mkstemp(prefix="bench-size-out-")[1])
    for cmd in cmds:
        began = time.monotonic()
        with out.open("w") as sink:
            proc = subprocess.Popen(cmd, env={**(env or os.environ), "COLUMNS": "200"}, cwd=cwd, stdout=sink,
                                    stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage: its peak RSS
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(cmd)} failed: {out.read_text()[-2000:]}")
        peak, last = max(peak, usage.ru_maxrss), time.monotonic() - began  # ru_maxrss: KiB on Linux
    seconds = time.monotonic() - started
    text = out.read_text()
    out.unlink()
    return {"seconds": seconds, "rss_mb": peak / 1024, "written": written(dev) - before, "last": last,
            "output": text}  # type: ignore[dict-item]


def project(root: Path, total: int) -> Subject:
    layer = total // SERVICES
    lines = ["project: size", 'version: "1"', "network: none", "services:"]
    for i in range(SERVICES):
        ctx = root / f"svc{i}"
        ctx.mkdir(parents=True)
        (ctx / "Dockerfile").write_text(f"FROM {BASES[i % 2]}\nRUN head -c {layer} /dev/urandom > /data-{i}.bin\n"
                                        "COPY main.txt /app/main.txt\n")
        (ctx / "main.txt").write_text(f"service {i}\n")
        lines += [f"  svc{i}:", f"    context: svc{i}"]
    (root / "offline.yaml").write_text("\n".join(lines) + "\n")
    return Subject(f"{total / 1e9:g} GB", root / "offline.yaml", BASES, "svc0",
                   ("svc1", "svc1/main.txt", "service", "service"), "none")


def ours(subject: Subject, hosts: dict[str, str], work: Path, dev: str) -> dict[str, float]:
    src = subject.config.parent
    shutil.rmtree(src / "build-cache", ignore_errors=True)
    export = step([[CLI, "offline.export", "--host", hosts["online"]]], dev, cwd=src)
    (bundle,) = (src / "build-cache").glob("build-cache-*.tar")
    site = work / "ours-site"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(src, site, ignore=shutil.ignore_patterns("build-cache"))
    (site / "build-cache").mkdir()
    shutil.move(str(bundle), site / "build-cache" / bundle.name)
    harness("reset", "offline")
    setup = step([[CLI, "offline.setup", "--host", hosts["offline"]]], dev, cwd=site)
    rebuild = step([[CLI, f"{subject.rebuild}.offline-build", "--host", hosts["offline"]]], dev, cwd=site)
    size = (site / "build-cache" / bundle.name).stat().st_size
    shutil.rmtree(site, ignore_errors=True)
    packing = float(re.search(r"packing[\s│]+([\d.]+)s", str(export["output"]))[1])  # type: ignore[index]
    return {"bytes": size, "export": export["seconds"], "pack": packing, "export_rss": export["rss_mb"],
            "setup": setup["seconds"], "setup_rss": setup["rss_mb"], "first": setup["seconds"] + rebuild["seconds"],
            "amplification": (setup["written"] + rebuild["written"]) / size}


def seed(subject: Subject, hosts: dict[str, str], work: Path, dev: str) -> dict[str, float]:
    out = work / "seed"
    shutil.rmtree(out, ignore_errors=True)
    (out / "build-cache").mkdir(parents=True)
    online = {**os.environ, "DOCKER_HOST": hosts["online"]}
    builds = [seed_build(subject, f"svc{i}", f"--cache-to=type=local,dest={out}/build-cache/svc{i}-cache,mode=max")
              for i in range(SERVICES)]
    export = step([*builds, ["docker", "save", "-o", str(out / "build-cache" / "base-images.tar"), *subject.bases],
                   ["tar", "-czf", str(out / "seed.tar.gz"), "-C", str(out), "build-cache"]], dev, env=online)
    size = (out / "seed.tar.gz").stat().st_size
    shutil.rmtree(out / "build-cache")
    harness("reset", "offline")
    offline = {**os.environ, "DOCKER_HOST": hosts["offline"]}
    site = work / "seed-site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir()
    setup = step([["tar", "-xzf", str(out / "seed.tar.gz"), "-C", str(site)],
                  ["docker", "load", "-i", str(site / "build-cache" / "base-images.tar")]], dev, env=offline)
    cache = site / "build-cache" / f"{subject.rebuild}-cache"
    rebuild = step([seed_build(subject, subject.rebuild, f"--cache-from=type=local,src={cache}")], dev, env=offline)
    shutil.rmtree(site, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return {"bytes": size, "export": export["seconds"], "pack": export["last"], "export_rss": export["rss_mb"],
            "setup": setup["seconds"], "setup_rss": setup["rss_mb"], "first": setup["seconds"] + rebuild["seconds"],
            "amplification": (setup["written"] + rebuild["written"]) / size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1,1,4", help="GB, comma-separated")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--from-log", type=Path, help="rewrite the report from an earlier run's printed results")
    args = parser.parse_args()
    if args.from_log:
        write_report(args, [_logged(line) for line in args.from_log.read_text().splitlines()
                            if re.match(r"^[0-9.]+ GB \[", line)], device())
        return
    hosts = dict(line.split("=", 1) for line in harness("up", "online", "offline").splitlines() if "=" in line)
    dev = device()
    work = Path(tempfile.mkdtemp(prefix="offline-build-bench-size-", dir="/var/tmp"))
    results = []
    for gb in (float(s) for s in args.sizes.split(",")):
        subject = project(work / f"p{gb:g}", int(gb * 1e9))
        subprocess.run([CLI, "offline.export", "--host", hosts["online"]], cwd=subject.config.parent, check=True,
                       capture_output=True)  # warm-up: both sides then export from a warm engine
        rows = [(ours(subject, hosts, work, dev), seed(subject, hosts, work, dev)) for _ in range(args.runs)]
        results.append((subject.title, rows))
        print(subject.title, rows, flush=True)
        shutil.rmtree(subject.config.parent, ignore_errors=True)
    write_report(args, results, dev)
    shutil.rmtree(work, ignore_errors=True)


ROWS = (("bundle bytes", "bytes", 1e9, "GB"), ("export", "export", 1, "s"),
        ("packing (ours: writing the bundle; seed: tar -czf)", "pack", 1, "s"),
        ("setup", "setup", 1, "s"), ("setup + first rebuild", "first", 1, "s"),
        ("peak RSS, export", "export_rss", 1, "MB"), ("peak RSS, setup", "setup_rss", 1, "MB"),
        ("disk bytes written per bundle byte (setup + rebuild)", "amplification", 1, "x"))


def _logged(line: str) -> tuple[str, list]:
    title, _, rows = line.partition(" [")
    return title, ast.literal_eval("[" + rows)


# The targets at the largest size: (what, ours/seed must be at most, how it is told).
TARGETS = (("packing at least 10x faster than the seed", "pack", 0.1),
           ("setup + first rebuild at least 2x faster", "first", 0.5),
           ("write amplification at most half the seed's", "amplification", 0.5))
# Why a target is out of reach, said only when it is missed.
GAPS = {
    "first": "our setup writes every byte of the bundle once (hashed and synced as it is extracted) and the first "
             "rebuild has BuildKit copy the layers it uses into its own content store; the seed spends most of its "
             "time in gunzip. What is left is the disk's own speed, which we share with the seed.",
    "amplification": "after setup, the first build has the engine copy the cache's layers into its content store: "
                     "that copy is the engine's own, the same for us and for the seed, and it is most of the bytes "
                     "written in both; our setup adds nothing beyond the one copy of the bundle.",
}


def targets(results: list) -> list[str]:
    """The targets at the largest size, each met or not with the measured ratio (and the gap's reason)."""
    title, rows = results[-1]
    lines = [f"Against the targets at {title} (medians):", ""]
    for what, key, limit in TARGETS:
        ratio = statistics.median(r[0][key] / r[1][key] for r in rows)
        met = ratio <= limit
        lines.append(f"- {what}: ours / seed = {ratio:.2f}, {1 / ratio:.1f}x ({'met' if met else 'not met'})"
                     + ("" if met else f": {GAPS[key]}"))
    rss = [statistics.median(r[0][k] for r in rows) for _, rows in results for k in ("export_rss", "setup_rss")]
    lines.append(f"- peak RSS under 200 MB for export and setup, flat across sizes: {min(rss):.0f}-{max(rss):.0f} MB "
                 f"({'met' if max(rss) < 200 else 'not met'})")
    return [*lines, ""]


def write_report(args: argparse.Namespace, results: list, dev: str) -> None:
    lines = [SECTION, "",
             f"`.venv/bin/python benchmarks/size.py --sizes {args.sizes} --runs {args.runs}` on {platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}: bench.py's generated project (4 services "
             "over two base images) with one incompressible layer per service, sized to the total; ours (the "
             "`offline-build` command) against the seed's literal way, same engines, same run. Peak RSS is the "
             "largest process of the step; disk bytes come from the block device's own counter "
             f"(`/sys/block/{dev}/stat`, after `sync`), so the engines' writes count too. Medians of "
             f"{args.runs} run(s) per size; ratio = ours / seed.", "",
             "| size | measure | ours | seed | ratio |", "| --- | --- | ---: | ---: | ---: |"]
    for title, rows in results:
        for label, key, scale, unit in ROWS:
            o = statistics.median(r[0][key] for r in rows) / scale
            s = statistics.median(r[1][key] for r in rows) / scale
            lines.append(f"| {title} | {label} | {o:.2f} {unit} | {s:.2f} {unit} | {o / s:.2f} |")
    lines += ["", *targets(results), "Raw runs:", "", "```", *(f"{t} {r}" for t, r in results), "```", ""]
    text = args.out.read_text() if args.out.is_file() else ""
    args.out.write_text(replace_section(text, SECTION, "\n".join(lines)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

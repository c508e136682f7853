"""Start-up: ``offline-build --list`` against a bare ``inv --list`` of a one-task tasks.py, same machine, same run.

Every command pays the start (``--help``, tab completion, each task), and
the task tree is generated from the project file, so offline-build cannot
skip building it; what it can skip is loading the workflows behind the
tasks (python-on-whales, rich, the SBOM and signing libraries), which a task
loads when it runs. The demo's project (examples/demo) is listed; the
baseline is invoke alone listing one task. Runs alternate between the two;
medians of the wall time and of the peak memory (``/usr/bin/time``); ratio =
offline-build / bare invoke.

    .venv/bin/python benchmarks/startup.py [--runs 21] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.deps import replace_section  # noqa: E402

SECTION = "## Start-up"
BIN = ROOT / ".venv" / "bin"


def timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    """(seconds, peak KiB) of one run, as /usr/bin/time measures them."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", *argv], cwd=cwd, capture_output=True, text=True,
                          check=True)
    seconds, kib = proc.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as bare:
        (Path(bare) / "tasks.py").write_text("from invoke import task\n\n\n@task\ndef hello(c):\n    pass\n")
        sides = {"offline-build --list": ([str(BIN / "offline-build"), "--list"], ROOT / "examples" / "demo"),
                 "inv --list (one task)": ([str(BIN / "inv"), "--list"], Path(bare))}
        results: dict[str, list[tuple[float, int]]] = {name: [] for name in sides}
        for n in range(args.runs + 1):
            for name, (argv, cwd) in (list(sides.items()) if n % 2 else list(sides.items())[::-1]):
                if n:  # the first round warms the file cache and is not counted
                    results[name].append(timed(argv, cwd))
                else:
                    timed(argv, cwd)
    medians = {name: (statistics.median(t for t, _ in r), statistics.median(m for _, m in r))
               for name, r in results.items()}
    ours, base = medians["offline-build --list"], medians["inv --list (one task)"]
    lines = [SECTION, "",
             f"`.venv/bin/python benchmarks/startup.py --runs {args.runs}` on {platform.platform()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}, {datetime.date.today()}: "
             "`offline-build --list` in examples/demo against `inv --list` of a one-task tasks.py, alternating, "
             f"medians of {args.runs} runs each (a first round not counted). The workflows a task needs are "
             "loaded when it runs (tasks/common.py's Later); tests/unit/test_startup.py checks that listing and "
             "help load none of them.", "",
             "| command | wall time | peak memory |", "| --- | ---: | ---: |",
             *(f"| {name} | {t:.3f} s | {m / 1024:.1f} MiB |" for name, (t, m) in medians.items()),
             f"| ratio | {ours[0] / base[0]:.2f}x | {ours[1] / base[1]:.2f}x |", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(replace_section(args.out.read_text(), SECTION, text))


if __name__ == "__main__":
    main()

"""The uv capture's size against the distributions uv downloaded, on this host (no engine), per command form.

A uv project of 100+ packages (sphinx, requests, boto3, pandas, jupyter and
the sdist-only docopt) is locked once. Per form (``uv sync --locked``;
``uv pip install -r`` of the lock exported as requirements), online: the
capture command as the capture build runs it (``UvCapture.capture_command``),
with an empty scratch cache, which also keeps a copy of that cache as the
old capture made it (``cp -RL``) and as one ``tar -czf`` (the fallback that
was weighed). Then offline, in a network namespace with no interface
(``unshare -n``): the served command (``UvCapture.served_command``) in a
fresh environment, for ``uv sync`` plain, ``--frozen`` and ``--locked``, and
for the requirements form; each must succeed. Prints files and bytes of
each, and the ratio to the downloaded distributions; timings are medians.

    .venv/bin/python benchmarks/uvsize.py [--uv PATH] [--runs 3] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from benchmarks.deps import replace_section  # noqa: E402
from offline_build.captures.lang import StepNeed  # noqa: E402
from offline_build.captures.pip import distribution  # noqa: E402
from offline_build.captures.uv import UV  # noqa: E402
from offline_build.pkgs import Install  # noqa: E402

SECTION = "## uv capture size"
DEPENDENCIES = ["sphinx", "requests", "boto3", "pandas", "jupyter", "docopt"]
PYPROJECT = f"""[project]
name = "svc"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = {DEPENDENCIES!r}
"""


def count(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(files), sum(p.stat().st_size for p in files)


def sh(command: str, cwd: Path, env: dict[str, str], offline: bool = False) -> float:
    start = time.perf_counter()
    argv = (["unshare", "-n"] if offline else []) + ["sh", "-c", command]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed ({'offline' if offline else 'online'}): {command[:200]}...\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def measure(project: Path, form: str, serve: list[str], work: Path, env: dict[str, str]) -> dict[str, object]:
    out, old = work / "out", work / "old"
    for p in (out, old, project / ".venv", work / "venv"):
        shutil.rmtree(p, ignore_errors=True)
    need = StepNeed("svc", 1, (Install("uv", (env["UV"],), tuple(form.split()[1:])),))
    keep = f"{form} && cp -RL $UV_CACHE_DIR/. {old}/ && tar -C $UV_CACHE_DIR -czf {work}/fallback.tgz ."
    online = sh(f"mkdir -p {old} && " + UV.capture_command(keep, str(out), need), project, env)
    dists = [p for p in out.iterdir() if distribution(f"k/{p.name}")]
    row: dict[str, object] = {
        "form": form, "capture_online_s": online,
        "downloaded": (len(dists), sum(p.stat().st_size for p in dists)),
        "capture": count(out), "old": count(old), "fallback": (1, (work / "fallback.tgz").stat().st_size)}
    for command in serve:
        shutil.rmtree(project / ".venv", ignore_errors=True)
        shutil.rmtree(work / "venv", ignore_errors=True)
        row[f"offline: {command}"] = sh(UV.served_command(command, str(out)), project, env, offline=True)
    shutil.rmtree(project / ".venv", ignore_errors=True)
    shutil.rmtree(work / "venv", ignore_errors=True)
    before = f"export UV_CACHE_DIR={old} UV_OFFLINE=1 UV_LINK_MODE=copy && {serve[0]}"
    row[f"offline, the capture before: {serve[0]}"] = sh(before, project, env, offline=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default=shutil.which("uv") or "uv")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    uv = str(Path(args.uv).resolve())
    version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="uvsize-") as tmp:
        work = Path(tmp)
        project = work / "svc"
        project.mkdir()
        (project / "pyproject.toml").write_text(PYPROJECT)
        env = dict(os.environ, UV=uv, PATH=f"{Path(uv).parent}:{os.environ['PATH']}", UV_NO_PROGRESS="1")
        env.pop("VIRTUAL_ENV", None)
        sh(f"{uv} lock -q && {uv} export -q --no-hashes --no-emit-project -o requirements.txt", project, env)
        packages = (project / "uv.lock").read_text().count("[[package]]")
        pip = f"{uv} venv -q {work}/venv && VIRTUAL_ENV={work}/venv {uv} pip install -r requirements.txt"
        forms = {f"{uv} sync --locked": [f"{uv} sync", f"{uv} sync --frozen", f"{uv} sync --locked"],
                 pip: [pip]}
        runs = [[measure(project, form, serve, work, env) for form, serve in forms.items()] for _ in range(args.runs)]
    text = report(runs, version, packages, args.runs).replace(uv, "uv").replace(str(work), "$WORK")
    print(text)
    if args.out:
        args.out.write_text(replace_section(args.out.read_text(), SECTION, text))


WHY = """\
Why the cache is rebuilt rather than uv pointed at the files: with an empty cache, `UV_OFFLINE=1` and
`UV_FIND_LINKS=<the wheels>` (with or without `UV_NO_INDEX=1`), `uv sync --frozen` and plain `uv sync` fail with
"Network connectivity is disabled, but the requested data wasn't found in the cache: <the lock's URL of the
wheel>": a locked sync installs from the lock's own file URLs and reads only the cache for them. The
capture therefore carries the files uv downloaded (refetched by the URL and hash of each cache entry, and
checked) and uv's cache without the unpacked wheels (one `uv-cache.tgz`: index pages, entries, links, the
wheels uv built from sdists); the served command unzips each wheel where uv had unpacked it. The fallback
weighed (the whole cache as one tar.gz) is smaller still in bytes, but carries no wheel or sdist as uv
downloaded it, so the SBOM could hash nothing; the capture before also counted every unpacked wheel twice
(`cp -RL` follows each entry's link to its unpacked folder). What it costs: the offline step first rebuilds
the cache (19,000 files with Python's zipfile: 4.5 s alone, 13 s with a build running beside it), so it takes about twice as long as
from the old capture; with the scratch cache on the step's own file system `UV_LINK_MODE=copy` is no longer
needed, and uv's default hard links took the install itself from 5.3 s to 2.1 s (not yet done)."""


def report(runs: list[list[dict[str, object]]], version: str, packages: int, n: int) -> str:
    lines = [SECTION, "",
             f"`.venv/bin/python benchmarks/uvsize.py --uv UV --runs {n}` (UV: a `pip install uv` venv's) on x86_64, 2 cores, "
             f"{version}, on the host (no engine; offline = `unshare -n`). A project of {packages} locked packages "
             f"({', '.join(DEPENDENCIES)}; docopt is an sdist). Sizes from the first run; "
             f"times: medians of {n}. Target: capture bytes <= 1.2x and files <= 2x + 100 of the downloaded "
             "distributions.", ""]
    for form_runs in zip(*runs):
        first = form_runs[0]
        files, size = first["downloaded"]  # type: ignore[misc]
        lines += [f"**`{first['form']}`**", "", "| what | files | bytes | files vs downloaded | bytes vs downloaded |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for key, label in (("downloaded", "distributions uv downloaded (wheels, sdists)"),
                           ("capture", "the capture now (those + uv-cache.tgz + uv-archives.tsv)"),
                           ("old", "the capture before (cache, `cp -RL`)"),
                           ("fallback", "fallback weighed: the cache as one tar.gz")):
            f, b = first[key]  # type: ignore[misc]
            lines.append(f"| {label} | {f} | {b / 1e6:.2f} MB | {f / files:.2f}x (target <= {2 * files + 100}) "
                         f"| {b / size:.3f}x |")
        lines += ["", "| time | median s |", "| --- | ---: |"]
        for key in [k for k in first if k == "capture_online_s" or k.startswith("offline")]:
            lines.append(f"| {key.replace('capture_online_s', 'online capture (install + fetch + pack)')} | "
                         f"{statistics.median(float(r[key]) for r in form_runs):.2f} |")  # type: ignore[arg-type]
        lines.append("")
    lines += [WHY, "", "Raw runs:", "", "```", *(repr(r) for run in runs for r in run), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

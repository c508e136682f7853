"""The package imports, and its cache lock works, where there is no ``fcntl`` (Windows laptops)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# invoke and the standard library pick their own platform's branch (msvcrt on Windows) and are
# imported first; from then on `import fcntl` fails, as it does on Windows, for everything of ours.
WITHOUT_FCNTL = textwrap.dedent("""
    import subprocess, sys
    import invoke, invoke.runners
    sys.modules["fcntl"] = None
    import offline_build.cli, offline_build.tasks
    import offline_build.config, offline_build.plan, offline_build.lint, offline_build.dockerfile
    from pathlib import Path
    from offline_build.errors import OfflineBuildError
    from offline_build.state import lock
    cache = Path(sys.argv[1])
    with lock(cache):
        try:
            with lock(cache):
                raise SystemExit("a second lock was taken while the first was held")
        except OfflineBuildError as exc:
            assert "another offline-build is working on" in str(exc), exc
    with lock(cache):
        pass
    print("locked, refused, released")
""")


def test_the_package_imports_and_locks_without_fcntl(tmp_path: Path) -> None:
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", WITHOUT_FCNTL, str(tmp_path / "cache")], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": path}, check=False, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "locked, refused, released\n"


def test_no_module_of_ours_imports_fcntl() -> None:
    """POSIX-only modules stay out of the package; the lock's platform choice is filelock's."""
    src = ROOT / "src" / "offline_build"
    found = [str(p.relative_to(src)) for p in src.rglob("*.py")
             if any(line.strip().startswith(("import fcntl", "from fcntl")) for line in p.read_text().splitlines())]
    assert found == []

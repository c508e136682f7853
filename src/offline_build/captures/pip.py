"""The pip capture: the wheels a ``pip install`` step needs, built online for the step's own interpreter.

Capture mode runs the step as written, then asks the same pip (a venv's, or
``python3 -m pip``) what the step added (``pip freeze`` before and after)
and turns each into a wheel with ``pip wheel --no-deps --use-pep517`` (an
isolated build, so a ``setup.py`` project builds without ``wheel`` in the
step's own environment): a package that
exists only as an sdist is built once, online, in the very stage (same
Python, same architecture) that will install it offline. ``setuptools`` and
``wheel`` come along, so a local project (``pip install .``) still builds
offline. Served offline with ``PIP_NO_INDEX=1`` and ``PIP_FIND_LINKS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .. import capture_names as names
from .base import Package
from .lang import LangCapture, StepNeed, ca_env, quoted

_REQUIREMENTS = re.compile(r"(?:^|\s)(?:-r|--requirement)(?:=|\s+)(\S+)")
# The packaging specs' file names: {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl, {name}-{version}.tar.gz
_WHEEL = re.compile(r"(?P<name>[^-/]+)-(?P<version>[^-/]+)(?:-\d[^-/]*)?-[^-/]+-[^-/]+-[^-/]+\.whl")
_SDIST = re.compile(r"(?P<name>[^/]+)-(?P<version>[^-/]+)\.(?:tar\.gz|zip)")


class PipCapture(LangCapture):
    name = names.PIP
    ca_variables = ("PIP_CERT",)
    missing = re.compile(r"No matching distribution found for ([^\s;]+)")

    def serve_env(self, target: str) -> str:
        return f"PIP_NO_INDEX=1 PIP_FIND_LINKS={target} PIP_DISABLE_PIP_VERSION_CHECK=1"

    def capture_command(self, command: str, out: str, need: StepNeed) -> str:
        launchers = list(dict.fromkeys(i.launcher for i in need.installs))
        before = " ".join(f"{{ {quoted(pip)} freeze --all 2>/dev/null || true; }} | sort > /tmp/.ob-pip-{n}.before;"
                          for n, pip in enumerate(launchers))
        after = " && ".join(
            f"{quoted(pip)} freeze --all --exclude-editable | sed '/ @ /d' | sort > /tmp/.ob-pip-{n}.after"
            f" && comm -13 /tmp/.ob-pip-{n}.before /tmp/.ob-pip-{n}.after > /tmp/.ob-pip-{n}.new"
            f" && {{ if [ -s /tmp/.ob-pip-{n}.new ]; then {quoted(pip)} wheel --no-deps --use-pep517 --wheel-dir {out}"
            f" -r /tmp/.ob-pip-{n}.new; fi; }}"
            f" && {quoted(pip)} wheel --no-deps --wheel-dir {out} setuptools wheel"
            for n, pip in enumerate(launchers))
        return f"{ca_env(self.ca_variables)}mkdir -p {out} && {before} ( {command} ) && {after}"

    def changed_in(self, step_text: str) -> str:
        return " or ".join(dict.fromkeys(_REQUIREMENTS.findall(step_text))) or "what this step installs"

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """The wheels (and any sdist) ``pip wheel`` left flat in each key's folder."""
        return [p for path in paths if path.count("/") == 1 and (p := distribution(path))]


def distribution(path: str) -> Package | None:
    """The PyPI package a wheel or sdist file is, by its name.

    The file name goes in the purl (``file_name``): one version has a wheel per
    Python and platform, and two steps may have captured different ones.
    """
    file = path.rsplit("/", 1)[-1]
    found = _WHEEL.fullmatch(file) or _SDIST.fullmatch(file)
    if found is None:
        return None
    return Package("pypi", found["name"], found["version"], path, qualifiers=(("file_name", file),))


def canonical_name(name: str) -> str:
    """A PyPI name as PyPI compares names (and a purl writes them): ``Zope_Interface`` is ``zope-interface``."""
    return re.sub(r"[-_.]+", "-", name).lower()


PIP = PipCapture()

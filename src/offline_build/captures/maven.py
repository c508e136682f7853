"""The Maven capture: the local repository a ``mvn`` step filled online, served with ``-o``.

Capture mode runs the step as written (the user's ``settings.xml`` and its
mirror included) with ``maven.repo.local`` pointed at the capture folder
(through ``MAVEN_OPTS``, so ``./mvnw`` and a full path to ``mvn`` honour it
too). What lands there is everything the real goals loaded: the
dependencies and every plugin Maven resolves lazily while it runs them,
which ``dependency:go-offline`` is known to miss. The resolver's
bookkeeping is dropped: ``_remote.repositories`` would tie each file to
the repository id it came from (a site whose settings name another
mirror would then refuse it offline), ``*.lastUpdated`` and
``resolver-status.properties`` record failures and times.

Offline the folder is mounted read-write as the local repository (the
build's own ``install`` and the resolver's notes go there and are thrown
away) and every ``mvn`` of the step gets ``-o``: nothing goes to the
network, ``-U`` included, and an artifact the export did not capture fails
at once, naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .. import capture_names as names
from .base import Package
from .lang import LangCapture, StepNeed

# ``mvn`` / ``./mvnw`` / ``/usr/bin/mvn`` where a command starts: after ``&&``, ``;``, ``|``, ``(``,
# ``then``/``do``/``else``, the quote of ``sh -c '...'``, and behind ``VAR=value`` or ``time``/``nohup``/
# ``sudo``/``env``/``exec``. A quoted ``'mvn'`` elsewhere (``grep -q 'mvn'``) is an argument, not a command.
_MVN = re.compile(r"(?P<lead>(?:^|[;&|(`]|\b(?:then|do|else)\s|-c\s+['\"])\s*"
                  r"(?:(?:[A-Za-z_]\w*=\S*|time|nohup|sudo|env|exec)\s+)*)"
                  r"(?P<mvn>(?:[\w.~${}/-]*/)?mvnw?)(?=\s|$|[;&|)'\"])")
_BOOKKEEPING = r"\( -name _remote.repositories -o -name '*.lastUpdated' -o -name resolver-status.properties \)"
# A file of the local repository: <key>/<group as folders>/<artifact>/<version>/<file>.
_REPO_FILE = re.compile(r"(?P<key>[^/]+)/(?P<group>.+)/(?P<artifact>[^/]+)/(?P<version>[^/]+)/(?P<file>[^/]+)")
_CHECKSUMS = (".sha1", ".md5", ".sha256", ".sha512", ".asc")


def with_flags(command: str, flags: str) -> str:
    """*command* with *flags* right after every ``mvn`` that starts a command."""
    return _MVN.sub(lambda m: f"{m['lead']}{m['mvn']} {flags}", command)


def offline_mvn(command: str, repo: str = "") -> str:
    """*command* with ``-o`` (and the capture as local repository) after every ``mvn`` that starts a command."""
    return with_flags(command, f"-o -Dmaven.repo.local={repo}" if repo else "-o")


class MavenCapture(LangCapture):
    name = names.MAVEN
    rw = True
    ca_variables = ()  # Java reads a trust store, not a PEM file: the user's settings and JDK decide
    missing = re.compile(r"the artifact (\S+) has not been downloaded from it before")
    changed = "pom.xml (a dependency or plugin added or changed)"

    def serve_env(self, target: str) -> str:
        return f'MAVEN_OPTS="-Dmaven.repo.local={target} ${{MAVEN_OPTS:-}}"'

    # The repository is given twice: in MAVEN_OPTS for an ``mvn`` the rewrite cannot see (a script's), and on
    # the command line, which wins over a ``MAVEN_OPTS=...`` the step sets itself.
    def served_command(self, command: str, target: str) -> str:
        return f"export {self.serve_env(target)} && {offline_mvn(command, target)}"

    def capture_command(self, command: str, out: str, need: StepNeed) -> str:
        return (f"mkdir -p {out} && export {self.serve_env(out)} && ( {with_flags(command, f'-Dmaven.repo.local={out}')} ) "
                f"&& find {out} {_BOOKKEEPING} -type f -delete")

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """One package per group/artifact/version, the file that is it: ``<artifact>-<version>.jar``, else the
        main file of another type, else the pom (a pom-only artifact: a parent, a BOM, or one resolved for its
        dependency management only). Classified files (``-sources.jar``) and checksums are part of it, not packages.
        """
        by_version: dict[tuple[str, str, str, str], list[str]] = {}
        for path in paths:
            m = _REPO_FILE.fullmatch(path)
            if m and m["file"].startswith(f"{m['artifact']}-{m['version']}.") and not m["file"].endswith(_CHECKSUMS):
                by_version.setdefault((m["key"], m["group"], m["artifact"], m["version"]), []).append(path)
        found = []
        for (_, group, artifact, version), files in sorted(by_version.items()):
            main = min(files, key=lambda p: (not p.endswith(".jar"), p.endswith(".pom"), p))
            kind = main.rsplit(".", 1)[-1]
            found.append(Package("maven", artifact, version, main, group.replace("/", "."),
                                 () if kind == "jar" else (("type", kind),)))
        return found


MAVEN = MavenCapture()

"""What ``offline.verify`` measures of the engine before it may call a build a proof.

A proof says "these builds need no network and nothing but the bundle". Two
things could make it lie, so both are measured, never assumed:

- *air-tightness*: a probe build, with the bundle's network mode, lists the
  network interfaces its steps see and tries one short TCP connect (no
  payload) to each host the export reached: the hosts named by URLs in the
  services' ``RUN`` steps, the resources' sources and the captured APT
  sources. Any answer means a step that needs the network could pass here.
- *emptiness*: build cache records (BuildKit cannot say whose, so any
  counts) and images of this project in the engine, from which a step could
  pass although the bundle does not carry it.

The functions that build text and read results are pure; the two that ask
the engine are at the end.
"""

from __future__ import annotations

import json
import re
import shlex
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from .config import Project
from .dockerfile import parse
from .engine import engine_message
from .errors import EngineError

# scheme://host[:port] in a step's text; user:password@ and the path are not the host.
_URL = re.compile(r"\b(?P<scheme>https?|git|ftp)://(?:[^@/\s'\"]+@)?(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)"
                  r"(?::(?P<port>\d+))?")
_PORTS = {"http": 80, "https": 443, "git": 9418, "ftp": 21}
# APT names a list file after its source: <host>_<path>_dists_<suite>_... (the port, if any, as %3a).
_APT_LIST = re.compile(r"^(?P<host>[A-Za-z0-9.-]+)(?:%3a(?P<port>\d+))?_.*_(?:In)?Release$")


@dataclass(frozen=True, order=True)
class Target:
    """A host the export reached, and where the project names it."""

    host: str
    port: int
    why: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Airtightness:
    result: str  # "air-tight" | "reached" | "not measured"
    detail: str
    reached: tuple[Target, ...] = ()
    loopback_only: bool = False  # the steps saw no network at all: air-tight for every host, not only those tried

    def title(self) -> str:
        """What the report's title may say: no more than was measured."""
        if self.result == "air-tight":
            return "air-tight (measured: loopback only)" if self.loopback_only else \
                "no named host reachable (measured; hosts no file names not tried)"
        return {"reached": "NOT air-tight (measured)"}.get(self.result, "air-tightness not measured")

    def as_record(self) -> dict[str, object]:
        return {"measured": self.result != "not measured", "result": self.result, "detail": self.detail}


@dataclass(frozen=True)
class Emptiness:
    records: int  # build cache records
    size: int  # their bytes
    images: tuple[str, ...]  # this project's images in the engine
    unmeasured: str = ""  # why the build cache could not be measured (then it is never "empty")

    @property
    def empty(self) -> bool:
        return not self.records and not self.images and not self.unmeasured

    def title(self) -> str:
        if self.unmeasured:
            return "build cache not measured"
        return "empty build cache (measured)" if self.empty else "build cache NOT empty (measured)"

    def describe(self) -> str:
        held = []
        if self.records:
            held.append(f"{self.records} build cache record(s), {self.size / 1e6:.1f} MB")
        if self.images:
            held.append(f"this project's image(s) {', '.join(self.images)}")
        if self.unmeasured:
            held.append(self.unmeasured)
        return "; ".join(held) if held else "no build cache, none of this project's images"

    def as_record(self) -> dict[str, object]:
        result = "not measured" if self.unmeasured else "empty" if self.empty else "not empty"
        return {"measured": not self.unmeasured, "result": result, "detail": self.describe()}


def url_targets(text: str, why: str) -> list[Target]:
    """The hosts the URLs in *text* name, each with its scheme's port unless one is given."""
    return [Target(m["host"].strip("[]").lower(), int(m["port"] or _PORTS[m["scheme"]]), why)
            for m in _URL.finditer(text)]


def apt_targets(apt_dir: Path) -> list[Target]:
    """The APT sources the capture's lists came from, on 80 and 443 (a list's name does not say the scheme)."""
    names = {p.name for p in apt_dir.glob("*/*/lists/*")} if apt_dir.is_dir() else set()
    return [Target(m["host"].lower(), port, "an APT source the export captured")
            for m in map(_APT_LIST.match, sorted(names)) if m
            for port in ((int(m["port"]),) if m["port"] else (80, 443))]


def targets(project: Project, apt_dir: Path) -> tuple[Target, ...]:
    """Every host the export reached that the project names, once per address (the first reason kept)."""
    found: list[Target] = []
    for service in project.services.values():
        df = parse(service.dockerfile, dict(service.build_args))
        for stage in df.stages:
            for ins in stage.instructions:
                if ins.cmd in ("RUN", "ADD"):
                    found += url_targets(ins.original, f"{service.dockerfile.name}:{ins.line} ({service.name})")
    for res in project.resources:
        found += url_targets(res.source, f"resource {res.name}")
    found += apt_targets(apt_dir)
    unique: dict[str, Target] = {}
    for t in found:
        unique.setdefault(t.address, t)
    return tuple(unique.values())


# The probe: POSIX sh. bash's /dev/tcp or Python's socket make the connect; a base image with neither is
# "untested", never "closed" (a missing tool must not read as an air gap).
_PROBE = r"""
for i in $(ls /sys/class/net 2>/dev/null); do echo "iface $i"; done
env | grep -i '^[a-z_]*_proxy=.' | sed 's/^/proxy /'
connect() {
  if command -v bash >/dev/null 2>&1; then
    if command -v timeout >/dev/null 2>&1; then timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2"; else bash -c "exec 3<>/dev/tcp/$1/$2"; fi
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)' "$1" "$2"
  else
    return 99
  fi
}
for t in $TARGETS; do
  connect "${t%:*}" "${t##*:}" >/dev/null 2>&1
  case $? in 0) echo "reached $t" ;; 99) echo "untested $t" ;; *) echo "closed $t" ;; esac
done
"""


def probe_dockerfile(base: str, found: Iterable[Target]) -> str:
    """A build whose one step, run with the bundle's network mode, reports what that mode can reach."""
    addresses = " ".join(t.address for t in found)
    return (f"FROM {base} AS probe\n"
            "COPY probe.sh /offline-build-probe.sh\n"
            f"RUN TARGETS={shlex.quote(addresses)} sh /offline-build-probe.sh > /offline-build-probe.txt 2>&1 || true\n"
            "FROM scratch\nCOPY --from=probe /offline-build-probe.txt /\n")


def judge(report: str, found: tuple[Target, ...], network: str | None) -> Airtightness:
    """Air-tight when the steps see only loopback and no host answered, or when every host was tried and none
    answered (then only for those hosts: the title says so). A proxy in the steps' environment, a missing
    connect tool or a silent probe measure nothing."""
    lines = [line.split(None, 1) for line in report.splitlines() if " " in line]
    interfaces = sorted(v for k, v in lines if k == "iface")
    proxies = sorted(v.split("=", 1)[0] for k, v in lines if k == "proxy")
    by_address = {t.address: t for t in found}
    reached = tuple(by_address[v] for k, v in lines if k == "reached" and v in by_address)
    untested = [v for k, v in lines if k == "untested"]
    mode = f"--network {network or 'default'}"
    seen = f"build steps ({mode}) see {', '.join(interfaces) or 'no interface'}"
    if reached:
        named = ", ".join(f"{t.address} ({t.why})" for t in reached)
        return Airtightness("reached", f"{seen}; reached {named}", reached)
    if interfaces == ["lo"]:
        return Airtightness("air-tight", f"{seen}: no network but loopback"
                            + (f"; none of {len(found)} host(s) the export reached answered" if found else ""),
                            loopback_only=True)
    if proxies:
        return Airtightness("not measured", f"{seen}, and a proxy ({', '.join(proxies)}): a step reaches through "
                                            "it what a direct connect does not")
    if untested or not interfaces:
        why = "the base image has neither bash nor python3 to connect with" if untested else "the probe said nothing"
        return Airtightness("not measured", f"{seen}; {why}")
    if not found:
        return Airtightness("not measured", f"{seen}, and the project names no host the export reached to try")
    tested = {v for k, v in lines if k == "closed"}
    if tested != set(by_address):
        return Airtightness("not measured", f"{seen}; the probe tried {len(tested)} of {len(found)} host(s)")
    return Airtightness("air-tight", f"{seen}; none of the {len(found)} host(s) the project names answered "
                                     f"({', '.join(sorted(by_address))}); hosts no file names were not tried")


def could_serve(record: Mapping[str, object]) -> bool:
    """Could this build cache record make a step pass that the bundle does not carry?

    Not an upload of a build's context or Dockerfile (``source.local``: files,
    no step's result), nor the image the engine's capability probe makes
    (:func:`offline_build.engine.probe`, named ``probe``): setup leaves both.
    """
    if record.get("CacheType") == "source.local":
        return False
    return "/library/probe@" not in str(record.get("Description", ""))


_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def size_bytes(text: str) -> int:
    """``10.24kB`` (docker's units) as bytes; 0 for what it cannot read (a size is only reported)."""
    found = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]+)", text.strip())
    return int(float(found[1]) * _UNITS[found[2]]) if found and found[2] in _UNITS else 0


def project_images(project: Project, tags: Iterable[str], service_images: Mapping[str, str]) -> tuple[str, ...]:
    """The engine's *tags* that are this project's: a service's image, its classic build or captures image
    (``<project>-<service>-classic``, ``-captures``), a preinstalled base (``<project>-<base>-apt``)."""
    names = {ref.rsplit(":", 1)[0] for ref in service_images.values()}
    services = "|".join(re.escape(s) for s in service_images)
    ours = re.compile(rf"^{re.escape(project.name)}-(?:(?:{services})-(?:classic|captures)|.+-apt)$")
    return tuple(sorted(t for t in tags if (name := t.rsplit(":", 1)[0]) in names or ours.match(name)))


# --- the engine ---------------------------------------------------------------


def measure_emptiness(docker: DockerClient, project: Project, service_images: Mapping[str, str]) -> Emptiness:
    """The engine's own build cache (``docker system df``) and this project's images."""
    try:
        tags = [t for image in docker.image.list() for t in image.repo_tags]
    except DockerException as exc:
        raise EngineError(f"could not list the engine's images: {engine_message(exc)}") from None
    return emptiness_of(project, cache_records(docker), tags, service_images)


def emptiness_of(project: Project, records: Iterable[Mapping[str, object]], tags: Iterable[str],
                 service_images: Mapping[str, str]) -> Emptiness:
    """What of *records* and *tags* could serve this project's build. A named builder keeps its cache where
    ``docker system df`` does not look: then the build cache is "not measured", never empty."""
    held = [r for r in records if could_serve(r)]
    unmeasured = (f"the build cache of builder {project.builder.named!r}, which docker system df does not see"
                  if project.builder.named else "")
    return Emptiness(len(held), sum(size_bytes(str(r.get("Size", "0B"))) for r in held),
                     project_images(project, tags, service_images), unmeasured)


def cache_records(docker: DockerClient) -> list[dict[str, object]]:
    """The engine's build cache records, as ``docker system df -v`` lists them."""
    try:
        listed = run([*docker.client_config.docker_cmd, "system", "df", "-v", "--format", "{{json .BuildCache}}"])
    except DockerException as exc:
        raise EngineError(f"could not measure the engine's build cache: {engine_message(exc)}") from None
    return [r for r in json.loads(listed or "[]") or [] if isinstance(r, dict)]


def drop_records(docker: DockerClient, ids: Iterable[str]) -> None:
    """Prune just these build cache records (the probe's, on an engine whose own cache must stay)."""
    for record in ids:
        run([*docker.client_config.docker_cmd, "builder", "prune", "--force", "--filter", f"id={record}"])


def probe(docker: DockerClient, base: str, contexts: Mapping[str, str], found: tuple[Target, ...],
          network: str | None, work: Path, builder: str | None = None) -> Airtightness:
    """Run the probe build on the engine; a build that cannot run measures nothing (and says why)."""
    with tempfile.TemporaryDirectory(dir=work, prefix="probe-") as tmp:
        folder = Path(tmp)
        (folder / "Dockerfile").write_text(probe_dockerfile(base, found))
        (folder / "probe.sh").write_text(_PROBE.lstrip())
        try:
            docker.buildx.build(folder, file=folder / "Dockerfile", network=network, cache=False, progress=False,
                                builder=builder,
                                build_contexts=dict(contexts), output={"type": "local", "dest": str(folder / "out")})
        except DockerException as exc:
            return Airtightness("not measured", f"the probe build failed: {engine_message(exc)}")
        report = folder / "out" / "offline-build-probe.txt"
        return judge(report.read_text(errors="replace") if report.is_file() else "", found, network)

"""The uv capture: the distributions uv downloaded, plus uv's cache without its unpacked wheels.

uv keeps no wheel as a file: it unpacks each into ``archive-v0/<id>`` and
links its index entry there (a real service's cache: 28,408 files, 1 GB).
Its own offline mode reads that cache only: with ``UV_OFFLINE`` a locked
``uv sync`` installs from the lock's file URLs, and neither ``UV_FIND_LINKS``
nor a local index stands in for them ("Network connectivity is disabled, but
the requested data wasn't found in the cache"; seen with uv 0.13.9).

So capture mode runs the step with ``UV_CACHE_DIR`` in a scratch folder,
then fetches again, by the URL and hash each entry's ``.http`` file names,
the very files uv unpacked (wheels and sdists, byte for byte; the SBOM hashes
them), and keeps the rest of the cache (index pages, entries, links, wheels
built from sdists) as one archive, plus a list of which unpacked folder is
which wheel. Offline, the served command rebuilds a scratch cache from those
(the archive, then each wheel unzipped where uv had it) before the step runs
with ``UV_OFFLINE=1``; ``uv sync`` (``--frozen``, ``--locked`` or neither)
and ``uv pip install`` then find what they found online. Both helpers are
Python run by the step's own interpreter: a uv image has one, not always
curl or unzip.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence

from .. import capture_names as names
from .base import Package
from .lang import LangCapture, StepNeed, ca_env, quoted
from .pip import canonical_name, distribution

_SCRATCH = "/tmp/.offline-build-uv-cache"
CACHE_ARCHIVE = "uv-cache.tgz"  # the cache without the folders the wheels rebuild
ARCHIVES = "uv-archives.tsv"  # <unpacked folder in the cache> TAB <capture|cache> TAB <wheel, from there>

# Capture: argv = cache, out. A .http entry names the file's URL and hash; a link from an entry to
# archive-v*/<id> is the wheel unpacked (a sibling <link>.whl: a wheel uv built, kept in the cache).
CAPTURE = r'''
import hashlib, os, re, ssl, sys, tarfile, urllib.error, urllib.parse, urllib.request
cache, out = sys.argv[1:3]
url_re = re.compile(rb"(?:https?|file)://[!-~]+?\.(?:whl|tar\.gz|zip|tar\.bz2|tgz)(?![!-~])")
hex_re = re.compile(rb"[0-9a-f]{64}")
def get(url):
    try:
        return urllib.request.urlopen(url).read()
    except urllib.error.URLError as e:
        if not isinstance(e.reason, ssl.SSLCertVerificationError):
            raise
    try:  # no CA bundle in the image (uv trusts its own roots): pip's, if there is one
        from pip._vendor import certifi
    except ImportError:
        sys.exit("offline-build: Python here trusts no CA for " + url + " (uv has its own roots): install "
                 "ca-certificates in this stage, or give the project a ca_file")
    return urllib.request.urlopen(url, context=ssl.create_default_context(cafile=certifi.where())).read()
def fetch(http):
    body = open(http, "rb").read()
    urls = url_re.findall(body)
    if not urls:
        return None
    url = urls[-1].decode()
    name = urllib.parse.unquote(url.rsplit("/", 1)[1])
    dest = os.path.join(out, name)
    if not os.path.exists(dest):
        data = get(url)
        hashes = hex_re.findall(body)
        if hashes and hashlib.sha256(data).hexdigest().encode() not in hashes:
            sys.exit("offline-build: " + name + " differs from what uv downloaded")
        with open(dest + ".part", "wb") as f:
            f.write(data)
        os.replace(dest + ".part", dest)
    return name
rows = {}
for root, dirs, files in os.walk(cache):
    if not re.match(r"(wheels|sdists)-v\d+$", os.path.relpath(root, cache).split(os.sep)[0]):
        continue
    for entry in sorted(files + dirs):
        link = os.path.join(root, entry)
        if not os.path.islink(link):
            continue
        arch = os.path.relpath(os.path.realpath(link), os.path.realpath(cache))
        if os.path.isfile(link + ".whl"):
            rows[arch] = ("cache", os.path.relpath(link + ".whl", cache))
        elif os.path.isfile(link + ".http"):
            name = fetch(link + ".http")
            if name and name.endswith(".whl"):
                rows[arch] = ("capture", name)
    for entry in files:
        if entry.endswith(".http") and not os.path.islink(os.path.join(root, entry[:-5])):
            fetch(os.path.join(root, entry))
with tarfile.open(os.path.join(out, "uv-cache.tgz"), "w:gz") as tar:
    for root, dirs, files in os.walk(cache):
        rel = os.path.relpath(root, cache)
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]  # walked past, not into
        dirs[:] = sorted(d for d in dirs if os.path.normpath(os.path.join(rel, d)) not in rows and d not in links)
        for entry in [None] + sorted(files + links):
            path = root if entry is None else os.path.join(root, entry)
            tar.add(path, os.path.relpath(path, cache), recursive=False)
with open(os.path.join(out, "uv-archives.tsv"), "w") as f:
    f.writelines(a + "\t" + b + "\t" + c + "\n" for a, (b, c) in sorted(rows.items()))
'''

# Serve: argv = capture, scratch cache. Zip files keep no modes but in external_attr: uv sets the
# executable ones, so this does too.
SERVE = r'''
import os, sys, tarfile, zipfile
src, dst = sys.argv[1:3]
with tarfile.open(os.path.join(src, "uv-cache.tgz")) as tar:
    tar.extractall(dst, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
for line in open(os.path.join(src, "uv-archives.tsv")):
    arch, where, name = line.rstrip("\n").split("\t")
    with zipfile.ZipFile(os.path.join(src if where == "capture" else dst, name)) as wheel:
        for member in wheel.infolist():
            path = wheel.extract(member, os.path.join(dst, arch))
            if member.external_attr >> 16 & 0o111:
                os.chmod(path, 0o755)
'''

# An older capture's layout (the whole cache, links followed), still read for the SBOM: uv keeps a
# wheel unpacked (archive-v0/<id>/<name>-<version>.dist-info/...), and as a file only the wheels it
# built from an sdist (sdists-v<n>/<index>/<name>/<version>/<id>/<file>.whl); seen with uv 0.13.
_UNPACKED = re.compile(r"(?P<key>[^/]+)/(?P<at>archive-v\d+/[^/]+)/"
                       r"(?P<name>[^-/]+)-(?P<version>[^-/]+)\.dist-info/METADATA")
_BUILT = re.compile(r"[^/]+/sdists-v\d+/.+\.whl")


def inline(script: str) -> str:
    """*script* as one shell word on one line (a Dockerfile's ``RUN`` is one line): printf gives the lines back."""
    return '"$(printf \'%s\\n\' ' + " ".join(shlex.quote(line) for line in script.strip("\n").splitlines()) + ')"'


def python(uv: str) -> str:
    """A shell word for the step's Python: python3 on the PATH, else the interpreter uv itself would use."""
    return f'"$(command -v python3 || {uv} python find)"'


class UvCapture(LangCapture):
    name = names.UV
    ca_variables = ("SSL_CERT_FILE",)  # uv's, and Python's (OpenSSL's default paths) for the fetch
    missing = re.compile(r"Because (\S+?) was not found in the cache|wasn't found in the cache for `?([^`\s]+)")
    changed = "the lockfile or the requirements"

    def serve_env(self, target: str) -> str:
        # Copy, not hardlink: the scratch cache goes away after the step.
        return f"UV_CACHE_DIR={_SCRATCH} UV_OFFLINE=1 UV_LINK_MODE=copy UV_NO_PROGRESS=1"

    def served_command(self, command: str, target: str) -> str:
        """Rebuild uv's cache from the capture in a scratch folder, run the step, and leave no cache in the layer."""
        return (f"export {self.serve_env(target)} && rm -rf {_SCRATCH} && {python('uv')} -c {inline(SERVE)} "
                f"{target} {_SCRATCH} && ( {command} ) && rm -rf {_SCRATCH}")

    def capture_command(self, command: str, out: str, need: StepNeed) -> str:
        uv = quoted(need.installs[0].launcher)
        return (f"{ca_env(self.ca_variables)}rm -rf {_SCRATCH} && export UV_CACHE_DIR={_SCRATCH} UV_LINK_MODE=copy "
                f"&& ( {command} ) && mkdir -p {out} && {python(uv)} -c {inline(CAPTURE)} {_SCRATCH} {out} "
                f"&& rm -rf {_SCRATCH}")

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """The wheels and sdists uv downloaded (files at the top of a key's folder).

        A capture in the older layout (the whole cache): the wheels uv built
        (files), then every other package as uv kept it, an unpacked wheel with
        no file to hash; a built wheel is unpacked too, and listed once, as the file.
        """
        downloaded = [p for path in paths if path.count("/") == 1 and (p := distribution(path))]
        built = [p for path in paths if _BUILT.fullmatch(path) and (p := distribution(path))]
        unpacked = [Package("pypi", m["name"], m["version"], f"{m['key']}/{m['at']}", whole=False)
                    for m in (_UNPACKED.fullmatch(path) for path in paths) if m]

        def same(p: Package) -> tuple[str, str, str]:
            return p.path.split("/", 1)[0], canonical_name(p.name), p.version

        known = {same(p) for p in built}
        return downloaded + built + [p for p in unpacked if same(p) not in known]


UV = UvCapture()

"""The proof file: what ``offline.verify`` proved of a bundle, written beside it so that it travels with it.

``proofs.json`` is the online machine's own record, and stays there; the
site needs the proof too, to tell a bundle proven before the trip from one
that was not. For ``build-cache-20261204.tar`` (or its ``.parts/`` folder,
or a ``-delta.tar``) the proof is ``build-cache-20261204.proof.json`` beside
it, with ``.minisig`` when a key signed it (the bundle's own signing code).

Its identity is the bundle's: the manifest's sha256. A proof of another
manifest (a re-export under the same name, a proof copied from another
bundle) and a signed proof whose signature no longer matches are refused
with one message; an unsigned one, or one a key not trusted here signed,
only *claims* (diagnose says so). Setup keeps the proof it accepted in
``<cache_dir>/proofs/<manifest sha256>.proof.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from . import __version__, bundle, signing
from .config import Project
from .errors import OfflineBuildError
from .files import write_atomic
from .parts import parts_folder
from .state import record_proof

FORMAT = 1
SUFFIX = ".proof.json"
KEPT = "proofs"  # setup's copies, in the cache folder, by manifest sha256
MAX_PROOF = 1 << 20  # a proof is a few KiB; a larger file is not one, and is not read whole


class ProofError(OfflineBuildError):
    """A proof file that must not be believed: of another bundle, edited after signing, or not a proof."""


class Outcome(Protocol):
    """One service's result as verify reports it (``verify.VerifyOutcome``), without importing verify."""

    @property
    def service(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def steps(self) -> int: ...
    @property
    def cached(self) -> int: ...
    @property
    def detail(self) -> str: ...


@dataclass(frozen=True)
class ServiceResult:
    service: str
    status: str  # "all cached" | "rebuilt offline" | "failed"
    steps: int
    cached: int
    detail: str

    @classmethod
    def of(cls, outcome: Outcome) -> ServiceResult:
        return cls(outcome.service, outcome.status, outcome.steps, outcome.cached, outcome.detail)


@dataclass(frozen=True)
class Proof:
    """What one ``offline.verify`` run proved of the bundle whose manifest hashes to *manifest_sha256*.

    *engine*: ``server_version``, ``image_store`` (containerd or classic) and
    ``platforms`` (those proven, comma-separated). *airtight* and *empty* are
    verify's measures, kept as given; only their ``result`` is read here.
    """

    manifest_sha256: str
    level: str  # "cached" | "edits"
    passed: bool
    when: str  # UTC, ISO 8601 (bundle.now())
    engine: Mapping[str, str]
    airtight: Mapping[str, Any]
    empty: Mapping[str, Any]
    services: tuple[ServiceResult, ...] = ()
    bundle: str = ""  # the file it was proven as (informative: the manifest sha256 is its identity)
    signed_by: str = ""  # written before signing: a stripped signature shows
    tool_version: str = __version__
    format: int = FORMAT

    @property
    def full(self) -> bool:
        """Passed on an engine that could reach nothing and held nothing: the only proof worth the name."""
        return self.passed and self.airtight.get("result") == "air-tight" and self.empty.get("result") == "empty"

    def to_json(self) -> bytes:
        data = asdict(self)
        data["engine"], data["airtight"], data["empty"] = dict(self.engine), dict(self.airtight), dict(self.empty)
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> Proof:
        try:
            data = json.loads(raw)
            version = int(data["format"])
        except (ValueError, KeyError, TypeError):
            raise ProofError(f"{where}: not an offline.verify proof",
                             "remove it, or carry the .proof.json offline.verify wrote beside the bundle") from None
        if version > FORMAT:
            raise ProofError(f"{where}: proof format {version} is newer than this tool reads ({FORMAT})",
                             "upgrade offline-build on this machine to the version that wrote it "
                             f"({data.get('tool_version', '?')})")
        try:
            services = tuple(ServiceResult(str(s["service"]), str(s["status"]), int(s["steps"]), int(s["cached"]),
                                           str(s["detail"])) for s in data["services"])
            return cls(str(data["manifest_sha256"]), str(data["level"]), _bool(data["passed"]), str(data["when"]),
                       _strings(data["engine"]), _object(data["airtight"]), _object(data["empty"]), services,
                       str(data.get("bundle") or ""), str(data.get("signed_by") or ""),
                       str(data.get("tool_version") or ""), version)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProofError(f"{where}: the proof is malformed ({exc})",
                             "copy it again from the online machine, or run offline.verify again there") from None

    def summary(self) -> str:
        """What it proved, in one line: ``edit loop proven <when> on <engine>``, or what fell short."""
        at = f"{shown_when(self.when)} on {describe_engine(self.engine)}"
        run = f"offline.verify{' --edits' if self.level == 'edits' else ''}"
        if not self.passed:
            failed = [s.service for s in self.services if s.status == "failed"]
            return f"{run} failed {at}" + (f" ({', '.join(failed)})" if failed else "")
        if not self.full:
            return f"{run} passed {at}, but " + " and ".join(self._caveats())
        if self.level == "edits":
            return f"edit loop proven {at}"
        return f"builds all cached ({at}); edit loop not proven"

    def _caveats(self) -> list[str]:
        out = []
        if self.airtight.get("result") != "air-tight":
            out.append(f"the engine was not air-tight ({_measure(self.airtight)})")
        if self.empty.get("result") != "empty":
            out.append(f"its build cache was not empty ({_measure(self.empty)})")
        return out


@dataclass(frozen=True)
class ProofClaim:
    """A proof as read here: ``proven`` (a trusted key signed it) or only ``claims`` (unsigned, or by a key not
    trusted here: anyone who could write the file could have written it)."""

    proof: Proof
    path: Path
    state: str  # "proven" | "claims"
    key_id: str = ""  # who signed it ("" unsigned)
    trusted_keys: bool = field(default=False, compare=False)  # were any configured (to say why it only claims)

    def describe(self) -> str:
        """What it proved and who says so, as setup's dry run and diagnose tell it: only ``claims`` unless proven."""
        return f"{'' if self.state == 'proven' else 'claims '}{self.proof.summary()} ({self.why()})"

    def why(self) -> str:
        if self.state == "proven":
            return f"signed by trusted key {self.key_id}"
        if not self.key_id:
            return "unsigned"
        if not self.trusted_keys:
            return f"signed by key {self.key_id}, no trusted key configured"
        return f"signed by key {self.key_id}, not trusted here"


def proof_path(bundle_path: Path) -> Path:
    """The proof's file for a bundle in any of its forms: ``<base>.proof.json`` beside the archive, the delta or
    the parts folder (a part's path names its folder)."""
    folder = parts_folder(bundle_path)
    where = folder if folder is not None else bundle_path
    base = where.name.removesuffix(".parts") if folder is not None else where.name.removesuffix(".tar")
    return where.with_name(base + SUFFIX)


def signature_path(path: Path) -> Path:
    return path.with_name(path.name + ".minisig")


def kept_path(cache_dir: Path, manifest_sha256: str) -> Path:
    return cache_dir / KEPT / f"{manifest_sha256}{SUFFIX}"


def write_proof(bundle_path: Path, proof: Proof, signer: signing.Signer | None) -> Path:
    """Write *proof* beside the bundle (and its signature when *signer* is given); returns the proof's path."""
    path = proof_path(bundle_path)
    signed = replace(proof, signed_by=signer.key_id if signer else "",
                     bundle=proof.bundle or _bundle_name(bundle_path))
    raw = signed.to_json()
    try:
        if signer is not None:  # the signature first: the proof never stands beside a signature of another
            write_atomic(signature_path(path), signer.sign(raw, _comment(signed)))
        else:
            signature_path(path).unlink(missing_ok=True)  # an earlier signed proof of the same name signed another
        write_atomic(path, raw)
    except OSError as exc:
        raise ProofError(f"cannot write the proof {path} ({exc.strerror})",
                         "make the bundle's folder writable, or verify a copy of the bundle in one") from None
    return path


def read_proof(path: Path, manifest_sha256: str, trusted: tuple[Path, ...]) -> ProofClaim:
    """The proof in *path* of the bundle whose manifest hashes to *manifest_sha256*, judged with the *trusted*
    public keys; raises :class:`ProofError` when it must not be believed at all."""
    where = str(path)
    raw = _read(path, MAX_PROOF)
    proof = Proof.from_json(raw, where)
    if proof.manifest_sha256 != manifest_sha256:
        raise ProofError(f"{where}: borrowed from another bundle (it proves manifest {proof.manifest_sha256[:12]}, "
                         f"this bundle's is {manifest_sha256[:12]})",
                         f"carry the proof offline.verify wrote for this very bundle (run it on this bundle), "
                         f"or remove {path.name}")
    sig_path = signature_path(path)
    signature = _read(sig_path, bundle.MAX_SIGNATURE) if sig_path.is_file() else None
    keys = signing.load_trusted(trusted)
    try:
        # No key first: the signature's own key id, a stripped or swapped signature refused, nothing verified yet.
        claimed = signing.verdict(raw, signature, (), where, proof.signed_by)
    except signing.SigningError as exc:
        raise ProofError(exc.message, exc.hint) from None
    by_id = {signing.key_id(k): k for k in keys}
    if claimed.state == "unsigned" or claimed.key_id not in by_id:
        return ProofClaim(proof, path, "claims", claimed.key_id, bool(keys))
    try:
        signing.verdict(raw, signature, (by_id[claimed.key_id],), where, proof.signed_by)
    except signing.SigningError:
        raise ProofError(f"{where}: edited after signing (its signature by key {claimed.key_id} does not match it)",
                         "do not trust it: copy the proof and its .minisig again from the online machine, "
                         "or run offline.verify there again") from None
    return ProofClaim(proof, path, "proven", claimed.key_id, True)


def beside(bundle_path: Path, manifest_sha256: str, trusted: tuple[Path, ...]) -> ProofClaim | None:
    """The proof carried with the bundle, judged (None: none was carried)."""
    path = proof_path(bundle_path)
    return read_proof(path, manifest_sha256, trusted) if path.is_file() else None


def keep(cache_dir: Path, claim: ProofClaim) -> Path:
    """Copy an accepted proof (and its signature) into the cache folder, by manifest: setup's record of it."""
    target = kept_path(cache_dir, claim.proof.manifest_sha256)
    source_sig, target_sig = signature_path(claim.path), signature_path(target)
    if source_sig.is_file():
        write_atomic(target_sig, source_sig.read_bytes())
    else:
        target_sig.unlink(missing_ok=True)
    write_atomic(target, claim.path.read_bytes())
    return target


def find(cache_dir: Path, bundle_path: Path, manifest_sha256: str, trusted: tuple[Path, ...]) -> ProofClaim | None:
    """The proof of this manifest: the one setup kept, else the one beside the bundle (None: neither)."""
    kept = kept_path(cache_dir, manifest_sha256)
    if kept.is_file():
        return read_proof(kept, manifest_sha256, trusted)
    return beside(bundle_path, manifest_sha256, trusted)


def record(project: Project, bundle_path: Path, manifest_sha256: str, level: str, passed: bool,
           engine: Mapping[str, str], airtight: Mapping[str, Any], empty: Mapping[str, Any],
           outcomes: Sequence[Outcome], signer: signing.Signer | None) -> Path:
    """What verify calls at its end: this machine's record (``proofs.json``, which its diagnose reads) and the
    proof file beside the bundle (which travels); returns the proof file's path."""
    proof = Proof(manifest_sha256, level, passed, bundle.now(), dict(engine), dict(airtight), dict(empty),
                  tuple(ServiceResult.of(o) for o in outcomes))
    record_proof(project.cache_dir, manifest_sha256, level, passed, shown_when(proof.when),
                 airtight=str(airtight.get("result", "")), empty=str(empty.get("result", "")))
    return write_proof(bundle_path, proof, signer)


def describe_engine(engine: Mapping[str, str]) -> str:
    """``Docker 27.3.1 (containerd image store; linux/amd64)``, from what the proof says of it."""
    how = [f"{engine['image_store']} image store" if engine.get("image_store") else "",
           engine.get("platforms", "")]
    shown = "; ".join(h for h in how if h)
    return f"Docker {engine.get('server_version') or '?'}" + (f" ({shown})" if shown else "")


def shown_when(when: str) -> str:
    """``2026-12-04T10:00:00Z`` -> ``2026-12-04 10:00 UTC`` (as proofs.json always said it)."""
    if len(when) >= 16 and when[10] == "T" and when.endswith("Z"):
        return f"{when[:10]} {when[11:16]} UTC"
    return when


def _bundle_name(bundle_path: Path) -> str:
    folder = parts_folder(bundle_path)
    return (folder if folder is not None else bundle_path).name


def _comment(proof: Proof) -> str:
    outcome = "passed" if proof.passed else "failed"
    return f"offline-build proof ({proof.level}, {outcome}) of manifest {proof.manifest_sha256}"


def _measure(measure: Mapping[str, Any]) -> str:
    result, detail = str(measure.get("result") or "unknown"), str(measure.get("detail") or "")
    return f"{result}: {detail}" if detail else result


def _read(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise ProofError(f"{path}: cannot read it ({exc.strerror})", "copy it again from the online machine") from None
    if len(raw) > limit:
        raise ProofError(f"{path}: more than {limit} bytes, not an offline.verify proof or its signature",
                         "copy it again from the online machine")
    return raw


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"passed is {value!r}, not true or false")
    return value


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not an object")
    return value


def _strings(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in _object(value).items()}


__all__ = ["FORMAT", "Proof", "ProofClaim", "ProofError", "ServiceResult", "beside", "find", "keep", "kept_path",
           "proof_path", "read_proof", "record", "signature_path", "write_proof"]

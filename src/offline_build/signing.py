"""Signed bundles: a minisign signature over the manifest, and with it over every file by digest.

The manifest lists the sha256 of every file in the bundle (and of its
bill of materials), and setup refuses any file that does not match it; so
a signature over the manifest's bytes covers the whole bundle. The
signature travels inside the bundle as ``manifest.json.minisig`` (and
beside the export's ``.manifest.json``), in minisign's own format: Debian's
``minisign`` verifies it, and keys made by ``minisign -G`` sign here.

Only public keys are ever read by setup; a secret key is read by export
and keygen, never written anywhere but its own file, never logged.
"""

from __future__ import annotations

import base64
import getpass
import os
import shlex
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import minisign

from . import unpacking
from .errors import OfflineBuildError
from .files import fsync_dir
from .model import PASSWORD_ENV



class SigningError(OfflineBuildError):
    """A key or a signature is missing, unreadable or wrong."""


@dataclass(frozen=True)
class Signer:
    """A secret key, unlocked once when the plan is made (a wrong password fails before the long build).

    The key itself is kept out of ``repr`` so a dry run, a log line or a
    traceback shows which key, never what it is.
    """

    path: Path
    key_id: str
    key: minisign.SecretKey = field(repr=False, compare=False)

    def sign(self, manifest: bytes, comment: str) -> bytes:
        """The signature file's bytes for *manifest* (prehashed, as minisign signs by default)."""
        return bytes(self.key.sign(manifest, trusted_comment=comment)) + b"\n"


@dataclass(frozen=True)
class Verdict:
    """What setup found: ``signed`` by a trusted key, ``unchecked`` (signed, no key configured), ``unsigned``."""

    state: str
    key_id: str = ""
    comment: str = ""

    def describe(self) -> str:
        if self.state == "signed":
            return f"signed by trusted key {self.key_id}"
        if self.state == "unchecked":
            return (f"signature claims key {self.key_id}, not checked: no trusted key configured "
                    "(signing.trusted_keys)")
        return "unsigned: anyone who could write the bundle could have changed it (see SECURITY.md)"


def keygen(path: Path, password: str | None) -> tuple[Path, Path]:
    """Write a new key pair: *path* (the secret key, mode 0600) and *path*.pub; never over an existing file."""
    if not path.name or path.is_dir():
        raise SigningError(f"{path} is a folder, not a key file", "give --key the secret key's file, e.g. team.key")
    if path.suffix == ".pub":
        raise SigningError(f"{path}: a secret key named .pub would be taken for a public one",
                           "name the secret key .key (its public half is then written as .pub)")
    public = public_path(path)
    for existing in (path, public):
        if existing.exists():
            raise SigningError(f"{existing} already exists", "choose another --key path, or move the old key away "
                                                             "(bundles it signed verify only with its public key)")
    pair = minisign.KeyPair.generate()
    secret = pair.secret_key
    # The library's default comment prints the id in the other byte order; minisign's own tools show this one.
    pair.public_key.untrusted_comment = f"minisign public key {key_id(pair.public_key)}"
    if password:
        secret.encrypt(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for target, data, mode in ((path, bytes(secret) + b"\n", 0o600), (public, bytes(pair.public_key) + b"\n", 0o644)):
            _write_new(target, data, mode)
            written.append(target)
    except FileExistsError as exc:  # made by someone else since the check above: theirs, not ours to remove
        for mine in written:
            mine.unlink()
        raise SigningError(f"{exc.filename} already exists", "choose another --key path") from None
    except BaseException:
        for mine in written:
            mine.unlink()
        raise
    finally:
        secret.wipe()
    return path, public


def public_path(secret: Path) -> Path:
    """Where keygen puts the public half: ``team.key`` -> ``team.pub`` (minisign's own names)."""
    return secret.with_suffix(".pub") if secret.suffix == ".key" else secret.with_name(secret.name + ".pub")


def secret_paths(public: Path) -> tuple[Path, ...]:
    """Where keygen may have put the secret half of *public*, the inverse of :func:`public_path`: ``team.pub``
    was ``team.key`` or ``team``, ``team.sec.pub`` was ``team.sec``."""
    stripped = (public.with_name(public.name.removesuffix(".pub")),) if public.name.endswith(".pub") else ()
    return (public.with_suffix(".key"), *stripped)


def loose_permissions(path: Path) -> str | None:
    """A warning when others than the owner may read the secret key; None when it is private."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return f"{path} is readable by others (mode {mode:04o}): run chmod 600 {shlex.quote(str(path))}"
    return None


def load_signer(path: Path, password: str | None = None, warn: Callable[[str], None] | None = None) -> Signer:
    """Read and unlock a secret key (minisign's format; encrypted with a password or not).

    A public key given in its place is named as one first; then *warn* is told when others may read the key.
    """
    _not_public(path)
    if warn is not None and path.is_file() and (warning := loose_permissions(path)):
        warn(warning)
    key = _key_file(minisign.SecretKey.from_file, path, "signing key", "secret",
                    "make one with offline.keygen --key PATH (or minisign -G), or fix --sign",
                    "pass the secret key file (offline.keygen writes PATH and PATH's .pub)")
    if key.is_encrypted():
        secret = password if password is not None else ask_password(f"password for {path}: ", str(path))
        try:
            key.decrypt(secret)
        except minisign.Error:
            key.wipe()
            raise SigningError(f"wrong password for {path}", f"set {PASSWORD_ENV} to the key's password") from None
    return Signer(path, key_id(minisign.PublicKey.from_secret_key(key)), key)


def _not_public(path: Path) -> None:
    """``--sign team.pub``: the public half, where the secret key goes (its mode invites a chmod 600 warning)."""
    try:
        minisign.PublicKey.from_file(path)
    except (minisign.Error, ValueError, OSError):
        return  # not a public key: read as a secret key, and named if it is none
    secret = next((p for p in secret_paths(path) if p != path and p.is_file()), None)
    pair = f"{secret} if it is this key's pair" if secret else "offline.keygen writes it beside the .pub"
    raise SigningError(f"{path} is a public key: signing needs the secret key",
                       f"give --sign (or signing.key) the secret key ({pair}), not the .pub")


def ask_password(prompt: str, what: str, *, confirm: bool = False) -> str:
    """A key's password: ``OFFLINE_BUILD_KEY_PASSWORD`` when set and not empty, else asked on the terminal
    (twice with *confirm*); never where nobody can type."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise SigningError(f"{what} needs a password and there is no terminal to ask it on",
                           f"set {PASSWORD_ENV} to the password")
    try:
        first = getpass.getpass(prompt)
        if confirm and first != getpass.getpass("again: "):
            raise SigningError("the two passwords differ", "type the same password twice")
    except EOFError:  # Ctrl-D at the prompt
        raise SigningError(f"no password given for {what}", f"type it, or set {PASSWORD_ENV}") from None
    if not first:
        raise SigningError(f"an empty password for {what}", "type a password, or leave the key unencrypted")
    return first


def load_trusted(paths: tuple[Path, ...]) -> tuple[minisign.PublicKey, ...]:
    """The public keys setup trusts; each must be readable (a typo must not silently trust nothing)."""
    return tuple(_key_file(minisign.PublicKey.from_file, path, "trusted key", "public",
                           "fix signing.trusted_keys in offline.yaml or --trust",
                           "give the .pub file offline.keygen (or minisign -G) wrote") for path in paths)


K = TypeVar("K")


def _key_file(read: Callable[[Path], K], path: Path, role: str, kind: str, missing: str, wrong: str) -> K:
    """A key read from *path*; a missing file or one that is not a minisign *kind* key is one message."""
    try:
        return read(path)
    except FileNotFoundError:
        raise SigningError(f"{role} {path} does not exist", missing) from None
    except (minisign.Error, ValueError, OSError) as exc:
        raise SigningError(f"{path} is not a minisign {kind} key ({exc})", wrong) from None


def key_id(public: minisign.PublicKey) -> str:
    """The key's id as ``minisign`` prints it (a little-endian 64-bit number in hex)."""
    return _id(base64.b64decode(public.to_base64())[2:10])


def verdict(manifest: bytes, signature: bytes | None, trusted: tuple[minisign.PublicKey, ...], where: str,
          signed_by: str = "") -> Verdict:
    """Check *signature* over *manifest* against the *trusted* keys; raise when it must not be set up.

    With no trusted key, a bundle is taken signed or not (the verdict says
    which). With trusted keys, only a bundle one of them signed is taken.
    *signed_by* is the key id the manifest itself names (export writes it
    before signing): a bundle that says it was signed and carries no
    signature, or another key's, was cut short or altered, trusted keys or not.
    """
    if signature is None:
        if signed_by:
            raise SigningError(f"{where} was signed by key {signed_by}, and its signature is missing",
                               "the copy is incomplete or was altered: copy it again from the online machine")
        if trusted:
            raise SigningError(f"{where} is not signed, and this project trusts only signed bundles",
                               "export it again with offline.export --sign KEY (the key trusted here)")
        return Verdict("unsigned")
    try:
        sig = minisign.Signature.from_bytes(signature)
    except (minisign.Error, ValueError) as exc:
        raise SigningError(f"{where}: its signature is unreadable ({exc})",
                           "copy the bundle again from the online machine") from None
    signer = _signature_key_id(sig)
    if signed_by and signer != signed_by:
        raise SigningError(f"{where} names key {signed_by} as its signer, and its signature is by key {signer}",
                           "do not use this bundle; export it again on the online machine")
    if not trusted:
        return Verdict("unchecked", signer, sig.trusted_comment)
    by_id = {key_id(k): k for k in trusted}
    if signer not in by_id:
        raise SigningError(f"{where} is signed by key {signer}, which is not trusted here "
                           f"(trusted: {', '.join(sorted(by_id))})",
                           "export it again signed with a trusted key, or add that key's .pub to "
                           "signing.trusted_keys if you trust it")
    try:
        by_id[signer].verify(manifest, sig)
    except minisign.VerifyError:
        # An edit after signing, or a signature copied from another bundle: either way not what the key signed.
        raise SigningError(f"{where}: its signature (key {signer}) does not match its manifest",
                           "do not use this bundle; export it again on the online machine") from None
    return Verdict("signed", signer, sig.trusted_comment)


def claims_verdict(claims: unpacking.Claims, trusted: tuple[minisign.PublicKey, ...], where: str) -> Verdict:
    """Setup's verdict on a bundle from what it says of itself, reading nothing more (a dry run, diagnose)."""
    return verdict(claims.raw, claims.signature, trusted, where, claims.manifest.signed_by)


def _signature_key_id(sig: minisign.Signature) -> str:
    """The id of the key a signature names (its second line: algorithm, key id, signature; base64)."""
    return _id(base64.b64decode(bytes(sig).splitlines()[1])[2:10])


def _id(raw: bytes) -> str:
    return f"{int.from_bytes(raw, 'little'):016X}"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(path.parent)


__all__ = ["PASSWORD_ENV", "Signer", "ask_password", "claims_verdict", "SigningError", "Verdict", "verdict", "key_id", "keygen",
           "load_signer", "load_trusted", "loose_permissions", "public_path", "secret_paths"]

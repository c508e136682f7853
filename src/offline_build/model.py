"""What the project file resolves to: the values every other module reads.

They live apart from :mod:`offline_build.config` so the modules that read
one section each (services, compose, resources, options) can build them
while config imports those modules; config re-exports every name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

# Task names: invoke shows them as-is, make targets embed them, so keep them
# to what both accept without quoting.
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
NAME_HINT = "use lowercase ASCII letters, digits and '-', starting with a letter or digit (e.g. my-shop)"


@dataclass(frozen=True)
class Service:
    name: str
    context: Path
    dockerfile: Path
    image: str
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    # The replay capture: False switches it off for this service; else the extra RUN
    # lines (of its Dockerfile) it records online and replays offline, besides those lint flags.
    replay: bool | tuple[int, ...] = True


@dataclass(frozen=True)
class Resource:
    """Something a build needs that is not an image: lands under ``dest`` in the bundle."""

    name: str
    kind: str  # "url" | "git" | "path"
    source: str
    dest: str
    ref: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class SigningOptions:
    """``signing:``: the secret key export signs with, the public keys setup trusts (none: any bundle, said so)."""

    key: Path | None = None
    trusted_keys: tuple[Path, ...] = ()


PASSWORD_ENV = "OFFLINE_BUILD_KEY_PASSWORD"  # unlocks an encrypted secret key where nobody can type


@dataclass(frozen=True)
class AptOptions:
    enabled: bool
    dir: Path


@dataclass(frozen=True)
class CacheOptions:
    """Where caches live besides the store: a team registry or an S3 bucket.

    The store (and so the bundle) always gets every service's cache; a remote
    backend is read too and, with ``push``, written back by export (and by
    offline builds when the environment names it: see offline_writes_back).
    """

    backend: str = "local"
    ref: str | None = None  # registry: a repository; each service's cache is <ref>:<service>
    push: bool = True
    bucket: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    use_path_style: bool = False
    prefix: str | None = None
    # Named by OFFLINE_CACHE_BACKEND or OFFLINE_CACHE_REF: this machine's own
    # choice, so offline builds may write to it too (see offline_writes_back).
    from_environment: bool = False

    @property
    def writes_back(self) -> bool:
        """Export writes every service's cache back to the remote."""
        return self.backend != "local" and self.push

    @property
    def location(self) -> str | None:
        """Where the remote cache is, for messages: the registry repository or ``s3://bucket``."""
        return {"registry": self.ref, "s3": f"s3://{self.bucket}"}.get(self.backend)

    @property
    def offline_writes_back(self) -> bool:
        """Offline builds write back only to a cache this machine named.

        The file's team cache is usually out of reach at the site: reading
        it fails softly (BuildKit warns), but a failed write fails a build
        that had finished.
        """
        return self.writes_back and self.from_environment


@dataclass(frozen=True)
class BuilderOptions:
    """The buildx builder to build with; ``None`` name means the engine's own (docker driver)."""

    name: str | None = None
    driver: str = "docker"
    driver_opts: Mapping[str, str] = field(default_factory=dict)
    endpoint: str | None = None  # remote driver
    image: str | None = None  # docker-container driver: the BuildKit image, carried in the bundle

    @property
    def named(self) -> str | None:
        """The builder to pass as ``--builder``: None for the engine's own."""
        return self.name if self.driver != "docker" else None


@dataclass(frozen=True)
class Project:
    path: Path
    root: Path
    name: str
    version: str
    cache_dir: Path
    platforms: tuple[str, ...]
    network: str | None
    services: Mapping[str, Service]
    base_images: tuple[str, ...] | None
    resources: tuple[Resource, ...]
    apt: AptOptions
    cache: CacheOptions = CacheOptions()
    builder: BuilderOptions = BuilderOptions()
    # A CA bundle the online machine's builds must trust to reach package
    # registries (a TLS-inspecting proxy): given to capture builds as a build
    # secret, never in an image, a cache key or the bundle.
    ca_file: Path | None = None  # checked when a capture build reads it (config.ca_file), not at load
    ca_file_line: int | None = None  # where the project file sets it; None: OFFLINE_CA_FILE
    # Language captures switched off (``captures: {pip: false}``): their
    # steps are built as written, and need the registry offline.
    captures_off: frozenset[str] = frozenset()
    signing: SigningOptions = SigningOptions()
    # The platforms came from --platform: offline builds make exactly those,
    # not only the engine's own (see plan.build_platforms).
    platforms_asked: bool = False

    @property
    def store(self) -> Path:
        """The local OCI layout holding base images and every service's cache."""
        return self.cache_dir / "store"

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise ConfigError(
                f"no service named {name!r}", path=self.path,
                hint=f"known services: {', '.join(self.services) or 'none'}",
            ) from None


@dataclass(frozen=True)
class Overrides:
    """Values from the command line; ``None`` means "not given"."""

    version: str | None = None
    cache_dir: str | None = None
    platforms: tuple[str, ...] | None = None

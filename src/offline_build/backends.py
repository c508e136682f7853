"""Cache backends: refuse, before any work, a team cache the chosen builder cannot serve."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .config import Project
from .errors import OfflineBuildError


def check_backend(project: Project, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a cache backend the chosen builder cannot serve, before any work.

    Docker's built-in BuildKit (the docker driver) has local and registry
    caches but no S3 (seen on Docker 26: 'unknown cache exporter: "s3"').
    Without credentials in the environment, the AWS SDK inside buildx asks
    the cloud instance-metadata address for some (seen): traffic an
    air-gapped team does not expect, so it is refused too.
    """
    if project.cache.backend != "s3":
        return
    if project.builder.named is None:
        raise OfflineBuildError(
            "the s3 cache backend needs a BuildKit builder; the engine's own (docker driver) has no S3 cache",
            "add builder: {name: ..., driver: docker-container} (or a remote one) to offline.yaml, "
            "or use cache.backend: registry")
    if not aws_credentials_set(os.environ if environ is None else environ):
        raise OfflineBuildError(
            "the s3 cache backend needs credentials, and none are set",
            "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or build without the bucket: "
            "OFFLINE_CACHE_BACKEND=local; without credentials buildx asks the cloud instance-metadata address")


# Every source the AWS SDK's default chain reads before it falls back to the
# instance-metadata address: set explicitly, each is the user's choice.
AWS_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def aws_credentials_set(env: Mapping[str, str]) -> bool:
    if any(env.get(name) for name in AWS_CREDENTIAL_VARIABLES):
        return True
    files = (env.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials",
             env.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config")
    return any(Path(f).is_file() for f in files)

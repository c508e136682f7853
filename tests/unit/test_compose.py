"""Services read from a docker-compose file, with offline.yaml overriding field by field."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from offline_build.config import load
from offline_build.errors import ConfigError

COMPOSE = """\
services:
  backend:
    build: ./backend                    # the short form
    image: shop/backend:dev
  deer_flow_api:
    build:                              # the long form
      context: deer-flow
      dockerfile: docker/Dockerfile.prod
      target: runtime
      args:
        - PYTHON_VERSION=3.12
        - EXTRA=1
  worker:
    build:
      context: worker
      args: {MODE: batch}
  postgres:
    image: postgres:16                  # run, not built: skipped
"""


def write(root: Path, compose: str, offline: str) -> Path:
    for name in ("backend/Dockerfile", "deer-flow/docker/Dockerfile.prod", "worker/Dockerfile", "worker/Alt.Dockerfile"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("FROM debian:bookworm-slim\n")
    (root / "docker-compose.yml").write_text(compose)
    (root / "offline.yaml").write_text(textwrap.dedent(offline))
    return root / "offline.yaml"


def test_short_and_long_build_forms(tmp_path: Path) -> None:
    project = load(write(tmp_path, COMPOSE, "project: shop\nservices_from: docker-compose.yml\n"), environ={})
    assert sorted(project.services) == ["backend", "deer-flow-api", "worker"]
    backend = project.services["backend"]
    assert (backend.context, backend.dockerfile, backend.image) == (
        tmp_path / "backend", tmp_path / "backend" / "Dockerfile", "shop/backend")
    api = project.services["deer-flow-api"]
    assert api.dockerfile == tmp_path / "deer-flow" / "docker" / "Dockerfile.prod"
    assert (api.target, api.build_args, api.image) == ("runtime", {"PYTHON_VERSION": "3.12", "EXTRA": "1"},
                                                       "deer-flow-api")
    assert project.services["worker"].build_args == {"MODE": "batch"}


def test_offline_yaml_overrides_per_service(tmp_path: Path) -> None:
    offline = """\
        project: shop
        services_from: docker-compose.yml
        services:
          worker:
            dockerfile: Alt.Dockerfile
            build_args: {MODE: stream}
          extra:
            context: backend
        """
    project = load(write(tmp_path, COMPOSE, offline), environ={})
    worker = project.services["worker"]
    assert worker.context == tmp_path / "worker"  # from compose
    assert worker.dockerfile == tmp_path / "worker" / "Alt.Dockerfile"  # from offline.yaml
    assert worker.build_args == {"MODE": "stream"}
    assert "extra" in project.services and "backend" in project.services


def test_extends_is_refused_with_the_compose_line(tmp_path: Path) -> None:
    compose = COMPOSE + "  web:\n    extends:\n      service: backend\n"
    path = write(tmp_path, compose, "project: shop\nservices_from: docker-compose.yml\n")
    with pytest.raises(ConfigError, match="uses extends, which offline-build does not follow") as info:
        load(path, environ={})
    assert str(info.value).startswith(f"{tmp_path / 'docker-compose.yml'}:21:")  # under extends:


def test_a_compose_tag_offline_build_does_not_read_is_named(tmp_path: Path) -> None:
    compose = COMPOSE.replace("    build: ./backend                    # the short form", "    build: !reset null")
    path = write(tmp_path, compose, "project: shop\nservices_from: docker-compose.yml\n")
    with pytest.raises(ConfigError, match="the tag '!reset' is not supported") as info:
        load(path, environ={})
    assert str(info.value).startswith(f"{tmp_path / 'docker-compose.yml'}:3:")


@pytest.mark.parametrize("change, line, words", [
    (("  postgres:\n", "  deer-flow-api:\n    build: ./worker\n  postgres:\n"), 17,
     "compose services 'deer_flow_api' and 'deer-flow-api' both become the service 'deer-flow-api'"),
    (("      target: runtime\n", "      target: runtime\n      dockerfile_inline: FROM scratch\n"), 10,
     "dockerfile_inline is not read by offline-build"),
    (("build: ./backend ", "build: ./${APP:-backend} "), 3, "context './${APP:-backend}' uses a variable"),
    (("dockerfile: docker/Dockerfile.prod", "dockerfile: ${DF}"), 8, "dockerfile '${DF}' uses a variable"),
    (("services:\n", "include:\n  - other.yml\nservices:\n"), 2, "uses include, which offline-build does not"),
    (("target: runtime", "target: ${T:-runtime}"), 9, "target '${T:-runtime}' uses a variable"),
    (("- EXTRA=1", "- EXTRA=${EXTRA}"), 12, "build arg EXTRA takes its value from a variable (${EXTRA})"),
    (("args: {MODE: batch}", "args: {MODE: $MODE}"), 16, "build arg MODE takes its value from a variable"),
    (("- EXTRA=1", "- GITHUB_TOKEN=x"), 12, "build arg 'GITHUB_TOKEN' looks like a secret"),
    (("- EXTRA=1", "- A B=1"), 12, "build arg name 'A B' holds '=' or a space"),
    (("  postgres:\n", "  other:\n    <<: *common\n  postgres:\n"), 18, "compose service 'other' uses <<"),
])
def test_what_compose_would_do_and_offline_build_would_not_is_named(tmp_path: Path, change: tuple[str, str],
                                                                     line: int, words: str) -> None:
    """Each was read silently before: a service dropped, another Dockerfile built, a folder named '${...}'."""
    compose = COMPOSE.replace(*change, 1)
    if "*common" in compose:
        compose = compose.replace("  worker:\n", "  worker: &common\n", 1)
    assert compose != COMPOSE
    path = write(tmp_path, compose, "project: shop\nservices_from: docker-compose.yml\n")
    with pytest.raises(ConfigError, match=re.escape(words)) as info:
        load(path, environ={})
    assert str(info.value).startswith(f"{tmp_path / 'docker-compose.yml'}:{line}:"), info.value
    assert info.value.hint


def test_an_empty_compose_file_is_called_so(tmp_path: Path) -> None:
    path = write(tmp_path, "", "project: shop\nservices_from: docker-compose.yml\n")
    with pytest.raises(ConfigError, match="docker-compose.yml:1:1: the compose file is empty") as info:
        load(path, environ={})
    assert info.value.hint == "it needs a 'services' section with a build: per service to build"


def test_a_missing_compose_file_or_dockerfile_names_the_place(tmp_path: Path) -> None:
    path = write(tmp_path, COMPOSE, "project: shop\nservices_from: compose.yaml\n")
    with pytest.raises(ConfigError, match="no compose file at compose.yaml"):
        load(path, environ={})
    broken = COMPOSE.replace("dockerfile: docker/Dockerfile.prod", "dockerfile: missing.Dockerfile")
    path = write(tmp_path, broken, "project: shop\nservices_from: docker-compose.yml\n")
    with pytest.raises(ConfigError, match="no Dockerfile at deer-flow/missing.Dockerfile") as info:
        load(path, environ={})
    assert str(info.value).startswith(f"{tmp_path / 'docker-compose.yml'}:7:")  # the build section

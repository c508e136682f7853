"""Debian 12's Docker 20.10 at a site: the classic fallback, on one project exported and set up once.

Its BuildKit (0.8) has no named build contexts, so every service that needs
one falls back to the classic builder. Three services, each the shape of a
real one: ``db`` a database image that copies ``.sql`` files after its APT
step, ``cm`` a step with cache mounts that writes into them, ``hd`` a
heredoc, which the classic builder cannot run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from python_on_whales import DockerClient

from tests.integration.harness import build_report, bundle_in, carry, cli, reset

pytestmark = pytest.mark.engine

DB = """FROM debian:bookworm-slim
ENV PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
ARG PG_MAJOR=15
RUN apt-get update && apt-get install -y --no-install-recommends jq && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /docker-entrypoint-initdb.d "$PGDATA" && echo "major $PG_MAJOR" > /etc/pg-major
COPY *.sql /docker-entrypoint-initdb.d/
RUN ls /docker-entrypoint-initdb.d > /etc/initdb-list
"""
# BuildKit always mounts a cache's target; a step that writes there must build classic too.
CM = ("FROM busybox:local\n"
      "RUN --mount=type=cache,target=/root/.cache/x --mount=target=/var/cache/y,type=cache "
      "echo hi > /tmp/f && cp /tmp/f /root/.cache/x/ && cp /tmp/f /var/cache/y/ && echo done > /done\n")
HD = ("FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends jq\n"
      "RUN <<EOT\necho built with a heredoc > /hd\nEOT\n")
HD_LINE = "  hd: {context: hd, image: old/hd}\n"


@pytest.fixture(scope="module")
def site(engines: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project exported online, carried to a fresh checkout and set up on an emptied Docker 20.10."""
    project = tmp_path_factory.mktemp("old-online") / "old"
    for name, dockerfile in (("db", DB), ("cm", CM), ("hd", HD)):
        (project / name).mkdir(parents=True)
        (project / name / "Dockerfile").write_text(dockerfile)
    (project / "db" / "01-schema.sql").write_text("CREATE TABLE a(x int);\n")
    (project / "db" / "02-data.sql").write_text("INSERT INTO a VALUES (1);\n")
    (project / "offline.yaml").write_text("project: old\nversion: '1'\nnetwork: none\nservices:\n"
                                          "  db: {context: db, image: old/db}\n"
                                          "  cm: {context: cm, image: old/cm}\n" + HD_LINE)
    cli(project, engines["online"], "offline.export")
    offline = carry(bundle_in(project), tmp_path_factory.mktemp("old-site") / "old")
    reset("old")
    cli(offline, engines["old"], "offline.setup")
    return offline


def test_the_classic_fallback_reuses_the_bundle_after_an_edit_and_its_revert(engines: dict[str, str],
                                                                             site: Path) -> None:
    data = site / "db" / "02-data.sql"

    def counts() -> tuple[int, int, str]:
        return build_report(cli(site, engines["old"], "db.offline-build").stdout, ("db",))["db"]

    data.write_text("INSERT INTO a VALUES (2);\n")  # edited before the first build, as the issue did
    assert counts() == (6, 4, "classic builder")  # the COPY and the RUN after it run again
    data.write_text("INSERT INTO a VALUES (1);\n")
    assert counts() == (6, 6, "classic builder")  # the bundle's classic build serves the exported state
    docker = DockerClient(host=engines["old"])
    assert docker.run("old/db:1", ["jq", "--version"], remove=True, networks=["none"]).startswith("jq-1.")


def test_the_classic_builder_gets_each_dropped_cache_mounts_folder(engines: dict[str, str], site: Path) -> None:
    config = site / "offline.yaml"
    text = config.read_text()
    config.write_text(text.replace(HD_LINE, ""))  # hd has no classic variant: build-classic would stop there
    try:
        out = cli(site, engines["old"], "offline.build-classic")
    finally:
        config.write_text(text)
    assert build_report(out.stdout, ("cm",))["cm"][2] == "classic builder", out.stdout
    assert DockerClient(host=engines["old"]).run("old/cm:1", ["cat", "/done"], remove=True,
                                                 networks=["none"]).strip() == "done"


def test_no_classic_variant_is_one_clear_error(engines: dict[str, str], site: Path) -> None:
    out = cli(site, engines["old"], "hd.offline-build", check=False)
    assert out.returncode != 0
    assert "no classic fallback for hd: Dockerfile:3: a heredoc needs BuildKit" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr

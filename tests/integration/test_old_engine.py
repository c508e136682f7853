"""Docker 20.10's classic fallback reuses the bundle: after setup, after an edit, after its revert."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_apt import on_the_old_engine
from tests.integration.test_roundtrip import build_report, cli

pytestmark = pytest.mark.engine

DOCKERFILE = """FROM debian:bookworm-slim
ENV PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
ARG PG_MAJOR=15
RUN apt-get update && apt-get install -y --no-install-recommends jq && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /docker-entrypoint-initdb.d "$PGDATA" && echo "major $PG_MAJOR" > /etc/pg-major
COPY *.sql /docker-entrypoint-initdb.d/
RUN ls /docker-entrypoint-initdb.d > /etc/initdb-list
"""


def test_the_classic_fallback_reuses_the_bundle_after_an_edit_and_its_revert(engines: dict[str, str],
                                                                             tmp_path: Path) -> None:
    project = tmp_path / "pg"
    (project / "db").mkdir(parents=True)
    (project / "db" / "Dockerfile").write_text(DOCKERFILE)
    (project / "db" / "01-schema.sql").write_text("CREATE TABLE a(x int);\n")
    (project / "db" / "02-data.sql").write_text("INSERT INTO a VALUES (1);\n")
    (project / "offline.yaml").write_text("project: pg\nversion: '1'\nnetwork: none\n"
                                          "services:\n  db: {context: db, image: pg/db}\n")
    offline = on_the_old_engine(project, engines)
    data = offline / "db" / "02-data.sql"

    def counts() -> tuple[int, int, str]:
        return build_report(cli(offline, engines["old"], "offline.build").stdout, ("db",))["db"]

    data.write_text("INSERT INTO a VALUES (2);\n")  # edited before the first build, as the issue did
    assert counts() == (6, 4, "classic builder")  # the COPY and the RUN after it run again
    data.write_text("INSERT INTO a VALUES (1);\n")
    assert counts() == (6, 6, "classic builder")  # the bundle's classic build serves the exported state

"""The classic fallback reuses the bundle: export carries a classic build, the fallback names it in --cache-from."""

from __future__ import annotations

from pathlib import Path

from offline_build.build import plan_offline_builds
from offline_build.config import load
from offline_build.export import export_plan, manifest_draft
from offline_build.inputs import inputs
from offline_build.plan import base_tag
from offline_build.runners.classic import ClassicReport
from offline_build.steps import ClassicBuild, OfflineBuild, SaveImages
from offline_build.store import Descriptor, Layout

DB = ("FROM busybox:local\nENV PGDATA=/var/lib/pg\nARG MAJOR=15\nRUN mkdir -p /initdb\n"
      "COPY *.sql /initdb/\nRUN ls /initdb > /list\n")


def project_at(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "Dockerfile").write_text(DB)
    (tmp_path / "db" / "01.sql").write_text("CREATE TABLE a(x int);\n")
    path = tmp_path / "offline.yaml"
    path.write_text(f"project: pg\nversion: '1'\nnetwork: none\n{extra}services:\n  db:\n    context: db\n"
                    "    image: pg/db\n")
    return path


def test_export_builds_each_service_with_the_classic_builder_and_the_bundle_carries_it(tmp_path: Path) -> None:
    project = load(project_at(tmp_path), environ={})
    steps = export_plan(project, list(project.services.values())).steps
    (classic,) = [s for s in steps if isinstance(s, ClassicBuild)]
    assert classic.tags == ("pg-db-classic:1",) and classic.cache_from == ()
    assert classic.dockerfile.name == "Dockerfile.classic" and classic.network == "none"
    saved = [s for s in steps if isinstance(s, SaveImages) and "pg-db-classic:1" in s.images]
    assert len(saved) == 1 and steps.index(saved[0]) > steps.index(classic)
    # The export's own network mode, as its BuildKit build: a host project's uncaptured download still builds.
    path = tmp_path / "offline.yaml"
    path.write_text(path.read_text().replace("network: none", "network: host"))
    hosted = load(path, environ={})
    (classic,) = [s for s in export_plan(hosted, list(hosted.services.values())).steps if isinstance(s, ClassicBuild)]
    assert classic.network == "host"
    everyone = [inputs(project, s, online=True) for s in project.services.values()]
    draft = manifest_draft(project, everyone, {})
    assert ("pg-db-classic:1", base_tag("pg-db-classic:1")) in draft.base_images  # setup loads it


def test_no_classic_build_for_a_project_built_for_another_platform(tmp_path: Path) -> None:
    project = load(project_at(tmp_path, "platforms: [linux/s390x]\n"), environ={})
    assert not [s for s in export_plan(project, list(project.services.values())).steps
                if isinstance(s, ClassicBuild)]


def fallback(path: Path) -> ClassicBuild:
    project = load(path, environ={})
    (step,) = [s for s in plan_offline_builds(project, list(project.services.values()), None).steps
               if isinstance(s, OfflineBuild)]
    assert step.classic is not None
    return step.classic


def test_the_fallback_reuses_the_bundles_classic_build_and_its_own_last_one(tmp_path: Path) -> None:
    path = project_at(tmp_path)
    assert fallback(path).cache_from == ("pg/db:1",)  # no bundle: its own last build only
    store = load(path, environ={}).store
    Layout(store).write_index([Descriptor("application/vnd.oci.image.index.v1+json", "sha256:" + "0" * 64, 1,
                                          {"org.opencontainers.image.ref.name": base_tag("pg-db-classic:1")})])
    step = fallback(path)
    assert step.cache_from == ("pg-db-classic:1", "pg/db:1")
    argv = step.argv()
    assert argv[:3] == ["env", "DOCKER_BUILDKIT=0", "docker"]  # a client from 23 on would run BuildKit otherwise
    assert argv[argv.index("--cache-from") + 1] == "pg-db-classic:1"


def test_the_classic_builders_output_counts_steps_and_reused_ones() -> None:
    out = ["Step 1/4 : FROM pg-base:1", " ---> 4e50df7cc3c7", "Step 2/4 : ENV A=1", " ---> Using cache",
           " ---> 1d2", "Step 3/4 : COPY *.sql /initdb/", " ---> 5f1", "Step 4/4 : RUN ls",
           " ---> Running in 9a", "Successfully built 77"]
    report = ClassicReport().feed(out)
    assert (report.steps, report.cached) == (3, 1)

"""The registry cache backend on real engines and Debian's real registry.

"team" is a registry beside the online engine (a team's shared cache);
"site" is one inside the air gap (a customer site's own). Each test uses its
own repository path, so the registries need no cleaning between tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from python_on_whales import DockerClient
from rich.console import Console

from offline_build import build as building
from offline_build import export as exporting
from offline_build import setup as restoring
from offline_build import verify as verifying
from offline_build.config import load
from offline_build.steps import Build
from tests.integration.harness import CLI, NETNS, carry, reset

pytestmark = pytest.mark.engine

def tags(registry: str, repo: str, *, airgap: bool = False) -> list[str]:
    """A repository's tags, asked from the registry's own network namespace."""
    ns = ["ip", "netns", "exec", NETNS] if airgap else []
    out = subprocess.run([*ns, "busybox", "wget", "-q", "-O", "-", f"http://{registry}/v2/{repo}/tags/list"],
                         capture_output=True, text=True, check=False)
    if out.returncode == 0:
        return sorted(json.loads(out.stdout).get("tags") or [])
    if "404" in out.stderr:  # the registry answered: no such repository, so nothing was pushed there
        return []
    pytest.fail(f"could not ask {registry} for {repo}'s tags: {out.stderr.strip()}")


def make_project(root: Path, cache: str = "") -> Path:
    (root / "app").mkdir(parents=True)
    (root / "app" / "Dockerfile").write_text(
        "FROM busybox:local\nRUN echo one > /one\nRUN echo two > /two\nCOPY f /f\n")
    (root / "app" / "f").write_text("f\n")
    (root / "offline.yaml").write_text(f"project: reg\nnetwork: none\n{cache}services:\n  app:\n    context: app\n")
    return root / "offline.yaml"


def ran(result: dict) -> list[str]:
    builds = [r for r in result["result"].builds() if isinstance(r.step, Build) and r.step.service == "app"]
    return [v.name for v in builds[0].detail["report"].ran]


def test_a_fresh_export_starts_warm_from_the_team_registry(
        engines: dict[str, str], registries: dict[str, str], tmp_path: Path) -> None:
    repo = f"t{uuid.uuid4().hex[:8]}/cache"
    path = make_project(tmp_path, f"cache:\n  backend: registry\n  ref: {registries['team']}/{repo}\n")
    online = DockerClient(host=engines["online"])
    console = Console(quiet=True)

    online.buildx.prune(all=True)
    first = exporting.export(load(path, environ={}), None, online, console)
    assert len([n for n in ran(first) if "RUN" in n]) == 2, ran(first)
    assert tags(registries["team"], repo) == ["app"]  # pushed beside the store

    # A new CI runner: no BuildKit cache, no store. Only the registry remembers.
    online.buildx.prune(all=True)
    warm = exporting.export(load(path, environ={"CACHE_DIR": str(tmp_path / "second")}), None, online, console)
    assert not [n for n in ran(warm) if "RUN" in n], ran(warm)
    (detail,) = [r.detail for r in warm["result"].builds() if r.step.service == "app"]
    assert detail["steps"] >= 3 and detail["cached"] == detail["steps"]  # RUN, RUN, COPY: all from the registry

    # The control: the same fresh start without the registry runs the steps.
    online.buildx.prune(all=True)
    cold = exporting.export(load(path, environ={"CACHE_DIR": str(tmp_path / "third"),
                                                "OFFLINE_CACHE_BACKEND": "local"}), None, online, console)
    assert len([n for n in ran(cold) if "RUN" in n]) == 2, ran(cold)
    # The bundle holds the cache either way: the registry is never a dependency of setup.
    assert Path(warm["output"]).is_file()


@pytest.fixture(scope="module")
def exported(engines: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project exported once, without any registry: its bundle."""
    path = make_project(tmp_path_factory.mktemp("registry-online") / "project")
    out = exporting.export(load(path, environ={}), None, DockerClient(host=engines["online"]), Console(quiet=True))
    return Path(out["output"])


@pytest.fixture()
def restored(engines: dict[str, str], exported: Path, tmp_path: Path) -> Path:
    """A checkout of its own with that bundle, set up on the emptied offline engine; its project file."""
    project = carry(exported, tmp_path / "project")
    reset("offline")
    restoring.setup(load(project / "offline.yaml", environ={"CACHE_DIR": str(tmp_path / "site")}),
                    bundle_of(project / "offline.yaml"), DockerClient(host=engines["offline"]), Console(quiet=True))
    return project / "offline.yaml"


def bundle_of(project: Path) -> Path:
    return next((project.parent / "build-cache").glob("build-cache-*.tar"))


def test_builds_at_the_site_push_their_cache_to_the_site_registry(
        engines: dict[str, str], registries: dict[str, str], tmp_path: Path, restored: Path) -> None:
    repo = f"s{uuid.uuid4().hex[:8]}/cache"
    env = {"CACHE_DIR": str(tmp_path / "site"), "OFFLINE_CACHE_BACKEND": "registry",
           "OFFLINE_CACHE_REF": f"{registries['site']}/{repo}"}
    outcomes = building.build(load(restored, environ=env), None, DockerClient(host=engines["offline"]),
                              Console(quiet=True))
    assert [o.status for o in outcomes] == ["all cached"]
    assert tags(registries["site"], repo, airgap=True) == ["app"]
    assert tags(registries["team"], repo) == []  # nothing left the air gap


def test_an_unreachable_cache_registry_is_one_message_with_the_fix(
        engines: dict[str, str], tmp_path: Path, restored: Path) -> None:
    env = {**os.environ, "CACHE_DIR": str(tmp_path / "site"), "OFFLINE_CACHE_BACKEND": "registry",
           # The team's address, as the project file would name it: nothing answers there inside the air gap.
           "OFFLINE_CACHE_REF": "127.0.0.1:5059/team/cache"}
    out = subprocess.run([*CLI, "offline.build", "--host", engines["offline"]], cwd=restored.parent,
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "writing its cache to 127.0.0.1:5059/team/cache:app failed" in out.stderr
    assert "OFFLINE_CACHE_BACKEND=local" in out.stderr and "Traceback" not in out.stderr
    assert "retry" not in out.stdout + out.stderr  # an absent registry is not a hiccup


def test_an_engine_that_cannot_export_caches_still_reads_the_registry(
        engines: dict[str, str], registries: dict[str, str], tmp_path: Path, restored: Path) -> None:
    env = {"CACHE_DIR": str(tmp_path / "site"), "OFFLINE_CACHE_BACKEND": "registry",
           "OFFLINE_CACHE_REF": f"{registries['site']}/l{uuid.uuid4().hex[:8]}/cache"}
    quiet = Console(quiet=True)
    # Another machine at the site, one whose engine exports caches, fills the site registry.
    building.build(load(restored, environ=env), None, DockerClient(host=engines["offline"]), quiet)
    assert tags(registries["site"], env["OFFLINE_CACHE_REF"].split("/", 1)[1], airgap=True) == ["app"]

    legacy = DockerClient(host=engines["legacy"])
    reset("legacy")
    # Setup loads the base image into this classic-store engine; the builds
    # then use an empty store, so only the registry can make them cached.
    restoring.setup(load(restored, environ={**env, "CACHE_DIR": str(tmp_path / "legacy")}), bundle_of(restored),
                   legacy, quiet)
    bare = {**env, "CACHE_DIR": str(tmp_path / "empty")}
    console = Console(record=True, width=200)
    outcomes = building.build(load(restored, environ=bare), None, legacy, console)
    assert [o.status for o in outcomes] == ["all cached"]
    assert "cannot export caches" in console.export_text()

    # The control: without the registry, the same engine and empty store run the steps.
    legacy.buildx.prune(all=True)
    (cold,) = building.build(load(restored, environ={**bare, "OFFLINE_CACHE_BACKEND": "local"}), None, legacy, quiet)
    assert cold.builder == "buildkit" and len([n for n in cold.ran if "RUN" in n]) == 2, cold


def test_the_files_team_registry_out_of_reach_at_the_site_is_only_read(
        engines: dict[str, str], tmp_path: Path, restored: Path) -> None:
    # The project file names the team's registry; inside the air gap nothing
    # answers there. Reading it fails softly; the build writes nothing to it.
    text = restored.read_text().replace("services:", "cache:\n  backend: registry\n"
                                        "  ref: 127.0.0.1:5059/team/cache\nservices:")
    restored.write_text(text)
    env = {**os.environ, "CACHE_DIR": str(tmp_path / "site")}
    env.pop("OFFLINE_CACHE_BACKEND", None)
    env.pop("OFFLINE_CACHE_REF", None)
    out = subprocess.run([*CLI, "offline.build", "--host", engines["offline"]], cwd=restored.parent,
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all cached" in out.stdout


def test_verify_proves_the_bundle_alone_whatever_the_team_cache(
        engines: dict[str, str], tmp_path: Path, restored: Path) -> None:
    # A registry nothing answers, on an engine that can export caches: were
    # verify to use it, writing the cache back would fail the build.
    env = {"OFFLINE_CACHE_BACKEND": "registry", "OFFLINE_CACHE_REF": "127.0.0.1:5059/team/cache"}
    outcomes, _ = verifying.verify(load(restored, environ=env), bundle_of(restored),
                               DockerClient(host=engines["offline"]), Console(quiet=True))
    assert [(o.service, o.status) for o in outcomes] == [("app", "all cached")]

"""offline.init: a first offline.yaml from a repository's Dockerfiles and compose files."""

from __future__ import annotations

from pathlib import Path

import pytest

from offline_build import init
from offline_build.config import load
from offline_build.errors import OfflineBuildError

from .test_cli import run

SINGLE = "FROM debian:bookworm-slim\nCOPY . /app\n"
STAGED = ("FROM node:20 AS deps\nRUN npm ci\n"
          "FROM deps AS builder\nRUN npm run build\n"
          "FROM debian:bookworm-slim AS runner\nCOPY --from=builder /app /app\n")


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def make_repo(tmp_path: Path) -> Path:
    """The team's repository: one compose file that only runs images, one that builds, Dockerfiles all over."""
    root = tmp_path / "shop"
    write(root, {
        # No build: sections: the images are built by hand, from folders named like them.
        "docker-compose.yml": "services:\n"
                              "  backend:\n    image: team/backend:latest\n"
                              "  frontend:\n    image: registry.example.com:5000/team/frontend:1.2\n"
                              "  db:\n    image: postgres:16\n",
        # Builds, from a compose file in a folder of its own: paths are read from there.
        "deploy/compose.yaml": "services:\n"
                               "  api_server:\n"
                               "    image: team/api:2.0\n"
                               "    build:\n"
                               "      context: ../services/api\n"
                               "      dockerfile: docker/Dockerfile.prod\n"
                               "      target: runner\n"
                               "      args:\n        PYTHON_VERSION: '3.12'\n        NPM_TOKEN: abc\n",
        "Dockerfile": SINGLE,
        "backend/Dockerfile": SINGLE,
        "backend/Dockerfile.dev": SINGLE,
        "frontend/Dockerfile": SINGLE,
        "services/api/docker/Dockerfile.prod": STAGED,
        "tools/migrate/Dockerfile": STAGED,
        "ops/worker.Dockerfile": SINGLE,
        # Never a service of the team's: vendored, tooling, the tool's own output.
        "web/node_modules/left-pad/Dockerfile": SINGLE,
        ".devcontainer/Dockerfile": SINGLE,
        "build-cache/Dockerfile": SINGLE,
        "backend/Dockerfile.dockerignore": "*.pyc\n",
    })
    return root


def written(root: Path) -> Path:
    """Plan, render and write offline.yaml in *root*, as the task does."""
    proposal = init.propose(root)
    path = root / "offline.yaml"
    path.write_text(init.render(proposal, path.parent))
    return path


def test_the_written_file_loads_and_names_every_service_the_repository_builds(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    project = load(written(root), environ={})
    assert project.name == "shop"
    assert project.network == "none"
    assert set(project.services) == {"shop", "backend", "backend-dev", "frontend", "api-server", "migrate",
                                     "ops-worker"}
    api = project.services["api-server"]
    assert api.context == (root / "services/api").resolve()
    assert api.dockerfile == (root / "services/api/docker/Dockerfile.prod").resolve()
    assert (api.target, api.image) == ("runner", "team/api")
    # A secret-looking arg would make the file refuse to load (build args travel in the bundle).
    assert dict(api.build_args) == {"PYTHON_VERSION": "3.12"}
    backend, dev = project.services["backend"], project.services["backend-dev"]
    assert (backend.image, backend.dockerfile) == ("team/backend", (root / "backend/Dockerfile").resolve())
    assert dev.dockerfile == (root / "backend/Dockerfile.dev").resolve() and dev.context == backend.context
    assert project.services["frontend"].image == "registry.example.com:5000/team/frontend"
    assert project.services["shop"].context == root.resolve()
    assert project.services["ops-worker"].dockerfile == (root / "ops/worker.Dockerfile").resolve()


def test_vendored_hidden_and_output_folders_are_not_searched(tmp_path: Path) -> None:
    found = init.find_files(make_repo(tmp_path))
    names = {p.as_posix() for p in found.dockerfiles}
    assert not {n for n in names if "node_modules" in n or ".devcontainer" in n or "build-cache" in n}
    assert "backend/Dockerfile.dockerignore" not in names
    assert {p.as_posix() for p in found.compose_files} == {"docker-compose.yml", "deploy/compose.yaml"}


def test_each_service_says_where_it_was_found_and_stages_are_listed_not_chosen(tmp_path: Path) -> None:
    text = written(make_repo(tmp_path)).read_text()
    migrate = text.split("\n  migrate:")[0].rsplit("\n\n", 1)[-1]
    assert "# tools/migrate/Dockerfile" in migrate
    assert "# stages: deps, builder, runner; set target: to build one" in migrate
    assert "target:" not in text.split("\n  migrate:")[1].split("\n\n")[0]
    api = text.split("\n  api-server:")[0].rsplit("\n\n", 1)[-1]
    assert "# deploy/compose.yaml: services.api_server" in api and "stages:" not in api
    backend = text.split("\n  backend:")[0].rsplit("\n\n", 1)[-1]
    assert "docker-compose.yml: services.backend runs team/backend:latest" in backend.replace("\n  #   ", " ")
    assert "NPM_TOKEN" in text  # said why it is left out, not silently dropped
    assert "postgres:16" in text  # seen, and said to be run rather than built
    network = text.split("\nnetwork: none\n")[0].rsplit("\n\n", 1)[-1]
    assert network.startswith("#") and "cache" in network


def test_an_unnamed_stage_is_not_offered_as_a_target(tmp_path: Path) -> None:
    write(tmp_path, {"worker/Dockerfile": "FROM golang:1.22 AS build\nRUN go build\nFROM debian:bookworm-slim\n"})
    text = init.render(init.propose(tmp_path), tmp_path)
    assert "# stages: build, then an unnamed last one (what is built without a target); set target: to build one" in (
        text.replace("\n  #   ", " "))


def test_a_repository_without_a_dockerfile_is_told_so(tmp_path: Path) -> None:
    write(tmp_path, {"docker-compose.yml": "services:\n  db:\n    image: postgres:16\n"})
    with pytest.raises(OfflineBuildError, match="no Dockerfile"):
        init.propose(tmp_path)


@pytest.mark.parametrize("context", [
    "https://github.com/team/shop.git#main:docker",
    "ssh://git@github.com/team/shop.git",
    "git@github.com:team/shop.git",
    "github.com/team/shop",
])
def test_a_remote_compose_build_context_is_not_taken_for_a_folder(tmp_path: Path, context: str) -> None:
    # A folder spelled like the remote, with a Dockerfile: compose would fetch the remote, never build this.
    write(tmp_path, {f"{context}/Dockerfile": SINGLE})
    for spec in ({"build": context}, {"build": {"context": context}}):
        made = init.from_compose_build(tmp_path, Path("compose.yaml"), "shop", spec, "shop", set())
        assert made == f"build context {context!r} is a variable or a remote; give a folder under services:"


def test_a_dockerfile_that_cannot_be_read_is_a_note_not_a_service_the_file_then_refuses(tmp_path: Path) -> None:
    write(tmp_path, {"app/Dockerfile": "FROM debian:bookworm-slim\n", "empty/Dockerfile": "",
                     "old/Dockerfile": "FROM caf\xe9\n"})
    (tmp_path / "old" / "Dockerfile").write_bytes("FROM caf\xe9\n".encode("latin-1"))
    (tmp_path / "broken.Dockerfile").symlink_to("gone")
    # A file that reads but needs a value init cannot see stays a service (compose gives BASE at build time).
    write(tmp_path, {"argbase/Dockerfile": "ARG BASE\nFROM ${BASE}\n"})
    path = written(tmp_path)
    assert sorted(load(path, environ={}).services) == ["app", "argbase"]  # nothing it would refuse was written
    text = path.read_text()
    for note in ("empty/Dockerfile: not a service (file with no instructions)", "old/Dockerfile: not a service (not UTF-8",
                 "broken.Dockerfile: not a service (no such Dockerfile)"):
        assert f"#   {note}" in text, text
    (tmp_path / "app" / "Dockerfile").write_text("")
    (tmp_path / "argbase" / "Dockerfile").unlink()
    with pytest.raises(OfflineBuildError, match="no Dockerfile under .* can be read: "):
        init.propose(tmp_path)


def test_the_task_writes_refuses_to_overwrite_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    dry = run(["offline.init", "--dry-run"], root)
    assert dry.returncode == 0, dry.stderr
    assert "\nnetwork: none\n" in dry.stdout and not (root / "offline.yaml").exists()
    made = run(["offline.init"], root)
    assert made.returncode == 0, made.stderr
    assert "offline-build offline.lint" in made.stdout and "migrate" in made.stdout
    assert load(root / "offline.yaml", environ={}).name == "shop"
    mine = b"project: mine  # hand-written\nservices:\n  backend:\n    context: backend\n"
    (root / "offline.yaml").write_bytes(mine)
    again = run(["offline.init"], root)
    assert again.returncode != 0 and "Traceback" not in again.stderr and again.stdout == ""
    assert str(root / "offline.yaml") in again.stderr and "--force" in again.stderr
    assert (root / "offline.yaml").read_bytes() == mine
    forced = run(["offline.init", "--force"], root)
    assert forced.returncode == 0, forced.stderr
    assert load(root / "offline.yaml", environ={}).name == "shop"


def test_root_and_output_elsewhere_keep_the_paths_right(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    out = run(["offline.init", "--root", "shop", "--output", "conf/offline.yaml"], tmp_path)
    assert out.returncode == 0, out.stderr
    project = load(tmp_path / "conf/offline.yaml", environ={})
    assert project.services["migrate"].context == (root / "tools/migrate").resolve()
    assert "--config conf/offline.yaml" in out.stdout

"""This repository's own invoke entry: the demo project's task tree plus dev tasks.

In your own repository two lines are enough:

    from offline_build.tasks import project_namespace
    namespace = project_namespace()          # reads ./offline.yaml
"""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, task

from offline_build.tasks import project_namespace

HERE = Path(__file__).resolve().parent


@task(help={"engine": "also run the engine tests (starts the harness's engines)"})
def test(c, engine=True):
    """Run the test suite (what CI runs)."""
    marker = "" if engine else ' -m "not engine"'
    c.run(f"python -m pytest{marker}", pty=False)


@task
def engines(c):
    """Start the harness's four Docker engines and print their DOCKER_HOSTs."""
    c.run(f"{HERE / 'scripts' / 'engines.sh'} up")


namespace = project_namespace(HERE / "examples" / "demo" / "offline.yaml")
dev = Collection("dev")
dev.add_task(test)
dev.add_task(engines)
namespace.add_collection(dev)

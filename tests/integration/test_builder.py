"""A named buildx builder on a real engine: created when missing, reused after, refused without its image.

Booting a docker-container builder needs a BuildKit image, and no registry
here can provide one, so these tests stop at what buildx does before boot:
the builder is registered with the driver options the project asked for.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from rich.console import Console

from offline_build.config import BuilderOptions
from offline_build.errors import StepError
from offline_build.executor import Executor
from offline_build.plan import ensure_builder
from offline_build.steps import Plan
from tests.integration.harness import IMAGES

pytestmark = pytest.mark.engine



@pytest.fixture()
def client(engines: dict[str, str], tmp_path: Path) -> DockerClient:
    # Builders are recorded in the client's config folder: a private one per test.
    return DockerClient(host=engines["online"], config=tmp_path / "docker-config")


def test_a_missing_builder_is_created_with_its_driver_options_and_then_reused(client: DockerClient) -> None:
    name = f"ob-{uuid.uuid4().hex[:8]}"
    step = ensure_builder(BuilderOptions(name=name, driver="docker-container", driver_opts={"memory": "8g"},
                                         image="busybox:local"))
    assert step is not None
    executor = Executor(client, Console(quiet=True))
    first = executor.run(Plan("b", (step,))).results[0].detail
    again = executor.run(Plan("b", (step,))).results[0].detail
    assert first == {"created": True} and again == {"created": False}
    assert client.buildx.inspect(name).driver == "docker-container"
    shown = subprocess.run([*map(str, client.client_config.docker_cmd), "buildx", "inspect", name],
                           capture_output=True, text=True, check=True).stdout
    (options,) = [line.split(":", 1)[1].split() for line in shown.splitlines() if line.startswith("Driver Options:")]
    assert sorted(options) == ['image="busybox:local"', 'memory="8g"', 'network="host"']  # buildx prints them unordered
    client.buildx.remove(name)


def test_a_builder_whose_buildkit_image_is_absent_stops_with_the_fix(client: DockerClient) -> None:
    name = f"ob-{uuid.uuid4().hex[:8]}"
    step = ensure_builder(BuilderOptions(name=name, driver="docker-container", image="moby/buildkit:absent"))
    assert step is not None
    with pytest.raises(StepError) as info:
        Executor(client, Console(quiet=True)).run(Plan("b", (step,)))
    assert "moby/buildkit:absent is not in this engine" in str(info.value)
    assert "offline.setup" in str(info.value)
    with pytest.raises(DockerException, match=f'no builder "{name}" found'):  # buildx's own words
        client.buildx.inspect(name)  # nothing was created


def test_a_builder_made_for_another_engine_is_refused(engines: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "docker-config"
    online = DockerClient(host=engines["online"], config=config)
    offline = DockerClient(host=engines["offline"], config=config)
    name = f"ob-{uuid.uuid4().hex[:8]}"
    step = ensure_builder(BuilderOptions(name=name, driver="docker-container", image="busybox:local"))
    assert step is not None
    Executor(online, Console(quiet=True)).run(Plan("b", (step,)))
    subprocess.run(["docker", "-H", engines["offline"], "import", str(IMAGES / "busybox-v2.rootfs.tar"),
                    "busybox:local"], check=True, capture_output=True)
    with pytest.raises(StepError) as info:
        Executor(offline, Console(quiet=True)).run(Plan("b", (step,)))
    assert f"builder {name} drives {engines['online']}, not {engines['offline']}" in str(info.value)
    online.buildx.remove(name)


def test_a_builder_of_the_same_name_with_another_driver_or_endpoint_is_refused(client: DockerClient) -> None:
    name = f"ob-{uuid.uuid4().hex[:8]}"
    # Registered only: buildx create does not connect to a remote endpoint until it boots.
    subprocess.run([*map(str, client.client_config.docker_cmd), "buildx", "create", "--name", name,
                    "--driver", "remote", "tcp://127.0.0.1:1"], check=True, capture_output=True)
    try:
        for options, problem in [
            (BuilderOptions(name=name, driver="docker-container", image="moby/buildkit:absent"),
             f"builder {name} exists with the remote driver, not docker-container"),  # named before the image
            (BuilderOptions(name=name, driver="remote", endpoint="tcp://127.0.0.1:2"),
             f"builder {name} drives tcp://127.0.0.1:1, not tcp://127.0.0.1:2"),
        ]:
            step = ensure_builder(options)
            assert step is not None
            with pytest.raises(StepError) as info:
                Executor(client, Console(quiet=True)).run(Plan("b", (step,)))
            assert problem in str(info.value) and f"docker buildx rm {name}" in str(info.value)
        same = ensure_builder(BuilderOptions(name=name, driver="remote", endpoint="tcp://127.0.0.1:1"))
        assert same is not None
        assert Executor(client, Console(quiet=True)).run(Plan("b", (same,))).results[0].detail == {"created": False}
        assert client.buildx.inspect(name).driver == "remote"  # left as it was
    finally:
        client.buildx.remove(name)

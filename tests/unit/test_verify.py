"""offline.verify's report shows each step as the user wrote it, not as the offline variant rewrote it (no engine)."""

from __future__ import annotations

from offline_build.captures import all_captures
from offline_build.captures.apt import ARCHIVES, LISTS, UPDATE, mounts, to_true
from offline_build.captures.lang import MOUNTS
from offline_build.verify import plain_step

CAPTURES = {c.name: c for c in all_captures()}
USER = ("RUN npm ci", "RUN --mount=type=cache,target=/root/.m2 mvn -B package",
        "RUN apt-get update     && apt-get install -y jq", "RUN uv sync --frozen")  # continuations joined


def served(tool: str, command: str) -> str:
    """The RUN the offline variant writes for *command* served by *tool*'s capture (as BuildKit names it)."""
    target = f"{MOUNTS}/{tool}/svc-1"
    mount = f"--mount=type=bind,from={tool}-svc-1,source=linux_amd64,target={target}"
    return f"RUN {mount} {CAPTURES[tool].served_command(command, target)}"  # type: ignore[attr-defined]


def test_a_served_step_is_shown_as_the_user_s_own_instruction() -> None:
    assert plain_step(f"[stage-0 3/4] {served('npm', 'npm ci')}", USER) == "[stage-0 3/4] RUN npm ci"
    assert plain_step(f"[build 4/5] {served('maven', 'mvn -B package')}", USER) == \
        "[build 4/5] RUN --mount=type=cache,target=/root/.m2 mvn -B package"
    assert plain_step(f"[2/2] {served('uv', 'uv sync --frozen')}", USER) == "[2/2] RUN uv sync --frozen"


def test_apt_s_update_comes_back_as_written() -> None:
    command = f"mkdir -p {LISTS}/partial {ARCHIVES}/partial && " + UPDATE.sub(
        to_true, "apt-get update     && apt-get install -y jq")
    name = f"[stage-0 4/5] RUN {' '.join(mounts('apt-debian'))} {command}"
    assert plain_step(name, USER) == "[stage-0 4/5] RUN apt-get update && apt-get install -y jq"


def test_without_the_dockerfile_what_the_variant_adds_is_stripped() -> None:
    assert plain_step(f"[stage-0 3/4] {served('npm', 'npm ci')}") == "[stage-0 3/4] RUN npm ci"
    assert plain_step(f"[1/2] {served('pip', 'pip install -r r.txt')}") == "[1/2] RUN pip install -r r.txt"
    assert plain_step("[stage-0 2/4] COPY . .", USER) == "[stage-0 2/4] COPY . ."


def test_the_closest_instruction_wins() -> None:
    runs = ("RUN make", "RUN cmake .. && make")
    assert plain_step("[2/3] RUN cmake .. && make", runs) == "[2/3] RUN cmake .. && make"
    assert plain_step(f"[3/3] {served('npm', 'make')}", runs) == "[3/3] RUN make"

"""APT commands as people write them, and what the capture and variants make of them."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from offline_build import apt, variant
from offline_build.captures.apt import APT
from offline_build.dockerfile import parse_text
from offline_build.retry import is_transient
from offline_build.runners.build import buildkit_reason

# (RUN text, packages installed, --no-install-recommends everywhere?)
SHAPES = [
    ("apt-get update && apt-get install -y curl", ["curl"], False),
    ("apt-get update && apt-get install -y --no-install-recommends ca-certificates curl", ["ca-certificates", "curl"], True),
    ("apt-get update \\\n && apt-get install -y \\\n    git \\\n    make \\\n && rm -rf /var/lib/apt/lists/*", ["git", "make"], False),
    ("apt-get update; apt-get install -y vim", ["vim"], False),
    ("apt-get update || true; apt-get install -y less", ["less"], False),
    ("apt-get -qq update && apt-get -qq install -y zip", ["zip"], False),
    ("apt-get update && apt-get -y install unzip", ["unzip"], False),
    ("DEBIAN_FRONTEND=noninteractive apt-get install -yq tzdata", ["tzdata"], False),
    ("export DEBIAN_FRONTEND=noninteractive && apt-get install -y locales", ["locales"], False),
    ("apt-get install -y curl=7.88.1-10+deb12u5 openssl", ["curl=7.88.1-10+deb12u5", "openssl"], False),
    ("apt-get install -y -t bookworm-backports golang", ["golang/bookworm-backports"], False),
    ("apt-get install -y --target-release=bookworm-backports nodejs", ["nodejs/bookworm-backports"], False),
    ("apt install -y python3 python3-pip", ["python3", "python3-pip"], False),
    ("apt-get install -y -o Dpkg::Options::=--force-confold nginx", ["nginx"], False),
    ("apt-get install -y -o APT::Install-Recommends=false gcc", ["gcc"], True),
    ("sh -c 'apt-get update && apt-get install -y jq'", ["jq"], False),
    ("bash -lc \"apt-get install -y wget\"", ["wget"], False),
    ("sudo apt-get install -y htop", ["htop"], False),
    ("set -eux; apt-get update; apt-get install -y --no-install-recommends libpq5; rm -rf /var/lib/apt/lists/*", ["libpq5"], True),
    ("apt-get install -y libc6:amd64 && echo done | tee /tmp/log", ["libc6:amd64"], False),
    ("(apt-get update && apt-get install -y procps) > /dev/null 2>&1", ["procps"], False),
    ("apt-get update && apt-get install -y --no-install-recommends build-essential && apt-get purge -y --auto-remove", ["build-essential"], True),
    ("pip install requests && apt-get install -y graphviz", ["graphviz"], False),
    ("apt-get update && apt-get upgrade -y", [], True),
    ("echo \"apt-get install -y notreally\"", [], True),
]


@pytest.mark.parametrize("text, packages, no_recommends", SHAPES, ids=[s[0][:40] for s in SHAPES])
def test_installs_found_in_real_world_shapes(text: str, packages: list[str], no_recommends: bool) -> None:
    df = parse_text(f"FROM debian:bookworm-slim\nRUN {text}\n", "Dockerfile")
    found = apt.analyse(df)
    if not packages:
        assert found == {}
        return
    assert found["debian:bookworm-slim"].packages == packages
    assert found["debian:bookworm-slim"].no_recommends is no_recommends


def test_exec_form_and_heredoc_runs_are_read() -> None:
    df = parse_text('FROM debian:bookworm-slim\nRUN ["apt-get", "install", "-y", "file"]\n'
                    "RUN <<EOT\nset -e\napt-get install -y tree\nEOT\n", "Dockerfile")
    assert apt.analyse(df)["debian:bookworm-slim"].packages == ["file", "tree"]


def test_packages_are_grouped_by_the_stage_chain_base() -> None:
    df = parse_text("ARG BASE=debian:bookworm-slim\nFROM ${BASE} AS build\nRUN apt-get install -y gcc\n"
                    "FROM build AS test\nRUN apt-get install -y make\n"
                    "FROM ubuntu:24.04\nRUN apt-get install -y curl\n", "Dockerfile")
    found = apt.analyse(df)
    assert found["debian:bookworm-slim"].packages == ["gcc", "make"]
    assert found["ubuntu:24.04"].packages == ["curl"]


def test_source_edits_are_kept_to_replay_before_the_capture() -> None:
    df = parse_text("FROM debian:bookworm-slim\n"
                    "RUN sed -i 's/deb.example.invalid/mirror.example.invalid/g' /etc/apt/sources.list.d/debian.sources"
                    " && echo 'deb http://example.invalid/debian bookworm main' > /etc/apt/sources.list.d/x.list"
                    " && apt-get update && apt-get install -y curl\n", "Dockerfile")
    use = apt.analyse(df)["debian:bookworm-slim"]
    replay = [shlex.split(apt.shell_join(e)) for e in use.source_edits]
    assert replay == [shlex.split(line) for line in ["sed -i 's/deb.example.invalid/mirror.example.invalid/g' /etc/apt/sources.list.d/debian.sources",
                      "echo 'deb http://example.invalid/debian bookworm main' > /etc/apt/sources.list.d/x.list"]]


def test_unbalanced_quotes_do_not_crash() -> None:
    assert apt.simple_commands("echo 'oops && apt-get install -y x") != []


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return path


def test_offline_variant_mounts_the_capture_and_neutralises_update(tmp_path: Path) -> None:
    path = write(tmp_path, "# syntax=docker/dockerfile:1\nFROM debian:bookworm-slim\n"
                           "RUN apt-get update \\\n && apt-get install -y jq\nCOPY a /a\n")
    from offline_build.dockerfile import parse

    v = variant.offline_variant(parse(path), [(APT, apt.analyse(parse(path)))])
    lines = v.text.splitlines()
    assert lines[0].startswith("# (offline-build: '# syntax=' dropped")
    # The platform being built picks its own capture: BuildKit expands the declared ARGs in --mount.
    assert lines[2] == "ARG TARGETOS TARGETARCH TARGETVARIANT"
    platform = "${TARGETOS}_${TARGETARCH}${TARGETVARIANT:+_${TARGETVARIANT}}"
    assert lines[3].startswith(f"RUN --mount=type=bind,from=apt-debian_bookworm-slim,source={platform}/lists,"
                               "target=/var/lib/apt/lists,rw --mount=type=bind,from=apt-debian_bookworm-slim,"
                               f"source={platform}/archives,target=/var/cache/apt/archives,rw ")
    assert "apt-get update" not in lines[3] and "apt-get install -y jq" in lines[3]
    assert lines[4] == "COPY a /a"
    assert v.contexts == {"apt-debian_bookworm-slim": ("apt", "debian:bookworm-slim")}
    assert any("syntax" in n for n in v.notes)


def test_classic_variant_uses_the_preinstalled_base_and_drops_cache_mounts(tmp_path: Path) -> None:
    from offline_build.dockerfile import parse

    path = write(tmp_path, "FROM debian:bookworm-slim AS app\n"
                           "RUN --mount=type=cache,target=/root/.cache apt-get update && apt-get install -y jq && echo ok\n"
                           "COPY --link a /a\n")
    c = variant.classic_variant(parse(path), {"debian:bookworm-slim": "demo-apt:1"})
    # The cache mount goes, its target stays: BuildKit always mounts it, and steps write there.
    assert c.text == "FROM demo-apt:1 AS app\nRUN mkdir -p /root/.cache && true && true && echo ok\nCOPY a /a\n"


@pytest.mark.parametrize("run, expected", [
    ("RUN --mount=target=/c,type=cache make", "RUN mkdir -p /c && make"),
    ("RUN --mount=type=cache,dst=/a --mount=type=cache,target=/b x", "RUN mkdir -p /a /b && x"),
    ('RUN --mount=type=cache,target=/c ["make", "all"]', 'RUN ["sh", "-c", "mkdir -p /c && exec \\"$@\\"", "sh", "make", "all"]'),
])
def test_every_dropped_cache_mount_leaves_its_folder(tmp_path: Path, run: str, expected: str) -> None:
    from offline_build.dockerfile import parse

    c = variant.classic_variant(parse(write(tmp_path, f"FROM debian:bookworm-slim\n{run}\n")), {})
    assert c.text == f"FROM debian:bookworm-slim\n{expected}\n"


@pytest.mark.parametrize("text, reason", [
    ("FROM debian:bookworm-slim\nRUN <<EOT\necho hi\nEOT\n", "a heredoc needs BuildKit"),
    ("FROM debian:bookworm-slim\nRUN --mount=type=secret,id=t cat /run/secrets/t\n", "RUN --mount=type=secret"),
    ("FROM debian:bookworm-slim\nRUN --mount=target=/src make\n", "RUN --mount=target=/src needs BuildKit"),  # a bind
    ("FROM debian:bookworm-slim\nRUN --mount=type=tmpfs,target=/t make\n", "RUN --mount=type=tmpfs"),
    ("FROM debian:bookworm-slim\nCOPY --chmod=0755 a /a\n", "COPY --chmod=0755 needs BuildKit"),
    ("FROM alpine:3\nRUN apt-get install -y x\n", "no preinstalled image"),
])
def test_no_classic_variant_says_why(tmp_path: Path, text: str, reason: str) -> None:
    from offline_build.dockerfile import parse

    c = variant.classic_variant(parse(write(tmp_path, text)), {})
    assert c.text is None and reason in c.reason and c.reason.startswith("Dockerfile:2:")


@pytest.mark.parametrize("message, reason", [
    ("ERROR: failed to solve: unsupported frontend capability moby.buildkit.frontend.contexts",
     "no named build contexts"),
    ('ERROR: invalid build context: unknown scheme oci-layout', "oci-layout"),
    ("ERROR: failed to solve: pull access denied for foo, repository does not exist", "pull"),
    ("Dockerfile parse error line 2: Unknown flag: mount", "RUN --mount"),
    ("step '[2/3] RUN false' failed: process did not complete successfully: exit code: 1", None),
])
def test_fallback_only_on_buildkit_specific_failures(message: str, reason: str | None) -> None:
    got = buildkit_reason(message)
    assert (got is None) if reason is None else (got is not None and reason in got)


@pytest.mark.parametrize("message, transient", [
    ("ERROR: Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?", True),
    ("ERROR: failed to solve: rpc error: code = Unavailable desc = error reading from server: EOF", True),
    ("read: connection reset by peer", True),
    ("step '[2/2] RUN curl x' failed: process did not complete successfully: exit code: 6", False),
    ("failed to solve: failed to compute cache key: \"/missing\" not found", False),
])
def test_only_connection_failures_are_transient(message: str, transient: bool) -> None:
    assert is_transient(message) is transient

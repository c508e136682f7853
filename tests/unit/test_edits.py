"""The edit proof as text and plan: where the edit lands, and what offline.verify --edits builds (no engine)."""

from __future__ import annotations

from pathlib import Path

from offline_build.build import plan_offline_builds
from offline_build.config import load
from offline_build.edits import EDIT_ARG, edited
from offline_build.steps import OfflineBuild, WriteFile

MULTI = """\
# syntax=docker/dockerfile:1
FROM debian:bookworm-slim AS deps
RUN apt-get update && apt-get install -y --no-install-recommends python3
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
RUN python3 -m compileall .

FROM deps AS test
RUN python3 -m pytest

FROM debian:bookworm-slim
COPY --from=deps /app /app
RUN --mount=type=bind,source=scripts,target=/s /s/install.sh
ADD https://example.invalid/x.tar.gz /x.tar.gz
"""


def test_the_edit_lands_before_each_stages_first_read_of_the_context(tmp_path: Path) -> None:
    text = edited(MULTI, tmp_path / "Dockerfile")
    assert text is not None
    lines = text.splitlines()
    # deps: before COPY requirements.txt (the first copy from the context), not before the apt step.
    assert lines[4:6] == [f"ARG {EDIT_ARG}", "COPY requirements.txt ."]
    assert lines[2].startswith("RUN apt-get update")
    # test reads no context: it runs again only because deps did.
    assert lines[10:12] == ["FROM deps AS test", "RUN python3 -m pytest"]
    # the last stage: COPY --from is not the context; a bind mount without from= is.
    assert lines[15:17] == [f"ARG {EDIT_ARG}", "RUN --mount=type=bind,source=scripts,target=/s /s/install.sh"]
    assert text.count(f"ARG {EDIT_ARG}") == 2
    assert text.replace(f"ARG {EDIT_ARG}\n", "") == MULTI  # nothing else changes


def test_a_dockerfile_that_never_reads_its_context_has_no_edit(tmp_path: Path) -> None:
    text = "FROM debian:bookworm-slim\nRUN echo hi\nCOPY --from=busybox:1 /bin/busybox /b\nADD https://example.invalid/a /a\n"
    assert edited(text, tmp_path / "Dockerfile") is None


def test_verify_edits_builds_the_edited_dockerfile_with_a_fresh_value(tmp_path: Path) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text("FROM debian:bookworm-slim\nCOPY . .\nRUN make\n")
    (tmp_path / "quiet").mkdir()
    (tmp_path / "quiet" / "Dockerfile").write_text("FROM debian:bookworm-slim\nRUN echo hi\n")
    (tmp_path / "offline.yaml").write_text("project: p\nservices:\n  svc: {context: svc}\n  quiet: {context: quiet}\n")
    project = load(tmp_path / "offline.yaml", environ={})
    services = list(project.services.values())
    plain = plan_offline_builds(project, services, None).steps
    steps = plan_offline_builds(project, services, None, edit="abc123").steps
    builds = {s.service: s for s in steps if isinstance(s, OfflineBuild)}
    svc = builds["svc"].buildkit
    assert svc is not None and svc.dockerfile == project.cache_dir / "variants" / "svc" / "Dockerfile.edit"
    assert (EDIT_ARG, "abc123") in svc.build_args and f"{EDIT_ARG}=abc123" in svc.argv()
    assert builds["svc"].classic is not None and (EDIT_ARG, "abc123") in builds["svc"].classic.build_args
    (written,) = [s for s in steps if isinstance(s, WriteFile) and s.path == svc.dockerfile]
    assert written.text == f"FROM debian:bookworm-slim\nARG {EDIT_ARG}\nCOPY . .\nRUN make\n"
    # A service that never reads its context builds as plain verify builds it: no unused build argument.
    quiet = builds["quiet"].buildkit
    assert quiet is not None and EDIT_ARG not in dict(quiet.build_args)
    assert quiet == next(s for s in plain if isinstance(s, OfflineBuild) and s.service == "quiet").buildkit


def test_a_base_from_a_build_argument_and_a_heredoc_copy(tmp_path: Path) -> None:
    text = ("ARG BASE\nFROM ${BASE}\nCOPY <<EOF /etc/motd\nhello\nEOF\nRUN curl -fsS https://example.invalid/x\n"
            "COPY . .\nRUN make\n")
    # The heredoc is the Dockerfile's own text, not the context: the edit lands before COPY . ., not above curl.
    out = edited(text, tmp_path / "Dockerfile", {"BASE": "debian:bookworm-slim"})
    assert out is not None and out.splitlines()[6:8] == [f"ARG {EDIT_ARG}", "COPY . ."]


def test_a_bind_mount_from_a_stage_or_image_is_not_the_context(tmp_path: Path) -> None:
    """``RUN --mount=type=bind,from=...`` reads another stage or image, as ``COPY --from`` does: no edit there."""
    from offline_build.dockerfile import parse_text
    from offline_build.edits import reads_context

    text = ("FROM debian:bookworm-slim AS deps\nRUN echo built > /out\n"
            "FROM debian:bookworm-slim\n"
            "RUN --mount=type=bind,from=deps,source=/out,target=/o cat /o\n"
            "RUN --mount=type=bind,from=busybox:1,source=/bin,target=/b ls /b\n"
            "RUN --mount=type=cache,target=/root/.cache true\n"
            "COPY . .\nRUN make\n")
    df = parse_text(text, tmp_path / "Dockerfile")
    runs = [i for stage in df.stages for i in stage.instructions if i.cmd == "RUN"]
    assert [reads_context(i) for i in runs] == [False, False, False, False, False]
    out = edited(text, tmp_path / "Dockerfile")
    assert out is not None
    lines = out.splitlines()
    assert out.count(f"ARG {EDIT_ARG}") == 1 and lines[6:8] == [f"ARG {EDIT_ARG}", "COPY . ."]
    # Without from= the same mount is the context.
    plain = text.replace("from=deps,", "")
    assert edited(plain, tmp_path / "Dockerfile").splitlines()[3:5] == [  # type: ignore[union-attr]
        f"ARG {EDIT_ARG}", "RUN --mount=type=bind,source=/out,target=/o cat /o"]

"""The replay capture's logic: which steps it serves, the variants it writes, lint's view, and its recordings.

Real project files in tmp_path; no engine, no proxy (tests/unit/test_replay_proxy.py runs those).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from offline_build import recording
from offline_build.captures.replay import REPLAY, ReplayCapture
from offline_build.config import Project, load
from offline_build.errors import ConfigError, OfflineBuildError
from offline_build.inputs import Inputs, inputs, lint_project
from offline_build.recording import Exchange

MOUNTS = ("--network=host --mount=type=secret,id=offline-build-proxy,mode=0444 "
          "--mount=type=secret,id=offline-build-proxy-ca,mode=0444")

# Line numbers matter: the tests name them.
PICKED = """\
FROM debian:bookworm-slim
RUN curl -fsSL https://files.example.invalid/model.bin -o /model.bin
RUN git clone -q https://git.example.invalid/companion.git /companion
RUN python3 -c "import nltk; nltk.download('punkt')"
RUN python3 -c "import urllib.request; urllib.request.urlopen('https://h.example.invalid/a').read()"
RUN git clone git@git.example.invalid:team/private.git /private
RUN git clone ssh://git.example.invalid/team/other.git /other
RUN pip install requests
RUN <<EOS
curl -fsSL https://files.example.invalid/in-heredoc -o /h
EOS
RUN python3 fetch.py
RUN echo done
"""
CURL, CLONE, NLTK, URLOPEN, GIT_AT, GIT_SSH, PIP, HEREDOC, FETCH_PY, ECHO = 2, 3, 4, 5, 6, 7, 8, 9, 12, 13


def make_project(root: Path, dockerfile: str, service: str = "{context: app}", top: str = "") -> Path:
    (root / "app").mkdir(parents=True, exist_ok=True)
    (root / "app" / "Dockerfile").write_text(dockerfile)
    (root / "offline.yaml").write_text(f"project: p\n{top}services:\n  app: {service}\n")
    return root / "offline.yaml"


def project_of(root: Path, dockerfile: str, service: str = "{context: app}", top: str = "") -> Project:
    return load(make_project(root, dockerfile, service, top), environ={})


def replay_lines(i: Inputs) -> tuple[int, ...]:
    need = i.needs[REPLAY.name].get("app")
    return need.lines if need else ()


def line_of(text: str, word: str) -> str:
    (found,) = [line for line in text.splitlines() if word in line]
    return found


def flags_of(run_line: str) -> list[str]:
    """The flags of a one-line ``RUN``: the words after RUN up to the command."""
    words = run_line.split()
    assert words[0] == "RUN"
    flags = []
    for word in words[1:]:
        if not word.startswith("--"):
            break
        flags.append(word)
    return flags


def exchange(url: str, body: bytes, status: int = 200, method: str = "GET",
             request: bytes = b"") -> tuple[Exchange, bytes]:
    return Exchange(method, url, recording.body_digest(request), status, "OK" if status == 200 else "X",
                    (("Content-Length", str(len(body))),), recording.body_digest(body)), body


# --- needs(): which steps ------------------------------------------------------------


def test_fetching_steps_are_picked_by_line_and_ssh_pip_heredoc_are_not(tmp_path: Path) -> None:
    project = project_of(tmp_path, PICKED)
    i = inputs(project, project.services["app"], online=True)
    assert replay_lines(i) == (CURL, CLONE, NLTK, URLOPEN)
    assert list(i.needs["pip"].values())[0].line == PIP  # pip's capture serves pip, not the replay
    assert i.replays == (str(project.cache_dir / "captures" / "replay" / "app"),)


def test_replay_lists_extra_lines(tmp_path: Path) -> None:
    project = project_of(tmp_path, PICKED, "{context: app, replay: [%d]}" % FETCH_PY)
    i = inputs(project, project.services["app"], online=True)
    assert replay_lines(i) == (CURL, CLONE, NLTK, URLOPEN, FETCH_PY)
    assert line_of(i.variant.text, "fetch.py").startswith(f"RUN {MOUNTS} ")
    assert line_of(i.variant.text, "echo done") == "RUN echo done"  # not listed, not fetching


def test_replay_false_on_the_service_serves_none(tmp_path: Path) -> None:
    project = project_of(tmp_path, PICKED, "{context: app, replay: false}")
    i = inputs(project, project.services["app"], online=True)
    assert i.needs["replay"] == {} and i.replays == ()
    assert "offline-build-proxy" not in (i.variant.text if i.variant else "")
    assert i.classic.text is None and "heredoc" in i.classic.reason  # for its heredoc, not for a replayed step


def test_captures_replay_false_serves_none(tmp_path: Path) -> None:
    project = project_of(tmp_path, PICKED, top="captures: {replay: false}\n")
    i = inputs(project, project.services["app"], online=True)
    assert i.needs["replay"] == {} and i.replays == ()
    assert "offline-build-proxy" not in (i.variant.text if i.variant else "")


@pytest.mark.parametrize(("line", "why"), [
    (1, "FROM"),
    (10, "inside a heredoc"),
    (HEREDOC, "a heredoc RUN"),
    (99, "past the end"),
])
def test_replay_naming_a_line_that_starts_no_shell_run_is_an_error(tmp_path: Path, line: int, why: str) -> None:
    project = project_of(tmp_path, PICKED, "{context: app, replay: [%d]}" % line)
    with pytest.raises(OfflineBuildError) as err:
        inputs(project, project.services["app"], online=True)
    assert f"services.app.replay names line {line} of " in err.value.message, why
    assert "does not start a shell-form RUN step" in err.value.message


def test_replay_naming_a_json_run_is_an_error(tmp_path: Path) -> None:
    project = project_of(tmp_path, 'FROM debian:bookworm-slim\nRUN ["python3", "fetch.py"]\n',
                         "{context: app, replay: [2]}")
    with pytest.raises(OfflineBuildError, match=r"services\.app\.replay names line 2 of .*Dockerfile"):
        inputs(project, project.services["app"], online=True)


@pytest.mark.parametrize(("value", "message"), [
    ("[0]", "0 is not a line number"),
    ("[-3]", "-3 is not a line number"),
    ("[true]", "True is not a line number"),
    ("['4']", "'4' is not a line number"),
    ('"x"', "expected a list"),
])
def test_replay_in_the_project_file_must_be_a_boolean_or_line_numbers(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(make_project(tmp_path, PICKED, "{context: app, replay: %s}" % value), environ={})
    assert message in str(err.value)
    assert err.value.line == 3  # the service's line in offline.yaml


# --- target, variants, cache keys ----------------------------------------------------------

STAGED = """\
FROM debian:bookworm-slim AS builder
RUN --mount=type=cache,target=/root/.cache curl -fsSL https://files.example.invalid/model.bin -o /model.bin
RUN echo built > /built

FROM debian:bookworm-slim AS runner
COPY --from=builder /model.bin /built /

FROM debian:bookworm-slim AS tools
RUN curl -fsSL https://files.example.invalid/tools.tgz -o /tools.tgz
"""


def test_a_replayed_step_in_a_stage_the_target_skips_is_neither_needed_nor_served(tmp_path: Path) -> None:
    project = project_of(tmp_path, STAGED, "{context: app, target: runner}")
    i = inputs(project, project.services["app"], online=True)
    assert replay_lines(i) == (2,)
    for text in (i.variant.text, i.capture.text):
        assert line_of(text, "tools.tgz") == "RUN curl -fsSL https://files.example.invalid/tools.tgz -o /tools.tgz"
        assert "COPY --from=tools" not in text
    # without the target, the last stage is built: its step is served
    whole = project_of(tmp_path / "whole", STAGED)
    assert replay_lines(inputs(whole, whole.services["app"], online=True)) == (2, 9)


def test_the_capture_and_offline_variants_put_the_same_flags_on_the_step(tmp_path: Path) -> None:
    project = project_of(tmp_path, STAGED, "{context: app, target: runner}")
    i = inputs(project, project.services["app"], online=True)
    offline, capture = line_of(i.variant.text, "model.bin -o"), line_of(i.capture.text, "model.bin -o")
    expected = [*MOUNTS.split(), "--mount=type=cache,target=/root/.cache"]  # the user's flags kept, after
    assert flags_of(offline) == flags_of(capture) == expected
    assert ". /run/secrets/offline-build-proxy && curl -fsSL" in offline
    assert "mkdir -p /.offline-build/out/replay" in capture and "mkdir" not in offline
    assert i.dockerfile == project.cache_dir / "variants" / "app" / "Dockerfile.offline"


def test_the_site_writes_the_export_s_variant_once_the_recording_is_there(tmp_path: Path) -> None:
    project = project_of(tmp_path, STAGED, "{context: app, target: runner}")
    exported = inputs(project, project.services["app"], online=True)
    bare = inputs(project, project.services["app"], online=False)  # no recording yet: the step as written
    assert bare.variant is None and bare.dockerfile == project.services["app"].dockerfile and bare.replays == ()
    assert "offline-build-proxy" not in bare.dockerfile.read_text()
    recording.write(project.cache_dir / "captures" / "replay" / "app",
                    [exchange("https://files.example.invalid/model.bin", b"model")])
    site = inputs(project, project.services["app"], online=False)
    assert site.variant is not None and site.variant.text == exported.variant.text  # equal text, equal cache keys
    assert (site.dockerfile, site.contexts, site.replays) == (exported.dockerfile, exported.contexts, exported.replays)
    assert site.capture is None


def test_a_step_pip_and_the_replay_both_serve_trusts_the_proxy_when_captured(tmp_path: Path) -> None:
    """In the capture build of a step that both pip and the replay serve, pip's requests go through the recording
    proxy: its CA (set by the proxy's file, sourced first) must not be replaced by the project's ca_file."""
    project = project_of(tmp_path, "FROM python:3.12-slim\n"
                         "RUN pip install requests && curl -fsSL https://files.example.invalid/m -o /m\n")
    i = inputs(project, project.services["app"], online=True)
    assert replay_lines(i) == (2,) and list(i.needs["pip"].values())[0].line == 2
    step = line_of(i.capture.text, "pip install requests")
    after_proxy = step.rsplit(". /run/secrets/offline-build-proxy", 1)[1]
    assert ("if [ -f /run/secrets/offline-build-ca ] && [ ! -f /run/secrets/offline-build-proxy ]; "
            "then export PIP_CERT=/run/secrets/offline-build-ca; fi;") in after_proxy


def test_a_service_with_replayed_steps_has_no_classic_variant(tmp_path: Path) -> None:
    project = project_of(tmp_path, STAGED, "{context: app, target: runner}")
    i = inputs(project, project.services["app"], online=True)
    assert i.classic.text is None and "classic builder" in i.classic.reason


def test_a_service_without_replayed_steps_keeps_its_classic_variant(tmp_path: Path) -> None:
    project = project_of(tmp_path, "FROM debian:bookworm-slim\nRUN echo hi > /hi\n")
    i = inputs(project, project.services["app"], online=True)
    assert i.needs["replay"] == {} and i.replays == ()
    assert i.classic.text == "FROM debian:bookworm-slim\nRUN echo hi > /hi\n" and i.classic.reason == ""


# --- lint in a project ----------------------------------------------------------------------


def finding(project: Project, line: int, rule: str) -> tuple[str, str]:
    (found,) = [(f.severity, f.message) for f in lint_project(project) if f.line == line and f.rule == rule]
    return found


def test_lint_says_the_replay_serves_a_fetch(tmp_path: Path) -> None:
    project = project_of(tmp_path, PICKED)
    severity, message = finding(project, CURL, "download")
    assert severity == "info" and "served offline by the bundle's replay" in message
    assert finding(project, CLONE, "git-clone")[0] == "info"
    assert finding(project, URLOPEN, "runtime-fetch")[0] == "info"


def test_lint_keeps_git_over_ssh_and_a_heredoc_fetch_as_errors(tmp_path: Path) -> None:
    project = project_of(tmp_path, PICKED)
    assert finding(project, GIT_AT, "git-clone")[0] == "error"
    assert finding(project, GIT_SSH, "git-clone")[0] == "error"
    assert finding(project, HEREDOC + 1, "download")[0] == "error"


def test_lint_with_replay_false_on_the_service_keeps_the_error(tmp_path: Path) -> None:
    project = project_of(tmp_path, PICKED, "{context: app, replay: false}")
    severity, message = finding(project, CURL, "download")
    assert severity == "error" and "replay" not in message


def test_lint_with_the_replay_capture_off_keeps_the_error(tmp_path: Path) -> None:
    project = project_of(tmp_path, PICKED, top="captures: {replay: false}\n")
    assert finding(project, CURL, "download")[0] == "error"


# --- recordings ---------------------------------------------------------------------------------


def test_a_recording_reads_back_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    written = [exchange("https://h.example.invalid/a?x=1", b"alpha"),
               exchange("https://h.example.invalid/git-upload-pack", b"PACK", method="POST", request=b"want abc\n"),
               (Exchange("GET", "https://h.example.invalid/r", "", 302, "Found", (("Location", "/a"),), ""), b"")]
    assert recording.write(folder, written) == 3
    assert recording.read(folder) == [e for e, _ in written]
    assert recording.body_files(folder) == sorted(f"bodies/{hashlib.sha256(b).hexdigest()}"
                                                  for b in (b"alpha", b"PACK"))
    found = recording.read_all([folder])
    post = found[recording.request_key("post", "https://h.example.invalid/git-upload-pack",
                                       hashlib.sha256(b"want abc\n").hexdigest())]
    assert post[1].read_bytes() == b"PACK"
    assert recording.request_key("GET", "https://h.example.invalid/git-upload-pack", "") not in found


def test_a_request_made_twice_keeps_its_first_answer(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    first = exchange("https://h.example.invalid/a", b"first")
    second = exchange("https://h.example.invalid/a", b"second")
    assert recording.write(folder, [first, second]) == 1
    (kept,) = recording.read(folder)
    assert kept.body_sha256 == hashlib.sha256(b"first").hexdigest()
    assert recording.body_files(folder) == [f"bodies/{kept.body_sha256}"]  # the second body is not kept at all


@pytest.mark.parametrize("text", [
    "{",
    "[]",
    '{"version": 2, "exchanges": []}',
    '{"version": 1, "exchanges": [{"method": "GET"}]}',
    '{"version": 1, "exchanges": ["GET /"]}',
])
def test_a_damaged_recording_is_one_error_naming_the_file(tmp_path: Path, text: str) -> None:
    folder = tmp_path / "rec"
    recording.write(folder, [exchange("https://h.example.invalid/a", b"a")])
    (folder / "exchanges.json").write_text(text)
    with pytest.raises(OfflineBuildError) as err:
        recording.read(folder)
    assert f"cannot read the replay recording {folder / 'exchanges.json'}" in err.value.message


def test_a_missing_recording_is_the_same_error(tmp_path: Path) -> None:
    with pytest.raises(OfflineBuildError, match="cannot read the replay recording"):
        recording.read(tmp_path / "nothing")


def test_shown_url_hides_credentials_and_secret_query_values() -> None:
    shown = recording.shown_url("https://user:pw@h.example.invalid:8443/p?token=abc&x=1")
    assert shown == "https://h.example.invalid:8443/p?token=***&x=1"
    assert "user" not in shown and "pw" not in shown and "abc" not in shown


def test_shown_url_keeps_an_ipv6_host_and_hides_a_signature() -> None:
    shown = recording.shown_url("https://[::1]:9/f?X-Amz-Signature=s3cr3t&a=b")
    assert shown == "https://[::1]:9/f?X-Amz-Signature=***&a=b"


# --- what the capture reports ------------------------------------------------------------------


def test_packages_lists_each_2xx_body_with_its_url(tmp_path: Path) -> None:
    root = tmp_path / "replay"
    model = exchange("https://u:p@files.example.invalid/models/model.bin?token=abc&v=2", b"model bytes")
    recording.write(root / "app", [
        model,
        exchange("https://files.example.invalid/missing.bin", b"not found\n", status=404),
        (Exchange("GET", "https://files.example.invalid/r", "", 302, "Found", (("Location", "/x"),), ""), b""),
    ])
    paths = ["app/exchanges.json", *(f"app/{p}" for p in recording.body_files(root / "app"))]
    (package,) = ReplayCapture().packages(paths, lambda p: (root / p).read_bytes())
    sha = hashlib.sha256(b"model bytes").hexdigest()
    assert (package.type, package.name, package.version) == ("generic", "model.bin", "")
    assert package.path == f"app/bodies/{sha}"
    assert package.qualifiers == (("download_url", "https://files.example.invalid/models/model.bin?token=***&v=2"),)
    assert (root / package.path).read_bytes() == b"model bytes"


def test_rows_count_each_service_s_requests(tmp_path: Path) -> None:
    project = project_of(tmp_path, STAGED)
    assert REPLAY.rows(project) == []
    folder = project.cache_dir / "captures" / "replay" / "app"
    recording.write(folder, [exchange("https://h.example.invalid/a", b"a"),
                             exchange("https://h.example.invalid/b", b"b")])
    (row,) = REPLAY.rows(project)
    assert row.status == "info" and row.detail.startswith("app: 2 recorded request(s), 0.0 MB in ")
    assert REPLAY.captured(project, "app") and not REPLAY.captured(project, "other")
    assert json.loads((folder / "exchanges.json").read_text())["version"] == 1


def test_a_recording_that_names_a_body_by_anything_but_a_digest_is_refused(tmp_path: Path) -> None:
    """A body's name is a path under bodies/: an edited exchanges.json must not make the proxy serve another file."""
    folder = tmp_path / "app"
    recording.write(folder, [exchange("https://files.example.invalid/model.bin", b"model")])
    data = json.loads((folder / recording.EXCHANGES).read_text())
    data["exchanges"][0]["body_sha256"] = "../../../etc/passwd"
    (folder / recording.EXCHANGES).write_text(json.dumps(data))
    with pytest.raises(OfflineBuildError) as caught:
        recording.read(folder)
    assert "a damaged exchange in exchanges.json: GET https://files.example.invalid/model.bin" in caught.value.message


def test_the_sbom_lists_whole_downloads_only() -> None:
    """Not a range, a compressed body, a POST or git's smart-HTTP exchanges: each would be a wrong component."""
    def made(url: str, method: str = "GET", status: int = 200,
             headers: tuple[tuple[str, str], ...] = ()) -> recording.Exchange:
        return recording.Exchange(method, url, "", status, "OK", headers, "a" * 64)

    assert recording.downloaded(made("https://h.example.invalid/m.bin"))
    assert not recording.downloaded(made("https://h.example.invalid/m.bin", status=206))
    assert not recording.downloaded(made("https://h.example.invalid/m.bin", headers=(("Content-Encoding", "gzip"),)))
    assert not recording.downloaded(made("https://h.example.invalid/r.git/info/refs?service=git-upload-pack"))
    assert not recording.downloaded(made("https://h.example.invalid/r.git/git-upload-pack", method="POST"))

"""How a failed build is explained: the network case says why the step ran at all (no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_on_whales.exceptions import DockerException

from offline_build.progress import BuildReport, Vertex
from offline_build.retry import TransientError
from offline_build.runners.build import _triage
from offline_build.steps import Build

COPY = Vertex("sha256:1", "[2/3] COPY . .", cached=False, completed=True)
RUN = Vertex("sha256:2", "[3/3] RUN pip install -r requirements.txt", completed=True,
             error='process "/bin/sh -c pip install" did not complete successfully: exit code: 1')
LOG = ["WARNING: Retrying ... Failed to establish a new connection: [Errno -3] Temporary failure in name resolution\n"]


def failure(*vertexes: Vertex) -> BuildReport:
    report = BuildReport()
    report.vertexes = {v.digest: v for v in vertexes}
    report.logs = list(LOG)
    return report


def error() -> DockerException:
    return DockerException(["docker", "buildx", "build"], 1)


def test_an_offline_step_that_needed_the_network_says_which_input_above_it_changed() -> None:
    step = Build(title="build py (offline)", service="py", context=Path("."), offline=True)
    exc = _triage(step, failure(COPY, RUN), error())
    assert "[3/3] RUN pip install -r requirements.txt needed the network; it ran because a step above it did " \
           "([2/3] COPY . .): an input changed since the export" in exc.message
    # The likely cause, from the lint rule that names the step's command, and that rule's fix.
    assert exc.message.endswith("likely cause: pip reaches a package index (pip; offline.lint rule 'pip-install')")
    assert exc.hint == ("carry wheels as a resource and install with --no-index --find-links; copy requirements "
                        "files before the install so its layer stays cached; then export online again and carry "
                        "the new bundle")


def test_a_step_no_lint_rule_names_keeps_the_general_fix() -> None:
    step = Build(title="build py (offline)", service="py", context=Path("."), offline=True)
    script = Vertex("sha256:2", "[3/3] RUN --mount=type=bind,target=/s sh -c ./fetch-models.sh", completed=True,
                    error='process "/bin/sh -c ./fetch-models.sh" did not complete successfully: exit code: 7')
    exc = _triage(step, failure(COPY, script), error())
    assert "needed the network" in exc.message and "likely cause" not in exc.message
    assert exc.hint and exc.hint.startswith("export online again and carry the new bundle")


def test_with_nothing_above_it_run_the_step_itself_is_not_in_the_cache() -> None:
    step = Build(title="build py (offline)", service="py", context=Path("."), offline=True)
    cached_copy = Vertex("sha256:1", "[2/3] COPY . .", cached=True, completed=True)
    exc = _triage(step, failure(cached_copy, RUN), error())
    assert "it ran because the bundle's cache does not hold it" in exc.message


def test_online_the_same_failure_keeps_the_general_fix() -> None:
    step = Build(title="build py (online)", service="py", context=Path("."))
    exc = _triage(step, failure(COPY, RUN), error())
    assert "needed the network" not in exc.message and not isinstance(exc, TransientError)
    assert exc.hint and exc.hint.startswith("offline.lint names steps that need the network")


def test_in_the_edit_proof_the_step_ran_because_the_context_changed() -> None:
    from offline_build.edits import EDIT_ARG

    step = Build(title="build py (offline)", service="py", context=Path("."), offline=True,
                 build_args=((EDIT_ARG, "abc"),))
    cached_copy = Vertex("sha256:1", "[2/3] COPY . .", cached=True, completed=True)
    exc = _triage(step, failure(cached_copy, RUN), error())
    assert ("[3/3] RUN pip install -r requirements.txt needed the network; it ran because the build context "
            "changed (offline.verify --edits): at the site, any edit to this service's source runs it again") \
        in exc.message


def test_the_likely_cause_is_never_a_command_a_capture_serves_in_that_step() -> None:
    step = Build(title="build py (offline)", service="py", context=Path("."), offline=True)
    served = Vertex("sha256:2", "[3/3] RUN --mount=type=bind,from=pip-py-1,target=/.offline-build/pip/py-1 export "
                    "PIP_NO_INDEX=1 PIP_FIND_LINKS=/.offline-build/pip/py-1 && pip install -r r.txt && "
                    "curl -fsS https://example.invalid/model.bin -o /m", completed=True,
                    error='process "/bin/sh -c ..." did not complete successfully: exit code: 6')
    exc = _triage(step, failure(COPY, served), error())
    assert exc.message.endswith("likely cause: downloads a file at build time (curl; offline.lint rule 'download')")


# --- a build's own failure: the cause named where BuildKit's error says it -------------------------------

MISSING = ("step '[2/3] COPY .env /app/.env' failed: failed to compute cache key: failed to calculate checksum of "
           'ref 6f1c::k2x: "/config/.env": not found')


def test_a_copy_source_a_dockerignore_rule_hides_names_that_rule(tmp_path: Path) -> None:
    from offline_build.runners.build import explain_failure

    (tmp_path / ".dockerignore").write_text("# secrets stay out\n**/.env\n*.log\n")
    problem, fix = explain_failure(MISSING, tmp_path, tmp_path / "Dockerfile")
    assert "config/.env" in problem and "rule '**/.env' (line 2)" in problem and ".dockerignore" in problem
    assert "offline.lint" not in fix and "!config/.env" in fix


def test_the_dockerfile_s_own_ignore_file_is_the_one_read(tmp_path: Path) -> None:
    """BuildKit prefers ``<Dockerfile>.dockerignore`` beside the Dockerfile over the context's."""
    from offline_build.runners.build import explain_failure

    (tmp_path / ".dockerignore").write_text("config\n")
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "api.Dockerfile.dockerignore").write_text("# none\n")
    problem, fix = explain_failure(MISSING, tmp_path, tmp_path / "docker" / "api.Dockerfile")
    assert "not in the build context" in problem and "at that path" in problem and "rule" not in problem
    problem, _ = explain_failure(MISSING, tmp_path, tmp_path / "Dockerfile")
    assert "rule 'config' (line 1)" in problem


@pytest.mark.parametrize("rules, path, hidden_by", [
    (["*.md"], "a.md", "*.md"),
    (["*.md"], "docs/a.md", None),  # '*' stays within one path segment
    (["*/*.md"], "docs/a.md", "*/*.md"),
    (["**/*.md"], "docs/deep/a.md", "**/*.md"),
    (["**/*.md"], "a.md", "**/*.md"),  # '**' is any number of segments, none too
    (["/build"], "build/out/app", "/build"),  # a leading '/' is ignored; a directory hides all under it
    (["./docs"], "docs/a.md", "./docs"),
    (["a?c"], "abc", "a?c"),
    (["a?c"], "a/c", None),
    (["[a-c]x"], "bx", "[a-c]x"),
    (["[!a-c]x"], "bx", None),
    (["*.env", "!keep.env"], "keep.env", None),  # a later '!' re-includes
    (["*.env", "!keep.env"], "other.env", "*.env"),
    (["!keep.env", "*.env"], "keep.env", "*.env"),  # later rules win
    (["config", "!config/.env"], "config/.env", None),
    (["node_modules"], "node_modules2/x", None),
    (["**"], "anything/at/all", "**"),
])
def test_dockerignore_rules_match_as_docker_matches_them(rules: list[str], path: str, hidden_by: str | None) -> None:
    from offline_build.dockerignore import hiding_rule

    found = hiding_rule(path, list(enumerate(rules, 1)))
    assert (found[1] if found else None) == hidden_by


def test_a_missing_file_no_rule_hides_is_not_in_the_context(tmp_path: Path) -> None:
    from offline_build.runners.build import explain_failure

    problem, fix = explain_failure(MISSING, tmp_path, tmp_path / "Dockerfile")
    assert problem.startswith("cause: config/.env is not in the build context") and "at that path" in problem
    assert "offline.lint" not in fix


def test_a_network_error_keeps_the_lint_line_and_anything_else_does_not_pretend(tmp_path: Path) -> None:
    from offline_build.runners.build import explain_failure

    for said in ("curl: (6) Could not resolve host: example.invalid", "getaddrinfo EAI_AGAIN registry.example.invalid",
                 "dial tcp 10.0.0.1:443: connect: connection refused", "Connection timed out"):
        problem, fix = explain_failure(f"step '[3/3] RUN x' failed: exit code: 1\nlast output:\n  {said}",
                                       tmp_path, tmp_path / "Dockerfile")
        assert problem == "" and fix.startswith("offline.lint names steps that need the network"), said
    problem, fix = explain_failure("step '[3/3] RUN mvn -q package' failed: exit code: 1\nlast output:\n"
                                   "  [ERROR] Non-parseable settings /root/.m2/settings.xml", tmp_path, tmp_path)
    assert problem == "" and fix == "read the step's output above; offline.diagnose checks the store and the engine"


def test_a_copy_from_another_stage_is_not_blamed_on_the_context(tmp_path: Path) -> None:
    from offline_build.runners.build import explain_failure

    (tmp_path / ".dockerignore").write_text("out\n")
    problem, _ = explain_failure("step '[3/3] COPY --from=build /out/app /app' failed: failed to compute cache key: "
                                 'failed to calculate checksum of ref 1::2: "/out/app": not found', tmp_path, tmp_path)
    assert "dockerignore" not in problem and "build context" not in problem


def test_a_failed_build_names_the_hiding_rule_and_quotes_tool_output_without_colours(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("config/\n")
    copy = Vertex("sha256:3", "[2/3] COPY config/.env /app/.env", completed=True,
                  error='failed to compute cache key: failed to calculate checksum of ref 1::2: "/config/.env": '
                        "not found")
    report = failure(copy)
    report.logs = ["\x1b[1;31mERROR\x1b[m Failed to execute goal\n"]
    step = Build(title="build api (offline)", service="api", context=tmp_path, offline=True)
    exc = _triage(step, report, error())
    assert "\x1b" not in exc.message and "ERROR Failed to execute goal" in exc.message
    assert "rule 'config/' (line 1)" in exc.message and exc.hint and "!config/.env" in exc.hint

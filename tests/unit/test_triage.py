"""How a failed build is explained: the network case says why the step ran at all (no engine)."""

from __future__ import annotations

from pathlib import Path

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

"""offline.lint over a corpus in the styles of real projects: exact findings per file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offline_build import lint
from offline_build.apt import simple_commands
from offline_build.fetches import command_rules

CORPUS = Path(__file__).resolve().parents[1] / "lint-corpus"
FILES = sorted(CORPUS.glob("*.Dockerfile"))


def test_the_corpus_is_big_enough_and_has_clean_files() -> None:
    assert len(FILES) >= 15
    clean = [f for f in FILES if json.loads(f.with_name(f.name.replace(".Dockerfile", ".expected.json")).read_text()) == []]
    assert len(clean) >= 2


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_corpus_findings_are_exactly_the_expected_ones(path: Path) -> None:
    expected = json.loads(path.with_name(path.name.replace(".Dockerfile", ".expected.json")).read_text())
    found = [[f.rule, f.line] for f in lint.lint_path(path)]
    assert found == expected


def test_every_finding_names_rule_place_text_and_a_fix() -> None:
    (finding,) = [f for f in lint.lint_path(CORPUS / "python-uv.Dockerfile") if f.rule == "uv-sync"]
    assert (finding.line, finding.column, finding.severity) == (5, 5, "error")
    assert finding.text == "uv sync --frozen --no-install-project"
    assert finding.hint and finding.path.endswith("python-uv.Dockerfile")


def test_json_output_is_stable_and_complete() -> None:
    findings = lint.lint_path(CORPUS / "alpine.Dockerfile")
    data = json.loads(lint.render_json(findings))
    assert data["summary"] == {"error": 3, "warning": 0, "info": 0}
    assert [f["rule"] for f in data["findings"]] == ["apk-add", "download", "add-url"]
    assert set(data["findings"][0]) == {"rule", "severity", "path", "line", "column", "text", "message", "hint"}


def test_text_output_reads_like_a_compiler() -> None:
    text = lint.render_text(lint.lint_path(CORPUS / "node-npm.Dockerfile"))
    first = text.splitlines()[0]
    assert first.endswith("node-npm.Dockerfile:4:5: error npm-install: npm reaches the registry")
    assert text.splitlines()[-1] == "1 error(s), 0 warning(s), 0 note(s)"


def test_exit_status() -> None:
    errors = lint.lint_path(CORPUS / "node-npm.Dockerfile")
    warnings = lint.lint_path(CORPUS / "copy-from-remote.Dockerfile")
    assert lint.exit_status(errors) == 1
    assert lint.exit_status(warnings) == 0
    assert lint.exit_status(warnings, strict=True) == 1
    assert lint.exit_status([], strict=True) == 0


def test_suppression_applies_only_to_the_instruction_below(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM python:3.12\n# offline-build: ignore=pip-install\nRUN pip install a\nRUN pip install b\n")
    assert [(f.rule, f.line) for f in lint.lint_path(path)] == [("pip-install", 4)]


def test_in_a_project_apt_and_syntax_are_handled_and_unbundled_images_flagged(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("# syntax=docker/dockerfile:1\nFROM debian:bookworm-slim\nRUN apt-get update\n"
                    "COPY --from=nginx:1.27 /x /x\n")
    ctx = lint.Context(bundled_images=frozenset({"debian:bookworm-slim"}), apt_captured=True, project=True)
    found = {(f.rule, f.severity) for f in lint.lint_path(path, ctx)}
    assert found == {("syntax-directive", "warning"), ("apt-update", "info"), ("remote-image", "warning")}


@pytest.mark.parametrize("run, rules", [
    ("pip install --no-index --find-links /w x", []),
    ("python3 -m pip install x", ["pip-install"]),
    ("npm install --offline", []),
    ("mvn -o package", []),
    ("mvn -U package", ["mvn-update", "mvn"]),
    ("cargo build --release", ["cargo-fetch"]),
    ("go install example.invalid/tool@v1.2.3", ["go-mod-download"]),
    ("git submodule update --init", ["git-clone"]),
    ("apk add --repository /repo x", []),
    ("python -m spacy download en_core_web_sm", ["runtime-fetch"]),
    ("python -c 'from transformers import AutoModel; AutoModel.from_pretrained(\"x\")'", ["runtime-fetch"]),
    ("curl --version", []),
])
def test_command_rules(run: str, rules: list[str]) -> None:
    assert [r for argv in simple_commands(run) for r, _ in command_rules(argv)] == rules


def _lint(tmp_path: Path, text: str, context: lint.Context = lint.Context()) -> list[lint.Finding]:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return lint.lint_path(path, context)


def test_a_served_step_says_which_capture_serves_it_and_carries_no_fix(tmp_path: Path) -> None:
    ctx = lint.Context(captured=frozenset({"uv"}), apt_captured=True, project=True)
    found = _lint(tmp_path, "FROM python:3.12\nRUN apt update && uv sync --frozen\n", ctx)
    notes = {f.rule: f for f in found}
    assert notes["uv-sync"].severity == "info" and notes["uv-sync"].hint == ""
    assert notes["uv-sync"].message == "uv sync: served by the bundle's uv capture offline"
    # The user's own command word, not apt-get.
    assert notes["apt-update"].message == "apt update: served by the bundle's APT capture offline"
    text = lint.render_text(found)
    assert "fix:" not in text and "run uv with --offline" not in text


def test_each_command_of_a_multi_line_chain_is_reported_at_its_own_line(tmp_path: Path) -> None:
    found = _lint(tmp_path, "FROM python:3.12\nRUN pip install a \\\n    && pip install b \\\n"
                            "    && npm ci && pip install c\n")
    assert [(f.rule, f.line, f.column) for f in found] == [
        ("pip-install", 2, 5), ("pip-install", 3, 8), ("npm-install", 4, 8), ("pip-install", 4, 18)]
    assert found[1].text == "&& pip install b \\"


@pytest.mark.parametrize("copy, fires", [
    ("COPY . .", True),
    ("COPY frontend ./", True),
    ("COPY src/ /app/", True),
    ("ADD --chown=app app /srv/app", True),
    ("COPY package.json package-lock.json ./", False),
    ("COPY package*.json ./", False),
    ("COPY requirements.txt .", False),
    ("COPY requirements.txt wheels/ ./", False),  # a folder of dependencies is one too
    ("COPY --from=build /src /src", False),
    ("COPY Gemfile Gemfile.lock ./", False),
])
def test_copy_before_install_fires_for_a_folder_of_the_context_not_for_lockfiles(
        tmp_path: Path, copy: str, fires: bool) -> None:
    found = _lint(tmp_path, f"FROM node:22\nWORKDIR /app\n{copy}\nRUN npm ci\n")
    assert ("copy-before-install" in {f.rule for f in found}) is fires


def test_the_build_after_the_good_pattern_is_not_a_copy_before_install(tmp_path: Path) -> None:
    found = _lint(tmp_path, "FROM maven:3.9\nCOPY pom.xml .\nRUN mvn dependency:go-offline\nCOPY src ./src\n"
                            "RUN mvn package\n")
    assert "copy-before-install" not in {f.rule for f in found}


def test_a_file_that_is_no_dockerfile_is_named_with_a_fix(tmp_path: Path) -> None:
    """Each was a message without a fix line (or, for /etc/passwd, its line shouted in capitals)."""
    from offline_build.dockerfile import parse
    from offline_build.errors import DockerfileError

    (tmp_path / "empty").write_text("")
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "long").write_text("FROM x\nRUN " + "a" * 70000 + "\n")
    (tmp_path / "latin1").write_bytes("FROM caf\xe9\n".encode("latin-1"))
    expected = {
        "empty": ("empty: file with no instructions", "correct what it names: docker build refuses the file too"),
        "passwd": ("passwd:1: 'root:x:0:0:root:/root:/bin/bash' before the first FROM", "only ARG may come"),
        "long": ("long: dockerfile line greater than max allowed size", "docker build refuses the file too"),
        "latin1": ("latin1: not UTF-8 text", "save the Dockerfile as UTF-8"),
        "": (f"{tmp_path} is a folder, not a Dockerfile", "name the Dockerfile inside it"),
        "gone": ("gone: no such Dockerfile", "check the path (for a service: its context and dockerfile"),
    }
    for name, (problem, fix) in expected.items():
        with pytest.raises(DockerfileError) as info:
            parse(tmp_path / name)
        assert problem in info.value.message and fix in (info.value.hint or ""), info.value


def test_lint_quotes_the_lines_it_parsed_though_the_file_changed_since(tmp_path: Path) -> None:
    """Lint, the variants and the replay check quote the Dockerfile as parsed (Dockerfile.lines), not a second read."""
    from offline_build import dockerfile

    path = tmp_path / "Dockerfile"
    path.write_text("FROM debian:bookworm-slim\nRUN apt-get update\n")
    df = dockerfile.parse(path)
    path.write_text("FROM debian:bookworm-slim\n# rewritten since\n")
    assert df.lines() == ["FROM debian:bookworm-slim", "RUN apt-get update"]
    (update,) = [f for f in lint.lint_dockerfile(df) if f.rule == "apt-update"]
    assert (update.line, update.text) == (2, "RUN apt-get update")

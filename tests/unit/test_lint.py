"""offline.lint over a corpus in the styles of real projects: exact findings per file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offline_build import lint
from offline_build.apt import simple_commands

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
    assert [r for argv in simple_commands(run) for r, _ in lint.command_rules(argv)] == rules

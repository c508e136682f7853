"""README.md and docs/ stay true: links that resolve, commands the real CLI takes, a README that stays short.

Every check reads a folder (the repository, or a scratch copy in the tests that
show each check can fail) and returns what is wrong with it, one line each.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke import Collection, Program
from invoke.parser import ParseError, Parser, ParserContext

from offline_build.cli import OfflineBuild, split_config
from offline_build.config import load
from offline_build.tasks import namespace_for

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 300

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SHELL_SEPARATOR = re.compile(r"\s*(?:&&|\|\||;|\|)\s*")
# A task named on its own in a code span: offline.export, backend.offline-build, <service>.offline-export.
TASK_WORD = re.compile(r"^(?:offline\.[a-z][a-z0-9_-]*|(?:<[^<>]+>|[a-z0-9][a-z0-9-]*)\.offline[-_][a-z_-]+)$")
NOT_TASKS = {"offline.yaml", "offline.yml"}
SERVICE_TASK = re.compile(r"^(?:<[^<>]+>|[a-z0-9][a-z0-9-]*)\.(offline-[a-z-]+)$")
PLACEHOLDER = re.compile(r"<[^<>]*>")
COMMANDS = ("offline-build", "inv")


def pages(root: Path) -> list[Path]:
    """The documentation: README.md and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def split_page(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(prose lines, fenced code lines), each with its line number."""
    prose: list[tuple[int, str]] = []
    code: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and match and match.group(1).startswith(fence) and not line.strip().strip(fence[0]):
            fence = None
        elif fence is not None:
            code.append((number, line))
        else:
            prose.append((number, line))
    return prose, code


def paragraphs(prose: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Prose paragraphs (blank-line separated), with the number of their first line."""
    block: list[tuple[int, str]] = []
    for number, line in [*prose, (0, "")]:
        if line.strip() and (not block or number == block[-1][0] + 1):
            block.append((number, line))
            continue
        if block:
            yield block[0][0], "\n".join(text for _, text in block)
        block = [(number, line)] if line.strip() else []


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in *path* (a repeated heading gets -1, -2, ... as on GitHub)."""
    prose, _ = split_page(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose:
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(root: Path) -> Iterator[tuple[Path, int, str]]:
    """(page, line, target) for every link of the docs that is not a URL (code is not read)."""
    for page in pages(root):
        prose, _ = split_page(page.read_text(encoding="utf-8"))
        for number, paragraph in paragraphs(prose):
            text = CODE_SPAN.sub(lambda span: "\n" * span.group(0).count("\n"), paragraph)  # line numbers kept
            for match in LINK.finditer(text):
                if not SCHEME.match(match.group(1)):
                    yield page, number + text[:match.start()].count("\n"), match.group(1)


def link_problems(root: Path) -> list[str]:
    """Relative links in the docs whose file, or whose #anchor in that file, does not exist."""
    problems = []
    top = root.resolve()
    for page, number, target in relative_links(root):
        where = f"{page.relative_to(root)}:{number}: ({target})"
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page.resolve()
        if not dest.is_relative_to(top):
            problems.append(f"{where}: outside the repository")
        elif not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading '#{anchor}' in {dest.relative_to(top)}")
    return problems


def shown_commands(page: Path) -> Iterator[tuple[int, str, bool]]:
    """(line, text, in a code span) for every shell command or code span of *page*."""
    prose, code = split_page(page.read_text(encoding="utf-8"))
    for number, paragraph in paragraphs(prose):
        for match in CODE_SPAN.finditer(paragraph):
            yield number + paragraph[:match.start()].count("\n"), " ".join(match.group(2).split()), True
    logical: list[tuple[int, str]] = []
    for number, line in code:  # a line ending in a backslash goes on
        if logical and logical[-1][1].endswith("\\"):
            logical[-1] = (logical[-1][0], logical[-1][1][:-1] + " " + line.strip())
        else:
            logical.append((number, line.strip()))
    for number, line in logical:
        for segment in SHELL_SEPARATOR.split(line.removeprefix("$ ")):
            yield number, segment, False


def command_argv(text: str, span: bool) -> tuple[str, list[str]] | None:
    """("offline-build" or "inv", its arguments) if *text* runs one, else None.

    A code span may also start with the task itself (``offline.export --since BUNDLE``).
    Placeholders are made concrete: ``<service>.offline-build`` and every service's
    task become ``backend.``'s (a service's tasks and flags are the same for every
    service, and the docs' examples come from several projects), ``<task>`` a task,
    any other ``<...>`` a value; ``[--flag VALUE]`` optional groups and ``...`` go.
    """
    text = re.sub(r"(^|\s)#.*$", "", text)  # a shell comment
    words = text.split()
    while words and ASSIGNMENT.match(words[0]):
        words.pop(0)
    if not words:
        return None
    if words[0] in COMMANDS:
        program, rest = words[0], " ".join(words[1:])
    elif span and TASK_WORD.match(words[0]) and words[0] not in NOT_TASKS:
        program, rest = "offline-build", " ".join(words)
    else:
        return None
    rest = re.sub(r"<[^<>]*task[^<>]*>", "offline.export", rest)
    rest = PLACEHOLDER.sub(lambda m: "backend" if rest[m.end():].startswith(".offline-") else "VALUE", rest)
    try:
        tokens = shlex.split(rest)
    except ValueError:  # an unbalanced quote in prose: plain words will do
        tokens = rest.split()
    argv = []
    for token in tokens:
        token = token.strip("[]").removesuffix("...").strip("[]")
        service_task = SERVICE_TASK.match(token)
        if service_task and not token.startswith("offline."):
            token = f"backend.{service_task.group(1)}"
        if token:
            argv.append(token)
    return program, argv


def project_tree(folder: Path) -> Collection:
    """The CLI's task tree for a small project with two services (``backend`` and ``web``)."""
    for name in ("backend", "web"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (folder / "offline.yaml").write_text("project: docs\nservices:\n  backend: {context: backend}\n"
                                         "  web: {context: web}\n")
    return namespace_for(load(folder / "offline.yaml"))


class Cli:
    """The real CLI's parser for *tree*: invoke's two passes, each distinct command line parsed once."""

    def __init__(self, tree: Collection) -> None:
        self.tree = tree
        self.contexts = tree.to_contexts()
        # inv: invoke's own core flags, the project's tree from tasks.py.
        self.initial = {"offline-build": OfflineBuild(tree).initial_context, "inv": Program().initial_context}
        self.seen: dict[tuple[str, tuple[str, ...]], str | None] = {}

    def problem(self, program: str, argv: list[str]) -> str | None:
        """Why the real CLI would refuse *argv* (None: it takes it), parsed as invoke parses it."""
        if program == "offline-build":
            _, argv = split_config(argv)  # --config/-f: taken out before invoke parses, as main() does
        key = (program, tuple(argv))
        if key not in self.seen:
            self.seen[key] = self._parse(self.initial[program], argv)
        return self.seen[key]

    def _parse(self, initial: ParserContext, argv: list[str]) -> str | None:
        try:
            core = Parser(initial=initial, ignore_unknown=True).parse_argv(argv)  # core flags first
            tasks = Parser(initial=initial, contexts=self.contexts).parse_argv(core.unparsed)
        except ParseError as exc:
            return str(exc)
        for context in (core[0], tasks[0]):
            wanted = context.args["help"].value
            if isinstance(wanted, str) and wanted not in self.tree.task_names:
                return f"--help {wanted}: no such task"
        return None


def command_problems(root: Path, cli: Cli) -> list[str]:
    """Every ``offline-build ...``/``inv ...`` command (and task-led code span) the CLI would refuse."""
    problems = []
    for page in pages(root):
        for number, text, span in shown_commands(page):
            command = command_argv(text, span)
            if command is None:
                continue
            problem = cli.problem(*command)
            if problem:
                problems.append(f"{page.relative_to(root)}:{number}: `{text}`: {problem}")
    return problems


def reference_problems(root: Path, tree: Collection) -> list[str]:
    """Tasks and flags of the CLI that docs/reference.md does not name."""
    reference = root / "docs" / "reference.md"
    if not reference.exists():
        return ["docs/reference.md: missing"]
    text = reference.read_text(encoding="utf-8")
    problems = []
    checked: set[str] = set()
    for context in tree.to_contexts():  # every service's tasks are documented once, as <service>.'s
        name = re.sub(r"^(?!offline\.)[a-z0-9-]+\.", "<service>.", context.name)
        if name in checked:
            continue
        checked.add(name)
        section = re.search(rf"^#+ `{re.escape(name)}`$(.*?)(?=^#|\Z)", text, re.MULTILINE | re.DOTALL)
        if section is None:
            problems.append(f"docs/reference.md: `{name}`: no section (a heading `{name}`)")
            continue
        for flag in sorted(context.flags):
            if not re.search(rf"`{re.escape(flag)}[ =`]", section.group(1)):
                problems.append(f"docs/reference.md: `{name}`: does not list {flag}")
    return problems


def readme_problems(root: Path) -> list[str]:
    lines = len((root / "README.md").read_text(encoding="utf-8").splitlines())
    return [f"README.md: {lines} lines, more than {README_MAX_LINES}: move detail into docs/"] \
        if lines > README_MAX_LINES else []


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    return project_tree(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def cli(tree: Collection) -> Cli:
    return Cli(tree)


def test_every_relative_link_and_anchor_resolves() -> None:
    assert link_problems(ROOT) == []


def test_every_command_shown_is_one_the_cli_takes(cli: Cli) -> None:
    assert command_problems(ROOT, cli) == []


def test_the_reference_names_every_task_and_flag(tree: Collection) -> None:
    assert reference_problems(ROOT, tree) == []


def test_readme_is_a_door() -> None:
    assert readme_problems(ROOT) == []


def test_the_docs_show_commands() -> None:
    """The command check has something to check: it would pass vacuously if the parser found none."""
    found = [command_argv(text, span) for page in pages(ROOT) for _, text, span in shown_commands(page)]
    commands = [c for c in found if c is not None]
    assert len(commands) > 50
    assert ("offline-build", ["offline.export", "--since", "BUNDLE"]) in commands
    assert any(program == "inv" for program, _ in commands)


@pytest.fixture()
def scratch(tmp_path: Path) -> Path:
    """A copy of the README and docs/ to break; what else they link to is there, empty."""
    for name in ("README.md", "SECURITY.md", "BENCHMARKS.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    for page, _, target in relative_links(ROOT):
        path = (page.parent / target.partition("#")[0]).resolve()
        copy = tmp_path / path.relative_to(ROOT)
        if path.is_dir():
            copy.mkdir(parents=True, exist_ok=True)
        elif not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.touch()
    return tmp_path


def add(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


@pytest.mark.parametrize(("text", "wanted"), [
    ("\n```\n$ offline-build offline.export --no-such-flag\n```\n", "No idea what '--no-such-flag' is!"),
    ("\nRun `offline-build offline.expor`.\n", "No idea what 'offline.expor' is!"),
    ("\nRun `offline.build-classic --no-fallback`.\n", "No idea what '--no-fallback' is!"),
    ("\nRun `offline.build_classic`.\n", "No idea what 'offline.build_classic' is!"),
    ("\n```sh\nOFFLINE_VERSION=2 \\\n  offline-build web.offline-build --sign KEY\n```\n", "No idea what '--sign' is!"),
    ("\nSee `inv --help offline.nothing`.\n", "--help offline.nothing: no such task"),
    ("\nSee `offline-build --echo offline.export`.\n", "No idea what '--echo' is!"),
])
def test_a_wrong_command_is_found(scratch: Path, cli: Cli, text: str, wanted: str) -> None:
    assert command_problems(scratch, cli) == []
    add(scratch / "docs" / "reference.md", text)
    (problem,) = command_problems(scratch, cli)
    assert problem.startswith("docs/reference.md:") and wanted in problem


@pytest.mark.parametrize("text", [
    "`offline-build --config other.yaml -f x.yaml offline.lint --path a --path b --format json --strict`",
    "`offline-build --help <task>`", "`inv --help <task>`", "`offline-build --list`", "`offline-build --version`",
    "`<service>.offline-build [--no-fallback]`", "`deer-flow.offline-export --host=unix:///x.sock`",
    "`offline.lint [--path FILE]... [--format json]`", "`offline-build offline.diagnose --json --quick`",
])
def test_a_right_command_passes(scratch: Path, cli: Cli, text: str) -> None:
    add(scratch / "README.md", f"\n{text}\n")
    assert command_problems(scratch, cli) == []


@pytest.mark.parametrize(("text", "wanted"), [
    ("[gone](docs/gone.md)", "README.md:"),
    ("[gone](#no-such-section)", "no heading '#no-such-section' in README.md"),
    ("[elsewhere](docs/reference.md#no-such-section)", "no heading '#no-such-section' in docs/reference.md"),
    ("[security](SECURITY.md#nothing-like-this)", "in SECURITY.md"),
    ("[out](../../etc/passwd)", "outside the repository"),
])
def test_a_broken_link_is_found(scratch: Path, text: str, wanted: str) -> None:
    assert link_problems(scratch) == []
    add(scratch / "README.md", f"\nSee {text}.\n")
    (problem,) = link_problems(scratch)
    assert wanted in problem


def test_a_link_from_docs_is_read_from_docs(scratch: Path) -> None:
    add(scratch / "docs" / "reference.md", "\nSee [security](SECURITY.md).\n")
    (problem,) = link_problems(scratch)
    assert problem.startswith("docs/reference.md:") and "(SECURITY.md): no such file" in problem


def test_links_and_commands_in_code_are_not_links(scratch: Path, cli: Cli) -> None:
    add(scratch / "README.md", "\n`[not a link](nowhere.md)`\n\n```\n[nor this](nowhere.md)\n"
                               "offline-build: error: offline.yaml:1:1: not a command\n```\n")
    assert link_problems(scratch) == [] and command_problems(scratch, cli) == []


def test_anchors_follow_github() -> None:
    assert slug("The project file (`offline.yaml`)") == "the-project-file-offlineyaml"
    assert slug("Every other fetch, recorded and replayed") == "every-other-fetch-recorded-and-replayed"
    assert slug("offline.lint") == "offlinelint"
    assert slug("Signed bundles and the bill of materials") == "signed-bundles-and-the-bill-of-materials"
    assert slug("snake_case and [a link](x.md)") == "snake_case-and-a-link"


def test_a_long_readme_is_found(scratch: Path) -> None:
    assert readme_problems(scratch) == []
    add(scratch / "README.md", "\n" * README_MAX_LINES)
    (problem,) = readme_problems(scratch)
    assert problem.startswith("README.md: ") and "more than 300" in problem


@pytest.mark.parametrize(("old", "new", "wanted"), [
    ("`--split-size", "`--split", "`offline.export`: does not list --split-size"),
    ("## `offline.prune`", "## offline.prune", "`offline.prune`: no section (a heading `offline.prune`)"),
    ("## `<service>.offline-build`", "## `backend.offline-build`", "`<service>.offline-build`: no section"),
])
def test_a_task_or_flag_missing_from_the_reference_is_found(scratch: Path, tree: Collection, old: str, new: str,
                                                            wanted: str) -> None:
    assert reference_problems(scratch, tree) == []
    reference = scratch / "docs" / "reference.md"
    reference.write_text(reference.read_text(encoding="utf-8").replace(old, new))
    (problem,) = reference_problems(scratch, tree)
    assert problem.startswith(f"docs/reference.md: {wanted}")

"""Maven and Go module captures as plans and text: what is found, how a step is served and captured (no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from offline_build import lint, variant
from offline_build.captures.gomod import GO
from offline_build.captures.maven import MAVEN, offline_mvn
from offline_build.config import load
from offline_build.fetches import command_rules
from offline_build.inputs import inputs
from offline_build.pkgs import Install, install_of
from tests.unit.helpers import df as parsed

BACKEND = """\
FROM debian:bookworm-slim
WORKDIR /app
COPY . .
RUN --mount=type=cache,target=/root/.m2 mvn -B -U -s settings.xml clean package && cp target/*.jar /app.jar
FROM debian:bookworm-slim AS tool
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /usr/local/bin/tool . && go vet ./...
RUN go build -mod=vendor ./cmd/x
"""


@pytest.mark.parametrize(("argv", "expected"), [
    (["mvn", "-B", "-U", "package"], Install("maven", ("mvn",), ("-B", "-U", "package"))),
    (["./mvnw", "verify"], Install("maven", ("./mvnw",), ("verify",))),
    (["/usr/share/maven/bin/mvn", "install"], Install("maven", ("/usr/share/maven/bin/mvn",), ("install",))),
    (["mvn", "-o", "package"], None),  # already offline: the user carries the repository
    (["mvn", "--version"], None),
    (["mvn"], None),
    (["go", "mod", "download"], Install("go", ("go",), ("mod", "download"))),
    (["go", "build", "-o", "x", "."], Install("go", ("go",), ("build", "-o", "x", "."))),
    (["go", "test", "./..."], Install("go", ("go",), ("test", "./..."))),
    (["go", "mod", "tidy"], Install("go", ("go",), ("mod", "tidy"))),
    (["go", "build", "-mod=vendor", "."], None),
    (["go", "build", "-mod", "vendor", "."], None),
    (["go", "mod", "init", "example.com/x"], None),
    (["go", "version"], None),
    (["go", "-C", "cmd/tool", "build", "."], Install("go", ("go",), ("-C", "cmd/tool", "build", "."))),
    (["go", "-C=cmd/tool", "mod", "download"], Install("go", ("go",), ("-C=cmd/tool", "mod", "download"))),
    (["go", "-C", "cmd/tool", "build", "-mod=vendor"], None),
    (["go", "-C", "build", "version"], None),  # "build" names the folder here, not the verb
])
def test_maven_and_go_commands_are_recognised(argv: list[str], expected: Install | None) -> None:
    assert install_of(argv) == expected


@pytest.mark.parametrize(("command", "expected"), [
    ("mvn -B -U package", "mvn -o -B -U package"),
    ("cd app && ./mvnw package", "cd app && ./mvnw -o package"),
    ("MAVEN_OPTS=-Xmx1g /usr/bin/mvn package; echo done", "MAVEN_OPTS=-Xmx1g /usr/bin/mvn -o package; echo done"),
    ("if [ -f pom.xml ]; then mvn package; else mvn -f x/pom.xml install; fi",
     "if [ -f pom.xml ]; then mvn -o package; else mvn -o -f x/pom.xml install; fi"),
    ("sh -c 'mvn package'", "sh -c 'mvn -o package'"),
    ("echo mvnd && cp mvn.log /tmp", "echo mvnd && cp mvn.log /tmp"),  # words that merely contain mvn
    ("grep -q 'mvn' f && echo \"mvn\"", "grep -q 'mvn' f && echo \"mvn\""),  # quoted arguments, not commands
    ("time mvn package && sudo mvn install", "time mvn -o package && sudo mvn -o install"),
    ("nohup env mvn package", "nohup env mvn -o package"),
])
def test_every_mvn_that_starts_a_command_gets_offline(command: str, expected: str) -> None:
    assert offline_mvn(command) == expected


def test_the_offline_variant_serves_maven_with_o_and_go_from_a_file_proxy(tmp_path: Path) -> None:
    df = parsed(BACKEND, tmp_path)
    maven, go = MAVEN.steps_of("svc", df), GO.steps_of("svc", df)
    assert set(maven) == {"svc-1"} and set(go) == {"svc-1", "svc-2"}  # the vendored build needs nothing
    text = variant.offline_variant(df, [(MAVEN, maven), (GO, go)], service="svc").text
    lines = [line for line in text.splitlines() if line != "ARG TARGETOS TARGETARCH TARGETVARIANT"]
    platform = "${TARGETOS}_${TARGETARCH}${TARGETVARIANT:+_${TARGETVARIANT}}"
    assert lines[3] == (f"RUN --mount=type=bind,from=maven-svc-1,source={platform},target=/.offline-build/maven/svc-1,rw "
                        "--mount=type=cache,target=/root/.m2 "
                        'export MAVEN_OPTS="-Dmaven.repo.local=/.offline-build/maven/svc-1 ${MAVEN_OPTS:-}" && '
                        "mvn -o -Dmaven.repo.local=/.offline-build/maven/svc-1 -B -U -s settings.xml clean package "
                        "&& cp target/*.jar /app.jar")
    assert lines[7] == (f"RUN --mount=type=bind,from=go-svc-1,source={platform},target=/.offline-build/go/svc-1 "
                        "export GOPROXY=file:///.offline-build/go/svc-1 GOSUMDB=off GOPRIVATE= GONOPROXY= GONOSUMDB= "
                        "&& go mod download")
    assert "from=go-svc-2" in lines[9] and lines[9].endswith("CGO_ENABLED=0 go build -o /usr/local/bin/tool . && go vet ./...")
    assert lines[10] == "RUN go build -mod=vendor ./cmd/x"


def test_the_capture_variant_keeps_the_repository_and_the_downloads(tmp_path: Path) -> None:
    df = parsed(BACKEND, tmp_path)
    text = variant.offline_variant(df, [(MAVEN, MAVEN.steps_of("svc", df)), (GO, GO.steps_of("svc", df))],
                                   service="svc", capturing=True).text
    lines = text.splitlines()
    # Online the step runs as written (no -o), its repository the capture folder; the resolver's notes are dropped.
    assert 'export MAVEN_OPTS="-Dmaven.repo.local=/.offline-build/out/maven/svc-1 ${MAVEN_OPTS:-}" && ' \
           "( mvn -Dmaven.repo.local=/.offline-build/out/maven/svc-1 -B -U -s settings.xml clean package " \
           "&& cp target/*.jar /app.jar )" in lines[3]
    assert "-name _remote.repositories" in lines[3] and " -o " not in lines[3].split("( ")[1].split(" )")[0]
    assert "export GOMODCACHE=/tmp/.offline-build-gomodcache" in lines[7]
    assert "cp -R /tmp/.offline-build-gomodcache/cache/download/. /.offline-build/out/go/svc-1/" in lines[7]
    assert "rm -rf /.offline-build/out/go/svc-1/sumdb" in lines[7]
    assert "GOPROXY=file://" not in text


def test_the_classic_variant_serves_maven_with_o_too(tmp_path: Path) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text(BACKEND)
    (tmp_path / "offline.yaml").write_text("project: p\nservices:\n  svc: {context: svc}\n")
    project = load(tmp_path / "offline.yaml", environ={})
    i = inputs(project, project.service("svc"), online=True)
    lines = i.classic.text.splitlines()  # type: ignore[union-attr]
    assert lines[3] == "COPY --from=p-svc-captures:latest /maven/svc-1 /.offline-build/maven/svc-1"
    assert lines[4] == ('RUN ( export MAVEN_OPTS="-Dmaven.repo.local=/.offline-build/maven/svc-1 ${MAVEN_OPTS:-}" '
                        "&& mvn -o -Dmaven.repo.local=/.offline-build/maven/svc-1 -B -U -s settings.xml clean package "
                        "&& cp target/*.jar /app.jar ) "
                        "&& rm -rf /.offline-build")


@pytest.mark.parametrize(("argv", "rules"), [
    (["go", "-C", "tool", "mod", "download"], [("go-mod-download", "go")]),
    (["go", "-C=tool", "get", "example.com/x@v1"], [("go-mod-download", "go")]),
    (["go", "-C", "get", "build"], []),  # builds in the folder "get": resolves from a cached go.sum
    (["./mvnw", "-U", "package"], [("mvn-update", "mvnw"), ("mvn", "mvnw")]),
])
def test_lint_reads_go_after_its_folder_flag_and_the_maven_wrapper(argv: list[str], rules: list) -> None:
    assert command_rules(argv) == rules


def test_lint_notes_maven_and_go_steps_a_capture_serves(tmp_path: Path) -> None:
    df = parsed("FROM debian:bookworm-slim\nCOPY . .\nRUN mvn -U package\nRUN go mod download\n", tmp_path)
    served = lint.lint_dockerfile(df, lint.Context(frozenset({"debian:bookworm-slim"}), True, True,
                                                   frozenset({"maven", "go"})))
    by_rule = {(f.line, f.rule): f.severity for f in served}
    assert by_rule[(3, "mvn")] == "info" and by_rule[(3, "mvn-update")] == "info"
    assert by_rule[(4, "go-mod-download")] == "info" and by_rule[(4, "copy-before-install")] == "info"
    bare = lint.lint_dockerfile(df, lint.Context())
    assert {f.severity for f in bare if f.rule in ("mvn", "mvn-update", "go-mod-download")} == {"error"}


def test_a_missing_artifact_or_module_is_named_with_the_build_file() -> None:
    maven_step = 'RUN export MAVEN_OPTS="-Dmaven.repo.local=/.offline-build/maven/api-1 " && mvn -o package'
    maven_log = ("#9 4.1 [ERROR] Failed to execute goal on project app: Could not resolve dependencies for project "
                 "demo:app:jar:1.0: Cannot access internal (http://repo.example.invalid/) in offline mode and the "
                 "artifact commons-io:commons-io:jar:2.11.0 has not been downloaded from it before. -> [Help 1]")
    problem, fix = MAVEN.explain(maven_step, maven_log)  # type: ignore[misc]
    assert problem.startswith("commons-io:commons-io:jar:2.11.0 is not in the bundle's maven capture: pom.xml")
    assert "--since" in fix
    assert MAVEN.explain("RUN mvn -o package", maven_log) is None  # not a served step
    go_step = "RUN export GOPROXY=file:///.offline-build/go/tool-2 GOSUMDB=off && go build ."
    go_log = ("#11 0.3 go: example.com/greet@v1.1.0: reading "
              "file:///.offline-build/go/tool-2/example.com/greet/@v/v1.1.0.mod: no such file or directory")
    problem, _ = GO.explain(go_step, go_log)  # type: ignore[misc]
    assert problem.startswith("example.com/greet@v1.1.0 is not in the bundle's go capture: go.mod or go.sum changed")
    assert GO.explain(go_step, "go: build failed: syntax error") is None

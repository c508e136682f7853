"""Change the code offline and rebuild: Maven and Go steps after ``COPY . .``, on the real engines.

Maven Central and the Go proxy are not reachable here, so the test serves,
on loopback, what a site's internal mirror would: a Maven repository made
of Debian's packaged plugins and libraries (``/usr/share/maven-repo``, which
the harness installs) and a GOPROXY tree of a module this test writes. The
project names them the way a user names an internal mirror (a
``settings.xml`` mirror, a ``GOPROXY``). ``api`` runs ``mvn -U clean
package`` with a cache mount on ``/root/.m2`` (the dependency plugin is
loaded lazily by the ``package`` phase); ``tool`` runs ``go build`` with
``GONOSUMDB`` and ``GOFLAGS`` set. Exported once per run (a session
fixture; the JDK, Maven and Go come from Debian through the APT capture,
one layer for both services).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from offline_build import unpacking
from tests.integration.harness import (
    QuietHandler,
    build_report,
    bundle_in,
    carry,
    cli,
    reset,
)

pytestmark = pytest.mark.engine

SERVICES = ("api", "tool")
DEBIAN_MAVEN_REPO = Path("/usr/share/maven-repo")
TOOLCHAINS = ("RUN apt-get update && apt-get install -y --no-install-recommends "
              "maven openjdk-17-jdk-headless golang-go\n")

API_DOCKERFILE = f"""\
FROM debian:bookworm-slim
{TOOLCHAINS}WORKDIR /app
COPY . .
RUN --mount=type=cache,target=/root/.m2 mvn -B -U -s settings.xml clean package
CMD ["java", "-cp", "target/api-1.0.jar:target/dependency/*", "demo.App"]
"""
POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>demo</groupId><artifactId>api</artifactId><version>1.0</version>
  <properties>
    <maven.compiler.source>17</maven.compiler.source><maven.compiler.target>17</maven.compiler.target>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
    <dependency><groupId>org.apache.commons</groupId><artifactId>commons-lang3</artifactId><version>3.12.0</version></dependency>{extra}
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>3.5.0</version>
    <executions><execution><phase>package</phase><goals><goal>copy-dependencies</goal></goals></execution></executions>
  </plugin></plugins></build>
</project>
"""
COMMONS_IO = ("\n    <dependency><groupId>commons-io</groupId><artifactId>commons-io</artifactId>"
              "<version>2.11.0</version></dependency>")
JAVA_APP = """\
package demo;
public class App {{
    public static void main(String[] args) {{
        System.out.println(org.apache.commons.lang3.StringUtils.capitalize("api {version}"));
    }}
}}
"""
SETTINGS = """\
<settings>
  <mirrors><mirror><id>internal</id><mirrorOf>*</mirrorOf><url>{url}/maven/</url></mirror></mirrors>
</settings>
"""

TOOL_DOCKERFILE = f"""\
FROM debian:bookworm-slim
{TOOLCHAINS}ENV GOPROXY={{url}}/go GONOSUMDB=example.com GOFLAGS=-trimpath CGO_ENABLED=0
WORKDIR /src
COPY . .
RUN go build -o /usr/local/bin/tool .
CMD ["tool"]
"""
GO_APP = """\
package main

import (
\t"fmt"

\t"example.com/greet"
)

func main() {{ fmt.Println("tool", "{version}", greet.Hello()) }}
"""
MODULE = "example.com/greet"


def _h1(files: dict[str, bytes]) -> str:
    """The go command's dirhash "h1:" of *files* (name -> bytes), as go.sum records it."""
    summary = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def go_module(proxy: Path, version: str) -> str:
    """Publish one version of example.com/greet in the GOPROXY tree *proxy*; its two go.sum lines."""
    gomod = f"module {MODULE}\n\ngo 1.19\n".encode()
    prefix = f"{MODULE}@{version}/"
    files = {prefix + "go.mod": gomod,
             prefix + "greet.go": f'package greet\n\nfunc Hello() string {{ return "greet {version}" }}\n'.encode()}
    folder = proxy / MODULE / "@v"
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    (folder / f"{version}.zip").write_bytes(buffer.getvalue())
    (folder / f"{version}.mod").write_bytes(gomod)
    (folder / f"{version}.info").write_text(json.dumps({"Version": version, "Time": "2026-01-01T00:00:00Z"}))
    with (folder / "list").open("a") as listing:
        listing.write(version + "\n")
    return f"{MODULE} {version} {_h1(files)}\n{MODULE} {version}/go.mod {_h1({'go.mod': gomod})}\n"


def go_files(folder: Path, version: str, sums: dict[str, str]) -> None:
    (folder / "go.mod").write_text(f"module example.com/tool\n\ngo 1.19\n\nrequire {MODULE} {version}\n")
    (folder / "go.sum").write_text(sums[version])


def serve_mirror(root: Path) -> tuple[ThreadingHTTPServer, str, dict[str, str]]:
    """An internal mirror on loopback, served from *root*: /maven/ (Debian's packaged repository) and /go/ (a
    GOPROXY tree of example.com/greet v1.0.0 and v1.1.0); (server, its URL, go.sum lines by version)."""
    if not (DEBIAN_MAVEN_REPO / "org/apache/maven/plugins/maven-dependency-plugin").is_dir():
        raise FileNotFoundError("Debian's Maven plugins are not installed: run scripts/engines.sh install")
    shutil.copytree(DEBIAN_MAVEN_REPO, root / "maven", symlinks=False)
    # Maven gives plugins that name no plexus-utils version 1.1; Debian packages a newer one only.
    utils = root / "maven/org/codehaus/plexus/plexus-utils"
    (utils / "1.1").mkdir()
    shutil.copy(utils / "3.4.2/plexus-utils-3.4.2.jar", utils / "1.1/plexus-utils-1.1.jar")
    pom = (utils / "3.4.2/plexus-utils-3.4.2.pom").read_text()
    (utils / "1.1/plexus-utils-1.1.pom").write_text(pom.replace("<version>3.4.2</version>", "<version>1.1</version>", 1))
    sums = {v: go_module(root / "go", v) for v in ("v1.0.0", "v1.1.0")}
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", sums


@pytest.fixture(scope="session")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    server, url, sums = serve_mirror(tmp_path_factory.mktemp("mirror"))
    yield url, sums
    server.shutdown()
    server.server_close()


def write_project(root: Path, url: str, sums: dict[str, str]) -> Path:
    api, tool = root / "api", root / "tool"
    (api / "src/main/java/demo").mkdir(parents=True)
    tool.mkdir()
    (root / "offline.yaml").write_text("project: jvmgo\nversion: '1'\nnetwork: host\nservices:\n"
                                       "  api: {context: api, image: jvmgo/api}\n"
                                       "  tool: {context: tool, image: jvmgo/tool}\n")
    (api / "Dockerfile").write_text(API_DOCKERFILE)
    (api / "pom.xml").write_text(POM.format(extra=""))
    (api / "settings.xml").write_text(SETTINGS.format(url=url))
    (api / "src/main/java/demo/App.java").write_text(JAVA_APP.format(version="v1"))
    (tool / "Dockerfile").write_text(TOOL_DOCKERFILE.format(url=url))
    (tool / "main.go").write_text(GO_APP.format(version="v1"))
    go_files(tool, "v1.0.0", sums)
    return root


@pytest.fixture(scope="session")
def jvmgo_bundle(engines: dict[str, str], mirror: tuple[str, dict[str, str]],
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    url, sums = mirror
    project = write_project(tmp_path_factory.mktemp("jvmgo-online") / "jvmgo", url, sums)
    cli(project, engines["online"], "offline.export")
    return bundle_in(project)


def test_the_bundle_carries_the_repository_and_the_module_downloads(jvmgo_bundle: Path) -> None:
    manifest, _ = unpacking.load_manifest(jvmgo_bundle)
    names = [f.path for f in manifest.files]
    maven = [n for n in names if n.startswith("files/maven/api-1/linux_amd64/")]
    assert "files/maven/api-1/linux_amd64/org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0.jar" in maven
    # Plugins Maven loads lazily while it runs the goals, not only the dependencies.
    assert any(n.startswith("files/maven/api-1/linux_amd64/org/apache/maven/plugins/maven-dependency-plugin/") for n in maven)
    assert any(n.startswith("files/maven/api-1/linux_amd64/org/apache/maven/plugins/maven-compiler-plugin/") for n in maven)
    assert not any(n.endswith(("/_remote.repositories", ".lastUpdated")) for n in maven)
    go = [n for n in names if n.startswith("files/go/tool-1/linux_amd64/")]
    assert {f"files/go/tool-1/linux_amd64/{MODULE}/@v/v1.0.0.{ext}" for ext in ("info", "mod", "zip")} <= set(go), go
    assert not any("/sumdb/" in n or n.endswith(".lock") or "v1.1.0" in n for n in go)


def test_a_source_change_rebuilds_offline_and_runs(engines: dict[str, str], jvmgo_bundle: Path,
                                                   tmp_path: Path) -> None:
    reset("offline")
    host = engines["offline"]
    project = carry(jvmgo_bundle, tmp_path / "jvmgo")
    cli(project, host, "offline.setup")
    checks = json.loads(cli(project, host, "offline.diagnose", "--json", "--quick").stdout)["checks"]
    rows = {c["name"]: c["detail"] for c in checks if c["area"] == "captures"}
    assert rows["maven"].startswith("1 step(s): api-1 for linux_amd64;"), rows
    assert rows["maven"].endswith(" in build-cache/captures/maven"), rows
    assert rows["go"].startswith("1 step(s): tool-1 for linux_amd64;") and rows["go"].endswith("captures/go"), rows
    first = build_report(cli(project, host, "offline.build").stdout, SERVICES)
    assert set(first) == set(SERVICES)
    for service, (steps, cached, status) in first.items():
        assert steps > 0 and cached == steps and status == "all cached", (service, first)

    (project / "api/src/main/java/demo/App.java").write_text(JAVA_APP.format(version="v2"))
    (project / "tool/main.go").write_text(GO_APP.format(version="v2"))
    again = build_report(cli(project, host, "offline.build").stdout, SERVICES)
    for service, (steps, cached, status) in again.items():
        assert status == "rebuilt offline" and cached < steps, (service, again)
    docker = DockerClient(host=host)
    assert docker.run("jvmgo/api:1", remove=True, networks=["none"]).strip() == "Api v2"
    assert docker.run("jvmgo/tool:1", remove=True, networks=["none"]).strip() == "tool v2 greet v1.0.0"


def test_a_build_file_changed_offline_is_named_with_the_fix(engines: dict[str, str], jvmgo_bundle: Path,
                                                            mirror: tuple[str, dict[str, str]],
                                                            tmp_path: Path) -> None:
    reset("offline")
    host = engines["offline"]
    project = carry(jvmgo_bundle, tmp_path / "jvmgo")
    cli(project, host, "offline.setup")
    (project / "api/pom.xml").write_text(POM.format(extra=COMMONS_IO))
    out = cli(project, host, "api.offline-build", check=False)
    assert out.returncode == 1
    assert ("commons-io:commons-io:jar:2.11.0 is not in the bundle's maven capture: pom.xml (a dependency or "
            "plugin added or changed) changed since the export") in out.stderr, out.stderr
    assert "fix: export online again with the changed file" in out.stderr and "Traceback" not in out.stderr

    go_files(project / "tool", "v1.1.0", mirror[1])
    out = cli(project, host, "tool.offline-build", check=False)
    assert out.returncode == 1
    assert f"{MODULE}@v1.1.0 is not in the bundle's go capture: go.mod or go.sum changed since the export" \
        in out.stderr, out.stderr
    assert "Traceback" not in out.stderr

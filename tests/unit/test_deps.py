"""pip and npm captures as plans and text: what is found, how a step is served and captured (no engine)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from offline_build import lint, variant
from offline_build.build import plan_offline_builds
from offline_build.captures.apt import APT
from offline_build.captures.lang import (
    CAPTURE_STAGE,
    MARKER,
    CaptureBuild,
    gather_captured,
    platform_outputs,
)
from offline_build.captures.npm import NPM
from offline_build.captures.pip import PIP
from offline_build.config import Overrides, load
from offline_build.errors import ConfigError
from offline_build.export import export_plan
from offline_build.inputs import inputs, variant_steps
from offline_build.pkgs import Install, install_of, installs
from offline_build.steps import Build, SaveImages
from tests.unit.helpers import df

FRONTEND = """\
FROM debian:bookworm-slim AS web
WORKDIR /app
COPY . .
RUN if [ -f package-lock.json ]; then npm ci; else npm install; fi
FROM debian:bookworm-slim
COPY . .
RUN python3 -m venv /venv && /venv/bin/pip install -r requirements.txt
RUN sh -c 'python3 -m pip install --upgrade pip'
RUN pip install --no-index --find-links /w six
"""




@pytest.mark.parametrize(("argv", "expected"), [
    (["/venv/bin/pip", "install", "-r", "r.txt"], Install("pip", ("/venv/bin/pip",), ("install", "-r", "r.txt"))),
    (["python3", "-m", "pip", "install", "six"], Install("pip", ("python3", "-m", "pip"), ("install", "six"))),
    (["pip3.11", "install", "six"], Install("pip", ("pip3.11",), ("install", "six"))),
    (["npm", "ci"], Install("npm", ("npm",), ("ci",))),
    (["npm", "i", "--omit=dev"], Install("npm", ("npm",), ("i", "--omit=dev"))),
    (["pip", "install", "--no-index", "six"], None),  # already offline: nothing to capture
    (["pip", "download", "six"], None),
    (["npm", "run", "build"], None),
    (["npm", "ci", "--offline"], None),
    (["yarn"], Install("yarn", ("yarn",), ())),
    (["yarnpkg", "install", "--frozen-lockfile"], Install("yarn", ("yarnpkg",), ("install", "--frozen-lockfile"))),
    (["yarn", "build"], None),
    (["pnpm", "install", "--frozen-lockfile"], Install("pnpm", ("pnpm",), ("install", "--frozen-lockfile"))),
    (["pnpm", "run", "build"], None),
    (["uv", "sync", "--frozen"], Install("uv", ("uv",), ("sync", "--frozen"))),
    (["/usr/local/bin/uv", "pip", "install", "-r", "r.txt"],
     Install("uv", ("/usr/local/bin/uv",), ("pip", "install", "-r", "r.txt"))),
    (["uv", "lock"], None),
    (["uv", "sync", "--offline"], None),
    (["pipx", "install", "x"], None),
])
def test_install_commands_are_recognised(argv: list[str], expected: Install | None) -> None:
    assert install_of(argv) == expected


def test_installs_are_found_inside_if_after_and_and_in_sh_c(tmp_path: Path) -> None:
    runs = [ins for stage in df(FRONTEND, tmp_path).stages for ins in stage.instructions if ins.cmd == "RUN"]
    found = [[(i.tool, i.args[0]) for i in installs(ins)] for ins in runs]
    assert found == [[("npm", "ci"), ("npm", "install")], [("pip", "install")], [("pip", "install")], []]


def test_keys_count_the_steps_of_each_tool(tmp_path: Path) -> None:
    parsed = df(FRONTEND, tmp_path)
    assert {k: n.line for k, n in PIP.steps_of("svc", parsed).items()} == {"svc-1": 7, "svc-2": 8}
    assert {k: n.line for k, n in NPM.steps_of("svc", parsed).items()} == {"svc-1": 4}


def test_the_offline_variant_mounts_each_capture_and_cuts_the_registry(tmp_path: Path) -> None:
    parsed = df(FRONTEND, tmp_path)
    v = variant.offline_variant(parsed, [(PIP, PIP.steps_of("svc", parsed)), (NPM, NPM.steps_of("svc", parsed))],
                                service="svc")
    lines = [line for line in v.text.splitlines() if line != "ARG TARGETOS TARGETARCH TARGETVARIANT"]
    assert v.text.count("ARG TARGETOS TARGETARCH TARGETVARIANT\nRUN --mount=type=bind,from=") == 3
    assert lines[3] == ("RUN --mount=type=bind,from=npm-svc-1,source=${TARGETOS}_${TARGETARCH}${TARGETVARIANT:+_${TARGETVARIANT}},"
                        "target=/.offline-build/npm/svc-1,rw "
                        "export npm_config_cache=/.offline-build/npm/svc-1 npm_config_offline=true "
                        "npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false && "
                        "if [ -f package-lock.json ]; then npm ci; else npm install; fi")
    assert lines[6] == ("RUN --mount=type=bind,from=pip-svc-1,source=${TARGETOS}_${TARGETARCH}${TARGETVARIANT:+_${TARGETVARIANT}},"
                        "target=/.offline-build/pip/svc-1 "
                        "export PIP_NO_INDEX=1 PIP_FIND_LINKS=/.offline-build/pip/svc-1 "
                        "PIP_DISABLE_PIP_VERSION_CHECK=1 && python3 -m venv /venv && "
                        "/venv/bin/pip install -r requirements.txt")
    assert lines[8] == "RUN pip install --no-index --find-links /w six"  # the user's own offline install
    assert v.contexts == {"npm-svc-1": ("npm", "svc-1"), "pip-svc-1": ("pip", "svc-1"), "pip-svc-2": ("pip", "svc-2")}
    # A key the bundle did not bring leaves its step as written (it would need the network).
    only_second = {k: n for k, n in PIP.steps_of("svc", parsed).items() if k == "svc-2"}
    partial = variant.offline_variant(parsed, [(PIP, only_second), (NPM, {})], service="svc")
    assert partial.text.splitlines()[6] == FRONTEND.splitlines()[6]  # (the npm step above it is unserved too)


def test_the_capture_variant_runs_the_step_online_and_copies_the_captures_out(tmp_path: Path) -> None:
    parsed = df(FRONTEND, tmp_path)
    v = variant.offline_variant(parsed, [(PIP, PIP.steps_of("svc", parsed)), (NPM, NPM.steps_of("svc", parsed))],
                                service="svc",
                                capturing=True)
    lines = v.text.splitlines()
    assert lines[3].startswith("RUN --mount=type=secret,id=offline-build-ca ")
    assert "export npm_config_cache=/.offline-build/out/npm/svc-1 " in lines[3]
    assert lines[3].endswith("&& if [ -f package-lock.json ]; then npm ci; else npm install; fi")
    assert "( python3 -m venv /venv && /venv/bin/pip install -r requirements.txt ) && " in lines[6]
    assert "/venv/bin/pip wheel --no-deps --use-pep517 --wheel-dir /.offline-build/out/pip/svc-1 -r /tmp/.ob-pip-0.new" \
        in lines[6]
    assert "PIP_NO_INDEX" not in v.text and "npm_config_offline" not in v.text
    assert lines[-3:] == [f"FROM scratch AS {CAPTURE_STAGE}", "COPY --from=web /.offline-build/out/ /",
                          "COPY --from=1 /.offline-build/out/ /"]


def project_with(tmp_path: Path, dockerfile: str, extra: str = "", network: str = "host") -> Path:
    (tmp_path / "svc").mkdir(parents=True)
    (tmp_path / "svc" / "Dockerfile").write_text(dockerfile)
    (tmp_path / "offline.yaml").write_text(f"project: p\nnetwork: {network}\n{extra}services:\n  svc: {{context: svc}}\n")
    return tmp_path / "offline.yaml"


@pytest.mark.parametrize("network", ["host", "none"])
def test_export_captures_before_the_build_that_is_served(tmp_path: Path, network: str) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    project = load(project_with(tmp_path, FRONTEND, f"ca_file: {ca.name}\n", network), environ={})
    steps = export_plan(project, list(project.services.values())).steps
    (capture,) = [s for s in steps if isinstance(s, CaptureBuild)]
    (online,) = [s for s in steps if type(s) is Build and s.service == "svc"]
    assert steps.index(capture) < steps.index(online)
    assert online.network == network  # the served build keeps the mode the site builds with
    argv = capture.argv()
    assert argv[argv.index("--target") + 1] == CAPTURE_STAGE
    assert argv[argv.index("--network") + 1] == "host"
    assert argv[argv.index("--secret") + 1] == f"id=offline-build-ca,src={ca}"
    assert argv[argv.index("--output") + 1].startswith("type=local,dest=") and "--load" not in argv
    assert capture.dockerfile.name == "Dockerfile.capture"
    # The CA reaches capture builds only: never the build whose cache travels.
    assert "--secret" not in online.argv() and online.dockerfile.name == "Dockerfile.offline"
    assert dict(online.build_contexts)["pip-svc-1"].endswith("captures/pip/svc-1")


def test_the_classic_variant_copies_the_captures_in_from_their_image(tmp_path: Path) -> None:
    project = load(project_with(tmp_path, FRONTEND), environ={})
    i = inputs(project, project.service("svc"), online=True)
    lines = i.classic.text.splitlines()  # type: ignore[union-attr]
    assert lines[3] == "COPY --from=p-svc-captures:latest /npm/svc-1 /.offline-build/npm/svc-1"
    assert lines[4] == ("RUN ( export npm_config_cache=/.offline-build/npm/svc-1 npm_config_offline=true "
                        "npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false && "
                        "if [ -f package-lock.json ]; then npm ci; else npm install; fi ) && rm -rf /.offline-build")
    assert lines[7] == "COPY --from=p-svc-captures:latest /pip/svc-1 /.offline-build/pip/svc-1"
    assert i.classic.images == ("p-svc-captures:latest",)
    from offline_build.build import classic_step

    assert "p-svc-captures:latest" in classic_step(project, i).needs_images  # type: ignore[union-attr]
    steps = export_plan(project, list(project.services.values())).steps
    (image,) = [s for s in steps if type(s) is Build and s.tags == ("p-svc-captures:latest",)]
    assert image.context == project.cache_dir / "captures"
    assert any(isinstance(s, SaveImages) and "p-svc-captures:latest" in s.images for s in steps)
    assert steps.index(image) > max(steps.index(s) for s in steps if isinstance(s, CaptureBuild))


def test_a_missing_ca_file_stops_the_capture_not_the_site(tmp_path: Path) -> None:
    # The CA often exists only on the online machine: loading the project (as
    # the site does to set up and build) must not read it; a capture build must.
    project = load(project_with(tmp_path, FRONTEND, "ca_file: missing.pem\n"), environ={})
    assert project.ca_file == tmp_path / "missing.pem"
    assert plan_offline_builds(project, list(project.services.values()), None)
    with pytest.raises(ConfigError, match=r"offline.yaml:3: ca_file: .*missing.pem is not a file") as raised:
        export_plan(project, list(project.services.values()))
    assert "PEM bundle" in str(raised.value)
    env_ca = tmp_path / "env.pem"
    env_ca.write_text("pem")
    project = load(tmp_path / "offline.yaml", environ={"OFFLINE_CA_FILE": str(env_ca)})
    assert project.ca_file == env_ca
    (capture,) = [s for s in export_plan(project, list(project.services.values())).steps
                  if isinstance(s, CaptureBuild)]
    assert f"src={env_ca}" in " ".join(capture.argv())
    env_missing = {"OFFLINE_CA_FILE": str(tmp_path / "gone.pem")}
    with pytest.raises(ConfigError, match=r"OFFLINE_CA_FILE: .*gone.pem is not a file"):
        export_plan(load(tmp_path / "offline.yaml", environ=env_missing), list(project.services.values()))


def test_a_failure_for_a_missing_package_is_named_with_the_file() -> None:
    step = ("[4/4] RUN --mount=type=bind,from=pip-py-1,target=/.offline-build/pip/py-1 export PIP_NO_INDEX=1 "
            "PIP_FIND_LINKS=/.offline-build/pip/py-1 && /venv/bin/pip install -r requirements.txt")
    log = "ERROR: Could not find a version that satisfies the requirement attrs==23.2.0\n" \
          "ERROR: No matching distribution found for attrs==23.2.0\n"
    problem, fix = PIP.explain(step, log)  # type: ignore[misc]
    assert problem.startswith("attrs==23.2.0 is not in the bundle's pip capture: requirements.txt changed")
    assert "--since" in fix
    assert PIP.explain("[2/3] RUN pip install -r requirements.txt", log) is None  # not a served step
    npm_log = ("npm ERR! code ENOTCACHED\nnpm ERR! request to https://registry.example.invalid/%40scope%2fpkg "
               "failed: cache mode is 'only-if-cached' but no cached response is available.")
    problem, _ = NPM.explain("RUN export npm_config_cache=/.offline-build/npm/w-1 npm_config_offline=true && npm ci", npm_log)  # type: ignore[misc]
    assert problem.startswith("@scope/pkg is not in the bundle's npm capture")
    assert APT.explain(step, log) is None


def test_taking_a_capture_drops_npm_logs_marks_and_fixes_modes(tmp_path: Path) -> None:
    src = tmp_path / "out" / "npm"
    (src / "svc-1" / "_logs").mkdir(parents=True)
    (src / "svc-1" / "_logs" / "debug.log").write_text("x")
    (src / "svc-1" / "_cacache" / "tmp" / "empty").mkdir(parents=True)
    (src / "svc-1" / "_cacache" / "blob").write_text("y")
    (src / "svc-1" / "_cacache" / "blob").chmod(0o600)
    root = tmp_path / "captures" / "npm"
    assert gather_captured({"linux_amd64": src}, root, tmp_path / "scratch") == {"svc-1": 1}
    kept = root / "svc-1" / "linux_amd64"
    assert not (kept / "_logs").exists() and (kept / MARKER).is_file()
    assert not (kept / "_cacache" / "tmp").exists()
    assert (kept / "_cacache" / "blob").stat().st_mode & 0o777 == 0o644
    assert NPM.captured(SimpleNamespace(cache_dir=tmp_path, platforms=("linux/amd64",)), "svc-1")  # type: ignore[arg-type]
    assert not NPM.captured(SimpleNamespace(cache_dir=tmp_path, platforms=("linux/amd64", "linux/arm64")), "svc-1")  # type: ignore[arg-type]


def test_a_multi_platform_capture_keeps_each_platform_beside_the_others_and_replaces_the_key_whole(
        tmp_path: Path) -> None:
    # BuildKit's local output splits by platform only when there are several.
    assert platform_outputs(tmp_path / "out", ["linux/arm64"]) == {"linux_arm64": tmp_path / "out"}
    outputs = platform_outputs(tmp_path / "out", ["linux/amd64", "linux/arm/v7"])
    assert outputs == {"linux_amd64": tmp_path / "out" / "linux_amd64", "linux_arm_v7": tmp_path / "out" / "linux_arm_v7"}
    root = tmp_path / "captures" / "pip"
    (root / "svc-1" / "linux_s390x").mkdir(parents=True)  # a platform the project no longer builds for
    (root / "svc-1" / "linux_s390x" / "old.whl").write_text("old")
    for folder, wheel in (("linux_amd64", "x-1-cp311-cp311-manylinux_2_17_x86_64.whl"),
                          ("linux_arm_v7", "x-1-cp311-cp311-manylinux_2_17_armv7l.whl")):
        (outputs[folder] / "pip" / "svc-1").mkdir(parents=True)
        (outputs[folder] / "pip" / "svc-1" / wheel).write_text(folder)
    counts = gather_captured({p: out / "pip" for p, out in outputs.items()}, root, tmp_path / "out" / ".keys")
    assert counts == {"svc-1": 2}
    assert sorted(p.name for p in (root / "svc-1").iterdir()) == ["linux_amd64", "linux_arm_v7"]
    assert (root / "svc-1" / "linux_arm_v7" / "x-1-cp311-cp311-manylinux_2_17_armv7l.whl").read_text() == "linux_arm_v7"
    assert all((root / "svc-1" / p / MARKER).is_file() for p in ("linux_amd64", "linux_arm_v7"))


def test_lint_notes_what_a_capture_serves_and_keeps_what_it_cannot(tmp_path: Path) -> None:
    text = ("FROM debian:bookworm-slim\nCOPY . .\nRUN pip install -r requirements.txt\n"
            "RUN pip install git+https://example.invalid/x.git\nRUN npm ci\nRUN uv lock\n")
    parsed = df(text, tmp_path)
    found = lint.lint_dockerfile(parsed, lint.Context(frozenset({"debian:bookworm-slim"}), True, True,
                                                      frozenset({"pip", "npm", "uv"})))
    by_line = {(f.line, f.rule): f.severity for f in found}
    assert by_line[(3, "pip-install")] == "info" and by_line[(5, "npm-install")] == "info"
    assert by_line[(4, "pip-install")] == "error"
    assert by_line[(6, "uv-sync")] == "error"  # uv lock resolves against the index: no capture serves it
    assert by_line[(3, "copy-before-install")] == "info"
    bare = lint.lint_dockerfile(parsed, lint.Context())
    assert {f.severity for f in bare if f.rule in ("pip-install", "npm-install")} == {"error"}


def test_a_capture_switched_off_leaves_its_steps_as_written(tmp_path: Path) -> None:
    project = load(project_with(tmp_path, FRONTEND, "captures: {pip: false}\n"), environ={})
    i = inputs(project, project.service("svc"), online=True)
    assert i.needs["pip"] == {} and set(i.needs["npm"]) == {"svc-1"}
    assert "PIP_NO_INDEX" not in i.variant.text and "npm_config_offline=true" in i.variant.text  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="unknown key 'pipp'"):
        load(project_with(tmp_path / "x", FRONTEND, "captures: {pipp: false}\n"), environ={})


def test_yarn_and_pnpm_failures_name_the_missing_package() -> None:
    from offline_build.captures.pnpm import PNPM
    from offline_build.captures.yarn import YARN

    yarn_log = 'error An unexpected error occurred: "https://registry.example.invalid/is-number: getaddrinfo EAI_AGAIN"'
    problem, _ = YARN.explain("RUN export YARN_CACHE_FOLDER=/.offline-build/yarn/w-1 && yarn", yarn_log)  # type: ignore[misc]
    assert problem.startswith("is-number is not in the bundle's yarn capture: package.json or yarn.lock changed")
    assert YARN.explain("RUN yarn", yarn_log) is None
    pnpm_log = " ERR_PNPM_NO_OFFLINE_META  Failed to resolve is-number@7.0.0 in package mirror /root/x.json"
    problem, _ = PNPM.explain("RUN export npm_config_store_dir=/.offline-build/pnpm/w-1/store && pnpm i", pnpm_log)  # type: ignore[misc]
    assert problem.startswith("is-number@7.0.0 is not in the bundle's pnpm capture")


def test_diagnose_lists_the_captured_steps(tmp_path: Path) -> None:
    project = load(project_with(tmp_path, FRONTEND), environ={})
    assert NPM.rows(project) == []
    key = project.cache_dir / "captures" / "npm" / "svc-1"
    for platform in ("linux_amd64", "linux_arm64"):
        (key / platform / "_cacache").mkdir(parents=True)
        (key / platform / "_cacache" / "entry").write_bytes(b"x" * 1_000_000)
        (key / platform / MARKER).write_text("npm capture of svc-1\n")
    (key.parent / ".svc-2.old" / "linux_amd64" / "_cacache").mkdir(parents=True)  # half swapped in: not a step
    (row,) = NPM.rows(project)
    assert (row.name, row.status) == ("npm", "info")
    assert row.detail == "1 step(s): svc-1 for linux_amd64, linux_arm64; 2 file(s), 2.0 MB in build-cache/captures/npm"
    assert NPM.captured(project, "svc-1") and not NPM.captured(project, "svc-2")


def test_exporting_one_service_makes_no_captures_image_for_another_never_captured(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "Dockerfile").write_text("FROM debian:bookworm-slim\nCOPY . .\nRUN npm ci\n")
    config = project_with(tmp_path, FRONTEND)
    config.write_text(config.read_text() + "  other: {context: other}\n")
    project = load(config, environ={})
    images = [s.tags[0] for s in export_plan(project, [project.service("svc")]).steps
              if type(s) is Build and s.tags and s.tags[0].endswith("-captures:latest")]
    assert images == ["p-svc-captures:latest"]
    key = project.cache_dir / "captures" / "npm" / "other-1" / "linux_amd64"
    key.mkdir(parents=True)
    (key / MARKER).write_text("npm capture of other-1\n")  # an earlier export captured it: its image is made again
    images = [s.tags[0] for s in export_plan(project, [project.service("svc")]).steps
              if type(s) is Build and s.tags and s.tags[0].endswith("-captures:latest")]
    assert images == ["p-svc-captures:latest", "p-other-captures:latest"]
    # Captured for amd64 only: a project now also building arm64 does not copy from a folder that is not there.
    both = load(config, Overrides(platforms=("linux/amd64", "linux/arm64")), environ={})
    images = [s.tags[0] for s in export_plan(both, [both.service("svc")]).steps
              if type(s) is Build and s.tags and s.tags[0].endswith("-captures:latest")]
    assert images == ["p-svc-captures:latest"]


STAGED = """\
FROM debian:bookworm-slim AS deps
COPY requirements.txt .
RUN pip install -r requirements.txt
FROM deps AS builder
COPY . .
RUN npm ci && npm run build
FROM debian:bookworm-slim AS tools
RUN uv pip install --system ruff
FROM debian:bookworm-slim AS runner
COPY --from=builder /app/dist /srv
RUN --mount=type=bind,from=tools,target=/t pip install /t/x.whl
"""


@pytest.mark.parametrize(("target", "built"), [
    # The classic fallback runs every stage up to the target, so all of them are served.
    ("deps", {0}), ("builder", {0, 1}), ("TOOLS", {0, 1, 2}), ("runner", {0, 1, 2, 3}), (None, {0, 1, 2, 3}),
    ("1", {0, 1}), ("nope", {0, 1, 2, 3}),  # an unknown target is BuildKit's to refuse
])
def test_the_stages_a_target_builds(tmp_path: Path, target: str | None, built: set[int]) -> None:
    assert df(STAGED, tmp_path).built_stages(target) == built


def test_a_capture_build_runs_only_the_stages_the_services_target_builds(tmp_path: Path) -> None:
    # A stage the service never builds may fetch what nothing serves (a `next build` fetching
    # web fonts): the capture build must not run it, nor copy its captures out.
    path = project_with(tmp_path, STAGED)
    path.write_text(path.read_text().replace("svc: {context: svc}", "svc: {context: svc, target: deps}"))
    project = load(path, environ={})
    i = inputs(project, project.services["svc"], online=True)
    assert list(i.needs["pip"]) == ["svc-1"] and not i.needs["npm"] and not i.needs["uv"]
    assert i.capture is not None
    capture_stage = i.capture.text.split(f"AS {CAPTURE_STAGE}")[1]
    assert capture_stage.strip() == "COPY --from=deps /.offline-build/out/ /"
    assert "npm_config_cache" not in i.capture.text and "UV_CACHE_DIR" not in i.capture.text
    # The full build (no target) captures them all, with the same keys.
    path.write_text(path.read_text().replace(", target: deps", ""))
    whole = load(path, environ={})
    everything = inputs(whole, whole.services["svc"], online=True)
    assert (list(everything.needs["pip"]), list(everything.needs["npm"])) == (["svc-1", "svc-2"], ["svc-1"])


@pytest.mark.parametrize("target", ["nosuch", "1"])  # an index is no target for BuildKit or the classic builder
def test_a_target_the_dockerfile_has_no_stage_for_is_named_before_any_build(tmp_path: Path, target: str) -> None:
    from offline_build.errors import DockerfileError
    from offline_build.inputs import lint_project

    path = project_with(tmp_path, STAGED)
    path.write_text(path.read_text().replace("svc: {context: svc}", f"svc: {{context: svc, target: '{target}'}}"))
    project = load(path, environ={})
    for read in (lambda: inputs(project, project.services["svc"], online=True), lambda: lint_project(project)):
        with pytest.raises(DockerfileError, match=f"no stage '{target}', the target of service 'svc'") as info:
            read()
        assert info.value.hint == "set target: to one of its stages (deps, builder, tools, runner)"
    path.write_text(path.read_text().replace(f"target: '{target}'", "target: TOOLS"))
    lint_project(load(path, environ={}))  # any case, as BuildKit matches it: no error


def test_a_dockerfiles_own_ignore_file_goes_beside_each_variant(tmp_path: Path) -> None:
    # BuildKit reads <Dockerfile>.dockerignore for the Dockerfile it builds: the variants
    # live elsewhere under other names, so each gets a copy, or it would see other files.
    path = project_with(tmp_path, FRONTEND)
    (tmp_path / "svc" / "Dockerfile.dockerignore").write_text("secrets/\n!secrets/public.pem\n")
    project = load(path, environ={})
    steps = [s for s in variant_steps([inputs(project, project.services["svc"], online=True)])]
    written = {s.path.name: s.text for s in steps}
    assert {n for n in written if n.endswith(".dockerignore")} == {
        "Dockerfile.offline.dockerignore", "Dockerfile.capture.dockerignore", "Dockerfile.classic.dockerignore"}
    assert all(written[n] == "secrets/\n!secrets/public.pem\n" for n in written if n.endswith(".dockerignore"))
    # Without it, the context's (the one BuildKit then reads), and never a copy left from before.
    (tmp_path / "svc" / "Dockerfile.dockerignore").unlink()
    (tmp_path / "svc" / ".dockerignore").write_text("node_modules\n")
    ignores = [s.text for s in variant_steps([inputs(project, project.services["svc"], online=True)])
               if s.path.name.endswith(".dockerignore")]
    assert ignores == ["node_modules\n"] * 3
    (tmp_path / "svc" / ".dockerignore").unlink()
    ignores = [s.text for s in variant_steps([inputs(project, project.services["svc"], online=True)])
               if s.path.name.endswith(".dockerignore")]
    assert ignores == [""] * 3

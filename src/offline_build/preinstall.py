"""The classic builder's starting points: bases with APT preinstalled, and images of the captures.

The classic builder has no ``RUN --mount`` and no named contexts, so it
cannot be served a capture; it starts instead from ``<project>-<base>-apt``,
built here from the APT capture with BuildKit, and copies each service's
language captures from ``<project>-<service>-captures`` (``FROM scratch``).
Plans for ``offline.apt-capture`` and ``offline.base-images`` and the
export's preinstall steps; the executor runs them.
"""

from __future__ import annotations

from python_on_whales import DockerClient
from rich.console import Console

from .captures import all_captures
from .captures.apt import APT, ARCHIVES, LISTS, CaptureApt, context_name, mounts, union
from .captures.base import PLATFORM_ARGS, PLATFORM_DIR
from .captures.lang import LangCapture
from .config import Project
from .executor import Executor, check_engine
from .files import create_ignored
from .inputs import Inputs, captures_image, inputs, preinstalled_image
from .plan import slug
from .steps import Build, Plan, SaveImages, Step, WriteFile


def apt_union(everyone: list[Inputs]) -> dict:  # type: ignore[type-arg]
    """Per base image, every package any service installs on it."""
    return union([i.apt for i in everyone])


def preinstall_steps(project: Project, everyone: list[Inputs], capturing: set[str] | None = None) -> list[Step]:
    """Build ``<project>-<base>-apt`` per base and the captures images: the classic builder's starting points.

    *capturing*: the services whose captures this run makes (None: all).
    """
    steps: list[Step] = []
    merged = apt_union(everyone)
    for base, use in merged.items():
        name = context_name(base)
        recommends = " --no-install-recommends" if use.no_recommends else ""
        folder = project.cache_dir / "variants" / "_preinstalled" / slug(base).lower()
        text = (f"FROM {base}\n{PLATFORM_ARGS}\n"
                f"RUN {' '.join(mounts(name))} "
                f"mkdir -p {LISTS}/partial {ARCHIVES}/partial "
                f"&& apt-get install -y{recommends} {' '.join(use.packages)}\n")
        steps.append(WriteFile(title=f"write the Dockerfile of {preinstalled_image(project, base)}",
                               path=folder / "Dockerfile", text=text))
        steps.append(Build(title=f"build {preinstalled_image(project, base)}", service="",
                           context=folder, dockerfile=folder / "Dockerfile",
                           tags=(preinstalled_image(project, base),), network="none",
                           build_contexts=((name, str(APT.context_dir(project, base))),), load=True,
                           platforms=project.platforms))
    captured = captures_image_steps(project, everyone, capturing)
    steps += captured
    images = (*(preinstalled_image(project, b) for b in merged), *(s.tags[0] for s in captured if isinstance(s, Build)))
    if images:
        steps.append(SaveImages(title=f"save {len(images)} image(s) for the classic builder", images=images,
                                store=project.store))
    return steps


def captures_image_steps(project: Project, everyone: list[Inputs], capturing: set[str] | None = None) -> list[Step]:
    """Per service with language captures, an image of them (``FROM scratch``) the classic variant copies from.

    The classic builder has no ``RUN --mount`` and no named contexts; an
    image in the engine is what its ``COPY --from`` can read.
    """
    steps: list[Step] = []
    root = project.cache_dir / "captures"
    for i in everyone:
        langs = [c for c in all_captures() if isinstance(c, LangCapture)]
        keys = [(c.name, k) for c in langs for k in i.needs[c.name]]
        made = capturing is None or i.service.name in capturing
        # A service this export does not capture (offline-export of another)
        # gets its image only from captures an earlier export left here.
        if not keys or not (made or all(c.captured(project, k) for c in langs for k in i.needs[c.name])):
            continue
        image = captures_image(project, i.service)
        folder = project.cache_dir / "variants" / "_captures" / i.service.name
        # One platform's capture per image platform: the classic builder copies from the engine's own.
        text = f"FROM scratch\n{PLATFORM_ARGS}\n" + "".join(f"COPY {tool}/{key}/{PLATFORM_DIR} /{tool}/{key}\n"
                                                             for tool, key in keys)
        steps.append(WriteFile(title=f"write the Dockerfile of {image}", path=folder / "Dockerfile", text=text))
        steps.append(Build(title=f"build {image}", service="", context=root, dockerfile=folder / "Dockerfile",
                           tags=(image,), network="none", load=True, platforms=project.platforms))
    return steps


def _everyone(project: Project) -> list[Inputs]:
    return [inputs(project, s, online=True) for s in project.services.values()]


def apt_capture(project: Project, docker: DockerClient, console: Console, *, dry_run: bool = False) -> None:
    """Capture APT for every base image the services install packages on."""
    plan = Plan("apt-capture", tuple(APT.capture_steps(project, [i.apt for i in _everyone(project)])))
    if not plan.steps:
        console.print("nothing to capture: no service installs APT packages")
        return
    if not dry_run:
        check_engine(docker)
    result = Executor(docker, console, dry_run=dry_run).run(plan)
    for r in result.of(CaptureApt):
        console.print(f"  {r.step.dest}: {r.detail['debs']} .deb file(s)")  # type: ignore[attr-defined]


def base_images(project: Project, docker: DockerClient, console: Console, *, dry_run: bool = False) -> list[str]:
    """Capture APT and build ``<project>-<base>-apt`` for every base that gets packages."""
    everyone = _everyone(project)
    steps = APT.capture_steps(project, [i.apt for i in everyone]) + [
        s for s in preinstall_steps(project, everyone) if not isinstance(s, SaveImages)]
    if not steps:
        console.print("nothing to build: no service installs APT packages")
        return []
    if not dry_run:
        check_engine(docker)
        create_ignored(project.cache_dir)  # the generated Dockerfiles go there
    Executor(docker, console, dry_run=dry_run).run(Plan("base-images", tuple(steps)))
    return [preinstalled_image(project, b) for b in apt_union(everyone)]

"""``docker-bake.json`` from the project file, for teams on bake or remote builders.

Each service becomes a target with the same inputs offline-build uses:
the Dockerfile (the offline variant where APT is captured), the APT
captures and the store's base images as named contexts, the cache from the
store (then the team's registry or bucket, when the project has one), and
a cache export into the service's own folder (and back to the team cache
when the environment names it, as for offline builds).
One folder per target, because bake builds targets in parallel and two
exports into one local cache folder race on its temp files. The bundle is
still made by ``offline.export``, which rebuilds from these caches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import Project
from .inputs import Inputs, inputs
from .plan import base_tag, cache_tag, remote_cache, remote_cache_to
from .store import Layout


def target(project: Project, i: Inputs, oci_bases: bool) -> dict[str, Any]:
    contexts = dict(i.contexts)
    if oci_bases:
        contexts.update({b: f"oci-layout://{project.store}:{base_tag(b)}" for b in i.bases})
    spec: dict[str, Any] = {
        "context": str(i.service.context),
        "dockerfile": str(i.dockerfile),
        "tags": [f"{i.service.image}:{project.version}"],
        "cache-from": [f"type=local,src={project.store},tag={cache_tag(i.service.name)}",
                       *filter(None, [remote_cache(project.cache, i.service.name)])],
        "cache-to": [(f"type=local,dest={project.cache_dir / '.work' / cache_tag(i.service.name)},"
                      f"mode=max,tag={cache_tag(i.service.name)}"),
                     *remote_cache_to(project.cache, i.service.name, offline=True)],
    }
    if contexts:
        spec["contexts"] = contexts
    if i.service.build_args:
        spec["args"] = dict(i.service.build_args)
    if i.service.target:
        spec["target"] = i.service.target
    if project.platforms:
        spec["platforms"] = list(project.platforms)
    if project.network:
        spec["network"] = project.network
    return spec


def variant_files(project: Project, *, online: bool = True) -> list[tuple[Path, str]]:
    """The generated Dockerfiles the bake file names: (path, text)."""
    out = []
    for i in (inputs(project, s, online=online) for s in project.services.values()):
        if i.variant:
            out.append((i.dockerfile, i.variant.text))
    return out


def render(project: Project, *, online: bool = True) -> str:
    """The bake file; base images come from the store when it holds them all."""
    everyone = [inputs(project, s, online=online) for s in project.services.values()]
    tags = Layout(project.store).tags() if Layout(project.store).exists() else {}
    targets = {}
    for i in everyone:
        oci = bool(i.bases) and all(base_tag(b) in tags for b in i.bases)
        targets[i.service.name] = target(project, i, oci)
    doc = {"group": {"default": {"targets": list(targets)}}, "target": targets}
    return json.dumps(doc, indent=2) + "\n"


# The first buildx whose bake reads a target's ``network`` from a bake file
# (docker/buildx#2671); older ones refuse it in --set and ignore it in files.
BAKE_NETWORK_SINCE = (0, 17)


def network_warning(project: Project, buildx: str | None) -> str | None:
    """Why bake on this buildx would miss the cache the export wrote, if it would.

    BuildKit puts the network mode in every RUN step's cache key; a bake
    that drops ``network`` builds with the default mode and matches nothing.
    """
    if not project.network or buildx is None:
        return None
    parts = [int(p) for p in buildx.lstrip("v").split("+")[0].split("-")[0].split(".")[:2] if p.isdigit()]
    if len(parts) == 2 and tuple(parts) < BAKE_NETWORK_SINCE:
        return (f"buildx {buildx}'s bake ignores a target's network: its RUN steps will not match the cache "
                f"offline.export wrote with --network {project.network}; build with offline.build, or use buildx "
                f"{'.'.join(map(str, BAKE_NETWORK_SINCE))}+")
    return None

"""``docker-bake.json`` from the project file, for teams on bake or remote builders.

Each service becomes a target with the same inputs offline-build uses:
the Dockerfile (the offline variant where APT is captured), the APT
captures and the store's base images as named contexts, the cache from the
store, and a cache export into the service's own folder. One folder per
target, because bake builds targets in parallel and two exports into one
local cache folder race on its temp files; ``offline.export`` merges them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import Project
from .plan import base_tag, cache_tag
from .store import Layout
from .workflow import Inputs, inputs


def target(project: Project, i: Inputs, oci_bases: bool) -> dict[str, Any]:
    contexts = dict(i.contexts)
    if oci_bases:
        contexts.update({b: f"oci-layout://{project.store}:{base_tag(b)}" for b in i.bases})
    spec: dict[str, Any] = {
        "context": str(i.service.context),
        "dockerfile": str(i.dockerfile),
        "tags": [f"{i.service.image}:{project.version}"],
        "cache-from": [f"type=local,src={project.store},tag={cache_tag(i.service.name)}"],
        "cache-to": [f"type=local,dest={project.cache_dir / '.work' / cache_tag(i.service.name)},"
                     f"mode=max,tag={cache_tag(i.service.name)}"],
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

"""Reading BuildKit's machine-readable progress (``--progress rawjson``).

Each line buildx prints is one JSON object whose ``vertexes`` carry the
build graph's nodes with ``cached``, ``started``, ``completed`` and
``error``. A vertex is reported many times as it progresses; the last word
on each digest wins. We judge "every step was CACHED" from these flags, never
from the human-readable log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# "[2/4] RUN ...", "[build 3/5] COPY ...": the Dockerfile's own steps. FROM
# lines resolve a base (never "cached") and [internal] vertices load context.
_STEP = re.compile(r"^\[(?:[^\]]*\s)?\d+/\d+\]\s+(?P<cmd>[A-Z]+)\b")


@dataclass
class Vertex:
    digest: str
    name: str = ""
    cached: bool = False
    completed: bool = False
    error: str | None = None


@dataclass
class BuildReport:
    """What BuildKit said about one build."""

    vertexes: dict[str, Vertex] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def feed(self, line: str) -> None:
        text = line.strip()
        if not text.startswith("{"):
            if text:
                self.other.append(text)
            return
        try:
            event = json.loads(text)
        except ValueError:
            self.other.append(text)
            return
        for raw in event.get("vertexes") or []:
            vertex = self.vertexes.setdefault(raw["digest"], Vertex(raw["digest"]))
            vertex.name = raw.get("name") or vertex.name
            vertex.cached = vertex.cached or bool(raw.get("cached"))
            vertex.completed = vertex.completed or bool(raw.get("completed"))
            vertex.error = raw.get("error") or vertex.error
        for log in event.get("logs") or []:
            self.logs.append(_decode(log.get("data", "")))

    def feed_all(self, lines: Iterable[str]) -> BuildReport:
        for line in lines:
            self.feed(line)
        return self

    @property
    def steps(self) -> list[Vertex]:
        """The Dockerfile's own steps (RUN, COPY, ...), FROM excluded."""
        out = []
        for v in self.vertexes.values():
            m = _STEP.match(v.name)
            if m and m.group("cmd") != "FROM":
                out.append(v)
        return sorted(out, key=lambda v: v.name)

    @property
    def cached(self) -> list[Vertex]:
        return [v for v in self.steps if v.cached]

    @property
    def ran(self) -> list[Vertex]:
        return [v for v in self.steps if not v.cached]

    @property
    def failed(self) -> Vertex | None:
        return next((v for v in self.vertexes.values() if v.error), None)

    def all_cached(self) -> bool:
        return bool(self.steps) and not self.ran


def _decode(data: str) -> str:
    import base64

    try:
        return base64.b64decode(data).decode("utf-8", "replace")
    except ValueError:
        return data

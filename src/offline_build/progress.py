"""Reading BuildKit's machine-readable progress (``--progress rawjson``).

buildx 0.13 prints a stream of pretty-printed JSON objects (one object spans
many lines), whose ``vertexes`` carry the build graph's nodes with
``cached``, ``started``, ``completed`` and ``error``. A vertex is reported many times as it progresses; the last word
on each digest wins. We judge "every step was CACHED" from these flags, never
from the human-readable log.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

# "[2/4] RUN ...", "[build 3/5] COPY ...": the Dockerfile's own steps. FROM
# lines resolve a base (never "cached") and [internal] vertices load context.
_DECODER = json.JSONDecoder()
_STEP = re.compile(r"^\[(?:[^\]]*\s)?\d+/\d+\]\s+(?P<cmd>[A-Z]+)\b")


@dataclass
class Vertex:
    digest: str
    name: str = ""
    cached: bool = False
    started: bool = False
    completed: bool = False
    error: str | None = None


@dataclass
class BuildReport:
    """What BuildKit said about one build."""

    vertexes: dict[str, Vertex] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    _buffer: str = ""
    _told: set[str] = field(default_factory=set)

    def feed(self, chunk: str) -> None:
        """Take any piece of the stream; complete objects are decoded as they close."""
        self._buffer += chunk
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return
            if not text.startswith("{"):
                # A line that is not JSON (a warning buildx printed): keep it.
                line, _, rest = text.partition("\n")
                if not _:
                    self._buffer = text
                    return
                self.other.append(line)
                self._buffer = rest
                continue
            try:
                event, end = _DECODER.raw_decode(text)
            except ValueError:
                self._buffer = text  # incomplete: wait for more
                return
            self._buffer = text[end:]
            self._event(event)

    def _event(self, event: dict) -> None:  # type: ignore[type-arg]
        for raw in event.get("vertexes") or []:
            vertex = self.vertexes.setdefault(raw["digest"], Vertex(raw["digest"]))
            vertex.name = raw.get("name") or vertex.name
            vertex.cached = vertex.cached or bool(raw.get("cached"))
            vertex.started = vertex.started or bool(raw.get("started"))
            vertex.completed = vertex.completed or bool(raw.get("completed"))
            vertex.error = raw.get("error") or vertex.error
        for log in event.get("logs") or []:
            self.logs.append(_decode(log.get("data", "")))

    def newly_done(self) -> list[Vertex]:
        """The Dockerfile steps that finished since the last call, in the order they finished being seen."""
        done = [v for v in self.steps if (v.completed or v.cached) and v.digest not in self._told]
        self._told.update(v.digest for v in done)
        return done

    @property
    def running(self) -> Vertex | None:
        """The step BuildKit is running now, if any (the last one started and not finished)."""
        return next((v for v in reversed(self.steps) if v.started and not v.completed and not v.cached), None)

    def close(self) -> BuildReport:
        """End of stream: whatever is left and not JSON is kept as text."""
        rest = self._buffer.strip()
        if rest:
            self.other.append(rest)
        self._buffer = ""
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
        # A cache that cannot be imported is an errored vertex too, but
        # BuildKit goes on without it: the build's failure is elsewhere.
        errored = [v for v in self.vertexes.values() if v.error]
        return next((v for v in errored if not v.name.startswith("importing cache manifest")),
                    errored[0] if errored else None)


def _decode(data: str) -> str:
    import base64

    try:
        return base64.b64decode(data).decode("utf-8", "replace")
    except ValueError:
        return data

"""The captures' names, in one place.

A capture's name is its bundle folder (``files/<name>/``), its key under
``captures:`` in the project file and the word reports use. The captures
themselves (``captures/``) take their names from here, and so do the modules
that must know them without importing every capture (the bundle's member
check, the project file's loader): one list, so a new capture is named once.
"""

from __future__ import annotations

APT = "apt"
PIP = "pip"
UV = "uv"
NPM = "npm"
YARN = "yarn"
PNPM = "pnpm"
MAVEN = "maven"
GO = "go"
REPLAY = "replay"

# Every capture, in the order they serve a step (APT first: it installs Python and Node; replay last:
# its proxy wraps whatever the others made of the step). captures.all_captures() follows it.
CAPTURES = (APT, PIP, UV, NPM, YARN, PNPM, MAVEN, GO, REPLAY)
# The ones the project file's ``captures:`` switches off (APT has its own ``apt.enabled``).
SWITCHABLE = tuple(name for name in CAPTURES if name != APT)

"""Platform names (``linux/arm64``), as this tool compares and names them: pure, no engine.

The captures name their per-platform folders after them, plans choose what
to build with them, and engine.py asks the engine which ones it runs.
"""

from __future__ import annotations

# Other names of docker's architectures: the machine's (uname -m), which arch() reads, and Debian's, which docker
# also takes; each with docker's own name, the one TARGETARCH and the capture folders use.
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm/v7", "i686": "386", "i386": "386",
          "armhf": "arm/v7", "armel": "arm/v6", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


# The architectures docker builds for: the OCI image spec's (as Go names them), each with the variants it takes.
# Any OS docker names (linux, windows, darwin, freebsd, wasi, ...) passes: only the architecture is checked.
KNOWN_ARCHES: dict[str, tuple[str, ...]] = {
    "amd64": ("v1", "v2", "v3", "v4"), "386": (), "arm": ("v5", "v6", "v7", "v8"), "arm64": ("v8",), "ppc64": (),
    "ppc64le": (), "mips": (), "mipsle": (), "mips64": (), "mips64le": (), "loong64": (), "riscv64": (),
    "s390x": (), "wasm": ()}
KNOWN_HINT = ("use an architecture docker builds for, e.g. linux/arm64: amd64 (v1-v4), 386, arm (v5, v6, v7, v8), "
              "arm64, ppc64, ppc64le, mips, mipsle, mips64, mips64le, loong64, riscv64, s390x, wasm (wasi/wasm)")


def platform_problem(platform: str) -> tuple[str, str] | None:
    """What is wrong with the architecture of *platform* (``os/arch[/variant]``) and its fix; None when docker
    names it so. An alias docker takes (x86_64) is refused too: folders and TARGETARCH use docker's own name."""
    os_, arch_, *variant = platform.split("/")
    if arch_ in ARCHES and arch_ not in KNOWN_ARCHES:
        return (f"architecture {arch_!r} is not docker's name for it",
                f"docker calls {arch_} {ARCHES[arch_]}: write {os_}/{ARCHES[arch_]}")
    if arch_ not in KNOWN_ARCHES:
        return f"unknown architecture {arch_!r}", KNOWN_HINT
    if variant and variant[0] not in KNOWN_ARCHES[arch_]:
        return f"unknown variant {variant[0]!r} of {arch_}", KNOWN_HINT
    return None


def arch() -> str:
    import platform

    machine = platform.machine().lower()
    return ARCHES.get(machine, machine).split("/")[0]  # the OCI architecture, without a variant


def runs_platform(wanted: str, available: tuple[str, ...]) -> bool:
    """Can a builder listing *available* run *wanted*? ``linux/amd64/v2`` covers ``linux/amd64``.

    A wanted variant needs that variant listed (``linux/arm/v7``); a wanted
    plain ``os/arch`` is met by any variant of it. ``arm64/v8`` is plain
    ``arm64``: the OCI spec makes v8 arm64's only variant, and engines write it either way.
    """
    wanted = normal_platform(wanted)
    for have in map(normal_platform, available):
        if have == wanted or (wanted.count("/") == 1 and have.startswith(wanted + "/")):
            return True
    return False


# BuildKit's own normalisation (containerd's platforms package): each spelling and the one it builds as.
# TARGETVARIANT follows the built one, so the capture folders (platform_dir) must too.
_NORMAL = {("arm64", "v8"): ("arm64",), ("amd64", "v1"): ("amd64",), ("arm",): ("arm", "v7")}


def normal_platform(text: str) -> str:
    """A platform as BuildKit builds it, compared and named here so: lowercase, ``arm64/v8`` and ``amd64/v1``
    plain, plain ``arm`` as ``arm/v7``."""
    os_, *rest = text.strip().lower().split("/")
    return "/".join((os_, *_NORMAL.get(tuple(rest), rest)))

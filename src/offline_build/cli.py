"""The ``offline-build`` console script: the same task tree as ``inv``, no tasks.py needed.

It takes exactly the task names ``inv`` shows (``offline-build offline.export``,
``offline-build backend.offline-build``). ``--config FILE`` picks the project
file; it is read before invoke parses anything, because the task tree itself
is generated from that file.
"""

from __future__ import annotations

import os
import sys

from invoke import Program

from . import __version__

# What a shell reports for a process that wrote into a closed pipe (128 + SIGPIPE).
BROKEN_PIPE = 141


def split_config(argv: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--config FILE`` / ``--config=FILE`` out of *argv* (before the first task)."""
    rest: list[str] = []
    config = None
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            config = next(args, None)
            if config is None:
                print("offline-build: --config needs a file name", file=sys.stderr)
                raise SystemExit(2)
        elif arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return config, rest


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    config, rest = split_config(argv[1:])
    from .tasks import project_namespace

    namespace = project_namespace(config or os.environ.get("OFFLINE_BUILD_CONFIG"))
    program = Program(namespace=namespace, version=__version__, name="offline-build",
                      binary="offline-build", binary_names=["offline-build"])
    try:
        try:
            program.run([argv[0], *rest])
        finally:
            sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe is a traceback
    except BrokenPipeError:
        # The reader went away (`offline-build --list | head -3`): nothing more to say to it.
        # Python flushes stdout again on the way out; point it at devnull so that stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(BROKEN_PIPE) from None


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``offline-build`` console script: the same task tree as ``inv``, no tasks.py needed.

It takes exactly the task names ``inv`` shows (``offline-build offline.export``,
``offline-build backend.offline-build``). ``--config FILE`` (or ``-f FILE``)
picks the project file; it is read before invoke parses anything, because
the task tree itself is generated from that file. invoke's own ``-f``
(a runtime configuration file for invoke) has no use here, so the flag has
one meaning, and ``--help`` says which.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from invoke import Collection, Exit, ParseError, Program
from invoke.parser import Argument

from . import __version__
from .errors import ConfigError

CONFIG_FLAGS = ("--config", "-f")
CONFIG_HELP = "The project file (default: ./offline.yaml, or OFFLINE_BUILD_CONFIG)."
# What a shell reports for a process that wrote into a closed pipe (128 + SIGPIPE).
BROKEN_PIPE = 141
# invoke's core flags that steer its own shell commands (c.run), sudo prompt and .pyc writing.
# No offline-build task runs a shell command through invoke, so each would be accepted and
# ignored (``-R`` says "Echo commands instead of running" and a task still writes): not offered,
# the parser refuses them as unknown.
PARSE_FIX = "offline-build --list shows the tasks, offline-build --help TASK the flags a task takes"
NOT_OFFERED = ("command-timeout", "dry", "echo", "hide", "prompt-for-sudo-password", "pty", "warn-only", "write-pyc")


def split_config(argv: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--config FILE`` / ``--config=FILE`` / ``-f FILE`` / ``-f=FILE`` / ``-fFILE`` out of *argv*."""
    rest: list[str] = []
    config = None
    args = iter(argv)
    for arg in args:
        if arg in CONFIG_FLAGS:
            config = next(args, None)
            if config is None:
                print(f"offline-build: {arg} needs a file name", file=sys.stderr)
                raise SystemExit(2)
        elif arg.startswith(tuple(f"{flag}=" for flag in CONFIG_FLAGS)):
            config = arg.split("=", 1)[1]
        elif arg.startswith("-f") and len(arg) > 2:  # -fFILE, as getopt reads it
            config = arg[2:]
        else:
            rest.append(arg)
    if config == "":  # --config "$UNSET": the default file would be read without a word
        print("offline-build: error: --config is empty\n  fix: give the project file's path, or leave the flag out",
              file=sys.stderr)
        raise SystemExit(2)
    return config, rest


class OfflineBuild(Program):
    """invoke's Program, with ``--config``/``-f`` as the project file and a life outside a project.

    *missing* is why the project's tasks are absent (no project file here):
    help, version and the tasks that need no project still run; asking for
    any other task, or for the task list, says what is missing (exit 2).
    """

    def __init__(self, namespace: Collection, missing: ConfigError | None = None) -> None:
        super().__init__(namespace=namespace, version=__version__, name="offline-build",
                         binary="offline-build", binary_names=["offline-build"])
        self.missing = missing

    def core_args(self) -> list[Argument]:
        # split_config has taken the flag out before invoke parses; this entry is its help line.
        ours = Argument(names=("config", "f"), help=CONFIG_HELP)
        return [ours, *(a for a in super().core_args() if a.name != "config" and a.name not in NOT_OFFERED)]

    def parse_core_args(self) -> None:
        super().parse_core_args()
        # invoke's own steps still read the flags not offered (update_config, parse_core):
        # they find them unset, as if never given.
        for arg in super().core_args():
            if arg.name in NOT_OFFERED:
                self.core[0].args[arg.name] = arg

    def parse_core(self, argv: list[str] | None) -> None:
        with _usage():
            super().parse_core(argv)

    def parse_collection(self) -> None:
        if self.args.config.value is not None:
            # Only a form split_config does not take reaches here (-df FILE): invoke would
            # read FILE as its own runtime configuration, silently.
            raise Exit(f"offline-build: error: -f {self.args.config.value} was not read as the project file\n"
                       "  fix: give it on its own: --config FILE or -f FILE", code=2)
        super().parse_collection()

    def parse_tasks(self) -> None:
        if self.missing is not None:
            asked = next((a for a in self.core.unparsed if not a.startswith("-")), None)
            if asked is not None and asked not in self.collection.task_names:
                self._no_project()
        with _usage():
            super().parse_tasks()

    def parse_cleanup(self) -> None:
        if self.missing is not None:
            wanted = self.args.help.value
            if self.args.list.value or (isinstance(wanted, str) and wanted not in self.parser.contexts):
                self._no_project()
        with _usage():
            super().parse_cleanup()

    def print_help(self) -> None:
        super().print_help()
        if self.missing is not None:
            print(f"No project file here ({self.missing.path}): only the tasks above work.\n"
                  "A project's tasks (offline.export, offline.setup, <service>.offline-build, ...)\n"
                  "appear where an offline.yaml is, or with --config FILE.")

    def _no_project(self) -> None:
        from .tasks import config_message

        assert self.missing is not None
        raise Exit(config_message(self.missing), code=self.missing.exit_code)


@contextmanager
def _usage() -> Iterator[None]:
    """invoke's parse errors ("No idea what 'x' is!") with the way out, exit 2 as for any usage error."""
    try:
        yield
    except ParseError as exc:
        raise Exit(f"offline-build: error: {exc}\n  fix: {PARSE_FIX}", code=2) from None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    config, rest = split_config(argv[1:])
    from .tasks import cli_namespace

    namespace, missing = cli_namespace(config)
    try:
        try:
            OfflineBuild(namespace, missing).run([argv[0], *rest])
        finally:
            sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe is a traceback
    except BrokenPipeError:
        # The reader went away (`offline-build --list | head -3`): nothing more to say to it.
        # Python flushes stdout again on the way out; point it at devnull so that stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(BROKEN_PIPE) from None


if __name__ == "__main__":  # pragma: no cover
    main()

"""One error type for everything offline-build knows how to fail at.

Every known failure is an :class:`OfflineBuildError` carrying the problem and
the fix, so the task boundary can print one clean message and exit non-zero
instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class OfflineBuildError(Exception):
    """A failure the user can act on: *message* names the problem, *hint* the fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


class ConfigError(OfflineBuildError):
    """The project file is wrong; carries file, line, column and key path, and always the fix."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: Path | str,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
        hint: str,
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        self.key = key
        where = str(path)
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        prefix = f"{where}: "
        if key:
            prefix += f"{key}: "
        super().__init__(prefix + message, hint)


class DockerfileError(OfflineBuildError):
    """A Dockerfile could not be read or parsed."""

    exit_code = 2


class StepError(OfflineBuildError):
    """A planned step failed while running; carries the step and the engine's words."""

    def __init__(self, step: str, message: str, hint: str | None = None) -> None:
        self.step = step
        super().__init__(f"{step}: {message}", hint)


class EngineError(OfflineBuildError):
    """The Docker engine is unreachable or cannot do what the plan needs."""

"""Retries: only where a second try can help, and always said out loud.

A dropped engine connection or a server's bad moment is retried (tenacity,
three tries, exponential wait); a Dockerfile error, a failing ``RUN`` or a
4xx answer is not: it would fail the same way again. Each retry prints one
line on stderr, which is also how a caller (or a test) sees it happen.
"""

from __future__ import annotations

import sys
import urllib.error

from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, wait_exponential

from .errors import StepError

# Engine errors worth a second try: the connection, not the build, failed.
TRANSIENT = ("connection reset", "broken pipe", "unexpected eof", ": eof", "connection refused",
             "cannot connect to the docker daemon", "i/o timeout", "tls handshake timeout",
             "context deadline exceeded", "error reading from server", "transport is closing")
# A step that ran and failed is the build's own failure, whatever else was said.
DETERMINISTIC = ("did not complete successfully", "dockerfile parse error", "failed to compute cache key",
                 "not found", "no such file")


class TransientError(StepError):
    """A failure of the connection to the engine, not of the build: worth another try."""


def is_transient(text: str) -> bool:
    lowered = text.lower()
    return any(m in lowered for m in TRANSIENT) and not any(m in lowered for m in DETERMINISTIC)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500  # a server's bad moment; 4xx will not change
    return isinstance(exc, (ConnectionError, TimeoutError, urllib.error.URLError))


def _announce(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    line = f"retry {state.attempt_number}/2 in {state.next_action.sleep if state.next_action else 0:.0f}s: {exc}"
    print(f"offline-build: {line.splitlines()[0]}", file=sys.stderr, flush=True)


retrying = retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(3),
                 wait=wait_exponential(multiplier=1, min=1, max=8), reraise=True, before_sleep=_announce)

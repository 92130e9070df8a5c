"""The package's error hierarchy; each class carries the process exit code it maps to."""

from __future__ import annotations

from enum import IntEnum

from reconcile.faults import fault


class ExitCode(IntEnum):
    OK = 0
    FINDINGS = 1
    BAD_INPUT = 2
    REFUSED = 3
    INTERNAL = 70
    INTERRUPTED = 130


class ReconcileError(Exception):
    """Base class: a problem the user can fix. The message is shown as is, one line per problem."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class BadInput(ReconcileError):
    """A file, YAML document, URL, mapping or option the tool cannot use."""


class Refused(ReconcileError):
    """The tool refused to write (stale plan, no --yes)."""

    exit_code = ExitCode.REFUSED


class Interrupted(ReconcileError):
    """Ctrl-C after something was written: the message says what was (batches, files, runs)."""

    exit_code = ExitCode.INTERRUPTED


# What this process wrote so far (files, audit runs, batches), for an honest message when Ctrl-C stops
# it: the CLI empties it before each command and names its items after an interruption.
WRITTEN: list[str] = []


def wrote(what: str) -> None:
    WRITTEN.append(what)
    fault("wrote", len(WRITTEN))


def collect(problems: list[str], summary: str) -> None:
    """Raise one BadInput holding every collected problem, if there are any."""
    if problems:
        raise BadInput(summary if len(problems) > 1 else problems[0], problems)

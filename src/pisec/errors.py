"""Errors a user can cause. The CLI turns each into one line on stderr."""

from __future__ import annotations


class PisecError(Exception):
    """An input or usage problem: exit code 2, `pisec: error: <what>: <why>`."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")
        self.what = what
        self.why = why


EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2

"""Why a file cannot be verified at all, said without naming how the caller asked for it."""

from __future__ import annotations

from enum import Enum


class ContentFault(Enum):
    """What is wrong with the signed content given, or not given, beside a signature.

    Each value is the message's form for a caller with no words of its own: a front end (the
    CLI's ``--detached``) formats ``VerifyError.problem`` into its own advice instead."""

    MISSING = "{problem}: give the signed file as well"
    UNEXPECTED = "{problem}: give no separate signed file"
    NOT_FOUND = "signed file {problem}"


class VerifyError(Exception):
    """The file cannot be verified at all (unreadable, unknown format, signed content missing
    or not wanted); ``problem`` says what, ``fault`` whether the signed content is at fault."""

    def __init__(self, problem: str, fault: ContentFault | None = None) -> None:
        self.problem = problem
        self.fault = fault
        super().__init__(fault.value.format(problem=problem) if fault else problem)


def short(exc: BaseException) -> str:
    """The first line of an exception's message (or its class name), at most 300 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]

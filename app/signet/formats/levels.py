"""Baseline signature levels (ETSI EN 319 1x2): B-B, B-T, B-LT, B-LTA."""

from __future__ import annotations

import enum

from signet.formats.errors import FormatError


class Level(enum.Enum):
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"

    @property
    def rank(self) -> int:
        return list(Level).index(self)

    def at_least(self, other: Level) -> bool:
        return self.rank >= other.rank


def parse_level(value: str | Level) -> Level:
    """Accept ``B-LT``, ``b_lt``, ``AdES-B-LT`` or CSC's ``Ades-B-LT``."""
    if isinstance(value, Level):
        return value
    text = value.strip().upper().replace("_", "-")
    if text.startswith("ADES-"):
        text = text[len("ADES-") :]
    for level in Level:
        if level.value == text:
            return level
    raise FormatError(f"unknown signature level {value!r}; use B-B, B-T, B-LT or B-LTA")

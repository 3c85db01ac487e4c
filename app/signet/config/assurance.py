"""Assurance policy settings, `[assurance]`: the policies credentials may carry (the level and
number of factor kinds their signatures need) and the one new credentials get by default.

Three policies are built in and cannot be redefined: `basic` (one factor), `advanced` (two of
different kinds) and `qualified` (two of different kinds reaching eIDAS substantial and NIST AAL2,
what a qualified signature's sole control calls for). `docs/assurance.md` gives the rationale."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EIDAS_LEVELS = ("low", "substantial", "high")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class PolicySettings(BaseModel):
    """What an authorization must reach for a credential's signatures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # eIDAS level of assurance (Implementing Regulation (EU) 2015/1502), lowest accepted.
    eidas: Literal["low", "substantial", "high"] = "low"
    # Distinct factor kinds (knowledge, possession, inherence), login and authorization together.
    factors: int = Field(default=1, ge=1, le=3)
    # NIST SP 800-63B authenticator assurance level, lowest accepted.
    aal: int = Field(default=1, ge=1, le=3)
    description: str = ""


BUILTIN_POLICIES: dict[str, PolicySettings] = {
    "basic": PolicySettings(
        eidas="low", factors=1, aal=1, description="one factor: the signer's own key, her approval"
    ),
    "advanced": PolicySettings(
        eidas="low", factors=2, aal=1, description="two factors of different kinds"
    ),
    "qualified": PolicySettings(
        eidas="substantial",
        factors=2,
        aal=2,
        description="two factors of different kinds, eIDAS substantial and NIST AAL2 or above "
        "(qualified signatures: sole control)",
    ),
}


class AssuranceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The policy a credential gets when its creator names none.
    default_policy: str = "advanced"
    # Policies of the site's own, [assurance.policies.<name>], beside the built-in ones.
    policies: dict[str, PolicySettings] = Field(default_factory=dict)

    @field_validator("policies")
    @classmethod
    def _names(cls, policies: dict[str, PolicySettings]) -> dict[str, PolicySettings]:
        for name in policies:
            if name in BUILTIN_POLICIES:
                raise ValueError(f"{name!r} is a built-in policy and cannot be redefined")
            if not _NAME.match(name):
                raise ValueError(
                    f"policy name {name!r}: lower-case letters, digits, - and _, at most 32"
                )
        return policies

    @model_validator(mode="after")
    def _default_known(self) -> AssuranceSettings:
        if self.default_policy not in self.all_policies():
            raise ValueError(
                f"default_policy {self.default_policy!r} names no policy; use one of "
                + ", ".join(sorted(self.all_policies()))
            )
        return self

    def all_policies(self) -> dict[str, PolicySettings]:
        return {**BUILTIN_POLICIES, **self.policies}

    def policy(self, name: str) -> PolicySettings | None:
        return self.all_policies().get(name)

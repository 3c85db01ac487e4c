"""Use cases: each ties auth, sam, pki, formats and events together for one operation."""

from signet.signing.context import Services

__all__ = ["Services"]

"""The configuration's errors: invalid, or missing altogether."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting."""


class ConfigMissing(ConfigError):
    """There is no configuration at all: no file, and no database named in the environment."""

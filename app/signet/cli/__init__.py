"""The `signet` command."""

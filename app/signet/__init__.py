"""Signet: a remote signing engine (CSC API v2, keys in an HSM, a Signature Activation Module)."""

"""RFC 3161 time-stamp tokens on request (CSC signatures/timestamp), with the client's nonce,
and the check that a TSA answers before a signature that needs it is made."""

from __future__ import annotations

import asyncio
import secrets

from asn1crypto import cms, tsp

from signet.algorithms import HASHES
from signet.formats.errors import FormatError, ServiceError
from signet.formats.services import SignetTimeStamper, TsaConfig


async def async_timestamp_token(
    config: TsaConfig, digest: bytes, hash_name: str, nonce: int | None = None
) -> cms.ContentInfo:
    """Ask the TSA to time-stamp `digest`; check the answer covers it (imprint and nonce)."""
    known = HASHES.get(hash_name)
    if known is None:
        raise FormatError(f"unsupported hash {hash_name!r}; use one of {', '.join(HASHES)}")
    if known.length != len(digest):
        raise FormatError(f"a {hash_name} hash has {known.length} bytes, got {len(digest)}")
    nonce = secrets.randbits(63) if nonce is None else nonce
    request = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": hash_name},
                "hashed_message": digest,
            },
            "nonce": nonce,
            "cert_req": True,
        }
    )
    stamper = SignetTimeStamper(config)
    response = await stamper.async_request_tsa_response(request)
    status = response["status"]["status"].native
    if status not in ("granted", "granted_with_mods"):
        text = response["status"]["status_string"].native
        raise ServiceError("tsa", config.url, f"the TSA refused: {status} {text or ''}".strip())
    token = response["time_stamp_token"]
    info = token["content"]["encap_content_info"]["content"].parsed
    if info["message_imprint"]["hashed_message"].native != digest or info["nonce"].native != nonce:
        raise ServiceError(
            "tsa", config.url, "the token does not cover the request (imprint or nonce differs)"
        )
    return token


def timestamp_token(
    config: TsaConfig, digest: bytes, hash_name: str, nonce: int | None = None
) -> bytes:
    """Synchronous wrapper: the DER TimeStampToken."""
    return asyncio.run(async_timestamp_token(config, digest, hash_name, nonce)).dump()


def check_tsa(config: TsaConfig, hash_name: str = "sha256") -> None:
    """Ask the TSA for a token over a random digest: a signature from B-T up is time-stamped
    only after the key has signed, so whoever spends a SAD (or an OTP) on one asks this first.
    ServiceError, naming the TSA, when it does not answer with a token."""
    digest = secrets.token_bytes(HASHES[hash_name].length)
    asyncio.run(async_timestamp_token(config, digest, hash_name))

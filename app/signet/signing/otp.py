"""One-time codes bound to one authorization request: the request's checked, canonical form,
the HSM verifier the SAM computes for a code, and the e-mail that shows what the code approves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from signet.auth.factors import CodeTerms, CodeVerifier
from signet.errors import InvalidRequest
from signet.hsm import Hsm
from signet.sam import codes
from signet.store import User

MAX_LABELS, MAX_LABEL_LENGTH, MAX_DESCRIPTION_LENGTH = 100, 256, 500


def signing_request(
    *,
    hashes: Sequence[str],
    hash_oid: str | None,
    num_signatures: int,
    description: str | None,
    labels: Sequence[str],
) -> codes.Request:
    """The authorization request a one-time code approves, checked and in canonical form."""
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidRequest(
            f"Invalid parameter description: at most {MAX_DESCRIPTION_LENGTH} characters"
        )
    if len(labels) > MAX_LABELS or not all(
        isinstance(v, str) and 0 < len(v) <= MAX_LABEL_LENGTH for v in labels
    ):
        raise InvalidRequest(
            f"Invalid parameter signet_labels: at most {MAX_LABELS} document "
            f"names of 1 to {MAX_LABEL_LENGTH} characters"
        )
    return codes.Request.of(
        hashes=hashes,
        hash_algorithm=hash_oid,
        num_signatures=num_signatures,
        description=description,
        labels=labels,
    )


def code_verifier(hsm: Hsm) -> CodeVerifier:
    """The verifier `auth.factors` compares codes with: computed by the SAM in the HSM."""

    def verifier(terms: CodeTerms, code: str) -> str:
        return codes.otp_verifier(
            hsm, terms.credential_id, terms.purpose, terms.binding, terms.expires, code
        )

    return verifier


def otp_address(credential: Any, user: User) -> str | None:
    """Where the credential's one-time codes go: the one place that decides it. The address
    is the one sealed in the credential's record when it was enrolled (a `users.email`
    changed by anyone afterwards redirects nothing)."""
    return credential.activation_address or None


def lifetime_text(seconds: int) -> str:
    """A lifetime as people say it: "30 seconds", "2 minutes", "1 minute 30 seconds"."""
    minutes, rest = divmod(seconds, 60)
    parts = [
        f"{n} {unit}{'' if n == 1 else 's'}"
        for n, unit in ((minutes, "minute"), (rest, "second"))
        if n
    ]
    return " ".join(parts) or "0 seconds"


def _hash_title(hash_name: str | None) -> str:
    return hash_name.upper().replace("SHA", "SHA-") if hash_name else "(algorithm not named)"


def otp_message(
    *,
    name: str,
    credential_id: str,
    code: str,
    lifetime: int,
    request: codes.Request | None,
    hash_name: str | None,
) -> tuple[str, str]:
    """(Subject, body) of the code's e-mail. The subject never carries the code (it shows in
    notifications and lock screens); the body says what the code approves."""
    if request is None:
        subject = "Your signing code"
        approves = (
            "This code is not tied to a request yet (your signing application did not "
            "say what it will sign): it approves the first signing request that uses "
            "it, whatever that request is.\n"
        )
    else:
        plural = "" if request.num_signatures == 1 else "s"
        subject = f"Your signing code for {request.num_signatures} signature{plural}"
        documents = ", ".join(request.labels) if request.labels else "(none named)"
        description = f"    Description: {request.description}\n" if request.description else ""
        approves = (
            "It approves exactly this request, and no other:\n\n"
            f"    Documents:   {documents}\n{description}"
            f"    Signatures:  {request.num_signatures}\n"
            f"    Hashes:      {len(request.hashes)} {_hash_title(hash_name)}, "
            f"fingerprint {request.fingerprint()}\n\n"
            "Compare the fingerprint with the one your signing application shows.\n"
        )
    body = (
        f"Hello {name},\n\nyour one-time code to authorise a signature with credential "
        f"{credential_id} is\n\n    {code}\n\n{approves}\nIt is valid for "
        f"{lifetime_text(lifetime)} and can be used once. If you did not ask for it, do not "
        "share it and tell your administrator.\n"
    )
    return subject, body

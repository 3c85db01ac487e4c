"""The Signature Activation Module (after CEN EN 419 241-2): SAD that only the SAM can mint,
verified against sealed records and spent atomically, and the only path to HSM signing.

Trust rests on the SAM's keys in the HSM (`signet.sam.keys`), never on rows: a SAD carries
its binding (user, credential and its epoch, the exact hashes as a multiset, hash algorithm,
count, expiry, a nonce) under a MAC; a credential record is sealed; the database keeps only
what nodes must share — how many signatures a SAD has left, and which hashes it has signed.

The caller (`signet.signing`) owns the transaction: it asks `open_permit` to verify and spend
a SAD, then signs through the `Permit` it gets back, and writes the audit trail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from signet.errors import AccessDenied, InvalidRequest
from signet.events import append_event
from signet.hsm import Hsm
from signet.sam import keys
from signet.sam.seals import (
    RefreshClaims,
    SadBinding,
    TokenClaims,
    client_intact,
    client_seal,
    credential_intact,
    credential_seal,
    mint_grant,
    mint_refresh_token,
    mint_sad,
    mint_token,
    open_grant,
    open_refresh_token,
    open_sad,
    open_token,
)
from signet.store import Direct, SignatureActivation

__all__ = [
    "IntegrityViolation",
    "Permit",
    "RefreshClaims",
    "SadBinding",
    "TokenClaims",
    "check_credential",
    "client_intact",
    "client_seal",
    "credential_seal",
    "decode_hash",
    "extend_sad",
    "issue_sad",
    "mint_grant",
    "mint_refresh_token",
    "mint_token",
    "open_grant",
    "open_permit",
    "open_refresh_token",
    "open_token",
    "pin_matches",
    "pin_verifier",
    "prepare_pin_key",
    "refund",
    "sad_binding",
    "void_sad",
]


class IntegrityViolation(AccessDenied):
    """A record the SAM relies on was not written by it (forged or edited in the database)."""

    event = "integrity.violation"


def _sad_digest(sad: str) -> str:
    return hashlib.sha256(sad.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def decode_hash(value: str) -> bytes:
    try:
        padded = value + "=" * (-len(value) % 4)
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (ValueError, TypeError):
        raise InvalidRequest(f"Invalid base64 hash value {value[:60]!r}") from None


def _normal(digest: bytes) -> str:
    """Canonical form of a hash (clients mix standard and URL-safe base64 alphabets)."""
    return base64.b64encode(digest).decode()


def check_credential(hsm: Hsm, credential: Any) -> None:
    """Refuse a credential record whose sealed fields the SAM did not write."""
    if not credential_intact(hsm, credential):
        raise IntegrityViolation(
            f"The record of credential {credential.id} fails its "
            "integrity check (not written by the SAM); it cannot sign"
        )


_SADS = cast(Table, SignatureActivation.__table__)
# Built once (see signet.events.audit): the signing and authorize paths run them.
_INSERT_SAD = insert(_SADS)
_SAD_ROW = select(_SADS.c.id, _SADS.c.remaining, _SADS.c.spent).where(
    _SADS.c.sad_hash == bindparam("sad_digest")
)
# Take `count` from the SAD's count and add the hashes to its spent markers in one statement:
# concurrent workers and nodes queue on the row, so none can go past the count, and the
# markers returned are all that was ever spent, ours included.
_SPEND = (
    update(_SADS)
    .where(_SADS.c.sad_hash == bindparam("sad_digest"), _SADS.c.remaining >= bindparam("count"))
    .values(
        remaining=_SADS.c.remaining - bindparam("count"),
        spent=_SADS.c.spent.concat(bindparam("added")),
    )
    .returning(_SADS.c.id, _SADS.c.spent)
)
_SPEND_DIRECT = Direct(_SPEND)


def issue_sad(
    session: Session,
    hsm: Hsm,
    *,
    user_id: int,
    username: str,
    credential: Any,
    hashes: Sequence[str],
    hash_oid: str | None,
    count: int,
    lifetime_seconds: int,
    assurance: Mapping[str, Any] | None = None,
) -> tuple[str, int]:
    """Mint SAD for exactly these hashes on a credential the caller has checked (intact,
    owned, usable); return (SAD, seconds it is valid). `assurance` (the level the
    authorization reached) goes into its audit record."""
    normal = [_normal(decode_hash(h)) for h in hashes]
    sad, binding = mint_sad(
        hsm,
        user_id=user_id,
        credential_id=credential.id,
        epoch=credential.epoch,
        hash_oid=hash_oid,
        hashes=normal,
        count=count,
        lifetime=lifetime_seconds,
        scal=credential.scal,
    )
    _store(session, sad, binding)
    append_event(
        session,
        "credential.authorized",
        actor=username,
        subject=credential.id,
        num_signatures=count,
        hash_algorithm=hash_oid,
        hashes=normal,
        scal=credential.scal,
        expires_in=lifetime_seconds,
        sad=binding.nonce,
        **(assurance or {}),
    )
    return sad, lifetime_seconds


def _store(
    session: Session, sad: str, binding: SadBinding, remaining: int | None = None, spent: str = ""
) -> None:
    stamp = _now()
    session.connection().execute(
        _INSERT_SAD,
        {
            "sad_hash": _sad_digest(sad),
            "user_id": binding.user_id,
            "credential_id": binding.credential_id,
            "hash_algorithm": binding.hash_oid,
            "hashes": "\n".join(binding.hashes),
            "num_signatures": binding.count,
            "remaining": binding.count if remaining is None else remaining,
            "spent": spent,
            "scal": binding.scal,
            "created_at": stamp,
            "expires_at": datetime.fromtimestamp(binding.expires_at, UTC),
        },
    )


def sad_binding(hsm: Hsm, sad: str, *, user_id: int, credential: Any) -> SadBinding:
    """The binding of a SAD minted by this SAM for this user's use of this credential as it
    is now (intact, active, unlocked, in the same epoch), and not expired; else the reason."""
    binding = open_sad(hsm, sad)
    if binding.user_id != user_id or binding.credential_id != credential.id:
        # Another user's or another credential's SAD is, to this caller, no SAD at all.
        raise InvalidRequest("Invalid parameter SAD")
    check_credential(hsm, credential)
    if credential.status != "active":
        raise InvalidRequest(f"The credential is {credential.status}")
    if credential.locked:
        raise AccessDenied(
            "The credential is locked after too many failed tries; "
            "ask an administrator to unlock it"
        )
    if binding.epoch != credential.epoch:
        raise InvalidRequest(
            "SAD issued before the credential was disabled; authorize the credential again"
        )
    if binding.expires_at <= time.time():
        raise InvalidRequest("SAD expired; authorize the credential again")
    return binding


def _covered(binding: SadBinding, spent: list[str], request: list[str]) -> str | None:
    """None if the hashes spent so far, this request's included, are within the SAD's
    multiset; else the first hash over its share."""
    if not binding.hashes:
        return None
    allowed, used = Counter(binding.hashes), Counter(spent)
    for value in request:
        if used[value] > allowed[value]:
            return value
    return None


class Permit:
    """Leave to make HSM signatures with one key after a SAD was verified and spent:
    `digests` given, exactly those (each as often as it was spent); else `count` of any
    digest (signDoc, whose signed attributes embed the document digests the SAD covers)."""

    def __init__(
        self,
        hsm: Hsm,
        key_label: str,
        sad_id: int,
        spent: list[str],
        digests: Sequence[bytes] | None,
        count: int,
    ) -> None:
        self._hsm, self._key_label = hsm, key_label
        self.sad_id, self.spent = sad_id, spent  # spent: this permit's hashes, canonical
        self._digests = Counter(digests) if digests is not None else None
        self.allowed, self.used = count, 0

    def sign(
        self, digest: bytes, hash_name: str, scheme: str, salt_length: int | None = None
    ) -> bytes:
        if self.used >= self.allowed:
            raise InvalidRequest("numSignatures exceeded: the SAD covers no more signatures")
        if self._digests is not None and self._digests[digest] <= 0:
            raise InvalidRequest("Hash not authorized by the SAD")
        signature = self._hsm.sign_digest(self._key_label, digest, hash_name, scheme, salt_length)
        if self._digests is not None:
            self._digests[digest] -= 1
        self.used += 1
        return signature

    @property
    def unused(self) -> list[str]:
        """Spent markers of the signatures this permit did not make (to give back)."""
        return (
            self.spent[self.used :]
            if self._digests is None
            else [_normal(d) for d, left in self._digests.items() for _ in range(left)]
        )


def open_permit(
    conn: Connection,
    hsm: Hsm,
    *,
    sad: str,
    user_id: int,
    credential: Any,
    hash_oid: str,
    digests: Sequence[bytes],
    exact: bool,
) -> Permit:
    """Verify the SAD for these digests (in `hash_oid`) and spend one signature for each in
    `conn`'s transaction; until it commits, the SAD's row stays locked. `exact`: the
    permit signs exactly these digests (signHash); else one signature per digest (signDoc)."""
    binding = sad_binding(hsm, sad, user_id=user_id, credential=credential)
    if binding.hash_oid and binding.hash_oid != hash_oid:
        raise InvalidRequest("The hash algorithm differs from the one the SAD was authorized for")
    request = [_normal(d) for d in digests]
    if binding.hashes or binding.scal == "2":
        bound = set(binding.hashes)
        unbound = [h for h in request if h not in bound]
        if unbound:
            raise InvalidRequest(f"Hash not authorized by the SAD: {unbound[0][:60]}")
    count = len(request)
    digest = _sad_digest(sad)
    row = _SPEND_DIRECT.first(
        conn, {"sad_digest": digest, "count": count, "added": "".join(h + "\n" for h in request)}
    )
    if row is None:
        if conn.execute(_SAD_ROW, {"sad_digest": digest}).first():
            raise InvalidRequest(
                f"numSignatures exceeded: the SAD does not cover {count} more signature(s)"
            )
        raise InvalidRequest("SAD unknown here (its record is gone); authorize again")
    spent = row.spent.splitlines()
    if len(spent) > binding.count:
        raise InvalidRequest(
            f"numSignatures exceeded: the SAD does not cover {count} more signature(s)"
        )
    over = _covered(binding, spent, request)
    if over is not None:
        raise InvalidRequest(
            f"Hash already signed under this SAD as often as it was authorized: {over[:60]}"
        )
    return Permit(
        hsm, credential.key_label, int(row.id), request, list(digests) if exact else None, count
    )


def refund(conn: Connection, permit: Permit) -> int:
    """Give back what a permit did not sign (an HSM failure, a document that failed):
    the count and one spent marker per unsigned hash. Returns how many."""
    unused = permit.unused
    if not unused:
        return 0
    row = conn.execute(
        select(_SADS.c.spent).where(_SADS.c.id == permit.sad_id).with_for_update()
    ).first()
    if row is None:
        return 0
    left = row.spent.splitlines()
    for value in unused:
        if value in left:
            left.reverse()
            left.remove(value)  # the newest occurrence
            left.reverse()
    conn.execute(
        update(_SADS)
        .where(_SADS.c.id == permit.sad_id)
        .values(remaining=_SADS.c.remaining + len(unused), spent="".join(h + "\n" for h in left))
    )
    permit.allowed = permit.used
    return len(unused)


def void_sad(session: Session, sad: str) -> bool:
    """Leave a SAD no signature to give (its token revoked, its code replayed); True if it
    had some left."""
    done = session.connection().execute(
        update(_SADS)
        .where(_SADS.c.sad_hash == _sad_digest(sad), _SADS.c.remaining > 0)
        .values(remaining=0)
    )
    return bool(done.rowcount)


def extend_sad(
    session: Session,
    hsm: Hsm,
    *,
    sad: str,
    user_id: int,
    username: str,
    credential: Any,
    lifetime_seconds: int,
    hashes: Sequence[str] = (),
    hash_oid: str | None = None,
) -> tuple[str, int]:
    """Replace a still valid SAD by a new one for what is left of its count. Without
    `hashes`, with the same binding and spent markers (never at SCAL2). With them (the
    multi-call flow of SCAL2), bound to exactly those hashes, in the SAD's hash algorithm,
    for the signatures it has left: the old hashes cannot be signed under it."""
    binding = sad_binding(hsm, sad, user_id=user_id, credential=credential)
    if binding.scal == "2" and not hashes:
        raise InvalidRequest(
            "Missing parameter hashes: the credential is SCAL2, and the "
            "extended SAD is bound to the hashes to sign with it"
        )
    if hash_oid and binding.hash_oid and hash_oid != binding.hash_oid:
        raise InvalidRequest(
            "Invalid parameter hashAlgorithmOID: it differs from the one the SAD was authorized for"
        )
    normal = [_normal(decode_hash(h)) for h in hashes]
    conn = session.connection()
    row = conn.execute(
        update(_SADS)
        .where(_SADS.c.sad_hash == _sad_digest(sad), _SADS.c.remaining > 0)
        .values(remaining=0)
        .returning(_SADS.c.spent)
    ).first()
    if row is None:
        raise InvalidRequest("SAD already spent")
    spent = row.spent.splitlines()
    remaining = binding.count - len(spent)
    if remaining <= 0:
        raise InvalidRequest("SAD already spent")
    if len(normal) > remaining:
        raise InvalidRequest(
            f"Invalid parameter hashes: {len(normal)} hashes, and the SAD "
            f"has {remaining} signature(s) left"
        )
    if normal:  # a fresh binding: these hashes, the count left, nothing spent under it yet
        new, renewed = mint_sad(
            hsm,
            user_id=user_id,
            credential_id=credential.id,
            epoch=binding.epoch,
            hash_oid=binding.hash_oid or hash_oid,
            hashes=normal,
            count=remaining,
            lifetime=lifetime_seconds,
            scal=binding.scal,
        )
        _store(session, new, renewed)
    else:
        new, renewed = mint_sad(
            hsm,
            user_id=user_id,
            credential_id=credential.id,
            epoch=binding.epoch,
            hash_oid=binding.hash_oid,
            hashes=binding.hashes,
            count=binding.count,
            lifetime=lifetime_seconds,
            scal=binding.scal,
        )
        _store(session, new, renewed, remaining=remaining, spent=row.spent)
    append_event(
        session,
        "sad.extended",
        actor=username,
        subject=credential.id,
        remaining=remaining,
        expires_in=lifetime_seconds,
        sad=renewed.nonce,
        replaces=binding.nonce,
        hashes=normal or None,
    )
    return new, lifetime_seconds


# PIN verifiers are HMAC-SHA-256 under a secret key that never leaves the HSM: a copy of the
# database gives nothing to guess PINs against offline (a 5-digit PIN falls to any password
# hash in minutes), and checking one costs a fast HSM call, not a memory-hard hash.
_PIN_SCHEME = "hsm-hmac-sha256$"


def prepare_pin_key(hsm: Hsm) -> bool:
    """Create the PIN-verifier key in the token if it is missing; True if created now."""
    return hsm.ensure_secret_key(keys.PIN_KEY)


def pin_verifier(hsm: Hsm, credential_id: str, pin: str) -> str:
    """What is stored for a credential's PIN: bound to the credential, keyed in the HSM."""
    mac = hsm.hmac_sha256(keys.PIN_KEY, f"signet-pin\0{credential_id}\0{pin}".encode())
    return _PIN_SCHEME + mac.hex()


def pin_matches(hsm: Hsm, stored: str | None, credential_id: str, pin: str) -> bool:
    """Check a PIN against its stored verifier."""
    if not stored or not stored.startswith(_PIN_SCHEME):
        return False
    return hmac.compare_digest(stored, pin_verifier(hsm, credential_id, pin))

"""The Signature Activation Module (after CEN EN 419 241-2): Signature Activation Data bound to
(user, credential, hashes, count, expiry), spent atomically, and the only path to HSM signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from signet.errors import InvalidRequest
from signet.events import Event, append_event, append_events
from signet.hsm import Hsm, HsmError
from signet.sam import keys
from signet.store import Database, SignatureActivation, bulk_update


def _sad_digest(sad: str) -> str:
    return hashlib.sha256(sad.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _normal(hash_b64: str) -> str:
    """Canonical form of a base64 hash (clients mix standard and URL-safe alphabets)."""
    return base64.b64encode(decode_hash(hash_b64)).decode()


def decode_hash(value: str) -> bytes:
    try:
        padded = value + "=" * (-len(value) % 4)
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (ValueError, TypeError):
        raise InvalidRequest(f"Invalid base64 hash value {value[:60]!r}")


_SADS = cast(Table, SignatureActivation.__table__)
# Built once (see signet.events.audit): the signing and authorize paths run them.
_INSERT_SAD = insert(_SADS)
_SAD_BY_HASH = select(_SADS).where(_SADS.c.sad_hash == bindparam("sad_hash"))
# The caller's own, unexpired SAD, for this credential, with the count left: spent and its
# binding returned in one round trip. A request the SAD does not cover is rolled back.
_SPEND = (update(_SADS)
          .where(_SADS.c.sad_hash == bindparam("sad_digest"),
                 _SADS.c.user_id == bindparam("owner_id"),
                 _SADS.c.credential_id == bindparam("for_credential"),
                 _SADS.c.remaining >= bindparam("count"),
                 _SADS.c.expires_at > bindparam("now"))
          .values(remaining=_SADS.c.remaining - bindparam("count"))
          .returning(_SADS.c.id, _SADS.c.hashes, _SADS.c.hash_algorithm, _SADS.c.scal))


def issue_sad(
    session: Session,
    *,
    user_id: int,
    username: str,
    credential_id: str,
    hashes: Sequence[str],
    hash_algorithm: str | None,
    num_signatures: int,
    lifetime_seconds: int,
    scal: str = "2",
) -> tuple[str, int]:
    """Create SAD for exactly these hashes; return (SAD, seconds it is valid)."""
    sad = secrets.token_urlsafe(32)
    stamp = _now()
    normal = [_normal(h) for h in hashes]
    session.connection().execute(_INSERT_SAD, {
        "sad_hash": _sad_digest(sad), "user_id": user_id, "credential_id": credential_id,
        "hash_algorithm": hash_algorithm, "hashes": "\n".join(normal),
        "num_signatures": num_signatures, "remaining": num_signatures, "scal": scal,
        "created_at": stamp, "expires_at": stamp + timedelta(seconds=lifetime_seconds)})
    append_event(session, "credential.authorized", actor=username, subject=credential_id,
                 num_signatures=num_signatures, hash_algorithm=hash_algorithm, hashes=normal,
                 scal=scal, expires_in=lifetime_seconds)
    return sad, lifetime_seconds


def _find(session: Session, sad: str, user_id: int, credential_id: str) -> Any:
    """The SAD's row, if it is the caller's, for this credential, and not expired (else the
    reason, raised)."""
    row = session.connection().execute(_SAD_BY_HASH, {"sad_hash": _sad_digest(sad)}).first()
    if row is None or row.user_id != user_id or row.credential_id != credential_id:
        # Another user's or another credential's SAD is, to this caller, no SAD at all.
        raise InvalidRequest("Invalid parameter SAD")
    if _aware(row.expires_at) <= _now():
        raise InvalidRequest("SAD expired; authorize the credential again")
    return row


def extend_sad(session: Session, *, sad: str, user_id: int, username: str, credential_id: str,
               lifetime_seconds: int) -> tuple[str, int]:
    """Replace a still valid SAD by a new one with the same binding and remaining count."""
    row = _find(session, sad, user_id, credential_id)
    result = session.execute(
        bulk_update(SignatureActivation).where(SignatureActivation.id == row.id,
                                          SignatureActivation.remaining > 0)
        .values(remaining=0))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidRequest("SAD already spent")
    new = secrets.token_urlsafe(32)
    stamp = _now()
    session.add(SignatureActivation(
        sad_hash=_sad_digest(new), user_id=user_id, credential_id=credential_id,
        hash_algorithm=row.hash_algorithm, hashes=row.hashes,
        num_signatures=row.num_signatures, remaining=row.remaining, scal=row.scal,
        created_at=stamp, expires_at=stamp + timedelta(seconds=lifetime_seconds)))
    append_event(session, "sad.extended", actor=username, subject=credential_id,
                 remaining=row.remaining, expires_in=lifetime_seconds)
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


@dataclass(frozen=True)
class SignRequest:
    user_id: int
    username: str
    credential_id: str
    key_label: str
    sad: str
    hashes: Sequence[str]  # base64, as the client sent them
    hash_name: str  # sha256 | sha384 | sha512
    hash_oid: str
    scheme: str  # pkcs1v15 | pss | ecdsa
    sign_algo: str  # the OID the client asked for
    salt_length: int | None = None


def _take(session: Session, request: SignRequest, digests: list[bytes]) -> int:
    """Take len(hashes) from the SAD's count in one conditional UPDATE, so no number of
    concurrent workers or nodes can exceed numSignatures, then check the binding (a request
    the SAD does not cover raises, and the caller's rollback restores the count). Returns the
    SAD's id; until commit its row stays locked."""
    count = len(digests)
    row = session.connection().execute(_SPEND, {
        "sad_digest": _sad_digest(request.sad), "owner_id": request.user_id,
        "for_credential": request.credential_id, "count": count, "now": _now()}).first()
    if row is None:  # say why: the SAD is unknown, expired, unbound or used up
        row = _find(session, request.sad, request.user_id, request.credential_id)
        _check_binding(row, request, digests)
        raise InvalidRequest("numSignatures exceeded: the SAD does not cover "
                             f"{count} more signature(s)")
    _check_binding(row, request, digests)
    return int(row.id)


def _spent(request: SignRequest, count: int) -> Event:
    return Event("sad.spent", request.username, request.credential_id,
                 details={"count": count})


def _created(request: SignRequest, digests: list[bytes]) -> Event:
    return Event("signature.created", request.username, request.credential_id, details={
        "algorithm": request.sign_algo, "hash_algorithm": request.hash_oid,
        "scheme": request.scheme, "hashes": [base64.b64encode(d).decode() for d in digests]})


def _failed(request: SignRequest, reason: str) -> Event:
    return Event("signature.failed", request.username, request.credential_id, "failure",
                 {"reason": reason})


def _spend_in(session: Session, request: SignRequest, digests: list[bytes]) -> int:
    sad_id = _take(session, request, digests)
    append_events(session, [_spent(request, len(digests))])
    return sad_id


def _check_binding(row: Any, request: SignRequest, digests: list[bytes]) -> None:
    if row.hash_algorithm and row.hash_algorithm != request.hash_oid:
        raise InvalidRequest("The hash algorithm differs from the one the SAD was "
                             "authorized for")
    bound = set(row.hashes.split("\n")) if row.hashes else set()
    if row.scal == "2" or bound:
        unbound = [h for h, d in zip(request.hashes, digests, strict=True)
                   if base64.b64encode(d).decode() not in bound]
        if unbound:
            raise InvalidRequest(f"Hash not authorized by the SAD: {unbound[0][:60]}")


def _record_rejection(database: Database, request: SignRequest, reason: str) -> None:
    with database.transaction() as session:
        append_event(session, "sad.rejected", actor=request.username,
                     subject=request.credential_id, outcome="failure", reason=reason)


def _check_lengths(request: SignRequest, digests: list[bytes]) -> None:
    expected = hashlib.new(request.hash_name).digest_size
    for value, digest in zip(request.hashes, digests, strict=True):
        if len(digest) != expected:
            raise InvalidRequest(f"Invalid hash {value[:60]!r}: a {request.hash_name} hash has "
                                 f"{expected} bytes, this one {len(digest)}")


def _refund(session: Session, request: SignRequest, sad_id: int, count: int) -> None:
    session.connection().execute(update(_SADS).where(_SADS.c.id == sad_id)
                                 .values(remaining=_SADS.c.remaining + count))
    append_event(session, "sad.refunded", actor=request.username,
                 subject=request.credential_id, count=count)


def _sign_each(hsm: Hsm, request: SignRequest, digests: list[bytes]) -> list[bytes]:
    return [hsm.sign_digest(request.key_label, digest, request.hash_name, request.scheme,
                            request.salt_length)
            for digest in digests]


def sign_hashes(database: Database, hsm: Hsm,
                prepare: Callable[[Session], SignRequest]) -> list[bytes]:
    """`prepare` checks the caller's credential and says what to sign; the SAD is checked
    and spent, the HSM signs each hash in request order, and the trail records the spend and
    the signatures (`sad.spent`, `signature.created`). A refused request is recorded as
    `sad.rejected`, an HSM failure as `signature.failed`, with the count left as it was."""
    if database.locks_rows:
        return _sign_in_one_transaction(database, hsm, prepare)
    return _sign_between_two_transactions(database, hsm, prepare)


class _Refusals:
    """Records a refused spend as `sad.rejected`, in a transaction of its own once the
    spending one has rolled back (SQLite's writers cannot nest). `request` is set while the
    SAD is being checked and spent: a refusal outside that window is not about the SAD."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self.request: SignRequest | None = None

    def __enter__(self) -> _Refusals:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 _tb: object) -> None:
        if isinstance(exc, InvalidRequest) and self.request is not None:
            _record_rejection(self._database, self.request, exc.description)


def _prepared(session: Session, prepare: Callable[[Session], SignRequest]
              ) -> tuple[SignRequest, list[bytes]]:
    request = prepare(session)
    digests = [decode_hash(h) for h in request.hashes]
    _check_lengths(request, digests)
    return request, digests


def _sign_in_one_transaction(database: Database, hsm: Hsm,
                             prepare: Callable[[Session], SignRequest]) -> list[bytes]:
    """Databases with row locks: one transaction. The spend locks the SAD's row alone while
    the HSM signs (only requests on the same SAD wait; other SADs, workers and nodes sign in
    parallel), then both records are appended (the audit head is locked from there to the
    commit only). The signatures leave only once their records are committed; an HSM
    failure rolls the spend back."""
    request: SignRequest | None = None
    try:
        with _Refusals(database) as refusals, database.transaction() as session:
            request, digests = _prepared(session, prepare)
            refusals.request = request
            _take(session, request, digests)
            refusals.request = None
            signatures = _sign_each(hsm, request, digests)
            append_events(session, [_spent(request, len(digests)),
                                    _created(request, digests)])
    except HsmError as exc:
        if request is not None:
            with database.transaction() as session:
                append_events(session, [_failed(request, str(exc))])
        raise
    return signatures


def _sign_between_two_transactions(database: Database, hsm: Hsm,
                                   prepare: Callable[[Session], SignRequest]) -> list[bytes]:
    """SQLite, where a writing transaction locks the whole database: the SAD is spent in one
    short transaction, the HSM signs with no lock held (so workers sign in parallel), and a
    second transaction records the signatures. If the HSM fails, the count is given back.
    A crash between spending and recording loses count, never adds it."""
    with _Refusals(database) as refusals, database.transaction() as session:
        request, digests = _prepared(session, prepare)
        refusals.request = request
        sad_id = _spend_in(session, request, digests)
    try:
        signatures = _sign_each(hsm, request, digests)
    except HsmError as exc:
        with database.transaction() as session:
            _refund(session, request, sad_id, len(digests))
            append_events(session, [_failed(request, str(exc))])
        raise
    with database.transaction() as session:
        append_events(session, [_created(request, digests)])
    return signatures


def _spend(database: Database, request: SignRequest, digests: list[bytes]) -> int:
    with database.transaction() as session:
        return _spend_in(session, request, digests)


def sad_hash_algorithm(database: Database, *, sad: str, user_id: int,
                       credential_id: str) -> str | None:
    """The hash algorithm (OID) a SAD was authorized with, to hash documents for signDoc."""
    with database.transaction(read_only=True) as session:
        return _find(session, sad, user_id, credential_id).hash_algorithm


class DocumentPermit:
    """Leave to make exactly `allowed` HSM signatures with one key, granted by a SAD that was
    bound to the documents' digests and already spent for them (signDoc). Whatever is left
    unused when the permit closes goes back to the SAD."""

    def __init__(self, database: Database, hsm: Hsm, request: SignRequest, sad_id: int,
                 allowed: int) -> None:
        self._database, self._hsm, self._request = database, hsm, request
        self._sad_id, self.allowed, self.used = sad_id, allowed, 0

    def sign_digest(self, digest: bytes, hash_name: str, scheme: str,
                    salt_length: int | None = None) -> bytes:
        if self.used >= self.allowed:
            raise InvalidRequest("numSignatures exceeded: the SAD covers no more signatures")
        signature = self._hsm.sign_digest(self._request.key_label, digest, hash_name, scheme,
                                          salt_length)
        self.used += 1
        return signature

    def close(self) -> None:
        unused = self.allowed - self.used
        if unused > 0:
            with self._database.transaction() as session:
                _refund(session, self._request, self._sad_id, unused)
        self.allowed = self.used


def open_permit(database: Database, hsm: Hsm, request: SignRequest) -> DocumentPermit:
    """Check the SAD against the document digests in `request.hashes` and spend one signature
    for each, atomically; then hand out a permit for exactly that many HSM signatures."""
    digests = [decode_hash(h) for h in request.hashes]
    with _Refusals(database) as refusals:
        refusals.request = request
        sad_id = _spend(database, request, digests)
    return DocumentPermit(database, hsm, request, sad_id, len(digests))

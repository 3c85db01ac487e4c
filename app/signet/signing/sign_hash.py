"""signHash: the path of one signature, top-down — the credential and the algorithm are
checked here, `sam` verifies and spends the SAD into a permit, the permit signs in the HSM,
and the audit trail is written once, with the spend and the signatures together.

Two transactions, on every database. The SAD is spent in a short one, the HSM signs with no
lock held, and a second one records the signatures; an HSM failure gives the count back
(`sam.refund`). A crash in between loses count, never adds it. Both are group commits
(`Database.grouped`, `append_durably`): the requests of a process that come while another holds
the lock (SQLite's write lock, the audit head's row) go in together at the next turn, with one
commit (the spends one after the other; the records in one append, under one audit MAC), and
none answers before the records' durable commit (docs/scale.md, "What serialises a request",
"CPU a request")."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from signet.algorithms import HASHES
from signet.auth.tokens import Claimed, Principal
from signet.errors import InvalidRequest, InvalidToken, SignetError
from signet.events import Event, append_durably, append_events
from signet.hsm import HsmError
from signet.sam import Permit, decode_hash, open_permit, refund
from signet.signing.context import Services
from signet.signing.csc import (
    check_algorithm_names,
    resolve_algorithm,
    signing_credential,
)


@contextmanager
def refusals_recorded(
    services: Services, principal: Principal, credential_id: Any
) -> Iterator[None]:
    """Record a refused spend (`sad.rejected`, or the event the refusal names, such as
    `integrity.violation`) in a transaction of its own once the spending one has rolled
    back (SQLite's writers cannot nest). A token found revoked is no refused spend."""
    try:
        yield
    except InvalidToken:
        raise
    except SignetError as exc:
        event = getattr(exc, "event", "sad.rejected")
        with services.database.transaction() as session:
            append_events(
                session,
                [
                    Event(
                        event,
                        principal.username,
                        str(credential_id)[:256],
                        "failure",
                        {"reason": exc.description},
                    )
                ],
            )
        raise


def spent_event(principal: Principal, credential_id: str, count: int) -> Event:
    return Event("sad.spent", principal.username, credential_id, details={"count": count})


def failed_event(principal: Principal, credential_id: str, reason: str) -> Event:
    return Event(
        "signature.failed", principal.username, credential_id, "failure", {"reason": reason}
    )


def _digests(hashes: Any, hash_name: str | None) -> list[bytes]:
    if not isinstance(hashes, list) or not hashes or not all(isinstance(h, str) for h in hashes):
        raise InvalidRequest("Missing (or invalid type) array parameter hashes")
    digests = [decode_hash(h) for h in hashes]
    if hash_name:
        expected = hashlib.new(hash_name).digest_size
        for value, digest in zip(hashes, digests, strict=True):
            if len(digest) != expected:
                raise InvalidRequest(
                    f"Invalid digest value length: hash {value[:60]!r} has {len(digest)} "
                    f"bytes, where a {hash_name} hash has {expected} bytes"
                )
    return digests


@dataclass(frozen=True)
class _Prepared:
    credential_id: str
    permit: Permit
    digests: list[bytes]
    hash_name: str
    scheme: str
    salt: int | None
    spent: Event
    created: Event


def _prepare(
    services: Services,
    conn: Connection,
    caller: Claimed,
    *,
    credential_id: Any,
    sad: str,
    hashes: Sequence[str],
    hash_oid: str | None,
    sign_algo: str,
    sign_algo_params: str | None,
) -> _Prepared:
    """Check the token and the credential (one query), the algorithm, then let `sam` verify
    and spend the SAD."""
    principal = caller.principal
    credential = signing_credential(conn, services.hsm, caller, credential_id)
    hash_name, scheme, salt = resolve_algorithm(credential, sign_algo, hash_oid, sign_algo_params)
    digests = _digests(hashes, hash_name)
    oid = HASHES[hash_name].oid
    permit = open_permit(
        conn,
        services.hsm,
        sad=sad,
        user_id=principal.user_id,
        credential=credential,
        hash_oid=oid,
        digests=digests,
        exact=True,
    )
    return _Prepared(
        credential.id,
        permit,
        digests,
        hash_name,
        scheme,
        salt,
        spent_event(principal, credential.id, len(digests)),
        Event(
            "signature.created",
            principal.username,
            credential.id,
            details={
                "algorithm": sign_algo,
                "hash_algorithm": oid,
                "scheme": scheme,
                "hashes": [base64.b64encode(d).decode() for d in digests],
            },
        ),
    )


def _sign(prepared: _Prepared) -> list[bytes]:
    return [
        prepared.permit.sign(d, prepared.hash_name, prepared.scheme, prepared.salt)
        for d in prepared.digests
    ]


def sign_hash(
    services: Services,
    caller: Claimed,
    *,
    credential_id: Any,
    sad: Any,
    hashes: Any,
    hash_oid: str | None,
    sign_algo: str,
    sign_algo_params: str | None,
) -> list[bytes]:
    """Sign each hash, in request order, with the credential's key, under the SAD, for a
    caller whose token the SAM has verified (the database's word on it is read with the
    credential)."""
    principal = caller.principal
    if not isinstance(sad, str) or not sad:
        raise InvalidRequest("Missing (or invalid type) string parameter SAD")
    check_algorithm_names(sign_algo, hash_oid)
    database = services.database

    def prepare(conn: Connection) -> _Prepared:
        return _prepare(
            services,
            conn,
            caller,
            credential_id=credential_id,
            sad=sad,
            hashes=hashes,
            hash_oid=hash_oid,
            sign_algo=sign_algo,
            sign_algo_params=sign_algo_params,
        )

    with refusals_recorded(services, principal, credential_id):
        # Not durable on its own: no signature leaves before the records' durable commit,
        # which makes the spend durable with it (the log is written in order); a power loss
        # before that undoes the spend of a signature nobody received.
        prepared = database.grouped(prepare, durable=False)
    try:
        signatures = _sign(prepared)
    except HsmError as exc:
        with database.transaction() as session:
            refund(session.connection(), prepared.permit)
            append_events(session, [failed_event(principal, prepared.credential_id, str(exc))])
        raise
    append_durably(database, [prepared.spent, prepared.created])
    return signatures

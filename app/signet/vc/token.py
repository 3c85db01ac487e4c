"""The Cryptoki state of one process: slots (one per account), sessions, logins, searches and
signing operations. Plain Python with integer handles and CKR answers, so it is tested without
the C half; signet.vc.bridge marshals the C structures in and out."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from signet.client.csc import CscClient, CscError
from signet.vc import cache, ck, prompt
from signet.vc.config import Account
from signet.vc.mechanisms import (
    MECHANISMS,
    Mechanism,
    MechanismError,
    check_pss_params,
    ecdsa_raw,
    request_for_digest,
    sign_request,
)
from signet.vc.objects import Credential, credentials_from_list

KINDS = (ck.CKO_CERTIFICATE, ck.CKO_PUBLIC_KEY, ck.CKO_PRIVATE_KEY)
MECHANISM_INFO = {
    ck.CKK_RSA: (2048, 4096, ck.CKF_HW | ck.CKF_SIGN),
    ck.CKK_EC: (
        256,
        384,
        ck.CKF_HW | ck.CKF_SIGN | ck.CKF_EC_F_P | ck.CKF_EC_NAMEDCURVE | ck.CKF_EC_UNCOMPRESS,
    ),
}


class Failure(Exception):
    def __init__(self, rv: int) -> None:
        super().__init__(hex(rv))
        self.rv = rv


@dataclass
class Slot:
    slot_id: int
    account: Account
    client: Any = None  # signed in when set: a CscClient, or the agent's AgentClient
    credentials: list[Credential] = field(default_factory=list)  # cached until a login

    @property
    def label(self) -> str:
        host = urlsplit(self.account.server).hostname or "signet"
        return self.account.label or f"{self.account.user}@{host}"

    def handle(self, index: int, cls: int) -> int:
        return (self.slot_id + 1) << 16 | index * 4 + KINDS.index(cls) + 1

    def objects(self) -> dict[int, tuple[Credential, int]]:
        return {
            self.handle(i, cls): (cred, cls)
            for i, cred in enumerate(self.credentials)
            for cls in KINDS
            if cls != ck.CKO_PRIVATE_KEY or self.client is not None
        }


@dataclass
class Signing:
    mechanism: Mechanism
    credential: Credential
    pss_hash: str | None
    data: Any = None  # a running hash for C_SignUpdate, or None
    factor_value: str | None = None  # given by C_Login(CKU_CONTEXT_SPECIFIC)
    ask_factor: bool = False  # that login came without a PIN: ask through askpass at C_Sign


@dataclass
class Session:
    handle: int
    slot: Slot
    flags: int
    found: list[int] | None = None  # the C_FindObjects result still to hand out
    signing: Signing | None = None
    # a context-specific login made before C_SignInit (OpenSSH does so): (value, ask)
    early_factor: tuple[str | None, bool] | None = None


class Cryptoki:
    def __init__(self, accounts: list[Account], *, timeout: float = 60.0) -> None:
        self.slots = [Slot(i, a) for i, a in enumerate(accounts)]
        for slot in self.slots:
            slot.credentials = self._marked(slot, cache.load(self.token_serial(slot)))
        self.sessions: dict[int, Session] = {}
        self.next_session = 1
        self.timeout = timeout
        self.lock = threading.RLock()

    # -- slots and tokens -------------------------------------------------------------------
    def slot(self, slot_id: int) -> Slot:
        if not 0 <= slot_id < len(self.slots):
            raise Failure(ck.CKR_SLOT_ID_INVALID)
        return self.slots[slot_id]

    def slot_ids(self) -> list[int]:
        return [s.slot_id for s in self.slots]

    def token_serial(self, slot: Slot) -> str:
        seed = f"{slot.account.server}\0{slot.account.user}".encode()
        return hashlib.sha256(seed).hexdigest()[:16]

    def mechanisms(self, slot_id: int) -> list[int]:
        self.slot(slot_id)
        return list(MECHANISMS)

    def mechanism_info(self, slot_id: int, ckm: int) -> tuple[int, int, int]:
        self.slot(slot_id)
        mechanism = MECHANISMS.get(ckm)
        if mechanism is None:
            raise Failure(ck.CKR_MECHANISM_INVALID)
        return MECHANISM_INFO[mechanism.key_type]

    # -- sessions ---------------------------------------------------------------------------
    def open_session(self, slot_id: int, flags: int) -> int:
        slot = self.slot(slot_id)
        if not flags & ck.CKF_SERIAL_SESSION:
            raise Failure(ck.CKR_SESSION_PARALLEL_NOT_SUPPORTED)
        handle = self.next_session
        self.next_session += 1
        self.sessions[handle] = Session(handle, slot, flags & (ck.CKF_RW_SESSION | 4))
        return handle

    def session(self, handle: int) -> Session:
        found = self.sessions.get(handle)
        if found is None:
            raise Failure(ck.CKR_SESSION_HANDLE_INVALID)
        return found

    def close_session(self, handle: int) -> None:
        slot = self.session(handle).slot
        del self.sessions[handle]
        if not any(s.slot is slot for s in self.sessions.values()):
            self._sign_out(slot)  # the login ends with the application's last session

    def close_all_sessions(self, slot_id: int) -> None:
        slot = self.slot(slot_id)
        for handle in [h for h, s in self.sessions.items() if s.slot is slot]:
            del self.sessions[handle]
        self._sign_out(slot)

    def session_info(self, handle: int) -> tuple[int, int, int]:
        session = self.session(handle)
        rw = bool(session.flags & ck.CKF_RW_SESSION)
        if session.slot.client is not None:
            state = ck.CKS_RW_USER_FUNCTIONS if rw else ck.CKS_RO_USER_FUNCTIONS
        else:
            state = ck.CKS_RW_PUBLIC_SESSION if rw else ck.CKS_RO_PUBLIC_SESSION
        return session.slot.slot_id, state, session.flags

    # -- login ------------------------------------------------------------------------------
    def login(self, handle: int, user_type: int, pin: str) -> None:
        session = self.session(handle)
        slot = session.slot
        if user_type == ck.CKU_CONTEXT_SPECIFIC:
            if slot.client is None:
                raise Failure(ck.CKR_USER_NOT_LOGGED_IN)
            if not pin and not (slot.account.askpass or slot.account.agent):
                raise Failure(ck.CKR_PIN_INCORRECT)
            # no PIN on a protected path: asked at C_Sign, when the hash is known; a PIN is
            # checked by the service with the hash it is bound to
            factor = (pin or None, not pin)
            if session.signing is None:
                session.early_factor = factor  # for the next C_SignInit of this session
            else:
                session.signing.factor_value, session.signing.ask_factor = factor
            return
        if user_type == ck.CKU_SO:
            raise Failure(ck.CKR_USER_TYPE_INVALID)  # no security officer on a remote card
        if user_type != ck.CKU_USER:
            raise Failure(ck.CKR_USER_TYPE_INVALID)
        if slot.client is not None:
            raise Failure(ck.CKR_USER_ALREADY_LOGGED_IN)
        account = slot.account
        cert = account.certificate
        if not pin and account.askpass and not (account.agent or cert):
            try:
                pin = prompt.ask(account.askpass, "password", user=account.user)
            except prompt.Cancelled as exc:
                raise Failure(ck.CKR_FUNCTION_CANCELED) from exc
        if not pin and not (account.agent or cert):
            raise Failure(ck.CKR_PIN_INCORRECT)
        client: Any
        if account.agent:  # the agent holds the login, shared with the user's other programs
            from signet.vc.agent import AgentClient, socket_path

            client = AgentClient(
                socket_path(), account.server, account.user, account.ca_file, cert,
                device_client=account.device_client,
            )  # fmt: skip
            client.context["application"] = prompt.application()
        else:
            client = CscClient(
                account.server,
                timeout=self.timeout,
                verify=account.ca_file or True,
                cert=cert,
            )
        try:
            if cert:
                client.login_with_certificate()
            else:
                client.login(account.user, pin or None)  # None: the agent asks
            answer = client.list_credentials(with_info=True)
        except CscError as exc:
            raise Failure(_login_rv(exc)) from exc
        slot.client = client
        slot.credentials = self._marked(slot, credentials_from_list(answer))
        cache.save(self.token_serial(slot), slot.credentials)

    @staticmethod
    def _marked(slot: Slot, credentials: list[Credential]) -> list[Credential]:
        asked = bool(slot.account.askpass or slot.account.agent) and not slot.account.context_login
        for credential in credentials:
            credential.asked_at_sign = asked
        return credentials

    def logout(self, handle: int) -> None:
        slot = self.session(handle).slot
        if slot.client is None:
            raise Failure(ck.CKR_USER_NOT_LOGGED_IN)
        self._sign_out(slot)

    def _sign_out(self, slot: Slot) -> None:
        client, slot.client = slot.client, None
        for session in self.sessions.values():
            if session.slot is slot:
                session.signing, session.found = None, None
        # the agent's login is every application's: it outlives this one (and ends with the
        # agent); a login of our own is revoked, or else expires on its own
        if client is not None and not slot.account.agent:
            with contextlib.suppress(CscError):
                client.revoke()

    def finalize(self) -> None:
        for slot in self.slots:
            self._sign_out(slot)
        self.sessions.clear()

    # -- objects ----------------------------------------------------------------------------
    def attributes(self, handle: int, obj: int) -> dict[int, bytes]:
        session = self.session(handle)
        found = session.slot.objects().get(obj)
        if found is None:
            raise Failure(ck.CKR_OBJECT_HANDLE_INVALID)
        credential, cls = found
        return credential.attributes(cls)

    def find_init(self, handle: int, template: list[tuple[int, bytes]]) -> None:
        session = self.session(handle)
        if session.found is not None:
            raise Failure(ck.CKR_OPERATION_ACTIVE)
        session.found = [
            obj
            for obj, (cred, cls) in session.slot.objects().items()
            if all(cred.attributes(cls).get(t) == v for t, v in template)
        ]

    def find(self, handle: int, most: int) -> list[int]:
        session = self.session(handle)
        if session.found is None:
            raise Failure(ck.CKR_OPERATION_NOT_INITIALIZED)
        out, session.found = session.found[:most], session.found[most:]
        return out

    def find_final(self, handle: int) -> None:
        session = self.session(handle)
        if session.found is None:
            raise Failure(ck.CKR_OPERATION_NOT_INITIALIZED)
        session.found = None

    # -- signing ----------------------------------------------------------------------------
    def sign_init(self, handle: int, ckm: int, pss: tuple[int, int, int] | None, key: int) -> None:
        session = self.session(handle)
        if session.signing is not None:
            raise Failure(ck.CKR_OPERATION_ACTIVE)
        slot = session.slot
        if slot.client is None:
            raise Failure(ck.CKR_USER_NOT_LOGGED_IN)
        found = slot.objects().get(key)
        if found is None:
            raise Failure(ck.CKR_KEY_HANDLE_INVALID)
        credential, cls = found
        if cls != ck.CKO_PRIVATE_KEY:
            raise Failure(ck.CKR_KEY_FUNCTION_NOT_PERMITTED)
        mechanism = MECHANISMS.get(ckm)
        if mechanism is None:
            raise Failure(ck.CKR_MECHANISM_INVALID)
        if mechanism.key_type != credential.key_type:
            raise Failure(ck.CKR_KEY_TYPE_INCONSISTENT)
        try:
            pss_hash = check_pss_params(mechanism, pss) if mechanism.scheme == "pss" else None
        except MechanismError as exc:
            raise Failure(exc.rv) from exc
        if credential.factor.kind == "OTP":
            try:
                slot.client.send_otp(credential.credential_id)  # to type at the context login
            except CscError as exc:
                raise Failure(ck.CKR_DEVICE_ERROR) from exc
        session.signing = Signing(mechanism, credential, pss_hash)
        if session.early_factor is not None:
            session.signing.factor_value, session.signing.ask_factor = session.early_factor
            session.early_factor = None

    def sign_length(self, handle: int) -> int:
        signing = self._signing(handle)
        return signing.credential.signature_length

    def _signing(self, handle: int) -> Signing:
        signing = self.session(handle).signing
        if signing is None:
            raise Failure(ck.CKR_OPERATION_NOT_INITIALIZED)
        return signing

    def sign_update(self, handle: int, part: bytes) -> None:
        signing = self._signing(handle)
        if signing.mechanism.hashes_data is None:
            self.session(handle).signing = None
            raise Failure(ck.CKR_FUNCTION_NOT_SUPPORTED)  # single-part mechanism
        if signing.data is None:
            signing.data = hashlib.new(signing.mechanism.hashes_data)
        signing.data.update(part)

    def sign(self, handle: int, data: bytes | None) -> bytes:
        """Sign ``data`` (None: what C_SignUpdate gathered). The operation ends either way."""
        session = self.session(handle)
        signing = self._signing(handle)
        session.signing = None
        slot = session.slot
        if slot.client is None:
            raise Failure(ck.CKR_USER_NOT_LOGGED_IN)
        credential = signing.credential
        if credential.always_authenticate and not (signing.factor_value or signing.ask_factor):
            raise Failure(ck.CKR_USER_NOT_LOGGED_IN)
        mechanism = signing.mechanism
        try:
            if data is None:
                if mechanism.hashes_data is None:
                    raise Failure(ck.CKR_FUNCTION_NOT_SUPPORTED)
                running = signing.data or hashlib.new(mechanism.hashes_data)
                request = request_for_digest(
                    mechanism.scheme, mechanism.hashes_data, running.digest()
                )
            else:
                request = sign_request(mechanism, signing.pss_hash, data)
        except MechanismError as exc:
            raise Failure(exc.rv) from exc
        client = slot.client
        ask = signing.ask_factor or (credential.asked_at_sign and not signing.factor_value)
        if hasattr(client, "context"):  # the agent: it shows the signature
            client.context["mechanism"] = f"{mechanism.scheme} {request.hash_name}"
            client.context["credential"] = credential.label
            if ask and credential.factor.kind:  # the agent asks, after showing the signature
                client.context["ask"] = credential.factor.kind
        elif ask and credential.factor.kind and slot.account.askpass:
            try:
                signing.factor_value = prompt.ask(
                    slot.account.askpass,
                    credential.factor.kind,
                    credential=credential.label,
                    mechanism=f"{mechanism.scheme} {request.hash_name}",
                    hash=request.digest.hex(),
                )
            except prompt.Cancelled as exc:
                raise Failure(ck.CKR_FUNCTION_CANCELED) from exc
        try:
            sad = client.authorize(
                credential.credential_id,
                [request.digest],
                request.hash_name,
                factor=credential.factor.kind,
                value=signing.factor_value or "",
            )
            (signature,) = client.sign_hash(
                credential.credential_id,
                sad,
                [request.digest],
                request.hash_name,
                request.sign_algo,
                request.sign_algo_params,
            )
        except CscError as exc:
            rv = _sign_rv(exc)
            if rv == ck.CKR_USER_NOT_LOGGED_IN:
                slot.client = None  # the service (or the agent) ended the login: log in again
            raise Failure(rv) from exc
        if request.scheme == "ecdsa":
            try:
                signature = ecdsa_raw(signature, credential.size)
            except MechanismError as exc:
                raise Failure(exc.rv) from exc
        return signature


def _login_rv(exc: CscError) -> int:
    if exc.error in ("cancelled", "access_denied", "expired_token"):
        return ck.CKR_FUNCTION_CANCELED  # no answer, a denial in the browser, too late
    if exc.status in (400, 401, 403):
        return ck.CKR_PIN_LOCKED if "lock" in exc.description.lower() else ck.CKR_PIN_INCORRECT
    return ck.CKR_DEVICE_ERROR


def _sign_rv(exc: CscError) -> int:
    if exc.error == "cancelled":
        return ck.CKR_FUNCTION_CANCELED
    if exc.error in ("invalid_otp", "invalid_pin"):
        return ck.CKR_PIN_INCORRECT
    if "lock" in exc.error or "lock" in exc.description.lower():
        return ck.CKR_PIN_LOCKED
    if exc.status in (401,):
        return ck.CKR_USER_NOT_LOGGED_IN
    if exc.status == 0:
        return ck.CKR_DEVICE_ERROR
    return ck.CKR_FUNCTION_FAILED

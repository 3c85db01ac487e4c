"""The token connection: the PKCS#11 module loaded once per process, the login, one
serialised session or a pool of them, and a lost token healed without a restart.

One logged-in session per process, opened lazily after a fork, and every call serialised by a
lock: SoftHSM (and python-pkcs11's C_Initialize(NULL)) is not safe for concurrent threads. On a
module the operator declares thread-safe (`hsm.thread_safe`, a network HSM's client library)
`hsm.sessions` > 1 lends each call a session of its own from a pool (`hsm.pool`), with no lock
held while the HSM works: python-pkcs11 releases the GIL in its calls, so round trips overlap.

A token that vanishes and comes back heals without a restart. SoftHSM 2.6.1 (file store), when
its token directory disappears, refuses every cached object handle (CKR_OBJECT_HANDLE_INVALID),
finds no objects at all, and answers C_GetTokenInfo and C_OpenSession with CKR_GENERAL_ERROR;
it does not sign from memory, and it stays so after the directory returns, until the library
is finalised and initialised again (which re-reads the store). So a failed call drops the
cached handles, re-initialises the library when the token no longer answers, and is retried
once; if that fails too the caller gets an HsmError (503) and the next call tries again."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pkcs11
from pkcs11 import exceptions

from signet.config import ConfigError, HsmSettings
from signet.errors import BackendError
from signet.hsm.oneshot import Module
from signet.hsm.pool import Lease, SessionPool

T = TypeVar("T")

# A key handle the token no longer knows: the key was destroyed or replaced, or the token's
# store was reloaded. Looking the key up again is the cure, if the token still answers.
_STALE_HANDLE = (exceptions.ObjectHandleInvalid, exceptions.KeyHandleInvalid)

# The token, our session or the library broke (SoftHSM answers a token whose store vanished
# with CKR_GENERAL_ERROR): a new session, on a re-initialised library if the token is silent.
_BROKEN = (
    exceptions.SessionClosed,
    exceptions.SessionHandleInvalid,
    exceptions.DeviceRemoved,
    exceptions.DeviceError,
    exceptions.DeviceMemory,
    exceptions.TokenNotPresent,
    exceptions.TokenNotRecognised,
    exceptions.UserNotLoggedIn,
    exceptions.GeneralError,
    # a token file read while another process's login rewrote it: SoftHSM keeps the
    # misread state until the library reads the store again
    exceptions.UserPinNotInitialized,
)


class _TokenLost(Exception):
    """A search found nothing and the token then failed to answer C_GetTokenInfo: the empty
    result says nothing about the key, the token is broken."""


class HsmError(BackendError):
    """The HSM refused or failed; the message says what to check."""


class KeyNotFound(HsmError):
    """No object with that label in the token (which does answer)."""


# SoftHSM's file store rewrites the token's own file on every C_Login (its PIN-count flags), and
# another process reading it meanwhile fails: C_GetTokenInfo with CKR_GENERAL_ERROR, the token
# looks absent, or (read half-written) its user PIN looks uninitialised. Gunicorn workers, the
# CLI or the bench opening one token together hit that (two processes opening it in a loop:
# 15-70 % of attempts); a few short retries ride it out. A token that really is missing is
# reported after them, about 0.1 s later.
_OPEN_ATTEMPTS = 8


def retry_opening(open_token: Callable[[], T]) -> T:
    """``open_token()`` (finding or logging in to the token), retried through that race."""
    for attempt in range(1, _OPEN_ATTEMPTS):
        try:
            return open_token()
        except (exceptions.GeneralError, exceptions.NoSuchToken, exceptions.UserPinNotInitialized):
            time.sleep(0.002 * attempt * (1 + random.random()))
    return open_token()


class _Library:
    """One PKCS#11 module as this process loaded it: a single lock for every Hsm on it, and
    the count of its initialisations. A session or handle from an earlier initialisation is
    dead, and its number may name another object now, so nothing from it is ever reused."""

    _all: dict[str, _Library] = {}
    _all_lock = threading.Lock()

    def __init__(self, module: str) -> None:
        self.module = module
        self.lock = threading.RLock()
        self.generation = 0
        self._signing: tuple[int, int, Module] | None = None

    @classmethod
    def of(cls, module: str) -> _Library:
        with cls._all_lock:
            if module not in cls._all:
                cls._all[module] = cls(module)
            return cls._all[module]

    def signing(self) -> Module:
        """Its function list for one-call signatures (`hsm.oneshot`), read again in a new
        process or after a re-initialisation. Called with a live session, so loaded."""
        known = self._signing
        if known is None or known[:2] != (os.getpid(), self.generation):
            known = (os.getpid(), self.generation, Module(self.module))
            self._signing = known
        return known[2]


class Connection:
    """A logged-in token in a PKCS#11 module, each call run on a session with the
    recovery above. Thread-safe and fork-safe within a process."""

    # How long the health probe waits for a signature in progress before calling the HSM busy.
    CHECK_LOCK_TIMEOUT = 5.0

    def __init__(self, settings: HsmSettings) -> None:
        self.settings = settings
        self._library = _Library.of(settings.module)
        self._lock = self._library.lock
        self._pid: int | None = None
        self._generation = -1
        self._lib: Any = None
        self._session: Any = None
        self._keys: dict[str, Any] = {}
        self._pool = SessionPool(settings.sessions) if settings.sessions > 1 else None
        self._local = threading.local()  # the key handles of the lease this thread holds

    def _load_library(self) -> Any:
        """The module, loaded and initialised (again, after a finalisation or a failed start)."""
        for name, value in self.settings.library_env.items():
            os.environ[name] = value
        try:
            self._lib = pkcs11.lib(self.settings.module)
        except (RuntimeError, OSError) as exc:
            # PKCS11Error (a RuntimeError) for a module that will not load, and for a failed
            # C_Initialize: SoftHSM's fails while its token directory is missing.
            detail = str(exc) or exc.__class__.__name__
            raise HsmError(
                f"HSM token {self.settings.token_label!r} unavailable: cannot load or "
                f"initialise PKCS#11 module {self.settings.module} ({detail}); check the module "
                "and the token's store (SoftHSM: directories.tokendir)"
            ) from exc
        return self._lib

    def _find_token(self) -> Any:
        def find() -> Any:
            return self._load_library().get_token(token_label=self.settings.token_label)

        try:
            return retry_opening(find)
        except (exceptions.NoSuchToken, exceptions.PKCS11Error):
            # SoftHSM keeps a token it could not read (its store gone, or being rewritten
            # by another process's login) unusable until the library reads its store again.
            self._reinitialise()
        try:
            return retry_opening(find)
        except (exceptions.NoSuchToken, exceptions.PKCS11Error) as exc:
            self._reinitialise()  # and the next call reads the store once more
            raise HsmError(
                f"token {self.settings.token_label!r} not found in {self.settings.module} "
                f"({exc.__class__.__name__}); is it initialised and its store in place?"
            ) from exc

    def _open(self) -> Any:
        token = self._find_token()
        try:
            pin = self.settings.read_pin()
        except ConfigError as exc:
            raise HsmError(f"token {self.settings.token_label!r}: no user PIN ({exc})") from exc

        def log_in() -> Any:
            try:
                return token.open(rw=True, user_pin=pin)
            except exceptions.UserAlreadyLoggedIn:
                return token.open(rw=True)

        try:
            return retry_opening(log_in)
        except (exceptions.PinIncorrect, exceptions.PinLocked) as exc:
            raise HsmError(
                f"token {self.settings.token_label!r} refused the user PIN "
                f"({exc.__class__.__name__})"
            ) from exc

    def _current_session(self) -> Any:
        if (
            self._session is None
            or self._pid != os.getpid()
            or self._generation != self._library.generation
        ):
            # After a fork or another Hsm's re-initialisation the old session is dead: forget
            # it without closing it (its number may belong to a live session now).
            self._session = None
            self._keys.clear()
            self._session = self._open()
            self._pid, self._generation = os.getpid(), self._library.generation
        return self._session

    def _reset(self) -> None:
        """Close our session (if it is still of this process and initialisation) and forget
        it and every handle found through it."""
        session, self._session = self._session, None
        self._keys.clear()
        if (
            session is not None
            and self._pid == os.getpid()
            and self._generation == self._library.generation
        ):
            with contextlib.suppress(Exception):  # a broken session fails to close
                session.close()

    def _reinitialise(self) -> None:
        """C_Finalize now, C_Initialize on the next call: SoftHSM then reads its token store
        afresh. Every session and handle of this process (of any Hsm) dies with it."""
        self._reset()
        self._library.generation += 1
        if self._lib is not None:
            with contextlib.suppress(Exception):  # it is initialised anew all the same
                self._lib.finalize()

    def _token_answers(self, session: Any) -> bool:
        """Whether the token answers C_GetTokenInfo now (a real call, unlike `session.token`,
        which python-pkcs11 filled in when the session opened)."""
        try:
            retry_opening(session.token.slot.get_token)  # through another process's login
        except exceptions.PKCS11Error:
            return False
        return True

    def _nothing_found(self, session: Any) -> None:
        """Called when a search came back empty: a broken token finds nothing, so make sure
        the token is alive before the caller reports the object as absent."""
        if not self._token_answers(session):
            raise _TokenLost

    def _recover(self, failure: Exception) -> None:
        """Prepare the one retry after `failure`. A token that still answers needs only fresh
        lookups (after a stale handle or a passing error) or a new session (after a session
        error); one that does not is read again by a re-initialised library."""
        self._keys.clear()
        session = self._session
        if session is None or isinstance(failure, _TokenLost) or not self._token_answers(session):
            self._reinitialise()
        elif not isinstance(failure, (*_STALE_HANDLE, exceptions.GeneralError)):
            self._reset()

    def _unusable(self, failure: Exception) -> HsmError:
        self._reset()
        cause = (
            "it stopped answering"
            if isinstance(failure, _TokenLost)
            else (failure.__class__.__name__)
        )
        return HsmError(
            f"HSM token {self.settings.token_label!r} is not usable ({cause}); check the HSM "
            "(SoftHSM: its directories.tokendir); the next request reconnects"
        )

    def _key_cache(self) -> dict[str, Any]:
        """The key handles valid in the session the running operation uses."""
        keys: dict[str, Any] | None = getattr(self._local, "keys", None)
        return self._keys if keys is None else keys

    def _open_for_pool(self) -> Any:
        """One more session of the process: the serialised session holds the login (the
        application's, shared by all its sessions), so this is one C_OpenSession, unlocked."""
        with self._lock:
            token = self._current_session().token
        return token.open(rw=True)

    def _call(self, operation: Callable[[Any], T]) -> T:
        if self._pool is None:
            return self._call_serialised(operation)
        try:
            lease = self._pool.borrow(self._library.generation, self._open_for_pool)
        except (*_BROKEN, _TokenLost, exceptions.PKCS11Error):
            return self._call_serialised(operation)  # it recovers the token, or says why not
        self._local.keys = lease.keys
        try:
            result = operation(lease.session)
        except (*_STALE_HANDLE, *_BROKEN, _TokenLost):
            self._local.keys = None
            self._pool.discard(lease)
            # the serialised path recovers (fresh lookups, a new session, a re-initialised
            # library: every lease of the old one is then dropped) and retries once
            return self._call_serialised(operation)
        except exceptions.PKCS11Error as exc:
            self._lend_back(lease)
            raise HsmError(f"HSM error: {exc.__class__.__name__} {exc}".strip()) from exc
        except BaseException:
            self._lend_back(lease)
            raise
        self._lend_back(lease)
        return result

    def _lend_back(self, lease: Lease) -> None:
        self._local.keys = None
        assert self._pool is not None
        self._pool.give_back(lease)

    def _call_serialised(self, operation: Callable[[Any], T]) -> T:
        """Run operation(session) under the lock. A stale handle or a broken token or session
        is recovered from once (fresh lookup, or re-initialised library and new session) and
        the operation retried; no loop, so a signature costs nothing more when all is well."""
        with self._lock:
            try:
                return operation(self._current_session())
            except (*_STALE_HANDLE, *_BROKEN, _TokenLost) as exc:
                failure: Exception = exc
            except exceptions.PKCS11Error as exc:
                raise HsmError(f"HSM error: {exc.__class__.__name__} {exc}".strip()) from exc
            self._recover(failure)
            try:
                return operation(self._current_session())
            except (*_STALE_HANDLE, *_BROKEN, _TokenLost) as exc:
                raise self._unusable(exc) from exc
            except exceptions.PKCS11Error as exc:
                raise HsmError(f"HSM error: {exc.__class__.__name__} {exc}".strip()) from exc

    def check(self) -> dict[str, Any]:
        """Health probe: a real round trip to the token (C_GetTokenInfo), through the same
        recovery as a signature, within a bounded wait for the lock. Down means this process
        cannot use the token now: the module will not initialise, the token is not found or
        does not answer, or its user PIN is locked."""

        def probe(session: Any) -> dict[str, Any]:
            token = retry_opening(session.token.slot.get_token)
            if token.flags & pkcs11.TokenFlag.USER_PIN_LOCKED:
                raise HsmError(f"token {token.label!r}: the user PIN is locked")
            return {"token": token.label, "manufacturer": token.manufacturer_id.strip()}

        if not self._lock.acquire(timeout=self.CHECK_LOCK_TIMEOUT):
            raise HsmError(f"HSM busy: the token was not free within {self.CHECK_LOCK_TIMEOUT:g} s")
        try:
            return self._call(probe)
        finally:
            self._lock.release()

"""The vc_py_* entry points of libsignet-vc.so: C structures in, signet.vc.token calls, CKR
codes out. Nothing here may raise into C (cffi would answer 0, CKR_OK): every entry point turns
an exception into CKR_GENERAL_ERROR."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from signet.vc import ck

READY = 0x5167AE  # glue.c's VC_READY: Python really answered C_Initialize
MANUFACTURER = "Signet"
DEBUG = bool(os.environ.get("SIGNET_VC_DEBUG"))  # each call and its answer on stderr

_state: Any = None  # the process's signet.vc.token.Cryptoki, made by C_Initialize


def _padded(ffi: Any, field: Any, text: str) -> None:
    raw = text.encode()[: len(field)]
    ffi.memmove(field, raw.ljust(len(field), b" "), len(field))


def _guarded(function: Callable[..., int]) -> Callable[..., int]:
    @functools.wraps(function)
    def call(*args: Any) -> int:
        from signet.vc.token import Failure

        try:
            with _state.lock:
                rv = function(*args)
        except Failure as exc:
            rv = exc.rv
        except Exception as exc:  # never into the host application
            print(f"signet-vc: {function.__name__}: {exc!r}", file=sys.stderr)
            rv = ck.CKR_GENERAL_ERROR
        if DEBUG:
            print(f"signet-vc: {function.__name__} -> {rv:#x}", file=sys.stderr)
        return rv

    return call


def _fill_list(ffi: Any, items: list[int], out: Any, count: Any) -> int:
    if out == ffi.NULL:
        count[0] = len(items)
        return ck.CKR_OK
    if count[0] < len(items):
        count[0] = len(items)
        return ck.CKR_BUFFER_TOO_SMALL
    for i, item in enumerate(items):
        out[i] = item
    count[0] = len(items)
    return ck.CKR_OK


def bind(ffi: Any) -> None:
    """Define every vc_py_* function on the embedded module's ffi."""

    @ffi.def_extern()
    def vc_py_initialize() -> int:
        global _state
        try:
            from signet.vc.config import load_accounts
            from signet.vc.token import Cryptoki

            _state = Cryptoki(load_accounts())
        except Exception as exc:
            print(f"signet-vc: start-up failed: {exc!r}", file=sys.stderr)
            return ck.CKR_GENERAL_ERROR
        return READY

    @ffi.def_extern()
    @_guarded
    def vc_py_finalize() -> int:
        _state.finalize()
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_get_slot_list(present: int, out: Any, count: Any) -> int:
        return _fill_list(ffi, _state.slot_ids(), out, count)

    @ffi.def_extern()
    @_guarded
    def vc_py_get_slot_info(slot_id: int, info: Any) -> int:
        slot = _state.slot(slot_id)
        host = slot.account.server
        _padded(ffi, info.slot_description, f"Signet {slot.account.user} at {host}")
        _padded(ffi, info.manufacturer_id, MANUFACTURER)
        info.flags = ck.CKF_TOKEN_PRESENT
        info.hardware_version.major = info.firmware_version.major = 0
        info.hardware_version.minor = info.firmware_version.minor = 1
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_get_token_info(slot_id: int, info: Any) -> int:
        slot = _state.slot(slot_id)
        _padded(ffi, info.label, slot.label)
        _padded(ffi, info.manufacturer_id, MANUFACTURER)
        _padded(ffi, info.model, "Virtual Card")
        _padded(ffi, info.serial_number, _state.token_serial(slot))
        info.flags = (
            ck.CKF_RNG
            | ck.CKF_LOGIN_REQUIRED
            | ck.CKF_USER_PIN_INITIALIZED
            | ck.CKF_TOKEN_INITIALIZED
        )
        if slot.account.protected_path:
            info.flags |= ck.CKF_PROTECTED_AUTHENTICATION_PATH
        info.max_session_count = info.max_rw_session_count = 0  # effectively infinite
        info.session_count = info.rw_session_count = ck.UNAVAILABLE
        info.max_pin_len, info.min_pin_len = 1024, 1
        info.total_public_memory = info.free_public_memory = ck.UNAVAILABLE
        info.total_private_memory = info.free_private_memory = ck.UNAVAILABLE
        info.hardware_version.major = info.firmware_version.major = 0
        info.hardware_version.minor = info.firmware_version.minor = 1
        _padded(ffi, info.utc_time, "")
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_get_mechanism_list(slot_id: int, out: Any, count: Any) -> int:
        return _fill_list(ffi, _state.mechanisms(slot_id), out, count)

    @ffi.def_extern()
    @_guarded
    def vc_py_get_mechanism_info(slot_id: int, ckm: int, info: Any) -> int:
        info.min_key_size, info.max_key_size, info.flags = _state.mechanism_info(slot_id, ckm)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_open_session(slot_id: int, flags: int, out: Any) -> int:
        out[0] = _state.open_session(slot_id, flags)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_close_session(handle: int) -> int:
        _state.close_session(handle)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_close_all_sessions(slot_id: int) -> int:
        _state.close_all_sessions(slot_id)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_get_session_info(handle: int, info: Any) -> int:
        info.slot_id, info.state, info.flags = _state.session_info(handle)
        info.device_error = 0
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_login(handle: int, user_type: int, pin: Any, length: int) -> int:
        text = bytes(ffi.buffer(pin, length)).decode("utf-8", "replace") if length else ""
        _state.login(handle, user_type, text)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_check_session(handle: int) -> int:
        _state.session(handle)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_logout(handle: int) -> int:
        _state.logout(handle)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_get_attribute_value(handle: int, obj: int, template: Any, count: int) -> int:
        values = _state.attributes(handle, obj)
        private = values.get(ck.CKA_PRIVATE) == b"\x01"
        rv = ck.CKR_OK
        for i in range(count):
            attribute = template[i]
            value = values.get(attribute.type)
            if value is None:
                attribute.value_len = ck.UNAVAILABLE
                # a private key's secret parts exist but never leave the service
                sensitive = private and attribute.type in _SECRET_PARTS
                rv = ck.CKR_ATTRIBUTE_SENSITIVE if sensitive else ck.CKR_ATTRIBUTE_TYPE_INVALID
            elif attribute.value == ffi.NULL:
                attribute.value_len = len(value)
            elif attribute.value_len < len(value):
                attribute.value_len = ck.UNAVAILABLE
                rv = ck.CKR_BUFFER_TOO_SMALL
            else:
                ffi.memmove(attribute.value, value, len(value))
                attribute.value_len = len(value)
        return rv

    @ffi.def_extern()
    @_guarded
    def vc_py_find_objects_init(handle: int, template: Any, count: int) -> int:
        wanted = []
        for i in range(count):
            attribute = template[i]
            size = attribute.value_len
            if attribute.value == ffi.NULL and size:
                return ck.CKR_ARGUMENTS_BAD
            raw = bytes(ffi.buffer(attribute.value, size)) if size else b""
            wanted.append((int(attribute.type), raw))
        _state.find_init(handle, wanted)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_find_objects(handle: int, out: Any, most: int, count: Any) -> int:
        found = _state.find(handle, most)
        for i, obj in enumerate(found):
            out[i] = obj
        count[0] = len(found)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_find_objects_final(handle: int) -> int:
        _state.find_final(handle)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_sign_init(handle: int, mechanism: Any, key: int) -> int:
        pss = None
        if mechanism.parameter != ffi.NULL and mechanism.parameter_len == ffi.sizeof(
            "struct ck_rsa_pkcs_pss_params"
        ):
            params = ffi.cast("struct ck_rsa_pkcs_pss_params *", mechanism.parameter)
            pss = (int(params.hash_alg), int(params.mgf), int(params.s_len))
        _state.sign_init(handle, int(mechanism.mechanism), pss, key)
        return ck.CKR_OK

    def _output(handle: int, out: Any, length: Any, make: Callable[[], bytes]) -> int:
        needed = _state.sign_length(handle)
        if out == ffi.NULL:
            length[0] = needed
            return ck.CKR_OK
        if length[0] < needed:
            length[0] = needed
            return ck.CKR_BUFFER_TOO_SMALL
        signature = make()
        ffi.memmove(out, signature, len(signature))
        length[0] = len(signature)
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_sign(handle: int, data: Any, size: int, out: Any, length: Any) -> int:
        message = bytes(ffi.buffer(data, size)) if size else b""
        return _output(handle, out, length, lambda: _state.sign(handle, message))

    @ffi.def_extern()
    @_guarded
    def vc_py_sign_update(handle: int, part: Any, size: int) -> int:
        _state.sign_update(handle, bytes(ffi.buffer(part, size)) if size else b"")
        return ck.CKR_OK

    @ffi.def_extern()
    @_guarded
    def vc_py_sign_final(handle: int, out: Any, length: Any) -> int:
        return _output(handle, out, length, lambda: _state.sign(handle, None))


_SECRET_PARTS = {ck.CKA_VALUE, 0x123, 0x124, 0x125, 0x126, 0x127, 0x128}  # private exponent…

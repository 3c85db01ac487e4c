"""Signing in one C_Sign: C_SignInit, then a single C_Sign into a buffer already large enough,
through the function list of the PKCS#11 module python-pkcs11 loaded.

python-pkcs11 (0.10) asks C_Sign for the output's length before every signature and MAC
(`C_Sign(…, NULL, &length)`), then signs: toward a network HSM, where each call is a round trip,
three round trips where two do. Here the buffer holds any signature of a key Signet makes
(RSA-4096: 512 bytes; ECDSA P-384: 96; HMAC-SHA-256: 32), so C_Sign is called once. A module
that still answers CKR_BUFFER_TOO_SMALL keeps the operation active (PKCS#11 v2.40, 5.2) and
names the length it needs: C_Sign is called once more with that.

The module is reached with cffi in ABI mode (no compiler at run time): dlopen with RTLD_NOLOAD
returns the library python-pkcs11 already loaded, so the session and object handles it gave out
(`session.handle`, `key.handle`) are valid here. cffi releases the GIL during the call, as
python-pkcs11 does; the caller (`signet.hsm.Hsm`) owns the session for the call, serialised or
leased, exactly as for python-pkcs11's own calls. A refusal is raised as the python-pkcs11
exception of the same return value, so the caller's recovery treats it as before."""

from __future__ import annotations

from typing import Any

import cffi
from pkcs11 import exceptions

_ffi = cffi.FFI()
_ffi.cdef(
    """
    typedef unsigned long CK_ULONG;
    typedef struct { unsigned char major; unsigned char minor; } CK_VERSION;
    typedef struct {
        CK_ULONG mechanism; void *pParameter; CK_ULONG ulParameterLen;
    } CK_MECHANISM;
    typedef struct { CK_ULONG hashAlg; CK_ULONG mgf; CK_ULONG sLen; } CK_RSA_PKCS_PSS_PARAMS;
    /* the v2.40 function list, in the standard's order up to the two functions called here */
    typedef struct {
        CK_VERSION version;
        void *C_Initialize, *C_Finalize, *C_GetInfo, *C_GetFunctionList, *C_GetSlotList,
            *C_GetSlotInfo, *C_GetTokenInfo, *C_GetMechanismList, *C_GetMechanismInfo,
            *C_InitToken, *C_InitPIN, *C_SetPIN, *C_OpenSession, *C_CloseSession,
            *C_CloseAllSessions, *C_GetSessionInfo, *C_GetOperationState, *C_SetOperationState,
            *C_Login, *C_Logout, *C_CreateObject, *C_CopyObject, *C_DestroyObject,
            *C_GetObjectSize, *C_GetAttributeValue, *C_SetAttributeValue, *C_FindObjectsInit,
            *C_FindObjects, *C_FindObjectsFinal, *C_EncryptInit, *C_Encrypt, *C_EncryptUpdate,
            *C_EncryptFinal, *C_DecryptInit, *C_Decrypt, *C_DecryptUpdate, *C_DecryptFinal,
            *C_DigestInit, *C_Digest, *C_DigestUpdate, *C_DigestKey, *C_DigestFinal;
        CK_ULONG (*C_SignInit)(CK_ULONG session, CK_MECHANISM *mechanism, CK_ULONG key);
        CK_ULONG (*C_Sign)(CK_ULONG session, unsigned char *data, CK_ULONG data_length,
                           unsigned char *signature, CK_ULONG *signature_length);
    } CK_FUNCTION_LIST;
    CK_ULONG C_GetFunctionList(CK_FUNCTION_LIST **functions);
    """
)

CKR_OK = 0
CKR_BUFFER_TOO_SMALL = 0x150

# The first C_Sign's buffer: the largest signature of a key Signet makes (RSA-4096). Read at
# every call, so a test can make it small and see CKR_BUFFER_TOO_SMALL handled.
OUTPUT_BYTES = 512
_LARGEST_OUTPUT = 1 << 16  # a length beyond any signature or MAC: the module is confused

# Return values as python-pkcs11 0.10 maps them (`map_rv_to_error`), so the caller sees the
# same exception for the same refusal whichever binding made the call.
_ERRORS: dict[int, type[exceptions.PKCS11Error]] = {
    0x02: exceptions.HostMemory,
    0x03: exceptions.SlotIDInvalid,
    0x05: exceptions.GeneralError,
    0x06: exceptions.FunctionFailed,
    0x07: exceptions.ArgumentsBad,
    0x08: exceptions.NoEvent,
    0x10: exceptions.AttributeReadOnly,
    0x11: exceptions.AttributeSensitive,
    0x12: exceptions.AttributeTypeInvalid,
    0x13: exceptions.AttributeValueInvalid,
    0x20: exceptions.DataInvalid,
    0x21: exceptions.DataLenRange,
    0x30: exceptions.DeviceError,
    0x31: exceptions.DeviceMemory,
    0x32: exceptions.DeviceRemoved,
    0x40: exceptions.EncryptedDataInvalid,
    0x41: exceptions.EncryptedDataLenRange,
    0x50: exceptions.FunctionCancelled,
    0x54: exceptions.FunctionNotSupported,
    0x60: exceptions.KeyHandleInvalid,
    0x62: exceptions.KeySizeRange,
    0x63: exceptions.KeyTypeInconsistent,
    0x64: exceptions.KeyNotNeeded,
    0x66: exceptions.KeyNeeded,
    0x67: exceptions.KeyIndigestible,
    0x69: exceptions.KeyNotWrappable,
    0x6A: exceptions.KeyUnextractable,
    0x70: exceptions.MechanismInvalid,
    0x71: exceptions.MechanismParamInvalid,
    0x82: exceptions.ObjectHandleInvalid,
    0x90: exceptions.OperationActive,
    0x91: exceptions.OperationNotInitialized,
    0xA0: exceptions.PinIncorrect,
    0xA1: exceptions.PinInvalid,
    0xA2: exceptions.PinLenRange,
    0xA3: exceptions.PinExpired,
    0xA4: exceptions.PinLocked,
    0xB0: exceptions.SessionClosed,
    0xB1: exceptions.SessionCount,
    0xB3: exceptions.SessionHandleInvalid,
    0xB5: exceptions.SessionReadOnly,
    0xB6: exceptions.SessionExists,
    0xB7: exceptions.SessionReadOnlyExists,
    0xB8: exceptions.SessionReadWriteSOExists,
    0xC0: exceptions.SignatureInvalid,
    0xC1: exceptions.SignatureLenRange,
    0xD0: exceptions.TemplateIncomplete,
    0xD1: exceptions.TemplateInconsistent,
    0xE0: exceptions.TokenNotPresent,
    0xE1: exceptions.TokenNotRecognised,
    0xE2: exceptions.TokenWriteProtected,
    0xF0: exceptions.UnwrappingKeyHandleInvalid,
    0xF1: exceptions.UnwrappingKeySizeRange,
    0xF2: exceptions.UnwrappingKeyTypeInconsistent,
    0x100: exceptions.UserAlreadyLoggedIn,
    0x101: exceptions.UserNotLoggedIn,
    0x102: exceptions.UserPinNotInitialized,
    0x104: exceptions.AnotherUserAlreadyLoggedIn,
    0x105: exceptions.UserTooManyTypes,
    0x110: exceptions.WrappedKeyInvalid,
    0x112: exceptions.WrappedKeyLenRange,
    0x113: exceptions.WrappingKeyHandleInvalid,
    0x114: exceptions.WrappingKeySizeRange,
    0x115: exceptions.WrappingKeyTypeInconsistent,
    0x120: exceptions.RandomSeedNotSupported,
    0x121: exceptions.RandomNoRNG,
    0x130: exceptions.DomainParamsInvalid,
    0x1C0: exceptions.ExceededMaxIterations,
    0x1C3: exceptions.PinTooWeak,
    0x1C4: exceptions.PublicKeyInvalid,
    0x200: exceptions.FunctionRejected,
}
_MESSAGES = {
    0x150: "Buffer was too small. Should never see this.",
    0x190: "Initialisation error (not initialized). Should never see this.",
    0x191: "Initialisation error (already initialized). Should never see this.",
    0xB4: "Parallel not supported. Should never see this.",
    0x103: "User type invalid. Should never see this.",
}


def error(rv: int) -> exceptions.PKCS11Error:
    """The python-pkcs11 exception for a PKCS#11 return value other than CKR_OK."""
    if rv in _ERRORS:
        return _ERRORS[rv]()
    return exceptions.PKCS11Error(_MESSAGES.get(rv, f"Unmapped error code {hex(rv)}"))


class Module:
    """The function list of a PKCS#11 module this process has already loaded."""

    def __init__(self, path: str) -> None:
        try:
            self._library: Any = _ffi.dlopen(path, _ffi.RTLD_LAZY | _ffi.RTLD_NOLOAD)
        except OSError as exc:
            raise exceptions.PKCS11Error(f"PKCS#11 module {path} is not loaded: {exc}") from exc
        functions = _ffi.new("CK_FUNCTION_LIST **")
        rv = self._library.C_GetFunctionList(functions)
        if rv != CKR_OK:
            raise error(rv)
        if functions[0] == _ffi.NULL:
            raise exceptions.PKCS11Error(f"PKCS#11 module {path} gave no function list")
        self._functions = functions[0]

    def sign(
        self,
        session: int,
        key: int,
        mechanism: int,
        data: bytes,
        pss: tuple[int, int, int] | None = None,
    ) -> bytes:
        """C_SignInit(mechanism, key) and C_Sign(data) in `session`: the signature or MAC.
        `pss`: CK_RSA_PKCS_PSS_PARAMS (hash mechanism, MGF, salt length)."""
        mech = _ffi.new("CK_MECHANISM *")
        mech.mechanism = mechanism
        if pss is not None:
            params = _ffi.new("CK_RSA_PKCS_PSS_PARAMS *", pss)  # alive until we return
            mech.pParameter = params
            mech.ulParameterLen = _ffi.sizeof("CK_RSA_PKCS_PSS_PARAMS")
        rv = self._functions.C_SignInit(session, mech, key)
        if rv != CKR_OK:
            raise error(rv)
        source = _ffi.from_buffer("unsigned char[]", data)
        length = _ffi.new("CK_ULONG *")
        size = OUTPUT_BYTES
        for _attempt in range(2):
            output = _ffi.new("unsigned char[]", size)
            length[0] = size
            rv = self._functions.C_Sign(session, source, len(data), output, length)
            if rv == CKR_OK:
                return bytes(_ffi.buffer(output, min(length[0], size)))
            if rv != CKR_BUFFER_TOO_SMALL:  # the operation is over (PKCS#11 v2.40, 5.2)
                raise error(rv)
            if not size < length[0] <= _LARGEST_OUTPUT:
                break
            size = length[0]
        # Too small again, or no usable length named: the module's signing operation is still
        # active and only a new session ends it (a DeviceError: the Hsm opens one).
        raise exceptions.DeviceError(
            f"C_Sign refused a buffer of {size} bytes as too small (asked for {length[0]})"
        )

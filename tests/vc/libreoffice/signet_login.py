"""A LibreOffice Python macro, run inside soffice (copied into the profile's Scripts/python):
what a user does in the token password dialog LibreOffice 7.4 shows before it lists personal
certificates, which a headless soffice cannot show. It logs in to the virtual card through the
NSS that soffice uses (PK11_CheckUserPassword with no password: the token has a protected
authentication path, so the module asks its askpass)."""

import ctypes


def start(*_args):
    """Called first, so that soffice's Python (pyuno) is up before NSS loads the module, whose
    embedded Python then uses it."""
    return "started"


def login(*_args):
    nss = ctypes.CDLL("libnss3.so")
    nss.PK11_FindSlotByName.restype = ctypes.c_void_p
    nss.PK11_FindSlotByName.argtypes = [ctypes.c_char_p]
    nss.PK11_CheckUserPassword.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    nss.PK11_IsLoggedIn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    nss.PK11_FreeSlot.argtypes = [ctypes.c_void_p]
    slot = nss.PK11_FindSlotByName(b"alice")
    if not slot:
        return "no token alice"
    try:
        if nss.PK11_CheckUserPassword(slot, b"") != 0:
            return "login failed"
        return "logged in" if nss.PK11_IsLoggedIn(slot, None) else "not logged in"
    finally:
        nss.PK11_FreeSlot(slot)


g_exportedScripts = (start, login)

"""Builds libsignet-vc.so with cffi embedding: the C half (native/glue.c), the v2.40 functions
it does not implement (stubs generated from the system's pkcs11.h), and the vc_py_* entry points
that signet.vc.bridge implements in Python. Run as ``python -m signet.vc.build OUTDIR``: the
module then embeds the running interpreter (its libpython and home) and searches this source
tree and that interpreter's path. ``--search-path DIR:DIR...`` fixes the path instead, for a
module installed elsewhere (the Debian package: its private directory and the system's Python),
and ``--no-rpath`` leaves libpython to the dynamic linker (a system library)."""

from __future__ import annotations

import argparse
import re
import sys
import sysconfig
from pathlib import Path

HEADER_DIRS = ("/usr/include/p11-kit-1/p11-kit",)
NATIVE = Path(__file__).with_name("native")
# the functions glue.c implements; every other one of pkcs11.h becomes a stub
IMPLEMENTED = {
    "C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList",
    "C_GetSlotInfo", "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo",
    "C_OpenSession", "C_CloseSession", "C_CloseAllSessions", "C_GetSessionInfo", "C_Login",
    "C_Logout", "C_GetAttributeValue", "C_FindObjectsInit", "C_FindObjects",
    "C_FindObjectsFinal", "C_SignInit", "C_Sign", "C_SignUpdate", "C_SignFinal",
    "C_SeedRandom", "C_GenerateRandom",
}  # fmt: skip

# What Python implements; the structs are declared as p11-kit's header spells them (GNU names).
CDEF = """
struct ck_version { unsigned char major; unsigned char minor; };
struct ck_slot_info { unsigned char slot_description[64]; unsigned char manufacturer_id[32];
    unsigned long flags; struct ck_version hardware_version;
    struct ck_version firmware_version; };
struct ck_token_info { unsigned char label[32]; unsigned char manufacturer_id[32];
    unsigned char model[16]; unsigned char serial_number[16]; unsigned long flags;
    unsigned long max_session_count; unsigned long session_count;
    unsigned long max_rw_session_count; unsigned long rw_session_count;
    unsigned long max_pin_len; unsigned long min_pin_len; unsigned long total_public_memory;
    unsigned long free_public_memory; unsigned long total_private_memory;
    unsigned long free_private_memory; struct ck_version hardware_version;
    struct ck_version firmware_version; unsigned char utc_time[16]; };
struct ck_session_info { unsigned long slot_id; unsigned long state; unsigned long flags;
    unsigned long device_error; };
struct ck_mechanism_info { unsigned long min_key_size; unsigned long max_key_size;
    unsigned long flags; };
struct ck_attribute { unsigned long type; void *value; unsigned long value_len; };
struct ck_mechanism { unsigned long mechanism; void *parameter; unsigned long parameter_len; };
struct ck_rsa_pkcs_pss_params { unsigned long hash_alg; unsigned long mgf;
    unsigned long s_len; };
"""
API = """
unsigned long vc_py_initialize(void);
unsigned long vc_py_finalize(void);
unsigned long vc_py_get_slot_list(unsigned char, unsigned long *, unsigned long *);
unsigned long vc_py_get_slot_info(unsigned long, struct ck_slot_info *);
unsigned long vc_py_get_token_info(unsigned long, struct ck_token_info *);
unsigned long vc_py_get_mechanism_list(unsigned long, unsigned long *, unsigned long *);
unsigned long vc_py_get_mechanism_info(unsigned long, unsigned long, struct ck_mechanism_info *);
unsigned long vc_py_open_session(unsigned long, unsigned long, unsigned long *);
unsigned long vc_py_close_session(unsigned long);
unsigned long vc_py_close_all_sessions(unsigned long);
unsigned long vc_py_get_session_info(unsigned long, struct ck_session_info *);
unsigned long vc_py_login(unsigned long, unsigned long, unsigned char *, unsigned long);
unsigned long vc_py_logout(unsigned long);
unsigned long vc_py_get_attribute_value(unsigned long, unsigned long, struct ck_attribute *,
    unsigned long);
unsigned long vc_py_find_objects_init(unsigned long, struct ck_attribute *, unsigned long);
unsigned long vc_py_find_objects(unsigned long, unsigned long *, unsigned long,
    unsigned long *);
unsigned long vc_py_find_objects_final(unsigned long);
unsigned long vc_py_sign_init(unsigned long, struct ck_mechanism *, unsigned long);
unsigned long vc_py_sign(unsigned long, unsigned char *, unsigned long, unsigned char *,
    unsigned long *);
unsigned long vc_py_sign_update(unsigned long, unsigned char *, unsigned long);
unsigned long vc_py_sign_final(unsigned long, unsigned char *, unsigned long *);
unsigned long vc_py_check_session(unsigned long);
"""
INIT_CODE = """
from _signet_vc import ffi, lib
import signet.vc.bridge
signet.vc.bridge.bind(ffi)
"""
DECLARATION = re.compile(r"_CK_DECLARE_FUNCTION\s*\(\s*(C_\w+)\s*,\s*\((.*?)\)\s*\)\s*;", re.S)


def _header() -> Path:
    for folder in HEADER_DIRS:
        if (Path(folder) / "pkcs11.h").exists():
            return Path(folder)
    raise SystemExit("pkcs11.h not found: install libp11-kit-dev (make vc does)")


def function_table(header: str) -> str:
    """C stubs for the unimplemented functions, then the v2.40 function list and
    C_GetFunctionList, all in pure C."""
    names, stubs = [], []
    for name, args in DECLARATION.findall(header):
        names.append(name)
        if name in IMPLEMENTED:
            continue
        params = " ".join(args.split())
        stubs.append(f"ck_rv_t {name}({params}) {{ return vc_unsupported(); }}")
    fields = ",\n    ".join(f".{n} = {n}" for n in names)
    return "\n".join(stubs) + (
        f"\n\nstatic struct ck_function_list vc_functions = {{\n    .version = {{2, 40}},\n"
        f"    {fields}\n}};\n\n"
        "ck_rv_t C_GetFunctionList(struct ck_function_list **list)\n{\n"
        "    if (!list) return CKR_ARGUMENTS_BAD;\n"
        "    *list = &vc_functions;\n    return CKR_OK;\n}\n"
    )


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_path() -> list[str]:
    """The running interpreter's path (stdlib, its venv's packages) with the app in front."""
    app = str(Path(__file__).resolve().parents[2])
    rest = [p for p in sys.path if p and Path(p).is_dir() and p != app]
    return [app, *dict.fromkeys(rest)]


def build(outdir: Path, search: list[str] | None = None, rpath: bool = True) -> Path:
    """Compile the module into OUTDIR; ``search`` replaces the default search path, ``rpath``
    records libpython's directory in it (needed for a Python outside the system's)."""
    import cffi

    include = _header()
    libdir = sysconfig.get_config_var("LIBDIR")
    libpython = str(Path(libdir) / sysconfig.get_config_var("INSTSONAME"))
    defines = (
        f"#define VC_PYTHON_HOME {_c_string(sys.base_prefix)}\n"
        f"#define VC_LIBPYTHON {_c_string(libpython)}\n"
        f"#define VC_SEARCH_PATH {', '.join(_c_string(p) for p in search or search_path())}\n"
    )
    # the vc_py_* prototypes, once pkcs11.h has declared the structures they take
    include_line = '#include "pkcs11.h"\n'
    glue = (NATIVE / "glue.c").read_text().replace(include_line, include_line + API, 1)
    table = function_table((include / "pkcs11.h").read_text())
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.embedding_api(API)
    ffi.set_source(
        "_signet_vc",
        defines + glue + "\n" + table,
        include_dirs=[str(include)],
        extra_compile_args=["-Wall", "-Wno-unused-function"],
        extra_link_args=[
            "-Wl,-z,nodelete",
            *([f"-Wl,-rpath,{libdir}"] if rpath else []),
            "-pthread",
            "-ldl",
        ],
    )
    ffi.embedding_init_code(INIT_CODE)
    outdir.mkdir(parents=True, exist_ok=True)
    built = ffi.compile(tmpdir=str(outdir / "tmp"), target="libsignet-vc.so", verbose=False)
    final = outdir / "libsignet-vc.so"
    Path(built).replace(final)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m signet.vc.build", description=__doc__)
    parser.add_argument("outdir", nargs="?", default="build/vc", type=Path)
    parser.add_argument(
        "--search-path", help="the embedded Python's whole module path, colon-separated"
    )
    parser.add_argument("--no-rpath", action="store_true", help="no rpath to libpython's folder")
    args = parser.parse_args(argv)
    search = None
    if args.search_path is not None:
        search = [p for p in args.search_path.split(":") if p]
        if not search or any(not p.startswith("/") for p in search):
            parser.error("--search-path wants absolute folders separated by ':'")
    print(build(args.outdir, search, rpath=not args.no_rpath))
    return 0


if __name__ == "__main__":
    sys.exit(main())

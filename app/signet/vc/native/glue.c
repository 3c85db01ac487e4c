/* libsignet-vc: the C half of the module. C_GetFunctionList and the guards stay in C; Python
 * starts in C_Initialize only, isolated, with a fixed home and search path baked in at build
 * time (VC_PYTHON_HOME, VC_LIBPYTHON, VC_SEARCH_PATH), and every call that needs it is
 * forwarded to the vc_py_* functions that signet.vc.bridge implements. */
#define CRYPTOKI_GNU 1
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include "pkcs11.h"

#define VC_READY 0x5167AEUL /* what vc_py_initialize answers when Python is really there */

static volatile int vc_initialized; /* between C_Initialize and C_Finalize */
static int vc_python_ours;          /* we started the interpreter (not a Python host) */
static int vc_python_up;
static pthread_mutex_t vc_lock = PTHREAD_MUTEX_INITIALIZER;
static PyGILState_STATE vc_fork_gil;

static void vc_prepare(void) { if (vc_python_up) vc_fork_gil = PyGILState_Ensure(); }
static void vc_parent(void) { if (vc_python_up) PyGILState_Release(vc_fork_gil); }
static void vc_child(void)
{
    if (vc_python_up) {
        PyOS_AfterFork_Child();
        PyGILState_Release(vc_fork_gil);
    }
    /* PKCS#11: a child calls C_Initialize again before using the module */
    vc_initialized = 0;
}

static int vc_start_python(void)
{
    static const char *paths[] = { VC_SEARCH_PATH, NULL };
    PyConfig config;
    PyStatus status;
    if (vc_python_up) return 1;
    if (Py_IsInitialized()) { /* the host is Python itself: use its interpreter */
        vc_python_up = 1;
        return 1;
    }
    /* consumers dlopen us RTLD_LOCAL: extension modules need libpython's symbols global */
    if (!dlopen(VC_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)
        && !dlopen(VC_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL))
        return 0;
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    config.site_import = 0;
    config.write_bytecode = 0;
    config.buffered_stdio = 0;
    status = PyConfig_SetBytesString(&config, &config.home, VC_PYTHON_HOME);
    if (PyStatus_Exception(status)) goto fail;
    status = PyConfig_SetBytesString(&config, &config.program_name, "signet-vc");
    if (PyStatus_Exception(status)) goto fail;
    config.module_search_paths_set = 1;
    for (const char **p = paths; *p; p++) {
        wchar_t *wide = Py_DecodeLocale(*p, NULL);
        if (!wide) goto fail;
        status = PyWideStringList_Append(&config.module_search_paths, wide);
        PyMem_RawFree(wide);
        if (PyStatus_Exception(status)) goto fail;
    }
    status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) return 0;
    PyEval_SaveThread(); /* any thread takes the GIL through cffi from now on */
    vc_python_ours = 1;
    vc_python_up = 1;
    pthread_atfork(vc_prepare, vc_parent, vc_child);
    return 1;
fail:
    PyConfig_Clear(&config);
    return 0;
}

#define VC_GUARD() do { if (!vc_initialized) return CKR_CRYPTOKI_NOT_INITIALIZED; } while (0)

ck_rv_t C_Initialize(void *init_args)
{
    struct ck_c_initialize_args *args = init_args;
    ck_rv_t rv;
    if (args) {
        int some = args->create_mutex || args->destroy_mutex || args->lock_mutex
            || args->unlock_mutex;
        int all = args->create_mutex && args->destroy_mutex && args->lock_mutex
            && args->unlock_mutex;
        if (args->reserved || (some && !all)) return CKR_ARGUMENTS_BAD;
        /* we lock with the OS's primitives only */
        if (some && !(args->flags & CKF_OS_LOCKING_OK)) return CKR_CANT_LOCK;
    }
    pthread_mutex_lock(&vc_lock);
    if (vc_initialized) {
        pthread_mutex_unlock(&vc_lock);
        return CKR_CRYPTOKI_ALREADY_INITIALIZED;
    }
    if (!vc_start_python()) {
        pthread_mutex_unlock(&vc_lock);
        return CKR_GENERAL_ERROR;
    }
    /* if the embedded init code failed, cffi answers 0 from every call: insist on VC_READY */
    rv = vc_py_initialize() == VC_READY ? CKR_OK : CKR_GENERAL_ERROR;
    if (rv == CKR_OK) vc_initialized = 1;
    pthread_mutex_unlock(&vc_lock);
    return rv;
}

ck_rv_t C_Finalize(void *reserved)
{
    if (reserved) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&vc_lock);
    if (!vc_initialized) {
        pthread_mutex_unlock(&vc_lock);
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    vc_initialized = 0;
    vc_py_finalize(); /* the interpreter stays: it cannot be restarted safely in-process */
    pthread_mutex_unlock(&vc_lock);
    return CKR_OK;
}

static void vc_pad(unsigned char *field, size_t size, const char *text)
{
    size_t n = strlen(text);
    memset(field, ' ', size);
    memcpy(field, text, n < size ? n : size);
}

ck_rv_t C_GetInfo(struct ck_info *info)
{
    VC_GUARD();
    if (!info) return CKR_ARGUMENTS_BAD;
    memset(info, 0, sizeof *info);
    info->cryptoki_version.major = 2;
    info->cryptoki_version.minor = 40;
    vc_pad(info->manufacturer_id, sizeof info->manufacturer_id, "Signet");
    vc_pad(info->library_description, sizeof info->library_description,
           "Signet Desktop Virtual Card");
    info->library_version.major = 0;
    info->library_version.minor = 1;
    return CKR_OK;
}

#define VC_FORWARD(call) do { VC_GUARD(); return call; } while (0)

ck_rv_t C_GetSlotList(unsigned char present, ck_slot_id_t *list, unsigned long *count)
{
    VC_GUARD();
    if (!count) return CKR_ARGUMENTS_BAD;
    return vc_py_get_slot_list(present, list, count);
}

ck_rv_t C_GetSlotInfo(ck_slot_id_t slot, struct ck_slot_info *info)
{
    VC_GUARD();
    if (!info) return CKR_ARGUMENTS_BAD;
    return vc_py_get_slot_info(slot, info);
}

ck_rv_t C_GetTokenInfo(ck_slot_id_t slot, struct ck_token_info *info)
{
    VC_GUARD();
    if (!info) return CKR_ARGUMENTS_BAD;
    return vc_py_get_token_info(slot, info);
}

ck_rv_t C_GetMechanismList(ck_slot_id_t slot, ck_mechanism_type_t *list, unsigned long *count)
{
    VC_GUARD();
    if (!count) return CKR_ARGUMENTS_BAD;
    return vc_py_get_mechanism_list(slot, list, count);
}

ck_rv_t C_GetMechanismInfo(ck_slot_id_t slot, ck_mechanism_type_t type,
                           struct ck_mechanism_info *info)
{
    VC_GUARD();
    if (!info) return CKR_ARGUMENTS_BAD;
    return vc_py_get_mechanism_info(slot, type, info);
}

ck_rv_t C_OpenSession(ck_slot_id_t slot, ck_flags_t flags, void *app, ck_notify_t notify,
                      ck_session_handle_t *session)
{
    (void)app;
    (void)notify;
    VC_GUARD();
    if (!session) return CKR_ARGUMENTS_BAD;
    return vc_py_open_session(slot, flags, session);
}

ck_rv_t C_CloseSession(ck_session_handle_t session)
{
    VC_FORWARD(vc_py_close_session(session));
}

ck_rv_t C_CloseAllSessions(ck_slot_id_t slot)
{
    VC_FORWARD(vc_py_close_all_sessions(slot));
}

ck_rv_t C_GetSessionInfo(ck_session_handle_t session, struct ck_session_info *info)
{
    VC_GUARD();
    if (!info) return CKR_ARGUMENTS_BAD;
    return vc_py_get_session_info(session, info);
}

ck_rv_t C_Login(ck_session_handle_t session, ck_user_type_t user, unsigned char *pin,
                unsigned long pin_len)
{
    VC_GUARD();
    if (!pin && pin_len) return CKR_ARGUMENTS_BAD;
    return vc_py_login(session, user, pin, pin_len);
}

ck_rv_t C_Logout(ck_session_handle_t session)
{
    VC_FORWARD(vc_py_logout(session));
}

ck_rv_t C_GetAttributeValue(ck_session_handle_t session, ck_object_handle_t object,
                            struct ck_attribute *templ, unsigned long count)
{
    VC_GUARD();
    if (!templ && count) return CKR_ARGUMENTS_BAD;
    return vc_py_get_attribute_value(session, object, templ, count);
}

ck_rv_t C_FindObjectsInit(ck_session_handle_t session, struct ck_attribute *templ,
                          unsigned long count)
{
    VC_GUARD();
    if (!templ && count) return CKR_ARGUMENTS_BAD;
    return vc_py_find_objects_init(session, templ, count);
}

ck_rv_t C_FindObjects(ck_session_handle_t session, ck_object_handle_t *objects,
                      unsigned long max, unsigned long *count)
{
    VC_GUARD();
    if (!count || (!objects && max)) return CKR_ARGUMENTS_BAD;
    return vc_py_find_objects(session, objects, max, count);
}

ck_rv_t C_FindObjectsFinal(ck_session_handle_t session)
{
    VC_FORWARD(vc_py_find_objects_final(session));
}

ck_rv_t C_SignInit(ck_session_handle_t session, struct ck_mechanism *mechanism,
                   ck_object_handle_t key)
{
    VC_GUARD();
    if (!mechanism) return CKR_ARGUMENTS_BAD;
    return vc_py_sign_init(session, mechanism, key);
}

ck_rv_t C_Sign(ck_session_handle_t session, unsigned char *data, unsigned long data_len,
               unsigned char *signature, unsigned long *signature_len)
{
    VC_GUARD();
    if ((!data && data_len) || !signature_len) return CKR_ARGUMENTS_BAD;
    return vc_py_sign(session, data, data_len, signature, signature_len);
}

ck_rv_t C_SignUpdate(ck_session_handle_t session, unsigned char *part, unsigned long part_len)
{
    VC_GUARD();
    if (!part && part_len) return CKR_ARGUMENTS_BAD;
    return vc_py_sign_update(session, part, part_len);
}

ck_rv_t C_SignFinal(ck_session_handle_t session, unsigned char *signature,
                    unsigned long *signature_len)
{
    VC_GUARD();
    if (!signature_len) return CKR_ARGUMENTS_BAD;
    return vc_py_sign_final(session, signature, signature_len);
}

/* the card takes no seed */
ck_rv_t C_SeedRandom(ck_session_handle_t session, unsigned char *seed, unsigned long seed_len)
{
    (void)session; (void)seed; (void)seed_len;
    VC_GUARD();
    return CKR_RANDOM_SEED_NOT_SUPPORTED;
}

/* random bytes come from the host's kernel (getrandom), not from the remote HSM */
ck_rv_t C_GenerateRandom(ck_session_handle_t session, unsigned char *data, unsigned long len)
{
    VC_GUARD();
    if (!data && len) return CKR_ARGUMENTS_BAD;
    if (vc_py_check_session(session) != CKR_OK) return CKR_SESSION_HANDLE_INVALID;
    while (len) {
        ssize_t got = getrandom(data, len, 0);
        if (got < 0) return CKR_FUNCTION_FAILED;
        data += got;
        len -= (unsigned long)got;
    }
    return CKR_OK;
}

/* the rest of v2.40 (generated from pkcs11.h by signet.vc.build) answers
 * CKR_FUNCTION_NOT_SUPPORTED, or CKR_CRYPTOKI_NOT_INITIALIZED before C_Initialize */
static ck_rv_t vc_unsupported(void)
{
    VC_GUARD();
    return CKR_FUNCTION_NOT_SUPPORTED;
}

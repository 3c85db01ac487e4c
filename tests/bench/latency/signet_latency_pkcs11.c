/*
 * A network HSM you can benchmark on one machine: a PKCS#11 v2.40 module that forwards every
 * call to another module (SoftHSM2 by default) and, before each call that would cross the
 * network to an HSM, sleeps the configured round trip. Sleeping uses no CPU, so the shim models
 * a remote HSM's latency without stealing the cores the server under test runs on.
 *
 * It also initialises the real module with CKF_OS_LOCKING_OK whatever its caller asked:
 * python-pkcs11 calls C_Initialize(NULL), which tells SoftHSM that no thread will ever call it
 * concurrently; behind this shim concurrent sessions are safe, as they are on a network HSM.
 *
 * Environment, read at C_Initialize:
 *   SIGNET_LATENCY_MODULE  the module to forward to (default /usr/lib/softhsm/libsofthsm2.so)
 *   SIGNET_LATENCY_US      microseconds added to each round trip (default 0)
 *   SIGNET_LATENCY_TRACE   a file to append one line to for each call that pays the round trip,
 *                          after it returns: its name and return value ("C_Sign 0x0")
 *
 * What it models and what it does not: tests/bench/README.md, "The latency shim".
 * Used only by the benchmark and its tests; never installed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CRYPTOKI_GNU 1 /* p11-kit names the types in lower case */
#include <p11-kit/pkcs11.h>

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

static void *library;
static struct ck_function_list *real;
static struct ck_function_list shim;
static struct timespec round_trip;
static int trace_fd = -1;
static int in_flight, most_in_flight; /* round trips under way at once, and the most seen */

static void trace(const char *name, ck_rv_t rv);

/* Sleep the round trip. Each new most of round trips under way at once is traced as
 * "in_flight 0x<n>": whether calls overlapped, told without timing anything. */
static void travel(void)
{
    struct timespec left = round_trip;
    if (left.tv_sec == 0 && left.tv_nsec == 0)
        return;
    int now = __atomic_add_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
    int most = __atomic_load_n(&most_in_flight, __ATOMIC_SEQ_CST);
    while (now > most && !__atomic_compare_exchange_n(&most_in_flight, &most, now, 0,
                                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
    if (now > most)
        trace("in_flight", (ck_rv_t)now);
    while (nanosleep(&left, &left) == -1 && errno == EINTR)
        ;
    __atomic_sub_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
}

/* One write(2) a line on an O_APPEND file: lines from concurrent threads and processes do not
 * mix. A failed write loses the line, which the trace's reader sees as a missing call. */
static void trace(const char *name, ck_rv_t rv)
{
    if (trace_fd < 0)
        return;
    char line[96];
    int length = snprintf(line, sizeof line, "%s 0x%lx\n", name, (unsigned long)rv);
    if (length <= 0 || (size_t)length >= sizeof line)
        return;
    ssize_t written = write(trace_fd, line, (size_t)length);
    (void)written;
}

static ck_rv_t load(void)
{
    if (real != NULL)
        return CKR_OK;
    const char *path = getenv("SIGNET_LATENCY_MODULE");
    library = dlopen(path && *path ? path : DEFAULT_MODULE, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL)
        return CKR_GENERAL_ERROR;
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(library, "C_GetFunctionList");
    if (get == NULL || get(&real) != CKR_OK || real == NULL) {
        dlclose(library);
        library = NULL;
        real = NULL;
        return CKR_GENERAL_ERROR;
    }
    return CKR_OK;
}

static ck_rv_t w_Initialize(void *args)
{
    (void)args; /* replaced: the real module gets OS locking, whatever the caller asked */
    ck_rv_t rv = load();
    if (rv != CKR_OK)
        return rv;
    const char *us = getenv("SIGNET_LATENCY_US");
    long micro = us && *us ? strtol(us, NULL, 10) : 0;
    if (micro < 0)
        micro = 0;
    round_trip.tv_sec = micro / 1000000;
    round_trip.tv_nsec = (micro % 1000000) * 1000;
    if (trace_fd >= 0) /* initialised again: the environment may name another file */
        close(trace_fd);
    const char *path = getenv("SIGNET_LATENCY_TRACE");
    trace_fd = path && *path ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
    struct ck_c_initialize_args init;
    memset(&init, 0, sizeof init);
    init.flags = CKF_OS_LOCKING_OK;
    return real->C_Initialize(&init);
}

/* One wrapper per call that goes to the HSM: sleep the round trip, forward, trace. */
#define WRAP(name, params, args)                                                               \
    static ck_rv_t w_##name params                                                            \
    {                                                                                          \
        travel();                                                                              \
        ck_rv_t rv = real->C_##name args;                                                      \
        trace("C_" #name, rv);                                                                 \
        return rv;                                                                             \
    }

WRAP(GetSlotList, (unsigned char present, ck_slot_id_t *list, unsigned long *count),
     (present, list, count))
WRAP(GetTokenInfo, (ck_slot_id_t slot, struct ck_token_info *info), (slot, info))
WRAP(OpenSession,
     (ck_slot_id_t slot, ck_flags_t flags, void *app, ck_notify_t notify,
      ck_session_handle_t *session),
     (slot, flags, app, notify, session))
WRAP(CloseSession, (ck_session_handle_t s), (s))
WRAP(GetSessionInfo, (ck_session_handle_t s, struct ck_session_info *info), (s, info))
WRAP(Login, (ck_session_handle_t s, ck_user_type_t user, unsigned char *pin, unsigned long len),
     (s, user, pin, len))
WRAP(Logout, (ck_session_handle_t s), (s))
WRAP(CreateObject,
     (ck_session_handle_t s, struct ck_attribute *t, unsigned long n, ck_object_handle_t *o),
     (s, t, n, o))
WRAP(DestroyObject, (ck_session_handle_t s, ck_object_handle_t o), (s, o))
WRAP(GetAttributeValue,
     (ck_session_handle_t s, ck_object_handle_t o, struct ck_attribute *t, unsigned long n),
     (s, o, t, n))
WRAP(FindObjectsInit, (ck_session_handle_t s, struct ck_attribute *t, unsigned long n), (s, t, n))
WRAP(FindObjects,
     (ck_session_handle_t s, ck_object_handle_t *o, unsigned long max, unsigned long *n),
     (s, o, max, n))
WRAP(FindObjectsFinal, (ck_session_handle_t s), (s))
WRAP(SignInit, (ck_session_handle_t s, struct ck_mechanism *m, ck_object_handle_t k), (s, m, k))
WRAP(Sign,
     (ck_session_handle_t s, unsigned char *d, unsigned long dl, unsigned char *sig,
      unsigned long *sl),
     (s, d, dl, sig, sl))
WRAP(SignUpdate, (ck_session_handle_t s, unsigned char *d, unsigned long dl), (s, d, dl))
WRAP(SignFinal, (ck_session_handle_t s, unsigned char *sig, unsigned long *sl), (s, sig, sl))
WRAP(VerifyInit, (ck_session_handle_t s, struct ck_mechanism *m, ck_object_handle_t k), (s, m, k))
WRAP(Verify,
     (ck_session_handle_t s, unsigned char *d, unsigned long dl, unsigned char *sig,
      unsigned long sl),
     (s, d, dl, sig, sl))
WRAP(DigestInit, (ck_session_handle_t s, struct ck_mechanism *m), (s, m))
WRAP(Digest,
     (ck_session_handle_t s, unsigned char *d, unsigned long dl, unsigned char *out,
      unsigned long *ol),
     (s, d, dl, out, ol))
WRAP(GenerateKey,
     (ck_session_handle_t s, struct ck_mechanism *m, struct ck_attribute *t, unsigned long n,
      ck_object_handle_t *k),
     (s, m, t, n, k))
WRAP(GenerateKeyPair,
     (ck_session_handle_t s, struct ck_mechanism *m, struct ck_attribute *pt, unsigned long pn,
      struct ck_attribute *kt, unsigned long kn, ck_object_handle_t *pub, ck_object_handle_t *priv),
     (s, m, pt, pn, kt, kn, pub, priv))
WRAP(GenerateRandom, (ck_session_handle_t s, unsigned char *out, unsigned long n), (s, out, n))

ck_rv_t C_GetFunctionList(struct ck_function_list **list)
{
    if (list == NULL)
        return CKR_ARGUMENTS_BAD;
    ck_rv_t rv = load();
    if (rv != CKR_OK)
        return rv;
    shim = *real; /* every call not wrapped below goes straight to the real module */
    shim.C_Initialize = w_Initialize;
    shim.C_GetFunctionList = C_GetFunctionList;
#define USE(name) shim.C_##name = w_##name
    USE(GetSlotList);
    USE(GetTokenInfo);
    USE(OpenSession);
    USE(CloseSession);
    USE(GetSessionInfo);
    USE(Login);
    USE(Logout);
    USE(CreateObject);
    USE(DestroyObject);
    USE(GetAttributeValue);
    USE(FindObjectsInit);
    USE(FindObjects);
    USE(FindObjectsFinal);
    USE(SignInit);
    USE(Sign);
    USE(SignUpdate);
    USE(SignFinal);
    USE(VerifyInit);
    USE(Verify);
    USE(DigestInit);
    USE(Digest);
    USE(GenerateKey);
    USE(GenerateKeyPair);
    USE(GenerateRandom);
#undef USE
    *list = &shim;
    return CKR_OK;
}

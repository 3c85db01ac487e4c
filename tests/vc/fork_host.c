/* A host that loads libsignet-vc.so the way consumers do (dlopen RTLD_LOCAL), keeps a thread
 * calling into it, forks, and checks both sides: the child must call C_Initialize again and
 * then works; nobody deadlocks. Prints "ok" and exits 0 when all went well. */
#define CRYPTOKI_GNU 1
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "pkcs11.h"

static struct ck_function_list *f;
static volatile int stop;

static void *busy(void *arg)
{
    (void)arg;
    while (!stop) {
        unsigned long n = 0;
        if (f->C_GetSlotList(0, NULL, &n) != CKR_OK) { fprintf(stderr, "thread: list\n"); exit(3); }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    void *lib;
    ck_rv_t (*get)(struct ck_function_list **);
    unsigned long n = 0;
    pthread_t thread;
    if (argc != 2) return 2;
    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    get = (ck_rv_t (*)(struct ck_function_list **))dlsym(lib, "C_GetFunctionList");
    if (!get || get(&f) != CKR_OK) return 2;
    if (f->C_GetSlotList(0, NULL, &n) != CKR_CRYPTOKI_NOT_INITIALIZED) return 4;
    if (f->C_Initialize(NULL) != CKR_OK) return 5;
    if (f->C_Initialize(NULL) != CKR_CRYPTOKI_ALREADY_INITIALIZED) return 6;
    pthread_create(&thread, NULL, busy, NULL);
    for (int i = 0; i < 20; i++) {
        pid_t child = fork();
        if (child == 0) {
            if (f->C_GetSlotList(0, NULL, &n) != CKR_CRYPTOKI_NOT_INITIALIZED) _exit(7);
            if (f->C_Initialize(NULL) != CKR_OK) _exit(8);
            if (f->C_GetSlotList(0, NULL, &n) != CKR_OK || n != 1) _exit(9);
            if (f->C_Finalize(NULL) != CKR_OK) _exit(10);
            _exit(0);
        }
        int status = 0;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "child %d: status %d\n", i, status);
            return 11;
        }
    }
    stop = 1;
    pthread_join(thread, NULL);
    if (f->C_Finalize(NULL) != CKR_OK) return 12;
    if (f->C_Finalize(NULL) != CKR_CRYPTOKI_NOT_INITIALIZED) return 13;
    if (f->C_Initialize(NULL) != CKR_OK) return 14; /* again after C_Finalize */
    if (f->C_GetSlotList(0, NULL, &n) != CKR_OK || n != 1) return 15;
    puts("ok");
    return 0;
}

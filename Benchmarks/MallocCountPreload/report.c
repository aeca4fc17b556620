// Turns CMallocCounter's interposer (../Sources/CMallocCounter/counter.c) into an LD_PRELOAD library for a
// whole process, such as the release milvus-guard binary: scripts/count-mallocs compiles the two files into one
// shared object. On SIGUSR2 it writes the allocation count and bytes so far ("ALLOCATIONS BYTES\n") to the
// file named by MALLOC_COUNT_FILE, through a temporary file and rename(2), so a reader never sees half a
// line. The handler uses only async-signal-safe calls (open, write, close, rename) and no allocation.
// milvus-guard handles SIGTERM, SIGINT and SIGHUP itself and leaves SIGUSR2 alone.
#include "CMallocCounter.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char target[4096];
static char temporary[4096 + 8];

static size_t format_decimal(char *out, size_t value) {
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (size_t i = 0; i < n; i++) out[i] = digits[n - 1 - i];
    return n;
}

static void report(int signal) {
    (void)signal;
    int saved = errno;
    char line[64];
    size_t n = format_decimal(line, mc_allocations());
    line[n++] = ' ';
    n += format_decimal(line + n, mc_bytes());
    line[n++] = '\n';
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t written = write(fd, line, n);
        close(fd);
        if (written == (ssize_t)n) rename(temporary, target);
    }
    errno = saved;
}

__attribute__((constructor)) static void install(void) {
    const char *path = getenv("MALLOC_COUNT_FILE");
    if (path == NULL || strlen(path) >= sizeof(target)) return;
    strcpy(target, path);
    strcpy(temporary, path);
    strcat(temporary, ".tmp");
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = report;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR2, &action, NULL);
}

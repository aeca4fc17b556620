#include "CMallocCounter.h"

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static _Atomic size_t allocations;
static _Atomic size_t bytes;

static inline void count(size_t size) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes, size, memory_order_relaxed);
}

void mc_reset(void) {
    atomic_store(&allocations, 0);
    atomic_store(&bytes, 0);
}
size_t mc_allocations(void) { return atomic_load(&allocations); }
size_t mc_bytes(void) { return atomic_load(&bytes); }
size_t mc_heap_in_use(void) { return mallinfo2().uordblks; }

void *malloc(size_t size) {
    count(size);
    return __libc_malloc(size);
}
void *calloc(size_t n, size_t size) {
    count(n * size);
    return __libc_calloc(n, size);
}
void *realloc(void *pointer, size_t size) {
    count(size);
    return __libc_realloc(pointer, size);
}
void *memalign(size_t alignment, size_t size) {
    count(size);
    return __libc_memalign(alignment, size);
}
void *aligned_alloc(size_t alignment, size_t size) {
    count(size);
    return __libc_memalign(alignment, size);
}
int posix_memalign(void **out, size_t alignment, size_t size) {
    count(size);
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *out = pointer;
    return 0;
}

#ifndef CMALLOCCOUNTER_H
#define CMALLOCCOUNTER_H
#include <stddef.h>

/// Counts calls to malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign since the last reset,
/// and the bytes they requested. Defined in the executable, these functions interpose glibc's for the whole
/// process (the Swift runtime included) and forward to glibc's __libc_* implementations.
void mc_reset(void);
size_t mc_allocations(void);
size_t mc_bytes(void);
/// glibc's mallinfo2().uordblks: bytes in use on the heap now.
size_t mc_heap_in_use(void);

#endif

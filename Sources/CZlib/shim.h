#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
#include <zlib.h>

/// inflateInit2 is a macro (it passes the library version and the struct size): Swift cannot import it.
static inline int czlib_inflateInit2(z_streamp stream, int windowBits) { return inflateInit2(stream, windowBits); }
#endif

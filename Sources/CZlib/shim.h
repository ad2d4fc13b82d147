// zlib (Debian: zlib1g-dev), plus the two initialisers Swift cannot call: deflateInit2 and
// inflateInit2 are macros. windowBits 15 + 16 selects the gzip wrapper (RFC 1952), which
// InfluxDB accepts with `Content-Encoding: gzip`.
#include <zlib.h>

static inline int gridmon_deflate_init_gzip(z_stream *s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
static inline int gridmon_inflate_init_gzip(z_stream *s) { return inflateInit2(s, 15 + 16); }

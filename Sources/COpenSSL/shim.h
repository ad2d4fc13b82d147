// OpenSSL 3 (Debian: libssl-dev), plus functions for what Swift cannot call: these OpenSSL
// names are macros over SSL_ctrl / SSL_CTX_ctrl, and ERR_get_error's text needs a buffer.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>

static inline int gridmon_ssl_ctx_set_min_version(SSL_CTX *c, int v) { return (int)SSL_CTX_set_min_proto_version(c, v); }
static inline long gridmon_ssl_ctx_set_mode(SSL_CTX *c, long m) { return SSL_CTX_set_mode(c, m); }
static inline int gridmon_ssl_set_sni(SSL *s, const char *name) { return (int)SSL_set_tlsext_host_name(s, name); }
static inline long gridmon_ssl_ctx_set_session_cache_mode(SSL_CTX *c, long m) { return SSL_CTX_set_session_cache_mode(c, m); }
static inline int gridmon_tls1_2_version(void) { return TLS1_2_VERSION; }
static inline int gridmon_tls1_3_version(void) { return TLS1_3_VERSION; }
static inline long gridmon_ssl_ctx_set_read_ahead(SSL_CTX *c, int yes) { SSL_CTX_set_read_ahead(c, yes); return 1; }
static inline long gridmon_ssl_mode_partial_write(void) { return SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; }

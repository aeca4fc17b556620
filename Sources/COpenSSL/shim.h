#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/bio.h>

/// Applies the context defaults Swift cannot reach (SSL_CTX_set_min_proto_version, SSL_CTX_set_options and
/// SSL_CTX_set_mode are macros): TLS 1.2 or newer, no compression (CRIME), no renegotiation, the server's cipher
/// order, buffers released while a connection is idle, and a write may be retried from a different address (the
/// caller's buffer moves between calls). Returns 1 on success.
static inline int copenssl_ctx_apply_defaults(SSL_CTX *ctx) {
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return 0;
    // Elliptic-curve key exchange only. OpenSSL 3.0's default list also has the finite-field groups up to
    // ffdhe8192, which cost a server about 100 ms of CPU per handshake and a client next to nothing (a flood of
    // ClientHellos offering only ffdhe8192 is the "DHEat" attack). P-521 stays: it costs both sides alike, and TLS
    // 1.2 peers with P-521 certificates need it.
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384:P-521") != 1) return 0;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 1;
}

/// Limits on what a server reads of a client's certificates, and (with client certificates) no session resumption:
/// - at most `max_chain_bytes` of a certificate chain (OpenSSL's default is 100 KiB, and verifying such a chain
///   cost a red-team run 24-32 ms of CPU per handshake) and a chain of at most `max_depth` CAs above the leaf;
/// - with `mutual`, no session tickets and no session cache, so that every connection runs a full handshake and
///   its client certificate is verified again (validity dates included): a resumed session kept the identity of
///   a certificate that had expired since (up to the ticket lifetime, 2 hours).
/// SSL_CTX_set_max_cert_list, SSL_CTX_set_session_cache_mode and SSL_CTX_set_options are macros or need a cast.
static inline void copenssl_ctx_limit_server(SSL_CTX *ctx, long max_chain_bytes, int max_depth, int mutual) {
    SSL_CTX_set_max_cert_list(ctx, max_chain_bytes);
    SSL_CTX_set_verify_depth(ctx, max_depth);
    if (mutual) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
}

/// SSL_CTX_set_max_proto_version is a macro: caps a context at TLS 1.2 (tests use it to cover the TLS 1.2 path).
static inline int copenssl_ctx_set_max_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
}

/// SSL_set_tlsext_host_name is a macro: sets the SNI host name a client sends. Returns 1 on success.
static inline int copenssl_set_sni(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }

/// SSL_set_app_data / SSL_get_app_data are macros over ex_data index 0.
static inline int copenssl_set_app_data(SSL *ssl, void *data) { return SSL_set_ex_data(ssl, 0, data); }
static inline void *copenssl_get_app_data(const SSL *ssl) { return SSL_get_ex_data(ssl, 0); }

/// XN_FLAG_RFC2253 without ASN1_STRFLGS_ESC_MSB: RFC 2253 order and escaping, but UTF-8 kept as UTF-8.
static inline unsigned long copenssl_name_flags_rfc2253_utf8(void) {
    return XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
}

/// The certificates of the chain the handshake verified (the peer's first, the trusted CA last): sk_X509_num and
/// sk_X509_value are macros. 0 and NULL without one.
static inline int copenssl_verified_chain_count(const SSL *ssl) {
    STACK_OF(X509) *chain = SSL_get0_verified_chain(ssl);
    return chain == NULL ? 0 : sk_X509_num(chain);
}
static inline X509 *copenssl_verified_chain_at(const SSL *ssl, int index) {
    STACK_OF(X509) *chain = SSL_get0_verified_chain(ssl);
    return chain == NULL ? NULL : sk_X509_value(chain, index);
}

/// sk_GENERAL_NAME_num / sk_GENERAL_NAME_value are type-safe stack macros.
static inline int copenssl_general_names_count(const GENERAL_NAMES *names) { return sk_GENERAL_NAME_num(names); }

/// The string of a DNS, URI or email subject alternative name at `index`, and its GEN_* type; NULL for other types
/// (IP addresses, directory names, …).
static inline const ASN1_STRING *copenssl_general_name_string(const GENERAL_NAMES *names, int index, int *type) {
    const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, index);
    if (name == NULL) return NULL;
    *type = name->type;
    switch (name->type) {
    case GEN_DNS: return name->d.dNSName;
    case GEN_URI: return name->d.uniformResourceIdentifier;
    case GEN_EMAIL: return name->d.rfc822Name;
    default: return NULL;
    }
}

/// The subject alternative names of `cert`, or NULL; free with GENERAL_NAMES_free.
static inline GENERAL_NAMES *copenssl_subject_alt_names(X509 *cert) {
    return (GENERAL_NAMES *)X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
}

#endif

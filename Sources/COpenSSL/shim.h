#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
#include <limits.h>
#include <stdio.h>
#include <time.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/bio.h>
#include <openssl/pem.h>

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

/// A pem_password_cb that gives no passphrase.
static inline int copenssl_no_passphrase(char *buffer, int size, int rwflag, void *userdata) {
    (void)buffer; (void)size; (void)rwflag; (void)userdata;
    return 0;
}

/// Loads every CRL in the PEM file at `path` into `ctx`'s trust store and turns on revocation checks for the whole
/// chain (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL, as nginx's ssl_crl does): every CA that issued a
/// certificate of a client's chain must then have a CRL in the file, or the chain fails ("unable to get certificate
/// CRL"). Returns the number of CRLs loaded; 0 when the file has none; -1 when it can't be read or a CRL in it can't
/// be parsed or added (the error queue says why). `*next_update` is set to the earliest nextUpdate of the CRLs, in
/// seconds since the Unix epoch (LLONG_MAX when none has one).
static inline int copenssl_ctx_load_crls(SSL_CTX *ctx, const char *path, long long *next_update) {
    *next_update = LLONG_MAX;
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) return -1;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int count = 0;
    for (;;) {
        // An encrypted PEM block must fail, not prompt for a passphrase on a terminal (the reload thread would wait).
        X509_CRL *crl = PEM_read_bio_X509_CRL(bio, NULL, copenssl_no_passphrase, NULL);
        if (crl == NULL) break;
        const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
        int days = 0, seconds = 0;
        if (next != NULL && ASN1_TIME_diff(&days, &seconds, NULL, next) == 1) {
            long long at = (long long)time(NULL) + (long long)days * 86400 + seconds;
            if (at < *next_update) *next_update = at;
        }
        int added = X509_STORE_add_crl(store, crl);
        X509_CRL_free(crl);
        if (added != 1) { BIO_free(bio); return -1; }
        count += 1;
    }
    // The end of the file reads as "no start line"; anything else is a CRL that did not parse.
    unsigned long error = ERR_peek_last_error();
    if (error != 0 && !(ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE)) {
        BIO_free(bio);
        return -1;
    }
    ERR_clear_error();
    BIO_free(bio);
    if (count > 0) X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    return count;
}

/// Checks the CRLs `copenssl_ctx_load_crls` put in `ctx`'s trust store before they are used: each signed by the CA
/// certificate of the store that bears its issuer's name, if there is one (an intermediate's CRL is checked when a
/// client sends that intermediate), and in force now (lastUpdate passed, nextUpdate not); and each CA certificate of
/// the store with a CRL of its own (X509_V_FLAG_CRL_CHECK_ALL asks one of every CA of a chain).
/// A CRL that fails these would refuse every client of its CA. Returns 1, or 0 with `problem` saying what is wrong.
static inline int copenssl_ctx_check_crls(SSL_CTX *ctx, char *problem, size_t size) {
    STACK_OF(X509_OBJECT) *objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    int count = sk_X509_OBJECT_num(objects);
    char name[256];
    int ok = 1;
    for (int i = 0; i < count && ok; i++) {
        X509_CRL *crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objects, i));
        if (crl == NULL) continue;
        const X509_NAME *issuer = X509_CRL_get_issuer(crl);
        X509_NAME_oneline(issuer, name, sizeof name);
        // A CRL of a CA not in the store (an intermediate clients send) is checked when it is used; one naming a CA of
        // the store must be signed by it.
        int named_ca = 0, signed_by_ca = 0;
        for (int j = 0; j < count && !signed_by_ca; j++) {
            X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, j));
            if (ca == NULL || X509_NAME_cmp(X509_get_subject_name(ca), issuer) != 0) continue;
            named_ca = 1;
            EVP_PKEY *key = X509_get0_pubkey(ca);
            signed_by_ca = key != NULL && X509_CRL_verify(crl, key) == 1;
        }
        if (!named_ca) signed_by_ca = 1;
        const ASN1_TIME *last = X509_CRL_get0_lastUpdate(crl);
        const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
        if (!signed_by_ca) {
            snprintf(problem, size, "the CRL of %s is not signed by the CA of that name in client_ca", name);
            ok = 0;
        } else if (last != NULL && X509_cmp_time(last, NULL) >= 0) {
            snprintf(problem, size, "the CRL of %s is not in force yet (its lastUpdate is in the future)", name);
            ok = 0;
        } else if (next != NULL && X509_cmp_time(next, NULL) <= 0) {
            snprintf(problem, size, "the CRL of %s has expired (its nextUpdate has passed): publish a newer one", name);
            ok = 0;
        }
    }
    for (int j = 0; j < count && ok; j++) {
        X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, j));
        if (ca == NULL) continue;
        int covered = 0;
        for (int i = 0; i < count && !covered; i++) {
            X509_CRL *crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objects, i));
            covered = crl != NULL && X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) == 0;
        }
        if (!covered) {
            X509_NAME_oneline(X509_get_subject_name(ca), name, sizeof name);
            snprintf(problem, size, "no CRL of %s (a CA of client_ca): every CA of a client's chain needs one", name);
            ok = 0;
        }
    }
    ERR_clear_error();
    return ok;
}

/// Verifies a server connection's client certificate again, as its handshake did (the certificates the client sent
/// above it as untrusted), against `ctx`'s trust store and CRLs as they are now (a reloaded context), at the
/// current time, for a client certificate (X509_PURPOSE_SSL_CLIENT) and up to `max_depth` CAs. Returns X509_V_OK or
/// the X509_V_ERR_* code of the failure.
static inline int copenssl_verify_peer_again(const SSL *ssl, SSL_CTX *ctx, int max_depth) {
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    if (leaf == NULL || SSL_get_verify_result(ssl) != X509_V_OK) return X509_V_ERR_UNSPECIFIED;
    X509_STORE_CTX *check = X509_STORE_CTX_new();
    if (check == NULL) return X509_V_ERR_OUT_OF_MEM;
    int result = X509_V_ERR_UNSPECIFIED;
    // On a server, the peer's chain does not hold its own certificate.
    if (X509_STORE_CTX_init(check, SSL_CTX_get_cert_store(ctx), leaf, SSL_get_peer_cert_chain(ssl)) == 1) {
        X509_STORE_CTX_set_purpose(check, X509_PURPOSE_SSL_CLIENT);
        X509_STORE_CTX_set_depth(check, max_depth);
        result = X509_verify_cert(check) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(check);
    }
    X509_STORE_CTX_free(check);
    ERR_clear_error();
    return result;
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

#ifndef HASP_TLS_H
#define HASP_TLS_H
/*
 * Hasp's thin layer over Debian's OpenSSL 3 (libssl-dev). Swift cannot import OpenSSL's
 * function-like macros nor its 64-bit option constants, and callbacks that must run inside
 * libssl (ALPN choice, verification with ignored errors) are simplest in C. Everything that
 * decides *what* to do (SNI tables, configuration, state machines) stays in Swift.
 */
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Library initialisation (idempotent) and the version it reports, e.g. "OpenSSL 3.0.19 ...". */
void hasp_tls_init(void);
const char *hasp_tls_version_text(void);
unsigned long hasp_tls_version_number(void);

/* The oldest error of the thread's queue, as OpenSSL prints it ("error:0A00009C:SSL routines::http
 * request"), into `out`; the queue is then cleared. Returns 0 when the queue was empty. */
int hasp_tls_take_error(char *out, size_t outlen);
/* The reason part only ("http request"); 0 when empty. The queue is cleared. */
int hasp_tls_take_reason(char *out, size_t outlen, unsigned long *code);
void hasp_tls_clear_errors(void);

/* ---- Contexts ---- */
/* Options every context gets, as HAProxy sets them (no compression, no renegotiation, server
 * cipher preference, single DH use...). */
SSL_CTX *hasp_ctx_new_server(void);
SSL_CTX *hasp_ctx_new_client(void);

#define HASP_NO_SSLV3 0x01
#define HASP_NO_TLSV10 0x02
#define HASP_NO_TLSV11 0x04
#define HASP_NO_TLSV12 0x08
#define HASP_NO_TLSV13 0x10
#define HASP_NO_TICKETS 0x20
#define HASP_PREFER_CLIENT_CIPHERS 0x40
/* min/max: 0 (none), SSL3_VERSION, TLS1_VERSION ... TLS1_3_VERSION. */
int hasp_ctx_set_versions(SSL_CTX *ctx, int min_version, int max_version);
void hasp_ctx_set_flags(SSL_CTX *ctx, int flags);
int hasp_ctx_set_groups(SSL_CTX *ctx, const char *list);
int hasp_ctx_set_dh_auto(SSL_CTX *ctx, int bits);
/* DH parameters from a PEM text (a certificate file or `ssl-dh-param-file`): 1 when set on
 * the context, 0 when the text holds none; with a NULL context, whether it holds some. */
int hasp_ctx_set_dh_pem(SSL_CTX *ctx, const char *pem, size_t len);
/* Session tickets sealed with given keys (`tls-ticket-keys`): `count` records of `size` bytes
 * (48: AES-128, 80: AES-256; a 16-byte name, the AES key, the HMAC-SHA256 key), `encrypting`
 * the one that seals; the context keeps a copy. 1 on success. */
int hasp_ctx_set_ticket_keys(SSL_CTX *ctx, const unsigned char *records, int count, int size, int encrypting);
/* Server session cache (0 turns it off) and lifetime in seconds; the id context binds sessions
 * to one listener. */
void hasp_ctx_set_session_cache(SSL_CTX *ctx, long size, long lifetime, const unsigned char *sid, unsigned sidlen);
void hasp_ctx_set_client_session_cache(SSL_CTX *ctx);

/* Server ALPN: `wire` is the protocol list in wire format (length-prefixed), copied; chosen in
 * the server's order. */
int hasp_ctx_set_alpn_server(SSL_CTX *ctx, const unsigned char *wire, unsigned len);

/* Peer verification. mode: 0 none, 1 optional, 2 required. Errors in the ignore sets are
 * accepted (ca-ignore-err / crt-ignore-err; `all` when the flag is set). */
int hasp_ctx_set_verify(SSL_CTX *ctx, int mode, const int *ca_ignore, int ca_count, int ca_all,
                        const int *crt_ignore, int crt_count, int crt_all);
/* Loads trust anchors from PEM bytes (a file's contents) into the context's store. Returns the
 * number of certificates, or -1. `names` receives the subjects as CA names sent to clients when
 * `send_names` is set. */
int hasp_ctx_add_ca_pem(SSL_CTX *ctx, const char *pem, size_t len, int send_names);
int hasp_ctx_add_crl_pem(SSL_CTX *ctx, const char *pem, size_t len);
int hasp_ctx_use_system_ca(SSL_CTX *ctx);

/* ---- Certificates: a leaf, its chain and its key, parsed once ---- */
typedef struct hasp_cert hasp_cert;
/* Parses a PEM holding a certificate, optionally its chain and key; `keypem` (may be NULL) is
 * where the key is when the first one has none. NULL on failure, with the reason in `err`. */
hasp_cert *hasp_cert_parse(const char *pem, size_t len, const char *keypem, size_t keylen, char *err, size_t errlen);
void hasp_cert_free(hasp_cert *cert);
int hasp_cert_has_key(const hasp_cert *cert);
/* Installs leaf, chain and key into a context, checking that the key matches. */
int hasp_cert_use(SSL_CTX *ctx, const hasp_cert *cert, char *err, size_t errlen);
X509 *hasp_cert_leaf(const hasp_cert *cert);
int hasp_cert_chain_count(const hasp_cert *cert);
X509 *hasp_cert_chain_at(const hasp_cert *cert, int index);
/* 1 for an EC key, 2 RSA, 3 other. Bits in *bits. */
int hasp_cert_key_kind(const hasp_cert *cert, int *bits);

/* ---- X509 facts (fetches and `show ssl cert`) ---- */
/* The subject or issuer in OpenSSL's one-line form ("/C=FR/CN=a.test"). */
int hasp_x509_subject(X509 *x, char *out, size_t outlen);
int hasp_x509_issuer(X509 *x, char *out, size_t outlen);
/* The subject's common names, each followed by '\n'. */
int hasp_x509_common_names(X509 *x, char *out, size_t outlen);
/* DNS subjectAltNames, each followed by '\n'. */
int hasp_x509_dns_names(X509 *x, char *out, size_t outlen);
/* Serial number bytes (big-endian, as DER content). Returns the count. */
int hasp_x509_serial(X509 *x, unsigned char *out, size_t outlen);
/* notBefore / notAfter as ASN1 text (YYMMDDhhmmssZ for UTCTime) and as "Mon DD hh:mm:ss YYYY GMT". */
int hasp_x509_not_before(X509 *x, char *asn1, size_t asn1len, char *printed, size_t printedlen);
int hasp_x509_not_after(X509 *x, char *asn1, size_t asn1len, char *printed, size_t printedlen);
/* SHA-1 of the DER form (20 bytes). */
int hasp_x509_sha1(X509 *x, unsigned char out[20]);
/* Signature and key algorithm names ("ecdsa-with-SHA256", "EC256"...). */
int hasp_x509_sig_alg(X509 *x, char *out, size_t outlen);
int hasp_x509_key_alg(X509 *x, char *out, size_t outlen);
/* The public key's algorithm as its OID's long name ("id-ecPublicKey", "rsaEncryption"). */
int hasp_x509_key_oid_name(X509 *x, char *out, size_t outlen);
int hasp_x509_version(X509 *x);
/* DER encoding; returns its length (call with NULL to get the size). */
int hasp_x509_der(X509 *x, unsigned char *out, size_t outlen);

/* ---- One connection over two memory BIOs ---- */
typedef struct hasp_conn hasp_conn;
#define HASP_IO_OK 0          /* done (or bytes produced) */
#define HASP_IO_WANT_READ 1   /* needs more input */
#define HASP_IO_CLOSED 2      /* close_notify received */
#define HASP_IO_ERROR 3       /* protocol error: see hasp_tls_take_error */
hasp_conn *hasp_conn_new(SSL_CTX *ctx, int server);
void hasp_conn_free(hasp_conn *c, int clean);
SSL *hasp_conn_ssl(hasp_conn *c);
/* Ciphertext in from the network. */
int hasp_conn_feed(hasp_conn *c, const void *data, size_t len);
/* The peer closed TCP: reads past what was fed now fail (no close_notify). */
void hasp_conn_input_ended(hasp_conn *c);
int hasp_conn_handshake(hasp_conn *c);
/* Plaintext out; *got receives the count. */
int hasp_conn_read(hasp_conn *c, void *buf, size_t cap, size_t *got);
int hasp_conn_write(hasp_conn *c, const void *data, size_t len);
/* Ciphertext waiting to go to the network, and taking it. */
size_t hasp_conn_pending(hasp_conn *c);
size_t hasp_conn_take(hasp_conn *c, void *buf, size_t cap);
/* Sends close_notify (once). */
void hasp_conn_shutdown(hasp_conn *c);
int hasp_conn_handshake_done(hasp_conn *c);
/* Verification errors seen during the handshake: first error on the peer's certificate
 * (depth 0) and on its CA chain (depth > 0), 0 when none. */
int hasp_conn_crt_error(hasp_conn *c);
int hasp_conn_ca_error(hasp_conn *c);
int hasp_conn_ca_error_depth(hasp_conn *c);

/* Client side: SNI to send, host name to verify (NULL: none), ALPN offer, session to resume. */
int hasp_conn_set_sni(hasp_conn *c, const char *name);
int hasp_conn_set_verify_host(hasp_conn *c, const char *name);
int hasp_conn_set_alpn(hasp_conn *c, const unsigned char *wire, unsigned len);

/* Facts after the handshake. */
const char *hasp_conn_version(hasp_conn *c);
const char *hasp_conn_cipher(hasp_conn *c);
int hasp_conn_cipher_bits(hasp_conn *c);
const char *hasp_conn_servername(hasp_conn *c);
int hasp_conn_alpn(hasp_conn *c, char *out, size_t outlen);
int hasp_conn_resumed(hasp_conn *c);
/* The peer's certificate (a reference the caller frees with X509_free), or NULL. */
X509 *hasp_conn_peer_cert(hasp_conn *c);
/* This side's certificate (not owned). */
X509 *hasp_conn_own_cert(hasp_conn *c);
long hasp_conn_verify_result(hasp_conn *c);
/* The session to resume later (a reference, free with SSL_SESSION_free), and setting one. */
SSL_SESSION *hasp_conn_session(hasp_conn *c);
int hasp_conn_set_session(hasp_conn *c, SSL_SESSION *s);

/* Server name callback: called with the SSL, the name (NULL without SNI) and `arg`; returns 0
 * to go on (after switching context with SSL_set_SSL_CTX if wanted), 1 to refuse the handshake.
 * It runs from OpenSSL's ClientHello callback, before the protocol version and the cipher are
 * chosen, so a context picked by name brings its own versions and ciphers (hasp_ssl_set_policy). */
typedef int (*hasp_sni_cb)(SSL *ssl, const char *name, void *arg);
void hasp_ctx_set_sni_callback(SSL_CTX *ctx, hasp_sni_cb cb, void *arg);
/* Copies verification settings (mode and depth) from a context to a connection, after a
 * context switch by SNI (SSL_set_SSL_CTX keeps the first context's). */
void hasp_ssl_adopt_verify(SSL *ssl, SSL_CTX *ctx);
/* A connection's own protocol policy (a crt-list line's): version bounds (-1: leave), the
 * HASP_NO_* flags, cipher lists and groups (NULL: leave). Returns 0 when a list is refused. */
int hasp_ssl_set_policy(SSL *ssl, int min_version, int max_version, int flags, const char *ciphers,
                        const char *suites, const char *groups);

/* Inside the server name callback: which certificate keys the client can use, as haproxy
 * decides it (HASP_SIG_RSA, HASP_SIG_ECDSA): the signature algorithms it offers (RSA when it
 * sends none), ECDSA only with a cipher that authenticates with ECDSA. */
#define HASP_SIG_RSA 1
#define HASP_SIG_ECDSA 2
int hasp_ssl_client_signatures(SSL *ssl);

/* Client hello peeking for `req.ssl_sni` and friends is plain parsing, done in Swift. */

/* OpenSSL's text for an X509_V_ERR_* code. */
const char *hasp_x509_error_text(int code);

/* ---- OCSP stapling ---- */
/* One certificate's stapled response, shared by every context serving that certificate and
 * replaced at runtime (`set ssl ocsp-response`); reference counted, safe across threads. */
typedef struct hasp_ocsp_staple hasp_ocsp_staple;
hasp_ocsp_staple *hasp_ocsp_staple_new(void);
void hasp_ocsp_staple_free(hasp_ocsp_staple *s);
/* Replaces the response (DER; len 0 removes it); it is stapled until five minutes before
 * `next_update` (seconds since the epoch). */
int hasp_ocsp_staple_set(hasp_ocsp_staple *s, const unsigned char *der, size_t len, long long next_update);
/* The response's length, copied into `out` when it fits. */
size_t hasp_ocsp_staple_get(hasp_ocsp_staple *s, unsigned char *out, size_t outlen);
/* Answers status requests on the context with the staple's response (the context takes a
 * reference). */
int hasp_ctx_set_ocsp(SSL_CTX *ctx, hasp_ocsp_staple *s);
/* The OCSP certificate ID (DER) of the leaf, with its issuer from the chain or else from
 * `issuer_pem` (a `.issuer` file). Returns its length, -1 without an issuer, -2 when
 * `issuer_pem` does not hold the leaf's issuer. */
int hasp_ocsp_cert_id(const hasp_cert *cert, const char *issuer_pem, size_t issuer_len,
                      unsigned char *out, size_t outlen);
/* Checks a DER response as haproxy does (parsable, successful, one single response, status good
 * or revoked, a next update, still valid, and for `cert_id` when given). The response's own
 * certificate ID goes to `id_out` (its length in *id_outused) when it can be read. Returns 1
 * when usable, else 0 with haproxy's reason in `err`. */
int hasp_ocsp_check(const unsigned char *der, size_t len, const unsigned char *cert_id, size_t id_len,
                    unsigned char *id_out, size_t id_outlen, int *id_outused, long long *next_update,
                    char *err, size_t errlen);
/* OpenSSL's text for a certificate ID's hashes and serial, and for a whole response; the
 * length written, or -1. */
int hasp_ocsp_print_cert_id(const unsigned char *cert_id, size_t id_len, char *out, size_t outlen);
int hasp_ocsp_print_response(const unsigned char *der, size_t len, char *out, size_t outlen);

/* ---- Digests (the digest, hmac, sha1, sha2 and secure_memcmp converters) ---- */
/* Whether OpenSSL knows the message digest `name` ("sha256", "md5"...). */
int hasp_digest_known(const char *name);
/* The digest of `data` with digest `name` into `out` (at least 64 bytes); its length, or -1. */
int hasp_digest(const char *name, const unsigned char *data, size_t len, unsigned char *out);
/* The HMAC of `data` with digest `name` and `key` into `out` (at least 64 bytes); its length, or -1. */
int hasp_hmac(const char *name, const unsigned char *key, size_t keylen, const unsigned char *data, size_t len,
              unsigned char *out);
/* Constant-time comparison of two buffers of the same length: 1 when equal. */
int hasp_memcmp_equal(const unsigned char *a, const unsigned char *b, size_t len);

#endif

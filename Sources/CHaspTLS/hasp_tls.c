// Hasp's OpenSSL layer: see include/hasp_tls.h for what each function is for.
#include "hasp_tls.h"
#include <string.h>
#include <stdlib.h>
#include <openssl/pem.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <openssl/opensslv.h>

static int conn_index = -1;      // SSL ex data: the hasp_conn that owns the SSL
static int verify_index = -1;    // SSL_CTX ex data: struct verify_conf
static int alpn_index = -1;      // SSL_CTX ex data: struct alpn_list
static int sni_index = -1;       // SSL_CTX ex data: struct sni_hook

static void free_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    free(ptr);
}

static int ticket_keys_index = -1;
static void free_ticket_keys(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp);

void hasp_tls_init(void) {
    static int done = 0;
    if (done) return;
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
    conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    verify_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ex);
    alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ex);
    sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ex);
    ticket_keys_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ticket_keys);
    done = 1;
}

const char *hasp_tls_version_text(void) { return OpenSSL_version(OPENSSL_VERSION); }
unsigned long hasp_tls_version_number(void) { return OpenSSL_version_num(); }

int hasp_tls_take_error(char *out, size_t outlen) {
    unsigned long e = ERR_get_error();
    if (e == 0) return 0;
    ERR_error_string_n(e, out, outlen);
    ERR_clear_error();
    return 1;
}

int hasp_tls_take_reason(char *out, size_t outlen, unsigned long *code) {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (code) *code = e;
    if (e == 0) return 0;
    const char *r = ERR_reason_error_string(e);
    snprintf(out, outlen, "%s", r ? r : "unknown error");
    return 1;
}

void hasp_tls_clear_errors(void) { ERR_clear_error(); }

// ---- Contexts ----

static void base_options(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_ALL | SSL_OP_NO_COMPRESSION | SSL_OP_SINGLE_DH_USE | SSL_OP_SINGLE_ECDH_USE
                        | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    // TLS 1.2 is HAProxy's default floor.
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

SSL_CTX *hasp_ctx_new_server(void) {
    hasp_tls_init();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return NULL;
    base_options(ctx);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
    return ctx;
}

SSL_CTX *hasp_ctx_new_client(void) {
    hasp_tls_init();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return NULL;
    base_options(ctx);
    return ctx;
}

int hasp_ctx_set_versions(SSL_CTX *ctx, int min_version, int max_version) {
    int ok = 1;
    if (min_version >= 0) ok &= SSL_CTX_set_min_proto_version(ctx, min_version);
    if (max_version >= 0) ok &= SSL_CTX_set_max_proto_version(ctx, max_version);
    return ok;
}

/* The SSL_OP_* bits of HASP_NO_* flags. */
static uint64_t options_of(int flags) {
    uint64_t set = 0;
    if (flags & HASP_NO_SSLV3) set |= SSL_OP_NO_SSLv3;
    if (flags & HASP_NO_TLSV10) set |= SSL_OP_NO_TLSv1;
    if (flags & HASP_NO_TLSV11) set |= SSL_OP_NO_TLSv1_1;
    if (flags & HASP_NO_TLSV12) set |= SSL_OP_NO_TLSv1_2;
    if (flags & HASP_NO_TLSV13) set |= SSL_OP_NO_TLSv1_3;
    if (flags & HASP_NO_TICKETS) set |= SSL_OP_NO_TICKET;
    return set;
}

void hasp_ctx_set_flags(SSL_CTX *ctx, int flags) {
    SSL_CTX_set_options(ctx, options_of(flags));
    if (flags & HASP_PREFER_CLIENT_CIPHERS) SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
}

int hasp_ctx_set_groups(SSL_CTX *ctx, const char *list) { return (int)SSL_CTX_set1_groups_list(ctx, list); }

int hasp_ctx_set_dh_auto(SSL_CTX *ctx, int bits) {
    (void)bits;
    return (int)SSL_CTX_set_dh_auto(ctx, 1);
}

int hasp_ctx_set_dh_pem(SSL_CTX *ctx, const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return 0;
    /* Reads the first parameters block, skipping certificates and keys before it. */
    EVP_PKEY *params = PEM_read_bio_Parameters(bio, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (!params) return 0;
    if (EVP_PKEY_get_base_id(params) != EVP_PKEY_DH) { EVP_PKEY_free(params); return 0; }
    if (!ctx) { EVP_PKEY_free(params); return 1; }
    if (SSL_CTX_set0_tmp_dh_pkey(ctx, params) != 1) { EVP_PKEY_free(params); return 0; }
    return 1;
}

struct hasp_ticket_keys {
    int count, size, encrypting;
    unsigned char records[];
};

static void free_ticket_keys(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    OPENSSL_clear_free(ptr, ptr ? sizeof(struct hasp_ticket_keys) + (size_t)((struct hasp_ticket_keys *)ptr)->count
                                                                    * (size_t)((struct hasp_ticket_keys *)ptr)->size : 0);
}

/* The ring is tried from the encrypting key on, as HAProxy does: a ticket sealed with another
 * key is accepted and renewed (2). */
static int ticket_key_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                         EVP_MAC_CTX *hctx, int enc) {
    struct hasp_ticket_keys *k = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ticket_keys_index);
    if (!k) return -1;
    int half = (k->size - 16) / 2;
    const EVP_CIPHER *cipher = half == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (enc) {
        const unsigned char *key = k->records + (size_t)k->encrypting * (size_t)k->size;
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) <= 0) return -1;
        memcpy(key_name, key, 16);
        if (!EVP_EncryptInit_ex(ectx, cipher, NULL, key + 16, iv)) return -1;
        if (!EVP_MAC_init(hctx, key + 16 + half, (size_t)half, params)) return -1;
        return 1;
    }
    for (int i = 0; i < k->count; i++) {
        int slot = (k->encrypting + i) % k->count;
        const unsigned char *key = k->records + (size_t)slot * (size_t)k->size;
        if (memcmp(key_name, key, 16) != 0) continue;
        if (!EVP_MAC_init(hctx, key + 16 + half, (size_t)half, params)) return -1;
        if (!EVP_DecryptInit_ex(ectx, cipher, NULL, key + 16, iv)) return -1;
        return i ? 2 : 1;
    }
    return 0;
}

int hasp_ctx_set_ticket_keys(SSL_CTX *ctx, const unsigned char *records, int count, int size, int encrypting) {
    if (count <= 0 || (size != 48 && size != 80) || encrypting < 0 || encrypting >= count) return 0;
    if (ticket_keys_index < 0) return 0;
    size_t bytes = (size_t)count * (size_t)size;
    struct hasp_ticket_keys *k = OPENSSL_malloc(sizeof(*k) + bytes);
    if (!k) return 0;
    k->count = count;
    k->size = size;
    k->encrypting = encrypting;
    memcpy(k->records, records, bytes);
    if (!SSL_CTX_set_ex_data(ctx, ticket_keys_index, k)) { OPENSSL_clear_free(k, sizeof(*k) + bytes); return 0; }
    return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) == 1;
}

void hasp_ctx_set_session_cache(SSL_CTX *ctx, long size, long lifetime, const unsigned char *sid, unsigned sidlen) {
    if (size <= 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    } else {
        // No automatic flush: OpenSSL would walk the whole cache every 255 new sessions (a
        // full cache evicts its oldest entry anyway).
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR);
        SSL_CTX_sess_set_cache_size(ctx, size);
    }
    if (lifetime > 0) SSL_CTX_set_timeout(ctx, lifetime);
    if (sidlen > SSL_MAX_SID_CTX_LENGTH) sidlen = SSL_MAX_SID_CTX_LENGTH;
    SSL_CTX_set_session_id_context(ctx, sid, sidlen);
}

void hasp_ctx_set_client_session_cache(SSL_CTX *ctx) {
    // Sessions are kept per server by Hasp itself (SSL_get1_session / SSL_set_session).
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
}

struct alpn_list { unsigned len; unsigned char wire[]; };

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg) {
    (void)arg;
    struct alpn_list *list = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index);
    if (!list) return SSL_TLSEXT_ERR_NOACK;
    unsigned char *chosen = NULL;
    // Server preference: the first of ours that the client offers.
    if (SSL_select_next_proto(&chosen, outlen, list->wire, list->len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

int hasp_ctx_set_alpn_server(SSL_CTX *ctx, const unsigned char *wire, unsigned len) {
    hasp_tls_init();
    struct alpn_list *list = malloc(sizeof(*list) + len);
    if (!list) return 0;
    list->len = len;
    memcpy(list->wire, wire, len);
    void *old = SSL_CTX_get_ex_data(ctx, alpn_index);
    SSL_CTX_set_ex_data(ctx, alpn_index, list);
    free(old);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return 1;
}

struct verify_conf {
    int ca_all, crt_all, ca_count, crt_count;
    int codes[];  // ca codes then crt codes
};

static int contains(const int *codes, int count, int code) {
    for (int i = 0; i < count; i++) if (codes[i] == code) return 1;
    return 0;
}

static int verify_cb(int ok, X509_STORE_CTX *store) {
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (ok || !ssl) return ok;
    hasp_conn *c = SSL_get_ex_data(ssl, conn_index);
    struct verify_conf *vc = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), verify_index);
    int err = X509_STORE_CTX_get_error(store);
    int depth = X509_STORE_CTX_get_error_depth(store);
    extern void hasp_conn_note_verify(hasp_conn *c, int err, int depth);
    if (c) hasp_conn_note_verify(c, err, depth);
    if (!vc) return 0;
    int ignored = depth > 0 ? (vc->ca_all || contains(vc->codes, vc->ca_count, err))
                            : (vc->crt_all || contains(vc->codes + vc->ca_count, vc->crt_count, err));
    if (ignored) {
        X509_STORE_CTX_set_error(store, X509_V_OK);
        return 1;
    }
    return 0;
}

int hasp_ctx_set_verify(SSL_CTX *ctx, int mode, const int *ca_ignore, int ca_count, int ca_all,
                        const int *crt_ignore, int crt_count, int crt_all) {
    hasp_tls_init();
    int flags = SSL_VERIFY_NONE;
    if (mode == 1) flags = SSL_VERIFY_PEER;
    if (mode == 2) flags = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    struct verify_conf *vc = malloc(sizeof(*vc) + sizeof(int) * (size_t)(ca_count + crt_count));
    if (!vc) return 0;
    vc->ca_all = ca_all; vc->crt_all = crt_all; vc->ca_count = ca_count; vc->crt_count = crt_count;
    if (ca_count) memcpy(vc->codes, ca_ignore, sizeof(int) * (size_t)ca_count);
    if (crt_count) memcpy(vc->codes + ca_count, crt_ignore, sizeof(int) * (size_t)crt_count);
    void *old = SSL_CTX_get_ex_data(ctx, verify_index);
    SSL_CTX_set_ex_data(ctx, verify_index, vc);
    free(old);
    SSL_CTX_set_verify(ctx, flags, mode ? verify_cb : NULL);
    return 1;
}

/* Adds the certificates (unless crl_only) and the CRLs of a PEM to the context's store.
 * Returns how many of the wanted kind were added, or -1 when the PEM does not parse. */
static int add_pem_to_store(SSL_CTX *ctx, const char *pem, size_t len, int crl_only, int send_names) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return -1;
    STACK_OF(X509_INFO) *infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!infos) return -1;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int count = 0;
    for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);
        if (info->x509 && !crl_only) {
            X509_STORE_add_cert(store, info->x509);
            if (send_names) SSL_CTX_add_client_CA(ctx, info->x509);
            count++;
        }
        if (info->crl) {
            X509_STORE_add_crl(store, info->crl);
            if (crl_only) count++;
        }
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    ERR_clear_error();
    return count;
}

int hasp_ctx_add_ca_pem(SSL_CTX *ctx, const char *pem, size_t len, int send_names) {
    return add_pem_to_store(ctx, pem, len, 0, send_names);
}

int hasp_ctx_add_crl_pem(SSL_CTX *ctx, const char *pem, size_t len) {
    int count = add_pem_to_store(ctx, pem, len, 1, 0);
    if (count <= 0) return -1;
    X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    return count;
}

int hasp_ctx_use_system_ca(SSL_CTX *ctx) { return SSL_CTX_set_default_verify_paths(ctx); }

// ---- Certificates ----

struct hasp_cert {
    X509 *leaf;
    STACK_OF(X509) *chain;
    EVP_PKEY *key;
};

static void set_err(char *err, size_t errlen, const char *fallback) {
    if (!err || errlen == 0) return;
    unsigned long e = ERR_peek_last_error();
    if (e) {
        const char *r = ERR_reason_error_string(e);
        snprintf(err, errlen, "%s", r ? r : fallback);
    } else {
        snprintf(err, errlen, "%s", fallback);
    }
    ERR_clear_error();
}

static EVP_PKEY *read_key(const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return NULL;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return key;
}

hasp_cert *hasp_cert_parse(const char *pem, size_t len, const char *keypem, size_t keylen, char *err, size_t errlen) {
    hasp_tls_init();
    ERR_clear_error();
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) { set_err(err, errlen, "out of memory"); return NULL; }
    X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
    if (!leaf) {
        BIO_free(bio);
        set_err(err, errlen, "no certificate found");
        return NULL;
    }
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *extra;
    while ((extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) sk_X509_push(chain, extra);
    BIO_free(bio);
    ERR_clear_error();
    EVP_PKEY *key = read_key(pem, len);
    ERR_clear_error();
    if (!key && keypem) {
        key = read_key(keypem, keylen);
        if (!key) {
            set_err(err, errlen, "no private key found");
            X509_free(leaf);
            sk_X509_pop_free(chain, X509_free);
            return NULL;
        }
    }
    if (key && X509_check_private_key(leaf, key) != 1) {
        set_err(err, errlen, "inconsistent private key");
        X509_free(leaf);
        EVP_PKEY_free(key);
        sk_X509_pop_free(chain, X509_free);
        return NULL;
    }
    hasp_cert *cert = calloc(1, sizeof(*cert));
    cert->leaf = leaf;
    cert->chain = chain;
    cert->key = key;
    return cert;
}

void hasp_cert_free(hasp_cert *cert) {
    if (!cert) return;
    X509_free(cert->leaf);
    sk_X509_pop_free(cert->chain, X509_free);
    EVP_PKEY_free(cert->key);
    free(cert);
}

int hasp_cert_has_key(const hasp_cert *cert) { return cert->key != NULL; }

int hasp_cert_use(SSL_CTX *ctx, const hasp_cert *cert, char *err, size_t errlen) {
    ERR_clear_error();
    if (SSL_CTX_use_certificate(ctx, cert->leaf) != 1) { set_err(err, errlen, "cannot use certificate"); return 0; }
    if (!cert->key || SSL_CTX_use_PrivateKey(ctx, cert->key) != 1) { set_err(err, errlen, "cannot use private key"); return 0; }
    for (int i = 0; i < sk_X509_num(cert->chain); i++) {
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(cert->chain, i)) != 1) { set_err(err, errlen, "cannot use chain"); return 0; }
    }
    if (SSL_CTX_check_private_key(ctx) != 1) { set_err(err, errlen, "inconsistent private key"); return 0; }
    return 1;
}

X509 *hasp_cert_leaf(const hasp_cert *cert) { return cert->leaf; }
int hasp_cert_chain_count(const hasp_cert *cert) { return sk_X509_num(cert->chain); }
X509 *hasp_cert_chain_at(const hasp_cert *cert, int index) { return sk_X509_value(cert->chain, index); }

int hasp_cert_key_kind(const hasp_cert *cert, int *bits) {
    if (!cert->key) { *bits = 0; return 0; }
    *bits = EVP_PKEY_get_bits(cert->key);
    switch (EVP_PKEY_get_base_id(cert->key)) {
    case EVP_PKEY_EC: return 1;
    case EVP_PKEY_RSA: return 2;
    default: return 3;
    }
}

// ---- X509 facts ----

int hasp_x509_subject(X509 *x, char *out, size_t outlen) {
    return X509_NAME_oneline(X509_get_subject_name(x), out, (int)outlen) != NULL;
}

int hasp_x509_issuer(X509 *x, char *out, size_t outlen) {
    return X509_NAME_oneline(X509_get_issuer_name(x), out, (int)outlen) != NULL;
}

static size_t append(char *out, size_t outlen, size_t used, const unsigned char *s, size_t n) {
    if (used + n + 2 > outlen) return used;
    memcpy(out + used, s, n);
    used += n;
    out[used++] = '\n';
    out[used] = 0;
    return used;
}

int hasp_x509_common_names(X509 *x, char *out, size_t outlen) {
    X509_NAME *name = X509_get_subject_name(x);
    size_t used = 0;
    if (outlen) out[0] = 0;
    int i = -1;
    while ((i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0) {
        ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, data);
        if (n >= 0) { used = append(out, outlen, used, utf8, (size_t)n); OPENSSL_free(utf8); }
    }
    return (int)used;
}

int hasp_x509_dns_names(X509 *x, char *out, size_t outlen) {
    size_t used = 0;
    if (outlen) out[0] = 0;
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (!names) return 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_DNS) continue;
        const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
        used = append(out, outlen, used, s, (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(names);
    return (int)used;
}

int hasp_x509_serial(X509 *x, unsigned char *out, size_t outlen) {
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (!bn) return 0;
    int n = BN_num_bytes(bn);
    if ((size_t)n > outlen) { BN_free(bn); return 0; }
    BN_bn2bin(bn, out);
    BN_free(bn);
    return n;
}

static int time_texts(const ASN1_TIME *t, char *asn1, size_t asn1len, char *printed, size_t printedlen) {
    int n = ASN1_STRING_length(t);
    if ((size_t)n >= asn1len) n = (int)asn1len - 1;
    memcpy(asn1, ASN1_STRING_get0_data(t), (size_t)n);
    asn1[n] = 0;
    BIO *bio = BIO_new(BIO_s_mem());
    ASN1_TIME_print(bio, t);
    int m = BIO_read(bio, printed, (int)printedlen - 1);
    printed[m > 0 ? m : 0] = 0;
    BIO_free(bio);
    return 1;
}

int hasp_x509_not_before(X509 *x, char *asn1, size_t asn1len, char *printed, size_t printedlen) {
    return time_texts(X509_get0_notBefore(x), asn1, asn1len, printed, printedlen);
}

int hasp_x509_not_after(X509 *x, char *asn1, size_t asn1len, char *printed, size_t printedlen) {
    return time_texts(X509_get0_notAfter(x), asn1, asn1len, printed, printedlen);
}

int hasp_x509_sha1(X509 *x, unsigned char out[20]) {
    unsigned int n = 0;
    return X509_digest(x, EVP_sha1(), out, &n) == 1 && n == 20;
}

int hasp_x509_sig_alg(X509 *x, char *out, size_t outlen) {
    const char *name = OBJ_nid2ln(X509_get_signature_nid(x));
    snprintf(out, outlen, "%s", name ? name : "unknown");
    return 1;
}

int hasp_x509_key_alg(X509 *x, char *out, size_t outlen) {
    EVP_PKEY *key = X509_get0_pubkey(x);
    if (!key) { snprintf(out, outlen, "unknown"); return 0; }
    int bits = EVP_PKEY_get_bits(key);
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: snprintf(out, outlen, "EC%d", bits); break;
    case EVP_PKEY_RSA: snprintf(out, outlen, "RSA%d", bits); break;
    case EVP_PKEY_DSA: snprintf(out, outlen, "DSA%d", bits); break;
    default: snprintf(out, outlen, "%s", OBJ_nid2sn(EVP_PKEY_get_base_id(key))); break;
    }
    return 1;
}

int hasp_x509_key_oid_name(X509 *x, char *out, size_t outlen) {
    ASN1_OBJECT *obj = NULL;
    X509_PUBKEY *pub = X509_get_X509_PUBKEY(x);
    if (!pub || X509_PUBKEY_get0_param(&obj, NULL, NULL, NULL, pub) != 1 || !obj) { snprintf(out, outlen, "unknown"); return 0; }
    const char *name = OBJ_nid2ln(OBJ_obj2nid(obj));
    snprintf(out, outlen, "%s", name ? name : "unknown");
    return 1;
}

int hasp_x509_version(X509 *x) { return (int)X509_get_version(x) + 1; }

int hasp_x509_der(X509 *x, unsigned char *out, size_t outlen) {
    int n = i2d_X509(x, NULL);
    if (!out || n < 0 || (size_t)n > outlen) return n;
    unsigned char *p = out;
    return i2d_X509(x, &p);
}

const char *hasp_x509_error_text(int code) { return X509_verify_cert_error_string(code); }

// ---- Connections ----

struct hasp_conn {
    SSL *ssl;
    BIO *rbio, *wbio;
    int crt_err, ca_err, ca_depth;
    int shut;
};

void hasp_conn_note_verify(hasp_conn *c, int err, int depth) {
    if (depth > 0) {
        if (!c->ca_err) { c->ca_err = err; c->ca_depth = depth; }
    } else if (!c->crt_err) {
        c->crt_err = err;
    }
}

hasp_conn *hasp_conn_new(SSL_CTX *ctx, int server) {
    hasp_conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->ssl = SSL_new(ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        if (c->ssl) SSL_free(c->ssl);
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        free(c);
        return NULL;
    }
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_ex_data(c->ssl, conn_index, c);
    if (server) SSL_set_accept_state(c->ssl); else SSL_set_connect_state(c->ssl);
    return c;
}

void hasp_conn_free(hasp_conn *c, int clean) {
    if (!c) return;
    if (clean && SSL_is_init_finished(c->ssl)) {
        // Freed without a shutdown, the session could not be resumed.
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    SSL_free(c->ssl);  // frees both BIOs
    free(c);
}

SSL *hasp_conn_ssl(hasp_conn *c) { return c->ssl; }

int hasp_conn_feed(hasp_conn *c, const void *data, size_t len) {
    return BIO_write(c->rbio, data, (int)len);
}

void hasp_conn_input_ended(hasp_conn *c) { BIO_set_mem_eof_return(c->rbio, 0); }

static int classify(hasp_conn *c, int ret) {
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return HASP_IO_WANT_READ;
    case SSL_ERROR_ZERO_RETURN:
        return HASP_IO_CLOSED;
    default:
        return HASP_IO_ERROR;
    }
}

int hasp_conn_handshake(hasp_conn *c) {
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) return HASP_IO_OK;
    return classify(c, r);
}

int hasp_conn_read(hasp_conn *c, void *buf, size_t cap, size_t *got) {
    ERR_clear_error();
    *got = 0;
    if (SSL_read_ex(c->ssl, buf, cap, got) == 1) return HASP_IO_OK;
    return classify(c, 0);
}

int hasp_conn_write(hasp_conn *c, const void *data, size_t len) {
    ERR_clear_error();
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        if (SSL_write_ex(c->ssl, (const char *)data + done, len - done, &n) != 1) return classify(c, 0);
        done += n;
    }
    return HASP_IO_OK;
}

size_t hasp_conn_pending(hasp_conn *c) { return BIO_ctrl_pending(c->wbio); }

size_t hasp_conn_take(hasp_conn *c, void *buf, size_t cap) {
    int n = BIO_read(c->wbio, buf, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

void hasp_conn_shutdown(hasp_conn *c) {
    if (c->shut || !SSL_is_init_finished(c->ssl)) return;
    c->shut = 1;
    ERR_clear_error();
    SSL_shutdown(c->ssl);
    ERR_clear_error();
}

int hasp_conn_handshake_done(hasp_conn *c) { return SSL_is_init_finished(c->ssl); }
int hasp_conn_crt_error(hasp_conn *c) { return c->crt_err; }
int hasp_conn_ca_error(hasp_conn *c) { return c->ca_err; }
int hasp_conn_ca_error_depth(hasp_conn *c) { return c->ca_depth; }

int hasp_conn_set_sni(hasp_conn *c, const char *name) { return (int)SSL_set_tlsext_host_name(c->ssl, name); }

int hasp_conn_set_verify_host(hasp_conn *c, const char *name) {
    SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(c->ssl, name);
}

int hasp_conn_set_alpn(hasp_conn *c, const unsigned char *wire, unsigned len) {
    return SSL_set_alpn_protos(c->ssl, wire, len) == 0;
}

const char *hasp_conn_version(hasp_conn *c) { return SSL_get_version(c->ssl); }

const char *hasp_conn_cipher(hasp_conn *c) {
    const SSL_CIPHER *cipher = SSL_get_current_cipher(c->ssl);
    return cipher ? SSL_CIPHER_get_name(cipher) : NULL;
}

int hasp_conn_cipher_bits(hasp_conn *c) {
    const SSL_CIPHER *cipher = SSL_get_current_cipher(c->ssl);
    return cipher ? SSL_CIPHER_get_bits(cipher, NULL) : 0;
}

const char *hasp_conn_servername(hasp_conn *c) { return SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name); }

int hasp_conn_alpn(hasp_conn *c, char *out, size_t outlen) {
    const unsigned char *data = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected(c->ssl, &data, &len);
    if (!data || len == 0 || len >= outlen) { if (outlen) out[0] = 0; return 0; }
    memcpy(out, data, len);
    out[len] = 0;
    return (int)len;
}

int hasp_conn_resumed(hasp_conn *c) { return SSL_session_reused(c->ssl); }
X509 *hasp_conn_peer_cert(hasp_conn *c) { return SSL_get1_peer_certificate(c->ssl); }
X509 *hasp_conn_own_cert(hasp_conn *c) { return SSL_get_certificate(c->ssl); }
long hasp_conn_verify_result(hasp_conn *c) { return SSL_get_verify_result(c->ssl); }
SSL_SESSION *hasp_conn_session(hasp_conn *c) { return SSL_get1_session(c->ssl); }
int hasp_conn_set_session(hasp_conn *c, SSL_SESSION *s) { return SSL_set_session(c->ssl, s); }

// ---- SNI ----

struct sni_hook { hasp_sni_cb cb; void *arg; };

/* The host name of a raw server_name extension (RFC 6066: list length, type, name length,
 * name), into `out`; NULL when absent or malformed. */
static const char *host_name(const unsigned char *p, size_t len, char *out, size_t outlen) {
    if (len < 5) return NULL;
    size_t list = ((size_t)p[0] << 8) | p[1];
    if (list + 2 > len || p[2] != TLSEXT_NAMETYPE_host_name) return NULL;
    size_t n = ((size_t)p[3] << 8) | p[4];
    if (n == 0 || n + 5 > len || n >= outlen) return NULL;
    memcpy(out, p + 5, n);
    out[n] = 0;
    return out;
}

/* Runs before OpenSSL picks the version and the cipher, so the context chosen by name decides
 * them (a servername callback would come too late for that). */
static int client_hello_cb(SSL *ssl, int *alert, void *arg) {
    (void)arg;
    struct sni_hook *hook = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sni_index);
    if (!hook) return SSL_CLIENT_HELLO_SUCCESS;
    const unsigned char *ext = NULL;
    size_t len = 0;
    char buffer[256];
    const char *name = NULL;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) == 1) name = host_name(ext, len, buffer, sizeof(buffer));
    if (hook->cb(ssl, name, hook->arg) != 0) {
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

int hasp_ssl_client_signatures(SSL *ssl) {
    const unsigned char *ext = NULL;
    size_t len = 0;
    int rsa = 0, ecdsa = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_signature_algorithms, &ext, &len) == 1) {
        if (len < 2) return 0;
        size_t list = ((size_t)ext[0] << 8) | ext[1];
        if (list + 2 != len || list % 2 != 0) return 0;
        for (size_t i = 2; i + 1 < len; i += 2) {
            // Each scheme is (hash, signature) in the TLS 1.2 encoding the list keeps.
            if (ext[i + 1] == TLSEXT_signature_rsa) rsa = 1;
            else if (ext[i + 1] == TLSEXT_signature_ecdsa) ecdsa = 1;
        }
    } else {
        rsa = 1;   // no extension: before TLS 1.2, RSA
    }
    if (ecdsa) {
        // An ECDSA signature is only usable with a cipher that authenticates with ECDSA.
        const unsigned char *suites = NULL;
        size_t count = SSL_client_hello_get0_ciphers(ssl, &suites);
        ecdsa = 0;
        for (size_t i = 0; i + 1 < count; i += 2) {
            const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, suites + i);
            if (cipher && SSL_CIPHER_get_auth_nid(cipher) == NID_auth_ecdsa) { ecdsa = 1; break; }
        }
    }
    return (rsa ? HASP_SIG_RSA : 0) | (ecdsa ? HASP_SIG_ECDSA : 0);
}

int hasp_ssl_set_policy(SSL *ssl, int min_version, int max_version, int flags, const char *ciphers,
                        const char *suites, const char *groups) {
    if (min_version >= 0) SSL_set_min_proto_version(ssl, min_version);
    if (max_version >= 0) SSL_set_max_proto_version(ssl, max_version);
    SSL_set_options(ssl, options_of(flags));
    int ok = 1;
    if (ciphers) ok &= SSL_set_cipher_list(ssl, ciphers);
    if (suites) ok &= SSL_set_ciphersuites(ssl, suites);
    if (groups) ok &= (int)SSL_set1_groups_list(ssl, groups);
    ERR_clear_error();
    return ok;
}

void hasp_ctx_set_sni_callback(SSL_CTX *ctx, hasp_sni_cb cb, void *arg) {
    hasp_tls_init();
    struct sni_hook *hook = malloc(sizeof(*hook));
    hook->cb = cb;
    hook->arg = arg;
    void *old = SSL_CTX_get_ex_data(ctx, sni_index);
    SSL_CTX_set_ex_data(ctx, sni_index, hook);
    free(old);
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
}

void hasp_ssl_adopt_verify(SSL *ssl, SSL_CTX *ctx) {
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
    SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(ctx));
}

/* ---- Digests ---- */

int hasp_digest_known(const char *name) {
    hasp_tls_init();
    return EVP_get_digestbyname(name) != NULL;
}

int hasp_digest(const char *name, const unsigned char *data, size_t len, unsigned char *out) {
    static const unsigned char empty = 0;
    const EVP_MD *md = EVP_get_digestbyname(name);
    unsigned int outlen = 0;
    if (!data) data = &empty; /* an empty Swift array has no storage */
    if (!md || EVP_MD_get_size(md) > EVP_MAX_MD_SIZE || !EVP_Digest(data, len, out, &outlen, md, NULL)) {
        ERR_clear_error();
        return -1;
    }
    return (int)outlen;
}

int hasp_hmac(const char *name, const unsigned char *key, size_t keylen, const unsigned char *data, size_t len,
              unsigned char *out) {
    static const unsigned char empty = 0;
    const EVP_MD *md = EVP_get_digestbyname(name);
    unsigned int outlen = 0;
    if (!key) key = &empty; /* an empty Swift array has no storage */
    if (!data) data = &empty;
    if (!md || EVP_MD_get_size(md) > EVP_MAX_MD_SIZE || !HMAC(md, key, (int)keylen, data, len, out, &outlen)) {
        ERR_clear_error();
        return -1;
    }
    return (int)outlen;
}

int hasp_memcmp_equal(const unsigned char *a, const unsigned char *b, size_t len) {
    if (len == 0) return 1;
    return CRYPTO_memcmp(a, b, len) == 0;
}

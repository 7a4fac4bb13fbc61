// OCSP stapling: see the OCSP section of include/hasp_tls.h.
#include "hasp_tls.h"
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

// As haproxy: a response is used until five minutes before its next update.
#define OCSP_SKEW_SECONDS 300

struct hasp_ocsp_staple {
    pthread_mutex_t lock;
    int refs;
    unsigned char *der;
    size_t len;
    long long expire;
};

static int staple_index = -1;   // SSL_CTX ex data: a reference to a hasp_ocsp_staple
static pthread_once_t staple_once = PTHREAD_ONCE_INIT;

static void staple_release(hasp_ocsp_staple *s) {
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    int left = --s->refs;
    pthread_mutex_unlock(&s->lock);
    if (left > 0) return;
    pthread_mutex_destroy(&s->lock);
    free(s->der);
    free(s);
}

static void free_staple_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    staple_release(ptr);
}

static void make_index(void) {
    staple_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_staple_ex);
}

hasp_ocsp_staple *hasp_ocsp_staple_new(void) {
    hasp_ocsp_staple *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->refs = 1;
    return s;
}

void hasp_ocsp_staple_free(hasp_ocsp_staple *s) { staple_release(s); }

int hasp_ocsp_staple_set(hasp_ocsp_staple *s, const unsigned char *der, size_t len, long long next_update) {
    unsigned char *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (!copy) return 0;
        memcpy(copy, der, len);
    }
    pthread_mutex_lock(&s->lock);
    unsigned char *old = s->der;
    s->der = copy;
    s->len = len;
    s->expire = next_update - OCSP_SKEW_SECONDS;
    pthread_mutex_unlock(&s->lock);
    free(old);
    return 1;
}

size_t hasp_ocsp_staple_get(hasp_ocsp_staple *s, unsigned char *out, size_t outlen) {
    pthread_mutex_lock(&s->lock);
    size_t len = s->len;
    if (out && outlen >= len && len > 0) memcpy(out, s->der, len);
    pthread_mutex_unlock(&s->lock);
    return len;
}

// Runs for each handshake whose ClientHello asks for the certificate's status, on the context
// the connection ends with (after an SNI switch).
static int status_callback(SSL *ssl, void *arg) {
    (void)arg;
    SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
    hasp_ocsp_staple *s = ctx ? SSL_CTX_get_ex_data(ctx, staple_index) : NULL;
    if (!s) return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = NULL;
    size_t len = 0;
    pthread_mutex_lock(&s->lock);
    if (s->der && s->len > 0 && s->expire >= (long long)time(NULL)) {
        copy = OPENSSL_malloc(s->len);
        if (copy) {
            memcpy(copy, s->der, s->len);
            len = s->len;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (!copy) return SSL_TLSEXT_ERR_NOACK;
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)len);   // the SSL takes the copy
    return SSL_TLSEXT_ERR_OK;
}

int hasp_ctx_set_ocsp(SSL_CTX *ctx, hasp_ocsp_staple *s) {
    pthread_once(&staple_once, make_index);
    if (staple_index < 0 || !s) return 0;
    pthread_mutex_lock(&s->lock);
    s->refs++;
    pthread_mutex_unlock(&s->lock);
    if (!SSL_CTX_set_ex_data(ctx, staple_index, s)) {
        staple_release(s);
        return 0;
    }
    SSL_CTX_set_tlsext_status_cb(ctx, status_callback);
    return 1;
}

static void put_error(char *err, size_t errlen, const char *text) {
    if (err && errlen > 0) snprintf(err, errlen, "%s", text);
}

int hasp_ocsp_cert_id(const hasp_cert *cert, const char *issuer_pem, size_t issuer_len,
                      unsigned char *out, size_t outlen) {
    X509 *leaf = hasp_cert_leaf(cert);
    if (!leaf) return -1;
    X509 *issuer = NULL;
    X509 *from_file = NULL;
    // The chain first, as haproxy does; then the `.issuer` file.
    for (int i = 0; i < hasp_cert_chain_count(cert); i++) {
        X509 *candidate = hasp_cert_chain_at(cert, i);
        if (X509_check_issued(candidate, leaf) == X509_V_OK) { issuer = candidate; break; }
    }
    if (!issuer && issuer_pem && issuer_len > 0) {
        BIO *bio = BIO_new_mem_buf(issuer_pem, (int)issuer_len);
        from_file = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        ERR_clear_error();
        if (!from_file || X509_check_issued(from_file, leaf) != X509_V_OK) {
            X509_free(from_file);
            return -2;
        }
        issuer = from_file;
    }
    if (!issuer) return -1;
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, leaf, issuer);
    X509_free(from_file);
    if (!id) { ERR_clear_error(); return -1; }
    int len = i2d_OCSP_CERTID(id, NULL);
    if (len <= 0 || (size_t)len > outlen) { OCSP_CERTID_free(id); return -1; }
    unsigned char *p = out;
    i2d_OCSP_CERTID(id, &p);
    OCSP_CERTID_free(id);
    return len;
}

int hasp_ocsp_check(const unsigned char *der, size_t len, const unsigned char *cert_id, size_t id_len,
                    unsigned char *id_out, size_t id_outlen, int *id_outused, long long *next_update,
                    char *err, size_t errlen) {
    int ok = 0;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *basic = NULL;
    OCSP_CERTID *expected = NULL;
    const unsigned char *p = der;
    if (id_outused) *id_outused = 0;
    resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (!resp) { put_error(err, errlen, "Unable to parse OCSP response"); goto out; }
    if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        put_error(err, errlen, "OCSP response status not successful"); goto out;
    }
    basic = OCSP_response_get1_basic(resp);
    if (!basic) { put_error(err, errlen, "Failed to get basic response from OCSP Response"); goto out; }
    int count = OCSP_resp_count(basic);
    if (count > 1) {
        if (err && errlen > 0)
            snprintf(err, errlen, "OCSP response ignored because contains multiple single responses (%d)", count);
        goto out;
    }
    OCSP_SINGLERESP *single = OCSP_resp_get0(basic, 0);
    if (!single) { put_error(err, errlen, "Failed to get OCSP single response"); goto out; }
    const OCSP_CERTID *id = OCSP_SINGLERESP_get0_id(single);
    if (id_out) {
        int n = i2d_OCSP_CERTID((OCSP_CERTID *)id, NULL);
        if (n > 0 && (size_t)n <= id_outlen) {
            unsigned char *q = id_out;
            i2d_OCSP_CERTID((OCSP_CERTID *)id, &q);
            if (id_outused) *id_outused = n;
        }
    }
    int reason;
    ASN1_GENERALIZEDTIME *revoked, *this_update, *next = NULL;
    int status = OCSP_single_get0_status(single, &reason, &revoked, &this_update, &next);
    if (status != V_OCSP_CERTSTATUS_GOOD && status != V_OCSP_CERTSTATUS_REVOKED) {
        put_error(err, errlen, "OCSP single response: certificate status is unknown"); goto out;
    }
    if (!next) { put_error(err, errlen, "OCSP single response: missing nextupdate"); goto out; }
    if (!OCSP_check_validity(this_update, next, OCSP_SKEW_SECONDS, -1)) {
        put_error(err, errlen, "OCSP single response: no longer valid."); goto out;
    }
    if (cert_id && id_len > 0) {
        const unsigned char *q = cert_id;
        expected = d2i_OCSP_CERTID(NULL, &q, (long)id_len);
        if (!expected || OCSP_id_cmp(expected, id) != 0) {
            put_error(err, errlen, "OCSP single response: Certificate ID does not match certificate and issuer");
            goto out;
        }
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(next, &tm) != 1) {
        put_error(err, errlen, "OCSP single response: Invalid \"Next Update\" time"); goto out;
    }
    if (next_update) *next_update = (long long)timegm(&tm);
    ok = 1;
out:
    ERR_clear_error();
    OCSP_CERTID_free(expected);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    return ok;
}

// Reads what a memory BIO holds into `out` (NUL-terminated); returns the length.
static int drain(BIO *bio, char *out, size_t outlen) {
    if (!out || outlen == 0) return 0;
    int n = BIO_read(bio, out, (int)outlen - 1);
    if (n < 0) n = 0;
    out[n] = 0;
    return n;
}

int hasp_ocsp_print_cert_id(const unsigned char *cert_id, size_t id_len, char *out, size_t outlen) {
    const unsigned char *p = cert_id;
    OCSP_CERTID *id = d2i_OCSP_CERTID(NULL, &p, (long)id_len);
    if (!id) { ERR_clear_error(); return -1; }
    ASN1_OCTET_STRING *name_hash = NULL, *key_hash = NULL;
    ASN1_INTEGER *serial = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    int n = -1;
    if (bio && OCSP_id_get0_info(&name_hash, NULL, &key_hash, &serial, id)) {
        BIO_printf(bio, "Issuer Name Hash: ");
        i2a_ASN1_STRING(bio, name_hash, 0);
        BIO_printf(bio, "\nIssuer Key Hash: ");
        i2a_ASN1_STRING(bio, key_hash, 0);
        BIO_printf(bio, "\nSerial Number: ");
        i2a_ASN1_INTEGER(bio, serial);
        n = drain(bio, out, outlen);
    }
    BIO_free(bio);
    OCSP_CERTID_free(id);
    return n;
}

int hasp_ocsp_print_response(const unsigned char *der, size_t len, char *out, size_t outlen) {
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (!resp) { ERR_clear_error(); return -1; }
    BIO *bio = BIO_new(BIO_s_mem());
    int n = -1;
    if (bio && OCSP_RESPONSE_print(bio, resp, 0) > 0) n = drain(bio, out, outlen);
    BIO_free(bio);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    return n;
}

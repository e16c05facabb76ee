/* SM4-GCM as a keyed object: GB/T 32907 (SM4) in the Galois/Counter Mode of NIST SP 800-38D.
 *
 * Why C: the product seals many small messages (Temporal payloads, encrypted columns) under a few long-lived keys.
 * Through a Python binding of OpenSSL each message paid ~10 µs of fixed cost (a context per message, or ctypes calls
 * per step) against well under 1 µs of actual work. Here a key is expanded once (SM4 round keys, the GHASH key H) and a
 * message is one call: counter-mode SM4 over the data and GHASH with carry-less multiplication (PCLMULQDQ).
 *
 * Built only where it can be fast: x86-64 with PCLMULQDQ. Elsewhere the module refuses to import and
 * core.crypto.sm uses `cryptography` (OpenSSL) instead; the wire format is the same, nonce (12) || ciphertext || tag
 * (16), so either opens what the other sealed.
 *
 * Nonces follow the deterministic construction of SP 800-38D 8.2.1: a 64-bit field drawn from the kernel's CSPRNG per
 * key object, and a 32-bit count of the messages that object sealed. The field is drawn again when the count runs out
 * and in a child process after fork (which would otherwise repeat the parent's nonces). Two objects of one key draw
 * independent fields, so they collide with probability 2^-64 per pair of objects, not per pair of messages.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#if !defined(__x86_64__)
#error "this module needs x86-64 (PCLMULQDQ); core.crypto.sm falls back to cryptography elsewhere"
#endif
#include <immintrin.h>

#define NONCE 12
#define TAG 16
/* The 32-bit block counter starts at 2 (1 makes the tag's mask), so a message has at most 2^32 - 2 blocks. */
#define MAX_DATA ((((uint64_t)1) << 32) - 2) * 16
/* Above this size the GIL is let go while the data is processed. */
#define RELEASE_GIL_FROM 65536

#define GHASH_TARGET __attribute__((target("pclmul,ssse3")))

/* The S-box of GB/T 32907-2016, table 1. */
static const uint8_t SBOX[256] = {
    0xd6, 0x90, 0xe9, 0xfe, 0xcc, 0xe1, 0x3d, 0xb7, 0x16, 0xb6, 0x14, 0xc2, 0x28, 0xfb, 0x2c, 0x05,
    0x2b, 0x67, 0x9a, 0x76, 0x2a, 0xbe, 0x04, 0xc3, 0xaa, 0x44, 0x13, 0x26, 0x49, 0x86, 0x06, 0x99,
    0x9c, 0x42, 0x50, 0xf4, 0x91, 0xef, 0x98, 0x7a, 0x33, 0x54, 0x0b, 0x43, 0xed, 0xcf, 0xac, 0x62,
    0xe4, 0xb3, 0x1c, 0xa9, 0xc9, 0x08, 0xe8, 0x95, 0x80, 0xdf, 0x94, 0xfa, 0x75, 0x8f, 0x3f, 0xa6,
    0x47, 0x07, 0xa7, 0xfc, 0xf3, 0x73, 0x17, 0xba, 0x83, 0x59, 0x3c, 0x19, 0xe6, 0x85, 0x4f, 0xa8,
    0x68, 0x6b, 0x81, 0xb2, 0x71, 0x64, 0xda, 0x8b, 0xf8, 0xeb, 0x0f, 0x4b, 0x70, 0x56, 0x9d, 0x35,
    0x1e, 0x24, 0x0e, 0x5e, 0x63, 0x58, 0xd1, 0xa2, 0x25, 0x22, 0x7c, 0x3b, 0x01, 0x21, 0x78, 0x87,
    0xd4, 0x00, 0x46, 0x57, 0x9f, 0xd3, 0x27, 0x52, 0x4c, 0x36, 0x02, 0xe7, 0xa0, 0xc4, 0xc8, 0x9e,
    0xea, 0xbf, 0x8a, 0xd2, 0x40, 0xc7, 0x38, 0xb5, 0xa3, 0xf7, 0xf2, 0xce, 0xf9, 0x61, 0x15, 0xa1,
    0xe0, 0xae, 0x5d, 0xa4, 0x9b, 0x34, 0x1a, 0x55, 0xad, 0x93, 0x32, 0x30, 0xf5, 0x8c, 0xb1, 0xe3,
    0x1d, 0xf6, 0xe2, 0x2e, 0x82, 0x66, 0xca, 0x60, 0xc0, 0x29, 0x23, 0xab, 0x0d, 0x53, 0x4e, 0x6f,
    0xd5, 0xdb, 0x37, 0x45, 0xde, 0xfd, 0x8e, 0x2f, 0x03, 0xff, 0x6a, 0x72, 0x6d, 0x6c, 0x5b, 0x51,
    0x8d, 0x1b, 0xaf, 0x92, 0xbb, 0xdd, 0xbc, 0x7f, 0x11, 0xd9, 0x5c, 0x41, 0x1f, 0x10, 0x5a, 0xd8,
    0x0a, 0xc1, 0x31, 0x88, 0xa5, 0xcd, 0x7b, 0xbd, 0x2d, 0x74, 0xd0, 0x12, 0xb8, 0xe5, 0xb4, 0xb0,
    0x89, 0x69, 0x97, 0x4a, 0x0c, 0x96, 0x77, 0x7e, 0x65, 0xb9, 0xf1, 0x09, 0xc5, 0x6e, 0xc6, 0x84,
    0x18, 0xf0, 0x7d, 0xec, 0x3a, 0xdc, 0x4d, 0x20, 0x79, 0xee, 0x5f, 0x3e, 0xd7, 0xcb, 0x39, 0x48
};

/* The system parameter FK of the key expansion (GB/T 32907-2016, 7.3). */
static const uint32_t FK[4] = {0xa3b1bac6, 0x56aa3350, 0x677d9197, 0xb27022dc};

/* T = L(tau(x)) of the round function, one table per byte position: T_n[b] is L applied to S(b) in byte n, so a round
 * is four look-ups and three XORs. L is linear and commutes with rotation, hence each table is a rotation of the first. */
static uint32_t T0[256], T1[256], T2[256], T3[256];

static inline uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void store_be64(uint8_t *p, uint64_t v) {
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

static void build_tables(void) {
    for (int b = 0; b < 256; b++) {
        uint32_t s = (uint32_t)SBOX[b] << 24;
        uint32_t t = s ^ rotl(s, 2) ^ rotl(s, 10) ^ rotl(s, 18) ^ rotl(s, 24);
        T0[b] = t;
        T1[b] = rotl(t, 24);
        T2[b] = rotl(t, 16);
        T3[b] = rotl(t, 8);
    }
}

static inline uint32_t round_t(uint32_t a) {
    return T0[a >> 24] ^ T1[(a >> 16) & 0xff] ^ T2[(a >> 8) & 0xff] ^ T3[a & 0xff];
}

/* The key expansion's T': the same S-box with L'(B) = B ^ (B <<< 13) ^ (B <<< 23). Runs once per key. */
static uint32_t key_schedule_t(uint32_t a) {
    uint32_t b = ((uint32_t)SBOX[a >> 24] << 24) | ((uint32_t)SBOX[(a >> 16) & 0xff] << 16) |
                 ((uint32_t)SBOX[(a >> 8) & 0xff] << 8) | (uint32_t)SBOX[a & 0xff];
    return b ^ rotl(b, 13) ^ rotl(b, 23);
}

static void expand_key(const uint8_t key[16], uint32_t rk[32]) {
    uint32_t k[4];
    for (int i = 0; i < 4; i++) k[i] = load_be32(key + 4 * i) ^ FK[i];
    for (int i = 0; i < 32; i++) {
        /* CK_i: byte j is (4i + j) * 7 mod 256. */
        uint32_t ck = 0;
        for (int j = 0; j < 4; j++) ck = (ck << 8) | (uint8_t)((4 * i + j) * 7);
        uint32_t next = k[0] ^ key_schedule_t(k[1] ^ k[2] ^ k[3] ^ ck);
        rk[i] = next;
        k[0] = k[1];
        k[1] = k[2];
        k[2] = k[3];
        k[3] = next;
    }
}

static inline void sm4_encrypt_block(const uint32_t rk[32], const uint8_t in[16], uint8_t out[16]) {
    uint32_t x0 = load_be32(in), x1 = load_be32(in + 4), x2 = load_be32(in + 8), x3 = load_be32(in + 12);
    for (int i = 0; i < 32; i += 4) {
        x0 ^= round_t(x1 ^ x2 ^ x3 ^ rk[i]);
        x1 ^= round_t(x2 ^ x3 ^ x0 ^ rk[i + 1]);
        x2 ^= round_t(x3 ^ x0 ^ x1 ^ rk[i + 2]);
        x3 ^= round_t(x0 ^ x1 ^ x2 ^ rk[i + 3]);
    }
    /* The output is the last four words in reverse order (R in GB/T 32907). */
    store_be32(out, x3);
    store_be32(out + 4, x2);
    store_be32(out + 8, x1);
    store_be32(out + 12, x0);
}

/* One round of four independent blocks side by side: each block's rounds form one long dependency chain, so four
 * chains interleaved keep the CPU's load and XOR units busy where one would leave them waiting. */
#define ROUND4(w, a, b, c, k)                                   \
    do {                                                        \
        for (int n = 0; n < 4; n++) w[n] ^= round_t(a[n] ^ b[n] ^ c[n] ^ (k)); \
    } while (0)

/* The counter-mode key stream for `blocks` counter blocks nonce || first, nonce || first + 1, ... into `out`. */
static void key_stream(const uint32_t rk[32], const uint8_t nonce[NONCE], uint32_t first, size_t blocks, uint8_t *out) {
    uint32_t n0 = load_be32(nonce), n1 = load_be32(nonce + 4), n2 = load_be32(nonce + 8);
    size_t done = 0;
    for (; blocks - done >= 4; done += 4, out += 64) {
        uint32_t x0[4] = {n0, n0, n0, n0}, x1[4] = {n1, n1, n1, n1}, x2[4] = {n2, n2, n2, n2};
        uint32_t x3[4] = {first, first + 1, first + 2, first + 3};
        first += 4;
        for (int i = 0; i < 32; i += 4) {
            ROUND4(x0, x1, x2, x3, rk[i]);
            ROUND4(x1, x2, x3, x0, rk[i + 1]);
            ROUND4(x2, x3, x0, x1, rk[i + 2]);
            ROUND4(x3, x0, x1, x2, rk[i + 3]);
        }
        for (int n = 0; n < 4; n++) {
            store_be32(out + 16 * n, x3[n]);
            store_be32(out + 16 * n + 4, x2[n]);
            store_be32(out + 16 * n + 8, x1[n]);
            store_be32(out + 16 * n + 12, x0[n]);
        }
    }
    for (; done < blocks; done++, out += 16) {
        uint8_t counter[16];
        memcpy(counter, nonce, NONCE);
        store_be32(counter + NONCE, first++);
        sm4_encrypt_block(rk, counter, out);
    }
}

/* GHASH. GCM numbers the bits of a block from the most significant bit of its first byte; byte-reversing a block puts
 * it in the order PCLMULQDQ multiplies in, up to a one-bit shift of the 256-bit product, which the multiplication
 * below applies before it reduces modulo x^128 + x^7 + x^2 + x + 1. */
GHASH_TARGET static inline __m128i byte_reverse(__m128i x) {
    return _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

GHASH_TARGET static inline __m128i gf_multiply(__m128i a, __m128i b) {
    __m128i lo = _mm_clmulepi64_si128(a, b, 0x00);
    __m128i mid = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x10), _mm_clmulepi64_si128(a, b, 0x01));
    __m128i hi = _mm_clmulepi64_si128(a, b, 0x11);
    lo = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
    hi = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));

    /* Shift the product hi:lo left by one bit. */
    __m128i lo_carry = _mm_srli_epi32(lo, 31);
    __m128i hi_carry = _mm_srli_epi32(hi, 31);
    lo = _mm_slli_epi32(lo, 1);
    hi = _mm_slli_epi32(hi, 1);
    hi = _mm_or_si128(hi, _mm_srli_si128(lo_carry, 12));
    hi = _mm_or_si128(hi, _mm_slli_si128(hi_carry, 4));
    lo = _mm_or_si128(lo, _mm_slli_si128(lo_carry, 4));

    /* Reduce: fold the low half into the high half in two phases. */
    __m128i fold = _mm_xor_si128(_mm_xor_si128(_mm_slli_epi32(lo, 31), _mm_slli_epi32(lo, 30)), _mm_slli_epi32(lo, 25));
    __m128i fold_rest = _mm_srli_si128(fold, 4);
    lo = _mm_xor_si128(lo, _mm_slli_si128(fold, 12));
    __m128i back = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi32(lo, 1), _mm_srli_epi32(lo, 2)), _mm_srli_epi32(lo, 7));
    back = _mm_xor_si128(back, fold_rest);
    lo = _mm_xor_si128(lo, back);
    return _mm_xor_si128(hi, lo);
}

GHASH_TARGET static inline __m128i ghash_block(__m128i y, __m128i h, const uint8_t block[16]) {
    return gf_multiply(_mm_xor_si128(y, byte_reverse(_mm_loadu_si128((const __m128i *)block))), h);
}

/* GHASH over a byte string, its last partial block padded with zeros. */
GHASH_TARGET static __m128i ghash_bytes(__m128i y, __m128i h, const uint8_t *p, size_t n) {
    for (; n >= 16; p += 16, n -= 16) y = ghash_block(y, h, p);
    if (n) {
        uint8_t last[16] = {0};
        memcpy(last, p, n);
        y = ghash_block(y, h, last);
    }
    return y;
}

typedef struct {
    PyObject_HEAD
    uint32_t rk[32];
    uint8_t h[16];
    uint8_t fixed[8];
    uint32_t count;
    unsigned long generation;
} KeyObject;

/* Key stream is made this many blocks at a time. */
#define STREAM_BLOCKS 32

/* Counter mode over `in` into `out` (the same length) and the tag over the AAD and the ciphertext: `in` is the
 * ciphertext when opening. One pass: each block is hashed right after it is made or before it is undone. The first
 * key-stream block (counter 1, J0) masks the tag; the data's start at counter 2. */
GHASH_TARGET static void gcm(const KeyObject *key, const uint8_t nonce[NONCE], const uint8_t *aad, size_t aad_len,
                             const uint8_t *in, uint8_t *out, size_t len, int sealing, uint8_t tag[TAG]) {
    __m128i h = byte_reverse(_mm_loadu_si128((const __m128i *)key->h));
    __m128i y = ghash_bytes(_mm_setzero_si128(), h, aad, aad_len);
    uint8_t stream[STREAM_BLOCKS * 16];
    __m128i mask = _mm_setzero_si128();
    uint32_t counter = 1;
    size_t done = 0;
    int first = 1;
    while (first || done < len) {
        size_t blocks = (len - done + 15) / 16 + (size_t)first;
        if (blocks > STREAM_BLOCKS) blocks = STREAM_BLOCKS;
        key_stream(key->rk, nonce, counter, blocks, stream);
        counter += (uint32_t)blocks;
        const uint8_t *ks = stream;
        if (first) {
            mask = _mm_loadu_si128((const __m128i *)stream);
            ks += 16;
            blocks--;
            first = 0;
        }
        for (; blocks && len - done >= 16; blocks--, done += 16, ks += 16) {
            __m128i given = _mm_loadu_si128((const __m128i *)(in + done));
            __m128i made = _mm_xor_si128(given, _mm_loadu_si128((const __m128i *)ks));
            _mm_storeu_si128((__m128i *)(out + done), made);
            y = gf_multiply(_mm_xor_si128(y, byte_reverse(sealing ? made : given)), h);
        }
        if (blocks) { /* the last, partial block */
            size_t rest = len - done;
            uint8_t cipher[16] = {0};
            for (size_t i = 0; i < rest; i++) {
                uint8_t given = in[done + i];
                out[done + i] = given ^ ks[i];
                cipher[i] = sealing ? out[done + i] : given;
            }
            y = ghash_block(y, h, cipher);
            done = len;
        }
    }
    uint8_t lengths[16];
    store_be64(lengths, (uint64_t)aad_len * 8);
    store_be64(lengths + 8, (uint64_t)len * 8);
    y = ghash_block(y, h, lengths);
    _mm_storeu_si128((__m128i *)tag, _mm_xor_si128(byte_reverse(y), mask));
}

/* Bumped in every child after fork: a key object whose generation differs draws a new nonce field. */
static unsigned long fork_generation = 1;

static void after_fork_in_child(void) { fork_generation++; }

static int draw_field(KeyObject *self) {
    uint8_t *p = self->fixed;
    size_t left = sizeof self->fixed;
    while (left) {
        ssize_t got = getrandom(p, left, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        p += got;
        left -= (size_t)got;
    }
    self->count = 0;
    self->generation = fork_generation;
    return 0;
}

static int next_nonce(KeyObject *self, uint8_t nonce[NONCE]) {
    if ((self->generation != fork_generation || self->count == UINT32_MAX) && draw_field(self) < 0) return -1;
    memcpy(nonce, self->fixed, sizeof self->fixed);
    store_be32(nonce + sizeof self->fixed, self->count++);
    return 0;
}

static int key_init(KeyObject *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"key", NULL};
    Py_buffer key;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*:Key", names, &key)) return -1;
    if (key.len != 16) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "the SM4 key must be 16 bytes");
        return -1;
    }
    expand_key((const uint8_t *)key.buf, self->rk);
    PyBuffer_Release(&key);
    static const uint8_t zero[16] = {0};
    sm4_encrypt_block(self->rk, zero, self->h);
    return draw_field(self);
}

/* The message and the optional AAD of encrypt/decrypt, as buffers held until `release_args`. */
static int take_args(PyObject *const *args, Py_ssize_t nargs, const char *name, Py_buffer *data, Py_buffer *aad) {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes the data and optionally the associated data", name);
        return -1;
    }
    if (PyObject_GetBuffer(args[0], data, PyBUF_SIMPLE) < 0) return -1;
    aad->buf = NULL;
    aad->obj = NULL;
    aad->len = 0;
    if (nargs == 2 && PyObject_GetBuffer(args[1], aad, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(data);
        return -1;
    }
    return 0;
}

static void release_args(Py_buffer *data, Py_buffer *aad) {
    PyBuffer_Release(data);
    if (aad->obj) PyBuffer_Release(aad);
}

static void run_gcm(const KeyObject *self, const uint8_t *nonce, const Py_buffer *aad, const uint8_t *in, uint8_t *out,
                    size_t len, int sealing, uint8_t *tag) {
    if (len >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        gcm(self, nonce, aad->buf, (size_t)aad->len, in, out, len, sealing, tag);
        Py_END_ALLOW_THREADS
    } else {
        gcm(self, nonce, aad->buf, (size_t)aad->len, in, out, len, sealing, tag);
    }
}

static PyObject *key_encrypt(KeyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer data, aad;
    if (take_args(args, nargs, "encrypt", &data, &aad) < 0) return NULL;
    PyObject *result = NULL;
    if ((uint64_t)data.len > MAX_DATA) {
        PyErr_SetString(PyExc_ValueError, "the message is too long for one SM4-GCM nonce");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, NONCE + data.len + TAG);
    if (!result) goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    if (next_nonce(self, out) < 0) {
        Py_CLEAR(result);
        goto done;
    }
    run_gcm(self, out, &aad, data.buf, out + NONCE, (size_t)data.len, 1, out + NONCE + data.len);
done:
    release_args(&data, &aad);
    return result;
}

static PyObject *key_decrypt(KeyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer blob, aad;
    if (take_args(args, nargs, "decrypt", &blob, &aad) < 0) return NULL;
    PyObject *result = NULL;
    if (blob.len < NONCE + TAG) {
        PyErr_SetString(PyExc_ValueError, "ciphertext too short");
        goto done;
    }
    size_t len = (size_t)blob.len - NONCE - TAG;
    const uint8_t *nonce = blob.buf, *cipher = nonce + NONCE, *given_tag = cipher + len;
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
    if (!result) goto done;
    uint8_t *plain = (uint8_t *)PyBytes_AS_STRING(result);
    uint8_t tag[TAG];
    run_gcm(self, nonce, &aad, cipher, plain, len, 0, tag);
    /* Constant time: how much of the tag matched must not show in the time taken. */
    uint8_t diff = 0;
    for (int i = 0; i < TAG; i++) diff |= tag[i] ^ given_tag[i];
    if (diff) {
        memset(plain, 0, len);
        Py_CLEAR(result);
        PyErr_SetString(PyExc_ValueError, "ciphertext was altered or the key is wrong");
    }
done:
    release_args(&blob, &aad);
    return result;
}

static void key_dealloc(KeyObject *self) {
    /* Round keys and H are the key in other forms. */
    memset(self->rk, 0, sizeof self->rk);
    memset(self->h, 0, sizeof self->h);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef key_methods[] = {
    {"encrypt", (PyCFunction)(void (*)(void))key_encrypt, METH_FASTCALL,
     "encrypt(plaintext, aad=b'') -> nonce || ciphertext || tag"},
    {"decrypt", (PyCFunction)(void (*)(void))key_decrypt, METH_FASTCALL,
     "decrypt(blob, aad=b'') -> plaintext; ValueError if anything was altered, the AAD differs or the key is wrong"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KeyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "core.crypto._sm4gcm.Key",
    .tp_doc = "SM4-GCM under one 16-byte key.",
    .tp_basicsize = sizeof(KeyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)key_init,
    .tp_dealloc = (destructor)key_dealloc,
    .tp_methods = key_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_sm4gcm",
    .m_doc = "SM4-GCM as a keyed object (x86-64 with PCLMULQDQ).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__sm4gcm(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("pclmul") || !__builtin_cpu_supports("ssse3")) {
        PyErr_SetString(PyExc_ImportError, "this CPU lacks PCLMULQDQ or SSSE3");
        return NULL;
    }
    build_tables();
    if (pthread_atfork(NULL, NULL, after_fork_in_child) != 0) {
        PyErr_SetString(PyExc_ImportError, "cannot register the fork handler");
        return NULL;
    }
    if (PyType_Ready(&KeyType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&KeyType);
    if (PyModule_AddObject(m, "Key", (PyObject *)&KeyType) < 0 || PyModule_AddIntConstant(m, "NONCE", NONCE) < 0 ||
        PyModule_AddIntConstant(m, "TAG", TAG) < 0) {
        Py_DECREF(&KeyType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

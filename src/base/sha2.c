/* SHA-256 and SHA-512 from FIPS 180-4 (sections 4.1.2, 4.1.3, 4.2.2,
 * 4.2.3, 5.1, 5.3.3, 5.3.5, 6.2, 6.4), portable C. */
#include "base/sha2.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define SHA2_HAVE_NI 1
#include <immintrin.h>
#else
#define SHA2_HAVE_NI 0
#endif

static const uint32_t k256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint64_t k512[80] = {
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
};

static inline uint32_t ror32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static inline uint64_t ror64(uint64_t x, unsigned n)
{
    return (x >> n) | (x << (64 - n));
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t load_be64(const uint8_t *p)
{
    return (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void store_be64(uint8_t *p, uint64_t v)
{
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

/* One round of 6.2.2 step 3. The working variables a..h live in @v
 * rotated by the round number @t: a is v[-t mod 8], b the one after, and
 * so on; a round writes only d and h, which become e and a of the next. */
static inline void sha256_round(uint32_t v[8], int t, uint32_t kw)
{
    uint32_t *a = &v[(8 - t) & 7], *b = &v[(9 - t) & 7], *c = &v[(10 - t) & 7];
    uint32_t *d = &v[(11 - t) & 7], *e = &v[(12 - t) & 7], *f = &v[(13 - t) & 7];
    uint32_t *g = &v[(14 - t) & 7], *h = &v[(15 - t) & 7];
    uint32_t t1 =
        *h + (ror32(*e, 6) ^ ror32(*e, 11) ^ ror32(*e, 25)) + ((*e & *f) ^ (~*e & *g)) + kw;
    uint32_t t2 =
        (ror32(*a, 2) ^ ror32(*a, 13) ^ ror32(*a, 22)) + ((*a & *b) ^ (*a & *c) ^ (*b & *c));

    *d += t1;
    *h = t1 + t2;
}

/* W[t] for t >= 16 (6.2.2 step 1) in the ring of 16 words. */
static inline uint32_t sha256_schedule(uint32_t *w, int t)
{
    uint32_t w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
    uint32_t s0 = ror32(w15, 7) ^ ror32(w15, 18) ^ (w15 >> 3);
    uint32_t s1 = ror32(w2, 17) ^ ror32(w2, 19) ^ (w2 >> 10);

    return w[t & 15] = w[t & 15] + s0 + w[(t - 7) & 15] + s1;
}

/* One 512-bit block (6.2.2), portable C. Unrolled by eight so that the
 * rotation of the working variables is only renaming. */
static void sha256_block_c(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[16], v[8];

    for (int i = 0; i < 16; i++)
        w[i] = load_be32(p + 4 * i);
    memcpy(v, h, sizeof(v));
    for (int t = 0; t < 64; t += 8) {
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++)
            sha256_round(v, r, k256[t + r] + (t < 16 ? w[t + r] : sha256_schedule(w, t + r)));
    }
    for (int i = 0; i < 8; i++)
        h[i] += v[i];
}

#if SHA2_HAVE_NI
/* The same with the x86 SHA extensions: SHA256RNDS2 does two rounds on
 * the state held as (A,B,E,F) and (C,D,G,H); SHA256MSG1/MSG2 compute the
 * schedule four words at a time. Intel's SHA extensions reference
 * describes the instructions; the arrangement of the state is theirs. */
__attribute__((target("sha,sse4.1"))) static void sha256_block_ni(uint32_t h[8], const uint8_t *p)
{
    const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&h[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&h[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1), efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8), cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    __m128i abef0 = abef, cdgh0 = cdgh, w[16], m;

    for (int i = 0; i < 16; i++) {
        if (i < 4) {
            w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), swap);
        } else {
            m = _mm_sha256msg1_epu32(w[i - 4], w[i - 3]);
            m = _mm_add_epi32(m, _mm_alignr_epi8(w[i - 1], w[i - 2], 4));
            w[i] = _mm_sha256msg2_epu32(m, w[i - 1]);
        }
        m = _mm_add_epi32(w[i], _mm_loadu_si128((const __m128i *)&k256[4 * i]));
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(m, 0x0E));
    }
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
    /* Back to (A,B,C,D) and (E,F,G,H) in h[]'s order. */
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B), dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));
}
#endif

/* Whether the CPU has the SHA extensions (and SSE4.1, which their use here
 * needs). */
static bool cpu_has_sha(void)
{
#if SHA2_HAVE_NI
    return __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1");
#else
    return false;
#endif
}

typedef void sha256_block_fn(uint32_t h[8], const uint8_t *p);

/* The block function, chosen at the first use: the SHA extensions where
 * the CPU has them (sha2_force_portable() aside). Any thread may choose,
 * the same function each time; atomic so that the choice is not a data
 * race. */
static _Atomic(sha256_block_fn *) chosen_block;
static atomic_bool force_portable;

static sha256_block_fn *choose_block_fn(void)
{
    sha256_block_fn *fn = atomic_load_explicit(&chosen_block, memory_order_relaxed);

    if (!fn) {
        fn = sha256_block_c;
#if SHA2_HAVE_NI
        if (!atomic_load(&force_portable) && cpu_has_sha())
            fn = sha256_block_ni;
#endif
        atomic_store_explicit(&chosen_block, fn, memory_order_relaxed);
    }
    return fn;
}

bool sha2_force_portable(bool portable)
{
    bool had = false;

#if SHA2_HAVE_NI
    had = atomic_load(&chosen_block) == sha256_block_ni;
#endif
    atomic_store(&force_portable, portable);
    atomic_store(&chosen_block, NULL);
    return had || (!portable && cpu_has_sha());
}

static void sha256_block(uint32_t h[8], const uint8_t *p)
{
    choose_block_fn()(h, p);
}

static void sha512_block(uint64_t h[8], const uint8_t *p)
{
    uint64_t w[16], s[8];

    for (int i = 0; i < 16; i++)
        w[i] = load_be64(p + 8 * i);
    memcpy(s, h, sizeof(s));
    for (int t = 0; t < 80; t++) {
        uint64_t wt, t1, t2;
        if (t < 16) {
            wt = w[t];
        } else {
            uint64_t w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
            uint64_t s0 = ror64(w15, 1) ^ ror64(w15, 8) ^ (w15 >> 7);
            uint64_t s1 = ror64(w2, 19) ^ ror64(w2, 61) ^ (w2 >> 6);
            wt = w[t & 15] = w[t & 15] + s0 + w[(t - 7) & 15] + s1;
        }
        t1 = s[7] + (ror64(s[4], 14) ^ ror64(s[4], 18) ^ ror64(s[4], 41)) +
             ((s[4] & s[5]) ^ (~s[4] & s[6])) + k512[t] + wt;
        t2 = (ror64(s[0], 28) ^ ror64(s[0], 34) ^ ror64(s[0], 39)) +
             ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
        memmove(s + 1, s, 7 * sizeof(s[0]));
        s[4] += t1;
        s[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        h[i] += s[i];
}

void sha256_init(struct sha256_ctx *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

    memcpy(c->h, iv, sizeof(iv));
    c->len = 0;
}

void sha512_init(struct sha512_ctx *c)
{
    static const uint64_t iv[8] = {0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b,
                                   0xa54ff53a5f1d36f1, 0x510e527fade682d1, 0x9b05688c2b3e6c1f,
                                   0x1f83d9abfb41bd6b, 0x5be0cd19137e2179};

    memcpy(c->h, iv, sizeof(iv));
    c->len = 0;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t have = (size_t)(c->len % SHA256_BLOCK_SIZE);

    c->len += len;
    if (have) {
        size_t n = SHA256_BLOCK_SIZE - have < len ? SHA256_BLOCK_SIZE - have : len;
        memcpy(c->buf + have, p, n);
        p += n;
        len -= n;
        if (have + n < SHA256_BLOCK_SIZE)
            return;
        sha256_block(c->h, c->buf);
    }
    for (; len >= SHA256_BLOCK_SIZE; p += SHA256_BLOCK_SIZE, len -= SHA256_BLOCK_SIZE)
        sha256_block(c->h, p);
    memcpy(c->buf, p, len);
}

void sha512_update(struct sha512_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t have = (size_t)(c->len % SHA512_BLOCK_SIZE);

    c->len += len;
    if (have) {
        size_t n = SHA512_BLOCK_SIZE - have < len ? SHA512_BLOCK_SIZE - have : len;
        memcpy(c->buf + have, p, n);
        p += n;
        len -= n;
        if (have + n < SHA512_BLOCK_SIZE)
            return;
        sha512_block(c->h, c->buf);
    }
    for (; len >= SHA512_BLOCK_SIZE; p += SHA512_BLOCK_SIZE, len -= SHA512_BLOCK_SIZE)
        sha512_block(c->h, p);
    memcpy(c->buf, p, len);
}

/* Padding (5.1.1): 0x80, zeros, and the length in bits in the last 8
 * bytes of the final block (SHA-512's 16-byte length: its high half is 0). */
void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_SIZE])
{
    size_t have = (size_t)(c->len % SHA256_BLOCK_SIZE);
    uint64_t bits = c->len * 8;

    c->buf[have++] = 0x80;
    if (have > SHA256_BLOCK_SIZE - 8) {
        memset(c->buf + have, 0, SHA256_BLOCK_SIZE - have);
        sha256_block(c->h, c->buf);
        have = 0;
    }
    memset(c->buf + have, 0, SHA256_BLOCK_SIZE - 8 - have);
    store_be64(c->buf + SHA256_BLOCK_SIZE - 8, bits);
    sha256_block(c->h, c->buf);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, c->h[i]);
}

void sha512_final(struct sha512_ctx *c, uint8_t out[SHA512_DIGEST_SIZE])
{
    size_t have = (size_t)(c->len % SHA512_BLOCK_SIZE);
    uint64_t bits = c->len * 8;

    c->buf[have++] = 0x80;
    if (have > SHA512_BLOCK_SIZE - 16) {
        memset(c->buf + have, 0, SHA512_BLOCK_SIZE - have);
        sha512_block(c->h, c->buf);
        have = 0;
    }
    memset(c->buf + have, 0, SHA512_BLOCK_SIZE - 8 - have);
    store_be64(c->buf + SHA512_BLOCK_SIZE - 8, bits);
    sha512_block(c->h, c->buf);
    for (int i = 0; i < 8; i++)
        store_be64(out + 8 * i, c->h[i]);
}

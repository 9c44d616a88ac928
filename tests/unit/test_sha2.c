/* src/base/sha2.c: SHA-256 and SHA-512 against the FIPS 180-4 examples
 * (NIST's "abc", two-block and million-'a' messages), against coreutils'
 * sha256sum/sha512sum for every length around the padding boundaries, and
 * fed in pieces of every size (the incremental path) against one piece. */
#include "base/sha2.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void d256(const void *p, size_t n, char *out)
{
    struct sha256_ctx c;
    uint8_t d[SHA256_DIGEST_SIZE];

    sha256_init(&c);
    sha256_update(&c, p, n);
    sha256_final(&c, d);
    hex(d, sizeof(d), out);
}

static void d512(const void *p, size_t n, char *out)
{
    struct sha512_ctx c;
    uint8_t d[SHA512_DIGEST_SIZE];

    sha512_init(&c);
    sha512_update(&c, p, n);
    sha512_final(&c, d);
    hex(d, sizeof(d), out);
}

static const struct {
    const char *msg;
    const char *sha256, *sha512;
} vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
     "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
     "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", NULL},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
     "klmnopqrlmnopqrsmnopqrstnopqrstu",
     NULL,
     "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
     "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"},
};

static int test_fips_examples(void)
{
    char out[2 * SHA512_DIGEST_SIZE + 1];

    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        if (vectors[i].sha256) {
            d256(vectors[i].msg, strlen(vectors[i].msg), out);
            CHECK(!strcmp(out, vectors[i].sha256));
        }
        if (vectors[i].sha512) {
            d512(vectors[i].msg, strlen(vectors[i].msg), out);
            CHECK(!strcmp(out, vectors[i].sha512));
        }
    }
    return 0;
}

static int test_million_a(void)
{
    char out[2 * SHA512_DIGEST_SIZE + 1];
    char *m = malloc(1000000);

    CHECK(m);
    memset(m, 'a', 1000000);
    d256(m, 1000000, out);
    CHECK(!strcmp(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    d512(m, 1000000, out);
    CHECK(!strcmp(out, "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
                       "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"));
    free(m);
    return 0;
}

/* coreutils' digest of @n bytes of @m, as hex, into @out. */
static int tool_digest(const char *tool, const uint8_t *m, size_t n, char *out, size_t outlen)
{
    char path[] = "/tmp/uext4-sha2-XXXXXX", cmd[128];
    int fd = mkstemp(path);
    FILE *p;
    int ok;

    if (fd < 0 || write(fd, m, n) != (ssize_t)n)
        return -1;
    close(fd);
    snprintf(cmd, sizeof(cmd), "%s %s", tool, path);
    p = popen(cmd, "r");
    ok = p && fread(out, 1, outlen, p) == outlen;
    if (p)
        pclose(p);
    unlink(path);
    out[outlen] = 0;
    return ok ? 0 : -1;
}

/* Lengths 0-260: every place the 0x80 byte and the length can fall. */
static int test_lengths_vs_coreutils(void)
{
    uint8_t m[260];
    char out[2 * SHA512_DIGEST_SIZE + 1], ref[2 * SHA512_DIGEST_SIZE + 1];

    for (size_t i = 0; i < sizeof(m); i++)
        m[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n <= sizeof(m); n += (n < 140 ? 1 : 7)) {
        CHECK(!tool_digest("sha256sum", m, n, ref, 64));
        d256(m, n, out);
        CHECK(!strcmp(out, ref));
        CHECK(!tool_digest("sha512sum", m, n, ref, 128));
        d512(m, n, out);
        CHECK(!strcmp(out, ref));
    }
    return 0;
}

/* The same 1000 bytes fed in pieces of every size from 1 to 200. */
static int test_pieces(void)
{
    uint8_t m[1000], one[SHA512_DIGEST_SIZE], got[SHA512_DIGEST_SIZE];
    struct sha256_ctx c;
    struct sha512_ctx c5;

    for (size_t i = 0; i < sizeof(m); i++)
        m[i] = (uint8_t)(i ^ (i >> 3));
    for (size_t piece = 1; piece <= 200; piece++) {
        sha256_init(&c);
        sha512_init(&c5);
        for (size_t off = 0; off < sizeof(m); off += piece) {
            size_t n = sizeof(m) - off < piece ? sizeof(m) - off : piece;
            sha256_update(&c, m + off, n);
            sha512_update(&c5, m + off, n);
        }
        sha256_final(&c, got);
        sha256_init(&c);
        sha256_update(&c, m, sizeof(m));
        sha256_final(&c, one);
        CHECK(!memcmp(got, one, SHA256_DIGEST_SIZE));
        sha512_final(&c5, got);
        sha512_init(&c5);
        sha512_update(&c5, m, sizeof(m));
        sha512_final(&c5, one);
        CHECK(!memcmp(got, one, SHA512_DIGEST_SIZE));
    }
    return 0;
}

int main(void)
{
    static const struct test_case t[] = {
        {"fips_examples", test_fips_examples},
        {"million_a", test_million_a},
        {"lengths_vs_coreutils", test_lengths_vs_coreutils},
        {"pieces", test_pieces},
    };

    int fail;

    /* Both SHA-256 block functions: the CPU's SHA extensions (where it
     * has them), then the portable one. */
    printf("SHA extensions: %s\n", sha2_force_portable(false) ? "yes" : "no");
    fail = run_tests(t, sizeof(t) / sizeof(t[0]));
    sha2_force_portable(true);
    printf("portable:\n");
    fail |= run_tests(t, sizeof(t) / sizeof(t[0]));
    sha2_force_portable(false);
    return fail;
}

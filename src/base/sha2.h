/* SHA-256 and SHA-512 (FIPS 180-4), for fs-verity's Merkle trees
 * (fs/verity.c). Written from the standard: the stack has no crypto
 * library, and fs-verity needs nothing but these two digests.
 *
 * Incremental: init, update any number of times, final. A context is
 * plain data and may be copied, which is how a salted hash state is
 * prepared once and reused for every block (fs-verity hashes each block
 * after the same padded salt). No locks: a context belongs to its caller. */
#ifndef UEXT4_SHA2_H
#define UEXT4_SHA2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_BLOCK_SIZE  64
#define SHA512_DIGEST_SIZE 64
#define SHA512_BLOCK_SIZE  128

struct sha256_ctx {
    uint32_t h[8];
    uint64_t len; /* bytes taken so far */
    uint8_t buf[SHA256_BLOCK_SIZE];
};

struct sha512_ctx {
    uint64_t h[8];
    uint64_t len; /* bytes taken so far (2^64 is far beyond any file here) */
    uint8_t buf[SHA512_BLOCK_SIZE];
};

/* SHA-256 uses the CPU's SHA extensions (x86) where it has them. For
 * tests: @portable forces the portable C block function (false: the
 * choice by CPU again); returns whether the SHA extensions were or would
 * be used before the call. Not thread-safe: call before hashing. */
bool sha2_force_portable(bool portable);

void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_SIZE]);

void sha512_init(struct sha512_ctx *c);
void sha512_update(struct sha512_ctx *c, const void *data, size_t len);
void sha512_final(struct sha512_ctx *c, uint8_t out[SHA512_DIGEST_SIZE]);

#endif

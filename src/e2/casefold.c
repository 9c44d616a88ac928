/* Case-insensitive names (the casefold feature): which names are equal in
 * a directory with EXT4_CASEFOLD_FL, and which may be created there. The
 * Unicode tables are libext2fs's (utf8 12.1, the one encoding ext4 has);
 * the rules are the kernel's (ext4_match, ext4_add_entry): names compare
 * casefolded, a name that is not valid UTF-8 compares byte for byte, and
 * under the strict encoding flag such a name cannot be created. */
#include "e2/e2_internal.h"

#include <errno.h>
#include <string.h>

bool e2_has_casefold(const struct e2_image *img)
{
    return ext2fs_has_feature_casefold(img->fs->super) && img->fs->encoding;
}

static const struct ext2fs_nls_table *fold_table(const struct e2_image *img, uint32_t dir_flags)
{
    return (dir_flags & EXT4_CASEFOLD_FL) ? img->fs->encoding : NULL;
}

int e2_name_check(const struct e2_image *img, uint32_t dir_flags, const char *name, size_t len)
{
    const struct ext2fs_nls_table *t = fold_table(img, dir_flags);
    char *bad = NULL;

    if (!t || !(img->fs->super->s_encoding_flags & EXT4_ENC_STRICT_MODE_FL))
        return 0;
    /* libext2fs's validator stops at a NUL; a name has none. */
    return ext2fs_check_encoded_name(t, (char *)name, len, &bad) ? -EINVAL : 0;
}

bool e2_name_eq(const struct e2_image *img, uint32_t dir_flags, const char *a, size_t alen,
                const char *b, size_t blen)
{
    const struct ext2fs_nls_table *t = fold_table(img, dir_flags);

    if (alen == blen && !memcmp(a, b, alen))
        return true;
    /* 0 only when both are valid UTF-8 and fold to the same string: an
     * invalid sequence stops the comparison with a non-zero result, which
     * leaves such names to the byte comparison above. */
    return t &&
           !ext2fs_casefold_cmp(t, (const unsigned char *)a, alen, (const unsigned char *)b, blen);
}

/* The hash of @name, of its casefolded form when @dir_flags has the flag
 * and the name is valid UTF-8. libext2fs 1.47 reports a name it cannot
 * fold as an error (-ENAMETOOLONG for a bad sequence inside the name);
 * the kernel (ext4fs_dirhash) then hashes the bytes as they are. */
static errcode_t fold_hash(ext2_filsys fs, int version, uint32_t dir_flags, const char *name,
                           size_t len, const uint32_t *seed, ext2_dirhash_t *h, ext2_dirhash_t *m)
{
    int flags = (int)(dir_flags & EXT4_CASEFOLD_FL);

    if (flags && fs->encoding &&
        !ext2fs_dirhash2(version, name, (int)len, fs->encoding, flags, seed, h, m))
        return 0;
    return ext2fs_dirhash(version, name, (int)len, seed, h, m);
}

uint32_t e2_name_hash(const struct e2_image *img, uint32_t dir_flags, const char *name, size_t len)
{
    static const uint32_t seed[4] = {0x2f1c1d5b, 0x8c3e4a61, 0x5d7f0b13, 0xa9e2c647};
    ext2_dirhash_t h = 0, m = 0;

    if (fold_hash(img->fs, EXT2_HASH_HALF_MD4, dir_flags, name, len, seed, &h, &m))
        return 0;
    return (uint32_t)h;
}

bool e2_name_is_foldable(ext2_filsys fs, const char *name, size_t len)
{
    ext2_dirhash_t h = 0;

    return !fs->encoding || !ext2fs_dirhash2(EXT2_HASH_HALF_MD4, name, (int)len, fs->encoding,
                                             EXT4_CASEFOLD_FL, NULL, &h, NULL);
}

int e2_dirhash(ext2_filsys fs, int version, uint32_t dir_flags, const char *name, size_t len,
               uint32_t *hash, uint32_t *minor)
{
    ext2_dirhash_t h = 0, m = 0;
    errcode_t err = fold_hash(fs, version, dir_flags, name, len, fs->super->s_hash_seed, &h, &m);

    *hash = (uint32_t)h;
    if (minor)
        *minor = (uint32_t)m;
    return e2_errno(err);
}

/* fs-verity (Linux Documentation/filesystems/fsverity.rst, read to learn
 * the format): FS_IOC_ENABLE_VERITY builds a file's Merkle tree and
 * descriptor and stores them past EOF as ext4 does (e2/verity.c), then
 * sets EXT4_VERITY_FL; FS_IOC_MEASURE_VERITY gives the file digest; every
 * read of a verity file checks its data blocks against the tree up to the
 * root hash in the descriptor and fails EIO on a mismatch.
 *
 * The tree: data blocks of @bs bytes (the last one zero-padded), each
 * hashed (after the salt, zero-padded to the hash's block size, when there
 * is one) into level 0; the hashes of a level packed into blocks of @bs
 * bytes (the last zero-padded) and hashed into the next level, until one
 * block remains, whose hash is the root hash. Stored top level first. A
 * file of one block has no tree (its block's hash is the root); an empty
 * file has an all-zero root hash. The file digest is the hash of the
 * 256-byte descriptor with sig_size 0.
 *
 * struct fs_verity, one per in-memory inode of a verity file, is made at
 * open (fs_verity_load_locked) and lives as long as the in-memory inode;
 * it is protected by fs_inode.lock, which every read holds. Tree blocks
 * verified once stay in memory, up to VERITY_CACHE_MAX per inode (the tree
 * is 1/128 of the file for SHA-256 with 4 KiB blocks), so a second read of
 * a range hashes its data blocks only.
 *
 * Enabling holds the mount lock for reading and the inode lock while it
 * hashes the whole file and keeps the tree in memory (the kernel streams
 * it out level by level and lets go of the inode lock meanwhile): fine for
 * files of gigabytes, long for larger ones. */
#include "base/log.h"
#include "base/sha2.h"
#include "fs/fs_internal.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define VERITY_ALG_SHA256 1
#define VERITY_ALG_SHA512 2
#define VERITY_MAX_LEVELS 8
#define VERITY_MAX_DIGEST 64
#define VERITY_DESC_SIZE  256
#define VERITY_MAX_SIG    (16384 - VERITY_DESC_SIZE)
#define VERITY_META_ALIGN 65536u /* ext4: the tree starts at round_up(i_size, 64 KiB) */
/* Verified tree blocks kept per in-memory inode: all of the tree of a
 * 2 GiB file (SHA-256, 4 KiB blocks). Past it the cache is emptied and
 * verification starts again from the root hash. */
#define VERITY_CACHE_MAX (16u << 20)

/* struct fsverity_descriptor (the uapi's layout, little-endian fields). */
struct verity_desc {
    uint8_t version;
    uint8_t hash_algorithm;
    uint8_t log_blocksize;
    uint8_t salt_size;
    uint32_t sig_size;  /* le */
    uint64_t data_size; /* le */
    uint8_t root_hash[64];
    uint8_t salt[32];
    uint8_t reserved[144];
};
_Static_assert(sizeof(struct verity_desc) == VERITY_DESC_SIZE, "descriptor layout");

struct fs_verity {
    unsigned alg, digest_size, log_bs, bs, log_arity, num_levels;
    uint64_t size;                           /* i_size, the descriptor's data_size */
    uint64_t meta_pos;                       /* where the tree starts in the file */
    uint64_t level_start[VERITY_MAX_LEVELS]; /* in blocks from the tree's start */
    uint64_t tree_blocks;
    uint8_t root_hash[VERITY_MAX_DIGEST], file_digest[VERITY_MAX_DIGEST];
    /* The hash state after the padded salt (or none), copied per block. */
    union {
        struct sha256_ctx s256;
        struct sha512_ctx s512;
    } salted;
    uint8_t **blocks; /* tree_blocks entries: a block read and verified, or NULL */
    size_t cached;    /* bytes in @blocks */
    size_t cache_max; /* VERITY_CACHE_MAX, or UEXT4_TEST_VERITY_CACHE_KIB in tests */
};

static inline uint64_t round_up64(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

static void hash_buf(unsigned alg, const void *p, size_t n, uint8_t *out)
{
    if (alg == VERITY_ALG_SHA256) {
        struct sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, p, n);
        sha256_final(&c, out);
    } else {
        struct sha512_ctx c;
        sha512_init(&c);
        sha512_update(&c, p, n);
        sha512_final(&c, out);
    }
}

/* The hash of one tree or data block of v->bs bytes, salted. */
static void hash_block(const struct fs_verity *v, const uint8_t *p, uint8_t *out)
{
    if (v->alg == VERITY_ALG_SHA256) {
        struct sha256_ctx c = v->salted.s256;
        sha256_update(&c, p, v->bs);
        sha256_final(&c, out);
    } else {
        struct sha512_ctx c = v->salted.s512;
        sha512_update(&c, p, v->bs);
        sha512_final(&c, out);
    }
}

static void prepare_salt(struct fs_verity *v, const uint8_t *salt, unsigned salt_size)
{
    uint8_t pad[SHA512_BLOCK_SIZE] = {0};
    unsigned hbs = v->alg == VERITY_ALG_SHA256 ? SHA256_BLOCK_SIZE : SHA512_BLOCK_SIZE;

    if (v->alg == VERITY_ALG_SHA256)
        sha256_init(&v->salted.s256);
    else
        sha512_init(&v->salted.s512);
    if (!salt_size)
        return;
    memcpy(pad, salt, salt_size);
    if (v->alg == VERITY_ALG_SHA256)
        sha256_update(&v->salted.s256, pad, hbs);
    else
        sha512_update(&v->salted.s512, pad, hbs);
}

/* fsverity_init_merkle_tree_params(): the algorithm, a block size from
 * 1 KiB to the smaller of the page size and the fs block size, and the
 * levels of a file of @size bytes. -EINVAL as the kernel. */
static int init_params(struct fs_verity *v, unsigned alg, unsigned log_bs, uint64_t size,
                       unsigned fs_bs, const uint8_t *salt, unsigned salt_size)
{
    uint64_t blocks, off = 0, per_level[VERITY_MAX_LEVELS];

    memset(v, 0, sizeof(*v));
    if (alg != VERITY_ALG_SHA256 && alg != VERITY_ALG_SHA512)
        return -EINVAL;
    if (log_bs < 10 || log_bs > 12 || (1u << log_bs) > fs_bs)
        return -EINVAL;
    /* No file is this large (ext4's s_maxbytes is below 2^44 for 4 KiB
     * blocks): an i_size from a damaged inode must not wrap the sums. */
    if (size > (1ull << 60))
        return -EINVAL;
    v->alg = alg;
    v->digest_size = alg == VERITY_ALG_SHA256 ? SHA256_DIGEST_SIZE : SHA512_DIGEST_SIZE;
    v->log_bs = log_bs;
    v->bs = 1u << log_bs;
    v->log_arity = log_bs - (alg == VERITY_ALG_SHA256 ? 5 : 6);
    v->size = size;
    v->meta_pos = round_up64(size, VERITY_META_ALIGN);
    for (blocks = (size + v->bs - 1) >> log_bs; blocks > 1;) {
        if (v->num_levels >= VERITY_MAX_LEVELS)
            return -EINVAL;
        blocks = (blocks + (1u << v->log_arity) - 1) >> v->log_arity;
        per_level[v->num_levels++] = blocks;
    }
    /* The top level first. */
    for (int l = (int)v->num_levels - 1; l >= 0; l--) {
        v->level_start[l] = off;
        off += per_level[l];
    }
    v->tree_blocks = off;
    prepare_salt(v, salt, salt_size);
    return 0;
}

/* Forget every verified tree block. */
static void drop_cache(struct fs_verity *v)
{
    for (uint64_t i = 0; v->blocks && i < v->tree_blocks && v->cached; i++) {
        if (v->blocks[i])
            v->cached -= v->bs;
        free(v->blocks[i]);
        v->blocks[i] = NULL;
    }
}

void fs_verity_free(struct fs_verity *v)
{
    if (!v)
        return;
    drop_cache(v);
    free(v->blocks);
    free(v);
}

/* Tests only: UEXT4_TEST_VERITY_CACHE_KIB=N keeps N KiB of tree blocks,
 * so that small files reach the limit. */
static size_t cache_max(void)
{
    const char *s = UEXT4_TEST_HOOKS ? getenv("UEXT4_TEST_VERITY_CACHE_KIB") : NULL;
    unsigned long n = s ? strtoul(s, NULL, 10) : 0;

    return n ? (size_t)n << 10 : VERITY_CACHE_MAX;
}

/* ---- building the tree (enable) ---- */

/* Hash the data blocks of @fi into level 0 of @tree (tree_blocks * bs
 * bytes, zeroed), or into @root for a file of one block. Reads 1 MiB at a
 * time through the fs layer (inline data converted already). */
static int hash_data(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                     const struct fs_verity *v, uint8_t *tree, uint8_t *root)
{
    const size_t chunk = 1u << 20;
    uint8_t *buf = malloc(chunk), *dst;
    uint64_t blk = 0;
    int ret = 0;

    if (!buf)
        return -ENOMEM;
    dst = v->num_levels ? tree + v->level_start[0] * v->bs : root;
    for (uint64_t off = 0; off < v->size && !ret; off += chunk) {
        size_t want = v->size - off < chunk ? (size_t)(v->size - off) : chunk;
        ssize_t got = fs_file_read_locked(fs, fi, a, buf, want, (off_t)off);
        if (got != (ssize_t)want) {
            ret = got < 0 ? (int)got : -EIO;
            break;
        }
        memset(buf + want, 0, round_up64(want, v->bs) - want);
        for (size_t b = 0; b < want; b += v->bs, blk++)
            hash_block(v, buf + b, dst + blk * v->digest_size);
    }
    free(buf);
    return ret;
}

/* Each level above 0 from the one below it; the root from the top. */
static void hash_levels(const struct fs_verity *v, uint8_t *tree, uint8_t *root)
{
    for (unsigned l = 0; l < v->num_levels; l++) {
        uint64_t first = v->level_start[l];
        uint64_t n = l ? v->level_start[l - 1] - first : v->tree_blocks - first;
        uint8_t *dst = l + 1 < v->num_levels ? tree + v->level_start[l + 1] * v->bs : root;

        for (uint64_t i = 0; i < n; i++)
            hash_block(v, tree + (first + i) * v->bs, dst + i * v->digest_size);
    }
}

/* The bytes stored from v->meta_pos: the tree, the descriptor (and
 * signature) from the next fs block boundary, its size in the last 4
 * bytes of the block it ends in, or of the next if fewer than 4 remain
 * (ext4_write_verity_descriptor). *@len: their length. */
static uint8_t *metadata_image(const struct fs_verity *v, const uint8_t *tree,
                               const struct verity_desc *d, const void *sig, uint32_t sig_size,
                               unsigned fs_bs, size_t *len)
{
    uint64_t tree_size = v->tree_blocks * v->bs;
    uint64_t desc_pos = round_up64(v->meta_pos + tree_size, fs_bs);
    uint32_t desc_size = VERITY_DESC_SIZE + sig_size, le_size = htole32(desc_size);
    uint64_t end = round_up64(desc_pos + desc_size + 4, fs_bs);
    uint8_t *m = calloc(1, end - v->meta_pos);

    if (!m)
        return NULL;
    memcpy(m, tree, tree_size);
    memcpy(m + (desc_pos - v->meta_pos), d, VERITY_DESC_SIZE);
    if (sig_size)
        memcpy(m + (desc_pos - v->meta_pos) + VERITY_DESC_SIZE, sig, sig_size);
    memcpy(m + (end - 4 - v->meta_pos), &le_size, 4);
    *len = end - v->meta_pos;
    return m;
}

static void fill_desc(struct verity_desc *d, const struct fs_verity *v,
                      const struct uext4_verity_args *va, const uint8_t *root)
{
    memset(d, 0, sizeof(*d));
    d->version = 1;
    d->hash_algorithm = (uint8_t)v->alg;
    d->log_blocksize = (uint8_t)v->log_bs;
    d->salt_size = (uint8_t)va->salt_size;
    d->sig_size = htole32(va->sig_size);
    d->data_size = htole64(v->size);
    memcpy(d->root_hash, root, v->digest_size);
    if (va->salt_size)
        memcpy(d->salt, va->salt, va->salt_size);
}

/* Build and store the tree and descriptor of @fi (extent-mapped, nothing
 * mapped past EOF), setting the flag in the same step. */
static int build_and_seal_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                                 const struct uext4_verity_args *va)
{
    unsigned fs_bs = e2_block_size(fs->img);
    uint8_t root[VERITY_MAX_DIGEST] = {0}, *tree = NULL, *meta = NULL;
    struct verity_desc d;
    struct fs_verity v;
    size_t len = 0;
    int ret = init_params(&v, va->hash_algorithm, (unsigned)__builtin_ctz(va->block_size), a->size,
                          fs_bs, va->salt, va->salt_size);

    if (ret)
        return ret;
    tree = calloc(1, v.tree_blocks * v.bs + 1);
    if (!tree)
        return -ENOMEM;
    ret = hash_data(fs, fi, a, &v, tree, root);
    if (!ret) {
        hash_levels(&v, tree, root);
        fill_desc(&d, &v, va, root);
        meta = metadata_image(&v, tree, &d, va->sig, va->sig_size, fs_bs, &len);
        ret = meta ? e2_verity_seal(fs->img, fi->ino, meta, len, v.meta_pos) : -ENOMEM;
    }
    free(meta);
    free(tree);
    return ret;
}

/* ---- loading the descriptor (open) ---- */

/* ext4_get_verity_descriptor_location(): the size in the last 4 bytes of
 * the last mapped block, the descriptor at the fs block boundary at or
 * before where it must start, not before the tree's start. */
static int find_desc(struct uext4_fs *fs, uint32_t ino, uint64_t meta_pos, uint64_t *pos,
                     uint32_t *size)
{
    unsigned fs_bs = e2_block_size(fs->img);
    uint64_t end, size_pos;
    uint32_t le;
    ssize_t got;
    int ret = e2_verity_end(fs->img, ino, &end);

    if (ret)
        return ret;
    if (end < 4)
        return -EUCLEAN;
    size_pos = end - 4;
    got = e2_verity_read(fs->img, ino, &le, 4, size_pos);
    if (got < 0)
        return (int)got;
    *size = le32toh(le);
    if (*size > INT32_MAX || *size > size_pos)
        return -EUCLEAN;
    *pos = (size_pos - *size) / fs_bs * fs_bs;
    return *pos < meta_pos ? -EUCLEAN : 0;
}

/* validate_fsverity_descriptor(): -EINVAL for what the kernel refuses. */
static int check_desc(const struct verity_desc *d, uint32_t desc_size, uint64_t i_size)
{
    static const uint8_t zero[sizeof(d->reserved)];

    if (desc_size < VERITY_DESC_SIZE || d->version != 1 ||
        memcmp(d->reserved, zero, sizeof(zero)) || d->salt_size > sizeof(d->salt) ||
        le64toh(d->data_size) != i_size || le32toh(d->sig_size) > desc_size - VERITY_DESC_SIZE)
        return -EINVAL;
    return 0;
}

/* The file digest: the descriptor's hash with sig_size 0. */
static void file_digest(struct fs_verity *v, const struct verity_desc *d)
{
    struct verity_desc c = *d;

    c.sig_size = 0;
    hash_buf(v->alg, &c, sizeof(c), v->file_digest);
}

/* Read and check @fi's descriptor into a new struct fs_verity. */
static int load_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                       struct fs_verity **out)
{
    struct fs_verity *v = calloc(1, sizeof(*v));
    struct verity_desc d;
    uint64_t pos = 0;
    uint32_t size = 0;
    int ret;

    if (!v)
        return -ENOMEM;
    ret = find_desc(fs, fi->ino, round_up64(a->size, VERITY_META_ALIGN), &pos, &size);
    if (!ret && size > VERITY_DESC_SIZE + VERITY_MAX_SIG)
        ret = -EMSGSIZE;
    if (!ret && size < VERITY_DESC_SIZE)
        ret = -EINVAL;
    if (!ret) {
        ssize_t got = e2_verity_read(fs->img, fi->ino, &d, sizeof(d), pos);
        ret = got < 0 ? (int)got : check_desc(&d, size, a->size);
    }
    if (!ret)
        ret = init_params(v, d.hash_algorithm, d.log_blocksize, a->size, e2_block_size(fs->img),
                          d.salt, d.salt_size);
    if (!ret && !(v->blocks = calloc(v->tree_blocks + 1, sizeof(*v->blocks))))
        ret = -ENOMEM;
    if (ret) {
        fs_verity_free(v);
        return ret;
    }
    memcpy(v->root_hash, d.root_hash, v->digest_size);
    v->cache_max = cache_max();
    file_digest(v, &d);
    *out = v;
    return 0;
}

int fs_verity_load_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a)
{
    int ret;

    assert_inode_locked(fi);
    if (fi->verity || !(a->flags & E2_FL_VERITY))
        return 0;
    ret = load_locked(fs, fi, a, &fi->verity);
    if (ret)
        log_err("inode %u: fs-verity descriptor unusable: %s", fi->ino, strerror(-ret));
    return ret;
}

/* ---- verified reads ---- */

static int get_hash(struct uext4_fs *fs, struct fs_inode *fi, unsigned level, uint64_t index,
                    const uint8_t **hash);

/* Tree block @bidx of @level, read and checked against its hash in the
 * level above (or the root hash) the first time; cached after. */
static int tree_block(struct uext4_fs *fs, struct fs_inode *fi, unsigned level, uint64_t bidx,
                      const uint8_t **block)
{
    struct fs_verity *v = fi->verity;
    uint64_t g = v->level_start[level] + bidx;
    uint8_t got[VERITY_MAX_DIGEST], *b;
    const uint8_t *want;
    ssize_t n;
    int ret;

    if (g >= v->tree_blocks)
        return -EIO;
    if (v->blocks[g]) {
        *block = v->blocks[g];
        return 0;
    }
    ret = get_hash(fs, fi, level + 1, bidx, &want);
    if (ret)
        return ret;
    b = malloc(v->bs);
    if (!b)
        return -ENOMEM;
    n = e2_verity_read(fs->img, fi->ino, b, v->bs, v->meta_pos + g * v->bs);
    hash_block(v, b, got);
    if (n < 0 || memcmp(got, want, v->digest_size)) {
        free(b);
        if (n >= 0)
            log_err("inode %u: fs-verity: tree block %llu (level %u) does not match its hash",
                    fi->ino, (unsigned long long)g, level);
        return n < 0 ? (int)n : -EIO;
    }
    /* The hash it was checked against (in its parent) is used no more:
     * emptying the cache now frees nothing a caller still holds. */
    if (v->cached + v->bs > v->cache_max)
        drop_cache(v);
    v->cached += v->bs;
    *block = v->blocks[g] = b;
    return 0;
}

/* The hash of block @index of the level below @level: the root hash above
 * the top level. */
static int get_hash(struct uext4_fs *fs, struct fs_inode *fi, unsigned level, uint64_t index,
                    const uint8_t **hash)
{
    struct fs_verity *v = fi->verity;
    const uint8_t *b = NULL;
    int ret;

    if (level == v->num_levels) {
        *hash = index == 0 ? v->root_hash : NULL;
        return index == 0 ? 0 : -EIO;
    }
    ret = tree_block(fs, fi, level, index >> v->log_arity, &b);
    if (ret)
        return ret;
    *hash = b + (index & ((1u << v->log_arity) - 1)) * v->digest_size;
    return 0;
}

/* Check the data blocks in @buf (@n bytes from @off, a block boundary;
 * the last block may be partial, at EOF). */
static int verify_data(struct uext4_fs *fs, struct fs_inode *fi, const uint8_t *buf, size_t n,
                       uint64_t off)
{
    struct fs_verity *v = fi->verity;
    uint8_t got[VERITY_MAX_DIGEST], *pad = NULL;
    int ret = 0;

    for (size_t done = 0; done < n && !ret; done += v->bs) {
        uint64_t index = (off + done) >> v->log_bs;
        const uint8_t *p = buf + done, *want;
        if (n - done < v->bs) {
            if (!(pad = calloc(1, v->bs)))
                return -ENOMEM;
            memcpy(pad, p, n - done);
            p = pad;
        }
        ret = get_hash(fs, fi, 0, index, &want);
        if (ret)
            break;
        hash_block(v, p, got);
        if (memcmp(got, want, v->digest_size)) {
            log_err("inode %u: fs-verity: data block %llu does not match its hash", fi->ino,
                    (unsigned long long)index);
            ret = -EIO;
        }
    }
    free(pad);
    return ret;
}

ssize_t fs_file_read_verified_locked(struct uext4_fs *fs, struct fs_inode *fi,
                                     const struct e2_attr *a, void *buf, size_t size, off_t off)
{
    struct fs_verity *v = fi->verity;
    uint64_t start, end;
    uint8_t *tmp = buf;
    ssize_t got;
    int ret;

    if (!(a->flags & E2_FL_VERITY))
        return fs_file_read_locked(fs, fi, a, buf, size, off);
    ret = fs_verity_load_locked(fs, fi, a);
    if (ret)
        return ret;
    v = fi->verity;
    if ((uint64_t)off >= a->size || !size)
        return 0;
    /* Whole tree blocks around the range: a read in the middle of one
     * still hashes all of it. */
    start = (uint64_t)off & ~(uint64_t)(v->bs - 1);
    end = (uint64_t)off + size < a->size ? (uint64_t)off + size : a->size;
    end = round_up64(end, v->bs) < a->size ? round_up64(end, v->bs) : a->size;
    if (start != (uint64_t)off || end - start > size) {
        tmp = malloc(end - start);
        if (!tmp)
            return -ENOMEM;
    }
    got = fs_file_read_locked(fs, fi, a, tmp, end - start, (off_t)start);
    if (got >= 0 && (uint64_t)got != end - start)
        got = -EIO;
    if (got >= 0)
        got = verify_data(fs, fi, tmp, end - start, start);
    if (got >= 0) {
        got = (ssize_t)((end - (uint64_t)off) < size ? end - (uint64_t)off : size);
        if (tmp != buf)
            memcpy(buf, tmp + ((uint64_t)off - start), (size_t)got);
    }
    if (tmp != buf)
        free(tmp);
    return got;
}

/* ---- the ioctls ---- */

/* fsverity_ioctl_enable()'s argument checks (the front end checked the
 * version and reserved fields). */
static int check_args(const struct uext4_verity_args *va)
{
    if (!va->block_size || (va->block_size & (va->block_size - 1)))
        return -EINVAL;
    if (va->salt_size > 32 || va->sig_size > VERITY_MAX_SIG)
        return -EMSGSIZE;
    return 0;
}

/* What the kernel checks before it builds anything, in its order: write
 * permission, a readable descriptor, not append-only, a regular file, a
 * writable mount, no writer; then (enable_verity) the parameters and an
 * inode not verity already. */
static int may_enable_locked(struct uext4_fs *fs, const struct fs_cred *fc, struct fs_inode *fi,
                             const struct e2_attr *a, int open_flags,
                             const struct uext4_verity_args *va)
{
    struct fs_verity v;
    int ret = fs_permission(fs, fc, fi->ino, a, W_OK);

    if (!ret && (open_flags & O_ACCMODE) == O_WRONLY)
        ret = -EBADF;
    if (!ret && (a->flags & E2_FL_APPEND))
        ret = -EPERM;
    if (!ret && S_ISDIR(a->mode))
        ret = -EISDIR;
    if (!ret && !S_ISREG(a->mode))
        ret = -EINVAL;
    if (!ret)
        ret = fs_may_write(fs);
    if (!ret && fs_inode_writers(fs, fi->ino))
        ret = -ETXTBSY;
    if (!ret)
        ret = init_params(&v, va->hash_algorithm, (unsigned)__builtin_ctz(va->block_size), a->size,
                          e2_block_size(fs->img), NULL, 0);
    if (!ret && (a->flags & E2_FL_VERITY))
        ret = -EEXIST;
    return ret;
}

/* ext4_begin_enable_verity(): inline data to a block, extents required,
 * nothing mapped past EOF (the descriptor is found from the last block). */
static int prepare_file_locked(struct uext4_fs *fs, struct fs_inode *fi, struct e2_attr *a)
{
    int ret = 0;

    if (a->flags & E2_FL_INLINE_DATA)
        ret = fs_inline_convert_locked(fs, fi);
    if (!ret)
        ret = e2_inode_get(fs->img, fi->ino, a);
    if (!ret && !(a->flags & E2_FL_EXTENTS))
        ret = -EOPNOTSUPP;
    if (!ret)
        ret = e2_data_truncate(fs->img, fi->ino, a->size);
    return ret;
}

static int enable_once(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                       int open_flags, const struct uext4_verity_args *va)
{
    struct fs_inode *fi;
    struct fs_cred fc;
    struct e2_attr a;
    int ret;

    fs_commit_if_overdue(fs);
    fs_cred_from(fs, cr, &fc);
    fi = fs_op_begin(fs, ino);
    if (!fi)
        return -ENOMEM;
    ret = FS_CHECK(fs, ino, e2_inode_get(fs->img, ino, &a));
    if (!ret)
        ret = may_enable_locked(fs, &fc, fi, &a, open_flags, va);
    if (!ret)
        ret = FS_CHECK(fs, ino, prepare_file_locked(fs, fi, &a));
    if (!ret) {
        ret = FS_CHECK(fs, ino, build_and_seal_locked(fs, fi, &a, va));
        /* ext4_end_enable_verity(): whatever was written past EOF goes. */
        if (ret)
            e2_data_truncate(fs->img, ino, a.size);
    }
    if (!ret)
        ret = FS_CHECK(fs, ino, e2_inode_get(fs->img, ino, &a));
    if (!ret)
        ret = FS_CHECK(fs, ino, fs_verity_load_locked(fs, fi, &a));
    fs_op_end(fs, fi);
    return ret;
}

int uext4_enable_verity(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                        int open_flags, const struct uext4_verity_args *va)
{
    int ret = check_args(va);

    if (ret)
        return ret;
    if (!e2_has_verity(fs->img))
        return -EOPNOTSUPP;
    ret = enable_once(fs, cr, ino, open_flags, va);
    /* Blocks freed since the last commit are held back (file.c). */
    if (fs_should_retry_enospc(fs, ret))
        ret = enable_once(fs, cr, ino, open_flags, va);
    return ret;
}

int uext4_measure_verity(struct uext4_fs *fs, uint32_t ino, unsigned *hash_algorithm, void *digest,
                         size_t size)
{
    struct fs_inode *fi = fs_op_begin_read(fs, ino);
    struct e2_attr a;
    int ret;

    if (!fi)
        return -ENOMEM;
    ret = FS_CHECK(fs, ino, e2_inode_get(fs->img, ino, &a));
    if (!ret && !(a.flags & E2_FL_VERITY))
        ret = -ENODATA;
    if (!ret)
        ret = fs_verity_load_locked(fs, fi, &a);
    if (!ret) {
        *hash_algorithm = fi->verity->alg;
        ret = (int)fi->verity->digest_size;
        if (size < fi->verity->digest_size)
            ret = -EOVERFLOW;
        else
            memcpy(digest, fi->verity->file_digest, fi->verity->digest_size);
    }
    fs_op_end(fs, fi);
    return ret;
}

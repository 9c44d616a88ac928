/* Creating an htree index when a one-block directory fills up, as the
 * kernel's make_indexed_dir() and do_split() do, so that a directory grown
 * by uext4 has the layout Linux would give it. libext2fs maintains an
 * existing index (ext2fs_link) but never creates one.
 *
 * Result: block 0 becomes the dx root ("." and ".." kept, the index after
 * them), the old entries move to block 1, and block 1 is split by hash with
 * block 2, half the entries' bytes each.
 *
 * Also the common cases of changing an indexed directory, one leaf read
 * and written: removing an entry, and adding one to a leaf with room.
 * ext2fs_link reads that leaf twice, checksum and all, and walks it entry
 * by entry through callbacks; it is left the splits. */
#include "e2/e2_internal.h"
#include "e2/iomgr.h"

#include <errno.h>
#include <ext2fs/ext3_extents.h>
#include <stdlib.h>
#include <string.h>

struct dx_map {
    uint32_t hash;
    unsigned offs; /* of the entry in its block */
};

static unsigned rec_len_of(unsigned name_len)
{
    return (8 + name_len + 3) & ~3u;
}

static unsigned csum_size(ext2_filsys fs)
{
    return ext2fs_has_feature_metadata_csum(fs->super) ? sizeof(struct ext2_dir_entry_tail) : 0;
}

static int hash_version(ext2_filsys fs)
{
    int v = fs->super->s_def_hash_version;

    if (v <= EXT2_HASH_TEA && (fs->super->s_flags & EXT2_FLAGS_UNSIGNED_HASH))
        v += 3;
    return v;
}

/* Sort by hash the way the kernel's dx_sort_map() does (a comb sort, then
 * bubble passes), so entries of equal hash end in the same order. */
static void sort_map(struct dx_map *map, unsigned count)
{
    struct dx_map *top = map + count - 1, tmp;
    unsigned gap = count;
    int more;

    while (gap > 2) {
        gap = gap * 10 / 13;
        if (gap - 9 < 2)
            gap = 11;
        for (struct dx_map *p = top, *q = p - gap; q >= map; p--, q--) {
            if (p->hash < q->hash) {
                tmp = *p;
                *p = *q;
                *q = tmp;
            }
        }
    }
    do {
        more = 0;
        for (struct dx_map *q = top; q-- > map;) {
            if (q[1].hash >= q[0].hash)
                continue;
            tmp = q[1];
            q[1] = q[0];
            q[0] = tmp;
            more = 1;
        }
    } while (more);
}

/* One block more of i_size: large_dir directories may pass 4 GiB, where
 * i_size_high takes the carry. */
static void grow_dir_size(struct ext2_inode_large *in, unsigned bs)
{
    uint64_t size = EXT2_I_SIZE(in) + bs;

    in->i_size = (uint32_t)size;
    in->i_size_high = (uint32_t)(size >> 32);
}

/* Append a block to directory @dir: allocate, map at the end, grow i_size. */
static int append_block_locked(struct e2_image *img, uint32_t dir, struct ext2_inode_large *in,
                               blk64_t *lblk, blk64_t *pblk)
{
    ext2_filsys fs = img->fs;
    blk64_t goal = 0;
    errcode_t err;

    *lblk = EXT2_I_SIZE(in) / fs->blocksize;
    if (EXT2FS_CLUSTER_RATIO(fs) > 1) {
        /* bigalloc: a block of a cluster the directory has already is at
         * its offset in that cluster, allocating nothing; libext2fs's
         * allocating bmap knows the rule and charges i_blocks by cluster. */
        *pblk = 0;
        int ret = e2_bmap_alloc_locked(img, dir, in, 0, *lblk, NULL, pblk);
        if (ret)
            return ret;
        grow_dir_size(in, fs->blocksize);
        return 0;
    }
    err = ext2fs_bmap2(fs, dir, (struct ext2_inode *)in, NULL, 0, *lblk - 1, NULL, &goal);
    if (!err)
        err = ext2fs_new_block2(fs, goal, NULL, pblk);
    if (!err)
        err = ext2fs_iblk_add_blocks(fs, (struct ext2_inode *)in, 1);
    if (!err)
        err = ext2fs_bmap2(fs, dir, (struct ext2_inode *)in, NULL, BMAP_SET, *lblk, NULL, pblk);
    if (err)
        return e2_errno(err);
    ext2fs_block_alloc_stats2(fs, *pblk, +1);
    grow_dir_size(in, fs->blocksize);
    return 0;
}

static void init_tail(ext2_filsys fs, char *block)
{
    if (csum_size(fs))
        ext2fs_initialize_dirent_tail(fs, EXT2_DIRENT_TAIL(block, fs->blocksize));
}

/* Make the last entry of @block (at @last) reach the end of its space. */
static void stretch_last(ext2_filsys fs, char *block, char *last)
{
    ext2fs_set_rec_len(fs, (unsigned)(block + fs->blocksize - csum_size(fs) - last),
                       (struct ext2_dir_entry *)last);
}

/* Move the live entries of @b1 listed in @map (by hash order) to @b2,
 * packed; pack what stays in @b1 in its order (dx_move/dx_pack_dirents). */
static void split_leaf(ext2_filsys fs, char *b1, char *b2, struct dx_map *map, unsigned count)
{
    char *to = b2, *last2 = b2, *prev = b1, *dst = b1;
    unsigned bs = fs->blocksize;

    for (unsigned i = 0; i < count; i++) {
        struct ext2_dir_entry *de = (struct ext2_dir_entry *)(b1 + map[i].offs);
        unsigned rec = 0, len = rec_len_of(ext2fs_dirent_name_len(de));
        memcpy(to, de, len);
        ext2fs_set_rec_len(fs, len, (struct ext2_dir_entry *)to);
        ext2fs_get_rec_len(fs, de, &rec);
        de->inode = 0;
        memset((char *)de + offsetof(struct ext2_dir_entry, name_len), 0,
               rec - offsetof(struct ext2_dir_entry, name_len));
        last2 = to;
        to += len;
    }
    for (char *p = b1; p < b1 + bs;) {
        struct ext2_dir_entry *de = (struct ext2_dir_entry *)p;
        unsigned rec = 0;
        if (ext2fs_get_rec_len(fs, de, &rec) || rec < 8)
            break;
        if (de->inode && ext2fs_dirent_name_len(de)) {
            unsigned len = rec_len_of(ext2fs_dirent_name_len(de));
            if (p > dst)
                memmove(dst, p, len);
            ext2fs_set_rec_len(fs, len, (struct ext2_dir_entry *)dst);
            prev = dst;
            dst += len;
        }
        p += rec;
    }
    stretch_last(fs, b1, prev);
    stretch_last(fs, b2, last2);
    init_tail(fs, b1);
    init_tail(fs, b2);
}

/* The entries of @block after "." and "..", by hash, filled from the end as
 * the kernel's dx_make_map() does. Returns the count. */
static unsigned make_map(ext2_filsys fs, uint32_t dir_flags, const char *block, struct dx_map *map,
                         unsigned max, bool *unfoldable)
{
    unsigned n = 0, bs = fs->blocksize;
    int ver = hash_version(fs);

    for (unsigned off = 0; off < bs - csum_size(fs);) {
        const struct ext2_dir_entry *de = (const struct ext2_dir_entry *)(block + off);
        unsigned rec = 0;
        if (ext2fs_get_rec_len(fs, (struct ext2_dir_entry *)de, &rec) || rec < 8)
            break;
        if (de->inode && ext2fs_dirent_name_len(de) && n < max) {
            uint32_t h = 0;
            /* A casefold directory hashes the casefolded name. */
            if (e2_dirhash(fs, ver, dir_flags, de->name, ext2fs_dirent_name_len(de), &h, NULL))
                h = 0;
            if ((dir_flags & EXT4_CASEFOLD_FL) &&
                !e2_name_is_foldable(fs, de->name, ext2fs_dirent_name_len(de)))
                *unfoldable = true;
            map[max - 1 - n] = (struct dx_map){h, off};
            n++;
        }
        off += rec;
    }
    memmove(map, map + max - n, n * sizeof(*map));
    return n;
}

/* The record lengths of "." and ".." at the start of the directory block
 * @root, checked. */
static int dot_entries(ext2_filsys fs, const char *root, unsigned *dot_rec, unsigned *dotdot_rec)
{
    unsigned bs = fs->blocksize;

    *dot_rec = *dotdot_rec = 0;
    if (ext2fs_get_rec_len(fs, (struct ext2_dir_entry *)root, dot_rec) || *dot_rec < 12 ||
        *dot_rec >= bs)
        return -EUCLEAN;
    if (ext2fs_get_rec_len(fs, (struct ext2_dir_entry *)(root + *dot_rec), dotdot_rec) ||
        *dotdot_rec < 12 || *dot_rec + *dotdot_rec > bs)
        return -EUCLEAN;
    return 0;
}

/* Block 1 (@b1) gets everything of @root from @start (after ".."), the
 * last entry stretched; @root keeps zeros there. */
static int move_to_block1(ext2_filsys fs, char *root, char *b1, unsigned start)
{
    unsigned bs = fs->blocksize, len = bs - csum_size(fs) - start;
    char *last = NULL;

    memcpy(b1, root + start, len);
    for (unsigned off = 0; off < len;) {
        unsigned rec = 0;
        if (ext2fs_get_rec_len(fs, (struct ext2_dir_entry *)(b1 + off), &rec) || rec < 8 ||
            off + rec > len)
            return -EUCLEAN;
        last = b1 + off;
        off += rec;
    }
    if (!last)
        return -EUCLEAN;
    stretch_last(fs, b1, last);
    init_tail(fs, b1);
    memset(root + start, 0, bs - start);
    return 0;
}

/* The root: ".." spans the rest of the block; the index follows it.
 * Returns its first entry, which holds the count and limit; *@limit gets
 * how many entries fit. */
static struct ext2_dx_entry *init_root(ext2_filsys fs, char *root, unsigned dot_rec,
                                       unsigned *limit)
{
    unsigned bs = fs->blocksize;
    struct ext2_dx_root_info *info = (struct ext2_dx_root_info *)(root + dot_rec + 12);

    ext2fs_set_rec_len(fs, bs - dot_rec, (struct ext2_dir_entry *)(root + dot_rec));
    memset(info, 0, sizeof(*info));
    info->hash_version = fs->super->s_def_hash_version;
    info->info_length = sizeof(*info);
    *limit =
        (bs - dot_rec - 12 - sizeof(*info) - (csum_size(fs) ? sizeof(struct ext2_dx_tail) : 0)) /
        sizeof(struct ext2_dx_entry);
    return (struct ext2_dx_entry *)((char *)info + sizeof(*info));
}

/* Where to split the @count entries of block 1, sorted by hash in @map:
 * the index of the first that moves to block 2, about half the bytes
 * from the top (at least one entry stays). */
static unsigned choose_split(ext2_filsys fs, const char *b1, const struct dx_map *map,
                             unsigned count)
{
    unsigned bs = fs->blocksize, size = 0, move = 0;

    for (int i = (int)count - 1; i >= 0; i--) {
        /* Recompute the entry's size after sorting: by its offset. */
        unsigned rec = 0;
        ext2fs_get_rec_len(fs, (struct ext2_dir_entry *)(b1 + map[i].offs), &rec);
        if (size + rec / 2 > bs / 2)
            return (unsigned)i > 0 ? count - move : count / 2;
        size += rec;
        move++;
    }
    return count / 2;
}

/* The root's index: two leaves, logical blocks @l1 and, from @hash2 on,
 * @l2. The first entry holds the count and limit in place of its hash. */
static void set_index(struct ext2_dx_entry *ent, unsigned limit, blk64_t l1, uint32_t hash2,
                      blk64_t l2)
{
    struct ext2_dx_countlimit *cl = (struct ext2_dx_countlimit *)ent;

    cl->limit = ext2fs_cpu_to_le16(limit);
    cl->count = ext2fs_cpu_to_le16(2);
    ent[0].block = ext2fs_cpu_to_le32((uint32_t)l1);
    ent[1].hash = ext2fs_cpu_to_le32(hash2);
    ent[1].block = ext2fs_cpu_to_le32((uint32_t)l2);
}

/* Split the entries of block @b1 by hash into @b1 and @b2; *@hash2 gets
 * the first hash of @b2 (odd if the hash continues from @b1). -EOPNOTSUPP,
 * nothing changed, if the directory (flags @dir_flags) is casefolded and
 * holds a name that cannot be folded. */
static int split_by_hash(ext2_filsys fs, uint32_t dir_flags, char *b1, char *b2, uint32_t *hash2)
{
    unsigned max = fs->blocksize / 8, count, split;
    struct dx_map *map = calloc(max, sizeof(*map));
    bool unfoldable = false;
    int ret = 0;

    if (!map)
        return -ENOMEM;
    count = make_map(fs, dir_flags, b1, map, max, &unfoldable);
    if (count < 2) {
        ret = -EUCLEAN;
        goto out_free;
    }
    if (unfoldable) {
        ret = -EOPNOTSUPP; /* nothing written yet */
        goto out_free;
    }
    sort_map(map, count);
    split = choose_split(fs, b1, map, count);
    *hash2 = map[split].hash;
    if (*hash2 == map[split - 1].hash)
        *hash2 |= 1; /* the hash continues into the next block */
    split_leaf(fs, b1, b2, map + split, count - split);
out_free:
    free(map);
    return ret;
}

int e2_dir_make_indexed_locked(struct e2_image *img, uint32_t dir)
{
    ext2_filsys fs = img->fs;
    unsigned bs = fs->blocksize;
    char *root = NULL, *b1 = NULL, *b2 = NULL;
    struct ext2_inode_large in;
    blk64_t p0 = 0, l1, p1, l2, p2;
    struct ext2_dx_entry *ent;
    unsigned dot_rec, dotdot_rec, limit;
    uint32_t hash2;
    int ret;

    ret = e2_read_inode_locked(img, dir, &in);
    if (ret)
        return ret;
    if (EXT2_I_SIZE(&in) != bs || (in.i_flags & (EXT2_INDEX_FL | EXT4_INLINE_DATA_FL)))
        return -EINVAL;
    ret = e2_errno(ext2fs_bmap2(fs, dir, (struct ext2_inode *)&in, NULL, 0, 0, NULL, &p0));
    if (!ret && !p0)
        ret = -EUCLEAN;
    if (ret)
        return ret;
    root = calloc(1, bs);
    b1 = calloc(1, bs);
    b2 = calloc(1, bs);
    if (!root || !b1 || !b2) {
        ret = -ENOMEM;
        goto out_free;
    }
    ret = e2_errno(ext2fs_read_dir_block4(fs, p0, root, 0, dir));
    if (!ret)
        ret = dot_entries(fs, root, &dot_rec, &dotdot_rec);
    if (!ret)
        ret = move_to_block1(fs, root, b1, dot_rec + dotdot_rec);
    if (ret)
        goto out_free;
    ent = init_root(fs, root, dot_rec, &limit);
    ret = split_by_hash(fs, in.i_flags, b1, b2, &hash2);
    if (!ret)
        ret = append_block_locked(img, dir, &in, &l1, &p1);
    if (!ret)
        ret = append_block_locked(img, dir, &in, &l2, &p2);
    if (ret)
        goto out_free;
    set_index(ent, limit, l1, hash2, l2);
    in.i_flags |= EXT2_INDEX_FL;
    ret = e2_errno(ext2fs_write_dir_block4(fs, p1, b1, 0, dir));
    if (!ret)
        ret = e2_errno(ext2fs_write_dir_block4(fs, p2, b2, 0, dir));
    if (!ret)
        ret = e2_errno(ext2fs_write_dir_block4(fs, p0, root, 0, dir));
    if (!ret)
        ret = e2_write_inode_locked(img, dir, &in);
out_free:
    free(b2);
    free(b1);
    free(root);
    return ret;
}

/* ---- walking the index: removing and adding entries ---- */

/* A leaf or index block of the common size is worked on on the stack,
 * saving a malloc and free of a block per insert or removal. */
#define BLOCK_BUF 4096

static char *block_buf(ext2_filsys fs, char *local)
{
    return fs->blocksize <= BLOCK_BUF ? local : malloc(fs->blocksize);
}

/* Logical block @lblk of directory @dir (as @in) on disk, in *@pblk (0 for
 * a hole). An extent tree held in the inode itself, which is every
 * directory of up to four extents, is read here: libext2fs's bmap opens an
 * extent handle for each call (two allocations and a copy of the inode),
 * which cost as much as the rest of an insert. Deeper trees, unwritten
 * extents and block maps go through libext2fs; so does a root that does
 * not add up (it reports that as before). */
static int dir_bmap(ext2_filsys fs, uint32_t dir, struct ext2_inode_large *in, blk64_t lblk,
                    blk64_t *pblk)
{
    const struct ext3_extent_header *eh = (const struct ext3_extent_header *)in->i_block;
    const struct ext3_extent *ex = (const struct ext3_extent *)(eh + 1);
    unsigned n = ext2fs_le16_to_cpu(eh->eh_entries);
    uint64_t next = 0;

    *pblk = 0;
    if ((in->i_flags & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL)) != EXT4_EXTENTS_FL ||
        ext2fs_le16_to_cpu(eh->eh_magic) != EXT3_EXT_MAGIC || eh->eh_depth != 0 ||
        n > ext2fs_le16_to_cpu(eh->eh_max) || n > 4)
        goto out_libext2fs;
    for (unsigned i = 0; i < n; i++) {
        uint32_t first = ext2fs_le32_to_cpu(ex[i].ee_block);
        unsigned len = ext2fs_le16_to_cpu(ex[i].ee_len);

        /* Unwritten, or not in order: libext2fs's business. */
        if (len == 0 || len > EXT_INIT_MAX_LEN || first < next)
            goto out_libext2fs;
        next = (uint64_t)first + len;
        if (lblk >= first && lblk < next) {
            *pblk = ((blk64_t)ext2fs_le16_to_cpu(ex[i].ee_start_hi) << 32 |
                     ext2fs_le32_to_cpu(ex[i].ee_start)) +
                    (lblk - first);
            return 0;
        }
    }
    return 0;
out_libext2fs:
    return e2_errno(ext2fs_bmap2(fs, dir, (struct ext2_inode *)in, NULL, 0, lblk, NULL, pblk));
}

/* What the block cache may remember of a directory block read here
 * (e2_iom_mark kinds): checked as an index block or as a leaf of the
 * directory, or written as one by this file. A block checked once is not
 * checked again while its cached bytes stay as they were: inserts into
 * one directory read the same root and leaves over and over, and their
 * checks (checksums over the whole block, the root's by libext2fs, which
 * also reads the directory's inode for it) were a fifth of an insert. */
enum { MARK_INDEX = 1, MARK_LEAF };

/* Read index block @pblk of directory @dir (i_generation @gen) into
 * @block, checked by ext2fs_read_dir_block4() unless the cache holds it
 * checked. */
static errcode_t index_read(ext2_filsys fs, uint32_t dir, uint32_t gen, blk64_t pblk, char *block)
{
    struct e2_iom_mark m = {MARK_INDEX, dir, gen};
    errcode_t err = io_channel_read_blk64(fs->io, pblk, 1, block);

    if (!err && e2_iom_is_checked(fs->io, pblk, &m))
        return 0;
    err = ext2fs_read_dir_block4(fs, pblk, block, 0, dir);
    if (!err)
        e2_iom_set_checked(fs->io, pblk, &m);
    return err;
}

/* Walk the index of directory @dir to the leaf block for @name's hash.
 * Removal (@insert false) reads the index blocks as they are and takes
 * the last entry whose hash, continuation bit aside, is not above the
 * name's; an insert reads them checked (checksum included, as libext2fs
 * and the kernel's dx_probe do before changing the directory) and
 * compares whole hashes as dx_probe does, so that the entry lands where
 * the kernel would put it. Returns the leaf's logical block, or -ENOENT
 * when the index cannot be followed (the caller then scans, or leaves the
 * insert to libext2fs). */
static int dx_find_leaf(struct e2_image *img, uint32_t dir, struct ext2_inode_large *in,
                        const char *name, size_t len, char *block, bool insert, blk64_t *leaf)
{
    ext2_filsys fs = img->fs;
    unsigned bs = fs->blocksize, dot_rec = 0, levels, count, limit, off;
    uint32_t mask = insert ? ~0u : ~1u;
    struct ext2_dx_root_info *info;
    struct ext2_dx_countlimit *cl;
    struct ext2_dx_entry *ent;
    uint32_t hash = 0;
    blk64_t lblk = 0, pblk = 0;
    int ver;

    for (unsigned level = 0;; level++) {
        if (dir_bmap(fs, dir, in, lblk, &pblk) || !pblk)
            return -ENOENT;
        if (insert ? index_read(fs, dir, in->i_generation, pblk, block)
                   : io_channel_read_blk64(fs->io, pblk, 1, block))
            return -ENOENT;
        if (level == 0) {
            if (ext2fs_get_rec_len(fs, (struct ext2_dir_entry *)block, &dot_rec) || dot_rec != 12)
                return -ENOENT;
            info = (struct ext2_dx_root_info *)(block + 24);
            if (info->reserved_zero || info->info_length != sizeof(*info) ||
                info->indirect_levels > 2)
                return -ENOENT;
            levels = info->indirect_levels;
            ver = info->hash_version;
            if (ver <= EXT2_HASH_TEA && (fs->super->s_flags & EXT2_FLAGS_UNSIGNED_HASH))
                ver += 3;
            if (e2_dirhash(fs, ver, in->i_flags, name, len, &hash, NULL))
                return -ENOENT;
            off = 24 + sizeof(*info);
        } else {
            off = 8; /* an index block starts with an empty dirent */
        }
        cl = (struct ext2_dx_countlimit *)(block + off);
        ent = (struct ext2_dx_entry *)cl;
        count = ext2fs_le16_to_cpu(cl->count);
        limit = ext2fs_le16_to_cpu(cl->limit);
        if (count == 0 || count > limit || off + limit * sizeof(*ent) > bs)
            return -ENOENT;
        /* The last entry whose hash is <= ours (entry 0 covers from 0). */
        unsigned at = 0;
        for (unsigned i = 1; i < count; i++) {
            if ((ext2fs_le32_to_cpu(ent[i].hash) & mask) > hash)
                break;
            at = i;
        }
        lblk = ext2fs_le32_to_cpu(ent[at].block) & 0x0fffffff;
        if (level == levels) {
            *leaf = lblk;
            return 0;
        }
    }
}

/* The checksum of leaf block @block of directory @dir (i_generation
 * @gen), as ext4_dirblock_csum() computes it: over the block up to its
 * tail, seeded with the directory's number and generation. */
static uint32_t leaf_csum(ext2_filsys fs, uint32_t dir, uint32_t gen, const char *block)
{
    uint32_t le_dir = ext2fs_cpu_to_le32(dir), le_gen = ext2fs_cpu_to_le32(gen);
    uint32_t crc = ext2fs_crc32c_le(fs->csum_seed, (const unsigned char *)&le_dir, 4);

    crc = ext2fs_crc32c_le(crc, (const unsigned char *)&le_gen, 4);
    return ext2fs_crc32c_le(crc, (const unsigned char *)block,
                            fs->blocksize - sizeof(struct ext2_dir_entry_tail));
}

/* Whether leaf @block passes what ext2fs_read_dir_block4() checks: with
 * metadata_csum, entry lengths that lead to the tail, a tail that says it
 * is one, and the checksum in it. (libext2fs finds the tail through a
 * callback per entry, twice per leaf changed, and reads the directory's
 * inode for each checksum: a third of an insert's cost.) */
static bool leaf_is_sound(ext2_filsys fs, uint32_t dir, uint32_t gen, const char *block)
{
    unsigned top = fs->blocksize - sizeof(struct ext2_dir_entry_tail), off = 0;
    const struct ext2_dir_entry_tail *t = (const void *)(block + top);

    if (!ext2fs_has_feature_metadata_csum(fs->super))
        return true;
    while (off < top) {
        unsigned rec = 0;
        if (ext2fs_get_rec_len(fs, (struct ext2_dir_entry *)(block + off), &rec) || rec < 8 ||
            rec % 4)
            return false;
        off += rec;
    }
    return off == top && !t->det_reserved_zero1 &&
           ext2fs_le16_to_cpu(t->det_rec_len) == sizeof(*t) &&
           ext2fs_le16_to_cpu(t->det_reserved_name_len) == EXT2_DIR_NAME_LEN_CSUM &&
           ext2fs_le32_to_cpu(t->det_checksum) == leaf_csum(fs, dir, gen, block);
}

/* Read leaf block @pblk of directory @dir (i_generation @gen) into
 * @block, checked (or held checked by the cache). A block that fails the
 * check is read again by ext2fs_read_dir_block4(), whose verdict and
 * error stand. */
static int leaf_read(ext2_filsys fs, uint32_t dir, uint32_t gen, blk64_t pblk, char *block)
{
    struct e2_iom_mark m = {MARK_LEAF, dir, gen};
    int ret = 0;

    if (io_channel_read_blk64(fs->io, pblk, 1, block) ||
        (!e2_iom_is_checked(fs->io, pblk, &m) && !leaf_is_sound(fs, dir, gen, block)))
        ret = e2_errno(ext2fs_read_dir_block4(fs, pblk, block, 0, dir));
    if (!ret)
        e2_iom_set_checked(fs->io, pblk, &m);
    return ret;
}

/* Write leaf @block, read by leaf_read(), back to @pblk with its checksum
 * renewed, as ext2fs_write_dir_block4() does. The cache then holds it as
 * a checked leaf: the changes made here (an entry put in or taken out)
 * keep the entry lengths leading to the tail. */
static int leaf_write(ext2_filsys fs, uint32_t dir, uint32_t gen, blk64_t pblk, char *block)
{
    struct e2_iom_mark m = {MARK_LEAF, dir, gen};
    int ret;

    if (ext2fs_has_feature_metadata_csum(fs->super)) {
        struct ext2_dir_entry_tail *t = EXT2_DIRENT_TAIL(block, fs->blocksize);
        t->det_checksum = ext2fs_cpu_to_le32(leaf_csum(fs, dir, gen, block));
    }
    ret = e2_errno(io_channel_write_blk64(fs->io, pblk, 1, block));
    if (!ret)
        e2_iom_set_checked(fs->io, pblk, &m);
    return ret;
}

/* The leaf of indexed directory @dir that holds @name (@insert false) or
 * where it goes (@insert true), read and checked into @block: *@in gets
 * the directory's inode and *@pblk the leaf's block. -ENOENT when the
 * directory is not indexed, is inline (or encrypted, for an insert) or
 * its index cannot be followed; else the inode's or the leaf's read error. */
static int dx_leaf_load(struct e2_image *img, uint32_t dir, const char *name, size_t len,
                        bool insert, struct ext2_inode_large *in, char *block, blk64_t *pblk)
{
    unsigned refuse = EXT4_INLINE_DATA_FL | (insert ? EXT4_ENCRYPT_FL : 0);
    blk64_t leaf = 0;
    int ret = e2_read_inode_locked(img, dir, in);

    if (ret)
        return ret;
    if ((in->i_flags & (EXT2_INDEX_FL | refuse)) != EXT2_INDEX_FL)
        return -ENOENT;
    *pblk = 0;
    ret = dx_find_leaf(img, dir, in, name, len, block, insert, &leaf);
    if (!ret && (dir_bmap(img->fs, dir, in, leaf, pblk) || !*pblk))
        ret = -ENOENT;
    if (!ret)
        ret = leaf_read(img->fs, dir, in->i_generation, *pblk, block);
    return ret;
}

int e2_dir_unlink_indexed_locked(struct e2_image *img, uint32_t dir, const char *name,
                                 int (*remove)(struct e2_image *img, uint32_t dir_flags,
                                               char *block, unsigned len, const char *name,
                                               size_t name_len))
{
    ext2_filsys fs = img->fs;
    size_t len = strlen(name);
    struct ext2_inode_large in;
    blk64_t pblk = 0;
    char local[BLOCK_BUF], *block;
    int ret;

    block = block_buf(fs, local);
    if (!block)
        return -ENOMEM;
    ret = dx_leaf_load(img, dir, name, len, false, &in, block, &pblk);
    if (!ret)
        ret = remove(img, in.i_flags, block, fs->blocksize - csum_size(fs), name, len);
    if (!ret)
        ret = leaf_write(fs, dir, in.i_generation, pblk, block);
    if (block != local)
        free(block);
    return ret;
}

/* Where a new entry of @reclen bytes goes in leaf @block (@len usable
 * bytes), as the kernel's ext4_find_dest_de() chooses: the first entry
 * that is unused and long enough, or in use with that much room past its
 * own name. Returns its offset, -ENOSPC if the leaf is full, or -EUCLEAN
 * for an entry libext2fs's directory walk would call corrupt. */
static int find_room(ext2_filsys fs, const char *block, unsigned len, unsigned reclen)
{
    for (unsigned off = 0; off < len;) {
        struct ext2_dir_entry *de = (struct ext2_dir_entry *)(block + off);
        unsigned rec = 0, used;

        if (len - off < 8 || ext2fs_get_rec_len(fs, de, &rec) || rec < 8 || rec % 4 ||
            off + rec > len || ext2fs_dirent_name_len(de) + 8u > rec)
            return -EUCLEAN;
        used = de->inode ? rec_len_of(ext2fs_dirent_name_len(de)) : 0;
        if (rec - used >= reclen)
            return (int)off;
        off += rec;
    }
    return -ENOSPC;
}

/* Put @name -> @ino at the entry at @off that find_room() chose: into it
 * if unused, else split off the room past its name (ext4_insert_dentry). */
static void put_entry(ext2_filsys fs, char *block, unsigned off, const char *name, size_t len,
                      uint32_t ino, unsigned ftype)
{
    struct ext2_dir_entry *de = (struct ext2_dir_entry *)(block + off);
    unsigned rec = 0;

    ext2fs_get_rec_len(fs, de, &rec);
    if (de->inode) {
        unsigned used = rec_len_of(ext2fs_dirent_name_len(de));
        ext2fs_set_rec_len(fs, used, de);
        de = (struct ext2_dir_entry *)(block + off + used);
        ext2fs_set_rec_len(fs, rec - used, de);
    }
    de->inode = ino;
    ext2fs_dirent_set_name_len(de, (int)len);
    ext2fs_dirent_set_file_type(de, ext2fs_has_feature_filetype(fs->super) ? (int)ftype : 0);
    memcpy(de->name, name, len);
}

int e2_dir_link_indexed_locked(struct e2_image *img, uint32_t dir, const char *name, uint32_t ino,
                               unsigned ftype)
{
    ext2_filsys fs = img->fs;
    size_t len = strlen(name);
    struct ext2_inode_large in;
    blk64_t pblk = 0;
    char local[BLOCK_BUF], *block;
    int ret;

    if (len == 0 || len > EXT2_NAME_LEN)
        return -EAGAIN;
    block = block_buf(fs, local);
    if (!block)
        return -ENOMEM;
    /* Anything but a leaf with room, read and checked, is left to
     * ext2fs_link: splits, and whatever error there is to report. */
    ret = dx_leaf_load(img, dir, name, len, true, &in, block, &pblk);
    if (!ret)
        ret = find_room(fs, block, fs->blocksize - csum_size(fs), rec_len_of((unsigned)len));
    if (ret < 0) {
        ret = -EAGAIN;
        goto out_free;
    }
    put_entry(fs, block, (unsigned)ret, name, len, ino, ftype);
    ret = leaf_write(fs, dir, in.i_generation, pblk, block);
out_free:
    if (block != local)
        free(block);
    return ret;
}

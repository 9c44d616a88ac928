/* Creating an htree index when a one-block directory fills up, as the
 * kernel's make_indexed_dir() and do_split() do, so that a directory grown
 * by uext4 has the layout Linux would give it. libext2fs maintains an
 * existing index (ext2fs_link) but never creates one.
 *
 * Result: block 0 becomes the dx root ("." and ".." kept, the index after
 * them), the old entries move to block 1, and block 1 is split by hash with
 * block 2, half the entries' bytes each. */
#include "e2/e2_internal.h"

#include <errno.h>
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
        err = ext2fs_bmap2(fs, dir, (struct ext2_inode *)in, NULL, BMAP_ALLOC, *lblk, NULL, pblk);
        if (err)
            return e2_errno(err);
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

/* ---- removing an entry through the index ---- */

/* Walk the index of directory @dir to the leaf block that holds @name's
 * hash. Returns the leaf's logical block, -ENOENT when the index cannot be
 * followed (the caller then scans), or -errno. */
static int dx_find_leaf(struct e2_image *img, uint32_t dir, struct ext2_inode_large *in,
                        const char *name, size_t len, char *block, blk64_t *leaf)
{
    ext2_filsys fs = img->fs;
    unsigned bs = fs->blocksize, dot_rec = 0, levels, count, limit, off;
    struct ext2_dx_root_info *info;
    struct ext2_dx_countlimit *cl;
    struct ext2_dx_entry *ent;
    uint32_t hash = 0;
    blk64_t lblk = 0, pblk = 0;
    int ver;

    for (unsigned level = 0;; level++) {
        if (ext2fs_bmap2(fs, dir, (struct ext2_inode *)in, NULL, 0, lblk, NULL, &pblk) || !pblk)
            return -ENOENT;
        if (io_channel_read_blk64(fs->io, pblk, 1, block))
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
            if ((ext2fs_le32_to_cpu(ent[i].hash) & ~1u) > hash)
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

int e2_dir_unlink_indexed_locked(struct e2_image *img, uint32_t dir, const char *name,
                                 int (*remove)(struct e2_image *img, uint32_t dir_flags,
                                               char *block, unsigned len, const char *name,
                                               size_t name_len))
{
    ext2_filsys fs = img->fs;
    size_t len = strlen(name);
    struct ext2_inode_large in;
    blk64_t leaf = 0, pblk = 0;
    char *block;
    int ret;

    ret = e2_read_inode_locked(img, dir, &in);
    if (ret)
        return ret;
    if (!(in.i_flags & EXT2_INDEX_FL) || (in.i_flags & EXT4_INLINE_DATA_FL))
        return -ENOENT;
    block = malloc(fs->blocksize);
    if (!block)
        return -ENOMEM;
    ret = dx_find_leaf(img, dir, &in, name, len, block, &leaf);
    if (!ret &&
        (ext2fs_bmap2(fs, dir, (struct ext2_inode *)&in, NULL, 0, leaf, NULL, &pblk) || !pblk))
        ret = -ENOENT;
    if (!ret)
        ret = e2_errno(ext2fs_read_dir_block4(fs, pblk, block, 0, dir));
    if (!ret)
        ret = remove(img, in.i_flags, block, fs->blocksize - csum_size(fs), name, len);
    if (!ret)
        ret = e2_errno(ext2fs_write_dir_block4(fs, pblk, block, 0, dir));
    free(block);
    return ret;
}

/* The kernel's QFMT_VFS_V1 quota file: header, radix tree and entries
 * (the contract and the layout are in qtree.h). */
#include "e2/qtree.h"
#include "e2/e2_internal.h"
#include "base/log.h"

#include <errno.h>
#include <string.h>

#define QT_BLKSIZE    E2_QT_BLKSIZE
#define QT_TREEOFF    1u
#define QT_TREEDEPTH  4
#define QT_HDR_SIZE   16u
#define QT_ENTRY_SIZE 72u
#define QT_PER_BLOCK  ((QT_BLKSIZE - QT_HDR_SIZE) / QT_ENTRY_SIZE)
#define QT_INFO_OFF   8u

/* Offsets in the info (struct v2_disk_dqinfo), from QT_INFO_OFF. */
#define DQI_BGRACE 0
#define DQI_IGRACE 4

static const uint32_t qt_magic[3] = {0xd9c01f11, 0xd9c01927, 0xd9c03f14};

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return ext2fs_le32_to_cpu(v);
}

static void put32(unsigned char *p, uint32_t v)
{
    v = ext2fs_cpu_to_le32(v);
    memcpy(p, &v, 4);
}

/* ---- quota blocks of a quota file ---- */

/* The file system block under quota block @n, checked: a quota file whose
 * extent points outside the file system would have us read, and write,
 * bytes of the image file that are no block of it. */
static int block_in_fs(struct e2_qtree *qt, uint32_t n, blk64_t pblk)
{
    ext2_filsys fs = qt->fs;

    if (pblk >= fs->super->s_first_data_block && pblk < ext2fs_blocks_count(fs->super))
        return 0;
    log_err("'%s': quota block %u of the quota file (inode %u) maps to block %llu, outside the "
            "file system",
            fs->device_name, n, qt->inum, (unsigned long long)pblk);
    return -EUCLEAN;
}

/* Read quota block @n of file @inum; a hole or a block past the end reads
 * as zeros. */
int e2_qtree_read_block(struct e2_qtree *qt, uint32_t n, unsigned char *buf)
{
    ext2_filsys fs = qt->fs;
    uint32_t inum = qt->inum;
    uint64_t off = (uint64_t)n * QT_BLKSIZE;
    blk64_t pblk = 0;
    char *fsblk;
    errcode_t err;

    err = ext2fs_bmap2(fs, inum, NULL, NULL, 0, off / fs->blocksize, NULL, &pblk);
    if (err)
        return e2_errno(err);
    if (!pblk) {
        memset(buf, 0, QT_BLKSIZE);
        return 0;
    }
    if (block_in_fs(qt, n, pblk))
        return -EUCLEAN;
    err = ext2fs_get_mem(fs->blocksize, &fsblk);
    if (err)
        return e2_errno(err);
    err = io_channel_read_blk64(fs->io, pblk, 1, fsblk);
    if (!err)
        memcpy(buf, fsblk + off % fs->blocksize, QT_BLKSIZE);
    ext2fs_free_mem(&fsblk);
    return e2_errno(err);
}

/* Write quota block @n, allocating the file block under it and growing
 * i_size as needed. Through the io channel: in the running transaction. */
int e2_qtree_write_block(struct e2_qtree *qt, uint32_t n, const unsigned char *buf)
{
    ext2_filsys fs = qt->fs;
    uint32_t inum = qt->inum;
    uint64_t off = (uint64_t)n * QT_BLKSIZE, end = off + QT_BLKSIZE;
    struct ext2_inode_large in;
    blk64_t pblk = 0;
    char *fsblk = NULL;
    errcode_t err;
    int ret_flags = 0;

    err = ext2fs_get_memzero(fs->blocksize, &fsblk);
    if (err)
        return e2_errno(err);
    err = ext2fs_bmap2(fs, inum, NULL, NULL, 0, off / fs->blocksize, NULL, &pblk);
    if (!err && !pblk)
        err =
            ext2fs_bmap2(fs, inum, NULL, NULL, BMAP_ALLOC, off / fs->blocksize, &ret_flags, &pblk);
    else if (!err && block_in_fs(qt, n, pblk)) {
        ext2fs_free_mem(&fsblk);
        return -EUCLEAN;
    } else if (!err)
        err = io_channel_read_blk64(fs->io, pblk, 1, fsblk);
    if (err)
        goto out_free;
    memcpy(fsblk + off % fs->blocksize, buf, QT_BLKSIZE);
    err = io_channel_write_blk64(fs->io, pblk, 1, fsblk);
    if (err)
        goto out_free;
    err = ext2fs_read_inode_full(fs, inum, (struct ext2_inode *)&in, sizeof(in));
    if (!err && EXT2_I_SIZE(&in) < end) {
        err = ext2fs_inode_size_set(fs, (struct ext2_inode *)&in, end);
        if (!err)
            err = ext2fs_write_inode_full(fs, inum, (struct ext2_inode *)&in, sizeof(in));
    }
out_free:
    ext2fs_free_mem(&fsblk);
    return e2_errno(err);
}

/* ---- the header ---- */

int e2_qtree_open(struct e2_qtree *qt, ext2_filsys fs, int type, uint32_t inum)
{
    struct ext2_inode_large in;
    const char *bad = NULL;
    int ret;

    memset(qt, 0, sizeof(*qt));
    qt->fs = fs;
    qt->inum = inum;
    if (type < 0 || type >= (int)(sizeof(qt_magic) / sizeof(qt_magic[0])))
        return -EINVAL;
    ret = e2_qtree_read_block(qt, 0, qt->info);
    if (ret)
        return ret;
    if (get32(qt->info) != qt_magic[type] || get32(qt->info + 4) != 1)
        return -EUCLEAN;
    qt->blocks = get32(qt->info + QT_INFO_OFF + 12);
    qt->free_blk = get32(qt->info + QT_INFO_OFF + 16);
    qt->free_entry = get32(qt->info + QT_INFO_OFF + 20);
    ret = e2_errno(ext2fs_read_inode_full(fs, inum, (struct ext2_inode *)&in, sizeof(in)));
    if (ret)
        return ret;
    /* The kernel's checks (v2_read_file_info): a count past the file's
     * size, or free lists starting past the count, and an insert would
     * add blocks at the count, up to 4 TiB out, and wrap it to 0. */
    if (qt->blocks <= QT_TREEOFF)
        bad = "block count";
    else if ((uint64_t)qt->blocks * QT_BLKSIZE > EXT2_I_SIZE(&in))
        bad = "block count (past the end of the file)";
    else if (qt->free_blk >= qt->blocks)
        bad = "free block list";
    else if (qt->free_entry >= qt->blocks)
        bad = "list of blocks with free entries";
    if (bad) {
        log_err("'%s': the quota file (inode %u) has a bad %s in its header", fs->device_name, inum,
                bad);
        return -EUCLEAN;
    }
    return 0;
}

int e2_qtree_close(struct e2_qtree *qt)
{
    if (!qt->info_dirty)
        return 0;
    put32(qt->info + QT_INFO_OFF + 12, qt->blocks);
    put32(qt->info + QT_INFO_OFF + 16, qt->free_blk);
    put32(qt->info + QT_INFO_OFF + 20, qt->free_entry);
    qt->info_dirty = false;
    return e2_qtree_write_block(qt, 0, qt->info);
}

uint32_t e2_qtree_grace(const struct e2_qtree *qt, bool inodes)
{
    return get32(qt->info + QT_INFO_OFF + (inodes ? DQI_IGRACE : DQI_BGRACE));
}

/* ---- the tree ---- */

static bool ref_ok(const struct e2_qtree *qt, uint32_t ref)
{
    return ref > QT_TREEOFF && ref < qt->blocks;
}

static bool entry_unused(const unsigned char *e)
{
    for (unsigned i = 0; i < QT_ENTRY_SIZE; i++) {
        if (e[i])
            return false;
    }
    return true;
}

static unsigned tree_index(uint32_t id, int depth)
{
    return (id >> ((QT_TREEDEPTH - depth - 1) * 8)) & 0xff;
}

int e2_qtree_find(struct e2_qtree *qt, uint32_t id, uint32_t *blk, unsigned *off)
{
    unsigned char buf[QT_BLKSIZE];
    uint32_t ref = QT_TREEOFF;
    int ret;

    *blk = 0;
    for (int depth = 0; depth < QT_TREEDEPTH; depth++) {
        ret = e2_qtree_read_block(qt, ref, buf);
        if (ret)
            return ret;
        ref = get32(buf + 4 * tree_index(id, depth));
        if (!ref)
            return 0;
        if (!ref_ok(qt, ref))
            return -EUCLEAN;
    }
    ret = e2_qtree_read_block(qt, ref, buf);
    if (ret)
        return ret;
    for (unsigned i = 0; i < QT_PER_BLOCK; i++) {
        const unsigned char *e = buf + QT_HDR_SIZE + i * QT_ENTRY_SIZE;
        if (!entry_unused(e) && get32(e + E2_DQ_ID) == id) {
            *blk = ref;
            *off = QT_HDR_SIZE + i * QT_ENTRY_SIZE;
            return 0;
        }
    }
    return -EUCLEAN; /* the tree points at a block without the id */
}

/* A block for a new tree or data block: the head of the free block list,
 * else one past the end of the file, written as zeros before it is
 * counted. The write allocates, and fails at ENOSPC: counted first, the
 * block would be in the header's count (written back at close) and not in
 * the file, which the kernel and e2_qtree_open() refuse, so no later
 * flush, and no commit, could succeed. */
static int block_get(struct e2_qtree *qt, uint32_t *blk)
{
    unsigned char buf[QT_BLKSIZE];
    int ret;

    if (qt->free_blk) {
        if (!ref_ok(qt, qt->free_blk))
            return -EUCLEAN;
        ret = e2_qtree_read_block(qt, qt->free_blk, buf);
        if (ret)
            return ret;
        *blk = qt->free_blk;
        qt->free_blk = get32(buf); /* dqdh_next_free */
        return 0;
    }
    if (qt->blocks == UINT32_MAX)
        return -ENOSPC; /* quota block numbers are 32 bits */
    memset(buf, 0, QT_BLKSIZE);
    ret = e2_qtree_write_block(qt, qt->blocks, buf);
    if (ret)
        return ret;
    *blk = qt->blocks++;
    return 0;
}

/* A free entry slot for a new id: in the first data block with free
 * entries, or a new data block put on that list. Takes the block off the
 * list when it becomes full. The block is left in @buf with the entry
 * count raised (the caller fills the entry at *@off and writes it). */
static int slot_get(struct e2_qtree *qt, uint32_t *blk, unsigned *off, unsigned char *buf)
{
    unsigned entries;
    int ret;

    if (qt->free_entry) {
        if (!ref_ok(qt, qt->free_entry))
            return -EUCLEAN;
        *blk = qt->free_entry;
        ret = e2_qtree_read_block(qt, *blk, buf);
        if (ret)
            return ret;
    } else {
        ret = block_get(qt, blk);
        if (ret)
            return ret;
        memset(buf, 0, QT_BLKSIZE);
        qt->free_entry = *blk; /* the list was empty: the block is all of it */
    }
    entries = buf[8] | (unsigned)buf[9] << 8;
    if (entries >= QT_PER_BLOCK)
        return -EUCLEAN;
    entries++;
    buf[8] = (unsigned char)entries;
    buf[9] = (unsigned char)(entries >> 8);
    if (entries == QT_PER_BLOCK) {
        /* Full: off the list, of which it is the head. */
        uint32_t next = get32(buf);
        unsigned char nb[QT_BLKSIZE];

        if (next) {
            if (!ref_ok(qt, next))
                return -EUCLEAN;
            ret = e2_qtree_read_block(qt, next, nb);
            if (!ret) {
                put32(nb + 4, 0); /* dqdh_prev_free */
                ret = e2_qtree_write_block(qt, next, nb);
            }
            if (ret)
                return ret;
        }
        qt->free_entry = next;
        put32(buf, 0);
        put32(buf + 4, 0);
    }
    for (unsigned i = 0; i < QT_PER_BLOCK; i++) {
        if (entry_unused(buf + QT_HDR_SIZE + i * QT_ENTRY_SIZE)) {
            *off = QT_HDR_SIZE + i * QT_ENTRY_SIZE;
            return 0;
        }
    }
    return -EUCLEAN; /* the count said there was room */
}

/* Add an entry for @id (none exists) with zero usage and no limits. */
static int entry_insert(struct e2_qtree *qt, uint32_t id, uint32_t *dblk, unsigned *doff)
{
    unsigned char tree[QT_BLKSIZE], data[QT_BLKSIZE];
    uint32_t ref = QT_TREEOFF, next;
    unsigned idx;
    int ret;

    for (int depth = 0; depth < QT_TREEDEPTH; depth++) {
        ret = e2_qtree_read_block(qt, ref, tree);
        if (ret)
            return ret;
        idx = tree_index(id, depth);
        next = get32(tree + 4 * idx);
        if (depth == QT_TREEDEPTH - 1) {
            if (next)
                return -EUCLEAN; /* the leaf slot is taken but lacks @id */
            ret = slot_get(qt, dblk, doff, data);
            if (ret)
                return ret;
            memset(data + *doff, 0, QT_ENTRY_SIZE);
            put32(data + *doff + E2_DQ_ID, id);
            if (entry_unused(data + *doff))
                e2_qt_put64(data + *doff + E2_DQ_ITIME, 1);
            ret = e2_qtree_write_block(qt, *dblk, data);
            if (!ret) {
                put32(tree + 4 * idx, *dblk);
                ret = e2_qtree_write_block(qt, ref, tree);
            }
            return ret;
        }
        if (!next) {
            unsigned char zero[QT_BLKSIZE] = {0};

            /* A block from the free list still holds its list header. */
            ret = block_get(qt, &next);
            if (!ret)
                ret = e2_qtree_write_block(qt, next, zero);
            if (!ret) {
                put32(tree + 4 * idx, next);
                ret = e2_qtree_write_block(qt, ref, tree);
            }
            if (ret)
                return ret;
        } else if (!ref_ok(qt, next)) {
            return -EUCLEAN;
        }
        ref = next;
    }
    return -EUCLEAN; /* not reached */
}

int e2_qtree_insert(struct e2_qtree *qt, uint32_t id, uint32_t *blk, unsigned *off)
{
    uint32_t blocks = qt->blocks, free_blk = qt->free_blk, free_entry = qt->free_entry;
    int ret = entry_insert(qt, id, blk, off);

    qt->info_dirty |=
        blocks != qt->blocks || free_blk != qt->free_blk || free_entry != qt->free_entry;
    return ret;
}

void e2_qtree_keep_entry(unsigned char *e)
{
    if (entry_unused(e))
        e2_qt_put64(e + E2_DQ_ITIME, 1);
}

/* qtree.c: the kernel's QFMT_VFS_V1 quota file format, the tree of ids
 * and their entries, read and written through libext2fs in the running
 * transaction. What the entries count and when is quota.c's business.
 *
 * The file is made of 1 KiB quota blocks; block 0 holds the header (magic
 * per type, version 1) and the info (grace times, flags, block count, free
 * block list, list of data blocks with free entries); block 1 is the root
 * of a 4-level radix tree indexed by the bytes of the id, most significant
 * first, whose last level points at data blocks: a 16-byte header
 * (free-list links, entry count) and 14 entries of 72 bytes. An entry
 * whose bytes are all zero is free (so an id 0 entry that would be all
 * zero keeps dqb_itime 1, as the kernel writes it). Entries are added for
 * new ids, never removed here (e2fsck accepts entries with zero usage).
 *
 * Callers hold the image lock (e2_lock). */
#ifndef UEXT4_E2_QTREE_H
#define UEXT4_E2_QTREE_H

#include <ext2fs/ext2fs.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define E2_QT_BLKSIZE 1024u

/* Byte offsets in an entry (struct v2r1_disk_dqblk); limits of space are
 * in quota blocks (1 KiB), usage in bytes, times in seconds since 1970. */
#define E2_DQ_ID        0
#define E2_DQ_IHARD     8
#define E2_DQ_ISOFT     16
#define E2_DQ_CURINODES 24
#define E2_DQ_BHARD     32
#define E2_DQ_BSOFT     40
#define E2_DQ_CURSPACE  48
#define E2_DQ_BTIME     56
#define E2_DQ_ITIME     64

/* One quota file, opened for a batch of lookups and inserts. */
struct e2_qtree {
    ext2_filsys fs;
    uint32_t inum;
    unsigned char info[E2_QT_BLKSIZE]; /* block 0 as read */
    uint32_t blocks, free_blk, free_entry;
    bool info_dirty; /* an insert changed the block count or a free list */
};

/* Open the quota file of inode @inum, of quota type @type (0 user, 1
 * group, 2 project): reads and checks its header. 0, -EUCLEAN for a
 * header that is not the type's, or -errno from reading. */
int e2_qtree_open(struct e2_qtree *qt, ext2_filsys fs, int type, uint32_t inum);

/* Write the info back if an insert changed it. 0 or -errno. */
int e2_qtree_close(struct e2_qtree *qt);

/* The grace time in seconds of the block (@inodes false) or inode limits. */
uint32_t e2_qtree_grace(const struct e2_qtree *qt, bool inodes);

/* Where the entry of @id is: data block *@blk (0 if the id has none), at
 * byte *@off in it. 0, -EUCLEAN for a tree that is not one, or -errno. */
int e2_qtree_find(struct e2_qtree *qt, uint32_t id, uint32_t *blk, unsigned *off);

/* Add an entry for @id (which has none) with zero usage and no limits, at
 * *@blk, *@off. Allocates tree and data blocks (the file grows). */
int e2_qtree_insert(struct e2_qtree *qt, uint32_t id, uint32_t *blk, unsigned *off);

/* Quota block @n of the file; a hole or a block past the end reads as
 * zeros. Writing allocates the file block under it and grows i_size. */
int e2_qtree_read_block(struct e2_qtree *qt, uint32_t n, unsigned char *buf);
int e2_qtree_write_block(struct e2_qtree *qt, uint32_t n, const unsigned char *buf);

/* Keep a used entry from reading as free once its fields are all zero. */
void e2_qtree_keep_entry(unsigned char *e);

static inline uint64_t e2_qt_get64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return ext2fs_le64_to_cpu(v);
}

static inline void e2_qt_put64(unsigned char *p, uint64_t v)
{
    v = ext2fs_cpu_to_le64(v);
    memcpy(p, &v, 8);
}

#endif

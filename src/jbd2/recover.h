/* Journal recovery: replaying a jbd2 log into the image, as the kernel does
 * when it mounts a file system that needs recovery (fs/jbd2/recovery.c),
 * given where the journal's blocks are (e2/jmap.h finds them).
 *
 * Neither function takes the disk lock: recovery runs before the image is
 * opened for use (the image must not be open for writing through
 * libext2fs meanwhile: recovery writes behind its back). */
#ifndef UEXT4_JBD2_RECOVER_H
#define UEXT4_JBD2_RECOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jbd2_recover_stats {
    bool was_empty;          /* s_start was 0: nothing to replay, nothing written */
    uint32_t transactions;   /* committed transactions replayed */
    uint32_t first_seq;      /* the first one's sequence (s_sequence) */
    uint32_t last_seq;       /* the last one's (valid if transactions > 0) */
    uint32_t next_seq;       /* s_sequence written back (last + 2, as the kernel) */
    uint64_t tags;           /* logged blocks in the replayed transactions */
    uint64_t blocks_written; /* distinct home blocks written */
    uint64_t revoke_records; /* revoke records in the replayed transactions */
    uint64_t revoked;        /* logged blocks skipped because revoked */
    uint64_t csum_errors;    /* logged blocks skipped for a bad tag checksum */
    int32_t sb_errno;        /* the jsb's s_errno: non-zero means the journal was aborted,
                                which the caller records as a file system error */
};

/* Where the file system lies: the image open as @fd, block 0 at byte
 * @base of it (a partition of a disk image; 0 for a file system image).
 * With @external (a journal_dev journal), the journal's blocks (the map's
 * entries) are blocks of the file open as @journal_fd, counted from its
 * byte 0, and not of the file system; otherwise @journal_fd is unused. */
struct jbd2_dev {
    int fd;
    uint64_t base;
    bool external;
    int journal_fd;
};

/* Replay the journal of the file system on @dev (its file open read-write,
 * O_DIRECT not needed), which has @fs_blocks blocks of @fs_blocksize bytes.
 * @map[i] is the file system block of journal block i, for i < @map_len
 * (the journal inode's size in blocks; e2_journal_map_load builds it), or
 * with @dev->external the block of the journal's own file.
 *
 * Reads the journal superblock at map[0]. If the log is empty (s_start 0)
 * returns 0 with st->was_empty. Otherwise scans the log from s_start for
 * transactions s_sequence, s_sequence + 1, ... wrapping between s_first and
 * the end of the log; a transaction counts only when its commit block is
 * found (with valid checksums); revoke records of the committed
 * transactions cancel the blocks of their own and earlier transactions;
 * the latest version of every other logged block is written home
 * (un-escaped), the image fdatasync'd, and then the journal superblock
 * marked empty (s_start 0, s_sequence = last committed + 2) and
 * fdatasync'd (an external journal's file: after the image's sync, so a
 * journal marked empty never lies about blocks not yet home). The ext4
 * superblock's needs_recovery flag is the caller's.
 *
 * What the image cannot make us do: read outside the journal's blocks,
 * write a home block beyond @fs_blocks or inside the journal (-EUCLEAN,
 * nothing written), loop forever, or read past a block.
 *
 * Returns 0 on success (st filled), else -errno with @why naming the
 * cause (the caller prefixes the image name):
 *  -EUCLEAN  corrupt journal superblock or log: nothing was written, except
 *            in the two cases below where the kernel also replays first;
 *  -EUCLEAN  a transaction's commit block has a bad checksum (without
 *            async_commit): the transactions before it were replayed and
 *            synced, the journal is left needing recovery (the kernel
 *            replays them and then refuses the mount; e2fsck -fy replays
 *            them and marks the file system with errors);
 *  -EUCLEAN  a logged block failed its tag checksum: every other block was
 *            replayed and synced, that one skipped, the journal is left
 *            needing recovery (the kernel does the same and fails the
 *            mount);
 *  -EOPNOTSUPP  an unknown journal feature, or the fast-commit area holds a
 *            fast commit of the next transaction (fast-commit replay is
 *            not implemented): nothing was written;
 *  -EIO etc. reading or writing the image. */
int jbd2_recover(const struct jbd2_dev *dev, unsigned fs_blocksize, uint64_t fs_blocks,
                 const uint64_t *map, uint32_t map_len, struct jbd2_recover_stats *st, char *why,
                 size_t why_len);

/* Where jbd2_recover_to() sends a recovered block instead of the image:
 * @data is one file system block, to be copied; returns 0 or -errno. */
typedef int (*jbd2_put_fn)(void *ctx, uint64_t blk, const void *data);

/* The same replay without writing the image (for a read-only mount): every
 * block jbd2_recover would write home, the emptied journal superblock
 * included, is handed to @put (with @put_ctx) instead, and nothing is
 * synced; an external journal's superblock is not handed over (it is no
 * block of the file system) and stays as it was. @dev's files may be open
 * read-only. Same checks, statistics and errors, and any error of @put
 * (e.g. -ENOMEM). */
int jbd2_recover_to(const struct jbd2_dev *dev, unsigned fs_blocksize, uint64_t fs_blocks,
                    const uint64_t *map, uint32_t map_len, jbd2_put_fn put, void *put_ctx,
                    struct jbd2_recover_stats *st, char *why, size_t why_len);

#endif

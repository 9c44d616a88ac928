/* iomgr.c: uext4's libext2fs I/O manager — the image file, a block cache,
 * and the running transaction's metadata blocks.
 *
 * libext2fs reads and writes the image only through an io_channel; ours
 * (e2_iom_manager) gives the layers above three kinds of write:
 *
 *  - libext2fs's own writes (superblock, group descriptors, bitmaps, inode
 *    tables, directory, extent and xattr blocks): metadata. Without a
 *    journal they go straight to the image (write-through). In journaled
 *    mode they are held in the cache as dirty blocks — the running
 *    transaction — until journal.c logs them and writes them home
 *    (e2_iom_checkpoint()).
 *  - file data (e2_iom_write_data(), zeroout): always straight to the image,
 *    before the transaction that exposes it commits (ordered mode). A data
 *    write to a block that is dirty in the transaction (file data written
 *    by libext2fs's file API, which is journaled) updates that copy too.
 *  - journal blocks (e2_iom_write_journal()): straight to the image, or to
 *    an external journal's own file, uncached.
 *
 * Block states, per fs block:
 *
 *      (not cached) --read of a small run--> CLEAN --metadata write,
 *           |                                  |      journaled--> DIRTY
 *           +--metadata write, journaled-------+----------------->   |
 *      CLEAN --evicted (LRU, over budget)--> (not cached)            |
 *      DIRTY --e2_iom_checkpoint()--> CLEAN                          |
 *      DIRTY --e2_iom_forget() (block freed)--> (not cached) <-------+
 *
 * Invariants: a DIRTY block is never evicted; a cached block's bytes equal
 * the image's bytes unless it is DIRTY; before e2_iom_attach() nothing is
 * cached (libext2fs reads the superblock with a 1024-byte block size).
 *
 * Durability steps (every pwrite and fdatasync) are counted for fault
 * injection: UEXT4_FAULT_AT=N makes the Nth step a simulated power cut
 * (a seeded subset of the writes since the last fdatasync is rolled back,
 * UEXT4_FAULT_SEED, then the process exits with status 86);
 * UEXT4_FAULT_FAIL_AT / _FAIL_EVERY / _ERRNO make steps fail with ENOSPC,
 * EIO or EDQUOT instead (fault.h);
 * UEXT4_FAULT_COUNT=PATH writes the number of steps to PATH at close.
 *
 * A read-only channel may carry an overlay (overlay.h: a journal replayed
 * in memory): every read, cached or not, sees the overlay's blocks instead
 * of the file's, and writes fail (EXT2_ET_RO_FILSYS).
 *
 * Locking: every function is called with the image's disk lock held (it
 * is the io_channel of the libext2fs handle the lock protects), but
 * e2_iom_failed() and e2_iom_read_home(). */
#ifndef UEXT4_E2_IOMGR_H
#define UEXT4_E2_IOMGR_H

#include <ext2fs/ext2fs.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit status of a simulated power cut. */
#define E2_FAULT_EXIT 86

extern io_manager e2_iom_manager;

struct e2_overlay;

/* The io option naming an overlay; e2_iom_overlay_opt() formats the
 * io_options string for ext2fs_open2() that lays @ov (which must outlive
 * the channel) over a read-only channel from its first read on. */
#define E2_IOM_OVERLAY_OPT "uext4_overlay"
void e2_iom_overlay_opt(const struct e2_overlay *ov, char *buf, size_t len);
/* The io option placing the file system in the image file: block 0 at byte
 * @base, and nothing read or written past @size bytes from there (0: to
 * the end of the file), as a loop device's --offset and --sizelimit. A
 * read past that end gets zeros and EXT2_ET_SHORT_READ, a write EIO.
 * e2_iom_window_opt() formats it; io options are joined with '&'. */
#define E2_IOM_WINDOW_OPT "uext4_window"
void e2_iom_window_opt(uint64_t base, uint64_t size, char *buf, size_t len);

/* Cache whole blocks of @blocksize from now on, keeping at most
 * @clean_bytes of clean blocks. */
errcode_t e2_iom_attach(io_channel io, unsigned blocksize, size_t clean_bytes);
/* Journaled mode: libext2fs's writes are held as dirty blocks. */
void e2_iom_set_journaled(io_channel io, bool on);

errcode_t e2_iom_write_data(io_channel io, uint64_t blk, size_t count, const void *buf);
errcode_t e2_iom_read_data(io_channel io, uint64_t blk, size_t count, void *buf);
/* e2_iom_write_data() with the @count blocks' bytes taken from the pipe
 * @pipe_fd, moved by splice(2) into the image file without passing through
 * our memory (the FUSE channel's spliced WRITE data). Every byte written
 * is consumed from the pipe; on an error an unknown prefix of them may
 * have been. Blocks with a cached copy are read from the pipe and written
 * as e2_iom_write_data() does (the copy must change too). */
errcode_t e2_iom_splice_data(io_channel io, uint64_t blk, size_t count, int pipe_fd);
/* Read exactly @len bytes of a write's data from the pipe @pipe_fd into
 * @buf. A pipe that runs dry (empty and closed, or empty and non-blocking)
 * is EXT2_ET_SHORT_WRITE, as in e2_iom_splice_data(): the write is short of
 * its data. */
errcode_t e2_iom_pipe_take(int pipe_fd, void *buf, size_t len);
/* Whether any of the @count blocks from @blk has a dirty cached copy, one
 * not yet written home, or is in the overlay: the image file then does not
 * hold the block's contents, and a reader must not go to the file
 * directly. */
bool e2_iom_any_dirty(io_channel io, uint64_t blk, uint64_t count);
/* The image file's descriptor, for readers that splice file data from it
 * (blocks without a dirty copy only), and the byte of it where the file
 * system starts (E2_IOM_WINDOW_OPT). */
int e2_iom_fd(io_channel io);
uint64_t e2_iom_base(io_channel io);
/* Read @len bytes at byte @off of the file system itself: no cache, no
 * overlay (for blocks e2_iom_any_dirty() found home). Past the end of the
 * file the rest reads as zeros and EXT2_ET_SHORT_READ is returned, as for
 * e2_iom_read_data(). Needs no disk lock: it touches nothing of the
 * channel but its descriptor, which lives as long as the channel. */
errcode_t e2_iom_read_home(io_channel io, uint64_t off, size_t len, void *buf);
/* What e2_iom_read_home() does first, for a reader of the image file's
 * blocks that reads them some other way (a read by reference). */
void e2_iom_before_read_home(io_channel io);
/* Whether block @blk has a cached copy (clean or dirty). */
bool e2_iom_is_cached(io_channel io, uint64_t blk);
/* Cache the uncached blocks among the @count (at most
 * E2_IOM_READAHEAD_MAX) from @blk, each run of them with one read of the
 * image: metadata the caller is about to read block by block. Cached
 * blocks, dirty or clean, are left as they are; failures are silent (the
 * reads that follow meet them). */
#define E2_IOM_READAHEAD_MAX 32
void e2_iom_readahead(io_channel io, uint64_t blk, unsigned count);
/* A block of the file system, written as is, never cached. */
errcode_t e2_iom_write_raw(io_channel io, uint64_t blk, const void *buf);
errcode_t e2_iom_read_raw(io_channel io, uint64_t blk, void *buf);
/* An external journal (journal_dev): its file, open as @fd (read-write if
 * the channel is; the caller's, open as long as the channel is, never
 * closed here). From then on the journal functions below address blocks
 * of @fd from its byte 0, with the image's fault hook and error latch;
 * before, those of the file system (a journal inode), as write_raw and
 * read_raw. */
void e2_iom_set_journal_file(io_channel io, int fd);
/* A block of the journal: written as is, never cached. */
errcode_t e2_iom_write_journal(io_channel io, uint64_t blk, const void *buf);
errcode_t e2_iom_read_journal(io_channel io, uint64_t blk, void *buf);
/* fdatasync the image file, and an external journal's file if it was
 * written since its last sync: everything written is then durable. */
errcode_t e2_iom_sync(io_channel io);
/* fdatasync the journal's file alone (the image's with a journal inode):
 * what makes a commit block or a journal superblock durable, once the
 * blocks it depends on were made durable by an e2_iom_sync(). */
errcode_t e2_iom_sync_journal(io_channel io);
/* The first error of a failed metadata write (write-through), journal
 * write, checkpoint or fdatasync, or 0. Once set it stays: the image on
 * disk may then miss writes the cache holds as done, so the layers above
 * stop changing it (image.c). A failed e2_iom_write_data() is not latched:
 * its caller gets the error and undoes what depended on it. May be
 * called without the disk lock. */
errcode_t e2_iom_failed(io_channel io);

/* The running transaction. */
size_t e2_iom_dirty_count(io_channel io);
/* Call @fn for each dirty block in block number order, with its index in
 * that order; the data pointer stays valid until the next call that
 * changes the cache. */
errcode_t e2_iom_dirty_foreach(io_channel io,
                               void (*fn)(void *ctx, size_t i, uint64_t blk, const void *data),
                               void *ctx);
/* Write every dirty block home (contiguous runs in one pwrite each); they
 * become clean. */
errcode_t e2_iom_checkpoint(io_channel io);
/* Without a journal, an operation that rewrites several metadata blocks
 * (a directory growing out of its inode into a block) is written block by
 * block, and a crash of the process in between leaves whatever prefix of
 * those writes was made. e2_iom_hold() keeps the metadata writes that
 * follow in the cache; e2_iom_release() writes them home: every block not
 * in @last first (new blocks nothing points to yet), then the blocks of
 * @last in that order (the inode that switches to them, ...). In journaled
 * mode both do nothing: the transaction makes the operation atomic. */
void e2_iom_hold(io_channel io);
errcode_t e2_iom_release(io_channel io, const uint64_t *last, size_t nlast);
/* e2_iom_release() for a change that must not be seen before what it
 * covers is durable (fs-verity's flag over its tree, e2/verity.c): an
 * fdatasync first (the data written straight home), the other blocks, an
 * fdatasync, then @last. */
errcode_t e2_iom_release_synced(io_channel io, const uint64_t *last, size_t nlast);
/* Blocks freed by the file system: their cached copies, dirty or not, are
 * dropped (the freed contents must not reach the image or the log). */
void e2_iom_forget(io_channel io, uint64_t blk, uint64_t count);

/* A cached block's bytes can carry a mark of what they were checked to
 * be, so that a reader of a block it checked or wrote itself need not
 * check it again: @kind (non-zero) is the caller's name for the check
 * (say, a directory leaf, checksum included), @owner and @gen what the
 * check depended on (the directory's inode number and generation). Every
 * change of the bytes through the channel (a metadata or data write, a
 * fill from the image) and eviction clear it; the image is ours alone, so
 * nothing else changes them. e2_iom_set_checked() marks block @blk if it
 * is cached; e2_iom_is_checked() says whether it is cached with mark @m. */
struct e2_iom_mark {
    uint32_t kind, owner, gen;
};
bool e2_iom_is_checked(io_channel io, uint64_t blk, const struct e2_iom_mark *m);
void e2_iom_set_checked(io_channel io, uint64_t blk, const struct e2_iom_mark *m);

#endif

/* overlay.c: blocks that read differently from the image file — a journal
 * replayed in memory.
 *
 * A read-only mount of an image that needs recovery must not write the
 * image, yet has to serve the state the journal holds. Recovery then
 * replays the log into an overlay instead of the file (recover.h,
 * jbd2_recover_to()), and the I/O manager (iomgr.c) lays the overlay
 * over every read of the file, the superblock included, so libext2fs and
 * every reader above see the recovered image while the file stays byte for
 * byte as it was.
 *
 * An overlay holds whole file system blocks of one size; it is built once
 * (puts, normally in increasing block order, as recovery replays them) and
 * then only read, so it needs no lock of its own: iomgr.c reads it under the
 * disk lock, and before the image is open nobody else has it. Memory: one
 * block per distinct home block of the replayed transactions (bounded by
 * the journal's size). */
#ifndef UEXT4_E2_OVERLAY_H
#define UEXT4_E2_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct e2_overlay;

/* An empty overlay of @blocksize-byte blocks, or NULL (out of memory). */
struct e2_overlay *e2_overlay_new(unsigned blocksize);
void e2_overlay_free(struct e2_overlay *ov);

/* Block @blk reads as @data (blocksize bytes, copied) from now on,
 * replacing an earlier put of the same block. Returns 0 or -ENOMEM. */
int e2_overlay_put(struct e2_overlay *ov, uint64_t blk, const void *data);

/* @buf holds the file's bytes [@off, @off + @len): overwrite those of
 * overlay blocks with the overlay's. Byte ranges, so that reads in other
 * units (the 1024-byte superblock read before the block size is known)
 * see the overlay too. */
void e2_overlay_apply(const struct e2_overlay *ov, uint64_t off, size_t len, void *buf);

/* Whether any of the @count blocks from @blk (of the overlay's size) is in
 * the overlay: the image file then does not hold what they read as. */
bool e2_overlay_any(const struct e2_overlay *ov, uint64_t blk, uint64_t count);

size_t e2_overlay_count(const struct e2_overlay *ov);
unsigned e2_overlay_block_size(const struct e2_overlay *ov);

#endif

/* Page-cache emulation: the dirty pages of mmap stores made in library mode.
 *
 * Through FUSE the kernel keeps the pages; in library mode this cache plays
 * its part so a program can replay "store through a mapping now, write back
 * later" sequences (design.md, "Page cache emulation"). It reaches storage
 * only through the pc_ops table the fs layer registers.
 *
 * Page states (one 4 KiB page of one inode):
 *
 *     (absent) --pc_store--> DIRTY --pc_writeback--> WRITEBACK --ok--> (absent)
 *                              ^                         |
 *                              +------- failure ---------+  (error latched)
 *
 * Invariants: a DIRTY page holds the file's bytes as of its reading plus
 * every store and every write(2) since (pc_update); bytes at or past i_size
 * are never passed to ops->writeback beyond what it clamps; a WRITEBACK page
 * exists only inside pc_writeback().
 *
 * Locking: every per-inode call is made with that inode's lock held (the fs
 * layer's LC_INODE), which serialises all work on one inode's pages. The
 * cache's own lock (LC_PCACHE) guards only the inode table and the dirty
 * counts (each file's and the total), which calls holding no inode lock
 * read (pc_dirty_inodes()), and is never held across an ops call. */
#ifndef UEXT4_PCACHE_H
#define UEXT4_PCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PC_PAGE_SIZE 4096u

struct pc_ops {
    /* Read the file as stored (zeros past EOF); returns bytes or -errno. */
    ssize_t (*read)(void *ctx, uint32_t ino, void *buf, size_t len, off_t off);
    /* Write back one page; must not grow i_size. Returns bytes or -errno. */
    ssize_t (*writeback)(void *ctx, uint32_t ino, const void *buf, size_t len, off_t off);
};

struct pc_cache;

/* @budget: bytes of dirty pages above which a store writes back first. */
int pc_create(const struct pc_ops *ops, void *ctx, size_t budget, struct pc_cache **out);
void pc_destroy(struct pc_cache *pc);

/* A store of @len bytes at @off through a mapping of a file of @isize bytes.
 * -EFAULT for a page wholly past EOF (the kernel's SIGBUS). */
int pc_store(struct pc_cache *pc, uint32_t ino, uint64_t isize, off_t off, const void *buf,
             size_t len);
/* Copy the dirty pages' bytes over a read result of @len bytes at @off. */
void pc_overlay(struct pc_cache *pc, uint32_t ino, off_t off, void *buf, size_t len);
/* write(2) wrote @len bytes at @off: keep the cached pages coherent. */
void pc_update(struct pc_cache *pc, uint32_t ino, off_t off, const void *buf, size_t len);
/* i_size changed from @old to @new: cut pages past a shrink, and zero what
 * lies between the two sizes in the cached pages. */
void pc_resize(struct pc_cache *pc, uint32_t ino, uint64_t old, uint64_t new);
/* Write back every dirty page of @ino; returns the first error, which is
 * also latched for pc_take_error(). Failed pages stay dirty. */
int pc_writeback(struct pc_cache *pc, uint32_t ino);
/* The latched writeback error of @ino, once. */
int pc_take_error(struct pc_cache *pc, uint32_t ino);
unsigned pc_dirty_count(struct pc_cache *pc, uint32_t ino);
/* Drop @ino's pages without writing them (its inode is being freed). */
void pc_forget(struct pc_cache *pc, uint32_t ino);
/* Inode numbers with dirty pages, up to @max; returns how many. */
unsigned pc_dirty_inodes(struct pc_cache *pc, uint32_t *inos, unsigned max);

#endif

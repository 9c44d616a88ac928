/* -o record=FILE (record.c): the operations a mount serves, as a scenario.
 *
 * Every fe_rec_*() call is made by a handler after its core call succeeded
 * and before its reply, with no lock held; a NULL recorder (no record=)
 * makes each a no-op. Inode numbers are ext4's (fe_ext4_ino()). */
#ifndef UEXT4_FRONTEND_RECORD_H
#define UEXT4_FRONTEND_RECORD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "uext4.h"

struct fe_record;

/* Create @file (truncated) and write the scenario's header, read from
 * @image's superblock (@convert: -o inline_mmap=convert). 0, or -errno
 * after logging which file and why. */
int fe_record_open(struct fe_record **out, const char *file, const char *image, bool convert);
/* After the last request: expect lines for every path touched, read from
 * @fs, then close the file. NULL is a no-op. */
void fe_record_close(struct fe_record *r, struct uext4_fs *fs);
/* Push the buffered lines to the file (at fsync). */
void fe_record_flush(struct fe_record *r);

/* LOOKUP found @name in @dir as @ino: learn its path. */
void fe_rec_name(struct fe_record *r, uint32_t dir, const char *name, uint32_t ino, bool is_dir);
/* A new name (create, mknod, mkdir, symlink to @target) for st->st_ino. */
void fe_rec_new(struct fe_record *r, uint32_t dir, const char *name, const struct stat *st,
                dev_t rdev, const char *target);
void fe_rec_link(struct fe_record *r, uint32_t ino, uint32_t dir, const char *name);
void fe_rec_remove(struct fe_record *r, uint32_t dir, const char *name, bool is_dir);
/* @flags: RENAME_NOREPLACE / RENAME_EXCHANGE / RENAME_WHITEOUT. */
void fe_rec_rename(struct fe_record *r, uint32_t dir, const char *name, uint32_t newdir,
                   const char *newname, unsigned flags);
/* @mmap: the writeback of a shared mapping's page (mmap-store + writeback). */
void fe_rec_write(struct fe_record *r, uint32_t ino, const void *buf, size_t n, off_t off,
                  bool mmap);
void fe_rec_fallocate(struct fe_record *r, uint32_t ino, int mode, off_t off, off_t len);
void fe_rec_copy(struct fe_record *r, uint32_t in, off_t off_in, uint32_t out, off_t off_out,
                 size_t n);
/* @mask: the UEXT4_SET_* bits applied; @st: the attributes after. */
void fe_rec_setattr(struct fe_record *r, uint32_t ino, unsigned mask, const struct stat *st);
/* setxattr, or removexattr when @value is NULL. */
void fe_rec_xattr(struct fe_record *r, uint32_t ino, const char *name, const void *value,
                  size_t size, int flags);

#endif

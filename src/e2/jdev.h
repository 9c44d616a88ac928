/* jdev.c: an external journal (ext4's journal_dev) — the journal of a file
 * system kept in a file of its own, which mke2fs -O journal_dev made and
 * mke2fs -J device= (or tune2fs) tied to the file system.
 *
 * Such a file is laid out as a device of the file system's block size: an
 * ext2 superblock at byte 1024 (journal_dev set, the UUID the file
 * system's s_journal_uuid names, the device's block count), the jbd2
 * superblock in the block after it, and journal block i at block i for
 * the log (jbd2's identity map of a journal device). The map built here
 * says exactly that: map[0] the jbd2 superblock's block, map[i] = i after.
 *
 * The file is opened and locked as the image is (imgfile.h): exclusively
 * for a read-write mount, shared for a read-only one, so one journal never
 * serves two writers. */
#ifndef UEXT4_E2_JDEV_H
#define UEXT4_E2_JDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct struct_ext2_filsys; /* ext2_filsys */
struct ext2_super_block;

struct e2_jdev {
    int fd;        /* the journal's file, open and locked (imgfile.c) */
    char *path;    /* as given, for messages */
    uint64_t *map; /* journal block -> block of the file, @maplen of them */
    uint32_t maplen;
};

/* Whether the superblock @sb puts the journal on another device: a
 * journal, no journal inode, and a journal UUID or device number (the
 * kernel's ext4_load_journal rules; jmap.c refuses the same images). */
bool e2_journal_is_external(const struct ext2_super_block *sb);

/* Open and lock @path (read-write if @rw) as the external journal of @fs
 * (open, read-only is enough), whose image file is open as @image_fd, and
 * check it as the kernel's ext4_get_journal_blkdev and jbd2's journal load
 * do, plus the file system's UUID among the journal's users (e2fsprogs'
 * own rule): not the image itself, an ext2 superblock with journal_dev, its
 * checksum (metadata_csum), the UUID @fs names, the same block size; a v2
 * jbd2 superblock in the next block, valid (jfmt_sb_parse), one user and
 * @fs among its users, within the device and the file. *@out is
 * malloc'd (e2_jdev_close frees it). Returns 0, -EINVAL (not @fs's
 * journal, or the image itself), -EUCLEAN (a damaged journal superblock),
 * -EOPNOTSUPP (an unknown journal feature), -EBUSY (locked by another
 * mount) or another -errno, @why naming the file and the cause. */
int e2_jdev_open(const char *path, bool rw, int image_fd, struct struct_ext2_filsys *fs,
                 struct e2_jdev **out, char *why, size_t why_len);

/* A copy of @jd's map (malloc'd) for the journal writer, or NULL. */
uint64_t *e2_jdev_map_dup(const struct e2_jdev *jd);

/* Close and free (NULL is fine). */
void e2_jdev_close(struct e2_jdev *jd);

#endif

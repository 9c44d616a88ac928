/* jmap.c: where the journal lives — the file system block of each block
 * of the journal inode, read through libext2fs for recovery
 * (jbd2/recover.h) and the journal writer (journal.c), which then do block
 * I/O on the image directly. */
#ifndef UEXT4_E2_JMAP_H
#define UEXT4_E2_JMAP_H

#include <stddef.h>
#include <stdint.h>

struct struct_ext2_filsys; /* ext2_filsys */

/* Build the journal block map of the file system @fs (open, read-only is
 * enough) from its journal inode (s_journal_inum): *@map (malloc'd, the
 * caller frees it) gets the file system block of each of the *@len journal
 * blocks. Returns 0; -ENOENT if the file system has no journal;
 * -EOPNOTSUPP for an external journal (journal_dev, s_journal_dev or a
 * journal UUID without an inode); -EUCLEAN if the inode is not a regular
 * file, is empty or larger than JFMT_MAX_LOG_BLOCKS, or has a hole or a block
 * outside the file system; other -errno from libext2fs. @why names the
 * cause. */
int e2_journal_map_load(struct struct_ext2_filsys *fs, uint64_t **map, uint32_t *len, char *why,
                        size_t why_len);

#endif

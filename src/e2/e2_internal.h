/* Shared by the files of src/e2/ only. */
#ifndef UEXT4_E2_INTERNAL_H
#define UEXT4_E2_INTERNAL_H

#include "base/lock.h"
#include "e2/e2.h"

#include <ext2fs/ext2fs.h>
#include <stdatomic.h>

struct e2_journal;
struct e2_jdev;

/* A logical cluster of an inode (bigalloc); see e2_image.partial. */
struct e2_partial {
    uint32_t ino;
    uint64_t cluster;
};

struct e2_image {
    ext2_filsys fs; /* protected by disk_lock */
    struct mutex disk_lock;
    /* protected by disk_lock: */
    struct e2_journal *journal; /* NULL without a journal, or read-only */
    bool commit_asked;          /* commit_wanted called since the last commit */
    /* Written under disk_lock, read without it (e2_commit_overdue): the
     * running transaction holds half the log and nobody has committed. */
    atomic_bool commit_overdue;
    bool closing;      /* e2_orphans_release at close, not recovery */
    bool failure_said; /* a failed image write was logged */
    void (*commit_wanted)(void *arg);
    void *commit_arg;
    int lock_fd; /* the image file, holding its flock (imgfile.h) */
    /* The file system's window in it (e2_open_opts): from byte @offset, at
     * most @sizelimit bytes (0: to the end of the file). */
    uint64_t offset, sizelimit;
    struct e2_mmp *mmp; /* multiple-mount protection held, or NULL */
    /* The journal's own file (journal_path=), open and locked from the
     * first check of the superblock to close; NULL with a journal inode or
     * none. The I/O manager borrows its descriptor (journal.c). */
    struct e2_jdev *jdev;
    /* protected by disk_lock; bigalloc with a journal only: clusters that
     * lost blocks in the running transaction but stay allocated, as
     * (inode, logical cluster). Their freed blocks can be mapped again at
     * once (a cluster is allocated whole), so data written there before
     * the commit would land in blocks the durable state still gives to the
     * file's old contents: such writes go through the journal (data.c).
     * Emptied when the transaction is durable (journal.c). */
    struct e2_partial *partial;
    size_t npartial, cappartial;
    bool read_only;
    char *path;
    /* protected by disk_lock: the i_generation sequence of new inodes
     * (inode.c), seeded from getrandom(2) by the first one. */
    uint64_t gen_state;
    bool gen_seeded;
    /* A read-only mount's journal, replayed in memory (overlay.h); NULL if
     * nothing needed replaying. Read-only once built; freed at close. */
    struct e2_overlay *replayed;
    struct e2_quota *quota; /* protected by disk_lock; NULL without quota files */
    /* The system zone (sysz.c): built at open, unchanged after; tested
     * under disk_lock only (a test moves the tree's cursor). */
    ext2fs_block_bitmap sysz;
    /* FITRIM's memory of the groups it trimmed (trim.c): from open to
     * close; its fields are protected by disk_lock. */
    struct e2_trim_memo *trim;
    /* The orphan list's back links (orphan.c), or NULL until a removal
     * needs them; protected by disk_lock. */
    struct e2_orphan_links *orphan_links;
};

/* The inode table block that holds inode @ino. */
static inline uint64_t e2_inode_block(ext2_filsys fs, uint32_t ino)
{
    uint32_t ipg = fs->super->s_inodes_per_group;
    uint64_t off = (uint64_t)((ino - 1) % ipg) * EXT2_INODE_SIZE(fs->super);

    return ext2fs_inode_table_loc(fs, (ino - 1) / ipg) + off / fs->blocksize;
}

static inline void e2_lock(struct e2_image *img)
{
    mutex_lock(&img->disk_lock);
}

/* The running transaction has outgrown a quarter of the log (journal.c). */
bool e2_journal_wants_commit(const struct e2_image *img);

/* The preamble of a storage call that changes inode @ino: -EROFS on a
 * read-only image, else *@in read (inode.c). */
int e2_read_inode_for_change_locked(struct e2_image *img, uint32_t ino,
                                    struct ext2_inode_large *in);
/* The same with the disk lock taken first. The lock is held on return,
 * error or not: the caller's exit path (e2_step_end_locked, e2_unlock)
 * lets go of it. */
static inline int e2_lock_for_change(struct e2_image *img, uint32_t ino,
                                     struct ext2_inode_large *in)
{
    e2_lock(img);
    return e2_read_inode_for_change_locked(img, ino, in);
}

/* The commit policy (journal.c), called by every storage call that may
 * have grown the running transaction, at its end, before it lets go of the
 * disk lock: past a quarter of the log it asks the fs layer for a commit
 * (commit_wanted: the commit thread runs it once the file system is
 * quiescent); past half, with that request not yet served, it marks the
 * commit overdue (e2_commit_overdue: the next operation commits first).
 * It only signals: a commit needs the mount lock. No-op without a
 * journal. */
void e2_step_end_locked(struct e2_image *img);

static inline void e2_unlock(struct e2_image *img)
{
    mutex_unlock(&img->disk_lock);
}

/* mmp.c: multiple-mount protection. e2_mmp_start() runs the kernel's mount
 * protocol on the MMP block of the image open in @fs (read-only is enough:
 * the block is written with pwrite on img->lock_fd, which must be open
 * read-write); it sleeps twice
 * for the check time (11 s with the default interval) and fails with -EBUSY
 * and a message naming the other user's node and device if the image is in
 * use. On success an update thread keeps the block ours (and makes @img
 * read-only if another system takes it over). e2_mmp_stop() ends the
 * thread and marks the block clean: call it after the last write to the
 * image. -EBUSY if the block had been taken over. */
struct e2_mmp;
int e2_mmp_start(struct e2_image *img, ext2_filsys fs, struct e2_mmp **out, char *why, size_t len);
int e2_mmp_stop(struct e2_mmp *mp);

/* eainode.c: xattr values in EA inodes (disk lock held; no-ops without
 * the ea_inode feature). e2_ea_refs_get_locked() notes the EA inodes an
 * inode's xattrs reference and what they add to its i_blocks (in blocks);
 * after a libext2fs call that may have changed them,
 * e2_ea_refs_update_locked() moves i_blocks by the difference and gives new
 * EA inodes the inode's owner. e2_ea_inodes_release_locked() drops the EA
 * inode references of an inode being freed: call it before its xattr
 * block's reference is dropped. */
struct e2_ea_refs {
    uint64_t charge;
    uint32_t *inums;
    unsigned n, cap;
};
int e2_ea_refs_get_locked(struct e2_image *img, uint32_t ino, struct e2_ea_refs *r);
int e2_ea_refs_update_locked(struct e2_image *img, uint32_t ino, const struct e2_ea_refs *before);
void e2_ea_refs_free(struct e2_ea_refs *r);
int e2_ea_inodes_release_locked(struct e2_image *img, uint32_t ino);

/* xattr_fit.c: *@needs = whether setting xattr @name of inode @ino to
 * @val (@len bytes, as given to e2_xattr_set) makes libext2fs allocate an
 * xattr block: the inode has none, or shares it, and an entry will be in
 * one. Read from the entries on disk, nothing changed (disk lock held). */
int e2_xattr_needs_block_locked(struct e2_image *img, uint32_t ino, const char *name,
                                const void *val, size_t len, bool *needs);

/* errcode_t (libext2fs and com_err) to -errno: the one table (errcode.c). */
int e2_errno(errcode_t err);
/* Format a message into the caller's @why buffer (may be NULL or 0 long). */
void e2_say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* parttab.c: the partitions in the MBR or GPT at the start of @fd, as
 * "partition N: offset=BYTES,sizelimit=BYTES" joined by "; " into @out
 * (as many as fit); returns how many (0: no partition table). */
int e2_parttab_describe(int fd, char *out, size_t len);

/* Inode I/O with the large on-disk inode; the caller holds the disk lock. */
int e2_read_inode_locked(struct e2_image *img, ext2_ino_t ino, struct ext2_inode_large *inode);
int e2_write_inode_locked(struct e2_image *img, ext2_ino_t ino, struct ext2_inode_large *inode);
void e2_inode_to_attr(struct e2_image *img, const struct ext2_inode_large *in, struct e2_attr *a);
/* The @fields (E2_A_*) of @a into @in, as e2_inode_set() stores them. */
void e2_attr_to_inode(const struct e2_attr *a, unsigned fields, struct ext2_inode_large *in);
bool e2_inode_has_extra(const struct ext2_inode_large *in, size_t field_end);
/* A new i_generation (inode.c): unpredictable across mounts, distinct in
 * a row, as the kernel's get_random_u32(). */
uint32_t e2_next_generation_locked(struct e2_image *img);
/* The i_extra_isize a new inode gets: s_want_extra_isize, within what the
 * inode size and struct ext2_inode_large hold; 0 for 128-byte inodes. */
uint16_t e2_want_extra_isize(const struct e2_image *img);

/* inline.c, with the disk lock held: the length of system.data, the
 * inline capacity, and replacing system.data's value. */
/* The value of system.data (free with ext2fs_free_mem), NULL if none. */
int e2_inline_get_ea_locked(struct e2_image *img, uint32_t ino, void **val, size_t *len);
int e2_inline_ea_len_locked(struct e2_image *img, uint32_t ino, size_t *len);
int e2_inline_capacity_locked(struct e2_image *img, uint32_t ino, size_t *cap);
int e2_inline_set_ea_locked(struct e2_image *img, uint32_t ino, const void *val, size_t len);

/* punch.c: the partial clusters above. */
bool e2_partial_hit_locked(struct e2_image *img, uint32_t ino, uint64_t first, uint64_t last);

/* cluster.c: on bigalloc, -ENOSPC unless the clusters an allocating map
 * of @in's tree may take (the data's and new tree nodes) are free; else
 * (or not bigalloc, or no extents) 0. libext2fs 1.47 frees a cluster the
 * file still maps when such a map fails (see cluster.c): every allocating
 * ext2fs_bmap2 and file API write on bigalloc checks first. Under
 * disk_lock. */
int e2_cluster_room_locked(struct e2_image *img, const struct ext2_inode_large *in);

/* cluster.c: ext2fs_bmap2(BMAP_ALLOC | @flags) of @lblk after that check;
 * as ext2fs_bmap2, it may read @in again. Under disk_lock. 0 or -errno. */
int e2_bmap_alloc_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in, int flags,
                         blk64_t lblk, int *ret_flags, blk64_t *pblk);

/* punch.c: ext2fs_punch, working around its refusal to free the file
 * system's last block. */
int e2_punch_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in, blk64_t start,
                    blk64_t end);

/* extio.c: large contiguous I/O for extent files (disk lock held). A
 * write sets *@route to E2_WRITE_ELSEWHERE, writing nothing and returning
 * 0, when it would allocate blocks other than by extending the last
 * extent, or the range has unwritten extents: the caller then uses mapio.
 * Else E2_WRITE_DONE, and the return value is the byte count or -errno.
 * A write past EOF sets i_size in @in without writing the inode: the
 * caller writes it, with the attributes the write changes (data.c). */
enum e2_write_route { E2_WRITE_DONE, E2_WRITE_ELSEWHERE };
bool e2_extio_usable(const struct ext2_inode_large *in);
ssize_t e2_extio_read_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                             void *buf, size_t size, uint64_t off);
ssize_t e2_extio_map_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                            uint64_t off, size_t size, struct e2_seg *segs, unsigned max,
                            unsigned *nseg);
/* The bytes a write takes, in order: from memory, or from a pipe (the FUSE
 * channel's spliced WRITE data, e2_data_write_pipe()), where each step
 * consumes what it moved. */
struct e2_wsrc {
    const char *buf; /* NULL: the bytes are in @pipe */
    int pipe;
    const struct e2_accept *acc; /* told before the bytes move, or NULL */
};
ssize_t e2_extio_write_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              const struct e2_wsrc *src, size_t size, uint64_t off,
                              enum e2_write_route *route);

/* journal.c: metadata through the jbd2 journal (the protocol is described
 * at the top of journal.c). Load (read and check, nothing written) before
 * the image is marked mounted, so that a journal refused leaves the image
 * as it was; start it after; free one loaded and not started. Commit with
 * the file system quiescent; stop commits, empties the log and clears
 * needs_recovery in memory (the caller writes the superblock). */
int e2_journal_load(struct e2_image *img, struct e2_journal **out, char *why, size_t why_len);
void e2_journal_start(struct e2_image *img, struct e2_journal *jn);
void e2_journal_free(struct e2_journal *jn);
int e2_journal_commit_locked(struct e2_image *img);
int e2_journal_stop_locked(struct e2_image *img);
/* jbd2_journal_flush(): commit, checkpoint, sync, mark the log empty on
 * disk; then with E2_CHECKPOINT_DISCARD or _ZEROOUT (e2.h) erase the log's
 * blocks. Under disk_lock, the file system quiescent. */
int e2_journal_flush_locked(struct e2_image *img, unsigned how);
/* Blocks freed since the last commit stay marked in the bitmap while the
 * free count has them (until the commit is durable). held: an upper bound
 * on how many blocks that is, so the free count less it is at most what
 * the bitmap has free; holds: whether @blk's cluster is one of them. 0 and
 * false without a journal. Under disk_lock. */
blk64_t e2_journal_held_locked(const struct e2_image *img);
bool e2_journal_holds_locked(const struct e2_image *img, blk64_t blk);

/* orphan.c: the orphan list (s_last_orphan chained through i_dtime). */
int e2_orphan_remove_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in);
int e2_orphan_cleanup_locked(struct e2_image *img);
/* Free the back links (at close). */
void e2_orphan_links_free(struct e2_image *img);
/* Release the orphans a crashed kernel listed in the orphan file, zero
 * their slots and clear orphan_present (read-write open, after the list);
 * 0 without the feature, -EUCLEAN for a damaged orphan file. */
int e2_orphan_file_cleanup_locked(struct e2_image *img);
int e2_inode_free_locked(struct e2_image *img, uint32_t ino);
/* jmap.c: the blocks of every group's superblock copy, descriptors,
 * bitmaps and inode table, marked in a new *@bm (the caller frees it);
 * those inside the file system only. 0 or -errno. */
int e2_metadata_map(ext2_filsys fs, ext2fs_block_bitmap *bm);

/* sysz.c: the system zone, the blocks no file may map (e2_metadata_map's,
 * and the journal's for every inode but the journal's). Every block a
 * file's mapping hands out for data I/O (extio.c, mapio.c, data.c) or for
 * freeing (punch.c) is checked first: -EUCLEAN and one log line naming the
 * image, the inode, the block and what it holds, with nothing written.
 * e2_sysz_build() at open (0 or -errno), e2_sysz_free() at close. */
int e2_sysz_build(struct e2_image *img);
void e2_sysz_free(struct e2_image *img);
/* Whether the block bitmap marks every block of the zone in use, as the
 * kernel's ext4_validate_block_bitmap() requires of a group's own: one it
 * calls free would be handed to the next allocation (a file's data, a
 * directory's block) and written over. -EUCLEAN with the block and what
 * it holds in @why, else 0. For a read-write open, after the bitmaps. */
int e2_sysz_check_bitmap(struct e2_image *img, char *why, size_t why_len);
/* The slow path of e2_sysz_check_locked: log and return -EUCLEAN. */
int e2_sysz_refuse_locked(struct e2_image *img, uint32_t ino, blk64_t blk, blk64_t n);
/* Whether inode @ino may map the @n blocks from @blk: 0, or -EUCLEAN. */
static inline int e2_sysz_check_locked(struct e2_image *img, uint32_t ino, blk64_t blk, blk64_t n)
{
    ext2_filsys fs = img->fs;

    if (blk >= fs->super->s_first_data_block && n <= ext2fs_blocks_count(fs->super) &&
        blk <= ext2fs_blocks_count(fs->super) - n &&
        (ino == fs->super->s_journal_inum || !img->sysz ||
         ext2fs_test_block_bitmap_range2(img->sysz, blk, (unsigned)n)))
        return 0;
    return e2_sysz_refuse_locked(img, ino, blk, n);
}
/* Block-mapped @ino (others: 0): its indirect blocks named in @in and the
 * blocks mapped for logical blocks [@first, @last] (none if @first >
 * @last), before I/O through libext2fs's bmap or file API. */
int e2_sysz_check_read_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              blk64_t first, blk64_t last);
/* Before a write at logical block @lblk of @ino changes its mapping: the
 * extent tree blocks on the way to @lblk (none for a tree in the inode),
 * or a block-mapped file's indirect blocks named in @in and those below
 * them on the way to @lblk. */
int e2_sysz_check_path_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              blk64_t lblk);
/* Before freeing [@first, @last] of @ino: every extent tree block or
 * indirect block, and the data blocks of the range. */
int e2_sysz_check_free_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              blk64_t first, blk64_t last);
/* The tree blocks an extent handle @h of @ino went through to the node it
 * rests on (after a goto, a hole's too). Leaves @h at the root: callers
 * go to their next block from there (ext2fs_extent_goto does). */
int e2_sysz_check_handle_locked(struct e2_image *img, uint32_t ino, ext2_extent_handle_t h);
/* Everything [@first, @last] of @ino is reached through: the tree or
 * indirect blocks on the way and the blocks mapped there, for calls that
 * use a mapping without moving data through extio.c or mapio.c
 * (fallocate, partial-block zeroing). */
int e2_sysz_check_range_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                               blk64_t first, blk64_t last);
/* The xattr block @in names (i_file_acl), before libext2fs reads it as
 * attributes, writes a change into it or drops a reference to it (which
 * writes the count and frees the block with the last): 0 or -EUCLEAN. */
int e2_sysz_check_acl_locked(struct e2_image *img, uint32_t ino, const struct ext2_inode_large *in);
/* What the kernel's ext4_iget checks of an inode's own fields before it
 * hands the inode out: the xattr block and, for regular files,
 * directories and slow symlinks without inline data, the blocks named in
 * i_block (the root's extents or index entries, or the 15 block map
 * entries). 0 or -EUCLEAN (logged). */
int e2_sysz_check_inode_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in);

/* falloc.c: ext2fs_fallocate() of @len blocks from logical block @start
 * (its @flags), with @in the caller's copy of the inode, updated and not
 * written, as libext2fs leaves it. On failure the extents placed so far
 * stay, and the blocks libext2fs claimed without mapping are given back
 * (bitmap, counts, @in's i_blocks). Under disk_lock. 0 or -errno. */
int e2_fallocate_locked(struct e2_image *img, int flags, uint32_t ino, struct ext2_inode_large *in,
                        blk64_t start, blk64_t len);

/* trim.c: FITRIM's memory of trimmed groups. e2_trim_start() at open,
 * once the bitmaps are read and before the journal starts (so that the
 * journal's block statistics callbacks chain to trim.c's, which forget a
 * group when blocks are freed in it): 0 or -ENOMEM. e2_trim_stop() at
 * close, after the journal has stopped. */
int e2_trim_start(struct e2_image *img);
void e2_trim_stop(struct e2_image *img);
/* The file system grows to @groups block groups (resize.c): the new ones
 * are not trimmed. 0 or -ENOMEM, nothing changed. Under disk_lock. */
int e2_trim_grow(struct e2_image *img, dgrp_t groups);

/* quota.c: usage in the quota files (the `quota` feature). e2_quota_start()
 * checks the files and hooks libext2fs's inode writes to charge every
 * change of an inode's blocks, owner, project or liveness (after the image
 * is opened read-write, before anything is written; no-op without quota).
 * e2_quota_flush_locked() adds what was charged to the files: before each
 * commit captures the transaction, and before a close without a journal.
 * e2_quota_stop() unhooks and frees. Our own writes of a whole
 * ext2_inode_large say so with e2_quota_whole_inode() around the write
 * (@fresh: a new inode, whose slot held nothing charged). */
int e2_quota_start(struct e2_image *img, char *why, size_t why_len);
int e2_quota_flush_locked(struct e2_image *img);
void e2_quota_stop(struct e2_image *img);
void e2_quota_whole_inode(struct e2_image *img, bool whole, bool fresh);
/* Around a change of inode @ino's xattrs by a caller held to quota limits
 * (xattr.c; @ino 0 ends it): a new EA inode libext2fs creates meanwhile for
 * a value of @len bytes is refused (-EDQUOT at its first write, before
 * anything is changed) if one more inode or the value's clusters would
 * pass a limit of @ino's ids. No-op without quota. */
void e2_quota_hold_ea_inode_locked(struct e2_image *img, uint32_t ino, size_t len);
/* Whether a new xattr block (a cluster) may be charged to the ids of inode
 * @ino (ext4_xattr_block_set: dquot_alloc_block): 0, or -EDQUOT past a
 * hard limit or an ended grace period. No-op without quota. */
int e2_quota_may_add_xattr_block_locked(struct e2_image *img, uint32_t ino);
/* Charge @refs more (or fewer) EA inode references held by the xattrs of
 * inode @ino (as @in on disk) to its ids, one inode each, as e2fsck counts
 * them (eainode.c, after the references changed; no-op without quota). */
int e2_quota_charge_ea_refs_locked(struct e2_image *img, uint32_t ino,
                                   const struct ext2_inode_large *in, int64_t refs);

/* File data: straight to the image, never into a transaction (iomgr.h). */
int e2_data_write_blocks(struct e2_image *img, blk64_t blk, size_t count, const void *buf);
int e2_data_read_blocks(struct e2_image *img, blk64_t blk, size_t count, void *buf);

/* mapio.c: a write mapping and allocating block by block, the data
 * straight home (disk lock held). Returns the bytes written or -errno; a
 * short count after running out of space part way, or with *@unwritten
 * when it stopped at a block of an unwritten extent: the file API's job
 * from there on. */
ssize_t e2_mapio_write_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              const void *buf, size_t size, uint64_t off, bool *unwritten);

/* casefold.c: the htree hash of @name in a directory with i_flags
 * @dir_flags (of its casefolded form in a casefold directory, as the
 * kernel and e2fsck compute it). */
int e2_dirhash(ext2_filsys fs, int version, uint32_t dir_flags, const char *name, size_t len,
               uint32_t *hash, uint32_t *minor);

/* Whether libext2fs can hash @name casefolded (valid UTF-8). Its
 * ext2fs_link fails on an indexed casefold directory otherwise, and its
 * e2fsck (1.47.0) cannot place such a name in an index: casefold
 * directories holding one are never indexed by uext4. */
bool e2_name_is_foldable(ext2_filsys fs, const char *name, size_t len);

/* htree.c: index a full one-block directory, as the kernel does.
 * -EOPNOTSUPP, with nothing changed, for a casefold directory holding a
 * name that is not UTF-8 (e2_name_is_foldable). */
int e2_dir_make_indexed_locked(struct e2_image *img, uint32_t dir);
/* Remove @name from the leaf block the index of @dir points to, with
 * @remove doing the entry surgery on that block; -ENOENT if the directory
 * is not indexed, the index cannot be followed or the name is not in that
 * leaf (the caller then scans the whole directory). */
int e2_dir_unlink_indexed_locked(struct e2_image *img, uint32_t dir, const char *name,
                                 int (*remove)(struct e2_image *img, uint32_t dir_flags,
                                               char *block, unsigned len, const char *name,
                                               size_t name_len));
/* Add @name -> @ino (file type @ftype, an EXT2_FT_ value) to the leaf
 * block the index of @dir points @name's hash to, where the kernel's
 * ext4_dx_add_entry() puts it when that leaf has room: the index read
 * with its checksums, the leaf read, changed and written once. -EAGAIN,
 * nothing changed, for everything else: a directory that is not indexed
 * (or inline, or encrypted), a full leaf (a split), an index or leaf that
 * cannot be read or does not add up; the caller then has ext2fs_link do
 * it, and report what is wrong. Other -errno: writing the leaf failed. */
int e2_dir_link_indexed_locked(struct e2_image *img, uint32_t dir, const char *name, uint32_t ino,
                               unsigned ftype);

/* Private libext2fs 1.47 functions: exported by the library but declared
 * only in its internal header. */
errcode_t ext2fs_inline_data_ea_remove(ext2_filsys fs, ext2_ino_t ino);
errcode_t ext2fs_inline_data_expand(ext2_filsys fs, ext2_ino_t ino);

/* crc32c.c: CRC-32C (@crc in and out without inversion), the function
 * libext2fs's ext2fs_crc32c_le() is replaced with in the daemon; the same
 * a byte at a time; and a check of the two on a known vector (0 or -EIO).
 * e2_crc32c_select(): the implementation for a CPU with (@hw) or without
 * the CRC32 instruction: the instruction; without it libext2fs's own
 * function (found past ours by dlsym RTLD_NEXT), or if that cannot be
 * found the byte table. e2_crc32c_impl(): the one e2_crc32c() uses, chosen
 * at load for this CPU (in builds with test hooks, UEXT4_TEST_NO_SSE42 in
 * the environment chooses as without the instruction). */
typedef uint32_t (*e2_crc_fn)(uint32_t crc, const unsigned char *p, size_t len);
uint32_t e2_crc32c(uint32_t crc, const unsigned char *p, size_t len);
uint32_t e2_crc32c_sw(uint32_t crc, const unsigned char *p, size_t len);
int e2_crc32c_check(void);
e2_crc_fn e2_crc32c_select(bool hw);
e2_crc_fn e2_crc32c_impl(void);

#endif

/* Mount options: the `-o` list of the uext4 command, parsed into the core's
 * struct uext4_options plus what the FUSE mount itself needs.
 *
 * No libfuse here: parsing is plain string work, unit-testable on its own.
 * Each recognised option is listed in options_table in mount_opts.c, which
 * is also what `uext4 --help` and doc/uext4.1 describe. Unknown or malformed
 * options are errors: nothing is passed through to the kernel unchecked. */
#ifndef UEXT4_FRONTEND_MOUNT_OPTS_H
#define UEXT4_FRONTEND_MOUNT_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "uext4.h"

/* Kernel mount flags that may be forwarded to the FUSE mount, grouped so a
 * later option overrides an earlier one of the same group ("nosuid,suid"). */
enum fe_kflag_group {
    FE_KF_SUID,
    FE_KF_DEV,
    FE_KF_EXEC,
    FE_KF_ATIME,
    FE_KF_SYNC,
    FE_KF_DIRSYNC,
    FE_KF_NR
};

/* Who checks permissions. The kernel, from the attributes and POSIX ACLs
 * the daemon reports (FUSE default_permissions), unless told otherwise or
 * under fakeroot, whose callers the kernel would refuse: the daemon checks
 * every request either way, but only kernel checks let the kernel keep
 * looked-up names (session.c). */
enum fe_perm_check {
    FE_PERM_UNSET, /* kernel, or daemon alone under fakeroot */
    FE_PERM_KERNEL,
    FE_PERM_DAEMON,
};

#define FE_MAX_NOTED 32

struct fe_mount_opts {
    struct uext4_options core;
    bool allow_other;
    enum fe_perm_check perm_check;
    /* Ask for FUSE_CAP_WRITEBACK_CACHE: the kernel buffers write(2) data
     * in its page cache and owns i_size, mtime and ctime (session.c). */
    bool writeback_cache;
    /* Worker threads of the session loop; 0 for the default (session.c). */
    unsigned max_threads;
    /* -o io_uring: serve requests through FUSE over io_uring where the
     * kernel offers it (uring.c); off by default. */
    bool io_uring;
    /* -o no_splice_write: read every request into memory (wire.c). */
    bool no_splice_write;
    /* -o no_early_write: answer a spliced WRITE once its data is in the
     * image, not once its blocks are allocated (file.c). */
    bool no_early_write;
    /* Point into the option string given to fe_opts_parse(); NULL when not
     * given (the image path and "uext4" are used). */
    const char *fsname;
    const char *subtype;
    /* -o record=FILE: write the operations served as a scenario (record.c). */
    const char *record;
    /* Per group, the mount(8) name to forward, or NULL for the default. */
    const char *kflag[FE_KF_NR];
    /* Options of ext4 or mount(8) accepted with no effect on uext4, each
     * name once, and why (pointing into the option list, and static). */
    unsigned nnoted;
    struct {
        const char *name, *why;
    } noted[FE_MAX_NOTED];
};

void fe_opts_init(struct fe_mount_opts *o);

/* Parse one comma-separated option list (one `-o` argument) into @o, on top
 * of what earlier calls set. @list is split in place and must outlive @o.
 * Returns 0, or -EINVAL with a message naming the option in @err. */
int fe_opts_parse(struct fe_mount_opts *o, char *list, char *err, size_t err_len);

/* After the last fe_opts_parse(): settle what depends on several options
 * (FE_PERM_UNSET is resolved). Returns 0, or -EINVAL with a message in
 * @err for options that contradict each other. */
int fe_opts_finish(struct fe_mount_opts *o, char *err, size_t err_len);

#endif

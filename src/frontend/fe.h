/* The FUSE front end as the uext4 command sees it: a session that serves an
 * open struct uext4_fs on a mount point. This header keeps libfuse out of
 * main.c; only src/frontend/ includes libfuse.
 *
 * Life cycle, all from one thread (the main one):
 *   fe_session_new -> fe_session_mount -> fe_session_run -> fe_session_destroy
 * and only then uext4_close(): the session must be gone, and with it every
 * request that could still reach the core, before the image is closed. */
#ifndef UEXT4_FRONTEND_FE_H
#define UEXT4_FRONTEND_FE_H

#include <stdbool.h>
#include <stdint.h>

#include "frontend/mount_opts.h"
#include "uext4.h"

struct fe_session;

struct fe_mount_params {
    const char *fsname;  /* shown as the source in /proc/mounts */
    const char *subtype; /* the type shows as fuse.SUBTYPE */
    const char *image;   /* the image file (for -o record's header) */
    bool read_only;
    bool debug; /* libfuse traces every request to stderr */
    const struct fe_mount_opts *opts;
};

/* Create the FUSE session for @fs and install the signal handlers that end
 * fe_session_run() on SIGINT, SIGTERM and SIGHUP. @fs stays owned by the
 * caller and must outlive the session. Returns 0 or -errno (-EINVAL when
 * libfuse refused the options; it has said why on stderr). */
int fe_session_new(struct uext4_fs *fs, const struct fe_mount_params *p, struct fe_session **out);

/* Mount on @mountpoint (via fusermount3 when not root). Returns 0, or -EIO
 * when libfuse fails: it reports no errno, only a message on stderr. */
int fe_session_mount(struct fe_session *s, const char *mountpoint);

/* Serve requests until the file system is unmounted (fusermount3 -u,
 * umount) or a signal arrives. @single_thread selects the single-threaded
 * loop. Returns 0 or -errno. */
int fe_session_run(struct fe_session *s, bool single_thread);

/* The number of FUSE requests @s has taken so far (FORGETs included), on
 * either transport; any thread may ask. */
uint64_t fe_session_requests(const struct fe_session *s);
/* Bytes of WRITE data that stayed in a pipe for splicing (wire.c). */
uint64_t fe_session_spliced(const struct fe_session *s);
uint64_t fe_session_interrupts(const struct fe_session *s);
/* WRITEs answered before their data reached the image (file.c). */
uint64_t fe_session_answered_early(const struct fe_session *s);

/* Unmount if still mounted, remove the signal handlers and free @s. */
void fe_session_destroy(struct fe_session *s);

/* The version of the libfuse library in use, e.g. "3.14.0". */
const char *fe_fuse_version(void);

/* Whether this build can serve FUSE over io_uring (-o io_uring). */
bool fe_uring_available(void);

#endif

/* control.c, ctlcmd.c: the daemon's control socket, and the commands that
 * use it (`uext4 MNT -o remount,ro|rw`, `uext4 -u MNT`).
 *
 * A daemon serving a mount listens on a Unix socket named after its mount
 * point (a hash of the canonical path) in a directory private to the
 * mounting user:
 *     root:  /run/uext4, else /tmp/uext4-0
 *     uid U: /run/user/U/uext4 (if /run/user/U is U's), else /tmp/uext4-U
 * The directory must be a directory owned by that user with no group or
 * other access (created so), or neither side uses it. A client learns the
 * mounting user from the mount's user_id= in /proc/self/mountinfo, so root
 * can reach any user's daemon. The daemon answers only its own user and
 * root (SO_PEERCRED); everyone else gets EPERM.
 *
 * Protocol: one request line per connection, answered by lines of the form
 * "<0 or -errno> <message>":
 *     "remount ro" / "remount rw"   uext4_remount(); one answer
 *     "wait"                        "0 waiting" at once, then, once the
 *                                   image is closed (committed, clean, its
 *                                   lock released), "<rc> closed"; the
 *                                   connection ends when the daemon exits.
 *     "stats"                       "0 requests N spliced M interrupts K":
 *                                   the FUSE requests taken so far
 *                                   (bench/run.py counts requests per
 *                                   operation with it), the WRITE data
 *                                   bytes left in a pipe for the handler,
 *                                   the FUSE_INTERRUPTs refused.
 */
#ifndef UEXT4_FRONTEND_CONTROL_H
#define UEXT4_FRONTEND_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include "uext4.h"

struct fe_control;
struct fe_session;

/* The socket path of the daemon of @uid serving the canonical mount point
 * @mnt, in the first of @uid's directories that exists and is safe (with
 * @create, the first that can be made so). Returns 0 or -errno (-ENOENT
 * for none, -EPERM for an unsafe one), with @why saying which. */
int fe_control_path(uid_t uid, const char *mnt, int create, char *path, size_t len, char *why,
                    size_t why_len);

/* Listen for requests about the mount on @mnt (canonical) serving @fs
 * through @session (which must outlive fe_control_stop()), in a thread of
 * its own. Returns 0 or -errno with @why. */
int fe_control_start(struct uext4_fs *fs, const struct fe_session *session, const char *mnt,
                     struct fe_control **out, char *why, size_t why_len);

/* Stop answering (the session is over: remounts are refused from here on)
 * and remove the socket; "wait" connections stay open. */
void fe_control_stop(struct fe_control *c);

/* The image is closed with result @rc: answer the waiting connections and
 * free @c. Their descriptors stay open until the process exits, which is
 * what the waiters see last. */
void fe_control_finish(struct fe_control *c, int rc);

/* The commands (ctlcmd.c); print their own messages, return 0 or -errno. */
int fe_cmd_remount(const char *mnt, int read_only);
int fe_cmd_unmount(const char *mnt, unsigned timeout_sec);

#endif

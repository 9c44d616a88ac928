/* imgfile.c: the image file, opened once and locked.
 *
 * Everything the daemon reads and writes goes through the one descriptor
 * opened here (libext2fs reaches it through a name made by
 * e2_imgfile_name(), which iomgr.c resolves to a dup of it): the file that
 * holds the lock is the file served, whatever happens to its path later.
 *
 * Rules:
 *  - only a regular file or a block device is opened for I/O: the type is
 *    checked by stat(2) first and then by fstat(2) of an O_NONBLOCK open,
 *    so a FIFO cannot block the open and a swapped path cannot slip in;
 *  - block devices are opened O_EXCL, as mount(8) and e2fsprogs do: one
 *    the kernel has mounted is refused with -EBUSY, and so is a regular
 *    file the kernel has mounted through a loop device;
 *  - the locks are on that open file: an flock(2) of the whole file,
 *    LOCK_EX for a read-write mount of all of it, LOCK_SH for a read-only
 *    one or for a partition (offset=/sizelimit=), so that waiting for an
 *    exclusive flock waits for every uext4 using the file; and an OFD
 *    lock (fcntl F_OFD_SETLK) on the bytes served, F_WRLCK read-write,
 *    F_RDLCK read-only: two partitions of one disk image can be served
 *    at once, overlapping ones cannot. A loop device the kernel has
 *    mounted is refused only over bytes it serves;
 *  - a lock (or an O_EXCL claim) held by someone else is waited for, up
 *    to E2_IMGFILE_WAIT_MS, with a warning after a second: the daemon of
 *    an image just unmounted may still be writing it back. A holder that
 *    still has /dev/fuse open is serving a mount and is given only a
 *    second; this process itself is not waited for. A refusal names the
 *    holder (pid and command, from /proc/locks) when it can be found.
 */
#ifndef UEXT4_E2_IMGFILE_H
#define UEXT4_E2_IMGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define E2_IMGFILE_WAIT_MS 10000

/* What an open claims: reading and writing (@rw) or reading, of the
 * bytes from @offset on, @size of them (0: to the end of the file). */
struct e2_imgfile_claim {
    bool rw;
    uint64_t offset, size;
};

/* Open and lock @path as @c says. Returns the descriptor (close-on-exec,
 * blocking) or -errno with @why naming the file and the cause. */
int e2_imgfile_open(const char *path, const struct e2_imgfile_claim *c, char *why, size_t why_len);

/* Release the bytes of @c's claim on @fd past its first @size (the file
 * system's, once known; @c->offset + @size within the file): our OFD lock
 * then covers exactly what is served. 0 or -errno. */
int e2_imgfile_narrow(int fd, const struct e2_imgfile_claim *c, uint64_t size);

/* The size in bytes of the image open as @fd (a regular file or a block
 * device): 0 or -errno. */
int e2_imgfile_size(int fd, uint64_t *size);

/* The name under which iomgr.c serves @fd ("uext4-fd:N"). */
void e2_imgfile_name(char *buf, size_t len, int fd);

/* The descriptor in a name made by e2_imgfile_name(), or -1. */
int e2_imgfile_name_fd(const char *name);

#endif

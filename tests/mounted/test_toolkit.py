#!/usr/bin/env python3
"""The test toolkit's own promises that the kernel comparisons rest on.

kernel_mount()/kernel_unmount(): once the with-block is left, the image
holds what the kernel's ext4 wrote, even when another process made a mount
namespace while the image was mounted (`unshare -m`, as test_mount8,
test_lifecycle and check_no_fuse.sh do, from any suite running on the
machine): that namespace's copy of the mount keeps the file system up after
our umount has returned 0, its journal not yet checkpointed into the image.
inline-diff once read such an image without the file the kernel had
written (kernel=missing)."""

import os
import subprocess

from uext4test import (check, debugfs_cat, eq, fsck, kernel_mount, main, mkfs, pattern,
                       require_kernel_loop_mount, sb_field, test, wait_until, workdir)


def own_mnt_ns(pid):
    return os.readlink('/proc/%d/ns/mnt' % pid)


@test(timeout=60)
def kernel_unmount_outlived_by_a_namespace():
    """A file written on a kernel loop mount, then a mount namespace made
    (a process we start, which lives 2 s) before the with-block ends: when
    kernel_mount returns, that namespace is gone and the image has the file,
    byte for byte, no journal to recover, e2fsck -fn clean."""
    data = pattern(5000, seed=7)
    with workdir() as d:
        img = mkfs(os.path.join(d, 'k.img'), size='16M')
        holder = None
        try:
            with kernel_mount(img, os.path.join(d, 'kmnt')) as k:
                with open(os.path.join(k, 'f'), 'wb') as f:
                    f.write(data)
                holder = subprocess.Popen(['unshare', '-m', '--propagation', 'private',
                                           'sleep', '2'])
                wait_until(lambda: own_mnt_ns(holder.pid) != own_mnt_ns(os.getpid()), True,
                           'the holder in a mount namespace of its own')
                # Still there as the with-block ends, or this proves nothing.
                check(holder.poll() is None, 'the holder ended before the umount')
            check(holder.poll() is not None,
                  'kernel_mount returned while a namespace still held the mount')
        finally:
            if holder:
                holder.wait(timeout=30)
        eq(debugfs_cat(img, '/f'), data, 'the kernel\'s /f in the image')
        check('needs_recovery' not in sb_field(img, 'Filesystem features'),
              'the image still needs recovery')
        fsck(img)


if __name__ == '__main__':
    main(setup=require_kernel_loop_mount, needs_daemon=False)

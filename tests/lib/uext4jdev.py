"""External journals (journal_dev) as the tests make and check them: a
journal file and a file system using it (made through a loop device, as
mke2fs -J device= wants one), e2fsck -fn -j, the jbd2 superblock's tail,
and the kernel's mount with the journal behind a loop device. Shared by
test_extjournal and test_ext4_ioctls."""

import contextlib
import os
import struct

from uext4test import HASH_SEED, UUID, check, eq, kernel_unmount, run

JUUID = '0b5c2d7e-1f3a-4b6c-8d9e-a0b1c2d3e4f5'


@contextlib.contextmanager
def loop_device(path):
    """A loop device on @path for the with-block, detached by name after,
    writable again first (a read-only flag set on it would outlive it and
    refuse the device's next user)."""
    dev = run(['losetup', '-f', '--show', path]).stdout.decode().strip()
    try:
        yield dev
    finally:
        run(['blockdev', '--setrw', dev], check_rc=False)
        run(['losetup', '-d', dev], check_rc=False)


def make_journal(path, bs=4096, size=16 << 20, uuid=JUUID):
    with open(path, 'wb') as f:
        f.truncate(size)
    run(['mke2fs', '-q', '-F', '-O', 'journal_dev', '-b', str(bs), '-U', uuid, path])
    return path


def make_pair(d, bs=4096, name='fs'):
    """FS and its external journal J, as files; returns (fs, j)."""
    j = make_journal(os.path.join(d, name + '-j.img'), bs)
    fs = os.path.join(d, name + '.img')
    with open(fs, 'wb') as f:
        f.truncate(64 << 20)
    with loop_device(j) as dev:
        run(['mke2fs', '-q', '-F', '-t', 'ext4', '-b', str(bs), '-U', UUID, '-E',
             'hash_seed=' + HASH_SEED, '-J', 'device=' + dev, fs],
            env=dict(os.environ, MKE2FS_CONFIG='/etc/mke2fs.conf'))
    return fs, j


def fsck_ext(fs, j):
    p = run(['e2fsck', '-fn', '-j', j, fs], check_rc=False, timeout=300)
    check(p.returncode == 0, 'e2fsck -fn -j %s %s exited %d:\n%s%s' % (
        os.path.basename(j), os.path.basename(fs), p.returncode,
        p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')))


def jsb_tail(j, bs=4096):
    """(s_sequence, s_start) of the journal's jbd2 superblock."""
    with open(j, 'rb') as f:
        f.seek((1024 // bs + 1) * bs)
        b = f.read(64)
    eq(b[:4], b'\xc0\x3b\x39\x98', 'jbd2 magic of %s' % os.path.basename(j))
    return struct.unpack('>II', b[0x18:0x20])


@contextlib.contextmanager
def kernel_mount_ext(fs, j, mnt, opts=()):
    """The kernel's ext4 on @fs with its journal @j behind a loop device."""
    os.makedirs(mnt, exist_ok=True)
    with loop_device(j) as dev:
        run(['mount', '-t', 'ext4', '-o', ','.join(['loop', 'journal_path=' + dev] + list(opts)),
             fs, mnt])
        try:
            yield mnt
        finally:
            busy = kernel_unmount(mnt)
    check(not busy, 'umount %s: %s' % (mnt, busy))

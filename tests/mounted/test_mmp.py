#!/usr/bin/env python3
"""Multiple-mount protection (mkfs -O mmp): uext4 takes the MMP block at a
read-write mount, bumps its sequence every update interval, marks it clean
at unmount; it refuses an image whose block shows a live user, naming that
user's node and device. The kernel is the other party: it must refuse the
image while uext4 serves it. uext4 refuses an image the kernel has
mounted through a loop device before MMP is consulted (imgfile.c), so its
MMP refusal of a live user is checked against a simulated node.

Each refusal after "someone may be alive" takes the protocol's check time,
11 s with the shortest interval: the images use mmp_update_interval=1.
Runs only as root where loop mounts work, else exits 77."""

import ctypes
import errno
import hashlib
import os
import re
import struct
import subprocess
import threading
import time

import uext4test
from uext4test import (Mount, SkipFile, TestFailure, check, debugfs_cat, eq,
                       expect_errno, fsck, main, mkfs, mounted_at, pattern,
                       read_file, run, run_daemon, sb_field, test, wait_until,
                       workdir, write_file)

# Taking over a stale block waits twice the check time (22 s).
uext4test.MOUNT_TIMEOUT = 40.0

SYS_KCMP = {'x86_64': 312, 'aarch64': 272}.get(os.uname().machine)
KCMP_FILE = 0
_libc = ctypes.CDLL(None, use_errno=True)

SEQ_CLEAN = 0xFF4D4D50
SEQ_FSCK = 0xE24D4D50
MMP_MAGIC = 0x004D4D50
# magic, seq, time, nodename, bdevname, check_interval
MMP_HEAD = struct.Struct('<IIQ64s32sH')
BLOCK = 4096


def mmp_image(path, features=('mmp',)):
    return mkfs(path, size='32M', features=list(features),
                extended=['mmp_update_interval=1'])


def mmp_offset(img):
    return int(sb_field(img, 'MMP block number')) * BLOCK


def read_mmp(img):
    with open(img, 'rb') as f:
        f.seek(mmp_offset(img))
        raw = f.read(1024)
    magic, seq, t, node, dev, interval = MMP_HEAD.unpack_from(raw)
    eq(magic, MMP_MAGIC, 'MMP block magic')
    # Names end at the first NUL: the kernel writes "loop0\0" over the
    # field and leaves what mke2fs wrote after it.
    return {'seq': seq, 'time': t, 'interval': interval,
            'node': node.split(b'\0')[0].decode(errors='replace'),
            'dev': dev.split(b'\0')[0].decode(errors='replace')}


def write_mmp(img, seq, node, dev, interval=5):
    """Write the MMP block as another system would (images without
    metadata_csum only: no checksum to compute)."""
    check('metadata_csum' not in sb_field(img, 'Filesystem features'),
          'write_mmp needs an image without metadata_csum')
    raw = MMP_HEAD.pack(MMP_MAGIC, seq, int(time.time()), node.encode(),
                        dev.encode(), interval)
    fd = os.open(img, os.O_WRONLY)
    try:
        os.pwrite(fd, raw, mmp_offset(img))
        os.fsync(fd)
    finally:
        os.close(fd)


class OtherNode:
    """A live user elsewhere: bumps the MMP sequence every 0.5 s."""

    def __init__(self, img, node, dev):
        self.img, self.node, self.dev = img, node, dev
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        seq = 100
        while not self.stop.wait(0.5):
            seq += 1
            write_mmp(self.img, seq, self.node, self.dev)

    def __enter__(self):
        write_mmp(self.img, 100, self.node, self.dev)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        return False


class LoopMount:
    """The kernel's ext4 on IMG through a loop device of our own."""

    def __init__(self, img, mnt):
        self.img, self.mnt = img, mnt
        self.dev = None
        self.mounted = False

    def attach(self):
        os.makedirs(self.mnt, exist_ok=True)
        self.dev = run(['losetup', '--find', '--show', self.img]) \
            .stdout.decode().strip()
        return self

    def mount(self):
        """Returns (exit status, output) of mount(8)."""
        p = run(['mount', '-t', 'ext4', self.dev, self.mnt], check_rc=False,
                timeout=120)
        self.mounted = p.returncode == 0
        return p.returncode, (p.stdout + p.stderr).decode(errors='replace')

    def close(self):
        if self.mounted:
            run(['umount', self.mnt])
            self.mounted = False
        if self.dev:
            run(['losetup', '-d', self.dev])
            self.dev = None

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.close()
        return False


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def expect_refused(img, mnt, pattern_, what):
    before = time.monotonic()
    rc, out = run_daemon(img, mnt, timeout=60)
    check(rc != 0, '%s: uext4 mounted (rc %d): %s' % (what, rc, out))
    check(re.search(pattern_, out),
          '%s: refusal does not name the other user (/%s/): %r'
          % (what, pattern_, out.strip()))
    check(not mounted_at(mnt), '%s: left a mount behind' % what)
    return time.monotonic() - before


@test(timeout=90)
def mmp_uext4_holds_kernel_refused():
    """uext4 takes the block (the kernel's way: no wait on a clean block),
    keeps it moving, and the kernel refuses the image meanwhile; after
    unmount the block is clean and the kernel mounts and reads the files."""
    with workdir() as d:
        img = mmp_image(d + '/img')
        eq(read_mmp(img)['seq'], SEQ_CLEAN, 'fresh image')
        files = {'a': pattern(100000, 3), 'b': b'small', 'dir/c': b'x' * 5000}
        with Mount(img) as m:
            got = read_mmp(img)
            check(got['seq'] not in (SEQ_CLEAN, SEQ_FSCK),
                  'MMP block not taken: %r' % got)
            eq(got['node'], os.uname().nodename, 'node name in the block')
            check(img.endswith(got['dev']),
                  'device name %r is not the image %r' % (got['dev'], img))
            first = got['seq']
            wait_until(lambda: read_mmp(img)['seq'] != first, True,
                       'the MMP sequence moving', timeout=5)
            os.mkdir(m.path('dir'))
            for name, data in files.items():
                write_file(m.path(name), data)
            with LoopMount(img, d + '/kmnt') as k:
                rc, out = k.mount()
                check(rc != 0, 'the kernel mounted an image uext4 serves')
                dmesg = run(['dmesg']).stdout.decode(errors='replace')
                check(re.search(r'already active on another node', dmesg),
                      'no MMP refusal in dmesg')
            write_file(m.path('after'), b'still ours')
        eq(read_mmp(img)['seq'], SEQ_CLEAN, 'MMP block after unmount')
        fsck(img)
        for name, data in files.items():
            eq(debugfs_cat(img, '/' + name), data, 'image content of ' + name)
        with LoopMount(img, d + '/kmnt') as k:
            rc, out = k.mount()
            eq(rc, 0, 'kernel mount after uext4 released it: %s' % out)
            for name, data in files.items():
                eq(read_file(os.path.join(k.mnt, name)), data,
                   'kernel reads ' + name)
            eq(read_file(os.path.join(k.mnt, 'after')), b'still ours',
               'kernel reads after')
        eq(read_mmp(img)['seq'], SEQ_CLEAN, 'MMP block after kernel unmount')
        fsck(img)


@test(timeout=90)
def mmp_kernel_holds_uext4_refused():
    """The kernel has the image mounted through a loop device: uext4
    refuses it at once, before the MMP protocol (the loop mount is found
    from /sys/block/loop*/loop/backing_file), naming the device and mount
    point, and leaves the kernel's MMP block as the kernel keeps it. The
    MMP refusal of a live user is mmp_crafted_blocks' live node."""
    with workdir() as d:
        img = mmp_image(d + '/img')
        with LoopMount(img, d + '/kmnt') as k:
            rc, out = k.mount()
            eq(rc, 0, 'kernel mount: %s' % out)
            write_file(os.path.join(k.mnt, 'k'), b'kernel wrote this')
            dev = os.path.basename(k.dev)
            kernel_block = read_mmp(img)
            eq(kernel_block['dev'], dev, 'the kernel names its device in '
               'the MMP block')
            took = expect_refused(
                img, d + '/mnt',
                r"image '%s' is in use: the kernel has it mounted on '%s' "
                r"through %s" % (re.escape(img), re.escape(k.mnt),
                                 re.escape(k.dev)),
                'kernel holds the image')
            check(took < 5, 'refused after %.1f s: the MMP check time was '
                  'waited before the loop mount was seen' % took)
            got = read_mmp(img)
            eq(got['dev'], dev, 'MMP block device name after the refusal '
               '(uext4 wrote its own)')
            check(got['seq'] not in (SEQ_CLEAN, SEQ_FSCK),
                  'the kernel\'s MMP block is no longer live: %r' % got)
            eq(read_file(os.path.join(k.mnt, 'k')), b'kernel wrote this',
               'kernel mount still intact')
        eq(read_mmp(img)['seq'], SEQ_CLEAN, 'MMP block after kernel unmount')
        fsck(img)
        with Mount(img) as m:
            eq(read_file(m.path('k')), b'kernel wrote this', 'uext4 reads')
        fsck(img)


@test(timeout=60)
def mmp_image_opened_once():
    """The MMP block is written through the image's one open file: every
    descriptor the daemon has on the image is that file (kcmp), and after
    the path is renamed and another mmp image put there, the update thread
    keeps moving the block of the file it locked, never the new one's."""
    if SYS_KCMP is None:
        raise SkipFile('kcmp syscall number unknown here')
    with workdir() as d:
        img = mmp_image(d + '/img')
        with Mount(img) as m:
            pid = m.proc.pid
            want = os.stat(img)
            fds = []
            for fd in os.listdir('/proc/%d/fd' % pid):
                try:
                    st = os.stat('/proc/%d/fd/%s' % (pid, fd))
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                    fds.append(int(fd))
            check(fds, 'the daemon has no descriptor on the image')
            for fd in fds[1:]:
                r = _libc.syscall(SYS_KCMP, pid, pid, KCMP_FILE, fds[0], fd)
                check(r >= 0, 'kcmp: %s' % os.strerror(ctypes.get_errno()))
                check(r == 0, 'descriptors %d and %d are separate opens of '
                      'the image (%d in all)' % (fds[0], fd, len(fds)))
            os.rename(img, d + '/img.old')
            os.rename(mmp_image(d + '/img.new'), img)
            first = read_mmp(d + '/img.old')['seq']
            wait_until(lambda: read_mmp(d + '/img.old')['seq'] != first,
                       True, 'the locked file\'s MMP sequence moving',
                       timeout=5)
            eq(read_mmp(img)['seq'], SEQ_CLEAN, 'MMP block of the file now '
               'at the path')
            write_file(m.path('f'), b'served')
        eq(read_mmp(d + '/img.old')['seq'], SEQ_CLEAN,
           'MMP block after unmount')
        fsck(d + '/img.old')
        fsck(img)
        eq(debugfs_cat(d + '/img.old', '/f'), b'served', 'content')


@test(timeout=90)
def mmp_crafted_blocks():
    """Blocks written as other systems leave them: e2fsck at work (refused
    at once), a live node (refused after the check time), a node that
    stopped updating (taken over after waiting, as the kernel does)."""
    with workdir() as d:
        img = mmp_image(d + '/img', features=('mmp', '^metadata_csum'))
        mnt = d + '/mnt'
        write_mmp(img, SEQ_FSCK, 'fscknode', '/dev/sdq1')
        before = sha(img)
        took = expect_refused(img, mnt, r"e2fsck or tune2fs .* node "
                              r"'fscknode', device '/dev/sdq1'", 'fsck seq')
        check(took < 5, 'fsck seq: refusal took %.1f s' % took)
        eq(sha(img), before, 'refused image was modified')

        with OtherNode(img, 'othernode', '/dev/sdz9'):
            took = expect_refused(img, mnt, r"in use: mounted on node "
                                  r"'othernode', device '/dev/sdz9'",
                                  'live node')
        check(took >= 10, 'live node: refused after %.1f s' % took)
        # The other node stopped updating: stale, the block is taken over.
        stale = read_mmp(img)['seq']
        t0 = time.monotonic()
        with Mount(img, opts=[]) as m:
            took = time.monotonic() - t0
            got = read_mmp(img)
            check(got['seq'] != stale and got['node'] == os.uname().nodename,
                  'stale block not taken over: %r' % got)
            write_file(m.path('mine'), b'taken over')
        check(took >= 20, 'stale block taken over after %.1f s' % took)
        eq(read_mmp(img)['seq'], SEQ_CLEAN, 'MMP block after unmount')
        fsck(img)
        # Read-only mounts leave the block alone.
        write_mmp(img, SEQ_FSCK, 'fscknode', '/dev/sdq1')
        with Mount(img, opts=['ro']) as m:
            eq(read_file(m.path('mine')), b'taken over', 'read-only read')
            expect_errno(errno.EROFS, write_file, m.path('x'), b'')
        eq(read_mmp(img)['seq'], SEQ_FSCK, 'read-only mount wrote the block')
        write_mmp(img, SEQ_CLEAN, 'fscknode', '/dev/sdq1')
        fsck(img)


@test(timeout=90)
def mmp_remount():
    """remount,ro gives the block back (clean), as the kernel's remount
    does; remount,rw takes it again, and refuses while another node is
    live, the mount staying read-only."""
    with workdir() as d:
        img = mmp_image(d + '/img', features=('mmp', '^metadata_csum'))
        with Mount(img) as m:
            write_file(m.path('a'), b'before')
            check(read_mmp(img)['seq'] not in (SEQ_CLEAN, SEQ_FSCK),
                  'block not taken at mount')
            remount(m.mnt, 'ro')
            eq(read_mmp(img)['seq'], SEQ_CLEAN, 'block after remount,ro')
            expect_errno(errno.EROFS, write_file, m.path('b'), b'')
            remount(m.mnt, 'rw')
            got = read_mmp(img)
            check(got['seq'] not in (SEQ_CLEAN, SEQ_FSCK) and
                  got['node'] == os.uname().nodename,
                  'block not taken again at remount,rw: %r' % got)
            write_file(m.path('b'), b'after')
            remount(m.mnt, 'ro')
            with OtherNode(img, 'othernode', '/dev/sdz9'):
                rc, out = remount(m.mnt, 'rw', check_rc=False)
            check(rc != 0 and re.search(r"node 'othernode', device "
                                        r"'/dev/sdz9'", out),
                  'remount,rw beside a live node: rc %d: %r' % (rc, out))
            expect_errno(errno.EROFS, write_file, m.path('c'), b'')
            write_mmp(img, SEQ_CLEAN, 'othernode', '/dev/sdz9')
        fsck(img)
        with Mount(img, opts=['ro']) as m:
            eq(read_file(m.path('b')), b'after', 'written after remount')


def remount(mnt, mode, check_rc=True):
    p = subprocess.run([uext4test.UEXT4, mnt, '-o', 'remount,' + mode],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    out = p.stdout.decode(errors='replace')
    if check_rc and p.returncode != 0:
        raise TestFailure('remount,%s exited %d: %s' % (mode, p.returncode, out))
    return p.returncode, out


def setup():
    if os.geteuid() != 0:
        raise SkipFile('needs root for loop mounts')
    if subprocess.run(['losetup', '--find'], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        raise SkipFile('no loop devices')


if __name__ == '__main__':
    main(setup)

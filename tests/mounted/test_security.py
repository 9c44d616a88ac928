#!/usr/bin/env python3
"""Security and bad input (issue 11): what another local user, or a wrong
argument, must not be able to do through uext4.

- the image: only a regular file or a block device is opened (a FIFO used
  to hang the daemon), a block device or an image file the kernel has
  mounted is refused, the image is opened once and served through the
  descriptor that holds its lock, ro mounts share the lock, rw ones hold it
  alone, and a refusal names the holder; a holder that is not serving is
  waited for (bounded), so a mount right after an unmount succeeds;
- uidmap + allow_other: an unmapped owner shows as 65534, and the local
  user 65534 must not get the owner's rights (nor any other user);
- fakeroot + allow_other is refused; fakeroot alone still works;
- protected_hardlinks under no_default_permissions;
- a mount point that is already mounted gets a warning;
- a journal superblock with s_errno 0x80000000 (UBSan in the ASan build).
"""

import ctypes
import errno
import fcntl
import os
import re
import shutil
import stat
import subprocess
import sys
import time

from uext4test import (UEXT4, Mount, SkipFile, TestFailure, check, debugfs,
                       debugfs_cat, eq, errno_of, expect_errno_as, fsck,
                       fuse_unmount, inode_info, main, mkfs, mounted_at,
                       read_file, run, run_as, run_daemon, sb_field, test,
                       workdir, write_file)

NOBODY = (65534, 65534, [65534])
UA = (10001, 10001, [10001])    # the local user image root is mapped to
UB = (10002, 10002, [10002])    # another local user, outside the map
STRANGER = 1234                 # an image id outside the map
KCMP_FILE = 0
SYS_KCMP = {'x86_64': 312, 'aarch64': 272}.get(os.uname().machine)
_libc = ctypes.CDLL(None, use_errno=True)


def refused(img, mnt, opts=(), pattern=None, what='', timeout=30):
    rc, out = run_daemon(img, mnt, opts, timeout=timeout)
    check(rc != 0, '%s: uext4 did not refuse (rc %d): %s' % (what, rc, out))
    if pattern:
        check(re.search(pattern, out), '%s: message %r does not match %r'
              % (what, out.strip(), pattern))
    return out


def image_fds(pid, image):
    """The descriptors of process @pid open on @image."""
    want = os.stat(image)
    fds = []
    for fd in os.listdir('/proc/%d/fd' % pid):
        try:
            st = os.stat('/proc/%d/fd/%s' % (pid, fd))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            fds.append(int(fd))
    return fds


def same_open_file(pid, fd1, fd2):
    r = _libc.syscall(SYS_KCMP, pid, pid, KCMP_FILE, fd1, fd2)
    if r < 0:
        raise TestFailure('kcmp: %s' % os.strerror(ctypes.get_errno()))
    return r == 0


class LockHolder:
    """Another process holding an flock on @path (not a uext4)."""

    def __init__(self, path, exclusive=True):
        code = ('import fcntl,sys,time\n'
                'f=open(sys.argv[1],"rb")\n'
                'fcntl.flock(f,%s)\n'
                'print("locked",flush=True)\n'
                'sys.stdin.read()\n' % ('fcntl.LOCK_EX' if exclusive
                                       else 'fcntl.LOCK_SH'))
        self.proc = subprocess.Popen([sys.executable, '-c', code, path],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if line.strip() != b'locked':
            self.release()
            raise TestFailure('the lock holder did not start')

    @property
    def pid(self):
        return self.proc.pid

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        return False


# ------------------------------------------------------------ image file

@test
def fifo_and_char_device_refused():
    """A FIFO hung the daemon in open(2); now it and a character device
    are refused at once, naming what they are."""
    with workdir() as d:
        fifo = d + '/fifo'
        os.mkfifo(fifo)
        t0 = time.monotonic()
        refused(fifo, d + '/mnt', (), r"'%s' is a FIFO, not a regular file"
                % re.escape(fifo), 'FIFO image', timeout=10)
        refused(fifo, d + '/mnt', ['ro'], r'is a FIFO', 'FIFO image, ro',
                timeout=10)
        refused('/dev/zero', d + '/mnt', ['ro'],
                r"'/dev/zero' is a character device", 'character device',
                timeout=10)
        refused(d, d + '/mnt', (), r'is a directory', 'directory', timeout=10)
        check(time.monotonic() - t0 < 5, 'the refusals took %.1f s'
              % (time.monotonic() - t0))


def losetup(path):
    p = run(['losetup', '-f', '--show', path], check_rc=False)
    if p.returncode != 0:
        raise SkipFile('no loop device: %s' % p.stderr.decode().strip())
    return p.stdout.decode().strip()


@test
def block_device_mounted_by_kernel_refused():
    """A block device the kernel has mounted is refused with EBUSY named;
    once it is unmounted uext4 serves it, holding it O_EXCL so that the
    kernel cannot mount it meanwhile."""
    with workdir() as d:
        img = mkfs(d + '/img')
        kmnt = d + '/kmnt'
        os.mkdir(kmnt)
        dev = losetup(img)
        try:
            run(['mount', '-t', 'ext4', dev, kmnt])
            try:
                write_file(kmnt + '/k', b'kernel')
                refused(dev, d + '/mnt', (),
                        r"device '%s' is in use: it is mounted on '%s'"
                        % (re.escape(dev), re.escape(kmnt)), 'mounted device')
                refused(dev, d + '/mnt', ['ro'], r'mounted on', 'ro too')
            finally:
                run(['umount', kmnt])
            with Mount(dev, mnt=d + '/mnt') as m:
                eq(read_file(m.path('k')), b'kernel', 'file via uext4')
                write_file(m.path('u'), b'uext4')
                p = run(['mount', '-t', 'ext4', dev, kmnt], check_rc=False)
                if p.returncode == 0:
                    run(['umount', kmnt])
                check(p.returncode != 0,
                      'the kernel mounted a device uext4 serves')
        finally:
            run(['losetup', '-d', dev], check_rc=False)
        fsck(img)
        eq(debugfs_cat(img, '/u'), b'uext4', 'written through the device')


@test
def file_mounted_by_kernel_through_loop_refused():
    """An image file the kernel has mounted through a loop device (which
    takes no lock) is refused, naming the device and the mount point."""
    with workdir() as d:
        img = mkfs(d + '/img')
        kmnt = d + '/kmnt'
        os.mkdir(kmnt)
        run(['mount', '-t', 'ext4', '-o', 'loop', img, kmnt])
        try:
            write_file(kmnt + '/k', b'kernel')
            refused(img, d + '/mnt', (),
                    r"image '%s' is in use: the kernel has it mounted on '%s' "
                    r"through /dev/loop\d+" % (re.escape(img), re.escape(kmnt)),
                    'loop-mounted')
            refused(img, d + '/mnt', ['ro'], r'mounted on', 'ro too')
        finally:
            run(['umount', kmnt])
        with Mount(img) as m:
            eq(read_file(m.path('k')), b'kernel', 'served once unmounted')
        fsck(img)


@test
def image_opened_once():
    """Every descriptor the daemon has on the image is the one open file
    that holds the lock; renaming the path and putting another image there
    does not change which file is served."""
    if SYS_KCMP is None:
        raise SkipFile('kcmp syscall number unknown here')
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, mnt=d + '/m1') as m:
            fds = image_fds(m.proc.pid, img)
            check(fds, 'the daemon has no descriptor on the image')
            for fd in fds[1:]:
                check(same_open_file(m.proc.pid, fds[0], fd),
                      'descriptors %d and %d are separate opens of the image'
                      % (fds[0], fd))
            os.rename(img, d + '/img.old')
            os.rename(mkfs(d + '/img.new'), img)
            with Mount(img, mnt=d + '/m2') as m2:
                write_file(m2.path('new'), b'on the new image')
            write_file(m.path('old'), b'on the first image')
        fsck(img)
        fsck(d + '/img.old')
        eq(debugfs_cat(d + '/img.old', '/old'), b'on the first image',
           'the first daemon wrote to the file it locked')
        check(not re.search(r'\bold\b', debugfs(img, 'ls -l /')),
              'the first daemon wrote to the new file at its path')


@test
def lock_shared_for_ro_exclusive_for_rw():
    """Two ro mounts share the image; rw is refused while an ro mount has
    it and ro while rw has it, each naming the holder."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, mnt=d + '/w') as m:
            write_file(m.path('f'), b'data')
        with Mount(img, mnt=d + '/r1', opts=['ro']) as r1:
            with Mount(img, mnt=d + '/r2', opts=['ro']) as r2:
                eq(read_file(r2.path('f')), b'data', 'second ro mount')
                eq(read_file(r1.path('f')), b'data', 'first ro mount')
            refused(img, d + '/w', (),
                    r'in use: pid %d \(uext4\) holds its lock for reading'
                    % r1.proc.pid, 'rw while ro is mounted', timeout=8)
        with Mount(img, mnt=d + '/w') as m:
            refused(img, d + '/r1', ['ro'],
                    r'in use: pid %d \(uext4\) holds its lock for writing'
                    % m.proc.pid, 'ro while rw is mounted', timeout=8)
            refused(img, d + '/r2', (), r'pid %d .*for writing' % m.proc.pid,
                    'rw while rw is mounted', timeout=8)
        fsck(img)


@test
def lock_held_by_finishing_process_is_waited_for():
    """A lock held by a process that is not serving a mount (as a daemon
    still writing back after its unmount) is waited for, with a message
    after a second naming it, and the mount then goes ahead. The daemon's
    message reaches the terminal of whoever started it."""
    with workdir() as d:
        img = mkfs(d + '/img')
        mnt = d + '/mnt'
        os.mkdir(mnt)
        with LockHolder(img) as h:
            t0 = time.monotonic()
            p = subprocess.Popen([UEXT4, img, mnt], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            try:
                time.sleep(2.5)   # the holder's work, not a readiness wait
                check(not mounted_at(mnt), 'mounted while the lock was held')
                h.release()
                out, err = p.communicate(timeout=20)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            waited = time.monotonic() - t0
            try:
                eq(p.returncode, 0, 'uext4 exit status (%s)' % err.decode())
                check(mounted_at(mnt), 'not mounted after the lock was freed')
                check(re.search(r'pid %d \(python[0-9.]*\) holds its lock '
                                r'for writing.*waiting up to 10 s' % h.pid,
                                err.decode()),
                      'no waiting message on stderr: %r' % err.decode())
                check(waited >= 2.5, 'mounted after %.1f s' % waited)
                write_file(os.path.join(mnt, 'f'), b'after the wait')
            finally:
                fuse_unmount(mnt)
        wait_lock_free(img)
        fsck(img)
        eq(debugfs_cat(img, '/f'), b'after the wait', 'data written')


@test
def lock_wait_is_bounded():
    """A holder that does not let go is waited for 10 s, then named."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with LockHolder(img, exclusive=False) as h:
            t0 = time.monotonic()
            refused(img, d + '/mnt', (),
                    r'in use: pid %d \(python[0-9.]*\) holds its lock for reading'
                    % h.pid, 'rw against a shared lock', timeout=20)
            took = time.monotonic() - t0
            check(9.5 <= took < 15, 'refused after %.1f s' % took)
            # A shared holder does not stop a read-only mount.
            with Mount(img, opts=['ro']) as m:
                check(os.path.isdir(m.path('lost+found')), 'ro mount')
        fsck(img)


def wait_lock_free(img, timeout=30):
    """Wait until no uext4 holds @img (a detached daemon's exit is not
    ours to wait for; its lock goes when the image is final)."""
    deadline = time.monotonic() + timeout
    with open(img, 'rb') as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                check(time.monotonic() < deadline, '%s still locked after '
                      '%d s' % (img, timeout))
                time.sleep(0.05)


@test
def remount_right_after_unmount():
    """Issue 12: fusermount3 -u returns before the old daemon has written
    the image back and let go of its lock; the next mount waits for it
    instead of failing. 30 mount/write/unmount cycles, no pause."""
    with workdir() as d:
        img = mkfs(d + '/img')
        mnt = d + '/mnt'
        os.mkdir(mnt)
        data = [os.urandom(256 << 10) for _ in range(30)]
        for i, blob in enumerate(data):
            p = subprocess.run([UEXT4, img, mnt], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            check(p.returncode == 0, 'cycle %d: mount failed: %s'
                  % (i, p.stderr.decode().strip()))
            try:
                write_file(os.path.join(mnt, 'f%d' % i), blob)
            finally:
                u = subprocess.run(['fusermount3', '-u', mnt],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=30)
            check(u.returncode == 0, 'cycle %d: fusermount3 -u: %s'
                  % (i, u.stdout.decode()))
        wait_lock_free(img)
        fsck(img)
        for i, blob in enumerate(data):
            eq(debugfs_cat(img, '/f%d' % i), blob, 'f%d' % i)


# ------------------------------------------------------------ id maps

def op_open_read(p):
    with open(p, 'rb') as f:
        return f.read()


def op_open_write(p):
    with open(p, 'r+b') as f:
        f.write(b'X')


def op_open_append(p):
    with open(p, 'ab') as f:
        f.write(b'appended')


def op_utime_now(p):
    os.utime(p, None)


def op_utime_explicit(p):
    os.utime(p, (1, 1))


def op_getxattr(p):
    return os.getxattr(p, 'user.k')


def op_setxattr(p):
    os.setxattr(p, 'user.k', b'changed')


def build_idmap_image(d):
    """Files owned by an image id outside the map (STRANGER), by 0xffffffff,
    and a sticky directory, all made on a plain mount as root."""
    img = mkfs(d + '/img')
    with Mount(img, mnt=d + '/setup') as m:
        os.chmod(m.mnt, 0o755)
        for name, mode in (('secret', 0o600), ('grp', 0o060),
                           ('maxid', 0o600), ('readable', 0o604)):
            write_file(m.path(name), b'secret ' + name.encode(), mode)
            os.chmod(m.path(name), mode)
            os.setxattr(m.path(name), 'user.k', b'v')
        os.chown(m.path('secret'), STRANGER, STRANGER)
        os.chown(m.path('grp'), 0, STRANGER)
        os.chown(m.path('readable'), STRANGER, STRANGER)
        os.mkdir(m.path('pub'))
        os.chmod(m.path('pub'), 0o1777)
        write_file(m.path('pub', 'victim'), b'v', 0o666)
        os.chmod(m.path('pub', 'victim'), 0o666)
        os.chown(m.path('pub', 'victim'), STRANGER, STRANGER)
    # uid/gid 0xffffffff cannot be set through chown(2).
    for field in ('uid', 'gid'):
        debugfs(img, 'sif /maxid %s 0xffffffff' % field, write=True)
    check(re.search(r'User:\s+-1\s+Group:\s+-1', debugfs(img, 'stat /maxid')),
          'debugfs did not set the ids of /maxid to 0xffffffff')
    fsck(img)
    return img


@test
def uidmap_unmapped_owner_gives_no_rights():
    """uidmap + allow_other: files whose owner or group is outside the map
    show as 65534. The local user 65534 (and any other user) must get no
    owner or group rights on them, for every kind of operation."""
    with workdir() as d:
        img = build_idmap_image(d)
        opts = ['allow_other', 'uidmap=0:%d' % UA[0], 'gidmap=0:%d' % UA[1]]
        with Mount(img, opts=opts) as m:
            p = m.path
            st = os.stat(p('secret'))
            eq((st.st_uid, st.st_gid), (65534, 65534), 'unmapped ids shown')
            for who in (NOBODY, UB):
                for f in ('secret', 'maxid'):
                    expect_errno_as(who, errno.EACCES, op_open_read, p(f))
                    expect_errno_as(who, errno.EACCES, op_open_write, p(f))
                    expect_errno_as(who, errno.EACCES, op_open_append, p(f))
                    expect_errno_as(who, errno.EACCES, os.truncate, p(f), 0)
                    expect_errno_as(who, errno.EPERM, os.chmod, p(f), 0o666)
                    # To ids the map can store (the caller's own cannot be).
                    expect_errno_as(who, errno.EPERM, os.chown, p(f),
                                    UA[0], -1)
                    expect_errno_as(who, errno.EPERM, os.chown, p(f),
                                    -1, UA[1])
                    expect_errno_as(who, errno.EACCES, op_utime_now, p(f))
                    expect_errno_as(who, errno.EPERM, op_utime_explicit,
                                    p(f))
                    expect_errno_as(who, errno.EACCES, op_getxattr, p(f))
                    expect_errno_as(who, errno.EACCES, op_setxattr, p(f))
                # The group class: 'grp' is 0:STRANGER, mode 060.
                expect_errno_as(who, errno.EACCES, op_open_read, p('grp'))
                expect_errno_as(who, errno.EACCES, op_open_write, p('grp'))
                expect_errno_as(who, errno.EPERM, os.unlink,
                                p('pub', 'victim'))
                expect_errno_as(who, errno.EPERM, os.rename,
                                p('pub', 'victim'), p('pub', 'moved'))
                # The other class still applies: not a blanket refusal.
                eq(run_as(*who, op_open_read, p('readable')),
                   b'secret readable', 'other-readable file')
            # The mapped owner keeps its rights.
            run_as(*UA, os.chmod, p('grp'), 0o640)
            eq(run_as(*UA, op_open_read, p('grp')), b'secret grp',
               'image root (local UA) reads its file after a chmod')
        fsck(img)
        eq(debugfs_cat(img, '/secret'), b'secret secret', 'secret untouched')
        eq(debugfs_cat(img, '/maxid'), b'secret maxid', 'maxid untouched')
        info = inode_info(img, '/secret')
        eq(info['mode'] & 0o7777, 0o600, 'secret mode untouched')
        check(re.search(r'Mode:\s+0600\b', debugfs(img, 'stat /maxid')),
              'maxid mode changed')
        check('victim' in debugfs(img, 'ls /pub'), 'victim deleted')


# ------------------------------------------------------------ hard links

# UA's files in a world-writable directory, and what the kernel's
# may_linkat() answers another user under fs.protected_hardlinks=1.
LINK_SOURCES = (
    ('secret', 0o600, 0),              # not readable by UB
    ('readonly', 0o644, 0),            # readable, not writable
    ('rw', 0o666, 0),                  # safe: UB may read and write it
    ('suid', 0o4666, 0),               # setuid
    ('sgid_x', 0o2676, 0),             # setgid and group-executable
    ('sgid_nox', 0o2666, 0),           # setgid, not executable: safe
    ('fifo', 0o666, stat.S_IFIFO),     # not a regular file
)
LINK_WANT = {'secret': errno.EPERM, 'readonly': errno.EPERM, 'rw': 0,
             'suid': errno.EPERM, 'sgid_x': errno.EPERM, 'sgid_nox': 0,
             'fifo': errno.EPERM}


def make_link_sources(top):
    d = os.path.join(top, 'd')
    os.mkdir(d)
    os.chmod(d, 0o777)
    for name, mode, kind in LINK_SOURCES:
        p = os.path.join(d, name)
        if kind == stat.S_IFIFO:
            os.mkfifo(p)
        else:
            write_file(p, b'data of ' + name.encode())
        os.chown(p, UA[0], UA[1])
        os.chmod(p, mode)


def try_links(top):
    d = os.path.join(top, 'd')
    return {name: errno_of(os.link, os.path.join(d, name),
                           os.path.join(d, 'link_' + name))
            for name, _, _ in LINK_SOURCES}


@test
def protected_hardlinks():
    """Under no_default_permissions the daemon applies the host's
    fs.protected_hardlinks as the kernel's may_linkat() does (the VFS
    itself cannot: it asks no read/write permission of a FUSE file
    system that checks its own). Compared with a kernel loop mount."""
    with open('/proc/sys/fs/protected_hardlinks') as f:
        if f.read().strip() != '1':
            raise SkipFile('fs.protected_hardlinks is not 1 on this host')
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, mnt=d + '/setup') as m:
            os.chmod(m.mnt, 0o755)
            make_link_sources(m.mnt)
        shutil.copyfile(img, d + '/kimg')
        kmnt = d + '/kmnt'
        os.mkdir(kmnt)
        run(['mount', '-t', 'ext4', '-o', 'loop', d + '/kimg', kmnt])
        try:
            kernel = run_as(*UB, try_links, kmnt)
            owner = run_as(*UA, errno_of, os.link, kmnt + '/d/secret',
                           kmnt + '/d/own_link')
        finally:
            run(['umount', kmnt])
        eq(kernel, LINK_WANT, 'the kernel on ext4 (reference)')
        eq(owner, 0, 'the kernel: the owner links its own 0600 file')
        for opts in (['allow_other', 'no_default_permissions'],
                     ['allow_other']):
            with Mount(img, opts=opts) as m:
                got = run_as(*UB, try_links, m.mnt)
                eq(run_as(*UA, errno_of, os.link, m.path('d', 'secret'),
                          m.path('d', 'own_link')), 0,
                   '%s: the owner links its own 0600 file' % opts)
                for name in LINK_WANT:
                    if got[name] == 0:
                        os.unlink(m.path('d', 'link_' + name))
                os.unlink(m.path('d', 'own_link'))
            eq(got, kernel, 'uext4 -o %s against the kernel' % ','.join(opts))
        fsck(img)
        fsck(d + '/kimg')


# ------------------------------------------------------------ fakeroot

@test
def fakeroot_with_allow_other_refused():
    with workdir() as d:
        img = mkfs(d + '/img')
        refused(img, d + '/mnt', ['allow_other', 'fakeroot'],
                r"'fakeroot' and 'allow_other'.*every local user root",
                'fakeroot,allow_other')
        refused(img, d + '/mnt', ['fakeroot', 'no_default_permissions',
                                  'allow_other'], r'fakeroot',
                'fakeroot,no_default_permissions,allow_other')
        fsck(img)


# ------------------------------------------------------------ journal

def killed_with_synced_file(img, data):
    """Mount @img, write and fsync /synced, SIGKILL the daemon: the image
    then needs recovery."""
    m = Mount(img, expect_clean_exit=False)
    with m:
        fd = os.open(m.path('synced'), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        m.proc.kill()
        m.proc.wait(30)
        fuse_unmount(m.mnt)
    check('needs_recovery' in sb_field(img, 'Filesystem features'),
          'the killed daemon left no journal to recover')


@test
def ro_mount_of_image_needing_recovery():
    """The image is served through its read-only descriptor; the journal
    of an image that needs recovery is still replayed for an ro mount."""
    with workdir() as d:
        img = mkfs(d + '/img')
        killed_with_synced_file(img, b'synced data')
        with Mount(img, opts=['ro']) as m:
            eq(read_file(m.path('synced')), b'synced data', 'recovered file')
        fsck(img)


@test
def journal_abort_errno_int_min():
    """An image that needs recovery, whose journal superblock records an
    abort with s_errno 0x80000000 (negating it as an int is undefined:
    UBSan stops the ASan build's daemon there): the journal is replayed,
    the file system marked as having errors, and the mount refused for
    them; after e2fsck the fsync'd data is there."""
    with workdir() as d:
        # No metadata_csum: the journal superblock then has no checksum.
        img = mkfs(d + '/img', features=('^metadata_csum',))
        killed_with_synced_file(img, b'fsynced before the kill')
        blk = int(re.search(r'(\d+)\s*$',
                            debugfs(img, 'bmap <8> 0')).group(1))
        check(blk > 0, 'no journal superblock block')
        with open(img, 'r+b') as f:
            f.seek(blk * 4096 + 32)
            f.write(b'\x80\x00\x00\x00')
        out = refused(img, d + '/mnt', (),
                      r'has errors recorded; run .e2fsck -fy', 'aborted journal')
        check('runtime error' not in out, 'UBSan: %s' % out)
        check('needs_recovery' not in sb_field(img, 'Filesystem features'),
              'the journal was not replayed')
        check('with errors' in sb_field(img, 'Filesystem state'),
              'the abort was not recorded as errors')
        p = run(['e2fsck', '-fy', img], check_rc=False)
        check(p.returncode in (0, 1), 'e2fsck -fy exited %d' % p.returncode)
        fsck(img)
        eq(debugfs_cat(img, '/synced'), b'fsynced before the kill',
           'replayed data')


# ------------------------------------------------------------ stacking

@test
def mount_on_mount_point_warns():
    """The kernel stacks mounts; uext4 mounts but says what it hides."""
    with workdir() as d:
        img1 = mkfs(d + '/img1')
        img2 = mkfs(d + '/img2')
        mnt = d + '/mnt'
        with Mount(img1, mnt=mnt) as m:
            write_file(m.path('one'), b'1')
            p = subprocess.run([UEXT4, img2, mnt], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=30)
            err = p.stderr.decode()
            try:
                eq(p.returncode, 0, 'stacked mount exit status (%s)' % err)
                check(re.search(r"warning: '%s' is already a mount point "
                                r"\(%s, type fuse.uext4\)" % (
                                    re.escape(mnt), re.escape(img1)), err),
                      'no warning: %r' % err)
                check(not os.path.exists(m.path('one')),
                      'the second mount is not on top')
            finally:
                if p.returncode == 0:
                    fuse_unmount(mnt)
            eq(read_file(m.path('one')), b'1', 'first mount again')
        for img in (img1, img2):
            wait_lock_free(img)
            fsck(img)


main()

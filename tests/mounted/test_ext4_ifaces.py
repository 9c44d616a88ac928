#!/usr/bin/env python3
"""Interfaces of ext4 that the standard suites use (issue 12), each compared
with the kernel's ext4 on a loop mount of a copy of the same fresh image:
the mount options mount(8) and fstests pass, with the atime modes
behaving as the kernel's.

Runs only as root where `mount -o loop` works, else exits 77.  Only freshly
made (and fsck-clean) images are ever loop-mounted."""

import ctypes
import os
import re
import shutil
import signal
import stat
import subprocess
import time

from uext4test import require_kernel_loop_mount
from uext4test import kernel_mount, recorder
from uext4test import (Mount, SkipFile, TestFailure, check, debugfs, eq,
                       ename, fsck, fuse_unmount, main, mkfs, renameat2, run,
                       run_as, sb_field, test, wait_until, workdir)


def on_both(d, fn, kopts=(), uopts=None, features=(), size='32M'):
    """Run fn(root) on the kernel's ext4 and on uext4, over copies of one
    fresh image; return both results and fsck both images."""
    kimg = mkfs(d + '/k.img', size=size, features=features)
    uimg = d + '/u.img'
    shutil.copyfile(kimg, uimg)
    with kernel_mount(kimg, d + '/kmnt', kopts) as kmnt:
        kres = fn(kmnt)
    with Mount(uimg, d + '/umnt', opts=kopts if uopts is None else uopts) as m:
        ures = fn(m.mnt)
    fsck(kimg)
    fsck(uimg)
    return kres, ures, kimg, uimg


# ---------------------------------------------------------------- atime

def atime_ns(path):
    return os.stat(path).st_atime_ns


def tick():
    # Both file systems stamp times from a clock that may be coarse (the
    # kernel's jiffies): wait for it to move so an update shows.
    time.sleep(0.03)


def read_all(path):
    with open(path, 'rb') as f:
        f.read()


def atime_script(root):
    """Which accesses moved atime, as a list of (step, moved)."""
    f = os.path.join(root, 'f')
    d = os.path.join(root, 'd')
    with open(f, 'wb') as fh:
        fh.write(b'x' * 5000)
    os.mkdir(d)
    open(os.path.join(d, 'e'), 'w').close()
    old = time.time() - 3600
    os.utime(f, (old - 10, old))   # atime before mtime
    os.utime(d, (old - 10, old))
    os.sync()
    out = []
    for step, fn, path in [('read after change', read_all, f),
                           ('read again', read_all, f),
                           ('read a third time', read_all, f),
                           ('list dir after change', os.listdir, d),
                           ('list dir again', os.listdir, d)]:
        before = atime_ns(path)
        tick()
        fn(path)
        out.append((step, atime_ns(path) != before))
    return out


def atime_case(opts):
    with workdir() as d:
        k, u, _, _ = on_both(d, atime_script, kopts=opts)
        eq(u, k, 'atime updates with -o %s (uext4 vs kernel)'
           % (','.join(opts) or 'defaults'))
        return k


@test
def atime_relatime_default():
    k = atime_case([])
    # The kernel's answer itself: updated once after a change, then not.
    check(k[0][1] and not k[1][1], 'kernel relatime reference: %r' % k)


@test
def atime_strictatime():
    k = atime_case(['strictatime'])
    check(all(moved for _, moved in k), 'kernel strictatime reference: %r' % k)


@test
def atime_noatime():
    k = atime_case(['noatime'])
    check(not any(moved for _, moved in k), 'kernel noatime reference: %r' % k)


@test
def atime_nodiratime_strictatime():
    k = atime_case(['strictatime', 'nodiratime'])
    check(k[1][1] and not k[3][1], 'kernel nodiratime reference: %r' % k)


@test
def atime_relatime_explicit_and_lazytime():
    atime_case(['relatime', 'lazytime'])


# ------------------------------------------------------------- options

# What fstests and fstab lines pass for ext4: every one must mount.
SUITE_OPTIONS = [
    ['nodiratime'], ['strictatime', 'lazytime'], ['subtype='],
    ['rw', 'nosuid', 'nodev', 'noexec', 'relatime', 'async', 'dirsync'],
    ['defaults', 'auto', 'nouser', '_netdev', 'nofail', 'x-systemd.automount'],
    ['data=ordered', 'commit=5', 'barrier=1', 'nobarrier', 'errors=continue',
     'journal_checksum', 'discard', 'nodelalloc', 'inode_readahead_blks=32',
     'stripe=4', 'max_batch_time=15000', 'min_batch_time=0',
     'journal_ioprio=3', 'auto_da_alloc', 'noauto_da_alloc'],
    ['acl', 'user_xattr', 'i_version', 'dax=never', 'init_itable=10',
     'noinit_itable', 'block_validity', 'resuid=0', 'resgid=0', 'usrquota',
     'grpquota', 'prjquota', 'quota', 'noquota', 'sb=1'],
]


@test
def suite_options_mount():
    with workdir() as d:
        img = mkfs(d + '/img', size='16M')
        for opts in SUITE_OPTIONS:
            with Mount(img, d + '/mnt', opts=opts) as m:
                with open(m.path('probe'), 'wb') as f:
                    f.write(b'ok')
                eq(open(m.path('probe'), 'rb').read(), b'ok',
                   'probe file with -o %s' % ','.join(opts))
                os.unlink(m.path('probe'))
            log = m.log()
            for o in opts:
                name = o.split('=')[0]
                if name in ('data', 'discard', 'lazytime', 'usrquota'):
                    eq(log.count("mount option '%s'" % name), 1,
                       'warnings naming %s in %r' % (name, log))
            fsck(img)


@test
def grpid_kernel():
    """grpid: a new file takes its directory's group (kernel reference)."""
    def script(root):
        d = os.path.join(root, 'g')
        os.mkdir(d)
        os.chown(d, 0, 4242)
        open(os.path.join(d, 'f'), 'w').close()
        os.mkdir(os.path.join(d, 'sub'))
        return [(n, os.stat(os.path.join(d, n)).st_gid,
                 os.stat(os.path.join(d, n)).st_mode & 0o2000)
                for n in ('f', 'sub')]
    for opts in (['grpid'], ['nogrpid']):
        with workdir() as d:
            k, u, _, _ = on_both(d, script, kopts=opts)
            eq(u, k, 'groups of new files with -o %s' % opts[0])


# ----------------------------------------------------- RENAME_WHITEOUT

RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4


def try_op(fn, *args):
    try:
        fn(*args)
        return 'ok'
    except OSError as e:
        return ename(e.errno)


def node(path):
    try:
        st = os.lstat(path)
    except OSError as e:
        return ename(e.errno)
    return (oct(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev),
            st.st_uid, st.st_gid, st.st_nlink, st.st_size)


def whiteout_script(root):
    P = lambda *p: os.path.join(root, *p)
    os.mkdir(P('a'))
    os.mkdir(P('b'))
    os.mkdir(P('sg'))
    os.chown(P('sg'), 0, 777)
    os.chmod(P('sg'), 0o2777)
    for n in ('a/f', 'a/g', 'a/over', 'b/over', 'sg/f'):
        with open(P(n), 'wb') as f:
            f.write(n.encode())
    os.mkdir(P('a', 'sub'))
    with open(P('a', 'sub', 'inner'), 'wb') as f:
        f.write(b'inner')
    out = []

    def r(what, old, new, flags, *show):
        res = try_op(renameat2, P(old), P(new), flags)
        out.append((what, res) + tuple(node(P(x)) for x in show))

    r('file to new name', 'a/f', 'a/f2', RENAME_WHITEOUT, 'a/f', 'a/f2')
    r('file over a file, other dir', 'a/over', 'b/over', RENAME_WHITEOUT,
      'a/over', 'b/over')
    r('noreplace onto a file', 'a/g', 'b/over',
      RENAME_WHITEOUT | RENAME_NOREPLACE, 'a/g', 'b/over')
    r('noreplace to new', 'a/g', 'b/g', RENAME_WHITEOUT | RENAME_NOREPLACE,
      'a/g', 'b/g')
    r('with exchange', 'a/f2', 'b/g', RENAME_WHITEOUT | RENAME_EXCHANGE,
      'a/f2', 'b/g')
    r('missing source', 'a/nothing', 'a/x', RENAME_WHITEOUT, 'a/x')
    r('directory to other dir', 'a/sub', 'b/sub', RENAME_WHITEOUT,
      'a/sub', 'b/sub', 'b/sub/inner', 'a', 'b')
    r('onto a whiteout', 'b/g', 'a/f', RENAME_WHITEOUT, 'a/f', 'b/g')
    r('setgid dir', 'sg/f', 'sg/f2', RENAME_WHITEOUT, 'sg/f', 'sg/f2')
    # As a user: whiteouts need no privilege since Linux 5.8.
    os.chmod(P('a'), 0o777)
    out.append(('as a user',) + (run_as(1000, 1000, [], lambda: try_op(
        renameat2, P('a', 'f2'), P('a', 'f3'), RENAME_WHITEOUT)),
        node(P('a', 'f2')), node(P('a', 'f3'))))
    out.append(('listing a', sorted(os.listdir(P('a')))))
    out.append(('listing b', sorted(os.listdir(P('b')))))
    return out


@test
def rename_whiteout_kernel():
    with workdir() as d:
        # allow_other: one step runs as an ordinary user.
        k, u, kimg, uimg = on_both(d, whiteout_script,
                                   uopts=['allow_other'])
        eq(u, k, 'RENAME_WHITEOUT results (uext4 vs kernel)')
        check(k[0][1] == 'ok' and k[0][2][0] == oct(0o20000),
              'kernel reference has no whiteout: %r' % (k[0],))
        # On disk, what e2fsck and debugfs see: a character device 0/0.
        for img in (kimg, uimg):
            out = debugfs(img, 'stat a/f2')
            check('Type: character special' in out,
                  'debugfs on %s: a/f2 is not a device: %s' % (img, out))


@test
def rename_whiteout_overlayfs():
    """overlayfs over a uext4 upper directory, if the kernel allows FUSE
    as an upper: deleting a lower file leaves a whiteout in upper."""
    with open('/proc/filesystems') as f:
        if not any(line.split()[-1:] == ['overlay'] for line in f):
            subprocess.run(['modprobe', 'overlay'], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    with open('/proc/filesystems') as f:
        if not any(line.split()[-1:] == ['overlay'] for line in f):
            print('note: no overlayfs in this kernel; renameat2 tested alone')
            return
    with workdir() as d:
        img = mkfs(d + '/img', size='16M')
        low = d + '/lower'
        os.makedirs(low + '/dir')
        for n in ('keep', 'gone', 'dir/x'):
            with open(os.path.join(low, n), 'w') as f:
                f.write(n)
        with Mount(img, d + '/mnt') as m:
            os.mkdir(m.path('upper'))
            os.mkdir(m.path('work'))
            ov = d + '/ov'
            os.mkdir(ov)
            p = subprocess.run(
                ['mount', '-t', 'overlay', 'overlay', '-o',
                 'lowerdir=%s,upperdir=%s,workdir=%s'
                 % (low, m.path('upper'), m.path('work')), ov],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            # overlayfs checks its upper for RENAME_WHITEOUT (and more) at
            # mount: where the kernel has overlayfs, refusing is a failure.
            check(p.returncode == 0, 'overlayfs refuses the uext4 upper: %s'
                  % p.stdout.decode(errors='replace').strip())
            try:
                os.unlink(ov + '/gone')
                os.rename(ov + '/keep', ov + '/kept')
                eq(sorted(os.listdir(ov)), ['dir', 'kept'], 'overlay listing')
                eq(open(ov + '/kept').read(), 'keep', 'renamed lower file')
            finally:
                run(['umount', ov])
            st = os.lstat(m.path('upper', 'gone'))
            eq((stat.S_ISCHR(st.st_mode), st.st_rdev), (True, 0),
               'upper/gone is a whiteout')
            st = os.lstat(m.path('upper', 'keep'))
            eq((stat.S_ISCHR(st.st_mode), st.st_rdev), (True, 0),
               'upper/keep is a whiteout')
        fsck(img)


# ------------------------------------------------------------ O_TMPFILE

_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH = -100, 0x400, 0x1000


def link_fd(fd, new, empty_path=False):
    """linkat(2) of an open file: by AT_EMPTY_PATH, or through
    /proc/self/fd with AT_SYMLINK_FOLLOW (os.link would link the proc
    symlink itself)."""
    if empty_path:
        r = _libc.linkat(fd, b'', AT_FDCWD, os.fsencode(new), AT_EMPTY_PATH)
    else:
        r = _libc.linkat(AT_FDCWD, b'/proc/self/fd/%d' % fd, AT_FDCWD,
                         os.fsencode(new), AT_SYMLINK_FOLLOW)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), new)



@test(timeout=180)
def tmpfiles_closed_in_any_order():
    """Files unlinked while open (O_TMPFILE) are on the orphan list
    (s_last_orphan through i_dtime) until closed; closing them in any
    order takes each off the list by its back link (orphan.c), the oldest
    first being the walk's worst case. 1,500 open at once with a block
    each, the older half closed oldest first, then opens and closes
    shuffled: every inode and block comes back (statvfs), the list is
    empty after the unmount, its release at close found nothing wrong with
    it (which it would repair and log), e2fsck -fn clean."""
    import random
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        raise SkipFile('RLIMIT_NOFILE hard limit %d' % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    rnd = random.Random(531)
    try:
        with workdir() as d:
            img = mkfs(d + '/img', size='64M')
            with Mount(img) as m:
                free0 = os.statvfs(m.mnt)
                fds = []
                try:
                    for i in range(1500):
                        fds.append(os.open(m.mnt, os.O_TMPFILE | os.O_RDWR, 0o600))
                        os.write(fds[-1], b'%d' % i * 400)
                    for fd in fds[:750]:
                        os.close(fd)
                    fds = fds[750:]
                    for i in range(3000):
                        if fds and rnd.random() < 0.5:
                            os.close(fds.pop(rnd.randrange(len(fds))))
                        else:
                            fds.append(os.open(m.mnt, os.O_TMPFILE | os.O_RDWR, 0o600))
                            os.write(fds[-1], b'x' * 5000)
                finally:
                    for fd in fds:
                        os.close(fd)
                # The last close's RELEASE is asynchronous.
                wait_until(lambda: (os.statvfs(m.mnt).f_ffree, os.statvfs(m.mnt).f_bfree),
                           (free0.f_ffree, free0.f_bfree), 'free inodes and blocks')
            check('orphan list damaged' not in m.log(), 'the list went wrong: %s' % m.log())
            eq(sb_field(img, 'First orphan inode'), None, 'the orphan list after the unmount')
            fsck(img)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def tmpfile_script(root):
    P = lambda *p: os.path.join(root, *p)
    out = []

    r = recorder(out, fail=ename)

    def fst(fd):
        st = os.fstat(fd)
        return (oct(st.st_mode), st.st_nlink, st.st_size, st.st_uid,
                st.st_gid)

    os.mkdir(P('d'))
    os.mkdir(P('sg'))
    os.chown(P('sg'), 0, 555)
    os.chmod(P('sg'), 0o2777)
    before = os.stat(P('d')).st_mtime_ns
    tick()
    # Linked by AT_EMPTY_PATH, then by /proc/self/fd, then by name.
    fd = os.open(P('d'), os.O_TMPFILE | os.O_RDWR, 0o640)
    os.write(fd, b'first tmpfile')
    r('fstat unnamed', fst, fd)
    r('listing while unnamed', lambda: sorted(os.listdir(P('d'))))
    r('dir mtime unchanged', lambda: os.stat(P('d')).st_mtime_ns == before)
    r('link onto an existing name', link_fd, fd, P('sg'), True)
    r('link by AT_EMPTY_PATH', link_fd, fd, P('d', 'a'), True)
    r('fstat named', fst, fd)
    r('second link', link_fd, fd, P('d', 'b'))
    r('content', lambda: open(P('d', 'b'), 'rb').read())
    os.close(fd)
    # O_EXCL: never linkable.
    fd = os.open(P('d'), os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o600)
    os.write(fd, b'excl')
    r('link an O_EXCL tmpfile', link_fd, fd, P('d', 'c'))
    os.close(fd)
    # Closed without a name: freed (the free counts are compared later).
    fd = os.open(P('d'), os.O_TMPFILE | os.O_WRONLY, 0o600)
    os.write(fd, b'z' * 300000)
    r('big unnamed', fst, fd)
    os.close(fd)
    # Unlinked again after its link: no way back.
    fd = os.open(P('d'), os.O_TMPFILE | os.O_RDWR, 0o600)
    r('link', link_fd, fd, P('d', 'e'))
    os.unlink(P('d', 'e'))
    r('relink after unlink', link_fd, fd, P('d', 'e2'))
    os.close(fd)
    # setgid directory, umask, and refusals.
    old = os.umask(0o027)
    fd = os.open(P('sg'), os.O_TMPFILE | os.O_RDWR, 0o777)
    os.umask(old)
    r('setgid dir, umask 027', fst, fd)
    os.close(fd)
    r('on a file', os.open, P('d', 'a'), os.O_TMPFILE | os.O_RDWR, 0o600)
    r('read-only', os.open, P('d'), os.O_TMPFILE | os.O_RDONLY, 0o600)
    os.chmod(P('d'), 0o755)
    r('as a user without write permission', lambda: run_as(
        1000, 1000, [], lambda: try_op(os.open, P('d'),
                                       os.O_TMPFILE | os.O_RDWR, 0o600)))
    r('as a user in a setgid dir', lambda: run_as(
        1000, 1000, [], tmpfile_owner, P('sg')))
    r('listing', lambda: sorted(os.listdir(P('d'))))
    return out


def tmpfile_owner(d):
    fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o644)
    try:
        link_fd(fd, os.path.join(d, 'mine'))
        st = os.stat(os.path.join(d, 'mine'))
        return (oct(st.st_mode), st.st_uid, st.st_gid, st.st_nlink)
    finally:
        os.close(fd)


def tmpfile_case(uopts):
    with workdir() as d:
        k, u, kimg, uimg = on_both(d, tmpfile_script, uopts=uopts)
        eq(u, k, 'O_TMPFILE results with -o %s (uext4 vs kernel)'
           % ','.join(uopts))
        for field in ('Free inodes', 'Free blocks'):
            eq(sb_field(uimg, field), sb_field(kimg, field),
               '%s after unmount (uext4 vs kernel)' % field)


@test
def tmpfile_kernel():
    tmpfile_case(['allow_other'])


@test
def tmpfile_kernel_counted_opens():
    """The daemon checks permissions and counts opens: the unnamed file
    goes at its RELEASE rather than its FORGET."""
    tmpfile_case(['allow_other', 'no_default_permissions'])


@test
def tmpfile_daemon_killed():
    """A daemon killed with an unnamed file open leaves it on the orphan
    list, as ext4 after a crash: e2fsck and the next mount free it."""
    with workdir() as d:
        img = mkfs(d + '/img', size='32M')
        fresh_inodes = sb_field(img, 'Free inodes')
        fresh_blocks = sb_field(img, 'Free blocks')
        m = Mount(img, d + '/mnt', expect_clean_exit=False)
        with m:
            fd = os.open(m.mnt, os.O_TMPFILE | os.O_RDWR, 0o600)
            try:
                os.write(fd, b'q' * 1000000)
                os.fsync(fd)  # the journal now holds the orphan list
                ino = os.fstat(fd).st_ino
                os.kill(m.proc.pid, signal.SIGKILL)
                m.proc.wait(30)
            finally:
                try:
                    os.close(fd)
                except OSError:
                    pass
            fuse_unmount(m.mnt)
        # e2fsck, on a copy, finds it on the list and frees it.
        copy = d + '/copy'
        shutil.copyfile(img, copy)
        p = subprocess.run(['e2fsck', '-fy', copy], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        out = p.stdout.decode(errors='replace')
        check(re.search(r'orphan', out, re.I) and str(ino) in out,
              'e2fsck does not clear orphan inode %d: %s' % (ino, out))
        fsck(copy)
        eq(sb_field(copy, 'Free inodes'), fresh_inodes, 'free inodes (e2fsck)')
        # The next mount frees it itself.
        with Mount(img, d + '/mnt') as m2:
            eq(sorted(os.listdir(m2.mnt)), ['lost+found'], 'listing')
        check('orphan' in m2.log(), 'no orphan freed at mount: %s' % m2.log())
        fsck(img)
        eq(sb_field(img, 'Free inodes'), fresh_inodes, 'free inodes (mount)')
        eq(sb_field(img, 'Free blocks'), fresh_blocks, 'free blocks (mount)')
        eq(sb_field(img, 'First orphan inode'), None, 'orphan list head')


def setup():
    require_kernel_loop_mount()


if __name__ == '__main__':
    main(setup)

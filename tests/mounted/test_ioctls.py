#!/usr/bin/env python3
"""The ioctls uext4 answers through FUSE: file attributes (lsattr/chattr:
FS_IOC_GETFLAGS/SETFLAGS, FS_IOC_FSGETXATTR/FSSETXATTR), FS_IOC_GETVERSION
and FITRIM.

The attribute tests run one script on a kernel loop mount of an image and
on uext4 over a copy of it: every flag value, every errno of every
operation on immutable and append-only files and directories, and the
i_flags on disk afterwards must match. The one known difference (opens:
with the kernel checking permissions uext4 sees no OPEN, so an open for
writing succeeds and the first write fails) is listed in OPEN_STEPS and
checked for exactly; with no_default_permissions the daemon sees opens and
nothing differs. FITRIM: deleting a large file and trimming gives the
space back to the host (du of the sparse image), the bytes reported are
those released, and the image stays fsck-clean with its other file intact.
"""

import errno
import fcntl
import os
import re
import shutil
import struct
import subprocess

from uext4test import require_kernel_loop_mount
from uext4test import getflags, kernel_mount, recorder, setflags
from uext4test import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, Mount,
                       SkipFile, TestFailure, debugfs, eq, errno_as, fallocate,
                       fsck, inode_info, main, mkfs, pattern, read_file, run,
                       test, wait_until, workdir)

FS_IOC_GETVERSION = 0x80087601
FS_IOC_FSGETXATTR = 0x801c581f
FS_IOC_FSSETXATTR = 0x401c5820
FITRIM = 0xc0185879

FL = {'s': 0x1, 'u': 0x2, 'c': 0x4, 'S': 0x8, 'i': 0x10, 'a': 0x20,
      'd': 0x40, 'A': 0x80, 'j': 0x4000, 't': 0x8000, 'D': 0x10000,
      'T': 0x20000, 'e': 0x80000, 'P': 0x20000000}
XFLAG_NOATIME = 0x40
XFLAG_NODUMP = 0x80


def chattr(path, change):
    """chattr's own logic: read, change, write back."""
    f = getflags(path)
    for ch in change[1:]:
        f = f | FL[ch] if change[0] == '+' else f & ~FL[ch]
    setflags(path, f)
    return getflags(path)


def fsgetxattr(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        raw = fcntl.ioctl(fd, FS_IOC_FSGETXATTR, bytes(28))
    finally:
        os.close(fd)
    xflags, extsize, nextents, projid, cowext = struct.unpack('5I', raw[:20])
    return xflags, extsize, nextents, projid, cowext


def fssetxattr(path, xflags, projid=0):
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_FSSETXATTR,
                    struct.pack('5I8s', xflags, 0, 0, projid, 0, bytes(8)))
    finally:
        os.close(fd)


def getversion(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return struct.unpack('I', fcntl.ioctl(fd, FS_IOC_GETVERSION,
                                              bytes(8))[:4])[0]
    finally:
        os.close(fd)


def fitrim(path, start=0, length=2**64 - 1, minlen=0):
    fd = os.open(path, os.O_RDONLY)
    try:
        raw = fcntl.ioctl(fd, FITRIM, struct.pack('3Q', start, length,
                                                  minlen))
    finally:
        os.close(fd)
    return struct.unpack('3Q', raw)[1]


def write_at(path, data, off, flags=os.O_WRONLY | os.O_CREAT):
    fd = os.open(path, flags, 0o644)
    try:
        return os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def open_close(path, flags):
    os.close(os.open(path, flags))
    return 'opened'


def falloc_fd(fd, mode, off, length):
    fallocate(fd, mode, off, length)
    return 'ok'


# Steps whose result differs when the kernel checks permissions and so
# sends uext4 no OPEN: the kernel refuses these opens with EPERM, uext4
# lets them succeed (and refuses the writes that follow).
OPEN_STEPS = {'+i open wronly': 'opened', '+a open wronly': 'opened',
              '+a open rdwr': 'opened'}
# Always different: ext4 checks append-only at open only, so a descriptor
# opened for writing before chattr +a may still overwrite the file; uext4
# refuses every write below EOF of an append-only file.
KNOWN = {'+a pwrite old fd': 'EEPERM'}


def script(root):
    """Flags, enforcement and inheritance; returns [(step, result)]."""
    log = []

    def P(*parts):
        return os.path.join(root, *parts)

    r = recorder(log)

    write_at(P('f'), b'immutable', 0)
    write_at(P('g'), b'append', 0)
    write_at(P('h'), b'flags', 0)
    os.mkdir(P('di'))
    os.mkdir(P('da'))
    write_at(P('di', 'old'), b'x', 0)
    write_at(P('da', 'old'), b'y', 0)
    os.mkdir(P('di', 'sub'))
    os.mkdir(P('da', 'sub'))
    r('flags f', getflags, P('f'))
    r('flags dir', getflags, P('di'))
    r('flags root', getflags, root)
    r('fsgetxattr f', fsgetxattr, P('f'))

    # Which flags stick, and what is refused.
    # Not j: it needs CAP_SYS_RESOURCE, which the kernel checks and the
    # daemon cannot see (chattr_lsattr_tools checks it for a user).
    for ch in 'AdScsutP':
        r('h +' + ch, chattr, P('h'), '+' + ch)
    r('h all -', setflags, P('h'), getflags(P('h')) & FL['e'])
    r('h flags after', getflags, P('h'))
    r('h +D (dir only)', chattr, P('h'), '+D')
    r('h +T (dir only)', chattr, P('h'), '+T')
    r('h unknown bit', setflags, P('h'), getflags(P('h')) | 0x80000000)
    r('h inline bit (silently kept)', setflags, P('h'),
      getflags(P('h')) | 0x10000000)
    r('h flags at end', getflags, P('h'))
    r('fssetxattr noatime', fssetxattr, P('h'), XFLAG_NOATIME | XFLAG_NODUMP)
    r('h flags after fssetxattr', getflags, P('h'))
    r('fsgetxattr h', fsgetxattr, P('h'))
    r('fssetxattr projid', fssetxattr, P('h'), 0, 5)
    r('fssetxattr unknown xflag', fssetxattr, P('h'), 0x1)

    # Inheritance: new names take the directory's inheritable flags.
    os.mkdir(P('inh'))
    r('inh +ADSdTs', chattr, P('inh'), '+ADSdTs')
    write_at(P('inh', 'file'), b'i', 0)
    os.mkdir(P('inh', 'dir'))
    os.symlink('target', P('inh', 'link'))
    r('inh file flags', getflags, P('inh', 'file'))
    r('inh dir flags', getflags, P('inh', 'dir'))
    r('inh clear', chattr, P('inh'), '-ADSdTs')

    # An immutable file: an fd opened for writing before the flag.
    fd = os.open(P('f'), os.O_RDWR)
    try:
        r('f +i', chattr, P('f'), '+i')
        r('+i pwrite', os.pwrite, fd, b'X', 0)
        r('+i ftruncate', os.ftruncate, fd, 1)
        r('+i fallocate', falloc_fd, fd, 0, 0, 8192)
        r('+i punch', falloc_fd, fd,
          FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)
    finally:
        os.close(fd)
    r('+i open wronly', open_close, P('f'), os.O_WRONLY)
    r('+i open trunc', open_close, P('f'), os.O_WRONLY | os.O_TRUNC)
    r('+i truncate', os.truncate, P('f'), 0)
    r('+i unlink', os.unlink, P('f'))
    r('+i rename', os.rename, P('f'), P('f2'))
    write_at(P('over'), b'o', 0)
    r('+i rename over', os.rename, P('over'), P('f'))
    r('+i link', os.link, P('f'), P('flink'))
    r('+i chmod', os.chmod, P('f'), 0o600)
    r('+i chown', os.chown, P('f'), 1, 1)
    r('+i utime', os.utime, P('f'), ns=(1, 2))
    r('+i utime now', os.utime, P('f'))
    r('+i setxattr', os.setxattr, P('f'), 'user.a', b'1')
    r('+i removexattr', os.removexattr, P('f'), 'user.a')
    r('+i +A', chattr, P('f'), '+A')
    r('+i read', read_file, P('f'))
    r('+i -i', chattr, P('f'), '-i')
    r('-i write', write_at, P('f'), b'I', 0)

    # An append-only file.
    write_at(P('g2'), b'old fd', 0)
    fd = os.open(P('g2'), os.O_RDWR)
    try:
        r('g2 +a', chattr, P('g2'), '+a')
        r('+a pwrite old fd', os.pwrite, fd, b'Y', 0)
    finally:
        os.close(fd)
    r('g2 -a', chattr, P('g2'), '-a')
    r('g +a', chattr, P('g'), '+a')
    r('+a append', write_at, P('g'), b'+more', 0,
      os.O_WRONLY | os.O_APPEND)
    r('+a open wronly', open_close, P('g'), os.O_WRONLY)
    r('+a open rdwr', open_close, P('g'), os.O_RDWR)
    r('+a open trunc', open_close, P('g'),
      os.O_WRONLY | os.O_APPEND | os.O_TRUNC)
    r('+a write after open', write_at, P('g'), b'Z', 0, os.O_WRONLY)
    fd = os.open(P('g'), os.O_WRONLY | os.O_APPEND)
    try:
        r('+a fallocate', falloc_fd, fd, 0, 0, 65536)
        r('+a fallocate keep', falloc_fd, fd, FALLOC_FL_KEEP_SIZE, 0, 131072)
        r('+a punch', falloc_fd, fd,
          FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)
    finally:
        os.close(fd)
    r('+a truncate', os.truncate, P('g'), 0)
    r('+a unlink', os.unlink, P('g'))
    r('+a rename', os.rename, P('g'), P('g2'))
    r('+a link', os.link, P('g'), P('glink'))
    r('+a chmod', os.chmod, P('g'), 0o600)
    r('+a utime', os.utime, P('g'), ns=(1, 2))
    r('+a utime now', os.utime, P('g'))
    r('+a setxattr', os.setxattr, P('g'), 'user.a', b'1')
    r('+a content', read_file, P('g'))
    r('+a -a', chattr, P('g'), '-a')

    # An immutable directory.
    r('di +i', chattr, P('di'), '+i')
    r('+i dir create', write_at, P('di', 'new'), b'n', 0)
    r('+i dir mkdir', os.mkdir, P('di', 'newd'))
    r('+i dir symlink', os.symlink, 't', P('di', 'sl'))
    r('+i dir unlink', os.unlink, P('di', 'old'))
    r('+i dir rmdir', os.rmdir, P('di', 'sub'))
    r('+i dir rename out', os.rename, P('di', 'old'), P('moved'))
    r('+i dir rename in', os.rename, P('h'), P('di', 'h'))
    r('+i dir link in', os.link, P('over'), P('di', 'l'))
    r('+i dir write old', write_at, P('di', 'old'), b'w', 0)
    r('+i dir chmod', os.chmod, P('di'), 0o700)
    r('+i dir setxattr', os.setxattr, P('di'), 'user.a', b'1')
    r('+i dir list', lambda: sorted(os.listdir(P('di'))))
    r('+i dir -i', chattr, P('di'), '-i')

    # An append-only directory: names come, never go.
    r('da +a', chattr, P('da'), '+a')
    r('+a dir create', write_at, P('da', 'new'), b'n', 0)
    r('+a dir mkdir', os.mkdir, P('da', 'newd'))
    r('+a dir unlink', os.unlink, P('da', 'old'))
    r('+a dir rmdir', os.rmdir, P('da', 'sub'))
    r('+a dir rename out', os.rename, P('da', 'old'), P('moved'))
    r('+a dir rename in', os.rename, P('over'), P('da', 'over'))
    r('+a dir rename over', os.rename, P('da', 'new'), P('da', 'old'))
    r('+a dir list', lambda: sorted(os.listdir(P('da'))))
    r('+a dir -a', chattr, P('da'), '-a')

    # +A: reads leave the access time alone.
    write_at(P('na'), b'noatime', 0)
    os.utime(P('na'), ns=(10**9, 2 * 10**9))
    r('na +A', chattr, P('na'), '+A')
    read_file(P('na'))
    r('na atime', lambda: os.stat(P('na')).st_atime_ns)
    # Left flagged for the on-disk comparison.
    r('left +i', chattr, P('over'), '+i')
    return log


def disk_flags(img, paths):
    out = {}
    for p in paths:
        try:
            out[p] = '%#x' % inode_info(img, '/' + p)['flags']
        except TestFailure:
            out[p] = 'missing'
    return out


DISK_PATHS = ['f', 'g', 'h', 'di', 'da', 'inh', 'inh/file', 'inh/dir',
              'inh/link', 'na', 'da/over', 'di/old']


def kernel_run(d):
    kimg = mkfs(d + '/kernel.img')
    uimg = d + '/uext4.img'
    shutil.copyfile(kimg, uimg)
    kmnt = d + '/kmnt'
    with kernel_mount(kimg, kmnt):
        klog = script(kmnt)
    fsck(kimg)
    return kimg, uimg, klog


def compare(opts, open_differs):
    with workdir() as d:
        kimg, uimg, klog = kernel_run(d)
        with Mount(uimg, opts=opts) as m:
            ulog = script(m.mnt)
        fsck(uimg)
        lines = []
        for (name, k), (uname, u) in zip(klog, ulog):
            want = OPEN_STEPS[name] if open_differs and name in OPEN_STEPS \
                else KNOWN.get(name, k)
            if u != want:
                lines.append('  %s: kernel %.80r, uext4 %.80r (expected '
                             '%.80r)' % (name, k, u, want))
        if len(klog) != len(ulog):
            lines.append('  lengths differ: %d vs %d' % (len(klog),
                                                         len(ulog)))
        kd, ud = disk_flags(kimg, DISK_PATHS), disk_flags(uimg, DISK_PATHS)
        for p in DISK_PATHS:
            if kd[p] != ud[p]:
                lines.append('  on disk %s: kernel %s, uext4 %s'
                             % (p, kd[p], ud[p]))
        if lines:
            raise TestFailure('differs from the kernel:\n' + '\n'.join(lines))


def setup():
    require_kernel_loop_mount()


@test
def attrs_like_kernel():
    """Default mount (the kernel checks permissions, no OPEN requests)."""
    compare((), open_differs=True)


@test
def attrs_like_kernel_daemon_checks():
    """no_default_permissions: the daemon sees every open."""
    compare(('no_default_permissions',), open_differs=False)


@test
def chattr_lsattr_tools():
    """The real chattr and lsattr, and what a non-root owner may do."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=['allow_other']) as m:
            f = m.path('f')
            write_at(f, b'x', 0)
            os.chown(f, 1000, 1000)
            run(['chattr', '+iAd', f])
            out = run(['lsattr', f]).stdout.decode().split()[0]
            eq(out, '----i-dA------e-------', 'lsattr after chattr +iAd')
            run(['chattr', '-i', f])
            user = (1000, 1000, ())
            # The owner without CAP_LINUX_IMMUTABLE: i and a refused,
            # others allowed; another user: nothing.
            eq(errno_as(user, chattr, f, '+i'), errno.EPERM, 'owner +i')
            eq(errno_as(user, chattr, f, '+a'), errno.EPERM, 'owner +a')
            eq(errno_as(user, chattr, f, '+j'), errno.EPERM, 'owner +j')
            eq(errno_as(user, chattr, f, '+S'), 0, 'owner +S')
            eq(errno_as((1001, 1001, ()), chattr, f, '-S'), errno.EPERM,
               'other user -S')
            eq(getflags(f), FL['e'] | FL['d'] | FL['A'] | FL['S'],
               'flags after the users')
            gen = getversion(f)
            ino = os.stat(f).st_ino
        info = inode_info(img, '/f')
        eq(info['flags'], FL['e'] | FL['d'] | FL['A'] | FL['S'],
           'flags on disk')
        out = debugfs(img, 'stat <%d>' % ino)
        want = 'Generation: %d ' % gen
        if want not in out:
            raise TestFailure('FS_IOC_GETVERSION gave %d; debugfs:\n%s'
                              % (gen, out[:400]))
        fsck(img)


def ctime_shown(path):
    """The ctime as GNU stat shows it: it asks statx(2) for the ctime
    alone, which the kernel answers from its cached attributes while they
    are valid (fstests generic/277)."""
    return run(['stat', '-c', '%.9Z', path]).stdout.decode().strip()


def disk_ctime(img, path):
    m = re.search(r'ctime: 0x([0-9a-f]+):([0-9a-f]+)',
                  inode_info(img, path)['text'])
    # The extra field holds the nanoseconds above two epoch bits.
    return '%d.%09d' % (int(m.group(1), 16), int(m.group(2), 16) >> 2)


@test
def chattr_ctime_not_cached():
    """stat right after chattr shows the ctime the ioctl set.

    The daemon sets the ctime on SETFLAGS and FSSETXATTR; the kernel,
    which cached the attributes just before (default attribute timeout),
    must not go on showing the old one. Each step's ctime must be new, and
    the last one shown must be the one on disk."""
    with workdir() as d:
        img = mkfs(d + '/img', size='16M')
        shown = {}
        with Mount(img) as m:
            write_at(m.path('f'), b'x', 0)
            os.mkdir(m.path('d'))
            for name in ('f', 'd'):
                p = m.path(name)
                os.stat(p)
                seen = [ctime_shown(p)]
                for step in (lambda: setflags(p, getflags(p) | FL['A']),
                             lambda: setflags(p, getflags(p) & ~FL['A']),
                             lambda: fssetxattr(p, XFLAG_NODUMP),
                             lambda: fssetxattr(p, 0)):
                    step()
                    seen.append(ctime_shown(p))
                stale = [i for i in range(1, len(seen))
                         if seen[i] == seen[i - 1]]
                if stale:
                    raise TestFailure('%s: ctime shown unchanged after '
                                      'step(s) %s: %s' % (name, stale, seen))
                shown[name] = seen[-1]
        fsck(img)
        for name, last in shown.items():
            eq(last, disk_ctime(img, '/' + name), name + ': ctime on disk')


def du_bytes(path):
    return os.stat(path).st_blocks * 512


@test
def fitrim_shrinks_image():
    """Delete 96 MiB, fstrim: the sparse image gives it back."""
    big = 96 << 20
    with workdir() as d:
        img = mkfs(d + '/img', size='256M')
        keep = pattern(300000, seed=7)
        with Mount(img, opts=['allow_other']) as m:
            write_at(m.path('keep'), keep, 0)
            chunk = pattern(1 << 20, seed=3)
            fd = os.open(m.path('big'), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                for i in range(big >> 20):
                    os.pwrite(fd, chunk, i << 20)
                os.fsync(fd)
            finally:
                os.close(fd)
            full = du_bytes(img)
            free_before = os.statvfs(m.mnt).f_bfree
            os.unlink(m.path('big'))
            # The blocks are freed when the kernel forgets the inode, an
            # asynchronous FORGET after the unlink: wait for it.
            wait_until(lambda: os.statvfs(m.mnt).f_bfree - free_before
                       >= big // 4096, True, 'blocks of big freed')
            # Nothing of a file deleted in the running transaction may go
            # before its commit: FITRIM commits first, so all of it goes.
            got = fitrim(m.mnt)
            after = du_bytes(img)
            released = full - after
            if released < big - (1 << 20):
                raise TestFailure('image %d -> %d bytes on the host after '
                                  'deleting %d and FITRIM' % (full, after,
                                                              big))
            if abs(got - released) > (1 << 20):
                raise TestFailure('FITRIM reported %d bytes, the image '
                                  'released %d' % (got, released))
            # Nothing is left to release; fstrim(8) says so too.
            eq(fitrim(m.mnt), 0, 'second FITRIM')
            out = run(['fstrim', '-v', m.mnt]).stdout.decode()
            if ': 0 B (0 bytes) trimmed' not in out:
                raise TestFailure('fstrim -v: %r' % out)
            # ext4's argument checks and its CAP_SYS_ADMIN rule.
            eq(errno_of_trim(m.mnt, length=100), errno.EINVAL, 'len < block')
            eq(errno_of_trim(m.mnt, start=1 << 40), errno.EINVAL,
               'start past the end')
            eq(errno_as((1000, 1000, ()), fitrim, m.mnt), errno.EPERM,
               'FITRIM as a user')
            eq(read_file(m.path('keep')), keep, 'kept file after FITRIM')
        fsck(img)
        with Mount(img) as m:
            eq(read_file(m.path('keep')), keep, 'kept file after remount')
        fsck(img)


def errno_of_trim(mnt, **kw):
    try:
        fitrim(mnt, **kw)
    except OSError as e:
        return e.errno
    return 0


@test
def unknown_ioctl_enotty():
    with workdir() as d:
        img = mkfs(d + '/img', size='16M')
        with Mount(img) as m:
            write_at(m.path('f'), b'x', 0)
            fd = os.open(m.path('f'), os.O_RDONLY)
            try:
                try:
                    # FS_IOC_GETFSLABEL: ext4 has it, uext4 does not (yet).
                    fcntl.ioctl(fd, 0x81009431, bytes(256))
                    raise TestFailure('FS_IOC_GETFSLABEL succeeded')
                except OSError as e:
                    eq(e.errno, errno.ENOTTY, 'unknown ioctl')
            finally:
                os.close(fd)
        fsck(img)


if __name__ == '__main__':
    main(setup)

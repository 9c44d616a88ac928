#!/usr/bin/env python3
"""The ioctls uext4 answers through FUSE: file attributes (lsattr/chattr:
FS_IOC_GETFLAGS/SETFLAGS, FS_IOC_FSGETXATTR/FSSETXATTR), FS_IOC_GETVERSION,
FITRIM and the volume label (FS_IOC_GETFSLABEL/SETFSLABEL).

The attribute tests run one script on a kernel loop mount of an image and
on uext4 over a copy of it: every flag value, every errno of every
operation on immutable and append-only files and directories, and the
i_flags on disk afterwards must match. The one known difference (opens:
with the kernel checking permissions uext4 sees no OPEN, so an open for
writing succeeds and the first write fails) is listed in OPEN_STEPS and
checked for exactly; with no_default_permissions the daemon sees opens and
nothing differs. FITRIM: deleting a large file and trimming gives the
space back to the host (du of the sparse image), the image stays
fsck-clean with its other file intact, and the bytes reported are the
kernel's for the same image and range (the free runs trimmed), also for a
sequence of trims on one mount with frees in between (both remember the
groups trimmed since mount). The label: one script of gets and sets on
the kernel and on uext4, each step's answer and the label in the primary
and every backup superblock (whose checksums dumpe2fs verifies) compared,
with and without a journal; a user other than root may read it only.
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
                       SkipFile, TestFailure, debugfs, eq, errno_as, errno_of,
                       fallocate, run_as,
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
            # As ext4: the bytes of the free runs trimmed, all the free
            # space here, which includes what the image released.
            eq(got, os.statvfs(m.mnt).f_bfree * 4096, 'FITRIM length')
            if got < released:
                raise TestFailure('FITRIM reported %d bytes, the image '
                                  'released %d' % (got, released))
            # As ext4, the groups trimmed with nothing freed since are
            # skipped: nothing trimmed, nothing released; fstrim(8) says
            # as much.
            eq(fitrim(m.mnt), 0, 'second FITRIM')
            eq(du_bytes(img), after, 'image after the second FITRIM')
            out = run(['fstrim', '-v', m.mnt]).stdout.decode()
            if '(0 bytes) trimmed' not in out:
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



def trim_steps(img, trims):
    """The durability steps (UEXT4_FAULT_COUNT: pwrites and fdatasyncs of
    the image) of one mount of @img that writes and fsyncs a file, leaves a
    chmod in the running transaction (commit=600: no timed commit), runs
    @trims FITRIMs, and unmounts."""
    count = img + '.steps'
    # libext2fs stamps s_wtime at each commit's capture: a second passing
    # between two commits (five FITRIMs on a loaded machine) would add the
    # superblock to the last one. Its clock, stopped, keeps the counts
    # comparable.
    with Mount(img, opts=['commit=600'],
               env={'UEXT4_FAULT_COUNT': count,
                    'E2FSPROGS_FAKE_TIME': '1700000000'}) as m:
        fd = os.open(m.path('a'), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, pattern(65536, seed=5), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(m.path('a'), 0o600)
        got = [fitrim(m.mnt) for _ in range(trims)]
    fsck(img)
    with open(count) as f:
        return int(f.read().split()[0]), got


@test
def fitrim_commits_only_freed_blocks():
    """FITRIM commits only when the running transaction freed blocks (the
    commit makes them trimmable now; fitrim_shrinks_image): ext4_trim_fs
    commits nothing, and nothing else needs it. Five FITRIMs with a chmod
    and no free pending cost no write or sync of the image: the mount takes
    as many durability steps as one without them; the first FITRIM still
    trims the free space, the others nothing (groups remembered)."""
    with workdir() as d:
        img = mkfs(d + '/img', size='64M')
        shutil.copyfile(img, d + '/img2')
        base, _ = trim_steps(img, 0)
        steps, got = trim_steps(d + '/img2', 5)
        check_trims = got[0] > 32 * MiB and got[1:] == [0] * 4
        if not check_trims:
            raise TestFailure('FITRIM answers %r' % got)
        eq(steps, base, 'durability steps with five FITRIMs (without: %d)'
           % base)


MiB = 1 << 20
GROUP = 8192   # blocks per group of fitrim's 160 MiB images (-g 8192)
ALL = 2**64 - 1
# (start, len, minlen) on a 160 MiB file system of 4 KiB blocks in block
# groups of 32 MiB: generic/260's cases (the whole, from 10 MiB, a length
# past the end, a start past it or at 2^64-1, minlen above a group, len
# below a block, its start+len overflow) and ranges that cut free runs at
# either end, cross a group boundary, and cover the file system in parts.
TRIM_CASES = [
    (0, 2**64 - 1, 0), (10 * MiB, 2**64 - 1, 0), (0, 1 << 40, 0),
    (10 * MiB, 1 << 40, 0), (0, MiB, 0), (5 * MiB + 12288, 3 * MiB, 0),
    (32 * MiB - 4096, 8192, 0), (31 * MiB, 2 * MiB, 0),
    (0, 2**64 - 1, 65536), (0, 2**64 - 1, MiB), (0, 2**64 - 1, 6000),
    (0, 2**64 - 1, 32 * MiB), (0, 2**64 - 1, 32 * MiB + 4096),
    (0, 40 * MiB, 0), (40 * MiB, 40 * MiB, 0), (80 * MiB, 40 * MiB, 0),
    (120 * MiB, 40 * MiB, 0), (160 * MiB - 4096, 4096, 0),
    (160 * MiB, MiB, 0), (1 << 40, 2**64 - 1, 0), (2**64 - 1, MiB, 0),
    (0, 100, 0), (0, 4095, 0), ((2**32 + 1) * 32768 * 4096, 10 * MiB, 0),
]


def trim_result(mnt, start, length, minlen):
    try:
        return fitrim(mnt, start, length, minlen)
    except OSError as e:
        return errno.errorcode[e.errno]


def fragment(root):
    """Files of several sizes in every group, every other one deleted."""
    for i in range(36):
        size = (64 + 97 * i) * 1024 + (i % 3) * 1000
        write_at(os.path.join(root, 'f%02d' % i), pattern(size, seed=i), 0)
    os.sync()
    for i in range(0, 36, 2):
        os.unlink(os.path.join(root, 'f%02d' % i))


def free_runs(img):
    """[(first, last)] block runs free on disk, by dumpe2fs (the groups'
    indented lines, not the superblock's count)."""
    runs = []
    for line in run(['dumpe2fs', img]).stdout.decode().splitlines():
        if line.startswith('  Free blocks: '):
            line = line.strip()
            for part in filter(None, line[len('Free blocks:'):].strip()
                               .split(', ')):
                a, _, b = part.partition('-')
                runs.append((int(a), int(b or a)))
    return runs


def cut_cases(runs):
    """Ranges that start inside one free run and end inside a later one,
    a one-block range inside a run, and minlen at and just above the
    shortest run."""
    cases = []
    for i in (1, 3, len(runs) // 2, len(runs) - 3):
        (a, b), (c, e) = runs[i], runs[i + 1]
        start = (a + b) // 2
        cases.append((start * 4096, ((c + e) // 2 - start) * 4096, 0))
        cases.append((start * 4096, 4096, 0))
    shortest = min(b - a + 1 for a, b in runs)
    cases.append((0, 2**64 - 1, shortest * 4096))
    cases.append((0, 2**64 - 1, (shortest + 1) * 4096))
    return cases


def as_if_fresh(mnt, cases):
    """The answer to each (start, len, minlen) of @cases on one mount, as on
    a fresh one. Trims skip the groups trimmed since mount with nothing
    freed since (fitrim_remembers_like_kernel), unless the minimum run is
    smaller than the last trim's: so each case follows a trim with the
    largest minimum (a whole group), whose own answer does not count, and
    goes through every group as the first trim of a mount would. A case
    with that largest minimum runs first, when nothing is remembered."""
    out = [None] * len(cases)
    order = sorted(range(len(cases)),
                   key=lambda i: -(-cases[i][2] // 4096) != GROUP)
    for n, i in enumerate(order):
        if n:
            trim_result(mnt, 0, ALL, GROUP * 4096)
        out[i] = trim_result(mnt, *cases[i])
    return out


@test
def fitrim_like_kernel():
    """FITRIM's answer (bytes of the free runs it trimmed, or the errno)
    is the kernel's for the same image, case by case, each as on a fresh
    mount (as_if_fresh)."""
    with workdir() as d:
        kimg = mkfs(d + '/kernel.img', size='160M', opts=['-g', '8192'])
        kmnt = d + '/kmnt'
        with kernel_mount(kimg, kmnt):
            fragment(kmnt)
        uimg = d + '/uext4.img'
        shutil.copyfile(kimg, uimg)
        runs = free_runs(kimg)
        if len(runs) < 12:
            raise TestFailure('too few free runs to cut: %r' % runs)
        cases = TRIM_CASES + cut_cases(runs)
        with kernel_mount(kimg, kmnt):
            kern = as_if_fresh(kmnt, cases)
        fsck(kimg)
        with Mount(uimg) as m:
            ours = as_if_fresh(m.mnt, cases)
            eq(sorted(os.listdir(m.mnt)),
               sorted(['lost+found'] + ['f%02d' % i for i in range(1, 36, 2)]),
               'files after FITRIM')
            for i in range(1, 36, 2):
                size = (64 + 97 * i) * 1024 + (i % 3) * 1000
                eq(read_file(m.path('f%02d' % i)), pattern(size, seed=i),
                   'f%02d after FITRIM' % i)
        fsck(uimg)
        bad = ['  start %d len %d minlen %d: kernel %r, uext4 %r'
               % (case + (k, u))
               for case, k, u in zip(cases, kern, ours) if k != u]
        if bad:
            raise TestFailure('FITRIM differs from the kernel:\n'
                              + '\n'.join(bad))
        # The comparison means something only if runs were counted, cut
        # by minlen, and refused.
        cut = kern[len(TRIM_CASES):]
        if not (kern[0] > 80 * MiB and kern[9] < kern[0]
                and 'EINVAL' in kern and 0 not in cut[:-2]
                and cut[-1] < cut[-2]):
            raise TestFailure('unexpected kernel answers: %r' % kern)


def size_of(i):
    return (64 + 97 * i) * 1024 + (i % 3) * 1000


def written_in_order(path):
    """fragment()'s files written one after the other by debugfs, then
    every other one removed: libext2fs allocates the same blocks every run
    (the kernel's allocator does not: its choice depends on the CPU), so
    memory_script meets the same free runs every time. f01-f21 begin in
    group 0, f21 ending in group 1 (freeing it leaves group 0 a free run to
    its end), f23-f33 in group 1."""
    img = mkfs(path, size='160M', opts=['-g', '8192'])
    cmds = []
    for i in range(36):
        src = '%s.f%02d' % (path, i)
        with open(src, 'wb') as f:
            f.write(pattern(size_of(i), seed=i))
        cmds.append('write %s f%02d' % (src, i))
    cmds += ['rm f%02d' % i for i in range(0, 36, 2)]
    with open(path + '.cmds', 'w') as f:
        f.write('\n'.join(cmds) + '\n')
    run(['debugfs', '-w', '-f', path + '.cmds', img])
    for i in range(36):
        os.unlink('%s.f%02d' % (path, i))
    return img


def group_of(img, name):
    return int(run(['debugfs', '-R', 'blocks /' + name,
                    img]).stdout.split()[0]) // GROUP


def memory_script(root, groups, settle):
    """FITRIM after FITRIM on one mount, with frees (truncate, punch,
    unlink) in between, in three groups @groups = (g1, g2, g3) of
    {group: [files]}; [(step, bytes trimmed or the errno's name)].
    settle(): after each free, once it is done and committed."""
    (g1, f1), (g2, f2), (g3, f3) = groups
    at = {g: g * GROUP * 4096 for g in (g1, g2, g3)}
    log = []

    def T(step, start=0, length=ALL, minlen=0):
        log.append((step, trim_result(root, start, length, minlen)))

    def truncate(name, size):
        os.truncate(os.path.join(root, name), size)
        settle()

    T('first')
    T('second: nothing freed')
    T('larger minlen 64 KiB', minlen=64 << 10)
    T('smaller minlen again')
    truncate(f1[0], 0)
    T('freed in g1')
    T('again')
    # A range that does not start at its group's start: the group stays
    # unremembered, the next whole trim goes through it again.
    truncate(f3[0], 12288)
    T('inside g3', at[g3] + MiB, 4 * MiB)
    T('after inside g3')
    # From the group's start but not to its end: remembered only when a
    # free run found reaches (or stops one cluster short of) its end.
    truncate(f1[1], 0)
    T('first 12 MiB of g1', at[g1], 12 * MiB)
    T('g1 after its first 12 MiB', at[g1], GROUP * 4096)
    truncate(f1[2], 0)
    T('g1 but its last block', at[g1], (GROUP - 1) * 4096)
    T('g1 after all but its last block', at[g1], GROUP * 4096)
    # The minimum run remembered is the last trim's.
    truncate(f3[1], 0)
    T('freed in g3, minlen 1 MiB', minlen=MiB)
    T('minlen 1 MiB again', minlen=MiB)
    T('minlen 2 MiB', minlen=2 * MiB)
    T('minlen 0 after 1 MiB')
    # Neither a refused trim nor one that ends before the first data
    # block changes it.
    T('minlen above a group', minlen=33 * MiB)
    T('after EINVAL')
    T('before the first data block, minlen 2 MiB', 0, 4096, 2 * MiB)
    T('minlen 1 MiB after that', minlen=MiB)
    # A hole punched, then the group's exact range; a file unlinked.
    fd = os.open(os.path.join(root, f2[0]), os.O_WRONLY)
    try:
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 << 10,
                  256 << 10)
    finally:
        os.close(fd)
    settle()
    T('punched in g2, its range', at[g2], GROUP * 4096)
    T('after g2 range')
    os.unlink(os.path.join(root, f2[1]))
    settle()
    T('unlinked in g2')
    T('last')
    # The walk through a group stops once its free clusters not yet seen
    # cannot make a run of the minimum: a run to the group's end not
    # reached then leaves the group unremembered.
    for name in f1[3:6]:
        truncate(name, 0)
    T('g1 but its last block, minlen 4 MiB', at[g1], (GROUP - 1) * 4096,
      4 * MiB)
    T('g1 after that, minlen 4 MiB', at[g1], GROUP * 4096, 4 * MiB)
    return log


@test
def fitrim_remembers_like_kernel():
    """A sequence of FITRIMs on one mount, with blocks freed in between,
    reports what the kernel's does on a copy: both skip the groups trimmed
    since mount with nothing freed since, unless the minimum run is now
    smaller than the last trim's."""
    with workdir() as d:
        kimg = written_in_order(d + '/kernel.img')
        kmnt = d + '/kmnt'
        # memory_script's g1 is group 0, its third file f21 the one at its
        # end; g2 and g3 are both group 1.
        groups = ((0, ['f01', 'f03', 'f21', 'f05', 'f07', 'f09']),
                  (1, ['f23', 'f25']), (1, ['f27', 'f29']))
        layout = [(n, g, group_of(kimg, n)) for g, names in groups
                  for n in names]
        if any(g != got for _, g, got in layout):
            raise TestFailure('layout changed: %r' % layout)
        uimg = d + '/uext4.img'
        shutil.copyfile(kimg, uimg)
        bfree = []

        def kernel_settle():
            os.sync()   # the commit puts freed blocks in ext4's buddy
            bfree.append(os.statvfs(kmnt).f_bfree)

        with kernel_mount(kimg, kmnt):
            klog = memory_script(kmnt, groups, kernel_settle)
        fsck(kimg)
        with Mount(uimg) as m:
            want = iter(bfree)
            # An unlinked file's blocks are freed at FUSE's FORGET.
            ulog = memory_script(m.mnt, groups, lambda: wait_until(
                lambda: os.statvfs(m.mnt).f_bfree, next(want), 'f_bfree'))
            (g1, f1), (g2, f2), (g3, f3) = groups
            sizes = {n: size_of(int(n[1:])) for _, names in groups
                     for n in names}
            for name in f1[:6] + [f3[1]]:
                eq(read_file(m.path(name)), b'', name)
            eq(read_file(m.path(f3[0])),
               pattern(sizes[f3[0]], seed=int(f3[0][1:]))[:12288], f3[0])
            holed = bytearray(pattern(sizes[f2[0]], seed=int(f2[0][1:])))
            holed[64 << 10:320 << 10] = bytes(256 << 10)
            eq(read_file(m.path(f2[0])), bytes(holed), f2[0])
            eq(os.path.exists(m.path(f2[1])), False, f2[1] + ' unlinked')
        fsck(uimg)
        eq(free_runs(uimg), free_runs(kimg), 'free runs')
        bad = ['  %s: kernel %r, uext4 %r' % (ks, k, u)
               for (ks, k), (_, u) in zip(klog, ulog) if k != u]
        if bad:
            raise TestFailure('FITRIM sequence differs from the kernel:\n'
                              + '\n'.join(bad))
        # The comparison means something only if the kernel skipped what
        # it remembered and went through what it did not.
        k = dict(klog)
        zero = ['second: nothing freed', 'larger minlen 64 KiB', 'again',
                'g1 after all but its last block', 'minlen 1 MiB again',
                'minlen 2 MiB', 'after EINVAL', 'minlen 1 MiB after that',
                'after g2 range', 'last']
        if not (k['first'] > 80 * MiB and all(k[s] == 0 for s in zero)
                and k['smaller minlen again'] == k['first']
                and 0 < k['freed in g1'] < k['first']
                and k['after inside g3'] > 0
                and k['first 12 MiB of g1'] > 0
                and k['g1 after its first 12 MiB'] > 0
                and k['minlen 0 after 1 MiB'] > k['first']
                and k['minlen above a group'] == 'EINVAL'
                and k['unlinked in g2'] > 0
                and k['g1 after that, minlen 4 MiB'] > 0):
            raise TestFailure('unexpected kernel answers: %r' % klog)


def errno_of_trim(mnt, **kw):
    try:
        fitrim(mnt, **kw)
    except OSError as e:
        return e.errno
    return 0


FS_IOC_GETFSLABEL = 0x81009431
FS_IOC_SETFSLABEL = 0x41009432


def get_label(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return fcntl.ioctl(fd, FS_IOC_GETFSLABEL, bytes(256))
    finally:
        os.close(fd)


def set_label(path, raw):
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_SETFSLABEL, raw.ljust(256, b'\0'))
    finally:
        os.close(fd)


LABEL_STEPS = [b'newlabel', b'x' * 17, b'y' * 16, b'', b'z' * 255 + b'w',
               b'final']


def label_script(root):
    """Each step's answer: the errno of a set, then the 256 bytes a get
    gives (the mount point, then a file)."""
    log = [get_label(root)]
    with open(os.path.join(root, 'f'), 'wb') as f:
        f.write(b'x')
    for raw in LABEL_STEPS:
        log.append(errno_of(set_label, root, raw))
        log.append(get_label(os.path.join(root, 'f')))
    return log


def sb_labels(img):
    """The volume name in the primary and every backup superblock, read by
    dumpe2fs (which refuses a superblock whose checksum is wrong)."""
    out = run(['dumpe2fs', img]).stdout.decode()
    backups = [int(b) for b in
               re.findall(r'Backup superblock at (\d+)', out)]
    bsize = int(re.search(r'Block size:\s+(\d+)', out).group(1))
    names = []
    for b in [None] + backups:
        cmd = ['dumpe2fs', '-h']
        if b is not None:
            cmd += ['-o', 'superblock=%d' % b, '-o', 'blocksize=%d' % bsize]
        hdr = run(cmd + [img]).stdout.decode()
        names.append(re.search(r'Filesystem volume name:\s*(.*)',
                               hdr).group(1))
    if len(backups) < 3:
        raise TestFailure('too few backups to compare: %r' % backups)
    return names


def label_case(features):
    with workdir() as d:
        kimg = mkfs(d + '/k.img', size='64M', features=features,
                    opts=['-b', '1024', '-L', 'before'])
        uimg = d + '/u.img'
        shutil.copyfile(kimg, uimg)
        with kernel_mount(kimg, d + '/kmnt') as kmnt:
            kern = label_script(kmnt)
        with Mount(uimg, opts=['allow_other']) as m:
            ours = label_script(m.mnt)
            user = (1000, 1000, ())
            eq(errno_as(user, set_label, m.mnt, b'user'), errno.EPERM,
               'a user sets the label')
            eq(run_as(1000, 1000, (), get_label, m.mnt)[:6], b'final\0',
               'a user reads the label')
        for i, (k, u) in enumerate(zip(kern, ours)):
            eq(u, k, 'label step %d (%r)' % (i, LABEL_STEPS[(i - 1) // 2]
                                             if i else 'first get'))
        with Mount(uimg, opts=['ro']) as m:
            eq(errno_of(set_label, m.mnt, b'ro'), errno.EROFS,
               'set on a read-only mount')
            eq(get_label(m.mnt)[:6], b'final\0', 'get on a read-only mount')
        fsck(kimg)
        fsck(uimg)
        eq(sb_labels(uimg), sb_labels(kimg), 'labels in the superblocks')
        eq(sb_labels(uimg)[-1], 'final', 'the last backup\'s label')


@test
def label_like_kernel():
    label_case(())


@test
def label_like_kernel_nojournal():
    label_case(('^has_journal',))


@test
def unknown_ioctl_enotty():
    with workdir() as d:
        img = mkfs(d + '/img', size='16M')
        with Mount(img) as m:
            write_at(m.path('f'), b'x', 0)
            fd = os.open(m.path('f'), os.O_RDONLY)
            try:
                try:
                    # EXT4_IOC_ALLOC_DA_BLKS: ext4 has it, uext4 does not.
                    fcntl.ioctl(fd, 0x660c)
                    raise TestFailure('EXT4_IOC_ALLOC_DA_BLKS succeeded')
                except OSError as e:
                    eq(e.errno, errno.ENOTTY, 'unknown ioctl')
            finally:
                os.close(fd)
        fsck(img)


if __name__ == '__main__':
    main(setup)

#!/usr/bin/env python3
"""ext4's own ioctls that reach uext4 through FUSE, beyond those of
test_ioctls.py: EXT4_IOC_CHECKPOINT, EXT4_IOC_PRECACHE_EXTENTS,
EXT4_IOC_CLEAR_ES_CACHE and EXT4_IOC_GETVERSION ('f' 3), each run on a
kernel loop mount of an image and on uext4 over a copy of it, with the same
answers (the errno of every refusal: another user EPERM or EACCES, bad
flags EINVAL, no journal ENODEV, read-only EROFS) and the journal's state
afterwards (dumpe2fs's "Journal start" while still mounted, the journal's
blocks after ZEROOUT and DISCARD, a copy of the image taken while mounted
fsck-clean); e2fsck -fn on every image. And which ioctls never reach the
daemon at all (the VFS answers them), or reach it without what ext4 would
read or write (README, "ioctls"): its request counter says so.

Runs only as root where `mount -o loop` works, else exits 77. Only freshly
made (and fsck-clean) images are ever loop-mounted."""

import errno
import fcntl
import os
import re
import shutil
import struct

from uext4jdev import fsck_ext, jsb_tail, kernel_mount_ext, make_pair
from uext4test import require_kernel_loop_mount
from uext4test import (Mount, TestFailure, control_socket, daemon_requests,
                       debugfs, eq, errno_of, fsck, kernel_mount, main,
                       mkfs, run_as, sb_field, test, workdir)


def _ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (ord('f') << 8) | nr


EXT4_IOC_CHECKPOINT = _ioc(1, 43, 4)
EXT4_IOC_PRECACHE_EXTENTS = _ioc(0, 18, 0)
EXT4_IOC_CLEAR_ES_CACHE = _ioc(0, 40, 0)
EXT4_IOC_GETVERSION = _ioc(2, 3, 8)
FS_IOC_GETVERSION = 0x80087601
DISCARD, ZEROOUT, DRY_RUN = 1, 2, 4
USER = (1000, 1000, ())


def setup():
    require_kernel_loop_mount()


def ioctl(path, cmd, arg=0):
    """The errno of ioctl(@cmd) on @path opened read-only (0: success)."""
    def call():
        fd = os.open(path, os.O_RDONLY)
        try:
            return fcntl.ioctl(fd, cmd, arg)
        finally:
            os.close(fd)
    return errno_of(call)


def checkpoint(path, flags):
    return ioctl(path, EXT4_IOC_CHECKPOINT, struct.pack('I', flags))


def fsynced(path, data):
    """@data written to @path and fsync'd: a committed transaction the
    journal still holds (both leave it there until a checkpoint)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def journal_start(img):
    return int(sb_field(img, 'Journal start'))


def journal_tail_bytes(img, d):
    """The journal's blocks but its superblock, as debugfs reads them."""
    out = d + '/journal.dump'
    debugfs(img, 'dump <8> %s' % out)
    with open(out, 'rb') as f:
        data = f.read()
    os.unlink(out)
    return data[4096:]


def checkpoint_script(root, img, d):
    """Each step's answer, and the journal's state where it says."""
    log = []

    def step(name, value):
        log.append((name, value))

    fsynced(root + '/a', b'a' * 100000)
    step('start after fsync is set', journal_start(img) != 0)
    step('user, bad flags', run_as(*USER, checkpoint, root, 7))
    for flags in (DISCARD | ZEROOUT, 8, 1 << 31, DISCARD | ZEROOUT | DRY_RUN):
        step('flags %#x' % flags, checkpoint(root, flags))
    for flags in (DRY_RUN, DRY_RUN | DISCARD, DRY_RUN | ZEROOUT):
        step('flags %#x' % flags, checkpoint(root, flags))
    step('start after dry runs is set', journal_start(img) != 0)
    step('checkpoint', checkpoint(root, 0))
    step('start after it', journal_start(img))
    copy = d + '/while-mounted.img'
    shutil.copyfile(img, copy)
    step('a copy taken now: fsck', fsck(copy, check_rc=False))
    os.unlink(copy)
    for name, flags in (('zeroout', ZEROOUT), ('discard', DISCARD)):
        fsynced(root + '/' + name, name.encode() * 50000)
        step(name + ': start before', journal_start(img) != 0)
        step(name, checkpoint(root + '/a', flags))
        step(name + ': start after', journal_start(img))
        tail = journal_tail_bytes(img, d)
        step(name + ': journal blocks zero', tail == bytes(len(tail)))
    step('again on an empty journal', checkpoint(root, 0))
    return log


def compare(kern, ours, what):
    bad = ['  %s: kernel %r, uext4 %r' % (ks, k, u)
           for (ks, k), (_, u) in zip(kern, ours) if k != u]
    if bad:
        raise TestFailure('%s differs from the kernel:\n%s'
                          % (what, '\n'.join(bad)))
    eq(len(ours), len(kern), what + ' steps')


def allocated(img):
    return os.stat(img).st_blocks * 512


@test
def checkpoint_like_kernel():
    """EXT4_IOC_CHECKPOINT's answers and the journal afterwards match the
    kernel's, step by step: the journal empty on disk while mounted (its
    start 0), a copy of the image taken then fsck-clean, ZEROOUT and
    DISCARD leaving zeros in every block but the journal's superblock,
    DISCARD giving them back to the host (a loop device punches its
    file too), another user EPERM before the flags are looked at."""
    with workdir() as d:
        kimg = mkfs(d + '/k.img', size='64M')
        uimg = d + '/u.img'
        shutil.copyfile(kimg, uimg)
        with kernel_mount(kimg, d + '/kmnt') as kmnt:
            os.chmod(kmnt, 0o755)
            kern = checkpoint_script(kmnt, kimg, d)
        with Mount(uimg, opts=['allow_other']) as m:
            os.chmod(m.mnt, 0o755)
            before = allocated(uimg)
            ours = checkpoint_script(m.mnt, uimg, d)
            freed = before - allocated(uimg)
        compare(kern, ours, 'EXT4_IOC_CHECKPOINT')
        want = dict(ours)
        if not (want['start after fsync is set'] and want['checkpoint'] == 0
                and want['start after it'] == 0
                and want['user, bad flags'] == errno.EPERM
                and want['flags 0x3'] == errno.EINVAL
                and want['discard: journal blocks zero']):
            raise TestFailure('unexpected answers: %r' % ours)
        # The 64 MiB image's journal is 4 MiB; most of it was written.
        if freed < 1 << 20:
            raise TestFailure('DISCARD gave back %d bytes' % freed)
        fsck(kimg)
        fsck(uimg)
        for name in ('a', 'zeroout', 'discard'):
            eq(debugfs(uimg, 'cat /' + name).encode()[:4],
               debugfs(kimg, 'cat /' + name).encode()[:4], name)


@test
def checkpoint_read_only_and_no_journal():
    """Without a journal every valid request is ENODEV, as ext4 (invalid
    flags EINVAL first). Read-only: a checkpoint or a dry run succeeds
    (the journal is empty) as on the kernel; erasing the journal is EROFS
    here, where the kernel's read-only loop device refuses the write
    itself (EIO for the discard, EPERM for the zeroing: block-layer
    answers, not ext4's, so not compared)."""
    nojournal = [0, DISCARD, ZEROOUT, DRY_RUN, DISCARD | ZEROOUT, 8]
    with workdir() as d:
        kimg = mkfs(d + '/k.img', size='32M', features=('^has_journal',))
        uimg = d + '/u.img'
        shutil.copyfile(kimg, uimg)
        with kernel_mount(kimg, d + '/kmnt') as kmnt:
            kern = [checkpoint(kmnt, f) for f in nojournal]
        with Mount(uimg) as m:
            ours = [checkpoint(m.mnt, f) for f in nojournal]
        eq(ours, kern, 'no journal: errnos for flags %r' % nojournal)
        eq(ours[0], errno.ENODEV, 'no journal')
        fsck(kimg)
        fsck(uimg)
        kimg = mkfs(d + '/kj.img', size='32M')
        uimg = d + '/uj.img'
        shutil.copyfile(kimg, uimg)
        same = [0, DRY_RUN, DRY_RUN | DISCARD, DISCARD | ZEROOUT]
        with kernel_mount(kimg, d + '/kmnt', opts=['ro']) as kmnt:
            kern = [checkpoint(kmnt, f) for f in same]
        with Mount(uimg, opts=['ro']) as m:
            ours = [checkpoint(m.mnt, f) for f in same]
            erase = [checkpoint(m.mnt, f) for f in (DISCARD, ZEROOUT)]
        eq(ours, kern, 'read-only: errnos for flags %r' % same)
        eq(erase, [errno.EROFS] * 2, 'read-only: DISCARD, ZEROOUT')
        fsck(kimg)
        fsck(uimg)


def external_script(root, j):
    """CHECKPOINT through an external journal @j: the journal superblock's
    start, and the journal's blocks after its superblock, after each of
    a plain checkpoint, ZEROOUT and DISCARD."""
    log = []
    for name, flags in (('plain', 0), ('zeroout', ZEROOUT),
                        ('discard', DISCARD)):
        fsynced(root + '/' + name, name.encode() * 40000)
        log.append((name + ': start before', jsb_tail(j)[1] != 0))
        log.append((name, checkpoint(root, flags)))
        log.append((name + ': start after', jsb_tail(j)[1]))
        if flags:
            with open(j, 'rb') as f:
                tail = f.read()[2 * 4096:]
            log.append((name + ': log blocks zero', tail == bytes(len(tail))))
    return log


@test
def checkpoint_external_journal():
    """The same through an external journal (journal_path=): its
    superblock empty, its log blocks zeroed or punched out of its own
    file, as the kernel's with the journal behind a loop device."""
    with workdir() as d:
        kfs, kj = make_pair(d, name='k')
        ufs, uj = d + '/u.img', d + '/u-j.img'
        shutil.copyfile(kfs, ufs)
        shutil.copyfile(kj, uj)
        with kernel_mount_ext(kfs, kj, d + '/kmnt') as kmnt:
            kern = external_script(kmnt, kj)
        with Mount(ufs, opts=['journal_path=' + uj]) as m:
            before = allocated(uj)
            ours = external_script(m.mnt, uj)
            freed = before - allocated(uj)
        compare(kern, ours, 'CHECKPOINT through an external journal')
        if not all(v in (True, 0) for _, v in ours):
            raise TestFailure('unexpected answers: %r' % ours)
        if freed < 1 << 20:
            raise TestFailure('DISCARD gave back %d bytes of the journal'
                              % freed)
        fsck_ext(kfs, kj)
        fsck_ext(ufs, uj)


EXT4_IOC_SWAP_BOOT = _ioc(0, 17, 0)
SWAP_DATA = b''.join(b'%07d\n' % i for i in range(12800))   # 100 KiB


def swap_boot(path, flags=os.O_RDWR):
    fd = os.open(path, flags)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SWAP_BOOT, 0)
    finally:
        os.close(fd)


def extent_blocks(img, spec):
    """The physical blocks of @spec's extents, as debugfs lists them."""
    out = debugfs(img, 'stat %s' % spec)
    m = re.search(r'EXTENTS:\n(.*)', out)
    blocks = []
    for a, b in re.findall(r'\(\d+(?:-\d+)?\):(\d+)(?:-(\d+))?',
                           m.group(1) if m else ''):
        blocks.extend(range(int(a), int(b or a) + 1))
    return blocks


def boot_view(img):
    """What debugfs shows of the boot loader inode that does not depend on
    the allocator or the clock."""
    out = debugfs(img, 'stat <5>')
    keep = []
    for key in ('Type', 'Mode', 'Flags', 'User', 'Group', 'Size', 'Links',
                'Blockcount', 'Size of extra inode fields'):
        m = re.search(r'\b%s:\s*(\S+)' % key, out)
        keep.append((key, m.group(1) if m else None))
    keep.append(('extent blocks', len(extent_blocks(img, '<5>'))))
    return keep


def swap_script(root, img, user_file):
    """Each step's answer: refusals, then a swap there and back, with the
    file's bytes and the boot loader inode as debugfs sees it (after a
    checkpoint, so that the kernel's are home too)."""
    log = []
    fsynced(root + '/f', SWAP_DATA)
    fsynced(root + '/two', b'2')
    os.link(root + '/two', root + '/two-b')
    fsynced(root + '/a', b'a')
    os.mkdir(root + '/d')
    with open(root + '/u', 'wb') as f:
        f.write(b'user')
    os.chown(root + '/u', USER[0], USER[1])
    checkpoint(root, 0)
    log.append(('boot loader before', boot_view(img)))
    gen = getgen(root + '/f')
    log.append(('two links', errno_of(swap_boot, root + '/two')))
    log.append(('directory', errno_of(swap_boot, root + '/d', os.O_RDONLY)))
    log.append(('another user', run_as(*USER, errno_of, swap_boot, user_file)))
    from uext4test import setflags, getflags
    setflags(root + '/a', getflags(root + '/a') | 0x20)
    log.append(('append-only', errno_of(swap_boot, root + '/a',
                                        os.O_WRONLY | os.O_APPEND)))
    setflags(root + '/a', getflags(root + '/a') & ~0x20)
    blocks = extent_blocks(img, '/f')
    log.append(('swap', errno_of(swap_boot, root + '/f')))
    log.append(('file after', read_all(root + '/f')))
    checkpoint(root, 0)
    log.append(('boot loader after', boot_view(img)))
    log.append(('the boot loader has the file\'s blocks',
                extent_blocks(img, '<5>') == blocks and len(blocks) == 25))
    log.append(('generation changed', getgen(root + '/f') != gen))
    log.append(('swap back', errno_of(swap_boot, root + '/f')))
    log.append(('file after swapping back', read_all(root + '/f') == SWAP_DATA))
    checkpoint(root, 0)
    log.append(('boot loader at the end', boot_view(img)))
    return log


def getgen(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return struct.unpack('i', fcntl.ioctl(fd, FS_IOC_GETVERSION,
                                              bytes(8))[:4])[0]
    finally:
        os.close(fd)


def read_all(path):
    with open(path, 'rb') as f:
        return f.read()


@test
def swap_boot_like_kernel():
    """EXT4_IOC_SWAP_BOOT against the kernel, step by step: the refusals
    (two links EINVAL, a directory EBADF as it cannot be opened for
    writing, another user EPERM, append-only EPERM), then the swap: the
    file empty (the boot loader held nothing), the boot loader inode a
    root-owned regular file with the file's size, block count and extent
    blocks, the file's generation new; swapped back, the file's bytes are
    its own again. e2fsck -fn clean."""
    with workdir() as d:
        kimg = mkfs(d + '/k.img', size='32M')
        uimg = d + '/u.img'
        shutil.copyfile(kimg, uimg)
        with kernel_mount(kimg, d + '/kmnt') as kmnt:
            os.chmod(kmnt, 0o755)
            kern = swap_script(kmnt, kimg, kmnt + '/u')
        fsck(kimg)
        with Mount(uimg, opts=['allow_other']) as m:
            os.chmod(m.mnt, 0o755)
            ours = swap_script(m.mnt, uimg, m.path('u'))
        fsck(uimg)
        compare(kern, ours, 'EXT4_IOC_SWAP_BOOT')
        # Where the daemon sees opens it refuses a descriptor open for
        # reading only, as ext4 (EBADF); by default it cannot tell.
        with kernel_mount(kimg, d + '/kmnt') as kmnt:
            kern_ro = errno_of(swap_boot, kmnt + '/f', os.O_RDONLY)
        with Mount(uimg, opts=['no_default_permissions']) as m:
            ours_ro = errno_of(swap_boot, m.path('f'), os.O_RDONLY)
        eq((ours_ro, kern_ro), (errno.EBADF, errno.EBADF),
           'opened read-only (uext4, kernel)')
        fsck(kimg)
        fsck(uimg)
        want = dict(ours)
        if not (want['swap'] == 0 and want['file after'] == b''
                and want['file after swapping back'] is True
                and ('Size', str(len(SWAP_DATA))) in want['boot loader after']):
            raise TestFailure('unexpected answers: %r' % ours)


def cache_script(root, ro=False):
    """PRECACHE_EXTENTS, CLEAR_ES_CACHE and the two GETVERSIONs on a file
    and a directory, as root, the owner and another user."""
    log = []
    if not ro:
        with open(root + '/f', 'wb') as f:
            f.write(b'x' * 300000)
        os.mkdir(root + '/d')
        os.chown(root + '/f', USER[0], USER[1])
    other = (2000, 2000, ())
    for path in (root + '/f', root + '/d'):
        for cmd in (EXT4_IOC_PRECACHE_EXTENTS, EXT4_IOC_CLEAR_ES_CACHE):
            log.append((path[-1], cmd, 'root', ioctl(path, cmd)))
            log.append((path[-1], cmd, 'owner', run_as(*USER, ioctl, path, cmd)))
            log.append((path[-1], cmd, 'other', run_as(*other, ioctl, path, cmd)))
        versions = []
        for cmd in (FS_IOC_GETVERSION, EXT4_IOC_GETVERSION):
            fd = os.open(path, os.O_RDONLY)
            try:
                versions.append(struct.unpack(
                    'i', fcntl.ioctl(fd, cmd, bytes(8))[:4])[0])
            finally:
                os.close(fd)
        log.append((path[-1], 'both GETVERSIONs agree', versions[0] == versions[1]))
    return log


@test
def cache_ioctls_like_kernel():
    """PRECACHE_EXTENTS succeeds for anyone, CLEAR_ES_CACHE for the owner
    and root only (EACCES, not EPERM), read-only too; EXT4_IOC_GETVERSION
    answers FS_IOC_GETVERSION's generation."""
    with workdir() as d:
        kimg = mkfs(d + '/k.img', size='32M')
        uimg = d + '/u.img'
        shutil.copyfile(kimg, uimg)
        with kernel_mount(kimg, d + '/kmnt') as kmnt:
            os.chmod(kmnt, 0o755)
            kern = cache_script(kmnt)
        with Mount(uimg, opts=['allow_other']) as m:
            os.chmod(m.mnt, 0o755)
            ours = cache_script(m.mnt)
        eq(ours, kern, 'answers')
        with kernel_mount(kimg, d + '/kmnt', opts=['ro']) as kmnt:
            kern = cache_script(kmnt, ro=True)
        with Mount(uimg, opts=['allow_other', 'ro']) as m:
            ours = cache_script(m.mnt, ro=True)
        eq(ours, kern, 'answers on a read-only mount')
        if ('f', EXT4_IOC_CLEAR_ES_CACHE, 'other', errno.EACCES) not in ours:
            raise TestFailure('CLEAR_ES_CACHE by another user: %r' % ours)
        fsck(kimg)
        fsck(uimg)


def _ioc_t(direction, typ, nr, size):
    return (direction << 30) | (size << 16) | (ord(typ) << 8) | nr


# (name, command, argument size, uext4's errno, reaches the daemon). The
# VFS answers the first group itself (fs/ioctl.c do_vfs_ioctl, file_ioctl);
# FUSE (fs/fuse/ioctl.c) forwards the rest in restricted mode, with
# _IOC_SIZE bytes in for _IOW and out for _IOR, which for these is not
# what ext4 reads or writes, so uext4 answers ENOTTY; the fscrypt ones
# EOPNOTSUPP as ext4 without `encrypt` (compared with the kernel below).
VFS_ANSWERS = [
    ('FIGETBSZ', 0x2, 4, 0), ('FIONREAD', 0x541b, 4, 0),
    ('FIOQSIZE', 0x5460, 8, 0), ('FIBMAP', 0x1, 4, 0),
    ('FS_IOC_FIEMAP', 0xc020660b, 32, errno.EOPNOTSUPP),
    ('FS_IOC_GETFSUUID', _ioc_t(2, '\x15', 0, 17), 17, errno.ENOTTY),
    ('FS_IOC_GETFSSYSFSPATH', _ioc_t(2, '\x15', 1, 129), 129, errno.ENOTTY),
]
FORWARDED_ENOTTY = [
    ('EXT4_IOC_GETSTATE', _ioc(1, 41, 4), 4),
    ('EXT4_IOC_GET_ES_CACHE', _ioc(3, 42, 32), 32),
    ('FS_IOC_GETFSMAP', 0xc0c0583b, 192),
    ('EXT4_IOC_MOVE_EXT', _ioc(3, 15, 40), 40),
    ('EXT4_IOC_SHUTDOWN', _ioc_t(2, 'X', 125, 4), 4),
    ('EXT4_IOC_GETFSUUID', _ioc(2, 44, 8), 8),
    ('EXT4_IOC_SETFSUUID', _ioc(1, 44, 8), 8),
    ('EXT4_IOC_GROUP_EXTEND', _ioc(1, 7, 8), 8),
    ('EXT4_IOC_GROUP_ADD', _ioc(1, 8, 40), 40),
    ('EXT4_IOC_MIGRATE', _ioc(0, 9, 0), 0),
    ('EXT4_IOC_ALLOC_DA_BLKS', _ioc(0, 12, 0), 0),
    ('EXT4_IOC_SETVERSION', _ioc(1, 4, 8), 8),
    ('FS_IOC_SETVERSION', 0x40087602, 8),
    ('FS_IOC_READ_VERITY_METADATA', 0xc0286687, 40),
]
FSCRYPT = [
    ('FS_IOC_SET_ENCRYPTION_POLICY', 0x800c6613, 12),
    ('FS_IOC_GET_ENCRYPTION_PWSALT', 0x40106614, 16),
    ('FS_IOC_GET_ENCRYPTION_POLICY', 0x400c6615, 12),
    ('FS_IOC_GET_ENCRYPTION_POLICY_EX', 0xc0096616, 9),
    ('FS_IOC_ADD_ENCRYPTION_KEY', 0xc0506617, 80),
    ('FS_IOC_REMOVE_ENCRYPTION_KEY', 0xc0406618, 64),
    ('FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS', 0xc0406619, 64),
    ('FS_IOC_GET_ENCRYPTION_KEY_STATUS', 0xc080661a, 128),
    ('FS_IOC_GET_ENCRYPTION_NONCE', 0x8010661b, 16),
]


def counted(sock, path, cmd, size):
    """(errno, FUSE requests the daemon took) of ioctl(@cmd) with @size
    zero bytes on @path, opened before counting."""
    fd = os.open(path, os.O_RDONLY)
    try:
        before = daemon_requests(sock)
        try:
            fcntl.ioctl(fd, cmd, bytes(size) if size else 0)
            err = 0
        except OSError as e:
            err = e.errno
        return err, daemon_requests(sock) - before
    finally:
        os.close(fd)


def vfs_rw_ioctls(sock, path, other):
    """FICLONE from @other into @path (the VFS: FUSE has no remap), and
    FS_IOC_RESVSP of 64 KiB (the VFS turns it into a FALLOCATE)."""
    with open(other, 'wb') as f:
        f.write(b'y' * 4096)
    out = []
    fd = os.open(path, os.O_RDWR)
    src = os.open(other, os.O_RDONLY)
    try:
        for cmd, arg in ((0x40049409, src),
                         (0x40305828, struct.pack('hhqqiI4i', 0, 0, 0, 65536,
                                                  0, 0, 0, 0, 0, 0))):
            before = daemon_requests(sock)
            try:
                fcntl.ioctl(fd, cmd, arg)
                err = 0
            except OSError as e:
                err = e.errno
            n = daemon_requests(sock) - before
            out.append((err, n) if cmd == 0x40049409 else (err, n >= 1))
    finally:
        os.close(src)
        os.close(fd)
    return out


@test
def which_ioctls_reach_the_daemon():
    """The README's list, checked: the ioctls the VFS answers leave the
    daemon's request counter as it was; the ext4 ones FUSE cannot carry
    reach it and are ENOTTY (GETSTATE's answer could not be copied back,
    GETFSMAP and GET_ES_CACHE have variable-length output, MOVE_EXT names a
    descriptor of the caller, SHUTDOWN's flags are declared _IOR and so
    never copied in, ...); FIFREEZE is the VFS's EOPNOTSUPP (FUSE cannot
    freeze); the fscrypt ones are EOPNOTSUPP as on the kernel's ext4 of
    the same image."""
    with workdir() as d:
        kimg = mkfs(d + '/k.img', size='32M')
        uimg = d + '/u.img'
        shutil.copyfile(kimg, uimg)
        with kernel_mount(kimg, d + '/kmnt') as kmnt:
            with open(kmnt + '/f', 'wb') as f:
                f.write(b'x' * 5000)
            kern = [ioctl(kmnt + '/f', cmd, bytes(size))
                    for _, cmd, size in FSCRYPT]
        with Mount(uimg) as m:
            with open(m.path('f'), 'wb') as f:
                f.write(b'x' * 5000)
            sock = control_socket(m.mnt)
            got = {}
            for name, cmd, size, want in VFS_ANSWERS:
                got[name] = counted(sock, m.path('f'), cmd, size)
                eq(got[name], (want, 0), name + ' (errno, requests)')
            for name, cmd, size in FORWARDED_ENOTTY:
                err, n = counted(sock, m.path('f'), cmd, size)
                eq((err, n >= 1), (errno.ENOTTY, True),
                   name + ' (errno, reached the daemon)')
            ours = []
            for name, cmd, size in FSCRYPT:
                err, n = counted(sock, m.path('f'), cmd, size)
                eq(n >= 1, True, name + ' reached the daemon')
                ours.append(err)
            try:
                eq(counted(sock, m.mnt, 0xc0045877, 4),
                   (errno.EOPNOTSUPP, 0), 'FIFREEZE (errno, requests)')
            finally:
                eq(counted(sock, m.mnt, 0xc0045878, 4), (errno.EINVAL, 0),
                   'FITHAW (errno, requests)')
            eq(vfs_rw_ioctls(sock, m.path('f'), m.path('g')),
               [(errno.EOPNOTSUPP, 0), (0, True)],
               'FICLONE (errno, requests), FS_IOC_RESVSP (errno, reached)')
        eq(ours, kern, 'fscrypt errnos (%s)' % ', '.join(n for n, _, _ in FSCRYPT))
        eq(ours, [errno.EOPNOTSUPP] * len(FSCRYPT), 'fscrypt errnos')
        fsck(kimg)
        fsck(uimg)


if __name__ == '__main__':
    main(setup)

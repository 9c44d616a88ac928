#!/usr/bin/env python3
"""quota and project (-O quota,project -I 256).

The kernel here has no quota format (CONFIG_QFMT_V2): it refuses to mount
an image with the quota or project feature. So the kernel comparison runs the
workload (creates, writes, chown, chgrp, unlink, truncate, fallocate,
punch, xattr blocks, mkdir/rmdir, symlinks, hard links) on a kernel loop
mount of a copy of an image without quota, and on uext4 over a copy that
tune2fs gave quota files (usage computed by e2fsprogs); after the kernel's
unmount, tune2fs adds quota files to the kernel's copy, which is e2fsprogs'
count of what the kernel left. The usage of every user and group id
(debugfs list_quota) must match uext4's, kept as it went. Then a project
workload (FS_IOC_FSSETXATTR, PROJINHERIT inheritance, EXDEV for links and
renames into another project's tree) on uext4, its usage compared with a
recount by tune2fs on a copy. e2fsck -fn (which recounts all usage) on
every image, and the usage after a journal replay.

Runs only as root where loop mounts work, else exits 77."""

import errno
import fcntl
import os
import shutil
import struct
import time

import test_kernel_diff as kd
import uext4test
from uext4quota import (FS_IOC_FSGETXATTR, FSXATTR, check_tree, checked_usage,
                        e2fsck_recount, set_project, uexec_debugfs, usage)
from uext4test import (Mount, TestFailure, check, eq, expect_errno_as, fsck,
                       kernel_mount, main, mkfs, pattern, run, run_as,
                       sb_field, test, workdir, write_file)

FEATURES = ['quota', 'project']
OPTS = ['-I', '256']


def get_project(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(FSXATTR.size)
        fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf)
        return FSXATTR.unpack(buf)[3]
    finally:
        os.close(fd)


def script(root):
    log = []

    def P(*parts):
        return os.path.join(root, *parts)

    def r(name, fn, *args):
        try:
            res = fn(*args)
        except OSError as e:
            res = 'E%d' % e.errno
        log.append((name, res))

    r('mkdir d', os.mkdir, P('d'))
    r('write d/f', kd.write_at, P('d', 'f'), pattern(100000, 1), 0)
    r('chown d/f', os.chown, P('d', 'f'), 1000, 1001)
    r('chown d', os.chown, P('d'), 1000, 1000)
    for i in range(40):
        r('small %d' % i, kd.write_at, P('s%02d' % i), b's' * (i * 300), 0)
        r('chown small %d' % i, os.chown, P('s%02d' % i), 2000 + 97 * i,
          3000 + i % 7)
    for i in range(0, 40, 3):
        r('unlink small %d' % i, os.unlink, P('s%02d' % i))
    r('chgrp s01', os.chown, P('s01'), -1, 1001)
    r('write t', kd.write_at, P('t'), pattern(300000, 2), 0)
    r('chown t', os.chown, P('t'), 1000, -1)
    r('truncate t', os.truncate, P('t'), 70000)
    r('falloc u', kd.falloc, P('u'), 0, 0, 200000)
    r('chown u', os.chown, P('u'), 1002, 1002)
    r('falloc keep u', kd.falloc, P('u'), kd.FALLOC_FL_KEEP_SIZE, 200000,
      100000)
    r('punch u', kd.falloc, P('u'),
      kd.FALLOC_FL_PUNCH_HOLE | kd.FALLOC_FL_KEEP_SIZE, 8192, 16384)
    r('xattr block', os.setxattr, P('d', 'f'), 'user.big', pattern(3000, 3))
    r('xattr block 2', os.setxattr, P('s02'), 'user.big', pattern(2500, 4))
    r('xattr removed', os.removexattr, P('s02'), 'user.big')
    r('mkdir e', os.mkdir, P('e'))
    for i in range(30):
        r('e entry %d' % i, os.mknod, P('e', 'entry-with-a-long-name-%04d' % i))
    for i in range(30):
        r('e unlink %d' % i, os.unlink, P('e', 'entry-with-a-long-name-%04d' % i))
    r('rmdir e', os.rmdir, P('e'))
    r('symlink', os.symlink, 'x' * 300, P('link'))
    r('lchown symlink', os.lchown, P('link'), 1003, 1003)
    r('hard link', os.link, P('d', 'f'), P('f2'))
    r('unlink d/f', os.unlink, P('d', 'f'))
    return log


def project_script(root):
    log = []

    def P(*parts):
        return os.path.join(root, *parts)

    def r(name, fn, *args):
        try:
            res = fn(*args)
        except OSError as e:
            res = 'E%d' % e.errno
        log.append((name, res))

    # Projects: a PROJINHERIT tree, a file moved in its charge by
    # FSSETXATTR, and the boundaries link and rename may not cross.
    r('mkdir p', os.mkdir, P('p'))
    r('project p', set_project, P('p'), 42, True)
    r('write p/a', kd.write_at, P('p', 'a'), pattern(50000, 5), 0)
    r('mkdir p/sub', os.mkdir, P('p', 'sub'))
    r('write p/sub/b', kd.write_at, P('p', 'sub', 'b'), pattern(9000, 6), 0)
    r('chown p/sub/b', os.chown, P('p', 'sub', 'b'), 1000, 1000)
    r('projid p/sub', get_project, P('p', 'sub'))
    r('projid p/sub/b', get_project, P('p', 'sub', 'b'))
    r('project t', set_project, P('t'), 7, False)
    r('projid t', get_project, P('t'))
    r('rename into p', os.rename, P('s04'), P('p', 's04'))
    r('link into p', os.link, P('s05'), P('p', 's05'))
    r('rename out of p', os.rename, P('p', 'a'), P('a'))
    r('rename within p', os.rename, P('p', 'a'), P('p', 'sub', 'a'))
    r('project s07 42', set_project, P('s07'), 42, False)
    r('rename s07 into p', os.rename, P('s07'), P('p', 's07'))
    r('mkdir q', os.mkdir, P('q'))
    r('project q', set_project, P('q'), 43, True)
    r('write q/c', kd.write_at, P('q', 'c'), pattern(20000, 7), 0)
    r('rename p/sub into q', os.rename, P('p', 'sub'), P('q', 'sub'))
    r('unlink q/c', os.unlink, P('q', 'c'))
    return log


def make_image(path):
    return mkfs(path, size='64M', features=FEATURES, opts=OPTS)


def recount(img, d):
    """e2fsprogs' count of @img's usage: the quota files made again."""
    copy = d + '/recount.img'
    shutil.copyfile(img, copy)
    run(['tune2fs', '-O', '^quota', copy])
    run(['tune2fs', '-O', 'quota', '-Q', 'usrquota,grpquota,prjquota', copy])
    return usage(copy)


def add_quota(img):
    run(['tune2fs', '-O', 'quota,project', '-Q', 'usrquota,grpquota,prjquota',
         img])


@test
def quota_kernel_compare():
    with workdir() as d:
        kimg = mkfs(d + '/kernel.img', size='64M', opts=OPTS)
        uimg = d + '/uext4.img'
        shutil.copyfile(kimg, uimg)
        add_quota(uimg)
        kmnt = d + '/kmnt'
        os.mkdir(kmnt)
        run(['mount', '-t', 'ext4', '-o', 'loop', kimg, kmnt])
        try:
            klog = script(kmnt)
        finally:
            run(['umount', kmnt])
        fsck(kimg)
        add_quota(kimg)
        fsck(kimg)
        with Mount(uimg) as m:
            ulog = script(m.mnt)
        fsck(uimg)
        kq, uq = usage(kimg), usage(uimg)
        check(len(kq) > 40, 'the kernel charged only %d ids' % len(kq))
        check_tree(uimg, 3)
        check_tree(uimg, 4)
        problems = [kd.diff('operation results', klog, ulog),
                    kd.diff('quota usage (space, inodes)', kq, uq)]
        problems = [p for p in problems if p]
        if problems:
            raise TestFailure('\n'.join(problems))


# What ext4 answers (ext4_link, ext4_rename: EXDEV into a PROJINHERIT
# directory of another project; FSGETXATTR shows the inherited id).
PROJECT_RESULTS = {
    'projid p/sub': 42, 'projid p/sub/b': 42, 'projid t': 7,
    'rename into p': 'E18', 'link into p': 'E18', 'rename out of p': None,
    'rename within p': 'E2', 'rename s07 into p': None,
    'rename p/sub into q': 'E18',
}


@test
def quota_projects():
    with workdir() as d:
        img = make_image(d + '/img')
        with Mount(img) as m:
            script(m.mnt)
            log = project_script(m.mnt)
        fsck(img)
        got = dict(log)
        for k, want in PROJECT_RESULTS.items():
            eq(got[k], want, k)
        others = [(k, v) for k, v in log
                  if k not in PROJECT_RESULTS and v not in (None, 9000, 20000,
                                                            50000)]
        eq(others, [], 'operations that failed')
        q = usage(img)
        check(q.get('project 42', (0, 0))[1] >= 4,
              'project 42 usage: %r' % (q.get('project 42'),))
        check('project 7' in q and 'project 43' in q,
              'projects 7 and 43 not charged: %r' % sorted(q))
        problem = kd.diff('quota usage (space, inodes)', recount(img, d), q)
        if problem:
            raise TestFailure(problem)
        check_tree(img, int(sb_field(img, 'Project quota inode')))


@test
def quota_after_replay():
    """The quota files commit with the changes they count: a daemon
    killed after an fsync leaves a journal whose replay (by e2fsprogs)
    gives usage e2fsck agrees with."""
    with workdir() as d:
        img = make_image(d + '/img')
        m = Mount(img, opts=['commit=3600'], expect_clean_exit=False)
        with m:
            os.mkdir(m.path('d'))
            for i in range(20):
                kd.write_at(m.path('d', 'f%d' % i), pattern(5000 * i, i), 0)
                os.chown(m.path('d', 'f%d' % i), 5000 + i, 6000 + i)
            kd.fsync(m.path('d', 'f19'))
            m.proc.kill()
            m.proc.wait(30)
        # e2fsprogs replays the journal (the kernel here has no quota
        # support to mount the image); e2fsck -fn then recounts.
        check('needs_recovery' in run(['dumpe2fs', '-h', img]).stdout.decode(),
              'the killed daemon left no journal to replay')
        run(['e2fsck', '-E', 'journal_only', '-y', img])
        fsck(img)
        q = usage(img)
        eq(q.get('user 5019'), (98304, 1), 'user 5019 usage after replay')


@test
def quota_many_ids():
    """Hundreds of ids on 1 KiB blocks (a quota block per file system
    block), with inline directories: the quota files grow by tree and data
    blocks; an unlinked file still open is uncharged with its last link
    (as e2fsck counts) and freed at close."""
    with workdir() as d:
        img = mkfs(d + '/img', size='64M', features=FEATURES + ['inline_data'],
                   opts=OPTS + ['-b', '1024'])
        ids = [(i * 7919) % 200003 for i in range(1, 700)] + [65536, 1 << 24]
        with Mount(img) as m:
            for i, qid in enumerate(ids):
                p = m.path('f%d' % i)
                kd.write_at(p, b'q' * (i % 5) * 700, 0)
                os.chown(p, qid, qid + 1)
            os.mkdir(m.path('dir'))
            os.chown(m.path('dir'), 4242, 4242)
            for i in range(0, len(ids), 4):
                os.unlink(m.path('f%d' % i))
            fd = os.open(m.path('f1'), os.O_RDWR)
            try:
                os.unlink(m.path('f1'))
                os.pwrite(fd, b'z' * 50000, 0)
                os.fsync(fd)
            finally:
                os.close(fd)
        fsck(img)
        q = usage(img)
        problem = kd.diff('quota usage (space, inodes)', recount(img, d), q)
        if problem:
            raise TestFailure(problem)
        check(q.get('user 4242') == (0, 1), 'inline directory charged %r'
              % (q.get('user 4242'),))
        check(check_tree(img, 3) > 500, 'too few user entries')
        check(check_tree(img, 4) > 500, 'too few group entries')


def copy_range(src, dst, off):
    fi = os.open(src, os.O_RDONLY)
    try:
        fo = os.open(dst, os.O_WRONLY)
        try:
            return os.copy_file_range(fi, fo, 8192, 0, off)
        finally:
            os.close(fo)
    finally:
        os.close(fi)


def entry_offset(img, qtype, qid):
    """Where @qid's entry (the vfsv1 tree's v2r1_disk_dqblk) of the quota
    file of @qtype is in the image file (the entry must exist)."""
    inum = {'user': 3, 'group': 4}[qtype]
    data = run(['debugfs', '-R', 'cat <%d>' % inum, img]).stdout
    blocks = run(['debugfs', '-R', 'blocks <%d>' % inum, img]).stdout.split()
    bs = 4096
    ref = 1
    for depth in range(4):
        idx = (qid >> ((3 - depth) * 8)) & 0xff
        ref = struct.unpack_from('<I', data, ref * 1024 + 4 * idx)[0]
        check(ref != 0, 'id %d has no entry in the %s quota file'
              % (qid, qtype))
    for i in range(14):
        off = ref * 1024 + 16 + 72 * i
        if struct.unpack_from('<I', data, off)[0] == qid and \
                any(data[off:off + 72]):
            break
    else:
        raise TestFailure('id %d not in its data block' % qid)
    return int(blocks[off // bs]) * bs + off % bs


# v2r1_disk_dqblk after the id and its padding.
DQBLK = struct.Struct('<QQQQQQQQ')
DQBLK_FIELDS = ('ihard', 'isoft', 'curinodes', 'bhard', 'bsoft', 'curspace',
                'btime', 'itime')


def read_entry(img, qtype, qid):
    with open(img, 'rb') as f:
        f.seek(entry_offset(img, qtype, qid) + 8)
        return dict(zip(DQBLK_FIELDS, DQBLK.unpack(f.read(DQBLK.size))))


def write_limits(img, qtype, qid, bhard_kib=0, ihard=0, bsoft_kib=0,
                 isoft=0, **times):
    """Set the limits (and the grace times btime=, itime= if given) of
    @qid's entry in the quota file of @qtype: a small writer of the vfsv1
    tree, standing in for setquota(8), whose quotactl(2) does not reach a
    FUSE daemon."""
    e = read_entry(img, qtype, qid)
    e.update(ihard=ihard, isoft=isoft, bhard=bhard_kib, bsoft=bsoft_kib,
             **times)
    with open(img, 'r+b') as f:
        f.seek(entry_offset(img, qtype, qid) + 8)
        f.write(DQBLK.pack(*(e[k] for k in DQBLK_FIELDS)))


def write_grace(img, qtype, bgrace, igrace):
    """The grace periods of the quota file of @qtype (dqi_bgrace,
    dqi_igrace: the info after the 8-byte header of its first block)."""
    inum = {'user': 3, 'group': 4}[qtype]
    blocks = run(['debugfs', '-R', 'blocks <%d>' % inum, img]).stdout.split()
    with open(img, 'r+b') as f:
        f.seek(int(blocks[0]) * 4096 + 8)
        f.write(struct.pack('<II', bgrace, igrace))


@test
def quota_hard_limits():
    """Hard limits (written into the quota files by write_limits):
    EDQUOT for an ordinary user's creates, mkdir and fallocate past
    them, a write cut short at the limit then EDQUOT, a chgrp past the
    new group's limit, as ext4 with usrquota,grpquota; root passes them."""
    with workdir() as d:
        img = make_image(d + '/img')
        os.chmod(d, 0o755)
        with Mount(img) as m:
            os.mkdir(m.path('home'))
            os.chown(m.path('home'), 1000, 1000)
            os.mknod(m.path('g1001'))
            os.chown(m.path('g1001'), 0, 1001)
        write_limits(img, 'user', 1000, bhard_kib=256, ihard=5)
        write_limits(img, 'group', 1001, bhard_kib=4)
        fsck(img)
        cred = (1000, 1000, [])
        with Mount(img, opts=['allow_other']) as m:
            home = m.path('home')

            def h(name):
                return os.path.join(home, name)

            # 1 inode used (home): 4 more may be made.
            for i in range(4):
                run_as(1000, 1000, [], os.mknod, h('n%d' % i))
            expect_errno_as(cred, errno.EDQUOT, os.mknod, h('n4'))
            expect_errno_as(cred, errno.EDQUOT, os.mkdir, h('dd'))
            os.unlink(h('n3'))
            run_as(1000, 1000, [], os.mkdir, h('dd'))
            # 8 KiB used (home's and dd's blocks): 248 KiB left.
            eq(run_as(1000, 1000, [], kd.write_at, h('n0'),
                      b'a' * 200 * 1024, 0), 200 * 1024, 'write under the limit')
            # Overwriting allocates nothing.
            eq(run_as(1000, 1000, [], kd.write_at, h('n0'),
                      b'A' * 200 * 1024, 0), 200 * 1024, 'overwrite')
            expect_errno_as(cred, errno.EDQUOT, kd.falloc, h('n1'), 0, 0,
                            100 * 1024)
            eq(run_as(1000, 1000, [], kd.write_at, h('n1'),
                      b'b' * 100 * 1024, 0), 48 * 1024,
               'a write past the limit, cut short')
            expect_errno_as(cred, errno.EDQUOT, kd.write_at, h('n1'),
                            b'b' * 4096, 48 * 1024)
            expect_errno_as(cred, errno.EDQUOT, copy_range, h('n0'), h('n1'),
                            48 * 1024)
            # chgrp moves the file's charge: not past the group's limit.
            expect_errno_as((1000, 1000, [1001]), errno.EDQUOT, os.chown,
                            h('n0'), -1, 1001)
            run_as(1000, 1000, [1001], os.chown, h('n2'), -1, 1001)
            # Root is not limited, even in the user's files.
            os.chown(h('n0'), -1, 1001)
            os.mknod(h('root-made'))
            os.chown(h('root-made'), 1000, 1000)
            kd.write_at(h('n2'), b'c' * 300 * 1024, 0)
        fsck(img)
        q = usage(img)
        eq(q['user 1000'], (8192 + 248 * 1024 + 300 * 1024, 6),
           'usage of user 1000')



def repquota(img, d):
    """quota-tools' reading of @img's user quota file: {id: [used KiB,
    soft, hard, btime, inodes, soft, hard, itime]}. repquota reads an
    aquota.user itself where the kernel's quota is off (this kernel has no
    CONFIG_QUOTA): a copy in a kernel loop mount of a plain image with
    usrquota."""
    plain = mkfs(d + '/repquota.img', size='16M')
    with kernel_mount(plain, d + '/rq', ['usrquota']) as mnt:
        run(['debugfs', '-R', 'dump <3> %s/aquota.user' % mnt, img])
        out = run(['repquota', '-F', 'vfsv1', '-u', '-n', '-p', mnt]).stdout
    rows = {}
    for line in out.decode(errors='replace').splitlines():
        f = line.split()
        if len(f) == 10 and f[0].startswith('#'):
            rows[int(f[0][1:])] = [int(x) for x in f[2:]]
    fsck(plain)
    return rows


def commit(path):
    """fsync @path: uext4 commits, with the quota charges before it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@test
def quota_soft_limits():
    """Soft limits and grace times, by the kernel's dquot rules: at the soft
    limit nothing starts; past it the grace period starts (btime, itime =
    the daemon's time + the file's grace, written at the commit) and
    allocation goes on; once it has ended creates and allocating writes give
    EDQUOT (a write is cut short at the soft limit), overwrites and root
    pass; back at the limit or under, the time is cleared and a new excess
    starts a new grace period. e2fsck -fn and debugfs read the file."""
    grace = 4
    with workdir() as d:
        img = make_image(d + '/img')
        os.chmod(d, 0o755)
        with Mount(img) as m:
            os.mkdir(m.path('home'))
            os.chown(m.path('home'), 1000, 1000)
        # home: 4 KiB and 1 inode of 64 KiB and 3 inodes.
        write_limits(img, 'user', 1000, bsoft_kib=64, isoft=3)
        write_grace(img, 'user', grace, grace)
        fsck(img)
        cred = (1000, 1000, [])

        def as_user(fn, *args):
            return run_as(1000, 1000, [], fn, *args)

        with Mount(img, opts=['allow_other']) as m:
            home = m.path('home')
            as_user(os.mknod, os.path.join(home, 'n0'))
            as_user(os.mknod, os.path.join(home, 'n1'))
            eq(as_user(kd.write_at, os.path.join(home, 'n0'), b'a' * 60 * 1024,
                       0), 60 * 1024, 'write up to the soft limit')
        fsck(img)
        e = read_entry(img, 'user', 1000)
        eq((e['curspace'], e['curinodes'], e['btime'], e['itime']),
           (64 * 1024, 3, 0, 0), 'at the soft limits: no grace period')

        with Mount(img, opts=['allow_other']) as m:
            home = m.path('home')
            t0 = int(time.time())
            as_user(os.mknod, os.path.join(home, 'n2'))
            eq(as_user(kd.write_at, os.path.join(home, 'n1'), b'b' * 4096, 0),
               4096, 'write past the soft limit, in the grace period')
            commit(home)
            t1 = int(time.time())
            # Still in the grace period: more may be allocated.
            as_user(os.mknod, os.path.join(home, 'n3'))
            eq(as_user(kd.write_at, os.path.join(home, 'n1'), b'b' * 4096,
                       4096), 4096, 'write in the grace period')
        fsck(img)
        e = read_entry(img, 'user', 1000)
        eq((e['curspace'], e['curinodes']), (72 * 1024, 5), 'usage')
        for k in ('btime', 'itime'):
            check(t0 + grace <= e[k] <= t1 + grace,
                  '%s %d not the commit time + grace (%d..%d)'
                  % (k, e[k], t0 + grace, t1 + grace))
        eq(usage(img)['user 1000'], (72 * 1024, 5), 'debugfs list_quota')
        eq(repquota(img, d).get(1000),
           [72, 64, 0, e['btime'], 5, 3, 0, e['itime']], 'repquota of user 1000')
        text = uexec_debugfs(img, 'get_quota user 1000')
        check(' 64 ' in text and ' 3 ' in text,
              'debugfs get_quota shows no soft limits: %r' % text)

        with Mount(img, opts=['allow_other']) as m:
            home = m.path('home')

            def h(name):
                return os.path.join(home, name)

            # The daemon's clock past both times: the soft limits refuse.
            while time.time() < max(e['btime'], e['itime']):
                time.sleep(0.2)
            expect_errno_as(cred, errno.EDQUOT, os.mknod, h('n4'))
            expect_errno_as(cred, errno.EDQUOT, os.mkdir, h('dd'))
            expect_errno_as(cred, errno.EDQUOT, kd.write_at, h('n1'),
                            b'c' * 4096, 8192)
            eq(as_user(kd.write_at, h('n0'), b'A' * 60 * 1024, 0), 60 * 1024,
               'overwrite after the grace period')
            os.mknod(h('root-made'))
            # Back to the limits: both times cleared, n1 may grow again
            # (no longer past the soft limit), a new inode starts a new
            # grace period.
            os.unlink(h('n3'))
            os.unlink(h('n2'))
            os.truncate(h('n1'), 0)
            commit(home)
            t2 = int(time.time())
            eq(as_user(kd.write_at, h('n1'), b'd' * 8192, 0), 8192,
               'write after usage fell to the soft limit')
            as_user(os.mknod, h('n2'))
            commit(home)
            t3 = int(time.time())
        fsck(img)
        e = read_entry(img, 'user', 1000)
        eq((e['curspace'], e['curinodes']), (72 * 1024, 4), 'usage at the end')
        for k in ('btime', 'itime'):
            check(t2 + grace <= e[k] <= t3 + grace,
                  '%s %d is not a new grace period (%d..%d)'
                  % (k, e[k], t2 + grace, t3 + grace))


@test
def quota_ea_inode():
    """quota with ea_inode, read-write: values in EA inodes charge their
    blocks (i_blocks) and one inode per reference to the owner's user,
    group and project, moved by chown, chgrp and project changes, dropped
    when replaced inline, removed or when the last link goes; e2fsck -fn
    (which counts them so) finds the files right, and the usage is
    e2fsck's recount; the values read back byte for byte. A chgrp past
    the new group's inode limit counts the references too."""
    with workdir() as d:
        img = mkfs(d + '/img', size='64M', features=FEATURES + ['ea_inode'],
                   opts=OPTS)
        values = {}
        with Mount(img) as m:
            def mk(name, uid, gid):
                os.mknod(m.path(name))
                os.chown(m.path(name), uid, gid)

            def setx(name, key, n, seed):
                os.setxattr(m.path(name), key, pattern(n, seed))
                values[(name, key)] = pattern(n, seed)

            mk('f1', 1000, 1000)
            setx('f1', 'user.a', 20000, 1)
            setx('f1', 'user.b', 5000, 2)
            set_project(m.path('f1'), 42, False)
            mk('f2', 1001, 1001)
            setx('f2', 'user.a', 60000, 3)
            setx('f2', 'user.a', 30000, 4)
            setx('f2', 'user.a', 40, 5)
            setx('f2', 'user.c', 9000, 6)
            os.removexattr(m.path('f2'), 'user.c')
            del values[('f2', 'user.c')]
            os.mknod(m.path('f3'))
            setx('f3', 'user.a', 60000, 7)
            os.chown(m.path('f3'), 1002, 1003)
            mk('f4', 1003, 1003)
            setx('f4', 'user.a', 60000, 8)
            os.unlink(m.path('f4'))
            del values[('f4', 'user.a')]
            mk('f5', 1004, 1004)
            setx('f5', 'user.a', 40000, 9)
            os.link(m.path('f5'), m.path('f5b'))
            os.unlink(m.path('f5'))
            values[('f5b', 'user.a')] = values.pop(('f5', 'user.a'))
            os.mkdir(m.path('dir'))
            os.chown(m.path('dir'), 1005, 1005)
            setx('dir', 'user.a', 30000, 10)
            os.chown(m.path('dir'), -1, 1006)
            mk('f6', 1007, 1007)
            setx('f6', 'user.a', 20000, 11)
            fd = os.open(m.path('f6'), os.O_RDONLY)
            try:
                os.unlink(m.path('f6'))
                os.setxattr(fd, 'user.b', pattern(10000, 12))
                commit(m.path('.'))
            finally:
                os.close(fd)
            del values[('f6', 'user.a')]
        fsck(img)
        q = usage(img)
        problem = kd.diff('quota usage (space, inodes)', e2fsck_recount(img, d),
                          q)
        if problem:
            raise TestFailure(problem)
        # Each reference is an inode of its owner's.
        eq(q.get('user 1000'), (28 * 1024, 3), 'f1: two EA inodes')
        eq(q.get('project 42'), (28 * 1024, 3), 'f1 in project 42')
        eq(q.get('user 1002'), (60 * 1024, 2), 'f3 after its chown')
        eq(q.get('group 1006'), (4096 + 32 * 1024, 2), 'dir after its chgrp')
        eq(q.get('user 1001'), (0, 1), 'f2: its value back in the inode')
        with Mount(img, opts=['ro']) as m:
            for (name, key), want in sorted(values.items()):
                eq(os.getxattr(m.path(name), key), want,
                   '%s %s' % (name, key))
        # A chgrp moves 1 + the references (ext4_get_inode_usage) past
        # the new group's inode limit: group 1006 (2 inodes) may take 2.
        write_limits(img, 'group', 1006, ihard=4)
        os.chmod(d, 0o755)
        with Mount(img, opts=['allow_other']) as m:
            expect_errno_as((1000, 1000, [1006]), errno.EDQUOT, os.chown,
                            m.path('f1'), -1, 1006)
            run_as(1004, 1004, [1006], os.chown, m.path('f5b'), -1, 1006)
        fsck(img)
        q = usage(img)
        eq((q.get('group 1006'), q.get('group 1000'), q.get('group 1004')),
           ((4096 + 72 * 1024, 4), (28 * 1024, 3), None),
           'groups after the chgrps')


@test
def quota_ea_inode_limits():
    """A value that needs a new EA inode costs its file's ids one inode and
    the value's clusters first (ext4_xattr_inode_alloc_quota): for a user
    other than root, EDQUOT at an inode hard limit, a soft one whose grace
    has ended, and a block hard limit, with nothing changed; replacing a
    value in an EA inode by another needs one more inode meanwhile; values
    kept in the inode, and root, pass. e2fsck -fn clean, usage e2fsck's
    recount, the values byte for byte."""
    with workdir() as d:
        img = mkfs(d + '/img', size='64M', features=FEATURES + ['ea_inode'],
                   opts=OPTS)
        os.chmod(d, 0o755)
        values = {}
        with Mount(img) as m:
            for name, uid in (('f0', 1000), ('f1', 1000), ('g0', 1001),
                              ('h0', 1002)):
                os.mknod(m.path(name), 0o666)
                os.chown(m.path(name), uid, uid)
            os.setxattr(m.path('f0'), 'user.a', pattern(20000, 1))
            values[('f0', 'user.a')] = pattern(20000, 1)
        # User 1000: f0, f1 and f0's EA inode, 4 allowed. User 1001: 16 KiB.
        # User 1002: past a soft limit of 1 inode once it has 2, its grace
        # long over (itime 1).
        write_limits(img, 'user', 1000, ihard=4)
        write_limits(img, 'user', 1001, bhard_kib=16)
        write_limits(img, 'user', 1002, isoft=1, itime=1)
        fsck(img)
        with Mount(img, opts=['allow_other']) as m:
            def setx(uid, name, key, n, seed):
                run_as(uid, uid, [], os.setxattr, m.path(name), key,
                       pattern(n, seed))
                values[(name, key)] = pattern(n, seed)

            def refused(uid, name, key, n, seed):
                def setxattr(path, key):
                    os.setxattr(path, key, pattern(n, seed))
                expect_errno_as((uid, uid, []), errno.EDQUOT, setxattr,
                                m.path(name), key)

            setx(1000, 'f1', 'user.big', 20000, 2)          # the 4th inode
            refused(1000, 'f1', 'user.big2', 20000, 3)
            refused(1000, 'f0', 'user.a', 30000, 4)         # a new one first
            setx(1000, 'f1', 'user.small', 100, 5)          # in the inode
            setx(1000, 'f1', 'user.big', 40, 6)             # EA inode freed
            setx(1000, 'f1', 'user.big2', 20000, 7)         # so room again
            os.setxattr(m.path('f1'), 'user.root', pattern(20000, 8))
            values[('f1', 'user.root')] = pattern(20000, 8)
            refused(1001, 'g0', 'user.v', 20000, 9)         # 20 KiB > 16
            setx(1001, 'g0', 'user.v', 12000, 10)           # 12 KiB fits
            refused(1002, 'h0', 'user.v', 5000, 11)
            setx(1002, 'h0', 'user.s', 200, 12)
            for (name, key), want in sorted(values.items()):
                eq(os.getxattr(m.path(name), key), want,
                   '%s %s' % (name, key))
            eq(sorted(os.listxattr(m.path('f1'))),
               ['user.big', 'user.big2', 'user.root', 'user.small'],
               'f1 xattrs')
            eq(os.listxattr(m.path('h0')), ['user.s'], 'h0 xattrs')
        q = checked_usage(img, d)
        eq(q.get('user 1000')[1], 5, 'user 1000: root went past the limit')
        eq(q.get('user 1001'), (12 * 1024, 2), 'user 1001')
        eq(q.get('user 1002'), (4096, 1), 'user 1002: an xattr block')


# quota_xattr_block_limits: (uid of the caller, file, name, value size,
# seed). The files' owners and limits are set up in the test.
XBLOCK_STEPS = [
    (1000, 'a0', 'user.small', 20, 1),     # in the inode
    (1000, 'a0', 'user.big', 3000, 2),     # a new block: at the limit
    (1000, 'a0', 'user.big2', 500, 3),     # into that block
    (1000, 'a1', 'user.s', 30, 4),         # in the inode
    (1000, 'a1', 'user.big', 3000, 5),     # a new block past the limit
    (0, 'a2', 'user.big', 3000, 6),        # root passes
    (1001, 'b0', 'user.s', 30, 7),         # in the inode
    (1001, 'b0', 'user.big', 3000, 8),     # past a soft limit, grace over
    (1002, 'c1', 'user.big', 3000, 10),    # a copy of the shared block
    (1002, 'c1', 'user.s', 30, 9),         # in the inode (see below)
    (1003, 'd0', 'user.v', 5000, 11),      # an EA inode and a new block
    (1003, 'd1', 'user.v', 5000, 12),      # an EA inode alone
]
# libext2fs copies a shared block for a change in the inode body too (the
# kernel does not; the copy changes no i_blocks, so no quota): c1's block
# is its own after step 9, which therefore comes after the refused copy.
XBLOCK_REFUSED = {4, 7, 8, 10}


def xblock_setup(mnt):
    """Kernel-made files for quota_xattr_block_limits: c0 and c1 share one
    xattr block (the kernel's mbcache), d0's inode body is full."""
    for name, uid in (('a0', 1000), ('a1', 1000), ('a2', 1000), ('b0', 1001),
                      ('c0', 1002), ('c1', 1002), ('d0', 1003), ('d1', 1003)):
        os.mknod(os.path.join(mnt, name), 0o666)
        os.chown(os.path.join(mnt, name), uid, uid)
    kd.write_at(os.path.join(mnt, 'b0'), pattern(8192, 20), 0)
    for name in ('c0', 'c1'):
        os.setxattr(os.path.join(mnt, name), 'user.big', pattern(3000, 21))
    os.setxattr(os.path.join(mnt, 'd0'), 'user.f', pattern(60, 22))


def xattr_block(img, name):
    text = uexec_debugfs(img, 'stat /' + name)
    return int(text.split('File ACL: ')[1].split()[0])


def xblock_kernel_charges(base, d):
    """The bytes each step adds to its file's st_blocks on a kernel loop
    mount of a copy of @base (as root: this kernel has no quota format to
    enforce limits with, but charges i_blocks as dquot_alloc_block would),
    and whether it gave c1 a block of its own."""
    kimg = d + '/kernel.img'
    shutil.copyfile(base, kimg)
    charges = []
    with kernel_mount(kimg, d + '/kmnt') as mnt:
        for _, name, key, n, seed in XBLOCK_STEPS:
            path = os.path.join(mnt, name)
            before = os.stat(path).st_blocks
            os.setxattr(path, key, pattern(n, seed))
            charges.append((os.stat(path).st_blocks - before) * 512)
    fsck(kimg)
    return charges, xattr_block(kimg, 'c0') != xattr_block(kimg, 'c1')


@test
def quota_xattr_block_limits():
    """A setxattr that needs an xattr block (a new one, or a copy of one
    shared with another inode) charges a cluster to the file's ids: for a
    user other than root, EDQUOT at a block hard limit and past a soft
    limit whose grace has ended, nothing changed, as ext4_xattr_block_set
    (dquot_alloc_block); with a value in a new EA inode both are charged.
    Values in the inode body, or in a block the file owns, pass. The
    charges are the kernel's: the same steps on a kernel loop mount of a
    copy (without limits: no quota format here) grow st_blocks exactly
    where uext4 refuses or charges. e2fsck -fn clean, usage e2fsck's
    recount, repquota agrees, values byte for byte."""
    with workdir() as d:
        base = mkfs(d + '/base.img', size='64M', features=['ea_inode'],
                    opts=OPTS)
        with kernel_mount(base, d + '/setup') as mnt:
            xblock_setup(mnt)
        fsck(base)
        check(xattr_block(base, 'c0') == xattr_block(base, 'c1') != 0,
              'the kernel did not share c0 and c1\'s xattr block')
        charges, cow = xblock_kernel_charges(base, d)
        eq([i for i, c in enumerate(charges) if c], [1, 4, 5, 7, 10, 11],
           'steps the kernel charged blocks for')
        check(cow, 'the kernel did not give c1 a block of its own')
        img = d + '/img'
        shutil.copyfile(base, img)
        add_quota(img)
        write_limits(img, 'user', 1000, bhard_kib=4)
        write_limits(img, 'user', 1001, bsoft_kib=4, btime=1)
        write_limits(img, 'user', 1002, bhard_kib=8)
        write_limits(img, 'user', 1003, bhard_kib=8)
        fsck(img)
        os.chmod(d, 0o755)
        got = []
        values = {('c0', 'user.big'): pattern(3000, 21),
                  ('c1', 'user.big'): pattern(3000, 21),
                  ('d0', 'user.f'): pattern(60, 22)}
        with Mount(img, opts=['allow_other']) as m:
            ucharges = []
            for uid, name, key, n, seed in XBLOCK_STEPS:
                before = os.stat(m.path(name)).st_blocks
                try:
                    run_as(uid, uid, [], os.setxattr, m.path(name), key,
                           pattern(n, seed))
                    values[(name, key)] = pattern(n, seed)
                    got.append(None)
                except OSError as e:
                    got.append(errno.errorcode[e.errno])
                ucharges.append((os.stat(m.path(name)).st_blocks - before)
                                * 512)
            for (name, key), want in sorted(values.items()):
                eq(os.getxattr(m.path(name), key), want, '%s %s' % (name, key))
            for i in XBLOCK_REFUSED:
                _, name, key, _, _ = XBLOCK_STEPS[i]
                check((name, key) in values or
                      key not in os.listxattr(m.path(name)),
                      'refused %s %s is there' % (name, key))
        eq(got, [('EDQUOT' if i in XBLOCK_REFUSED else None)
                 for i in range(len(XBLOCK_STEPS))], 'setxattr results')
        eq(ucharges, [0 if i in XBLOCK_REFUSED else c
                      for i, c in enumerate(charges)],
           'st_blocks charged per step (the kernel\'s where passed)')
        q = checked_usage(img, d)
        # Usage: what was set up plus what the kernel charged the passed steps.
        eq([q['user %d' % u][0] for u in (1000, 1001, 1002, 1003)],
           [8192, 8192, 8192, 8192], 'block usage of users 1000-1003')
        rq = repquota(img, d)
        eq([rq[u][0] * 1024 for u in (1000, 1001, 1002, 1003)],
           [q['user %d' % u][0] for u in (1000, 1001, 1002, 1003)],
           'repquota of users 1000-1003')


def acl_with_users(nusers, mask_perm):
    """A POSIX ACL in the xattr format (version 2): owner rw-, @nusers
    named users r--, group r--, mask @mask_perm, other ---."""
    undef = 0xffffffff
    ents = [(0x01, 6, undef)] + [(0x02, 4, 2000 + i) for i in range(nusers)] + \
        [(0x04, 4, undef), (0x10, mask_perm, undef), (0x20, 0, undef)]
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', *e) for e in ents)


@test
def acl_refused_keeps_mode():
    """An access ACL that needs an xattr block, refused at the owner's
    block limit (EDQUOT), leaves the mode as it was: the mode follows the
    ACL only once it is stored, as ext4_set_acl. Root, exempt, stores the
    same ACL, and the mode's group bits become its mask."""
    acl = acl_with_users(20, 7)     # 180 bytes on disk: not in a 256-byte inode
    with workdir() as d:
        img = mkfs(d + '/img', size='64M', opts=OPTS)
        with Mount(img) as m:
            for name in ('u', 'r'):
                write_file(m.path(name), b'x' * 4096)
                os.chown(m.path(name), 1000, 1000)
                os.chmod(m.path(name), 0o640)
        add_quota(img)
        write_limits(img, 'user', 1000, bhard_kib=8)
        fsck(img)
        os.chmod(d, 0o755)
        with Mount(img, opts=['allow_other']) as m:
            expect_errno_as((1000, 1000, []), errno.EDQUOT, os.setxattr, m.path('u'),
                            'system.posix_acl_access', acl)
            eq(oct(os.stat(m.path('u')).st_mode), oct(0o100640), 'mode after the refusal')
            check('system.posix_acl_access' not in os.listxattr(m.path('u')),
                  'the refused ACL is there')
            os.setxattr(m.path('r'), 'system.posix_acl_access', acl)
            eq(oct(os.stat(m.path('r')).st_mode), oct(0o100670), 'mode with the ACL stored')
            eq(os.getxattr(m.path('r'), 'system.posix_acl_access'), acl, 'the stored ACL')
        fsck(img)



def shared_acl_image(d):
    """A kernel-made image where c0 and c1 (user 1002) carry the same access
    ACL, too large for the inode body, in one shared xattr block."""
    base = mkfs(d + '/base.img', size='64M', opts=OPTS)
    with kernel_mount(base, d + '/setup') as mnt:
        for name in ('c0', 'c1'):
            path = os.path.join(mnt, name)
            os.mknod(path, 0o640)
            os.chown(path, 1002, 1002)
            os.setxattr(path, 'system.posix_acl_access', acl_with_users(20, 6))
    fsck(base)
    check(xattr_block(base, 'c0') == xattr_block(base, 'c1') != 0,
          'the kernel did not share c0 and c1\'s xattr block')
    return base


@test
def acl_unchanged_in_shared_block_passes():
    """Setting an access ACL equal to the one stored in a block shared with
    another inode writes nothing, so at the owner's block hard limit it
    passes and charges nothing (the kernel's st_blocks on a loop mount of
    a copy: unchanged); a different ACL needs a copy of the block and is
    refused EDQUOT. The stored ACL, the mode and the sharing as before;
    e2fsck -fn clean and its recount equal."""
    same, other = acl_with_users(20, 6), acl_with_users(20, 4)
    with workdir() as d:
        base = shared_acl_image(d)
        kimg = d + '/kernel.img'
        shutil.copyfile(base, kimg)
        with kernel_mount(kimg, d + '/kmnt') as mnt:
            before = os.stat(os.path.join(mnt, 'c1')).st_blocks
            os.setxattr(os.path.join(mnt, 'c1'), 'system.posix_acl_access', same)
            eq(os.stat(os.path.join(mnt, 'c1')).st_blocks, before, 'kernel: st_blocks')
        fsck(kimg)
        check(xattr_block(kimg, 'c0') == xattr_block(kimg, 'c1'), 'kernel: c1 unshared')
        img = d + '/img'
        shutil.copyfile(base, img)
        add_quota(img)
        write_limits(img, 'user', 1002, bhard_kib=checked_usage(img, d)['user 1002'][0] // 1024)
        fsck(img)
        os.chmod(d, 0o755)
        with Mount(img, opts=['allow_other']) as m:
            before = os.stat(m.path('c1'))
            run_as(1002, 1002, [], os.setxattr, m.path('c1'), 'system.posix_acl_access', same)
            expect_errno_as((1002, 1002, []), errno.EDQUOT, os.setxattr, m.path('c1'),
                            'system.posix_acl_access', other)
            after = os.stat(m.path('c1'))
            eq((after.st_blocks, oct(after.st_mode)), (before.st_blocks, oct(before.st_mode)),
               'st_blocks and mode of c1')
            for name in ('c0', 'c1'):
                eq(os.getxattr(m.path(name), 'system.posix_acl_access'), same, name + "'s ACL")
        check(xattr_block(img, 'c0') == xattr_block(img, 'c1'), 'c1 unshared')
        checked_usage(img, d)


if __name__ == '__main__':
    uext4test._tests[:] = [t for t in uext4test._tests
                           if t.__module__ == __name__]
    main(uext4test.require_kernel_loop_mount)

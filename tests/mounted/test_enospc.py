#!/usr/bin/env python3
"""ENOSPC never corrupts the image: fill a tiny image (blocks, inodes),
check the errors, delete everything, and fsck clean."""

import errno
import os

from uext4test import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, Mount, check, debugfs, eq,
                       errno_of, fallocate, fsck, main, mkfs, pattern, read_file, test,
                       wait_until, workdir, write_file)

CHUNK = 64 * 1024


def tiny(d, **kw):
    return mkfs(d + '/img', size='8M', features=['^has_journal'],
                opts=['-N', '256', '-m', '0'], **kw)


def fill_file(path):
    """Write + fsync chunks until ENOSPC; return the bytes known durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    good = 0
    err = 0
    try:
        while good < (64 << 20):
            data = pattern(CHUNK, good // CHUNK)
            try:
                n = os.write(fd, data)
                os.fsync(fd)
            except OSError as e:
                err = e.errno
                break
            check(n == CHUNK or n > 0, 'short write of %d' % n)
            if n < CHUNK:
                # A short write is how ENOSPC shows up first; the next
                # write must fail.
                good += n
                continue
            good += n
    finally:
        try:
            os.close(fd)
        except OSError as e:
            check(e.errno == errno.ENOSPC, 'close failed with %s'
                  % errno.errorcode.get(e.errno))
    eq(err, errno.ENOSPC, 'error when the image is full')
    return good


def expected(good):
    out = bytearray()
    k = 0
    while len(out) < good:
        out += pattern(CHUNK, k)
        k += 1
    return bytes(out[:good])


@test
def fill_blocks():
    with workdir() as d:
        img = tiny(d)
        with Mount(img) as m:
            free0 = os.statvfs(m.mnt).f_bfree
            write_file(m.path('keep'), b'small file kept')
            good = fill_file(m.path('fill'))
            # The kernel keeps up to 2% in reserve for metadata; allow that.
            check(good >= (free0 - 64) * 4096 - CHUNK,
                  'ENOSPC after only %d bytes with %d free blocks'
                  % (good, free0))
            sv = os.statvfs(m.mnt)
            check(sv.f_bfree <= 64, 'f_bfree %d when full' % sv.f_bfree)
            eq(read_file(m.path('fill'))[:good], expected(good),
               'data written before ENOSPC')
            # The kernel keeps a metadata reserve that block symlinks may
            # use; use it up (a daemon without one fails at once).
            long_target = 'y' * 200
            n = 0
            while n < 200:
                err = errno_of(os.symlink, long_target, m.path('slow%d' % n))
                if err:
                    break
                n += 1
            eq(err, errno.ENOSPC, 'block symlink when full')
            eq(errno_of(os.symlink, long_target, m.path('slow')),
               errno.ENOSPC, 'block symlink when full (again)')
            eq(errno_of(os.setxattr, m.path('keep'), 'user.big',
                        b'z' * 3000), errno.ENOSPC, 'big xattr when full')
            fd = os.open(m.path('keep'), os.O_RDWR)
            eq(errno_of(fallocate, fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20),
               errno.ENOSPC, 'fallocate when full')
            os.close(fd)
            mk = errno_of(os.mkdir, m.path('newdir'))
            eq(mk, errno.ENOSPC, 'mkdir when full')
            # Operations needing no block still work.
            os.symlink('short', m.path('fast'))
            write_file(m.path('empty'), b'')
            eq(read_file(m.path('keep')), b'small file kept', 'keep intact')
        fsck(img)
        with Mount(img) as m:
            eq(read_file(m.path('fill'))[:good], expected(good),
               'data after remount')
            os.unlink(m.path('fill'))
            os.unlink(m.path('fast'))
            os.unlink(m.path('empty'))
            for i in range(n):
                eq(os.readlink(m.path('slow%d' % i)), long_target,
                   'symlink made near ENOSPC')
                os.unlink(m.path('slow%d' % i))
        fsck(img)        # the deletes after ENOSPC left a clean image
        with Mount(img) as m:
            wait_until(lambda: os.statvfs(m.mnt).f_bfree, free0 - 1,
                       'free blocks restored (all but the one for /keep)')
            write_file(m.path('again'), pattern(1 << 20))
            eq(read_file(m.path('again')), pattern(1 << 20), 'write again')
        fsck(img)


def small_image(d, journal):
    """An 8 MiB image, 256 inodes, no reserved blocks, with or without a
    journal: the one the full-file-system cases below fill."""
    return mkfs(d + '/img', size='8M', opts=['-N', '256', '-m', '0'],
                features=[] if journal else ['^has_journal'])


@test
def failed_create_frees_inode():
    """A mkdir or block symlink refused for want of a block gives its new
    inode back as a deleted one (no links, a dtime): it used to clear only
    the bitmap bit, so e2fsck found a directory or symlink that no name
    reached (generic/027's mkdir on a full fs). One image per call, and no
    create after it, which would reuse the inode and hide the leak."""
    calls = {'mkdir': lambda m: os.mkdir(m.path('d')),
             'symlink': lambda m: os.symlink('y' * 200, m.path('s'))}
    for journal in (False, True):
        for what, call in sorted(calls.items()):
            with workdir() as d:
                img = small_image(d, journal)
                with Mount(img) as m:
                    fill_file(m.path('fill'))
                    eq(errno_of(call, m), errno.ENOSPC, what)
                    eq(sorted(os.listdir(m.mnt)), ['fill', 'lost+found'],
                       'names after ' + what)
                err = fsck(img, check_rc=False)
                check(err is None, '%s (journal %s): %s' % (what, journal,
                                                            err))


def root_full_file(m, free=1):
    """'f' with four unwritten extents (the first 4 blocks long, then one
    block each), its extent root full, on a file system with @free free
    blocks: a new extent needs a block for the data and one more to split
    the root; converting the middle of the first needs one to split it."""
    fd = os.open(m.path('f'), os.O_RDWR | os.O_CREAT, 0o644)
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 16384)
    for i in range(1, 4):
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 16384 + i * 8192, 4096)
    fill_file(m.path('fill'))
    top = os.open(m.path('top'), os.O_WRONLY | os.O_CREAT, 0o644)
    while not errno_of(lambda: (os.write(top, b'z' * 4096), os.fsync(top))):
        pass    # the blocks fill_file's 64 KiB writes left
    os.close(top)
    if free:
        fill = os.open(m.path('fill'), os.O_RDWR)
        fallocate(fill, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                  4096 * free)
        os.fsync(fill)    # a block freed with a journal is free once committed
        os.close(fill)
    eq(os.statvfs(m.mnt).f_bfree, free, 'free blocks before the call')
    return fd


@test
def write_into_unwritten_when_full_is_kept_or_refused():
    """A write into the middle of an unwritten extent when no block is
    left to split it is refused (ENOSPC), i_size as it was, or kept: it
    used to be reported written and was then read back as zeros (the file
    API counted the bytes in its buffer, and the flush that converts the
    extent failed at close)."""
    for journal in (False, True):
        with workdir() as d:
            img = small_image(d, journal)
            data = pattern(4096, 7)
            with Mount(img) as m:
                fd = root_full_file(m, free=0)
                err = errno_of(os.pwrite, fd, data, 4096)
                check(err in (0, errno.ENOSPC), 'pwrite: %s' % err)
                os.close(fd)
            with Mount(img) as m:
                got = read_file(m.path('f'))
                if err:
                    eq(got, b'', 'file after a refused write')
                else:
                    eq(got[4096:], data, 'bytes reported written')
            err2 = fsck(img, check_rc=False)
            check(err2 is None, 'journal %s: %s' % (journal, err2))


@test
def enospc_extent_split_loses_no_block():
    """A fallocate or a write that takes the last free block for its data
    and then cannot split the extent root (ENOSPC) gives that block back:
    libext2fs's ext2fs_fallocate returns with it marked in use and counted
    in i_blocks, mapped by nothing (fsstress on a full fs, generic/083's
    workload: 'i_blocks is 40, should be 32', 'Block bitmap differences')."""
    calls = {'fallocate': lambda fd: fallocate(fd, FALLOC_FL_KEEP_SIZE,
                                               57344, 4096),
             'write': lambda fd: os.pwrite(fd, b'x' * 4096, 57344)}
    for journal in (False, True):
        for what, call in sorted(calls.items()):
            with workdir() as d:
                img = small_image(d, journal)
                with Mount(img) as m:
                    fd = root_full_file(m)
                    eq(errno_of(call, fd), errno.ENOSPC, what)
                    os.close(fd)
                    eq(os.statvfs(m.mnt).f_bfree, 1, 'free after ' + what)
                err = fsck(img, check_rc=False)
                check(err is None, '%s (journal %s): %s' % (what, journal,
                                                            err))


@test
def enospc_extent_split_repaired_with_blocks_held():
    """The same fallocate that runs out splitting the extent root, while
    100 blocks freed since the last commit are counted free but stay
    marked until it is durable (journal.c): the free count looked roomy,
    so the repair after the failed call was skipped and its data block
    stayed in use, owned by nobody ('i_blocks is 40, should be 32'). The
    call is then retried after a commit (file.c) and succeeds."""
    with workdir() as d:
        img = small_image(d, True)
        with Mount(img, opts=['commit=600']) as m:
            write_file(m.path('spare'), pattern(100 * 4096))
            fd = root_full_file(m)
            os.unlink(m.path('spare'))
            # Freed when the kernel forgets the inode.
            wait_until(lambda: os.statvfs(m.mnt).f_bfree, 101, 'free with 100 held')
            try:
                fallocate(fd, FALLOC_FL_KEEP_SIZE, 57344, 4096)
            finally:
                os.close(fd)
            # The data block and the new node of the split root.
            eq(os.statvfs(m.mnt).f_bfree, 99, 'free after the retried call')
        err = fsck(img, check_rc=False)
        check(err is None, err)


@test
def quota_file_growth_at_enospc_keeps_its_header():
    """A commit that must add quota entries for new ids on a full file
    system fails (ENOSPC: the quota file cannot grow), and once blocks are
    freed the next one succeeds. qtree.c counted a new quota block in the
    header before the write that allocates it: the header then said more
    blocks than the file had, every later flush refused the file
    (EUCLEAN) and no commit succeeded for the rest of the mount. Also on
    bigalloc, where the quota file's allocating map is not guarded by
    cluster.c's room check: it only appends, so a block in a cluster the
    file has extends its last extent in place and needs no new node."""
    for extra in ([], ['bigalloc']):
        with workdir() as d:
            quota_growth_at_enospc(d, extra)


def quota_growth_at_enospc(d, extra):
    img = mkfs(d + '/img', size='8M', features=['quota'] + extra,
               opts=['-b', '1024', '-N', '256', '-m', '0'] +
               (['-C', '16384'] if extra else []))
    with Mount(img, opts=['commit=600']) as m:
        for i in range(8):
            write_file(m.path('e%d' % i), b'')
        fill_file(m.path('fill'))
        top = os.open(m.path('top'), os.O_WRONLY | os.O_CREAT, 0o644)
        while not errno_of(lambda: (os.write(top, b'z' * 1024), os.fsync(top))):
            pass    # the blocks fill_file's 64 KiB writes left
        # On bigalloc a write stops with a few clusters free (cluster.c);
        # preallocation takes them.
        off = os.fstat(top).st_size + (1 << 20)
        while not errno_of(fallocate, top, FALLOC_FL_KEEP_SIZE, off, 1024):
            off += 16384
        os.fsync(top)
        os.close(top)
        eq(os.statvfs(m.mnt).f_bfree, 0, 'free blocks %s' % extra)
        # New ids far from each other: new tree and data blocks, more than
        # the quota file's last cluster has room for on bigalloc.
        for i in range(8):
            os.chown(m.path('e%d' % i), (i + 1) << 24, (i + 1) << 24)
        fd = os.open(m.path('e0'), os.O_RDONLY)
        try:
            eq(errno_of(os.fsync, fd), errno.ENOSPC, 'fsync, full %s' % extra)
            os.unlink(m.path('fill'))
            wait_until(lambda: os.statvfs(m.mnt).f_bfree > 0, True, 'blocks freed')
            eq(errno_of(os.fsync, fd), 0, 'fsync after the unlink %s' % extra)
        finally:
            os.close(fd)
    err = fsck(img, check_rc=False)
    check(err is None, '%s: %s' % (extra, err))


@test
def failed_last_commit_writes_nothing_home():
    """The unmount's commit fails when the quota files cannot grow (a full
    file system, new ids, no block freed since the last commit): the
    daemon says so and exits 1, and the image keeps the last commit, all
    of it. journal.c left journaled mode anyway and the close wrote the
    cache home unjournaled: the inodes with their new owners but not the
    quota files that count them, under a log that still asked to be
    replayed over them (fsstress at ENOSPC on bigalloc+quota: bitmap
    differences, then quota usage wrong after the replay)."""
    with workdir() as d:
        img = mkfs(d + '/img', size='8M', features=['quota'],
                   opts=['-b', '1024', '-N', '256', '-m', '0'])
        m = Mount(img, opts=['commit=600'], expect_clean_exit=False)
        with m:
            for i in range(8):
                write_file(m.path('e%d' % i), b'')
            fill_file(m.path('fill'))
            top = os.open(m.path('top'), os.O_WRONLY | os.O_CREAT, 0o644)
            while not errno_of(lambda: (os.write(top, b'z' * 1024), os.fsync(top))):
                pass
            os.close(top)
            for i in range(8):
                os.chown(m.path('e%d' % i), (i + 1) << 24, (i + 1) << 24)
            write_file(m.path('new'), b'')    # an inode, in the bitmap too
        eq(m.returncode, 1, 'daemon exit status')
        check('No space left on device' in m.log(), m.log())
        err = fsck(img, check_rc=False)
        check(err is None, err)
        eq(debugfs(img, 'stat /e0').split('User:')[1].split()[0], '0',
           'e0\'s owner (the chown was not committed)')
        check('new' not in debugfs(img, 'ls -l /'), 'new file committed')


@test
def fill_inodes():
    with workdir() as d:
        img = tiny(d)
        with Mount(img) as m:
            ffree = os.statvfs(m.mnt).f_ffree
            os.mkdir(m.path('d'))
            made = 0
            err = 0
            while made < 10000:
                try:
                    os.close(os.open(m.path('d', 'f%d' % made),
                                     os.O_CREAT | os.O_WRONLY, 0o644))
                except OSError as e:
                    err = e.errno
                    break
                made += 1
            eq(err, errno.ENOSPC, 'error when out of inodes')
            eq(made, ffree - 1, 'files created == f_ffree - 1 (the dir)')
            eq(os.statvfs(m.mnt).f_ffree, 0, 'f_ffree when out of inodes')
            eq(errno_of(os.mkdir, m.path('x')), errno.ENOSPC, 'mkdir')
            eq(errno_of(os.symlink, 't', m.path('s')), errno.ENOSPC,
               'symlink')
            eq(errno_of(os.mkfifo, m.path('p')), errno.ENOSPC, 'mkfifo')
            eq(len(os.listdir(m.path('d'))), made, 'listing')
            # Hard links need no inode.
            os.link(m.path('d', 'f0'), m.path('hard'))
        fsck(img)
        with Mount(img) as m:
            for i in range(made):
                os.unlink(m.path('d', 'f%d' % i))
            os.unlink(m.path('hard'))
            os.rmdir(m.path('d'))
            wait_until(lambda: os.statvfs(m.mnt).f_ffree, ffree,
                       'inodes freed')
        fsck(img)


@test
def enospc_directory_growth():
    """Growing a directory when no block is left fails with ENOSPC and
    leaves the directory consistent."""
    with workdir() as d:
        img = tiny(d)
        with Mount(img) as m:
            os.mkdir(m.path('d'))
            fill_file(m.path('fill'))
            made = 0
            err = 0
            while made < 5000:
                try:
                    os.link(m.path('fill'), m.path('d', 'n' * 200 + '%04d'
                                                   % made))
                except OSError as e:
                    err = e.errno
                    break
                made += 1
            eq(err, errno.ENOSPC, 'error when the directory cannot grow')
            eq(len(os.listdir(m.path('d'))), made, 'entries kept')
            eq(os.stat(m.path('fill')).st_nlink, made + 1, 'nlink')
        fsck(img)


if __name__ == '__main__':
    main()

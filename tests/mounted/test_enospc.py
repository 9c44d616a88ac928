#!/usr/bin/env python3
"""ENOSPC never corrupts the image: fill a tiny image (blocks, inodes),
check the errors, delete everything, and fsck clean."""

import ctypes
import errno
import os

import uext4quota as uq
from uext4test import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, Mount, check, debugfs, eq,
                       errno_of, fallocate, fsck, main, mkfs, pattern, read_file, renameat2, run_as,
                       sb_field, test, wait_until, workdir, write_file)

CHUNK = 64 * 1024
RENAME_WHITEOUT = 4


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


def quota_image(d, extra):
    return mkfs(d + '/img', size='8M', features=['quota', 'project'] + extra,
                opts=['-b', '1024', '-N', '256', '-m', '0', '-I', '256'] +
                (['-C', '16384'] if extra else []))


def fill_quota_image(m):
    """Files e0..e7 and a world-writable directory 'pub', then every block
    taken, all of it committed: no block is held for a commit to lend the
    quota files."""
    os.mkdir(m.path('pub'))
    os.chmod(m.path('pub'), 0o1777)
    for i in range(8):
        write_file(m.path('e%d' % i), b'')
        write_file(m.path('pub', 'w%d' % i), b'')
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


def tmpfile(d, name):
    """An O_TMPFILE file, linked as @name: one closed unlinked before the
    commit would leave its ids nothing to count."""
    fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o600)
    try:
        # linkat(AT_SYMLINK_FOLLOW): os.link would link the proc symlink.
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.linkat(-100, b'/proc/self/fd/%d' % fd, -100,
                       os.fsencode(os.path.join(d, name)), 0x400):
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), name)
    finally:
        os.close(fd)


def new_ids_at_enospc(d, extra):
    img = quota_image(d, extra)
    os.chmod(d, 0o755)     # run_as's creates reach the mount point
    with Mount(img, opts=['commit=600', 'allow_other']) as m:
        fill_quota_image(m)
        eq(os.statvfs(m.mnt).f_bfree, 0, 'free blocks %s' % extra)
        errs, owners = [], []
        # New ids far from each other: new tree and data blocks.
        for i in range(8):
            new = (i + 1) << 24
            e = m.path('e%d' % i)
            for kind, fn in (('uid', lambda: os.chown(e, new, -1)),
                             ('gid', lambda: os.chown(e, -1, new + 1)),
                             ('projid', lambda: uq.set_project(e, new + 2, False))):
                err = errno_of(fn)
                check(err in (0, errno.ENOSPC), '%s of e%d: %s' % (kind, i, err))
                errs.append(err)
            st = os.stat(e)
            eq((st.st_uid, st.st_gid), (0 if errs[-3] else new, 0 if errs[-2] else new + 1),
               'e%d owner' % i)
            owners.append((st.st_uid, st.st_gid))
            err = errno_of(run_as, new + 3, new + 4, [], write_file,
                           m.path('pub', 'n%d' % i), b'')
            check(err in (0, errno.ENOSPC), 'create as uid %d: %s' % (new + 3, err))
            eq(os.path.exists(m.path('pub', 'n%d' % i)), not err, 'n%d there' % i)
            errs.append(err)
            err = errno_of(run_as, new + 6, new + 6, [], tmpfile, m.path('pub'), 't%d' % i)
            check(err in (0, errno.ENOSPC), 'O_TMPFILE as uid %d: %s' % (new + 6, err))
            eq(os.path.exists(m.path('pub', 't%d' % i)), not err, 't%d there' % i)
            errs.append(err)
            # RENAME_WHITEOUT (CAP_MKNOD: root, here in a new group)
            # makes an inode of the caller's ids.
            w = m.path('pub', 'w%d' % i)
            err = errno_of(run_as, 0, new + 5, [], renameat2, w, w + '.moved', RENAME_WHITEOUT)
            check(err in (0, errno.ENOSPC), 'whiteout as gid %d: %s' % (new + 5, err))
            eq(os.path.exists(w + '.moved'), not err, 'w%d moved' % i)
            eq(os.stat(w).st_gid, new + 5 if not err else 0, 'w%d\'s group' % i)
            errs.append(err)
        check(errno.ENOSPC in errs, 'no operation failed: %s %s' % (errs, extra))
        # The commit works: nothing is left for it to place.
        fd = os.open(m.path('fill'), os.O_WRONLY)
        try:
            eq(os.pwrite(fd, b'y' * 1024, 0), 1024, 'overwrite')
            eq(errno_of(os.fsync, fd), 0, 'fsync, full %s' % extra)
        finally:
            os.close(fd)
    eq(m.returncode, 0, 'daemon exit status')
    for i, (uid, gid) in enumerate(owners):
        st = debugfs(img, 'stat /e%d' % i)
        eq((int(st.split('User:')[1].split()[0]), int(st.split('Group:')[1].split()[0])),
           (uid, gid), 'e%d\'s owner as committed' % i)
    uq.checked_usage(img, d)
    for name in ('User quota inode', 'Group quota inode', 'Project quota inode'):
        uq.check_tree(img, int(sb_field(img, name)))


@test
def new_quota_id_at_enospc_fails_the_operation():
    """On a full file system with nothing freed since the last commit, a
    chown, chgrp, project change, create, O_TMPFILE or whiteout that brings a new id must make
    its quota entry at once or fail with ENOSPC, as the kernel does
    (dquot_transfer, dquot_initialize). The entry was made at the flush
    before the commit, which could not place it: every commit failed from
    then on and the unmount lost everything since the last one (exit 1).
    Also on bigalloc, where the first new ids fit in the quota file's last
    cluster. An insert that fails part way must leave the file's header
    counting only blocks it has (qtree.c's block_get), or the next open
    refuses it: the commit and check_tree would fail."""
    for extra in ([], ['bigalloc']):
        with workdir() as d:
            new_ids_at_enospc(d, extra)


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

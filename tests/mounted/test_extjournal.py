#!/usr/bin/env python3
"""External journals (journal_dev): a file system whose journal is a device
of its own (mke2fs -O journal_dev J, then mke2fs -J device=J FS), served
with -o journal_path=FILE, with the kernel's ext4 as the reference.

mke2fs -J device= wants a block device, so each pair is made through a loop
device on the journal's file (detached at once, by name); from then on both
are plain files. uext4 writes the tree and commits into the journal's file
(its jbd2 sequence moves, its ext2 superblock stays byte for byte), e2fsck
-fn -j JOURNAL FS is clean, and the kernel, given a loop device on a copy
of the journal (mount -o loop,journal_path=/dev/loopN), reads the same
tree. A daemon killed after fsync leaves a journal that the kernel and
uext4 (read-write, and read-only in memory) replay to the same files; a
journal the kernel left needing recovery (copied while mounted, after
fsync) is replayed by uext4. Every refusal names its cause and leaves both
files as they were.
"""
import contextlib
import hashlib
import os
import shutil
import struct

from uext4test import (Mount, MountError, check, eq, fuse_unmount, main, mkfs, pattern,
                       require_kernel_loop_mount, run, run_daemon, test, workdir)
from uext4jdev import (fsck_ext, jsb_tail, kernel_mount_ext, loop_device, make_journal,
                       make_pair)

OTHER_JUUID = '6e7f8091-a2b3-4c4d-9e5f-60718293a4b5'


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def copies(d, fs, j, tag):
    """Copies of the pair (the journal first: see kernel_left_journal)."""
    cj, cfs = os.path.join(d, tag + '-j.img'), os.path.join(d, tag + '.img')
    shutil.copyfile(j, cj)
    shutil.copyfile(fs, cfs)
    return cfs, cj


def write_tree(root, seed=1):
    """A small tree, every file and directory fsync'd; returns what it
    should read back as (snapshot())."""
    os.makedirs(os.path.join(root, 'a/b/c'))
    for i, n in enumerate([0, 40, 5000, 70000, 1_500_000]):
        p = os.path.join(root, 'a/b' if i % 2 else 'a', 'f%d' % i)
        with open(p, 'wb') as f:
            f.write(pattern(n, seed + i))
            f.flush()
            os.fsync(f.fileno())
    os.symlink('a/b/f1', os.path.join(root, 'link'))
    os.link(os.path.join(root, 'a/f0'), os.path.join(root, 'a/b/c/hard'))
    os.rename(os.path.join(root, 'a/f2'), os.path.join(root, 'a/b/c/moved'))
    with open(os.path.join(root, 'gone'), 'wb') as f:
        f.write(pattern(9000, seed + 9))
    os.unlink(os.path.join(root, 'gone'))
    for sub in ('', 'a', 'a/b', 'a/b/c'):
        fd = os.open(os.path.join(root, sub), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return snapshot(root)


def snapshot(root):
    """{path: kind and contents} of the tree under @root (lost+found left out)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x != 'lost+found')
        rel = os.path.relpath(dirpath, root)
        for name in files + dirs:
            p, key = os.path.join(dirpath, name), os.path.normpath(os.path.join(rel, name))
            st = os.lstat(p)
            if os.path.islink(p):
                out[key] = ('l', os.readlink(p))
            elif name in dirs:
                out[key] = ('d', oct(st.st_mode))
            else:
                with open(p, 'rb') as f:
                    out[key] = ('f', oct(st.st_mode), st.st_nlink, hashlib.sha256(
                        f.read()).hexdigest())
    return out


def kernel_snapshot(d, fs, j, tag):
    """What the kernel reads from copies of the pair (replaying them)."""
    cfs, cj = copies(d, fs, j, tag)
    with kernel_mount_ext(cfs, cj, os.path.join(d, tag + '-mnt')) as m:
        snap = snapshot(m)
    return snap


def uext4_snapshot(d, fs, j, tag, opts=(), need_replay=True):
    """What uext4 reads from copies of the pair: read-write (replayed into
    them, then e2fsck'd) or with 'ro' (replayed in memory: both files
    unchanged)."""
    cfs, cj = copies(d, fs, j, tag)
    before = (sha(cfs), sha(cj))
    with Mount(cfs, os.path.join(d, tag + '-mnt'), ['journal_path=' + cj] + list(opts)) as m:
        snap = snapshot(m.mnt)
        log = m.log()
    if 'ro' in opts:
        eq((sha(cfs), sha(cj)), before, 'image and journal after a read-only mount')
    else:
        eq(jsb_tail(cj)[1], 0, 's_start after a read-write mount')
        fsck_ext(cfs, cj)
    check('journal recovered' in log or not need_replay,
          'uext4 did not say it replayed the journal: %r' % log)
    return snap


@test(timeout=120)
def tree_through_external_journal():
    """Write a tree, fsync, unmount (4 KiB and 1 KiB blocks): the journal's
    file took the commits, its ext2 superblock is unchanged, e2fsck is clean
    and the kernel reads the same tree."""
    for bs in (4096, 1024):
        with workdir() as d:
            fs, j = make_pair(d, bs)
            with open(j, 'rb') as f:
                head = f.read(2048)
            seq0 = jsb_tail(j, bs)[0]
            with Mount(fs, os.path.join(d, 'mnt'), ['journal_path=' + j]) as m:
                want = write_tree(m.mnt)
            seq, start = jsb_tail(j, bs)
            check(seq > seq0 + 1, 'bs %d: the journal took no commits (sequence %d -> %d)'
                  % (bs, seq0, seq))
            eq(start, 0, 'bs %d: s_start after unmount' % bs)
            with open(j, 'rb') as f:
                eq(f.read(2048), head, 'bs %d: the journal device\'s ext2 superblock' % bs)
            fsck_ext(fs, j)
            eq(kernel_snapshot(d, fs, j, 'k'), want, 'bs %d: the tree the kernel reads' % bs)


@test(timeout=120)
def killed_daemon_replayed_alike():
    """SIGKILL after fsync: the journal needs recovery, and the kernel,
    uext4 read-write and uext4 read-only replay it to the same tree."""
    with workdir() as d:
        fs, j = make_pair(d)
        m = Mount(fs, os.path.join(d, 'mnt'), ['journal_path=' + j, 'commit=600'],
                  expect_clean_exit=False)
        with m:
            want = write_tree(m.mnt)
            m.proc.kill()
            m.proc.wait(30)
            fuse_unmount(m.mnt)
        check(jsb_tail(j)[1] != 0, 'the killed daemon left an empty journal')
        eq(kernel_snapshot(d, fs, j, 'k'), want, 'the tree the kernel replays')
        eq(uext4_snapshot(d, fs, j, 'rw'), want, 'the tree uext4 replays')
        eq(uext4_snapshot(d, fs, j, 'ro', ['ro']), want, 'the tree uext4 replays in memory')


@test(timeout=120)
def kernel_left_journal_replayed():
    """The kernel writes (journal_checksum) and fsyncs; copies taken while it
    is mounted, the journal first (whatever the kernel checkpoints after
    that copy is in the journal copy too), need recovery: uext4 replays
    them, read-write and in memory, to the kernel's tree."""
    with workdir() as d:
        fs, j = make_pair(d)
        with kernel_mount_ext(fs, j, os.path.join(d, 'kmnt'), ['journal_checksum',
                                                               'noatime']) as km:
            want = write_tree(km, seed=7)
            cfs, cj = copies(d, fs, j, 'live')
        check(jsb_tail(cj)[1] != 0, 'the copy of the kernel\'s journal needs no recovery')
        eq(uext4_snapshot(d, cfs, cj, 'rw'), want, 'the kernel\'s tree replayed by uext4')
        eq(uext4_snapshot(d, cfs, cj, 'ro', ['ro']), want,
           'the kernel\'s tree replayed by uext4 in memory')


def refused(d, fs, opts, want, what):
    """uext4 refuses to mount @fs with @opts, saying @want; nothing of the
    files it was given changes."""
    files = [fs] + [o.split('=', 1)[1] for o in opts if o.startswith('journal_path=')]
    before = [sha(f) for f in files if os.path.isfile(f)]
    rc, out = run_daemon(fs, os.path.join(d, 'mnt'), opts)
    check(rc != 0, '%s: uext4 mounted (%s)' % (what, out.strip()))
    check(want in out, '%s: message %r lacks %r' % (what, out.strip(), want))
    eq([sha(f) for f in files if os.path.isfile(f)], before, '%s: the files' % what)


def write_at(path, off, data):
    with open(path, 'r+b') as f:
        f.seek(off)
        f.write(data)


@test(timeout=120)
def refusals_name_their_cause():
    with workdir() as d:
        fs, j = make_pair(d)
        plain = mkfs(os.path.join(d, 'plain.img'), size='16M')
        other = make_journal(os.path.join(d, 'other-j.img'), uuid=OTHER_JUUID)
        zeros = os.path.join(d, 'zeros.img')
        with open(zeros, 'wb') as f:
            f.truncate(16 << 20)
        nouser, bs1k = os.path.join(d, 'nouser-j.img'), os.path.join(d, 'bs-j.img')
        shutil.copyfile(j, nouser)
        write_at(nouser, 4096 + 0x100, bytes(16))     # s_users[0]
        shutil.copyfile(j, bs1k)
        write_at(bs1k, 1024 + 24, struct.pack('<I', 0))  # s_log_block_size: 1 KiB
        cases = [
            ([], 'pass -o journal_path=FILE', 'no journal_path'),
            ([], 'ro,noload', 'no journal_path (noload named)'),
            (['journal_path=' + fs], 'is the image itself', 'the image as its journal'),
            (['journal_path=' + other], 'not this file system\'s journal', 'another journal'),
            (['journal_path=' + plain], 'lacks journal_dev', 'a file system as journal'),
            (['journal_path=' + zeros], 'not an external journal device', 'zeros as journal'),
            (['journal_path=' + nouser], 'does not list the file system', 's_users'),
            (['journal_path=' + bs1k], 'blocks of 1024 bytes', 'block size'),
            (['journal_dev=1792'], 'use -o journal_path=FILE', 'journal_dev=NUM'),
        ]
        for opts, want, what in cases:
            refused(d, fs, opts, want, what)
        refused(d, plain, ['journal_path=' + j], 'keeps its journal inside it',
                'journal_path with an inside journal')
        fsck_ext(fs, j)


@test(timeout=60)
def noload_mounts_read_only_without_journal():
    """-o ro,noload without journal_path: read-only, the image as it is."""
    with workdir() as d:
        fs, j = make_pair(d)
        with Mount(fs, os.path.join(d, 'mnt'), ['journal_path=' + j]) as m:
            want = write_tree(m.mnt)
        before = sha(fs)
        with Mount(fs, os.path.join(d, 'mnt'), ['ro', 'noload']) as m:
            eq(snapshot(m.mnt), want, 'the tree without the journal')
            check(os.statvfs(m.mnt).f_flag & os.ST_RDONLY, 'mounted read-write')
        eq(sha(fs), before, 'the image after a read-only mount')


@test(timeout=60)
def journal_in_use_is_refused():
    """A journal file a uext4 mount is writing cannot serve a second one
    (a copy of the same file system), which is refused naming the holder."""
    with workdir() as d:
        fs, j = make_pair(d)
        fs2 = os.path.join(d, 'fs2.img')
        shutil.copyfile(fs, fs2)
        with Mount(fs, os.path.join(d, 'mnt1'), ['journal_path=' + j]) as m:
            refused(d, fs2, ['journal_path=' + j], 'is in use: pid %d' % m.proc.pid,
                    'the journal of a mounted file system')
            with open(m.path('after'), 'wb') as f:
                f.write(b'still served\n')
        fsck_ext(fs, j)


def fsync_errors(path, n=2):
    """Create @path, write it and fsync it @n times: the errnos (0: fine)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    errs = []
    try:
        os.write(fd, b'never durable\n')
        for _ in range(n):
            try:
                os.fsync(fd)
                errs.append(0)
            except OSError as e:
                errs.append(e.errno)
    finally:
        os.close(fd)
    return errs


@test(timeout=120)
def journal_write_error_reaches_fsync():
    """The journal as a block device (a loop device on its file), made
    read-only under the mount: the next commit's journal write fails, and
    so does that fsync and every later one; the image keeps the last
    durable state, which the next mount (the device writable again)
    replays: what was fsync'd before is there, e2fsck is clean."""
    with workdir() as d:
        fs, j = make_pair(d)
        with loop_device(j) as dev:
            m = Mount(fs, os.path.join(d, 'mnt'), ['journal_path=' + dev, 'commit=600'],
                      expect_clean_exit=False)
            with m:
                want = write_tree(m.mnt)
                run(['blockdev', '--setro', dev])
                try:
                    errs = fsync_errors(m.path('late'))
                finally:
                    run(['blockdev', '--setrw', dev])
                check(all(errs), 'fsync after the journal device failed: %r' % errs)
            check(m.returncode != 0, 'uext4 exited 0 after its journal failed')
            eq(uext4_snapshot(d, fs, dev, 'again'), want, 'the tree after the failure')


def fsync_files(root, n, done):
    """Write and fsync files f0..f@n-1 under @root, appending each name to
    @done once its fsync returned; stops at the first error (the daemon
    gone at a power cut)."""
    try:
        for i in range(n):
            name = 'f%d' % i
            with open(os.path.join(root, name), 'wb') as f:
                f.write(pattern(3000 + 1500 * i, i))
                f.flush()
                os.fsync(f.fileno())
            done.append(name)
    except OSError:
        pass


def cut_run(d, fs, j, env, n):
    """Mount the pair with @env, run fsync_files; the names fsync'd."""
    done = []
    m = Mount(fs, os.path.join(d, 'mnt'), ['journal_path=' + j, 'commit=600'], env=env,
              expect_clean_exit=False)
    try:
        m.start()
    except MountError:
        eq(m.returncode, 86, 'exit status of a daemon cut while mounting')
        return done     # nothing was fsync'd
    try:
        fsync_files(m.mnt, n, done)
    finally:
        m.stop()
    if 'UEXT4_FAULT_AT' in env and m.returncode != 86:
        # Runs differ by a few steps (how the kernel sends the writes): a
        # run shorter than the cut's step ends cleanly and says so.
        eq(m.returncode, 0, 'exit status of a daemon cut at step %s' % env['UEXT4_FAULT_AT'])
        with open(env['UEXT4_FAULT_COUNT']) as f:
            check(int(f.read()) < int(env['UEXT4_FAULT_AT']),
                  'a daemon cut at step %s exited 0' % env['UEXT4_FAULT_AT'])
    return done


@test(timeout=300)
def power_cut_at_steps():
    """A simulated power cut (UEXT4_FAULT_AT: unsynced writes of both files
    rolled back at random) at every step of a run of fsync'd writes: uext4
    replays the pair to a tree that holds every file whose fsync returned,
    byte for byte, e2fsck -fn -j is clean, and at every 5th step the
    kernel's replay reads the same tree."""
    n = 3
    with workdir() as d:
        fs0, j0 = make_pair(d, name='orig')
        fs, j = copies(d, fs0, j0, 'count')
        count = os.path.join(d, 'steps')
        eq(len(cut_run(d, fs, j, {'UEXT4_FAULT_COUNT': count}, n)), n, 'files of the clean run')
        with open(count) as f:
            steps = int(f.read())
        for at in range(1, steps + 1):
            fs, j = copies(d, fs0, j0, 'cut')
            with contextlib.suppress(FileNotFoundError):
                os.unlink(count)
            env = {'UEXT4_FAULT_AT': str(at), 'UEXT4_FAULT_SEED': str(at),
                   'UEXT4_FAULT_COUNT': count}
            done = cut_run(d, fs, j, env, n)
            got = uext4_snapshot(d, fs, j, 'u', need_replay=False)
            for name in done:
                i = int(name[1:])
                check(got.get(name, ('?',))[-1] ==
                      hashlib.sha256(pattern(3000 + 1500 * i, i)).hexdigest(),
                      'cut at step %d of %d: fsync\'d %s lost (%r)' % (at, steps, name,
                                                                      got.get(name)))
            if at % 5 == 0:
                eq(kernel_snapshot(d, fs, j, 'k'), got,
                   'cut at step %d: the kernel\'s replay' % at)


if __name__ == '__main__':
    main(setup=require_kernel_loop_mount)

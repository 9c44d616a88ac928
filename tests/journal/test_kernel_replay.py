#!/usr/bin/env python3
"""Journal replay against real journals, with e2fsck and Linux as oracles.

kernel_* cases: Linux writes the journal.  An image is loop-mounted with
commit=600 (so nothing is committed or checkpointed behind our back), a
workload runs in two phases separated by `sync` (each phase commits
transactions; the second frees blocks the first journaled, which writes
revoke records), and the backing file is copied while still mounted: the
copy is a crashed image whose log holds committed transactions.  Then:

  A = copy replayed by `e2fsck -E journal_only` (e2fsprogs' recovery only)
  B = copy replayed by replay_tool (our jbd2_recover + clearing
      needs_recovery in the primary superblock)

A and B must be byte-identical except the superblock's s_wtime,
s_kbytes_written and checksum (e2fsck records its own writes); that includes every
replayed block and the journal superblock (s_sequence restarts at the same
value).  B must pass `e2fsck -fn`; a third copy goes through `e2fsck -fy`
(which must replay and exit 0 or 1); and B, mounted with noload, must show
the same tree (inode numbers, attributes, contents, xattrs) as the original
image after its clean unmount.

writer_* cases: our builder (jfmt_txn_emit) writes the journal.
replay_tool write logs transactions, with revokes, an escaped block in
every other one, more than a descriptor's worth of tags and an uncommitted
transaction at the end, into a fresh image's journal.  e2fsck, Linux (a
loop mount) and replay_tool must each replay exactly the expected blocks.

Root with loop mounts is required, else exit 77.  Every case cleans up its
mounts and files, also on failure.  Output: `ok NAME` / `FAIL NAME: reason`
lines, then `N passed, N failed`; exit 1 on any failure.
"""

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys

from uext4test import (HASH_SEED, UUID, SkipFile, TestFailure, check,
                       kernel_mount, main, test, workdir)

HERE = os.path.dirname(os.path.abspath(__file__))
REPLAY_TOOL = os.environ.get('REPLAY_TOOL') or os.path.join(
    HERE, '..', '..', 'build', 'tests', 'journal', 'replay_tool')
JBD2_MAGIC = b'\xc0\x3b\x39\x98'
SB_OFFSET = 1024                 # the primary superblock, whatever the block size
# Superblock fields e2fsck's own writes change: s_wtime (and its high
# byte), s_kbytes_written, and so the checksum.
SB_SIDE_EFFECTS = ((0x30, 4), (0x274, 1), (0x178, 8), (0x3FC, 4))


def run(cmd, check_rc=True, timeout=120):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    out = p.stdout.decode(errors='replace')
    if check_rc and p.returncode != 0:
        raise TestFailure('%s exited %d: %s' % (' '.join(cmd), p.returncode,
                                                out.strip()[-1500:]))
    return p.returncode, out


def pattern(n, seed):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b'%d:%d' % (seed, i)).digest()
        i += 1
    return bytes(out[:n])


# ---------------------------------------------------------------- images

def mkfs(path, opts=(), size='64M'):
    with open(path, 'wb') as f:
        f.truncate(int(size[:-1]) << 20)
    # No lazy init: the kernel must not write inode tables or the journal
    # while the test copies the image.
    run(['mke2fs', '-F', '-q', '-t', 'ext4', '-U', UUID, '-E',
         'hash_seed=%s,lazy_itable_init=0,lazy_journal_init=0' % HASH_SEED]
        + list(opts) + [path])


def copy(src, dst):
    run(['cp', '--sparse=always', src, dst])
    return dst


def sb_info(image):
    out = run(['dumpe2fs', '-h', image])[1]
    info = {}
    for line in out.splitlines():
        if ':' in line:
            k, v = line.split(':', 1)
            info[k.strip()] = v.strip()
    return info


def block_size(image):
    return int(sb_info(image)['Block size'])


def file_sha(path):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def compare_images(a, b):
    """a and b must be identical except the superblock fields that record
    e2fsck's own writes (SB_SIDE_EFFECTS)."""
    allowed = set()
    for off, size in SB_SIDE_EFFECTS:
        allowed |= set(range(SB_OFFSET + off, SB_OFFSET + off + size))
    bad = []
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        check(os.fstat(fa.fileno()).st_size == os.fstat(fb.fileno()).st_size,
              'image sizes differ')
        off = 0
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if not ca:
                break
            if ca != cb:
                for i in range(len(ca)):
                    if ca[i] != cb[i] and off + i not in allowed:
                        bad.append(off + i)
                        if len(bad) > 2000:
                            break
            off += len(ca)
    if bad:
        bs = block_size(a)
        blocks = sorted({o // bs for o in bad})
        raise TestFailure('e2fsck and uext4 replays differ in %d bytes, blocks %s'
                          ' (first offset %d)' % (len(bad), blocks[:20], bad[0]))


def fsck_clean(image):
    rc, out = run(['e2fsck', '-fn', image], check_rc=False)
    check(rc == 0, 'e2fsck -fn %s exited %d:\n%s' % (os.path.basename(image),
                                                      rc, out[-2000:]))


def replay_uext4(image):
    rc, out = run([REPLAY_TOOL, 'recover', image], check_rc=False)
    if rc != 0:
        raise TestFailure('replay_tool recover failed: %s' % out.strip())
    return dict(line.split('=', 1) for line in out.split() if '=' in line)


def replay_e2fsck(image):
    rc, out = run(['e2fsck', '-E', 'journal_only', '-y', image], check_rc=False)
    check(rc == 0 and 'recovering journal' in out,
          'e2fsck -E journal_only exited %d: %s' % (rc, out.strip()))


def tree(mnt):
    """Everything a replay decides, per path."""
    out = {}
    for root, dirs, files in os.walk(mnt):
        dirs.sort()
        for name in sorted(dirs + files) + ([] if root != mnt else ['.']):
            p = os.path.join(root, name) if name != '.' else mnt
            rel = os.path.relpath(p, mnt)
            st = os.lstat(p)
            xattrs = tuple(sorted(
                (k, os.getxattr(p, k, follow_symlinks=False))
                for k in os.listxattr(p, follow_symlinks=False)))
            body = None
            if stat.S_ISREG(st.st_mode):
                with open(p, 'rb') as f:
                    body = hashlib.sha1(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(p)
            out[rel] = (st.st_ino, st.st_mode, st.st_nlink, st.st_uid,
                        st.st_gid, st.st_size, st.st_blocks, st.st_mtime_ns,
                        st.st_ctime_ns, body, xattrs)
    return out


def compare_trees(image_a, image_b, d):
    with kernel_mount(image_a, os.path.join(d, 'ta'), ['ro', 'noload']) as ma, \
            kernel_mount(image_b, os.path.join(d, 'tb'), ['ro', 'noload']) as mb:
        ta, tb = tree(ma), tree(mb)
    if ta != tb:
        only = sorted(set(ta) ^ set(tb))
        diff = [k for k in sorted(set(ta) & set(tb)) if ta[k] != tb[k]]
        raise TestFailure('trees differ: only in one: %s; different: %s' % (
            only[:10], [(k, ta[k], tb[k]) for k in diff[:3]]))
    return len(ta)


# ---------------------------------------------------------------- workload

def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def phase1(m):
    os.mkdir(os.path.join(m, 'd1'))
    os.mkdir(os.path.join(m, 'd1', 'sub'))
    for i in range(250):
        write(os.path.join(m, 'd1', 'a-file-with-a-longish-name-%04d' % i),
              b'small %d\n' % i)
    for i in range(40):
        write(os.path.join(m, 'd1', 'sub', 's%d' % i), pattern(3000, i))
    write(os.path.join(m, 'big'), pattern(300000, 1))
    os.setxattr(os.path.join(m, 'big'), 'user.a', b'hello')
    os.symlink('big', os.path.join(m, 'lnk'))
    os.symlink('x' * 200, os.path.join(m, 'long-lnk'))   # a block symlink
    os.link(os.path.join(m, 'big'), os.path.join(m, 'hard'))
    write(os.path.join(m, 'keep'), pattern(20000, 2))


def phase2(m):
    # Freeing d1's directory blocks (journaled in phase 1) writes revoke
    # records; new data then reuses those blocks.
    shutil.rmtree(os.path.join(m, 'd1'))
    write(os.path.join(m, 'newbig'), pattern(3 << 20, 3))
    os.mkdir(os.path.join(m, 'd2'))
    for i in range(60):
        write(os.path.join(m, 'd2', 'g%d' % i), b'g %d\n' % i)
    os.rename(os.path.join(m, 'd2', 'g1'), os.path.join(m, 'g1'))
    os.unlink(os.path.join(m, 'hard'))
    os.truncate(os.path.join(m, 'big'), 1000)
    os.removexattr(os.path.join(m, 'big'), 'user.a')
    os.setxattr(os.path.join(m, 'd2'), 'user.big', pattern(600, 4))  # an xattr block
    os.chmod(os.path.join(m, 'keep'), 0o600)
    os.chown(os.path.join(m, 'keep'), 1234, 5678)


def crash_copy(orig, crash, d, mount_opts, workload):
    """Run @workload on a loop mount of @orig and copy it, still mounted,
    to @crash."""
    with kernel_mount(orig, os.path.join(d, 'm'), ['commit=600'] + mount_opts) as m:
        workload(m)
        copy(orig, crash)
        features = sb_info(crash).get('Journal features', '')
    return features


def synced_workload(m):
    phase1(m)
    run(['sync'])
    phase2(m)
    run(['sync'])


# ---------------------------------------------------------------- cases

def kernel_case(mkfs_opts, mount_opts, want_features, want_revokes=True):
    with workdir() as d:
        orig, crash = os.path.join(d, 'orig.img'), os.path.join(d, 'crash.img')
        mkfs(orig, mkfs_opts)
        features = crash_copy(orig, crash, d, mount_opts, synced_workload)
        for f in want_features:
            check(f in features.split(), 'the kernel wrote journal features '
                  '"%s", expected %s' % (features, want_features))
        check('needs_recovery' in sb_info(crash)['Filesystem features'],
              'the copy does not need recovery')
        log = run(['debugfs', '-R', 'logdump', crash])[1]
        check('Found expected sequence' in log, 'the copy has an empty log')

        a = copy(crash, os.path.join(d, 'A.img'))
        replay_e2fsck(a)
        b = copy(crash, os.path.join(d, 'B.img'))
        st = replay_uext4(b)
        check(int(st['transactions']) >= 2 and int(st['blocks_written']) > 0,
              'too little replayed: %s' % st)
        check(int(st['csum_errors']) == 0, 'checksum errors: %s' % st)
        if want_revokes:
            check(int(st['revoke_records']) > 0 and int(st['revoked']) > 0,
                  'no revoke was exercised: %s' % st)
        compare_images(a, b)
        fsck_clean(b)
        c = copy(crash, os.path.join(d, 'C.img'))
        rc, out = run(['e2fsck', '-fy', c], check_rc=False)
        check(rc in (0, 1) and 'recovering journal' in out,
              'e2fsck -fy on the crashed image exited %d: %s' % (rc, out[-1500:]))
        compare_trees(orig, b, d)
        sys.stderr.write('# %s: %s\n' % (want_features, ' '.join(
            '%s=%s' % kv for kv in sorted(st.items()))))


@test(timeout=300)
def kernel_csum_v3_4k():
    kernel_case(['-b', '4096'], [], ['journal_checksum_v3', 'journal_64bit'])


@test(timeout=300)
def kernel_csum_v3_1k():
    kernel_case(['-b', '1024'], [], ['journal_checksum_v3', 'journal_64bit'])


@test(timeout=300)
def kernel_no_csum_32bit():
    kernel_case(['-b', '4096', '-O', '^metadata_csum,^64bit'], [], [])


@test(timeout=300)
def kernel_no_csum_64bit():
    kernel_case(['-b', '4096', '-O', '^metadata_csum,64bit'], [],
                ['journal_64bit'])


@test(timeout=300)
def kernel_csum_v1():
    # Without metadata_csum, -o journal_checksum makes Linux write v1
    # (COMPAT_CHECKSUM: a crc32_be of each transaction in its commit).
    kernel_case(['-b', '1024', '-O', '^metadata_csum'], ['journal_checksum'],
                ['journal_checksum'])


@test(timeout=300)
def kernel_async_commit_v3():
    kernel_case(['-b', '4096'], ['data=writeback', 'journal_async_commit'],
                ['journal_async_commit', 'journal_checksum_v3'])


@test(timeout=300)
def kernel_async_commit_v1():
    kernel_case(['-b', '4096', '-O', '^metadata_csum'],
                ['data=writeback', 'journal_async_commit'],
                ['journal_async_commit', 'journal_checksum'])


@test(timeout=300)
def kernel_data_journal():
    # File data goes through the log too: a journal big enough that Linux
    # does not checkpoint the first phase before the copy. Linux never
    # revokes in this mode (ext4_forget: "no need to").
    kernel_case(['-b', '4096', '-J', 'size=16'], ['data=journal'],
                ['journal_checksum_v3'], want_revokes=False)


@test(timeout=300)
def kernel_fast_commit_area_unused():
    # fast_commit journals wrap their log before the fast-commit area; with
    # only full commits (sync) there is nothing there to replay.
    kernel_case(['-b', '4096', '-O', 'fast_commit'], [], ['journal_checksum_v3'])


@test(timeout=300)
def kernel_fast_commit_refused():
    """fsync after a full commit leaves a fast commit: we must refuse and
    change nothing, while e2fsck's replay shows the fast commit mattered."""
    def workload(m):
        os.mkdir(os.path.join(m, 'd'))
        write(os.path.join(m, 'd', 'a'), b'a\n')
        run(['sync'])
        fd = os.open(os.path.join(m, 'd', 'b'), os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            os.write(fd, b'fast commit only\n' * 50)
            os.fsync(fd)
        finally:
            os.close(fd)

    with workdir() as d:
        orig, crash = os.path.join(d, 'orig.img'), os.path.join(d, 'crash.img')
        mkfs(orig, ['-b', '4096', '-O', 'fast_commit'])
        crash_copy(orig, crash, d, [], workload)
        b = copy(crash, os.path.join(d, 'B.img'))
        before = file_sha(b)
        rc, out = run([REPLAY_TOOL, 'recover', b], check_rc=False)
        check(rc == 1 and 'error=EOPNOTSUPP' in out and 'fast commit' in out,
              'expected a refusal naming fast commits, got %d: %s' % (rc, out))
        check(file_sha(b) == before, 'the refused replay changed the image')
        a = copy(crash, os.path.join(d, 'A.img'))
        replay_e2fsck(a)
        got = run(['debugfs', '-R', 'cat /d/b', a])[1]
        check('fast commit only' in got,
              'e2fsck did not need the fast commit (no /d/b): the case '
              'does not test what it claims')


def free_blocks(image, count):
    total = int(sb_info(image)['Block count'])
    out = run(['debugfs', '-R', 'ffb %d %d' % (count, total // 2), image])[1]
    m = re.search(r'Free blocks found: ([\d ]+)', out)
    check(m, 'debugfs ffb: %s' % out)
    blocks = [int(x) for x in m.group(1).split()]
    check(len(blocks) == count, 'not enough free blocks')
    return blocks


def logged(home, txn, bs):
    line = b'uext4 jfmt block %d txn %d\n' % (home, txn)
    data = (line * (bs // len(line) + 1))[:bs]
    return JBD2_MAGIC + data[4:] if home % 2 == 0 else data


def read_block(image, blk, bs):
    with open(image, 'rb') as f:
        f.seek(blk * bs)
        return f.read(bs)


def writer_case(bs, features):
    with workdir() as d:
        img = os.path.join(d, 'w.img')
        mkfs(img, ['-b', str(bs)])
        n0 = 300 if bs == 4096 else 70          # more than one descriptor
        f = free_blocks(img, n0 + 8)
        before = {b: read_block(img, b, bs) for b in f}
        txns = [
            ','.join(map(str, f[:n0])),
            ','.join(map(str, f[n0:n0 + 5])) + '/%d' % f[1],
            '%d,%d' % (f[2], f[n0 + 5]),
            '%d,%d!' % (f[0], f[n0 + 6]),       # never committed
        ]
        run([REPLAY_TOOL, 'write', img, '--features=' + features] + txns)
        want = {b: logged(b, 0, bs) for b in f[:n0]}
        want.update({b: logged(b, 1, bs) for b in f[n0:n0 + 5]})
        want[f[1]] = before[f[1]]                 # revoked by txn 1
        want[f[2]] = logged(f[2], 2, bs)          # newer version
        want[f[n0 + 5]] = logged(f[n0 + 5], 2, bs)
        want[f[n0 + 6]] = before[f[n0 + 6]]       # uncommitted
        want[f[n0 + 7]] = before[f[n0 + 7]]

        a = copy(img, os.path.join(d, 'A.img'))
        replay_e2fsck(a)
        b = copy(img, os.path.join(d, 'B.img'))
        st = replay_uext4(b)
        check(st['transactions'] == '3' and st['revoked'] == '1',
              'unexpected replay statistics %s' % st)
        k = copy(img, os.path.join(d, 'K.img'))
        with kernel_mount(k, os.path.join(d, 'mk'), []):
            pass                                   # Linux replays at mount
        for name, image in (('e2fsck', a), ('uext4', b), ('Linux', k)):
            for blk, data in want.items():
                got = read_block(image, blk, bs)
                check(got == data, '%s replay: block %d holds %r..., want %r...'
                      % (name, blk, got[:32], data[:32]))
        compare_images(a, b)
        fsck_clean(b)
        fsck_clean(k)


@test(timeout=300)
def writer_csum_v3_1k():
    writer_case(1024, 'v3')


@test(timeout=300)
def writer_csum_v3_64bit_4k():
    writer_case(4096, 'v3,64bit')


@test(timeout=300)
def writer_csum_v2_1k():
    writer_case(1024, 'v2')


@test(timeout=300)
def writer_csum_v2_64bit_4k():
    writer_case(4096, 'v2,64bit')


@test(timeout=300)
def writer_csum_v1_1k():
    writer_case(1024, 'v1')


@test(timeout=300)
def writer_no_csum_32bit_4k():
    writer_case(4096, 'none')


@test(timeout=300)
def writer_no_csum_64bit_1k():
    writer_case(1024, 'none,64bit')


def setup():
    if os.geteuid() != 0:
        raise SkipFile('needs root for loop mounts')
    if not os.access(REPLAY_TOOL, os.X_OK):
        raise TestFailure('replay tool %s is not built' % REPLAY_TOOL)
    with workdir() as d:
        img = os.path.join(d, 'probe.img')
        mkfs(img, ['-b', '4096'], size='16M')
        try:
            with kernel_mount(img, os.path.join(d, 'm'), []):
                pass
        except TestFailure as e:
            raise SkipFile('loop mounts do not work here: %s' % e)


if __name__ == '__main__':
    main(setup, needs_daemon=False)

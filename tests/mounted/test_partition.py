#!/usr/bin/env python3
"""File systems that are partitions of a disk image: mount(8)'s loop
options offset= and sizelimit= (losetup --offset/--sizelimit).

A disk image is made by hand: a partition table (GPT or MBR) written
here, patterned bytes everywhere, and mke2fs -E offset= for each
partition. uext4 serves one partition: every byte of the file outside it
(the table, the gaps, the other partition) must stay as it was through
writes, deletes, FITRIM, a journal replay and the MMP block; e2fsck of
IMAGE?offset=N is clean; the kernel's loop mount of the partition
(loop,offset=,sizelimit=) reads what uext4 wrote. The whole disk image is
refused with its partitions' options named.
"""
import contextlib
import fcntl
import hashlib
import os
import re
import signal
import struct
import subprocess
import zlib

from uext4test import (UEXT4, Mount, check, eq, fsck, fuse_unmount, kernel_mount,
                       kernel_unmount, main, mounted_at, wait_until,
                       pattern, read_file, require_kernel_loop_mount, run, test, workdir)

MiB = 1 << 20
FITRIM = 0xc0185879
# (first byte, bytes, mke2fs options) of the two partitions.
PARTS = [(1 * MiB, 40 * MiB, ['-t', 'ext4', '-b', '4096', '-O', 'inline_data']),
         (42 * MiB, 20 * MiB, ['-t', 'ext4', '-b', '1024', '-O', '^metadata_csum'])]
DISK = 64 * MiB


def gpt_entry(i, first, size):
    type_guid = bytes.fromhex('af3dc60f838472478e793d69d8477de4')  # Linux data
    uniq = bytes([i + 1] * 16)
    name = ('part%d' % (i + 1)).encode('utf-16-le').ljust(72, b'\0')
    return (type_guid + uniq + struct.pack('<QQQ', first // 512, (first + size) // 512 - 1, 0) +
            name)


def write_table(f, kind):
    """A GPT (protective MBR, header at sector 1, entries at sector 2) or
    an MBR with the two partitions."""
    mbr = bytearray(512)
    if kind == 'gpt':
        mbr[446:462] = struct.pack('<B3sB3sII', 0, b'\0\0\2', 0xEE, b'\xff\xff\xff', 1,
                                   DISK // 512 - 1)
        ents = b''.join(gpt_entry(i, p[0], p[1]) for i, p in enumerate(PARTS)).ljust(128 * 128,
                                                                                  b'\0')
        hdr = struct.pack('<8sIIII', b'EFI PART', 0x10000, 92, 0, 0)
        hdr += struct.pack('<QQQQ', 1, DISK // 512 - 1, 34, DISK // 512 - 34)
        hdr += bytes(range(16)) + struct.pack('<QIII', 2, 128, 128, zlib.crc32(ents))
        hdr = hdr[:16] + struct.pack('<I', zlib.crc32(hdr)) + hdr[20:]
        f.seek(512)
        f.write(hdr.ljust(512, b'\0'))
        f.write(ents)
    else:
        for i, (first, size, _) in enumerate(PARTS):
            mbr[446 + 16 * i:462 + 16 * i] = struct.pack('<B3sB3sII', 0, b'\0\0\0', 0x83,
                                                         b'\0\0\0', first // 512, size // 512)
    mbr[510:512] = b'\x55\xaa'
    f.seek(0)
    f.write(mbr)


def disk_image(d, kind='gpt', extra=()):
    """The disk image: patterned bytes, a table, two file systems."""
    img = os.path.join(d, 'disk.img')
    with open(img, 'wb') as f:
        for off in range(0, DISK, MiB):
            f.write(pattern(MiB, off // MiB + 100))
        write_table(f, kind)
    for first, size, opts in PARTS:
        run(['mke2fs', '-q', '-F', '-E', 'offset=%d' % first] + opts + list(extra) +
            [img, '%dk' % (size // 1024)])
    return img


def regions(img, keep):
    """sha256 of each stretch of @img outside partition @keep."""
    first, size, _ = PARTS[keep]
    out = []
    with open(img, 'rb') as f:
        for a, b in ((0, first), (first + size, os.path.getsize(img))):
            f.seek(a)
            out.append(hashlib.sha256(f.read(b - a)).hexdigest())
    return out


def gaps(img):
    """sha256 of each stretch of @img outside every partition."""
    edges = [0] + [x for first, size, _ in PARTS for x in (first, first + size)] + [DISK]
    out = []
    with open(img, 'rb') as f:
        for a, b in zip(edges[::2], edges[1::2]):
            f.seek(a)
            out.append(hashlib.sha256(f.read(b - a)).hexdigest())
    return out


def opts_of(i):
    return ['offset=%d' % PARTS[i][0], 'sizelimit=%d' % PARTS[i][1]]


def fsck_part(img, i):
    fsck('%s?offset=%d' % (img, PARTS[i][0]))


def fsck_copy(img, i):
    """e2fsck of a copy of partition @i: e2fsprogs 1.47 reads the MMP block
    without the offset (its own open of the device), so IMAGE?offset=N
    fails on an mmp file system that is clean."""
    first, size, _ = PARTS[i]
    part = img + '.part%d' % i
    with open(img, 'rb') as f, open(part, 'wb') as out:
        f.seek(first)
        out.write(f.read(size))
    fsck(part)
    os.unlink(part)


def tree(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if rel.startswith('lost+found'):
                continue
            if os.path.islink(p):
                out[rel] = 'link ' + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = 'dir'
            else:
                out[rel] = hashlib.sha256(read_file(p)).hexdigest()
    return out


def fitrim(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return struct.unpack('3Q', fcntl.ioctl(fd, FITRIM, struct.pack('3Q', 0, 2**64 - 1, 0)))[1]
    finally:
        os.close(fd)


def workload(mnt, seed):
    """Writes, a big file deleted, FITRIM, a directory, a symlink, an xattr,
    a punched hole."""
    os.mkdir(os.path.join(mnt, 'dir'))
    for i in range(20):
        with open(os.path.join(mnt, 'dir', 'f%d' % i), 'wb') as f:
            f.write(pattern(37 * i * i + 20, seed + i))
    with open(os.path.join(mnt, 'big'), 'wb') as f:
        f.write(pattern(12 * MiB, seed))
    os.unlink(os.path.join(mnt, 'big'))
    os.sync()
    fitrim(mnt)
    holey = os.path.join(mnt, 'holey')
    with open(holey, 'wb') as f:
        f.write(pattern(3 * MiB, seed + 50))
    run(['fallocate', '--punch-hole', '-o', str(MiB), '-l', str(MiB), holey])
    os.symlink('dir/f3', os.path.join(mnt, 'ln'))
    os.setxattr(os.path.join(mnt, 'dir', 'f1'), 'user.part', b'x' * 300)


@test(timeout=240)
def partitions_served_one_at_a_time():
    """Each partition of a GPT disk image mounted with offset= and
    sizelimit=, a workload run on it (FITRIM included): every byte outside
    it unchanged (the table, the gaps, the other partition), e2fsck clean,
    the kernel's loop mount of the partition reads the same tree."""
    with workdir() as d:
        img = disk_image(d)
        for i in range(len(PARTS)):
            before = regions(img, i)
            with Mount(img, opts=opts_of(i)) as m:
                workload(m.mnt, 10 * i)
                want = tree(m.mnt)
            eq(regions(img, i), before, 'the bytes outside partition %d' % (i + 1))
            fsck_part(img, i)
            with kernel_mount(img, os.path.join(d, 'kmnt'), opts=['ro'] + opts_of(i)) as k:
                eq(tree(k), want, 'the kernel\'s tree of partition %d' % (i + 1))
            eq(regions(img, i), before, 'the bytes outside partition %d after the kernel\'s '
               'read-only mount' % (i + 1))


def refused(img, mnt, opts):
    """The daemon's words refusing @opts; a mount that succeeds instead is
    unmounted (the daemon waited for) and fails the test."""
    os.makedirs(mnt, exist_ok=True)
    p = subprocess.Popen([UEXT4, img, mnt, '-f', '-o', ','.join(opts)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: p.poll() is not None or bool(mounted_at(mnt)), True,
                   'uext4 %s to exit or mount' % opts, timeout=60)
        mounted = p.poll() is None
        if mounted:
            fuse_unmount(mnt)
        out = p.communicate(timeout=60)[0].decode(errors='replace')
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    check(not mounted and p.returncode != 0, '%s mounted' % opts)
    return out


@test(timeout=240)
def two_partitions_at_once():
    """Both partitions served at once by two daemons (each locks its own
    bytes); a second daemon for a partition in use, or for the whole
    image, is refused naming the holder; a kernel loop mount of one
    partition stops uext4 only on that one. A refusal names the daemon
    holding the partition asked for, and no mount point to bind-mount (it
    may serve another partition). Afterwards every byte outside
    each partition as the other's workload left it, both e2fsck clean."""
    with workdir() as d:
        img = disk_image(d)
        p1 = Mount(img, mnt=os.path.join(d, 'm1'), opts=opts_of(0))
        p2 = Mount(img, mnt=os.path.join(d, 'm2'), opts=opts_of(1))
        with p1, p2:
            workload(p1.mnt, 0)
            workload(p2.mnt, 10)
            want = [tree(p1.mnt), tree(p2.mnt)]
            first, size, _ = PARTS[0]
            out = refused(img, os.path.join(d, 'm3'), ['ro'] + opts_of(0))
            check('pid %d (uext4) holds bytes %d-%d of it for writing' %
                  (p1.proc.pid, first, first + size - 1) in out, out)
            # The holder of partition 2's bytes, not the first daemon with
            # any lock on the file; and no mount named for a bind mount (a
            # mount's source is the file, whichever partition it serves).
            first, size, _ = PARTS[1]
            out = refused(img, os.path.join(d, 'm3'), opts_of(1))
            check('pid %d (uext4) holds bytes %d-%d of it for writing' %
                  (p2.proc.pid, first, first + size - 1) in out, out)
            check('mount --bind \'' not in out, out)
            out = refused(img, os.path.join(d, 'm3'), [])
            check(re.search(r'pid (%d|%d) \(uext4\) holds its lock for reading' %
                            (p1.proc.pid, p2.proc.pid), out), out)
        for i in range(len(PARTS)):
            fsck_part(img, i)
        before = regions(img, 0)
        with kernel_mount(img, os.path.join(d, 'kmnt'), opts=['ro'] + opts_of(1)) as k:
            eq(tree(k), want[1], 'the kernel\'s tree of partition 2')
            out = refused(img, os.path.join(d, 'm3'), opts_of(1))
            check('the kernel has it mounted' in out, out)
            with Mount(img, opts=['ro'] + opts_of(0)) as m:
                eq(tree(m.mnt), want[0], 'partition 1 beside the kernel\'s mount of 2')
        eq(regions(img, 0), before, 'the bytes outside partition 1')


@test(timeout=240)
def partitions_at_once_with_offset_only():
    """Both partitions mounted with offset= alone (mount -o loop,offset=N,
    as most recipes say): each daemon locks its file system's bytes, not
    everything to the end of the file, so both are served at once; each
    written, every byte outside it unchanged, both e2fsck clean."""
    with workdir() as d:
        img = disk_image(d)
        before = gaps(img)
        p1 = Mount(img, mnt=os.path.join(d, 'm1'), opts=['offset=%d' % PARTS[0][0]])
        p2 = Mount(img, mnt=os.path.join(d, 'm2'), opts=['offset=%d' % PARTS[1][0]])
        with p1, p2:
            workload(p1.mnt, 0)
            want = tree(p1.mnt)
            # Still one daemon per file system: its bytes stay locked.
            out = refused(img, os.path.join(d, 'm3'), ['ro', 'offset=%d' % PARTS[0][0]])
            check('pid %d (uext4) holds bytes %d-%d of it for writing' %
                  (p1.proc.pid, PARTS[0][0], PARTS[0][0] + PARTS[0][1] - 1) in out, out)
        fsck_part(img, 0)
        fsck_part(img, 1)
        eq(gaps(img), before, 'the table and the gaps')
        with Mount(img, opts=['ro'] + opts_of(0)) as m:
            eq(tree(m.mnt), want, 'partition 1 after')


@contextlib.contextmanager
def partitioned_loop(img):
    """A loop device of @img with its partitions (loopNpM, as losetup -P
    makes them; partx -a where the kernel's scan leaves them out), removed
    afterwards by name."""
    dev = run(['losetup', '-f', '--show', img]).stdout.decode().strip()
    try:
        run(['partx', '-a', dev], check_rc=False)
        parts = [dev + 'p%d' % (i + 1) for i in range(len(PARTS))]
        check(all(os.path.exists(p) for p in parts), 'no partitions of %s' % dev)
        yield parts
    finally:
        run(['partx', '-d', dev], check_rc=False)
        run(['losetup', '-d', dev], check_rc=False)


@test(timeout=120)
def kernel_mount_of_a_loop_partition_seen():
    """A kernel mount of partition 2 through a partitioned loop device of
    the whole disk image (/dev/loopNp2, which takes no lock on the file):
    uext4 refuses partition 2, naming that device and mount point, and
    serves partition 1 beside it; the kernel's mount is left alone."""
    with workdir() as d:
        img = disk_image(d)
        with partitioned_loop(img) as parts:
            k = os.path.join(d, 'kmnt')
            os.mkdir(k)
            run(['mount', '-t', 'ext4', '-o', 'ro', parts[1], k])
            try:
                out = refused(img, os.path.join(d, 'm3'), ['ro'] + opts_of(1))
                check("the kernel has it mounted on '%s' through %s" % (k, parts[1]) in out,
                      out)
                with Mount(img, opts=opts_of(0)) as m:
                    workload(m.mnt, 3)
                eq(os.listdir(k), ['lost+found'], 'the kernel\'s partition 2')
            finally:
                busy = kernel_unmount(k)
            check(not busy, 'umount %s: %s' % (k, busy))
        fsck_part(img, 0)
        fsck_part(img, 1)


@test(timeout=120)
def whole_disk_names_partitions():
    """A whole disk image (GPT, then MBR) is refused, naming each
    partition's offset= and sizelimit=; those options then mount it."""
    for kind in ('gpt', 'mbr'):
        with workdir() as d:
            img = disk_image(d, kind)
            os.mkdir(os.path.join(d, 'mnt'))
            p = run([UEXT4, img, os.path.join(d, 'mnt'), '-f'], check_rc=False, timeout=30)
            out = (p.stdout + p.stderr).decode(errors='replace')
            check(p.returncode != 0 and 'a disk image with a partition table' in out,
                  '%s: exit %d: %s' % (kind, p.returncode, out))
            named = re.findall(r'partition (\d): offset=(\d+),sizelimit=(\d+)', out)
            eq([(int(n), int(o), int(s)) for n, o, s in named],
               [(i + 1, p[0], p[1]) for i, p in enumerate(PARTS)], kind + ': partitions named')
            with Mount(img, opts=['loop'] + opts_of(1)) as m:
                eq(os.listdir(m.mnt), ['lost+found'], kind + ': partition 2')


@test(timeout=120)
def window_refusals():
    """sizelimit smaller than the file system, an offset past the end of the
    image, an offset that holds no file system: refused, each naming the
    cause; the image unchanged."""
    with workdir() as d:
        img = disk_image(d)
        before = hashlib.sha256(read_file(img)).hexdigest()
        first, size, _ = PARTS[0]
        os.mkdir(os.path.join(d, 'mnt'))
        for opts, want in (
                (['offset=%d' % first, 'sizelimit=%d' % (size - 4096)],
                 'does not fit in offset=%d,sizelimit=%d' % (first, size - 4096)),
                (['offset=%d' % DISK], 'offset=%d is at or past the end of image' % DISK),
                (['offset=%d' % (first + 4096)], 'not a valid ext2/3/4 file system image at '
                 'that offset')):
            p = run([UEXT4, img, os.path.join(d, 'mnt'), '-f', '-o', ','.join(opts)],
                    check_rc=False, timeout=30)
            out = (p.stdout + p.stderr).decode(errors='replace')
            check(p.returncode != 0 and want in out, '%s: exit %d: %s' % (opts, p.returncode, out))
        eq(hashlib.sha256(read_file(img)).hexdigest(), before, 'the image')


def killed_with_journal(d):
    """Partition 1 with files written and fsync'd, its daemon killed: the
    journal holds them. Returns (image, the bytes outside, the files)."""
    img = disk_image(d)
    before = regions(img, 0)
    files = {'k%d' % i: pattern(5000 + 999 * i, i) for i in range(10)}
    m = Mount(img, opts=opts_of(0))
    m.start()
    try:
        for name, data in files.items():
            with open(m.path(name), 'wb') as f:
                f.write(data)
                os.fsync(f.fileno())
    finally:
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(30)
        fuse_unmount(m.mnt)
    check('needs_recovery' in run(['dumpe2fs', '-h', '%s?offset=%d' % (img, PARTS[0][0])])
          .stdout.decode(), 'the killed daemon left no journal to replay')
    return img, before, files


@test(timeout=180)
def journal_replayed_in_the_partition():
    """A partition whose daemon was killed after fsyncs: a read-only mount
    replays the journal in memory (the image unchanged, the files there), a
    read-write mount replays it into the partition (the bytes outside
    unchanged, the files there, e2fsck clean)."""
    with workdir() as d:
        img, before, files = killed_with_journal(d)
        whole = hashlib.sha256(read_file(img)).hexdigest()
        with Mount(img, opts=['ro'] + opts_of(0)) as m:
            for name, data in files.items():
                eq(read_file(m.path(name)), data, 'read-only: ' + name)
        eq(hashlib.sha256(read_file(img)).hexdigest(), whole, 'the image after the ro mount')
        with Mount(img, opts=opts_of(0)) as m:
            for name, data in files.items():
                eq(read_file(m.path(name)), data, 'read-write: ' + name)
        eq(regions(img, 0), before, 'the bytes outside partition 1')
        fsck_part(img, 0)


@test(timeout=120)
def mmp_block_in_the_partition():
    """Multiple-mount protection on a partition: the MMP block is updated
    inside the partition while mounted and left clean after; the bytes
    outside unchanged."""
    with workdir() as d:
        img = disk_image(d, extra=['-O', 'mmp'])
        first = PARTS[0][0]
        info = run(['dumpe2fs', '-h', '%s?offset=%d' % (img, first)]).stdout.decode()
        blk = int(re.search(r'MMP block number:\s+(\d+)', info).group(1))
        before = regions(img, 0)

        def mmp():
            with open(img, 'rb') as f:
                f.seek(first + blk * 4096)
                return struct.unpack('<II', f.read(8))

        with Mount(img, opts=opts_of(0)) as m:
            with open(m.path('x'), 'wb') as f:
                f.write(b'x')
            magic, seq = mmp()
            eq(magic, 0x004D4D50, 'MMP magic while mounted')
            check(seq not in (0xFF4D4D50, 0), 'MMP sequence while mounted: %#x' % seq)
        eq(mmp(), (0x004D4D50, 0xFF4D4D50), 'MMP block after unmount (clean)')
        eq(regions(img, 0), before, 'the bytes outside partition 1')
        fsck_copy(img, 0)


if __name__ == '__main__':
    main(require_kernel_loop_mount)

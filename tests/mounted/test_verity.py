#!/usr/bin/env python3
"""verity (mkfs -O verity): fs-verity files, as ext4 keeps them.

- FS_IOC_ENABLE_VERITY builds the Merkle tree and the descriptor and
  stores them past EOF where ext4 does (the tree at round_up(i_size, 64K),
  the descriptor at the next block boundary, its size in the last 4 bytes
  of the last block), then sets EXT4_VERITY_FL with i_size unchanged.
- FS_IOC_MEASURE_VERITY gives the file digest.
- Every read checks the data against the tree: a flipped bit reads EIO on
  the blocks it covers only; a damaged descriptor fails the open.
- Contents never change after: writes, truncation EPERM (fs/verity/open.c);
  metadata (mode, owner, xattrs, names, links) may.

No kernel comparison: this machine's kernel has no CONFIG_FS_VERITY (it
refuses to mount such images read-write and cannot enable verity). The
references are fsverity-utils (`fsverity digest`, with --out-merkle-tree
and --out-descriptor for the bytes of the tree and descriptor, computed
offline from the same bytes and parameters), the layout of
Documentation/filesystems/fsverity.rst and fs/ext4/verity.c, and e2fsck.
A verity file built by hand (fsverity digest's tree and descriptor placed
with mke2fs -d, the flag set with debugfs) must equal, byte for byte past
EOF too, the one uext4 enables from the same data."""

import ctypes
import errno
import fcntl
import os
import re
import shutil
import signal
import struct
import subprocess

from uext4test import (Mount, check, debugfs, eq, expect_errno, fsck,
                       getflags, inode_info, main, mkfs, pattern, read_file,
                       run, test, wait_until, workdir, write_file)

EXT4_VERITY_FL = 0x100000
EXT4_EXTENTS_FL = 0x80000
EXT4_INLINE_DATA_FL = 0x10000000
FS_IOC_ENABLE_VERITY = 0x40806685
FS_IOC_MEASURE_VERITY = 0xc0046686
FS_IOC_READ_VERITY_METADATA = 0xc0286687
SHA256, SHA512 = 1, 2
ALG_NAME = {SHA256: 'sha256', SHA512: 'sha512'}


def enable(path, alg=SHA256, bs=4096, salt=b'', sig=b'', flags=os.O_RDONLY,
           version=1):
    """FS_IOC_ENABLE_VERITY through a descriptor opened with @flags."""
    sbuf = ctypes.create_string_buffer(salt or b'\0')
    gbuf = ctypes.create_string_buffer(sig or b'\0')
    arg = struct.pack('<IIIIQIIQ88x', version, alg, bs, len(salt),
                      ctypes.addressof(sbuf), len(sig), 0,
                      ctypes.addressof(gbuf))
    fd = os.open(path, flags)
    try:
        fcntl.ioctl(fd, FS_IOC_ENABLE_VERITY, arg)
    finally:
        os.close(fd)


def measure(path, size=64):
    fd = os.open(path, os.O_RDONLY)
    try:
        out = fcntl.ioctl(fd, FS_IOC_MEASURE_VERITY,
                          struct.pack('<HH', 0, size) + bytes(size))
    finally:
        os.close(fd)
    alg, n = struct.unpack('<HH', out[:4])
    return '%s:%s' % (ALG_NAME[alg], out[4:4 + n].hex())


def reference(data_path, alg=SHA256, bs=4096, salt=b'', out=None):
    """fsverity digest of a host file: the digest, and with @out the tree
    and descriptor files it writes."""
    cmd = ['fsverity', 'digest', data_path, '--hash-alg=' + ALG_NAME[alg],
           '--block-size=%d' % bs]
    if salt:
        cmd.append('--salt=' + salt.hex())
    if out:
        cmd += ['--out-merkle-tree=' + out + '.tree',
                '--out-descriptor=' + out + '.desc']
    return run(cmd).stdout.decode().split()[0]


def extents(img, path):
    """{logical block: physical block} of the leaf extents of @path."""
    out = debugfs(img, 'ex ' + path)
    m = {}
    for line in out.splitlines():
        f = re.match(r'\s*(\d+)/\s*(\d+)\s+\d+/\s*\d+\s+(\d+)\s*-\s*(\d+)\s+'
                     r'(\d+)\s*-\s*(\d+)', line)
        if f and f.group(1) == f.group(2):
            lo, hi, p = int(f.group(3)), int(f.group(4)), int(f.group(5))
            for i in range(hi - lo + 1):
                m[lo + i] = p + i
    return m


def raw_bytes(img, path, off, n, bs):
    """Bytes [off, off+n) of @path's blocks read from the image, past EOF
    too; holes read as zeros."""
    ext = extents(img, path)
    out = bytearray()
    with open(img, 'rb') as f:
        for blk in range(off // bs, (off + n + bs - 1) // bs):
            if blk in ext:
                f.seek(ext[blk] * bs)
                out += f.read(bs)
            else:
                out += bytes(bs)
    s = off % bs
    return bytes(out[s:s + n])


def round_up(x, a):
    return (x + a - 1) // a * a


def metadata_of(img, path, size, fs_bs, tree_len):
    """(tree bytes, descriptor bytes) stored past EOF, as ext4 lays them."""
    meta = round_up(size, 65536)
    desc_pos = round_up(meta + tree_len, fs_bs)
    return raw_bytes(img, path, meta, tree_len, fs_bs), \
        raw_bytes(img, path, desc_pos, 256, fs_bs)


def flip_bit(img, pblk, bs, byte=100):
    with open(img, 'r+b') as f:
        f.seek(pblk * bs + byte)
        b = f.read(1)
        f.seek(pblk * bs + byte)
        f.write(bytes([b[0] ^ 0x10]))


def check_refused(path, size):
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND,
                  os.O_RDWR | os.O_TRUNC):
        expect_errno(errno.EPERM, os.open, path, flags)
    expect_errno(errno.EPERM, os.truncate, path, 0)
    expect_errno(errno.EPERM, os.truncate, path, size + 1)


def sparse_data():
    """A 300 KiB file with a 200 KiB hole in the middle."""
    return pattern(50000, 7) + bytes(200 << 10) + pattern(57200, 8)


CASES = [  # (name, data, alg, salt)
    ('empty', b'', SHA256, b''),
    ('one', b'x', SHA256, b''),
    ('4095', pattern(4095, 1), SHA256, b''),
    ('4096', pattern(4096, 2), SHA256, b'salt'),
    ('4097', pattern(4097, 3), SHA512, b''),
    ('1M+1', pattern((1 << 20) + 1, 4), SHA256, bytes(range(32))),
    ('1M+1-512', pattern((1 << 20) + 1, 5), SHA512, b'pepper'),
    ('sparse', sparse_data(), SHA256, b''),
]


def check_enabled(d, img, m, name, data, alg, bs, salt, fs_bs=4096):
    path = m.path(name)
    host = os.path.join(d, 'ref-' + name)
    write_file(host, data)
    want = reference(host, alg, bs, salt, out=host)
    eq(measure(path), want, '%s: measured digest' % name)
    p = subprocess.run(['fsverity', 'measure', path], stdout=subprocess.PIPE)
    eq(p.stdout.decode().split()[0], want, '%s: fsverity measure' % name)
    eq(read_file(path), data, '%s: read back' % name)
    eq(os.stat(path).st_size, len(data), '%s: size kept' % name)
    check_refused(path, len(data))
    expect_errno(errno.EEXIST, enable, path, alg, bs, salt)
    return host


@test(timeout=300)
def enable_sizes_and_layout():
    """Every size of CASES, each equal to fsverity digest's digest, and its
    tree and descriptor on disk byte for byte fsverity digest's."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['verity'])
        with Mount(img) as m:
            for name, data, alg, salt in CASES:
                p = m.path(name)
                if name == 'sparse':
                    with open(p, 'wb') as f:
                        f.write(data[:50000])
                        f.seek(len(data) - 57200)
                        f.write(data[-57200:])
                else:
                    write_file(p, data)
                enable(p, alg, 4096, salt)
            hosts = {name: check_enabled(d, img, m, name, data, alg, 4096,
                                         salt)
                     for name, data, alg, salt in CASES}
        fsck(img)
        for name, data, alg, salt in CASES:
            info = inode_info(img, '/' + name)
            check(info['flags'] & EXT4_VERITY_FL, '%s: no verity flag' % name)
            eq(info['size'], len(data), '%s: i_size' % name)
            tree = read_file(hosts[name] + '.tree')
            got_tree, got_desc = metadata_of(img, '/' + name, len(data), 4096,
                                             len(tree))
            eq(got_tree, tree, '%s: Merkle tree on disk' % name)
            eq(got_desc, read_file(hosts[name] + '.desc'),
               '%s: descriptor on disk' % name)
        with Mount(img) as m:       # after a remount, from the image
            for name, data, alg, salt in CASES:
                eq(read_file(m.path(name)), data, '%s: after remount' % name)
                eq(measure(m.path(name)), reference(hosts[name], alg, 4096,
                                                    salt), name)
        fsck(img)


@test
def enable_inline_file():
    """An inline file is converted to a block first, as ext4 does."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['verity', 'inline_data'])
        data = b'small inline file\n'
        with Mount(img) as m:
            write_file(m.path('in'), data)
        check(inode_info(img, '/in')['flags'] & EXT4_INLINE_DATA_FL,
              'the file was not inline to begin with')
        with Mount(img) as m:
            enable(m.path('in'))
            host = d + '/ref'
            write_file(host, data)
            eq(measure(m.path('in')), reference(host), 'digest')
            eq(read_file(m.path('in')), data, 'read back')
        fsck(img)
        flags = inode_info(img, '/in')['flags']
        check(flags & EXT4_VERITY_FL and not flags & EXT4_INLINE_DATA_FL,
              'flags 0x%x' % flags)


@test
def enable_1k_blocks():
    """A 1 KiB-block image: Merkle blocks of 1 KiB; 4 KiB ones are refused
    (the kernel allows no more than the fs block size)."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['verity'], opts=['-b', '1024'])
        data = pattern(300000, 9)
        with Mount(img) as m:
            write_file(m.path('f'), data)
            expect_errno(errno.EINVAL, enable, m.path('f'), SHA256, 4096)
            expect_errno(errno.EINVAL, enable, m.path('f'), SHA256, 512)
            for alg, salt in ((SHA256, b''), (SHA512, b'abc')):
                name = 'f%d' % alg
                write_file(m.path(name), data)
                enable(m.path(name), alg, 1024, salt)
                check_enabled(d, img, m, name, data, alg, 1024, salt, 1024)
        fsck(img)
        host = d + '/ref-f2'
        tree = read_file(host + '.tree')
        got_tree, got_desc = metadata_of(img, '/f2', len(data), 1024,
                                         len(tree))
        eq(got_tree, tree, 'tree on disk')
        eq(got_desc, read_file(host + '.desc'), 'descriptor on disk')


@test
def enable_refused():
    with workdir() as d:
        img = mkfs(d + '/img', features=['verity'])
        with Mount(img) as m:
            f = m.path('f')
            write_file(f, pattern(10000, 1))
            expect_errno(errno.EINVAL, enable, f, 3)           # algorithm
            expect_errno(errno.EINVAL, enable, f, SHA256, 3000)
            expect_errno(errno.EINVAL, enable, f, SHA256, 8192)
            expect_errno(errno.EINVAL, enable, f, version=2)
            expect_errno(errno.EMSGSIZE, enable, f, salt=bytes(33))
            expect_errno(errno.EBADF, enable, f, flags=os.O_WRONLY)
            # Its own descriptor or another open for writing: ETXTBSY.
            expect_errno(errno.ETXTBSY, enable, f, flags=os.O_RDWR)
            w = os.open(f, os.O_WRONLY)
            expect_errno(errno.ETXTBSY, enable, f)
            os.close(w)
            os.mkdir(m.path('dir'))
            expect_errno(errno.EISDIR, enable, m.path('dir'))
            expect_errno(errno.ENODATA, measure, f)
            expect_errno(errno.EOVERFLOW, lambda: (enable(f),
                                                   measure(f, 16)))
            eq(measure(f, 32)[:7], 'sha256:', 'a 32-byte buffer is enough')
            expect_errno(errno.EEXIST, enable, f)
            # FS_IOC_READ_VERITY_METADATA: FUSE forwards the 40-byte
            # argument only, never the buffer it names: ENOTTY.
            buf = ctypes.create_string_buffer(4096)
            arg = struct.pack('<QQQQQ', 2, 0, 4096, ctypes.addressof(buf), 0)
            fd = os.open(f, os.O_RDONLY)
            try:
                expect_errno(errno.ENOTTY, fcntl.ioctl, fd,
                             FS_IOC_READ_VERITY_METADATA, arg)
            finally:
                os.close(fd)
        fsck(img)
        img2 = mkfs(d + '/img2')
        with Mount(img2) as m:
            write_file(m.path('f'), b'data')
            expect_errno(errno.EOPNOTSUPP, enable, m.path('f'))
        fsck(img2)


@test
def enable_enospc():
    """No room for the tree: ENOSPC, the file stays ordinary with its bytes
    and nothing leaks (e2fsck -fn); with room again the enable works."""
    with workdir() as d:
        img = mkfs(d + '/img', size='16M', features=['verity'])
        data = pattern(4 << 20, 3)
        with Mount(img) as m:
            write_file(m.path('f'), data)
            with open(m.path('fill'), 'wb') as f:
                try:
                    while True:
                        f.write(bytes(1 << 16))
                        f.flush()
                except OSError as e:
                    eq(e.errno, errno.ENOSPC, 'filling the image')
            expect_errno(errno.ENOSPC, enable, m.path('f'))
            check(not getflags(m.path('f')) & EXT4_VERITY_FL, 'flag set')
            eq(read_file(m.path('f')), data, 'the file after ENOSPC')
            eq(os.stat(m.path('f')).st_size, len(data), 'its size')
        fsck(img)
        with Mount(img) as m:
            os.unlink(m.path('fill'))
            # The filler's blocks are freed at FUSE's asynchronous FORGET.
            wait_until(lambda: os.statvfs(m.path('')).f_bfree > 1000, True,
                       'the filler freed')
            enable(m.path('f'))
            host = d + '/ref'
            write_file(host, data)
            eq(measure(m.path('f')), reference(host), 'digest')
        fsck(img)


@test
def enable_ext3_file():
    """A block-mapped file (no extents): EOPNOTSUPP, as ext4."""
    with workdir() as d:
        img = mkfs(d + '/img', fstype='ext3', features=['verity'])
        with Mount(img) as m:
            write_file(m.path('f'), b'data')
            expect_errno(errno.EOPNOTSUPP, enable, m.path('f'))
        fsck(img)


@test
def enable_unlinked_open_file():
    """A file unlinked while open can still be enabled through its
    descriptor (ext4 allows it: the orphan keeps it); it is freed, tree and
    all, at the last close. lsattr shows the flag (FUSE passes no statx
    attributes on: lib-ops checks uext4_statx's)."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['verity'])
        data = pattern(100000, 6)
        with Mount(img) as m:
            write_file(m.path('f'), data)
            check(not getflags(m.path('f')) & EXT4_VERITY_FL,
                  'verity before the enable')
            fd = os.open(m.path('f'), os.O_RDONLY)
            os.unlink(m.path('f'))
            enable('/proc/self/fd/%d' % fd)
            eq(os.pread(fd, len(data) + 10, 0), data, 'read through the fd')
            os.close(fd)
            write_file(m.path('g'), data)
            enable(m.path('g'))
            check(getflags(m.path('g')) & EXT4_VERITY_FL,
                  'FS_VERITY_FL after the enable')
            # fsverity-utils' own client, through FUSE.
            write_file(m.path('h'), data)
            run(['fsverity', 'enable', m.path('h'), '--hash-alg=sha512',
                 '--salt=0102'])
            host = d + '/ref'
            write_file(host, data)
            eq(measure(m.path('h')), reference(host, SHA512, 4096, b'\1\2'),
               'fsverity enable')
        fsck(img)      # the unlinked file freed, its tree too


@test
def enable_with_signature():
    """A built-in signature is stored after the descriptor, unchecked (as a
    kernel without CONFIG_FS_VERITY_BUILTIN_SIGNATURES), and the digest
    ignores it."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['verity'])
        data = pattern(20000, 2)
        sig = bytes(range(200)) * 3
        with Mount(img) as m:
            write_file(m.path('f'), data)
            enable(m.path('f'), sig=sig)
            host = d + '/ref'
            write_file(host, data)
            eq(measure(m.path('f')), reference(host, out=host), 'digest')
            eq(read_file(m.path('f')), data, 'read back')
        fsck(img)
        tree = read_file(host + '.tree')
        meta = round_up(len(data), 65536)
        desc_pos = round_up(meta + len(tree), 4096)
        got = raw_bytes(img, '/f', desc_pos, 256 + len(sig), 4096)
        want = bytearray(read_file(host + '.desc'))
        want[4:8] = struct.pack('<I', len(sig))
        eq(got, bytes(want) + sig, 'descriptor and signature on disk')
        end = round_up(desc_pos + 256 + len(sig) + 4, 4096)
        eq(raw_bytes(img, '/f', end - 4, 4, 4096),
           struct.pack('<I', 256 + len(sig)), 'the size word')
        with Mount(img) as m:
            eq(read_file(m.path('f')), data, 'after remount')


def pread_blocks(path, n, bs=4096):
    """Each block read on its own: its bytes, or the errno."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for i in range(n):
            try:
                out.append(os.pread(fd, bs, i * bs))
            except OSError as e:
                out.append(e.errno)
    finally:
        os.close(fd)
    return out


@test(timeout=300)
def flipped_bits_read_eio():
    """A bit flipped in a data block fails that block only; in a level-0
    tree block, the 128 data blocks it covers only."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['verity'])
        data = pattern((1 << 20) + 1, 4)
        nblk = 257
        with Mount(img) as m:
            write_file(m.path('f'), data)
            enable(m.path('f'))
        fsck(img)
        ext = extents(img, '/f')
        for what, pblk, bad in (
                ('data block 5', ext[5], {5}),
                # level 0 is tree blocks 1-3 (level 1 is block 0); its
                # second block covers data blocks 128-255.
                ('tree block 2', ext[272 + 2], set(range(128, 256)))):
            copy = d + '/copy'
            shutil.copy(img, copy)
            flip_bit(copy, pblk, 4096)
            with Mount(copy) as m:
                # mmap first: its faults find nothing cached.
                check_mmap(m.path('f'), data, min(bad))
                got = pread_blocks(m.path('f'), nblk)
            for i in range(nblk):
                if i in bad:
                    eq(got[i], errno.EIO, '%s: block %d' % (what, i))
                else:
                    eq(got[i], data[i * 4096:(i + 1) * 4096],
                       '%s: block %d' % (what, i))
            fsck(copy)


def check_mmap(path, data, bad_block):
    """mmap reads: the pages of good blocks read the data; touching the
    page of @bad_block kills a child with SIGBUS (the READ behind the
    fault failed EIO)."""
    import mmap
    with open(path, 'rb') as f:
        mm = mmap.mmap(f.fileno(), len(data), prot=mmap.PROT_READ)
        try:
            for blk in (0, 256):
                eq(mm[blk * 4096:(blk + 1) * 4096],
                   data[blk * 4096:(blk + 1) * 4096], 'mmap block %d' % blk)
            pid = os.fork()
            if pid == 0:
                mm[bad_block * 4096]
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            check(os.WIFSIGNALED(status) and
                  os.WTERMSIG(status) == signal.SIGBUS,
                  'mmap of block %d: status 0x%x, not SIGBUS' % (bad_block,
                                                                 status))
        finally:
            mm.close()


def hand_built(d, name, data, salt=b''):
    """A verity file made without uext4: fsverity digest's tree and
    descriptor placed past EOF as ext4 lays them out (mke2fs -d of the
    whole byte run, i_size then cut back and the flag set by debugfs)."""
    host = d + '/hb-' + name
    write_file(host, data)
    reference(host, salt=salt, out=host)
    tree, desc = read_file(host + '.tree'), read_file(host + '.desc')
    meta = round_up(len(data), 65536)
    desc_pos = round_up(meta + len(tree), 4096)
    end = round_up(desc_pos + len(desc) + 4, 4096)
    whole = bytearray(end)
    whole[:len(data)] = data
    whole[meta:meta + len(tree)] = tree
    whole[desc_pos:desc_pos + len(desc)] = desc
    whole[end - 4:end] = struct.pack('<I', len(desc))
    return bytes(whole)


@test
def hand_built_equals_enabled():
    """The cross-check: uext4's enable stores exactly what a hand-built
    verity file holds, and uext4 reads the hand-built one."""
    with workdir() as d:
        src = d + '/src'
        os.mkdir(src)
        data = pattern(200000, 3)
        write_file(src + '/hb', hand_built(d, 'hb', data, b'xyz'))
        write_file(src + '/mine', data)
        img = mkfs(d + '/img', features=['verity'], opts=['-d', src])
        debugfs(img, 'sif /hb size %d' % len(data), write=True)
        debugfs(img, 'sif /hb flags 0x%x' % (EXT4_VERITY_FL | EXT4_EXTENTS_FL),
                write=True)
        fsck(img)
        with Mount(img) as m:
            eq(read_file(m.path('hb')), data, 'the hand-built file reads')
            enable(m.path('mine'), salt=b'xyz')
            eq(measure(m.path('mine')), measure(m.path('hb')), 'digests')
        fsck(img)
        meta_len = len(hand_built(d, 'x', data, b'xyz')) - round_up(len(data), 65536)
        meta = round_up(len(data), 65536)
        eq(raw_bytes(img, '/mine', meta, meta_len, 4096),
           raw_bytes(img, '/hb', meta, meta_len, 4096),
           'the bytes past EOF')


def verity_image(d):
    src = d + '/src'
    os.mkdir(src)
    write_file(src + '/vf', hand_built(d, 'vf', pattern(10000, 1)))
    write_file(src + '/plain', b'plain')
    img = mkfs(d + '/img', features=['verity'], opts=['-d', src])
    debugfs(img, 'sif /vf size 10000', write=True)
    debugfs(img, 'set_inode_field /vf flags 0x%x'
            % (EXT4_VERITY_FL | EXT4_EXTENTS_FL), write=True)
    fsck(img)
    return img


DESC_FUZZ = [  # (what, byte offset in the descriptor, new byte, errno)
    ('version', 0, 2, errno.EINVAL),
    ('hash algorithm', 1, 9, errno.EINVAL),
    ('log_blocksize', 2, 13, errno.EINVAL),
    ('log_blocksize small', 2, 9, errno.EINVAL),
    ('salt_size', 3, 33, errno.EINVAL),
    ('sig_size', 4, 1, errno.EINVAL),
    ('data_size', 8, 0x11, errno.EINVAL),
    ('root hash', 16, 0xff, errno.EIO),          # opens; reads fail
    ('reserved', 120, 1, errno.EINVAL),
]


@test(timeout=300)
def damaged_descriptor():
    """Each field of the descriptor broken in a copy: the open (or for the
    root hash, the read) fails as the kernel's would, never a crash; the
    size word past the descriptor broken: EUCLEAN (EFSCORRUPTED)."""
    with workdir() as d:
        img = verity_image(d)
        ext = extents(img, '/vf')
        meta = round_up(10000, 65536)
        desc_blk = ext[(meta + 4096) // 4096]     # one tree block: 3 blocks
        cases = DESC_FUZZ + [('size word', 4093, 0x40, errno.EUCLEAN),
                             ('size word top', 4095, 0xff, errno.EUCLEAN),
                             ('size word big', 4094, 0x10, errno.EUCLEAN)]
        for what, off, val, want in cases:
            copy = d + '/copy'
            shutil.copy(img, copy)
            with open(copy, 'r+b') as f:
                f.seek(desc_blk * 4096 + off)
                f.write(bytes([val]))
            with Mount(copy, expect_clean_exit=False) as m:
                expect_errno(want, read_file, m.path('vf'))
                eq(read_file(m.path('plain')), b'plain', what)


@test
def verity_writes_refused():
    with workdir() as d:
        img = verity_image(d)
        data = pattern(10000, 1)
        for opts in ([], ['no_default_permissions']):
            with Mount(img, opts=opts) as m:
                eq(read_file(m.path('vf')), data, 'reading the verity file')
                check_refused(m.path('vf'), len(data))
                eq(read_file(m.path('vf')), data, 'after the refused writes')
            fsck(img)
        with Mount(img) as m:
            # Metadata may change, as on Linux.
            os.chmod(m.path('vf'), 0o600)
            os.chown(m.path('vf'), 1000, 1000)
            os.setxattr(m.path('vf'), 'user.note', b'still verity')
            os.rename(m.path('vf'), m.path('renamed'))
            os.link(m.path('renamed'), m.path('second'))
            eq(read_file(m.path('second')), data, 'second name')
            check_refused(m.path('second'), len(data))
            # Everything else is writable.
            write_file(m.path('plain'), b'rewritten')
            write_file(m.path('new'), pattern(50000, 2))
            os.unlink(m.path('second'))
        fsck(img)
        info = inode_info(img, '/renamed')
        check(info['flags'] & EXT4_VERITY_FL,
              'the verity flag was lost: 0x%x' % info['flags'])
        eq((info['mode'] & 0o7777, info['uid'], info['links']),
           (0o600, 1000, 1), 'mode, owner, links')
        with Mount(img) as m:
            eq(read_file(m.path('renamed')), data, 'after remount')
            eq(read_file(m.path('plain')), b'rewritten', 'plain file')
            eq(os.getxattr(m.path('renamed'), 'user.note'), b'still verity',
               'xattr')
            os.unlink(m.path('renamed'))     # frees it like any file
        fsck(img)


if __name__ == '__main__':
    main()

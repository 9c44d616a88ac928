#!/usr/bin/env python3
"""Inline-data differential test: uext4 against a kernel loop mount.

Every case in CASES names an inode size and a list of steps (create, write,
pwrite, O_APPEND, O_TRUNC, truncate, fallocate, punch hole, mkdir, directory
growth, rename, xattrs, mmap).  For each case two identical images are made
with the toolkit's mkfs (tests/lib/uext4test.py: fixed UUID and hash
seed; here inline_data, 16 MiB, 4 KiB blocks);
the steps run through real syscalls on a kernel loop mount of one and on a
uext4 mount of the other.  Then, for every inode the case can reach, the
two images are compared:

  from `debugfs stat`   type, mode, links, Flags, Size, Blockcount, whether
                        "Size of inline data:" is present and its value,
                        extra isize, File ACL (zero or not), the logical
                        extent map (start, length, uninit; physical blocks
                        may differ), fast symlink targets;
  from the raw inode    i_block (all 60 bytes, stale tails included) of
                        inline regular files, every in-inode and block
                        xattr (name, value, where it lives);
  the bytes             inline: i_block + system.data up to i_size;
                        otherwise `debugfs dump`;
  directories           `debugfs ls`: entries in order with rec_len and
                        name (inode numbers may differ);
  the live mount        the result (errno) of every step, every path with
                        its type, size and contents read back before the
                        unmount;
  e2fsck -fn            clean on both images.

Inode numbers, timestamps, generation, versions, checksums and physical
block numbers are allowed to differ and are not compared.

The one deliberate difference (design.md, inline rule 3): uext4 never
converts on mmap writeback with the default -o inline_mmap=keep.  Cases
with expect='mmap-keep' assert exactly that: the kernel converted the
mmap'd file, uext4 kept it inline, same size and bytes.  With
-o inline_mmap=convert the result must match the kernel.

Output: `ok NAME` or `FAIL NAME: field kernel=X uext4=Y` per case, then
`N passed, N failed`.  Exit 0, 1 on any failure, 77 (skipped) when this
machine cannot loop-mount ext4 or run FUSE.  Needs root.

    inline_diff.py --uext4 BUILD/uext4 [--only REGEX] [--list] [--keep]
"""

import argparse
import json
import mmap
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

# The test toolkit, tests/lib (also when run by hand).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'lib'))
import uext4test as ut  # noqa: E402
from uext4test import (EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL,  # noqa: E402
                       Mount, SkipFile, TestFailure, debugfs, debugfs_batch,
                       fallocate, fsck, kernel_mount, mkfs, pattern, workdir)

STEPS_TIMEOUT = 90      # seconds for one side's steps (a hung daemon)

FALLOC_MODES = {'': 0, 'keep': 0x01, 'punch': 0x01 | 0x02, 'zero': 0x10,
                'zero-keep': 0x10 | 0x01}

XATTR_PREFIX = {1: 'user.', 2: 'system.posix_acl_access',
                3: 'system.posix_acl_default', 4: 'trusted.',
                6: 'security.', 7: 'system.', 8: 'system.richacl'}


def cap(isize, extra_isize=32):
    """Inline capacity of a fresh inode: 60 + the largest system.data value
    that fits in the in-inode xattr space (the kernel's
    get_max_inline_xattr_value_size for an inode with no other xattrs).
    Only used to place the table's sizes; the kernel decides."""
    if isize <= 128:
        return 60
    min_offs = isize - 128 - extra_isize - 4          # ibody header
    entry = (len('data') + 16 + 3) & ~3               # EXT4_XATTR_LEN(4)
    free = min_offs - entry - 3 - 4                   # ROUND, gap u32
    return 60 + ((free + 3) & ~3)


# ------------------------------------------------------------------ table
#
# Steps (paths relative to the mount point; data is a deterministic pattern
# seeded by the step's index, so every write is distinguishable):
#   ('creat', P)                 open(O_CREAT|O_WRONLY), close
#   ('write', P, OFF, N)         open(O_CREAT|O_WRONLY), pwrite N at OFF
#   ('append', P, N)             open(O_CREAT|O_WRONLY|O_APPEND), write N
#   ('otrunc', P, N)             open(O_CREAT|O_WRONLY|O_TRUNC), write N
#   ('appends', P, N, COUNT, ONE_FD)  COUNT appends of N bytes, each with
#                                its own open(O_APPEND) or all on one fd
#   ('trunc', P, SIZE)           truncate(2)
#   ('falloc', P, MODE, OFF, LEN)  fallocate(2), MODE in FALLOC_MODES
#   ('mkdir', P) ('rmdir', P) ('unlink', P) ('rename', A, B)
#   ('fill', DIR, PREFIX, COUNT, NAMELEN)  COUNT files DIR/PREFIXnnn..,
#                                names padded to NAMELEN
#   ('mkdirs', DIR, PREFIX, COUNT, NAMELEN)  the same with mkdir
#   ('setx', P, NAME, N) ('rmx', P, NAME)
#   ('symlink', P, TARGETLEN)
#   ('mmap', P, OFF, N)          shared mmap of the whole file, store N
#                                bytes at OFF, msync, munmap
#   ('dropcaches',)              sync; drop dentries and inodes; settle

CASES = []


def case(name, steps, isize=256, opts=(), expect='match', mmap_paths=(),
         kernel=None):
    """kernel: {path: 'inline'|'extents'} -- what the table means to test,
    checked on the kernel image (guards the table, not uext4)."""
    assert name not in [c['name'] for c in CASES], name
    CASES.append(dict(name=name, steps=steps, isize=isize, opts=list(opts),
                      expect=expect, mmap_paths=list(mmap_paths),
                      kernel=kernel or {}))


def build_table():
    C = cap(256)
    C1k = cap(1024)
    C512 = cap(512)

    # --- create and first writes around 0, 59/60/61, C-1/C/C+1
    case('create-empty', [('creat', 'f')])
    case('write-0-bytes', [('otrunc', 'f', 0)])
    case('write-1', [('write', 'f', 0, 1)], kernel={'f': 'inline'})
    for n in (59, 60, 61):
        case('write-%d' % n, [('write', 'f', 0, n)], kernel={'f': 'inline'})
    case('write-cap-1', [('write', 'f', 0, C - 1)], kernel={'f': 'inline'})
    case('write-cap', [('write', 'f', 0, C)], kernel={'f': 'inline'})
    case('write-cap+1', [('write', 'f', 0, C + 1)], kernel={'f': 'extents'})
    case('write-4096', [('write', 'f', 0, 4096)])
    case('write-4097', [('write', 'f', 0, 4097)])
    case('sweep-sizes-256',
         [('write', 's%03d' % n, 0, n) for n in range(0, C + 3)])

    # --- writes at offsets
    case('pwrite-10-at-10', [('write', 'f', 0, 10), ('write', 'f', 10, 10)])
    case('pwrite-hole-at-50', [('write', 'f', 50, 5)])
    case('pwrite-at-59-len-2', [('write', 'f', 0, 10), ('write', 'f', 59, 2)])
    case('pwrite-ending-at-cap', [('write', 'f', C - 1, 1)])
    case('pwrite-ending-at-cap+1', [('write', 'f', C, 1)])
    case('pwrite-overwrite-middle',
         [('write', 'f', 0, 100), ('write', 'f', 30, 10)])
    case('pwrite-overwrite-ending-at-cap',
         [('write', 'f', 0, 100), ('write', 'f', 90, C - 90)])
    case('pwrite-far-beyond', [('write', 'f', 0, 20), ('write', 'f', 5000, 10)])
    case('pwrite-into-extent-file',
         [('write', 'f', 0, 200), ('write', 'f', 10, 10)])

    # --- appends and O_APPEND
    case('append-across-60', [('write', 'f', 0, 50), ('append', 'f', 20)])
    case('append-to-cap', [('write', 'f', 0, C - 8), ('append', 'f', 8)])
    case('append-past-cap', [('write', 'f', 0, C), ('append', 'f', 1)])
    case('append-creat-61', [('append', 'f', 61)])
    case('appends-1x200-reopen', [('appends', 'f', 1, 200, False)])
    case('appends-7x40-one-fd', [('appends', 'f', 7, 40, True)])
    case('appends-1-to-exact-cap', [('appends', 'f', 1, C, False)],
         kernel={'f': 'inline'})
    case('appends-to-exact-cap', [('appends', 'f', 16, C // 16, False)],
         kernel={'f': 'inline'})

    # --- O_TRUNC
    case('otrunc-only', [('write', 'f', 0, 100), ('otrunc', 'f', 0)])
    case('otrunc-inline-rewrite', [('write', 'f', 0, 100), ('otrunc', 'f', 10)])
    case('otrunc-extent-rewrite-small',
         [('write', 'f', 0, 200), ('otrunc', 'f', 10)])
    case('otrunc-extent-rewrite-small-after-evict',
         [('write', 'f', 0, 200), ('dropcaches',), ('otrunc', 'f', 10)])
    case('otrunc-inline-to-cap+1', [('write', 'f', 0, 30),
                                    ('otrunc', 'f', C + 1)])

    # --- truncate up and down, across 60 and across capacity
    case('trunc-up-3-to-100', [('write', 'f', 0, 3), ('trunc', 'f', 100)])
    case('trunc-3-2-3', [('write', 'f', 0, 3), ('trunc', 'f', 2),
                         ('trunc', 'f', 3)])
    case('trunc-up-59-to-61', [('write', 'f', 0, 59), ('trunc', 'f', 61)])
    case('trunc-up-to-cap', [('write', 'f', 0, 10), ('trunc', 'f', C)])
    case('trunc-down-100-to-59', [('write', 'f', 0, 100), ('trunc', 'f', 59)])
    case('trunc-down-100-to-61', [('write', 'f', 0, 100), ('trunc', 'f', 61)])
    case('trunc-down-cap-to-60-append',
         [('write', 'f', 0, C), ('trunc', 'f', 60), ('append', 'f', 5)])
    case('trunc-down-cap-to-cap-1-append',
         [('write', 'f', 0, C), ('trunc', 'f', C - 1), ('append', 'f', 1)])
    case('trunc-down-cap-to-cap-1-pwrite',
         [('write', 'f', 0, C), ('trunc', 'f', C - 1), ('write', 'f', C - 1, 1)])
    case('trunc-down-100-to-99-append',
         [('write', 'f', 0, 100), ('trunc', 'f', 99), ('append', 'f', 1)])
    case('append-cap-1-plus-1', [('write', 'f', 0, C - 1), ('append', 'f', 1)])
    case('trunc-to-0-then-write', [('write', 'f', 0, 100), ('trunc', 'f', 0),
                                   ('write', 'f', 0, 10)])
    case('trunc-empty-up-10', [('creat', 'f'), ('trunc', 'f', 10)])
    case('trunc-empty-up-then-write',
         [('creat', 'f'), ('trunc', 'f', 10), ('write', 'f', 0, 5)])
    case('trunc-empty-up-past-cap-then-write',
         [('creat', 'f'), ('trunc', 'f', C + 72), ('write', 'f', 0, 5)])
    case('trunc-extent-down-across-cap',
         [('write', 'f', 0, 300), ('trunc', 'f', C - 1)])
    case('trunc-extent-to-0-then-write',
         [('write', 'f', 0, 300), ('trunc', 'f', 0), ('write', 'f', 0, 10)])
    case('trunc-up-across-cap-big', [('write', 'f', 0, 3),
                                     ('trunc', 'f', 10000)])
    case('creat-evict-write', [('creat', 'f'), ('dropcaches',),
                               ('write', 'f', 0, 10)])

    # --- fallocate with and without KEEP_SIZE, punch hole, zero range
    case('falloc-inline', [('write', 'f', 0, 20), ('falloc', 'f', '', 0, 10)])
    case('falloc-inline-grow', [('write', 'f', 0, 20),
                                ('falloc', 'f', '', 0, 100)])
    case('falloc-inline-keep', [('write', 'f', 0, 20),
                                ('falloc', 'f', 'keep', 0, 10)])
    case('falloc-inline-keep-beyond', [('write', 'f', 0, 20),
                                       ('falloc', 'f', 'keep', 200, 100)])
    case('falloc-empty', [('creat', 'f'), ('falloc', 'f', '', 0, 100)])
    case('falloc-empty-keep', [('creat', 'f'),
                               ('falloc', 'f', 'keep', 0, 100)])
    case('falloc-empty-then-write',
         [('creat', 'f'), ('falloc', 'f', 'keep', 0, 100),
          ('write', 'f', 0, 10)])
    case('punch-inline', [('write', 'f', 0, 100),
                          ('falloc', 'f', 'punch', 10, 20)])
    case('punch-extent', [('write', 'f', 0, 12288),
                          ('falloc', 'f', 'punch', 4096, 4096)])
    case('zero-range-inline', [('write', 'f', 0, 100),
                               ('falloc', 'f', 'zero', 10, 20)])
    case('zero-range-keep-inline-beyond',
         [('write', 'f', 0, 50), ('falloc', 'f', 'zero-keep', 40, 60)])

    # --- mkdir and directory growth
    case('mkdir-empty', [('mkdir', 'd')], kernel={'d': 'inline'})
    case('dir-growth-256',
         [('mkdir', 'd%02d' % k) for k in range(1, 13)] +
         [('fill', 'd%02d' % k, 'e', k, 4) for k in range(1, 13)])
    case('dir-growth-longnames-256',
         [('mkdir', 'd%d' % k) for k in range(1, 7)] +
         [('fill', 'd%d' % k, 'longname', k, 20) for k in range(1, 7)])
    case('dir-leaves-inline-then-more',
         [('mkdir', 'd'), ('fill', 'd', 'x', 40, 8)],
         kernel={'d': 'extents'})
    case('dir-grows-to-htree', [('mkdir', 'd'), ('fill', 'd', 'h', 200, 24)])
    case('dir-mkdir-subdirs', [('mkdir', 'd'), ('mkdirs', 'd', 's', 8, 4)])
    case('dir-unlink-then-add',
         [('mkdir', 'd'), ('fill', 'd', 'a', 6, 4), ('unlink', 'd/a0001'),
          ('unlink', 'd/a0003'), ('fill', 'd', 'b', 3, 4)])
    case('dir-unlink-all-rmdir',
         [('mkdir', 'd'), ('mkdir', 'e'), ('fill', 'd', 'a', 5, 4),
          ('fill', 'e', 'a', 2, 4)] +
         [('unlink', 'd/a%04d' % i) for i in range(5)] + [('rmdir', 'd')])
    case('dir-inline-with-inline-files',
         [('mkdir', 'd'), ('write', 'd/f', 0, 30), ('write', 'd/g', 0, 90),
          ('mkdir', 'd/s'), ('write', 'd/s/h', 0, 61)])

    # --- renames into (and within, and out of) inline directories
    case('rename-into-inline-dir',
         [('mkdir', 'd'), ('write', 'f', 0, 10), ('rename', 'f', 'd/f')])
    case('rename-into-inline-dir-converts',
         [('mkdir', 'd'), ('fill', 'd', 'x', 5, 8)] +
         [('write', 'r%d' % i, 0, 5) for i in range(6)] +
         [('rename', 'r%d' % i, 'd/renamed-to-a-long-name-%d' % i)
          for i in range(6)])
    case('rename-replace-in-inline-dir',
         [('mkdir', 'd'), ('write', 'd/t', 0, 20), ('write', 'f', 0, 70),
          ('rename', 'f', 'd/t')])
    case('rename-dir-into-inline-dir',
         [('mkdir', 'd'), ('mkdir', 'e'), ('mkdir', 'e/sub'),
          ('fill', 'e/sub', 'y', 2, 4), ('rename', 'e/sub', 'd/sub')])
    case('rename-within-inline-dir-longer',
         [('mkdir', 'd'), ('fill', 'd', 'z', 3, 4),
          ('rename', 'd/z0001', 'd/a-much-longer-name-than-before-0001')])
    case('rename-out-of-inline-dir',
         [('mkdir', 'd'), ('fill', 'd', 'z', 4, 4), ('rename', 'd/z0002', 'o')])
    case('rename-between-inline-dirs-cross-parent',
         [('mkdir', 'd'), ('mkdir', 'e'), ('mkdir', 'd/x'),
          ('rename', 'd/x', 'e/x'), ('mkdir', 'e/x/y')])

    # --- xattrs competing with system.data for in-inode space
    case('xattr-before-write', [('creat', 'f'), ('setx', 'f', 'user.a', 40),
                                ('write', 'f', 0, 100)])
    case('xattr-before-write-fits', [('creat', 'f'),
                                     ('setx', 'f', 'user.a', 16),
                                     ('write', 'f', 0, 80)])
    case('xattr-fills-inode-then-write',
         [('creat', 'f'), ('setx', 'f', 'user.big', 64),
          ('write', 'f', 0, 61)])
    case('xattr-after-full-inline', [('write', 'f', 0, C),
                                     ('setx', 'f', 'user.a', 20)])
    case('xattr-after-small-inline', [('write', 'f', 0, 70),
                                      ('setx', 'f', 'user.a', 20)])
    case('xattr-then-grow', [('write', 'f', 0, 60),
                             ('setx', 'f', 'user.a', 30),
                             ('append', 'f', 30), ('append', 'f', 30)])
    case('xattr-remove-then-grow',
         [('creat', 'f'), ('setx', 'f', 'user.a', 40), ('write', 'f', 0, 80),
          ('rmx', 'f', 'user.a'), ('append', 'f', 40)])
    case('xattr-on-inline-dir-then-fill',
         [('mkdir', 'd'), ('setx', 'd', 'user.dirattr', 24),
          ('fill', 'd', 'q', 8, 4)])
    case('xattr-many-small-then-write',
         [('creat', 'f')] + [('setx', 'f', 'user.x%d' % i, 8)
                             for i in range(4)] + [('write', 'f', 0, 100)])

    # --- 128-byte inodes (no room for system.data)
    case('i128-write-sizes', [('write', 'f%d' % n, 0, n)
                              for n in (1, 59, 60, 61, 200)], isize=128)
    case('i128-mkdir-fill', [('mkdir', 'd'), ('fill', 'd', 'e', 10, 4)],
         isize=128, kernel={'d': 'extents'})
    case('i128-trunc-falloc', [('write', 'f', 0, 10), ('trunc', 'f', 100),
                               ('write', 'g', 0, 10),
                               ('falloc', 'g', 'keep', 0, 50)], isize=128)

    # --- 512- and 1024-byte inodes
    case('i512-write-cap', [('write', 'a', 0, C512 - 1),
                            ('write', 'b', 0, C512),
                            ('write', 'c', 0, C512 + 1)], isize=512,
         kernel={'b': 'inline', 'c': 'extents'})
    case('i1024-write-cap-1', [('write', 'f', 0, C1k - 1)], isize=1024,
         kernel={'f': 'inline'})
    case('i1024-write-cap', [('write', 'f', 0, C1k)], isize=1024,
         kernel={'f': 'inline'})
    case('i1024-write-cap+1', [('write', 'f', 0, C1k + 1)], isize=1024,
         kernel={'f': 'extents'})
    case('i1024-sweep', [('write', 's%04d' % n, 0, n)
                         for n in (0, 1, 59, 60, 61, 128, 129, 500,
                                   C1k - 1, C1k, C1k + 1)], isize=1024)
    case('i1024-appends', [('appends', 'f', 50, 19, False)], isize=1024)
    case('i1024-trunc-across-cap',
         [('write', 'f', 0, 100), ('trunc', 'f', C1k), ('write', 'g', 0, 100),
          ('trunc', 'g', C1k + 1), ('write', 'h', 0, C1k),
          ('trunc', 'h', 59)], isize=1024)
    case('i1024-dir-growth', [('mkdir', 'd'), ('fill', 'd', 'n', 80, 8)],
         isize=1024)
    case('i1024-dir-stays-inline', [('mkdir', 'd'), ('fill', 'd', 'n', 30, 8)],
         isize=1024, kernel={'d': 'inline'})
    case('i1024-xattr-competes', [('creat', 'f'),
                                  ('setx', 'f', 'user.a', 400),
                                  ('write', 'f', 0, 600)], isize=1024)

    # --- symlinks (create of a fast / slow link on an inline_data fs)
    case('symlinks', [('symlink', 'l%d' % n, n) for n in (1, 59, 60, 61, 100)])

    # --- mmap: the deliberate difference, and -o inline_mmap=convert
    case('mmap-keep', [('write', 'f', 0, 100), ('mmap', 'f', 10, 20)],
         expect='mmap-keep', mmap_paths=['f'])
    case('mmap-keep-small', [('write', 'f', 0, 30), ('mmap', 'f', 0, 30)],
         expect='mmap-keep', mmap_paths=['f'])
    case('mmap-convert', [('write', 'f', 0, 100), ('mmap', 'f', 10, 20)],
         opts=['inline_mmap=convert'])


# ------------------------------------------------------------------ steps
# Run in a child process (--run-steps) so that a hung daemon fails the case
# instead of hanging the test.

def _write_all(fd, data, off=None):
    view = memoryview(data)
    while view:
        if off is None:
            n = os.write(fd, view)
        else:
            n = os.pwrite(fd, view, off)
            off += n
        view = view[n:]


def _name(prefix, i, namelen):
    s = '%s%04d' % (prefix, i)
    return s + 'x' * max(0, namelen - len(s))


def do_step(root, idx, st):
    op = st[0]
    seed = idx + 1
    P = lambda p: os.path.join(root, p)  # noqa: E731
    W = os.O_WRONLY | os.O_CREAT
    if op == 'creat':
        os.close(os.open(P(st[1]), W, 0o644))
    elif op in ('write', 'append', 'otrunc'):
        flags = W | {'write': 0, 'append': os.O_APPEND,
                     'otrunc': os.O_TRUNC}[op]
        fd = os.open(P(st[1]), flags, 0o644)
        try:
            if op == 'write':
                _write_all(fd, pattern(st[3], seed), st[2])
            else:
                _write_all(fd, pattern(st[2], seed))
        finally:
            os.close(fd)
    elif op == 'appends':
        _, p, n, count, one_fd = st
        fd = os.open(P(p), W | os.O_APPEND, 0o644) if one_fd else None
        try:
            for i in range(count):
                if not one_fd:
                    fd = os.open(P(p), W | os.O_APPEND, 0o644)
                try:
                    _write_all(fd, pattern(n, seed * 1000 + i))
                finally:
                    if not one_fd:
                        os.close(fd)
        finally:
            if one_fd:
                os.close(fd)
    elif op == 'trunc':
        os.truncate(P(st[1]), st[2])
    elif op == 'falloc':
        fd = os.open(P(st[1]), os.O_RDWR)
        try:
            fallocate(fd, FALLOC_MODES[st[2]], st[3], st[4])
        finally:
            os.close(fd)
    elif op == 'mkdir':
        os.mkdir(P(st[1]), 0o755)
    elif op == 'rmdir':
        os.rmdir(P(st[1]))
    elif op == 'unlink':
        os.unlink(P(st[1]))
    elif op == 'rename':
        os.rename(P(st[1]), P(st[2]))
    elif op in ('fill', 'mkdirs'):
        _, d, prefix, count, namelen = st
        for i in range(count):
            q = os.path.join(P(d), _name(prefix, i, namelen))
            if op == 'fill':
                os.close(os.open(q, W | os.O_EXCL, 0o644))
            else:
                os.mkdir(q, 0o755)
    elif op == 'setx':
        os.setxattr(P(st[1]), st[2], pattern(st[3], seed))
    elif op == 'rmx':
        os.removexattr(P(st[1]), st[2])
    elif op == 'symlink':
        os.symlink(pattern(st[2], seed).decode(), P(st[1]))
    elif op == 'mmap':
        _, p, off, n = st
        fd = os.open(P(p), os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            m = mmap.mmap(fd, size, mmap.MAP_SHARED,
                          mmap.PROT_READ | mmap.PROT_WRITE)
            try:
                m[off:off + n] = pattern(n, seed)
                m.flush()
            finally:
                m.close()
        finally:
            os.close(fd)
    elif op == 'dropcaches':
        ut.drop_caches()
        time.sleep(0.5)     # let FUSE forgets reach the daemon
    else:
        raise ValueError('unknown step %r' % (st,))


def walk(root):
    """Every path under root: type, size, bytes (hex) or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            stt = os.lstat(full)
            ent = {'mode': oct(stt.st_mode), 'size': stt.st_size,
                   'nlink': stt.st_nlink}
            if os.path.islink(full):
                ent['target'] = os.readlink(full)
            elif os.path.isfile(full):
                with open(full, 'rb') as f:
                    ent['data'] = f.read().hex()
            out[rel] = ent
    return out


def run_steps_child(steps_json, root):
    steps = json.loads(steps_json)
    results = []
    for i, st in enumerate(steps):
        try:
            do_step(root, i, st)
            results.append('ok')
        except OSError as e:
            results.append('errno %s' % (
                os.strerror(e.errno) if e.errno else str(e)))
    json.dump({'results': results, 'tree': walk(root)}, sys.stdout)
    return 0


# ------------------------------------------------------------------ tools

def make_image(path, isize):
    """A fresh inline_data image with @isize-byte inodes."""
    if isize <= 128:
        # mke2fs refuses inline_data with 128-byte inodes; the kernel does
        # not, so set the feature bit afterwards (no inode can go inline).
        mkfs(path, size='16M', opts=('-I', str(isize)))
        debugfs(path, 'feature inline_data', write=True)
    else:
        mkfs(path, size='16M', features=('inline_data',),
             opts=('-I', str(isize)))


def fsck_problem(image):
    """None if `e2fsck -fn` passes @image, else what it said."""
    msg = fsck(image, check_rc=False)
    if msg:
        head, _, out = msg.partition('\n')
        lines = [l for l in out.splitlines()
                 if l and not l.startswith(('Pass ', 'e2fsck '))]
        return 'exit %s: %s' % (re.search(r'exited (\d+)', head).group(1),
                                ' | '.join(lines[:6]))
    return None


def run_steps(steps, root):
    """Run steps under root in a child; returns (results, tree)."""
    cmd = [sys.executable, os.path.abspath(__file__), '--run-steps',
           json.dumps(steps), root]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=STEPS_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        raise TestFailure('steps did not finish within %ds (hung mount?)'
                       % STEPS_TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
    if p.returncode != 0:
        raise TestFailure('step runner exited %d: %s' % (
            p.returncode, err.decode(errors='replace').strip()[-800:]))
    d = json.loads(out)
    return d['results'], d['tree']


# ------------------------------------------------------------------ image

class RawImage:
    """Just enough of ext4 to read an inode and its xattrs."""

    def __init__(self, path):
        with open(path, 'rb') as f:
            self.data = f.read()
        sb = self.data[1024:2048]
        self.bs = 1024 << struct.unpack_from('<I', sb, 0x18)[0]
        self.first_data_block = struct.unpack_from('<I', sb, 0x14)[0]
        self.ipg = struct.unpack_from('<I', sb, 0x28)[0]
        self.isize = struct.unpack_from('<H', sb, 0x58)[0]
        incompat = struct.unpack_from('<I', sb, 0x60)[0]
        self.desc_size = (struct.unpack_from('<H', sb, 0xFE)[0]
                          if incompat & 0x80 else 32)

    def inode(self, ino):
        group, index = divmod(ino - 1, self.ipg)
        gd = (self.first_data_block + 1) * self.bs + group * self.desc_size
        table = struct.unpack_from('<I', self.data, gd + 8)[0]
        if self.desc_size >= 64:
            table |= struct.unpack_from('<I', self.data, gd + 0x28)[0] << 32
        off = table * self.bs + index * self.isize
        return self.data[off:off + self.isize]

    def block(self, n):
        return self.data[n * self.bs:(n + 1) * self.bs]


def _xattr_entries(buf, start, value_base, end):
    out = []
    off = start
    while off + 16 <= end and struct.unpack_from('<I', buf, off)[0] != 0:
        nlen, nidx, voff, vinum, vsize = struct.unpack_from('<BBHII', buf, off)
        name = XATTR_PREFIX.get(nidx, '#%d.' % nidx) + \
            buf[off + 16:off + 16 + nlen].decode(errors='replace')
        if vinum:
            value = '<ea_inode %d>' % vsize
        else:
            value = buf[value_base + voff:value_base + voff + vsize].hex()
        out.append((name, vsize, value))
        off += (nlen + 16 + 3) & ~3
    return out


def raw_inode_info(img, ino):
    raw = img.inode(ino)
    d = {'i_block': raw[0x28:0x64]}
    acl = struct.unpack_from('<I', raw, 0x68)[0] | \
        (struct.unpack_from('<H', raw, 0x76)[0] << 32)
    ibody = []
    if len(raw) > 128:
        extra = struct.unpack_from('<H', raw, 0x80)[0]
        h = 128 + extra
        if h + 4 <= len(raw) and \
                struct.unpack_from('<I', raw, h)[0] == 0xEA020000:
            ibody = _xattr_entries(raw, h + 4, h + 4, len(raw))
    block = []
    if acl:
        b = img.block(acl)
        if struct.unpack_from('<I', b, 0)[0] == 0xEA020000:
            block = _xattr_entries(b, 32, 0, len(b))
    d['xattrs_inode'] = sorted(ibody)
    d['xattrs_block'] = sorted(block)
    return d


# ------------------------------------------------------------------ debugfs

def parse_stat(text):
    if not text.strip():
        return None
    d = {}
    m = re.search(r'Inode: (\d+)\s+Type: (\S+)\s+Mode:\s+(\d+)\s+'
                  r'Flags: (0x[0-9a-f]+)', text)
    if not m:
        return {'unparsed': text[:200]}
    d['ino'] = int(m.group(1))
    d['type'] = m.group(2)
    d['mode'] = m.group(3)
    d['flags'] = m.group(4)
    d['size'] = int(re.search(r'Size: (\d+)', text).group(1))
    m = re.search(r'Links: (\d+)\s+Blockcount: (\d+)', text)
    d['links'], d['blockcount'] = int(m.group(1)), int(m.group(2))
    m = re.search(r'File ACL: (\d+)', text)
    d['file_acl'] = 'block' if m and int(m.group(1)) else 'none'
    m = re.search(r'Size of extra inode fields: (\d+)', text)
    d['extra_isize'] = int(m.group(1)) if m else None
    m = re.search(r'Size of inline data: (\d+)', text)
    d['inline_data_size'] = int(m.group(1)) if m else None
    flags = int(d['flags'], 16)
    d['storage'] = ('inline' if flags & EXT4_INLINE_DATA_FL else
                    'extents' if flags & EXT4_EXTENTS_FL else 'blockmap')
    m = re.search(r'Fast link dest: "(.*)"', text)
    d['fast_link'] = m.group(1) if m else None
    ext = []
    if 'EXTENTS:' in text:
        body = text.split('EXTENTS:', 1)[1]
        for m in re.finditer(r'\((\d+)(?:-(\d+))?(\[u\])?\):', body):
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) else lo
            ext.append([lo, hi, bool(m.group(3))])
    # Logical map only: merge runs that differ only in physical placement.
    merged = []
    for lo, hi, u in ext:
        if merged and merged[-1][1] + 1 == lo and merged[-1][2] == u:
            merged[-1][1] = hi
        else:
            merged.append([lo, hi, u])
    d['extent_map'] = ' '.join('%d-%d%s' % (lo, hi, 'u' if u else '')
                               for lo, hi, u in merged) or '-'
    return d


def parse_ls(text):
    """`ls -d`: (rec_len, name, deleted) in on-disk order; deleted entries
    (inode 0, or <ino> in the slack of a live entry) keep whatever name
    bytes are left.  Inode numbers are dropped."""
    out = []
    for m in re.finditer(r'(?:^|\s)(<?)(\d+)(>?)\s+\((\d+)\) (\S*)', text):
        deleted = m.group(1) == '<' or int(m.group(2)) == 0
        out.append((int(m.group(4)), m.group(5), deleted))
    return out


def inline_dir_bytes(i_block, sysdata):
    """The entries of an inline directory as bytes, inode numbers masked
    to 'zero' (Z) or 'not zero' (N): rec_len, name_len, file type, name and
    the slack after each name are all compared."""
    parts = []
    for buf, start in ((i_block, 4), (sysdata, 0)):
        off = start
        while off + 8 <= len(buf):
            ino, rec_len = struct.unpack_from('<IH', buf, off)
            if rec_len < 8 or off + rec_len > len(buf):
                parts.append('bad rec_len %d at %d: %s' % (
                    rec_len, off, buf[off:].hex()))
                break
            parts.append('%s:%s' % ('N' if ino else 'Z',
                                    buf[off + 4:off + rec_len].hex()))
            off += rec_len
        parts.append('|')
    return ' '.join(parts)


def collect(image, paths, kinds, workdir):
    """Everything we compare, per path, from one image."""
    cmds = []
    for p in paths:
        cmds.append('stat /%s' % p)
        if kinds.get(p) == 'dir':
            cmds.append('ls -d /%s' % p)
        if kinds.get(p) == 'file':
            cmds.append('dump /%s %s' % (p, os.path.join(
                workdir, 'dump-' + p.replace('/', '%'))))
    sec = debugfs_batch(image, cmds)
    img = RawImage(image)
    out = {}
    for p in paths:
        st = parse_stat(sec.get('stat /%s' % p, ''))
        if st is None or 'unparsed' in st:
            out[p] = st or {'missing': True}
            continue
        raw = raw_inode_info(img, st['ino'])
        st['xattrs_inode'] = raw['xattrs_inode']
        st['xattrs_block'] = raw['xattrs_block']
        if kinds.get(p) == 'dir':
            st['ls'] = parse_ls(sec.get('ls -d /%s' % p, ''))
            if st['storage'] == 'inline':
                sd = [v for n, s, v in raw['xattrs_inode']
                      if n == 'system.data']
                st['dir_bytes'] = inline_dir_bytes(
                    raw['i_block'], bytes.fromhex(sd[0]) if sd else b'')
            # system.data of a directory holds inode numbers: compare its
            # length here, the entries through `ls`.
            for key in ('xattrs_inode', 'xattrs_block'):
                st[key] = [(n, s, '<dir entries>' if n == 'system.data'
                            else v) for n, s, v in st[key]]
        if kinds.get(p) == 'file':
            if st['storage'] == 'inline':
                st['i_block'] = raw['i_block'].hex()
                sd = [v for n, s, v in raw['xattrs_inode']
                      if n == 'system.data']
                tail = bytes.fromhex(sd[0]) if sd else b''
                data = (raw['i_block'] + tail)[:st['size']]
                # i_size past the inline data reads as zeros (the kernel
                # makes such inodes: truncate up, then a small write).
                st['bytes_short'] = len(data) < st['size']
                st['bytes'] = data + bytes(st['size'] - len(data))
            else:
                fn = os.path.join(workdir, 'dump-' + p.replace('/', '%'))
                try:
                    with open(fn, 'rb') as f:
                        st['bytes'] = f.read()
                    os.unlink(fn)
                except OSError:
                    st['bytes'] = None
        out[p] = st
    return out


# ------------------------------------------------------------------ compare

COMPARED = ['type', 'mode', 'links', 'flags', 'size', 'storage',
            'inline_data_size', 'blockcount', 'extent_map', 'file_acl',
            'extra_isize', 'fast_link', 'xattrs_inode', 'xattrs_block',
            'i_block', 'bytes', 'bytes_short', 'ls', 'dir_bytes', 'missing',
            'unparsed']


def short(v, n=120):
    if isinstance(v, (bytes, bytearray)):
        return '<%d bytes %s%s>' % (len(v), bytes(v[:24]).hex(),
                                    '..' if len(v) > 24 else '')
    s = repr(v)
    return s if len(s) <= n else s[:n] + '...'


def diff_bytes(a, b, la='kernel', lb='uext4'):
    if a is None or b is None:
        return '%s=%s %s=%s' % (la, short(a), lb, short(b))
    n = min(len(a), len(b))
    first = next((i for i in range(n) if a[i] != b[i]), n)
    return '%s=<%d bytes> %s=<%d bytes>, first difference at %d ' \
        '(%s %s, %s %s)' % (la, len(a), lb, len(b), first,
                            la, bytes(a[first:first + 8]).hex(),
                            lb, bytes(b[first:first + 8]).hex())


def compare_inode(p, k, u, fields=COMPARED):
    diffs = []
    for f in fields:
        kv, uv = k.get(f), u.get(f)
        if kv != uv:
            if f in ('bytes', 'i_block'):
                diffs.append('%s %s: %s' % (p, f, diff_bytes(
                    kv if f == 'bytes' else bytes.fromhex(kv or ''),
                    uv if f == 'bytes' else bytes.fromhex(uv or ''))))
            elif isinstance(kv, list) and isinstance(uv, list):
                n = min(len(kv), len(uv))
                i = next((i for i in range(n) if kv[i] != uv[i]), n)
                diffs.append('%s %s: %d vs %d items, first difference at '
                             '[%d]: kernel=%s uext4=%s' % (
                                 p, f, len(kv), len(uv), i,
                                 short(kv[i:i + 3]), short(uv[i:i + 3])))
            elif f == 'dir_bytes' and kv and uv:
                ka, ua = kv.split(' '), uv.split(' ')
                n = min(len(ka), len(ua))
                i = next((i for i in range(n) if ka[i] != ua[i]), n)
                diffs.append('%s %s: entry %d: kernel=%s uext4=%s' % (
                    p, f, i, short(ka[i] if i < len(ka) else None),
                    short(ua[i] if i < len(ua) else None)))
            else:
                diffs.append('%s %s: kernel=%s uext4=%s' % (
                    p, f, short(kv), short(uv)))
    return diffs


def compare_live(kt, ut, skip=()):
    diffs = []
    for p in sorted(set(kt) | set(ut)):
        if p not in kt or p not in ut:
            diffs.append('live %s: kernel=%s uext4=%s' % (
                p, 'present' if p in kt else 'absent',
                'present' if p in ut else 'absent'))
            continue
        for f in ('mode', 'size', 'nlink', 'target', 'data'):
            if kt[p].get(f) != ut[p].get(f):
                if f == 'data':
                    diffs.append('live %s data: %s' % (p, diff_bytes(
                        bytes.fromhex(kt[p]['data']),
                        bytes.fromhex(ut[p]['data']))))
                else:
                    diffs.append('live %s %s: kernel=%s uext4=%s' % (
                        p, f, short(kt[p].get(f)), short(ut[p].get(f))))
    return diffs


# ------------------------------------------------------------------ runner

class CaseDiffs(Exception):
    """A case's differences, raised so that workdir() keeps its files."""


def run_case(c, keep):
    try:
        with workdir(keep_failed=keep) as work:
            diffs = _run_case(c, work)
            if diffs:
                raise CaseDiffs(diffs)
    except CaseDiffs as e:
        return e.args[0]
    return []


def _run_case(c, work):
    kimg = os.path.join(work, 'kernel.img')
    uimg = os.path.join(work, 'uext4.img')
    make_image(kimg, c['isize'])
    shutil.copyfile(kimg, uimg)

    with kernel_mount(kimg, os.path.join(work, 'kmnt')) as kmnt:
        kres, ktree = run_steps(c['steps'], kmnt)

    diffs = []
    with Mount(uimg, os.path.join(work, 'umnt'), c['opts'],
               expect_clean_exit=False) as m:
        ures, utree = run_steps(c['steps'], m.mnt)
    if m.returncode != 0:
        diffs.append('daemon exit status: kernel=0 uext4=%s (%s)' %
                     (m.returncode, m.log().strip()[-300:]))

    kf = fsck_problem(kimg)
    if kf:
        raise TestFailure('kernel image not clean (table or kernel problem): '
                       + kf)
    uf = fsck_problem(uimg)
    if uf:
        diffs.append('e2fsck -fn: kernel=clean uext4=%s' % uf)

    for i, (a, b) in enumerate(zip(kres, ures)):
        if a != b:
            diffs.append('step %d %s: kernel=%s uext4=%s' % (
                i, short(c['steps'][i], 60), a, b))

    mm = set(c['mmap_paths']) if c['expect'] == 'mmap-keep' else set()
    diffs += compare_live(ktree, utree)

    paths = [''] + sorted(set(ktree) | set(utree))
    kinds = {}
    for tree in (utree, ktree):
        for p, e in tree.items():
            mode = int(e['mode'], 8)
            kinds[p] = ('dir' if (mode & 0o170000) == 0o040000 else
                        'file' if (mode & 0o170000) == 0o100000 else 'other')
    kinds[''] = 'dir'
    kinfo = collect(kimg, paths, kinds, work)
    uinfo = collect(uimg, paths, kinds, work)

    for p, want in c['kernel'].items():
        got = kinfo.get(p, {}).get('storage')
        if got != want:
            raise TestFailure('table: kernel made /%s %s, the case expects %s'
                           % (p, got, want))

    notes = []
    for p in paths:
        k = kinfo[p]
        live = ktree.get(p, {}).get('data')
        if 'bytes' in k and live is not None and \
                k['bytes'] != bytes.fromhex(live):
            # Seen on 6.18: after punch hole, zero range or an mmap store
            # converts an inline file, the new bytes reach the page cache
            # but never the disk.  The bytes the kernel returned through
            # read(2) before the unmount are the reference then.
            notes.append('kernel lost data on disk for /%s (%s); comparing '
                         'uext4 with what the kernel returned by read(2)' % (
                             p, diff_bytes(bytes.fromhex(live), k['bytes'],
                                           'read(2)', 'disk')))
            k['bytes'] = bytes.fromhex(live)
    for n in notes:
        print('# note %s: %s' % (c['name'], n))

    for p in paths:
        name = '/' + p
        k, u = kinfo[p], uinfo[p]
        if p in mm:
            # The deliberate difference: the kernel converted on mmap
            # writeback, uext4 (inline_mmap=keep) stayed inline.
            if k.get('storage') != 'extents':
                raise TestFailure('table: kernel did not convert %s on mmap '
                               '(storage %s)' % (name, k.get('storage')))
            if u.get('storage') != 'inline':
                diffs.append('%s storage after mmap (inline_mmap=keep): '
                             'kernel=extents (expected) uext4=%s, want '
                             'inline' % (name, u.get('storage')))
            diffs += compare_inode(name, k, u, ['type', 'mode', 'links',
                                                'size', 'bytes'])
            continue
        diffs += compare_inode(name, k, u)
    return diffs


def probe():
    """Why this machine cannot run the cases (skip), or None."""
    for tool in ('mke2fs', 'e2fsck', 'debugfs', 'mount', 'umount',
                 'fusermount3'):
        if not shutil.which(tool):
            return '%s not found' % tool
    try:
        ut.require_basics()
        ut.require_kernel_loop_mount(features=('inline_data',))
    except SkipFile as e:
        return str(e)
    return None


def main():
    if len(sys.argv) == 4 and sys.argv[1] == '--run-steps':
        return run_steps_child(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--uext4', default=os.environ.get('UEXT4', 'uext4'))
    ap.add_argument('--only', help='run the cases whose name matches REGEX')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--keep', action='store_true',
                    help='keep the work dirs of failed cases')
    args = ap.parse_args()
    build_table()
    cases = [c for c in CASES if not args.only or re.search(args.only,
                                                            c['name'])]
    if args.list:
        for c in cases:
            print('%-45s isize=%-4d steps=%d %s' % (
                c['name'], c['isize'], len(c['steps']),
                ' '.join(c['opts'] + ([c['expect']]
                                      if c['expect'] != 'match' else []))))
        print('%d cases' % len(cases))
        return 0
    exe = os.path.abspath(args.uext4)
    ut.UEXT4 = exe          # the daemon every Mount runs
    why = probe()
    if why:
        print('skipped: %s' % why)
        return 77
    if not os.access(exe, os.X_OK):
        print('FAIL: the daemon %s is not an executable' % exe)
        print('0 passed, %d failed' % len(cases))
        return 1
    print('# %d cases, uext4 %s, kernel %s' % (len(cases), exe,
                                                os.uname().release))
    sys.stdout.flush()
    passed = failed = 0
    t0 = time.monotonic()
    for c in cases:
        t = time.monotonic()
        try:
            diffs = run_case(c, args.keep)
        except TestFailure as e:
            diffs = [str(e)]
        except Exception as e:      # a bug here must not hide the rest
            diffs = ['internal error: %s: %s' % (type(e).__name__, e)]
        if diffs:
            failed += 1
            print('FAIL %s: %s' % (c['name'], diffs[0]))
            for d in diffs[1:]:
                print('    %s' % d)
        else:
            passed += 1
            print('ok %s (%.1fs)' % (c['name'], time.monotonic() - t))
        sys.stdout.flush()
    print('# %.1fs' % (time.monotonic() - t0))
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())

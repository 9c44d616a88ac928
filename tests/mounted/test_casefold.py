#!/usr/bin/env python3
"""Casefold images (`-O casefold`) read-write: directories with +F
(EXT4_CASEFOLD_FL) look names up by any case, refuse a name that folds to
an existing one, rename, link and unlink by any case and list the stored
names; an htree casefold directory is hashed by the casefolded name (e2fsck
checks those hashes); strict mode refuses names that are not UTF-8.

There is no kernel comparison: the kernel here is built without
CONFIG_UNICODE and cannot mount a casefold image. The references are
`e2fsck -fn` (which recomputes every casefold hash and looks for names that
fold alike) and the exact names `debugfs ls` finds on the image.
"""

import errno
import os
import re
import struct

from uext4test import (Mount, check, debugfs, eq, expect_errno, fsck, getflags,
                       setflags,
                       inode_info, main, mkfs, read_file, run, run_daemon,
                       test, workdir, write_file, EXT4_INDEX_FL)

CASEFOLD_FL = 0x40000000
EXTENTS_FL = 0x00080000


def casefold_image(d, strict=True):
    img = mkfs(d + '/img', features=['casefold'],
               extended=['encoding=utf8'] +
               (['encoding_flags=strict'] if strict else []))
    # The superblock says what the test relies on: utf8-12.1 (1) and the
    # strict flag (s_encoding at 0x27c, s_encoding_flags at 0x27e).
    with open(img, 'rb') as f:
        f.seek(1024 + 0x27c)
        enc, flags = struct.unpack('<HH', f.read(4))
    eq((enc, flags & 1), (1, 1 if strict else 0), 'encoding, strict flag')
    return img


def make_casefold_dir(path):
    os.mkdir(path)
    setflags(path, getflags(path) | CASEFOLD_FL)
    check(getflags(path) & CASEFOLD_FL, '%s: +F not set' % path)


def disk_names(img, path):
    """The names stored in directory @path, as bytes, by debugfs."""
    out = debugfs(img, 'ls -p %s' % path)
    names = []
    for line in out.splitlines():
        # /ino/mode/uid/gid/name/size/
        m = re.match(r'^/(\d+)/\d+/\d+/\d+/(.*)/[^/]*/$', line)
        if m and int(m.group(1)) != 0:
            names.append(m.group(2))
    return sorted(n for n in names if n not in ('.', '..'))


def listing(path):
    return sorted(os.listdir(os.fsencode(path)))


@test
def names_by_any_case():
    with workdir() as d:
        img = casefold_image(d)
        with Mount(img) as m:
            cf = m.path('cf')
            make_casefold_dir(cf)
            write_file(cf + '/readme', b'hello casefold\n')
            eq(read_file(cf + '/README'), b'hello casefold\n', 'open(README)')
            eq(os.stat(cf + '/ReadMe').st_ino, os.stat(cf + '/readme').st_ino,
               'ReadMe and readme')
            # Unicode folding, not ASCII only: sharp s folds to "ss", and a
            # precomposed e-acute equals e + combining acute (NFD).
            write_file(cf + '/Straße', b'street')
            eq(read_file(cf + '/STRASSE'), b'street', 'STRASSE finds Straße')
            write_file(cf + '/caf\u00e9', b'coffee')
            eq(read_file(cf + '/CAFE\u0301'), b'coffee', 'decomposed CAFÉ')
            # A name that folds to an existing one is that entry.
            expect_errno(errno.EEXIST, os.open, cf + '/README',
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            expect_errno(errno.EEXIST, os.mkdir, cf + '/rEaDmE')
            expect_errno(errno.EEXIST, os.symlink, 'x', cf + '/STRASSE')
            write_file(m.path('other'), b'o')
            expect_errno(errno.EEXIST, os.link, m.path('other'),
                         cf + '/CAFÉ')
            # O_CREAT without O_EXCL opens the existing file.
            fd = os.open(cf + '/README', os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
            eq(listing(cf), sorted(n.encode() for n in
                                   ['readme', 'Straße', 'caf\u00e9']),
               'readdir shows the stored names')
            # A rename to another case of the same name is a rename of a
            # file onto itself: nothing changes (as on ext4: the VFS sees
            # the same inode on both sides).
            os.rename(cf + '/Straße', cf + '/STRASSE')
            check(b'Stra\xc3\x9fe' in listing(cf), 'case-only rename changed')
            # rename from any case; the new name is stored as given
            os.rename(cf + '/README', cf + '/Notes.TXT')
            expect_errno(errno.ENOENT, os.stat, cf + '/readme')
            eq(read_file(cf + '/notes.txt'), b'hello casefold\n', 'renamed')
            # rename onto an existing entry named in another case: the
            # entry keeps its stored name and takes the source's inode
            # (ext4_setent changes only the inode and the type).
            write_file(cf + '/new', b'replacement')
            ino = os.stat(cf + '/new').st_ino
            os.rename(cf + '/NEW', cf + '/NOTES.txt')
            eq(os.stat(cf + '/notes.TXT').st_ino, ino, 'replaced target')
            eq(read_file(cf + '/Notes.TXT'), b'replacement', 'replaced data')
            # link by any case, unlink by any case
            os.link(cf + '/STRASSE', cf + '/Alias')
            eq(os.stat(cf + '/straße').st_nlink, 2, 'links after link')
            os.unlink(cf + '/ALIAS')
            eq(os.stat(cf + '/straße').st_nlink, 1, 'links after unlink')
            # a new subdirectory inherits +F; rmdir by any case
            os.mkdir(cf + '/Sub')
            check(getflags(cf + '/SUB') & CASEFOLD_FL, 'Sub did not inherit +F')
            write_file(cf + '/sub/X', b'x')
            eq(read_file(cf + '/SUB/x'), b'x', 'lookup in inherited +F')
            os.unlink(cf + '/Sub/x')
            os.mkdir(cf + '/Gone')
            os.rmdir(cf + '/GONE')
            # +F only on an empty directory of a casefold image
            expect_errno(errno.ENOTEMPTY, setflags, cf,
                         getflags(cf) & ~CASEFOLD_FL)
            expect_errno(errno.EOPNOTSUPP, setflags, cf + '/straße',
                         getflags(cf + '/straße') | CASEFOLD_FL)
            os.mkdir(m.path('plain'))
            write_file(m.path('plain/f'), b'')
            expect_errno(errno.ENOTEMPTY, setflags, m.path('plain'),
                         getflags(m.path('plain')) | CASEFOLD_FL)
            # Outside +F, names are bytes: A and a are two files.
            write_file(m.path('plain/A'), b'upper')
            write_file(m.path('plain/a'), b'lower')
            eq(read_file(m.path('plain/A')), b'upper', 'plain/A')
            expect_errno(errno.ENOENT, os.stat, m.path('plain/F'))
            # -F on the emptied subdirectory: names are bytes there again.
            setflags(cf + '/sub', getflags(cf + '/sub') & ~CASEFOLD_FL)
            write_file(cf + '/sub/Q', b'')
            expect_errno(errno.ENOENT, os.stat, cf + '/sub/q')
            want = sorted(n.encode() for n in
                          ['Straße', 'caf\u00e9', 'Notes.TXT', 'Sub'])
            eq(listing(cf), want, 'final listing')
        eq(disk_names(img, '/cf'), sorted(w.decode() for w in want),
           'names on disk')
        eq(inode_info(img, '/cf')['flags'] & CASEFOLD_FL, CASEFOLD_FL,
           'cf flags on disk')
        eq(inode_info(img, '/cf/Sub')['flags'] & CASEFOLD_FL, 0,
           'Sub flags on disk after -F')
        fsck(img)
        # Remounted: the names are found again from the image.
        with Mount(img) as m:
            eq(read_file(m.path('cf/CAFÉ')), b'coffee', 'after remount')
            eq(read_file(m.path('cf/notes.txt')), b'replacement',
               'after remount')
        fsck(img)


@test
def indexed_directory():
    """~2000 names force an htree: e2fsck recomputes each casefold hash."""
    n = 2000
    with workdir() as d:
        img = casefold_image(d)
        names = ['Fichier-%04d-Ärger-ß' % i for i in range(n)]
        with Mount(img) as m:
            cf = m.path('big')
            make_casefold_dir(cf)
            for i, name in enumerate(names):
                write_file(cf + '/' + name, b'%d' % i)
            # every name by another case, and the duplicates refused
            for i, name in enumerate(names):
                if i % 7 == 0:
                    eq(read_file(cf + '/' + name.upper()), b'%d' % i,
                       'upper-case lookup of %s' % name)
                if i % 50 == 0:
                    expect_errno(errno.EEXIST, os.open,
                                 cf + '/' + name.lower(),
                                 os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            # unlink and rename through the index by another case
            for i in range(0, n, 10):
                os.unlink(cf + '/' + names[i].swapcase())
            for i in range(1, n, 10):
                os.rename(cf + '/' + names[i].upper(),
                          cf + '/renamed-%04d' % i)
            left = set(names) - {names[i] for i in range(0, n, 10)}
            left -= {names[i] for i in range(1, n, 10)}
            left |= {'renamed-%04d' % i for i in range(1, n, 10)}
            eq(listing(cf), sorted(x.encode() for x in left), 'listing')
        info = inode_info(img, '/big')
        check(info['flags'] & EXT4_INDEX_FL, 'big is not indexed')
        check(info['flags'] & CASEFOLD_FL, 'big lost +F')
        eq(disk_names(img, '/big'), sorted(left), 'names on disk')
        fsck(img)
        with Mount(img) as m:
            cf = m.path('big')
            for i in range(3, n, 10):
                eq(read_file(cf + '/' + names[i].lower()), b'%d' % i,
                   'after remount')
                os.unlink(cf + '/' + names[i].upper())
            expect_errno(errno.ENOENT, os.stat, cf + '/' + names[0])
            eq(read_file(cf + '/RENAMED-0011'), b'11', 'renamed by case')
        fsck(img)


@test
def strict_and_byte_names():
    bad = [b'\xff', b'bad-\xc3(', b'\xed\xa0\x80']  # stray byte, bad
    with workdir() as d:                               # tail, surrogate
        img = casefold_image(d, strict=True)
        with Mount(img) as m:
            cf = os.fsencode(m.path('cf'))
            make_casefold_dir(cf)
            plain = os.fsencode(m.path('plain'))
            os.mkdir(plain)
            write_file(cf + b'/ok', b'')
            for name in bad:
                p = cf + b'/' + name
                expect_errno(errno.EINVAL, os.open, p,
                             os.O_CREAT | os.O_WRONLY, 0o644)
                expect_errno(errno.EINVAL, os.mkdir, p)
                expect_errno(errno.EINVAL, os.symlink, b'ok', p)
                expect_errno(errno.EINVAL, os.mknod, p)
                expect_errno(errno.EINVAL, os.link, cf + b'/ok', p)
                expect_errno(errno.EINVAL, os.rename, cf + b'/ok', p)
                # outside +F the same name is just bytes
                write_file(plain + b'/' + name, name)
            eq(listing(cf), [b'ok'], 'strict: nothing created')
            eq(listing(plain), sorted(bad), 'plain dir keeps byte names')
        fsck(img)
    with workdir() as d:
        img = casefold_image(d, strict=False)
        with Mount(img) as m:
            cf = os.fsencode(m.path('cf'))
            make_casefold_dir(cf)
            # not UTF-8: stored as given, compared byte for byte
            write_file(cf + b'/A\xff', b'upper')
            write_file(cf + b'/a\xff', b'lower')
            eq(read_file(cf + b'/A\xff'), b'upper', 'A\\xff')
            eq(read_file(cf + b'/a\xff'), b'lower', 'a\\xff')
            expect_errno(errno.EEXIST, os.mkdir, cf + b'/A\xff')
            write_file(cf + b'/Good', b'g')
            eq(read_file(cf + b'/GOOD'), b'g', 'valid names still fold')
            eq(listing(cf), [b'A\xff', b'Good', b'a\xff'], 'listing')
            os.unlink(cf + b'/a\xff')
            eq(listing(cf), [b'A\xff', b'Good'], 'after unlink')
            # libext2fs 1.47 cannot hash such a name casefolded: a casefold
            # directory holding one grows without an index, and an indexed
            # one refuses it.
            grow = os.fsencode(m.path('grow'))
            make_casefold_dir(grow)
            write_file(grow + b'/\xfe-first', b'')
            idx = os.fsencode(m.path('idx'))
            make_casefold_dir(idx)
            many = [b'Valid-Name-%03d-padding-padding' % i for i in range(200)]
            for name in many:
                write_file(grow + b'/' + name, name)
                write_file(idx + b'/' + name, name)
            expect_errno(errno.EINVAL, os.open, idx + b'/\xfe-late',
                         os.O_CREAT | os.O_WRONLY, 0o644)
            for name in many[::9]:
                eq(read_file(grow + b'/' + name.upper()), name, 'grow')
                eq(read_file(idx + b'/' + name.lower()), name, 'idx')
            eq(listing(grow), sorted(many + [b'\xfe-first']), 'grow listing')
        check(inode_info(img, '/idx')['flags'] & EXT4_INDEX_FL,
              'idx is not indexed')
        info = inode_info(img, '/grow')
        check(not info['flags'] & EXT4_INDEX_FL and info['size'] > 4096,
              'grow: %#x, %d bytes' % (info['flags'], info['size']))
        fsck(img)


@test
def kernel_name_cache():
    """With default_permissions the kernel may keep names; on a casefold
    image it must not keep them by their bytes: a negative "FOO" would
    hide a new "foo", and a positive "BAR" would outlive unlink("bar")."""
    with workdir() as d:
        img = casefold_image(d)
        with Mount(img, opts=['default_permissions']) as m:
            cf = m.path('cf')
            make_casefold_dir(cf)
            expect_errno(errno.ENOENT, os.stat, cf + '/FOO')
            write_file(cf + '/foo', b'f')
            eq(read_file(cf + '/FOO'), b'f', 'FOO after creating foo')
            write_file(cf + '/bar', b'b')
            eq(read_file(cf + '/BAR'), b'b', 'BAR')
            os.unlink(cf + '/bar')
            expect_errno(errno.ENOENT, os.stat, cf + '/BAR')
            os.rename(cf + '/FOO', cf + '/baz')
            expect_errno(errno.ENOENT, os.stat, cf + '/foo')
            eq(read_file(cf + '/BAZ'), b'f', 'BAZ after rename')
        fsck(img)


@test
def unknown_encoding_refused():
    """An encoding libext2fs does not know (only utf8 12.1 exists) cannot
    be compared: refused, naming it, the image untouched. e2fsck refuses
    it too (the reference agrees; it cannot check such an image)."""
    with workdir() as d:
        # no metadata_csum: the superblock is patched without a checksum
        img = mkfs(d + '/img', features=['casefold', '^metadata_csum'])
        with open(img, 'r+b') as f:
            f.seek(1024 + 0x27c)
            f.write(struct.pack('<H', 7))
        with open(img, 'rb') as f:
            before = f.read()
        rc, out = run_daemon(img, d + '/mnt')
        check(rc != 0, 'mounted an image with encoding 7: %r' % out)
        check(re.search(r'unknown filename encoding 7', out),
              'refusal does not name the encoding: %r' % out)
        with open(img, 'rb') as f:
            check(f.read() == before, 'refused image was modified')
        p = run(['e2fsck', '-fn', img], check_rc=False)
        check(p.returncode != 0 and b'encoding' in p.stdout + p.stderr,
              'e2fsck accepted encoding 7')


if __name__ == '__main__':
    main()

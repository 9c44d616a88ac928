#!/usr/bin/env python3
"""uext4-inspect on an image made by `mke2fs -d` from a small tree.

Checks the text and --json output for an inline file, a block file, an
inline directory and an inode number, and that errors name the image and
the cause with a non-zero exit.  Output: ok/FAIL lines, then
`N passed, N failed`.  Needs only e2fsprogs (no root, no FUSE).

    check_inspect.py BUILD/uext4-inspect
"""
import json
import os
import subprocess
import sys
import tempfile

INSPECT = sys.argv[1]
UUID = '5c3e7a10-2b4d-4e6f-8a9b-0c1d2e3f4a5b'
SEED = '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a'
results = []


def check(name, cond, detail=''):
    results.append(cond)
    print(('ok %s' % name) if cond else ('FAIL %s: %s' % (name, detail)))


def inspect(*args):
    p = subprocess.run([INSPECT] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


with tempfile.TemporaryDirectory(prefix='uext4-scn-') as tmp:
    tree = os.path.join(tmp, 'tree')
    os.makedirs(os.path.join(tree, 'd'))
    with open(os.path.join(tree, 'small'), 'wb') as f:
        f.write(b'tiny file')
    with open(os.path.join(tree, 'big'), 'wb') as f:
        f.write(b'x' * 10000)
    img = os.path.join(tmp, 'image')
    subprocess.run(['mke2fs', '-q', '-F', '-t', 'ext4', '-b', '4096', '-I', '256',
                    '-O', 'inline_data', '-U', UUID, '-E', 'hash_seed=' + SEED,
                    '-d', tree, img, '16M'], check=True, timeout=120,
                   stdout=subprocess.DEVNULL)
    subprocess.run(['debugfs', '-w', '-R', 'ea_set /small user.tag hello', img],
                   check=True, timeout=60, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)

    # user.tag takes 28 bytes of the in-inode xattr room: capacity 128 - 28.
    rc, out, err = inspect(img, '/small')
    check('text-inline', rc == 0 and 'storage    inline' in out
          and 'capacity   100' in out and 'user.tag' in out, out + err)
    rc, out, err = inspect(img, 'small', '--json')
    try:
        j = json.loads(out)
    except ValueError as e:
        j = {}
        err += str(e)
    check('json-inline', rc == 0 and j.get('inline') is True and j.get('size') == 9
          and j.get('inline_capacity') == 100 and 'user.tag' in j.get('xattrs', [])
          and 'inline' in j.get('flag_names', []), out + err)
    rc, out, err = inspect(img, '/big', '--json')
    j = json.loads(out) if rc == 0 else {}
    check('json-extents', j.get('storage') == 'extents' and j.get('size') == 10000
          and len(j.get('extents', [])) == 1 and j['extents'][0]['len'] == 3, out + err)
    rc, out, err = inspect(img, '/d')
    check('text-dir', rc == 0 and 'type       dir' in out and 'storage    inline' in out,
          out + err)
    rc, out, err = inspect(img, '2', '--json')
    j = json.loads(out) if rc == 0 else {}
    check('ino-root', j.get('ino') == 2 and j.get('type') == 'dir', out + err)
    rc, out, err = inspect(img, '/nope')
    check('error-missing', rc == 1 and img in err and 'No such file' in err, err)
    rc, out, err = inspect(os.path.join(tmp, 'absent.img'), '/x')
    check('error-image', rc == 1 and 'absent.img' in err, err)
    rc, out, err = inspect(img)
    check('error-usage', rc == 2 and 'usage' in err, err)
    rc, out, err = inspect('--help')
    check('help', rc == 0 and 'usage' in out, out)

    # The same file system as a partition: 1 MiB of bytes before it.
    disk = os.path.join(tmp, 'disk')
    with open(disk, 'wb') as f:
        f.write(b'\x5a' * (1 << 20))
        with open(img, 'rb') as src:
            f.write(src.read())
    size = str(os.path.getsize(img))
    rc, out, err = inspect(disk, '/big', '--json', '--offset=1048576', '--sizelimit=' + size)
    j = json.loads(out) if rc == 0 else {}
    check('partition', j.get('storage') == 'extents' and j.get('size') == 10000, out + err)
    rc, out, err = inspect(disk, '/big', '--offset=1048576', '--sizelimit=4096')
    check('partition-too-small', rc == 1 and 'is cut short by sizelimit=' in err, err)
    rc, out, err = inspect(disk, '/big', '--offset=-1')
    check('partition-bad-offset', rc == 2 and 'bad byte count for --offset' in err, err)

print('%d passed, %d failed' % (results.count(True), results.count(False)))
sys.exit(0 if all(results) else 1)

#!/usr/bin/python3
"""Build the source trees that images/build.sh feeds to `mke2fs -d`, and the
debugfs fix-ups applied to an image after mke2fs.

    mktree.py tree KIND DIR          create tree KIND in DIR (DIR must not exist)
    mktree.py fixup KIND IMAGE DIR   print the debugfs script for IMAGE built from DIR

Everything is deterministic: file contents come from a seeded generator, never
from the clock or the environment. Timestamps are set by build.sh (touch) and
by the fix-up script (ctime, which mke2fs copies from the source tree and
`touch` cannot set).

Kinds:
    demo      the sample tree of demo.img (inline files, larger files, a
              directory with many files, symlinks, a hard link, an inline
              directory, xattrs, a fifo, a sparse file)
    inline    files and directories around the inline-data capacity, for the
              inode-size images
    blockmap  files that need direct, indirect and double-indirect blocks at
              1 KiB blocks (ext2/ext3 images)
    largedir  one directory with 20,000 entries
    fuzz      a compact tree with every kind of metadata, for the corrupt sweep
"""
import os
import random
import subprocess
import sys

FIXED_TIME = 1700000000  # 2023-11-14 22:13:20 UTC; also E2FSPROGS_FAKE_TIME


def data(seed, n):
    """n deterministic pseudo-random bytes (stable across Python versions)."""
    return random.Random(seed).randbytes(n)


def text(seed, n):
    """n deterministic printable bytes ending in a newline (n >= 1)."""
    words = [b"ext4", b"inline", b"extent", b"inode", b"block", b"journal",
             b"htree", b"xattr", b"uext4", b"fuse", b"page", b"cache"]
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + (b"\n" if rng.random() < 0.15 else b" ")
    out = out[:n]
    out[-1:] = b"\n"
    return bytes(out)


def put(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


def put_sparse(path, size, islands):
    """A file of `size` bytes that has data only at the (offset, bytes) islands."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for off, content in islands:
            f.seek(off)
            f.write(content)
        f.truncate(size)


def long_target(n):
    """A symlink target of exactly n characters (too long for i_block)."""
    parts = []
    i = 0
    while len("/".join(parts)) < n:
        parts.append("component-%02d" % i)
        i += 1
    return "/".join(parts)[:n]


def tree_demo(d):
    put(f"{d}/README.txt", b"uext4 demo image: see images/README.md in the uext4 repository.\n")
    put(f"{d}/hello.txt", b"hello, world\n")
    put(f"{d}/name with spaces.txt", b"spaces are fine\n")
    put(f"{d}/empty", b"")
    for n in (1, 59, 60, 61, 100, 128, 129, 200):
        put(f"{d}/small/size-{n}.txt", text(n, n))
    put(f"{d}/big/4097.bin", data(4097, 4097))
    put(f"{d}/big/100k.bin", data(100, 100 * 1024))
    put(f"{d}/big/1m.bin", data(1024, 1024 * 1024))
    put(f"{d}/big/text-300k.txt", text(300, 300 * 1024))
    put_sparse(f"{d}/big/sparse-8m.bin", 8 << 20,
               [(0, data(1, 4096)), (1 << 20, data(2, 4096)), (4 << 20, data(3, 8192)),
                ((8 << 20) - 100, data(4, 100))])
    for i in range(500):
        put(f"{d}/many/file-{i:03d}.txt", text(1000 + i, 10 + i % 50))
    os.makedirs(f"{d}/links")
    os.symlink("../hello.txt", f"{d}/links/short-link")
    os.symlink(long_target(200), f"{d}/links/long-link")
    os.symlink("does-not-exist", f"{d}/links/dangling")
    os.symlink("../big", f"{d}/links/dir-link")
    os.link(f"{d}/hello.txt", f"{d}/links/hello-hardlink")
    put(f"{d}/inline-dir/a.txt", b"a\n")
    put(f"{d}/inline-dir/b.txt", b"bb\n")
    os.makedirs(f"{d}/inline-dir/sub")
    os.makedirs(f"{d}/empty-dir")
    put(f"{d}/xattr/tagged.txt", b"this file has user xattrs\n")
    put(f"{d}/xattr/big-xattr.txt", b"this file has an xattr in an xattr block\n")
    put(f"{d}/deep/a/b/c/d/e/f/g/leaf.txt", b"leaf\n")
    put(f"{d}/perms/secret.txt", b"owned by uid 1000, mode 0600\n")
    os.chmod(f"{d}/perms/secret.txt", 0o600)
    os.makedirs(f"{d}/perms/sticky")
    os.chmod(f"{d}/perms/sticky", 0o1777)
    os.makedirs(f"{d}/perms/setgid")
    os.chmod(f"{d}/perms/setgid", 0o2775)
    put(f"{d}/perms/setgid/inherits.txt", b"group 1000\n")
    os.mkfifo(f"{d}/fifo")


def tree_inline(d):
    for n in (0, 1, 59, 60, 61, 100, 128, 129, 160, 256, 500, 700, 800, 900, 1000, 5000):
        put(f"{d}/size-{n:04d}.txt", text(n, n) if n else b"")
    put(f"{d}/inline-dir/one.txt", b"1\n")
    put(f"{d}/inline-dir/two.txt", b"2\n")
    for i in range(20):
        put(f"{d}/dir-20/entry-with-a-longer-name-{i:02d}", b"")
    os.makedirs(f"{d}/empty-dir")
    os.symlink("size-0001.txt", f"{d}/short-link")
    os.symlink(long_target(100), f"{d}/long-link-100")
    os.symlink(long_target(300), f"{d}/long-link-300")
    os.link(f"{d}/size-0100.txt", f"{d}/hardlink-to-100")
    put(f"{d}/xattr.txt", b"xattrs next to inline data\n")


def tree_blockmap(d):
    put(f"{d}/small.txt", b"a small file in a block-mapped filesystem\n")
    put(f"{d}/direct-10k.bin", data(10, 10 * 1024))           # blocks 0-9: direct
    put(f"{d}/indirect-200k.bin", data(200, 200 * 1024))      # needs the IND block
    put(f"{d}/dindirect-1m.bin", data(1000, 1024 * 1024))     # needs DIND at 1 KiB blocks
    put_sparse(f"{d}/sparse-holes.bin", 2 << 20,
               [(0, data(5, 1024)), (100 * 1024, data(6, 1024)),
                (600 * 1024, data(7, 3000)), ((2 << 20) - 10, b"tail-bytes")])
    for i in range(100):
        put(f"{d}/many/f{i:03d}", text(2000 + i, 20 + i))
    os.symlink("small.txt", f"{d}/short-link")
    os.symlink(long_target(120), f"{d}/long-link")
    os.link(f"{d}/small.txt", f"{d}/hardlink")
    os.makedirs(f"{d}/empty-dir")
    put(f"{d}/sub/dir/nested.txt", b"nested\n")
    put(f"{d}/xattr.txt", b"has user xattrs\n")


def tree_largedir(d):
    put(f"{d}/README.txt", b"largedir/ holds 20,000 entries (htree)\n")
    os.makedirs(f"{d}/largedir")
    for i in range(20000):
        # Names of varying length so that the leaf blocks are not uniform.
        name = f"entry-{i:05d}" + "-x" * (i % 17)
        with open(f"{d}/largedir/{name}", "wb") as f:
            if i % 1000 == 0:
                f.write(b"%d\n" % i)


def tree_fuzz(d):
    put(f"{d}/tiny.txt", b"tiny\n")
    put(f"{d}/inline-100.txt", text(100, 100))
    put(f"{d}/file-5000.bin", data(5000, 5000))
    put(f"{d}/file-70k.bin", data(70, 70 * 1024))
    # Ten data islands: more extents than fit in i_block, so an extent tree
    # block (ext4) or an indirect block (ext3) is needed.
    put_sparse(f"{d}/fragmented.bin", 300 * 1024,
               [(i * 30 * 1024, data(i, 1024)) for i in range(10)])
    for i in range(150):
        put(f"{d}/dir-150/name-{i:03d}.txt", text(3000 + i, 8 + i % 40))
    put(f"{d}/inline-dir/x", b"x\n")
    put(f"{d}/inline-dir/y", b"y\n")
    os.makedirs(f"{d}/empty-dir")
    os.symlink("tiny.txt", f"{d}/short-link")
    os.symlink(long_target(150), f"{d}/long-link")
    os.link(f"{d}/tiny.txt", f"{d}/hardlink")
    put(f"{d}/xattr-small.txt", b"x\n")
    put(f"{d}/xattr-block.txt", b"y\n")
    put(f"{d}/a/b/c/deep.txt", b"deep\n")


TREES = {"demo": tree_demo, "inline": tree_inline, "blockmap": tree_blockmap,
         "largedir": tree_largedir, "fuzz": tree_fuzz}

# debugfs commands applied to the image after mke2fs, before the ctime fix.
# Xattrs are set here rather than in the source tree, so that the result does
# not depend on whether the host filesystem supports user xattrs.
XATTR_LONG = "L" * 300
EXTRA = {
    "demo": [
        "ea_set /xattr/tagged.txt user.color blue",
        "ea_set /xattr/tagged.txt user.empty \"\"",
        "ea_set /xattr/tagged.txt user.long " + XATTR_LONG,
        "ea_set -f {blob2000} /xattr/big-xattr.txt user.blob",
        "ea_set /inline-dir user.dir-tag on-an-inline-dir",
        "sif /perms/secret.txt uid 1000",
        "sif /perms/secret.txt gid 1000",
        "sif /perms/setgid gid 1000",
        "sif /perms/setgid/inherits.txt gid 1000",
    ],
    "inline": [
        "ea_set /xattr.txt user.a 1",
        "ea_set /xattr.txt user.bb " + "b" * 40,
    ],
    "blockmap": [
        "ea_set /xattr.txt user.one 1",
        "ea_set -f {blob700} /xattr.txt user.blob",
    ],
    "largedir": [],
    "fuzz": [
        "ea_set /xattr-small.txt user.s small-value",
        "ea_set -f {blob700} /xattr-block.txt user.blob",
        "ea_set /inline-100.txt user.next-to-inline 12345678",
    ],
}


def debugfs_lines(image, commands):
    r = subprocess.run(["debugfs", "-f", "-", image], input="\n".join(commands) + "\n",
                       capture_output=True, text=True, check=True)
    return r.stdout.splitlines()


def fixup(kind, image, src):
    """Print the debugfs -w script: tree-specific commands, then ctime := FIXED_TIME
    on every inode reachable from the root (found with `ls -p`)."""
    workdir = os.path.dirname(os.path.abspath(image))
    blobs = {}
    for n in (700, 2000):  # values too big for the inode: an xattr block (1 KiB or 4 KiB)
        blobs["blob%d" % n] = os.path.join(workdir, "blob%d" % n)
        with open(blobs["blob%d" % n], "wb") as f:
            f.write(text(n, n))
    dirs = ["/"]
    for root, dirnames, _ in os.walk(src):
        rel = os.path.relpath(root, src)
        for n in sorted(dirnames):
            dirs.append("/" + os.path.normpath(os.path.join(rel, n)))
    inos = set()
    for line in debugfs_lines(image, ['ls -p "%s"' % p for p in dirs]):
        # /ino/mode/uid/gid/name/size/
        f = line.split("/")
        if len(f) >= 7 and line.startswith("/") and f[1].isdigit():
            inos.add(int(f[1]))
    out = [c.format(**blobs) for c in EXTRA[kind]]
    out += ["sif <%d> ctime @%d" % (i, FIXED_TIME) for i in sorted(inos) if i != 0]
    print("\n".join(out))


def main(argv):
    if len(argv) == 4 and argv[1] == "tree" and argv[2] in TREES:
        os.umask(0o022)
        os.makedirs(argv[3])
        TREES[argv[2]](argv[3])
        return 0
    if len(argv) == 5 and argv[1] == "fixup" and argv[2] in TREES:
        fixup(argv[2], argv[3], argv[4])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/python3
"""Corrupt-image sweep: mount deliberately damaged ext2/3/4 images and use them.

    corrupt_sweep.py --uext4 PATH --seeds N [--start S] [--keep-failures DIR]
    corrupt_sweep.py --fuse2fs [PATH] --seeds N ...      (comparison, not in CI)

For each seed S in [start, start+N):
  1. take base image number S % 4 (built once per run by images/build.sh:
     fuzz-csum.img = ext4 inline_data+metadata_csum, fuzz-nocsum.img = ext4
     without metadata_csum, fuzz-ext3.img = ext3 with block-mapped files; and
     fuzz-csum.img given an orphan file and user, group and project quota
     files by tune2fs, fuzz-oq.img);
  2. with random.Random(S), pick one or two metadata targets (superblock
     fields, group descriptors, inode table entries, directory and htree
     blocks, extent tree and indirect blocks, xattr blocks, bitmaps, the
     journal superblock, quota file blocks, orphan file blocks) and flip or randomize 1-16 bytes; on the metadata_csum
     base, usually recompute the checksum of what was changed, so that the
     damage reaches code behind the checksum verification;
  3. start the daemon in the foreground on a copy of the image, walk the tree
     (lstat, readlink, listxattr/getxattr, read every regular file), write
     (create, pwrite, append, truncate, mkdir, rename, link, symlink, unlink,
     setxattr, fsync), walk again, unmount with fusermount3 -u and wait.

Outcome per seed: mounted, refused (exited non-zero before mounting: fine),
crashed (signal, AddressSanitizer/UBSan report, or exited while mounted) or
hung (a phase, the mount or the exit took longer than its timeout). Every
phase runs in a child process with a timeout. Exit status 1 if any seed
crashed or hung; each failure is printed with its mutation and the command
that reproduces it (`--start S --seeds 1`). The last line is
"N passed, N failed" (passed = neither crashed nor hung).

Cleanup: every mount made here is unmounted (fusermount3 -u, -uz as a last
resort), every daemon started here is waited for; only PIDs started here are
ever signalled. Temporary files live in a uext4-fz-* directory.
"""
import argparse
import errno
import json
import os
import random
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))  # the test toolkit, also by hand
from uext4test import debugfs_batch, mounted_at, run  # noqa: E402
BUILD_SH = os.path.join(HERE, "..", "..", "images", "build.sh")
BASES = ["fuzz-csum.img", "fuzz-nocsum.img", "fuzz-ext3.img"]
# Made from fuzz-csum.img by tune2fs (build_bases): the structures of the
# orphan file and the quota files, which no images/ recipe has.
OQ_BASE = "fuzz-oq.img"
SAN_MARKERS = ["ERROR: AddressSanitizer", "runtime error:", "ERROR: ThreadSanitizer",
               "ERROR: MemorySanitizer", "AddressSanitizer:DEADLYSIGNAL"]
LEAK_MARKER = "ERROR: LeakSanitizer"

# ---------------------------------------------------------------------------
# crc32c, as ext4 uses it: raw (no pre/post inversion), seeded per structure.

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_T = _crc_table()


def crc32c_raw(crc, data):
    t = _CRC_T
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def le32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


# ---------------------------------------------------------------------------
# Field tables: (name, offset, size). Little-endian unless in JBD2_FIELDS.

SB_FIELDS = [
    ("s_inodes_count", 0, 4), ("s_blocks_count_lo", 4, 4), ("s_r_blocks_count_lo", 8, 4),
    ("s_free_blocks_count_lo", 12, 4), ("s_free_inodes_count", 16, 4),
    ("s_first_data_block", 20, 4), ("s_log_block_size", 24, 4), ("s_log_cluster_size", 28, 4),
    ("s_blocks_per_group", 32, 4), ("s_clusters_per_group", 36, 4),
    ("s_inodes_per_group", 40, 4), ("s_mnt_count", 52, 2), ("s_magic", 56, 2),
    ("s_state", 58, 2), ("s_errors", 60, 2), ("s_rev_level", 76, 4), ("s_first_ino", 84, 4),
    ("s_inode_size", 88, 2), ("s_block_group_nr", 90, 2), ("s_feature_compat", 92, 4),
    ("s_feature_incompat", 96, 4), ("s_feature_ro_compat", 100, 4),
    ("s_reserved_gdt_blocks", 206, 2), ("s_journal_inum", 224, 4), ("s_last_orphan", 232, 4),
    ("s_hash_seed", 236, 16), ("s_def_hash_version", 252, 1), ("s_desc_size", 254, 2),
    ("s_default_mount_opts", 256, 4), ("s_first_meta_bg", 260, 4),
    ("s_blocks_count_hi", 336, 4), ("s_min_extra_isize", 348, 2),
    ("s_want_extra_isize", 350, 2), ("s_flags", 352, 4), ("s_log_groups_per_flex", 372, 1),
    ("s_checksum_type", 373, 1), ("s_error_count", 0x194, 4), ("s_first_error_ino", 0x19C, 4),
    ("s_checksum_seed", 0x270, 4), ("s_encoding", 0x27C, 2), ("s_orphan_file_inum", 0x280, 4),
]
GD_FIELDS = [
    ("bg_block_bitmap_lo", 0, 4), ("bg_inode_bitmap_lo", 4, 4), ("bg_inode_table_lo", 8, 4),
    ("bg_free_blocks_count_lo", 12, 2), ("bg_free_inodes_count_lo", 14, 2),
    ("bg_used_dirs_count_lo", 16, 2), ("bg_flags", 18, 2), ("bg_itable_unused_lo", 28, 2),
    ("bg_checksum", 30, 2),
]
GD64_FIELDS = [("bg_block_bitmap_hi", 32, 4), ("bg_inode_bitmap_hi", 36, 4),
               ("bg_inode_table_hi", 40, 4), ("bg_free_blocks_count_hi", 44, 2),
               ("bg_free_inodes_count_hi", 46, 2), ("bg_itable_unused_hi", 50, 2)]
INODE_FIELDS = [
    ("i_mode", 0, 2), ("i_uid", 2, 2), ("i_size_lo", 4, 4), ("i_links_count", 26, 2),
    ("i_blocks_lo", 28, 4), ("i_flags", 32, 4), ("i_generation", 100, 4),
    ("i_file_acl_lo", 104, 4), ("i_size_high", 108, 4), ("i_blocks_high", 116, 2),
    ("i_file_acl_high", 118, 2),
]
EXTENT_I_BLOCK = [("eh_magic", 40, 2), ("eh_entries", 42, 2), ("eh_max", 44, 2),
                  ("eh_depth", 46, 2), ("ee_block[0]", 52, 4), ("ee_len[0]", 56, 2),
                  ("ee_start_hi[0]", 58, 2), ("ee_start_lo[0]", 60, 4),
                  ("ee_block[1]", 64, 4), ("ee_len[1]", 68, 2), ("ee_start_lo[1]", 72, 4)]
BLOCKMAP_I_BLOCK = [("i_block[0]", 40, 4), ("i_block[1]", 44, 4), ("i_block[11]", 84, 4),
                    ("i_block[IND]", 88, 4), ("i_block[DIND]", 92, 4), ("i_block[TIND]", 96, 4)]
INLINE_I_BLOCK = [("i_block:dirent.parent", 40, 4), ("i_block:dirent0.inode", 44, 4),
                  ("i_block:dirent0.rec_len", 48, 2), ("i_block:dirent0.name_len", 50, 1),
                  ("i_block:dirent0.file_type", 51, 1), ("i_block:bytes", 40, 60)]
EXTENT_BLOCK = [("eh_magic", 0, 2), ("eh_entries", 2, 2), ("eh_max", 4, 2), ("eh_depth", 6, 2),
                ("ee_block[0]", 12, 4), ("ee_len[0]", 16, 2), ("ee_start_lo[0]", 20, 4),
                ("ee_block[3]", 48, 4), ("ee_len[3]", 52, 2), ("ee_start_lo[3]", 56, 4)]
XATTR_BLOCK = [("h_magic", 0, 4), ("h_refcount", 4, 4), ("h_blocks", 8, 4), ("h_hash", 12, 4),
               ("e_name_len", 32, 1), ("e_name_index", 33, 1), ("e_value_offs", 34, 2),
               ("e_value_inum", 36, 4), ("e_value_size", 40, 4), ("e_hash", 44, 4)]
DXROOT = [("dx.hash_version", 0x1C, 1), ("dx.info_length", 0x1D, 1),
          ("dx.indirect_levels", 0x1E, 1), ("dx.limit", 0x20, 2), ("dx.count", 0x22, 2),
          ("dx.block0", 0x24, 4), ("dx.hash1", 0x28, 4), ("dx.block1", 0x2C, 4)]
# Quota file (QFMT_VFS_V1): the info in quota block 0; tree and data blocks.
QUOTA_INFO = [("dqi_bgrace", 8, 4), ("dqi_igrace", 12, 4), ("dqi_blocks", 20, 4),
              ("dqi_free_blk", 24, 4), ("dqi_free_entry", 28, 4)]
QUOTA_BLOCK = [("ref0", 0, 4), ("ref1", 4, 4), ("dqdh_entries", 8, 2), ("entry0.id", 16, 4),
               ("entry0.ihardlimit", 24, 8), ("entry0.curinodes", 40, 8),
               ("entry0.bsoftlimit", 56, 8), ("entry0.curspace", 64, 8), ("entry0.btime", 72, 8),
               ("entry0.itime", 80, 8), ("entry1.id", 88, 4)]
JBD2_FIELDS = [("j.magic", 0, 4), ("j.blocktype", 4, 4), ("j.s_blocksize", 12, 4),
               ("j.s_maxlen", 16, 4), ("j.s_first", 20, 4), ("j.s_sequence", 24, 4),
               ("j.s_start", 28, 4), ("j.s_errno", 32, 4), ("j.feature_incompat", 40, 4),
               ("j.s_nr_users", 64, 4)]

EXT4_INLINE_DATA_FL = 0x10000000
EXT4_EXTENTS_FL = 0x80000
EXT4_INDEX_FL = 0x1000

# ---------------------------------------------------------------------------
# Base images and where their metadata lives.


class Region:
    """A stretch of metadata to damage. `csum` says how to re-checksum it:
    ("sb",), ("gd", group), ("inode", ino), ("extent", ino), ("dirleaf", ino),
    ("dxroot", ino), ("xattr", block), ("bbitmap", group), ("ibitmap", group) or None."""

    def __init__(self, kind, label, off, size, fields=(), csum=None):
        self.kind, self.label, self.off, self.size = kind, label, off, size
        self.fields, self.csum = list(fields), csum


BLOCK_RE = None


def parse_blocks(stat_text):
    """[(tag, first_phys, count)] from debugfs `stat`; tag is a logical block
    number or ETBn/IND/DIND/TIND."""
    import re
    global BLOCK_RE
    if BLOCK_RE is None:
        BLOCK_RE = re.compile(r"\((ETB\d+|IND|DIND|TIND|\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?")
    out = []
    m_sec = stat_text.split("EXTENTS:", 1) if "EXTENTS:" in stat_text else stat_text.split("BLOCKS:", 1)
    if len(m_sec) < 2:
        return out
    for m in BLOCK_RE.finditer(m_sec[1]):
        tag, p0, p1 = m.group(1), int(m.group(3)), m.group(4)
        count = int(p1) - p0 + 1 if p1 else 1
        out.append((tag, p0, count))
    return out


class Base:
    def __init__(self, name, path):
        self.name, self.path = name, path
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        sb = d[1024:2048]
        self.sb = sb
        (self.inodes_count, self.blocks_count) = struct.unpack_from("<II", sb, 0)
        self.first_data_block, log_bs = struct.unpack_from("<II", sb, 20)
        self.bs = 1024 << log_bs
        self.blocks_per_group, = struct.unpack_from("<I", sb, 32)
        self.ipg, = struct.unpack_from("<I", sb, 40)
        self.inode_size, = struct.unpack_from("<H", sb, 88)
        self.compat, self.incompat, self.ro_compat = struct.unpack_from("<III", sb, 92)
        self.is64 = bool(self.incompat & 0x80)
        self.desc_size = struct.unpack_from("<H", sb, 254)[0] if self.is64 else 32
        self.csum = bool(self.ro_compat & 0x400)
        if self.incompat & 0x2000:
            self.csum_seed = struct.unpack_from("<I", sb, 0x270)[0]
        else:
            self.csum_seed = crc32c_raw(0xFFFFFFFF, sb[104:120])
        self.ngroups = (self.blocks_count - self.first_data_block + self.blocks_per_group - 1) \
            // self.blocks_per_group
        gdt = (self.first_data_block + 1) * self.bs
        self.gd_off = [gdt + g * self.desc_size for g in range(self.ngroups)]
        self.itable, self.bbitmap, self.ibitmap = [], [], []
        for off in self.gd_off:
            bb, ib, it = struct.unpack_from("<III", d, off)
            if self.desc_size >= 64:
                bbh, ibh, ith = struct.unpack_from("<III", d, off + 32)
                bb, ib, it = bb | bbh << 32, ib | ibh << 32, it | ith << 32
            self.bbitmap.append(bb)
            self.ibitmap.append(ib)
            self.itable.append(it)
        self.regions = []
        self._find_inodes()
        self._build_regions()

    def inode_off(self, ino):
        g, i = divmod(ino - 1, self.ipg)
        return self.itable[g] * self.bs + i * self.inode_size

    def _find_inodes(self):
        """Walk the tree with debugfs `ls -p`; collect path, mode and `stat` of each inode."""
        self.inodes = {}  # ino -> (path, mode)
        todo = [("/", 2)]
        self.inodes[2] = ("/", 0o40755)
        seen = {2}
        while todo:
            out = debugfs_batch(self.path, ['ls -p "%s"' % p for p, _ in todo])
            nxt = []
            for p, _ in todo:
                for line in out.get('ls -p "%s"' % p, "").splitlines():
                    f = line.split("/")
                    if len(f) < 7 or not f[1].isdigit():
                        continue
                    ino, mode, name = int(f[1]), int(f[2], 8), f[5]
                    if name in (".", "..") or ino == 0 or ino in seen:
                        continue
                    seen.add(ino)
                    child = (p.rstrip("/") + "/" + name)
                    self.inodes[ino] = (child, mode)
                    if stat.S_ISDIR(mode):
                        nxt.append((child, ino))
            todo = nxt
        for special, label in ((7, "<resize>"), (8, "<journal>")):
            if special not in self.inodes:
                self.inodes[special] = (label, 0o100600)
        # The quota files and the orphan file, named by the superblock.
        self.quota_inos, self.orphan_ino = set(), 0
        hdr = run(["dumpe2fs", "-h", self.path], timeout=60).stdout.decode(errors="replace")
        for line in hdr.splitlines():
            key, _, val = line.partition(":")
            if key in ("User quota inode", "Group quota inode", "Project quota inode"):
                self.quota_inos.add(int(val))
                self.inodes[int(val)] = ("<quota>", 0o100600)
            elif key == "Orphan file inode":
                self.orphan_ino = int(val)
                self.inodes[int(val)] = ("<orphan file>", 0o100600)
        stats = debugfs_batch(self.path, ["stat <%d>" % i for i in sorted(self.inodes)])
        self.stat = {i: stats.get("stat <%d>" % i, "") for i in self.inodes}
        # Cross-check the inode table arithmetic against debugfs once.
        im = debugfs_batch(self.path, ["imap <2>"]).get("imap <2>", "")
        if "located at block" in im:
            blk = int(im.split("located at block")[1].split(",")[0])
            off = int(im.split("offset")[1].split()[0], 16)
            if blk * self.bs + off != self.inode_off(2):
                raise RuntimeError("%s: inode table arithmetic disagrees with debugfs imap"
                                   % self.name)

    def _build_regions(self):
        R = self.regions.append
        sb_fields = [f for f in SB_FIELDS if self.csum or f[0] != "s_checksum_seed"]
        R(Region("superblock", "superblock", 1024, 1024, sb_fields, ("sb",)))
        for g, off in enumerate(self.gd_off):
            f = GD_FIELDS + (GD64_FIELDS if self.desc_size >= 64 else [])
            R(Region("gdt", "group %d descriptor" % g, off, self.desc_size, f, ("gd", g)))
            R(Region("bitmap", "group %d block bitmap" % g, self.bbitmap[g] * self.bs, self.bs,
                     [], ("bbitmap", g)))
            R(Region("bitmap", "group %d inode bitmap" % g, self.ibitmap[g] * self.bs, self.bs,
                     [], ("ibitmap", g)))
        for ino, (path, mode) in sorted(self.inodes.items()):
            off = self.inode_off(ino)
            raw = self.data[off:off + self.inode_size]
            flags, = struct.unpack_from("<I", raw, 32)
            fields = list(INODE_FIELDS)
            if flags & EXT4_INLINE_DATA_FL:
                fields += INLINE_I_BLOCK if stat.S_ISDIR(mode) else [("i_block:bytes", 40, 60)]
            elif flags & EXT4_EXTENTS_FL:
                fields += EXTENT_I_BLOCK
            elif stat.S_ISLNK(mode) and not self.stat[ino].count("BLOCKS:"):
                fields += [("i_block:symlink", 40, 60)]
            else:
                fields += BLOCKMAP_I_BLOCK
            if self.inode_size > 128:
                extra, = struct.unpack_from("<H", raw, 128)
                fields.append(("i_extra_isize", 128, 2))
                x = 128 + extra
                if x + 20 <= self.inode_size and raw[x:x + 4] == b"\x00\x00\x02\xea":
                    fields += [("ibody.h_magic", x, 4), ("ibody.e_name_len", x + 4, 1),
                               ("ibody.e_name_index", x + 5, 1),
                               ("ibody.e_value_offs", x + 6, 2),
                               ("ibody.e_value_inum", x + 8, 4),
                               ("ibody.e_value_size", x + 12, 4)]
            R(Region("inode", "inode %d (%s)" % (ino, path), off, self.inode_size, fields,
                     ("inode", ino)))
            acl_lo, = struct.unpack_from("<I", raw, 104)
            if acl_lo:
                R(Region("xattr", "xattr block %d of inode %d (%s)" % (acl_lo, ino, path),
                         acl_lo * self.bs, self.bs, XATTR_BLOCK, ("xattr", acl_lo)))
            for tag, phys, count in parse_blocks(self.stat[ino]):
                if tag.startswith("ETB"):
                    R(Region("extent", "extent block %d of inode %d (%s)" % (phys, ino, path),
                             phys * self.bs, self.bs, EXTENT_BLOCK, ("extent", ino)))
                elif tag in ("IND", "DIND", "TIND"):
                    R(Region("indirect", "%s block %d of inode %d (%s)" % (tag, phys, ino, path),
                             phys * self.bs, self.bs, [("entry0", 0, 4), ("entry1", 4, 4)], None))
                elif ino in self.quota_inos:
                    for k in range(count * (self.bs // 1024)):
                        qblk = int(tag) * (self.bs // 1024) + k
                        R(Region("quota", "quota block %d of inode %d" % (qblk, ino),
                                 phys * self.bs + k * 1024, 1024,
                                 QUOTA_INFO if qblk == 0 else QUOTA_BLOCK, None))
                elif ino == self.orphan_ino:
                    for k in range(count):
                        R(Region("orphan", "orphan file block %d of inode %d" % (int(tag) + k, ino),
                                 (phys + k) * self.bs, self.bs,
                                 [("slot0", 0, 4), ("slot1", 4, 4), ("slot2", 8, 4),
                                  ("ob_magic", self.bs - 8, 4)], ("orphan", ino, phys + k)))
                elif ino == 8:
                    if tag == "0":
                        R(Region("journal", "journal superblock (block %d)" % phys,
                                 phys * self.bs, 1024, JBD2_FIELDS, None))
                elif stat.S_ISDIR(mode):
                    for k in range(count):
                        lblk = int(tag) + k
                        boff = (phys + k) * self.bs
                        if lblk == 0 and flags & EXT4_INDEX_FL:
                            R(Region("htree", "htree root of inode %d (%s)" % (ino, path), boff,
                                     self.bs, DXROOT + self._dirent_fields(boff, 2),
                                     ("dxroot", ino)))
                        else:
                            R(Region("dirblock", "dir block %d of inode %d (%s)" % (lblk, ino, path),
                                     boff, self.bs, self._dirent_fields(boff, 6),
                                     ("dirleaf", ino)))

    def _dirent_fields(self, boff, limit):
        out, pos, n = [], 0, 0
        while pos + 8 <= self.bs and n < 64:
            ino, rec_len, name_len, ftype = struct.unpack_from("<IHBB", self.data, boff + pos)
            out += [("dirent%d.inode" % n, pos, 4), ("dirent%d.rec_len" % n, pos + 4, 2),
                    ("dirent%d.name_len" % n, pos + 6, 1), ("dirent%d.file_type" % n, pos + 7, 1)]
            if rec_len < 8:
                break
            pos += rec_len
            n += 1
        if len(out) > 4 * limit:  # the first few and a random-ish sample of the rest
            out = out[:4 * (limit // 2)] + out[-4 * (limit - limit // 2):]
        return out


# ---------------------------------------------------------------------------
# Checksums (metadata_csum base only).

def inode_seed(base, img, ino):
    off = base.inode_off(ino)
    gen, = struct.unpack_from("<I", img, off + 100)
    return crc32c_raw(crc32c_raw(base.csum_seed, le32(ino)), le32(gen))


def fix_csum(base, img, region):
    """Recompute the checksum covering `region` in img (a bytearray). Returns a
    short note, or None if this structure is not fixed here."""
    kind = region.csum[0]
    bs = base.bs
    if kind == "sb":
        c = crc32c_raw(0xFFFFFFFF, bytes(img[1024:1024 + 1020]))
        struct.pack_into("<I", img, 1024 + 1020, c)
    elif kind == "gd":
        g = region.csum[1]
        off = base.gd_off[g]
        desc = bytearray(img[off:off + base.desc_size])
        desc[30:32] = b"\0\0"
        c = crc32c_raw(crc32c_raw(base.csum_seed, le32(g)), bytes(desc)) & 0xFFFF
        struct.pack_into("<H", img, off + 30, c)
    elif kind == "inode":
        ino = region.csum[1]
        off = base.inode_off(ino)
        raw = bytearray(img[off:off + base.inode_size])
        extra = struct.unpack_from("<H", raw, 128)[0] if base.inode_size > 128 else 0
        has_hi = base.inode_size > 128 and extra >= 4
        raw[0x7C:0x7E] = b"\0\0"
        if has_hi:
            raw[0x82:0x84] = b"\0\0"
        c = crc32c_raw(inode_seed(base, img, ino), bytes(raw))
        struct.pack_into("<H", img, off + 0x7C, c & 0xFFFF)
        if has_hi:
            struct.pack_into("<H", img, off + 0x82, c >> 16)
    elif kind == "extent":
        eh_max, = struct.unpack_from("<H", img, region.off + 4)
        tail = 12 + 12 * eh_max
        if tail + 4 > bs:
            return None
        c = crc32c_raw(inode_seed(base, img, region.csum[1]),
                       bytes(img[region.off:region.off + tail]))
        struct.pack_into("<I", img, region.off + tail, c)
    elif kind == "dirleaf":
        t = region.off + bs - 12
        if img[t:t + 8] != b"\0\0\0\0\x0c\0\0\xde":
            return None
        c = crc32c_raw(inode_seed(base, img, region.csum[1]), bytes(img[region.off:t]))
        struct.pack_into("<I", img, t + 8, c)
    elif kind == "dxroot":
        limit, count = struct.unpack_from("<HH", img, region.off + 0x20)
        tail = 0x20 + limit * 8
        if count > limit or tail + 8 > bs:
            return None
        c = crc32c_raw(inode_seed(base, img, region.csum[1]),
                       bytes(img[region.off:region.off + 0x20 + count * 8]))
        c = crc32c_raw(c, bytes(img[region.off + tail:region.off + tail + 4]) + b"\0\0\0\0")
        struct.pack_into("<I", img, region.off + tail + 4, c)
    elif kind == "xattr":
        blk = bytearray(img[region.off:region.off + bs])
        blk[16:20] = b"\0\0\0\0"
        c = crc32c_raw(crc32c_raw(base.csum_seed, struct.pack("<Q", region.csum[1])), bytes(blk))
        struct.pack_into("<I", img, region.off + 16, c)
    elif kind == "orphan":
        # ext4_orphan_file_block_csum: the inode's seed, the block's
        # physical number (le64), the block up to its tail.
        c = crc32c_raw(inode_seed(base, img, region.csum[1]), struct.pack("<Q", region.csum[2]))
        c = crc32c_raw(c, bytes(img[region.off:region.off + bs - 8]))
        struct.pack_into("<I", img, region.off + bs - 4, c)
    elif kind in ("bbitmap", "ibitmap"):
        g = region.csum[1]
        if kind == "bbitmap":
            n = struct.unpack_from("<I", base.sb, 36)[0] // 8   # clusters per group
            lo, hi = 24, 56
        else:
            n = base.ipg // 8
            lo, hi = 26, 58
        c = crc32c_raw(base.csum_seed, bytes(img[region.off:region.off + n]))
        gd = base.gd_off[g]
        struct.pack_into("<H", img, gd + lo, c & 0xFFFF)
        if base.desc_size >= 64:
            struct.pack_into("<H", img, gd + hi, c >> 16)
        fix_csum(base, img, Region("gdt", "", gd, base.desc_size, (), ("gd", g)))
    else:
        return None
    return "csum fixed"


def check_csums(base):
    """On the unmodified image, recomputing each checksum must change nothing;
    a fixer that fails this is switched off (and reported)."""
    broken = set()
    for r in base.regions:
        if not r.csum:
            continue
        img = bytearray(base.data)
        if fix_csum(base, img, r) and img != base.data:
            broken.add(r.csum[0])
    return broken


# ---------------------------------------------------------------------------
# Mutations.

def interesting(rng, size, orig, base):
    mask = (1 << (8 * size)) - 1
    choices = [0, 1, 2, mask, mask >> 1, (mask >> 1) + 1, orig + 1, orig - 1, orig * 2,
               orig ^ (1 << rng.randrange(8 * size)), rng.getrandbits(8 * size),
               orig + rng.randrange(1, 64), orig >> 1]
    if size >= 4:
        choices += [base.blocks_count, base.blocks_count - 1, base.blocks_count + 1,
                    base.inodes_count, base.inodes_count + 1, 0x80000000, 0xFFFFFFFE]
    return rng.choice(choices) & mask


def mutate(base, img, rng, csum_broken):
    """Damage img (a bytearray) in place. Returns a list of human-readable
    mutation records (dicts)."""
    weights = {"superblock": 14, "gdt": 8, "bitmap": 4, "inode": 34, "dirblock": 12,
               "htree": 6, "extent": 8, "indirect": 6, "xattr": 6, "journal": 2,
               "quota": 6, "orphan": 6}
    by_kind = {}
    for r in base.regions:
        by_kind.setdefault(r.kind, []).append(r)
    kinds = sorted(k for k in by_kind if k in weights)
    records = []
    for _ in range(1 if rng.random() < 0.8 else 2):
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        region = rng.choice(by_kind[kind])
        strategy = rng.choices(["field", "bitflip", "randomize"],
                               [55 if region.fields else 0, 25, 20])[0]
        if strategy == "field":
            name, foff, fsize = rng.choice(region.fields)
            if fsize > 8:
                n = rng.randint(1, min(16, fsize))
                start = region.off + foff + rng.randrange(fsize - n + 1)
                new = bytes(rng.getrandbits(8) for _ in range(n))
                what = "%s: randomize %d bytes" % (name, n)
            else:
                start, n = region.off + foff, fsize
                order = "big" if name.startswith("j.") else "little"
                orig = int.from_bytes(img[start:start + n], order)
                val = interesting(rng, n, orig, base)
                new = val.to_bytes(n, order)
                what = "%s: %#x -> %#x" % (name, orig, val)
        elif strategy == "bitflip":
            n = rng.randint(1, 16)
            span = min(region.size, max(16, n))
            start = region.off + rng.randrange(region.size - span + 1)
            new = bytearray(img[start:start + span])
            for pos in rng.sample(range(span), min(n, span)):
                new[pos] ^= 1 << rng.randrange(8)
            new, n = bytes(new), span
            what = "flip bits in %d of %d bytes" % (min(n, span), span)
        else:
            n = rng.randint(1, 16)
            start = region.off + rng.randrange(region.size - n + 1)
            new = bytes(rng.getrandbits(8) for _ in range(n))
            what = "randomize %d bytes" % n
        old = bytes(img[start:start + len(new)])
        img[start:start + len(new)] = new
        rec = {"target": region.label, "what": what, "offset": start,
               "old": old.hex(), "new": new.hex()}
        if base.csum and region.csum and region.csum[0] not in csum_broken \
                and rng.random() < 0.75:
            note = fix_csum(base, img, region)
            if note:
                rec["csum"] = note
        records.append(rec)
    return records


def describe(records):
    return "; ".join("%s: %s @%#x %s->%s%s" % (r["target"], r["what"], r["offset"],
                                               r["old"][:32], r["new"][:32],
                                               " (%s)" % r["csum"] if "csum" in r else "")
                     for r in records)


# ---------------------------------------------------------------------------
# Worker phases: run in a child process (python3 corrupt_sweep.py --worker
# PHASE MNT), print one JSON line. They never raise on OSError.

class Tally:
    def __init__(self):
        self.ok, self.errors = 0, {}

    def run(self, what, fn, *a):
        try:
            r = fn(*a)
            self.ok += 1
            return r
        except OSError as e:
            key = "%s:%s" % (what, errno.errorcode.get(e.errno, str(e.errno)))
            self.errors[key] = self.errors.get(key, 0) + 1
        except (ValueError, OverflowError) as e:
            key = "%s:%s" % (what, type(e).__name__)
            self.errors[key] = self.errors.get(key, 0) + 1
        return None


def read_file(path, cap):
    n = 0
    with open(path, "rb", buffering=0) as f:
        while n < cap:
            b = f.read(min(1 << 20, cap - n))
            if not b:
                break
            n += len(b)
    return n


def phase_walk(mnt):
    t = Tally()
    seen, files, nent, total_read = set(), [], 0, 0
    stack = [(mnt, 0)]
    while stack and nent < 20000:
        d, depth = stack.pop()
        st = t.run("lstat", os.lstat, d)
        if st is None or (st.st_ino, st.st_dev) in seen:
            continue
        seen.add((st.st_ino, st.st_dev))
        entries = t.run("scandir", lambda: sorted(os.listdir(d)))
        if entries is None:
            continue
        for name in entries:
            nent += 1
            p = os.path.join(d, name)
            st = t.run("lstat", os.lstat, p)
            names = t.run("listxattr", lambda: os.listxattr(p, follow_symlinks=False)) or []
            for x in names[:32]:
                t.run("getxattr", lambda: os.getxattr(p, x, follow_symlinks=False))
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode) and depth < 32:
                stack.append((p, depth + 1))
            elif stat.S_ISLNK(st.st_mode):
                t.run("readlink", os.readlink, p)
            elif stat.S_ISREG(st.st_mode):
                files.append(p)
    for p in files:
        if total_read >= 64 << 20:
            break
        total_read += t.run("read", read_file, p, 8 << 20) or 0
    t.run("statvfs", os.statvfs, mnt)
    return {"ok": t.ok, "errors": t.errors, "entries": nent, "files": len(files),
            "bytes": total_read}


def write_new(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def pwrite_at(path, off, data):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def phase_write(mnt):
    t = Tally()
    j = os.path.join
    new = j(mnt, "fz-new.txt")
    t.run("create", write_new, new, b"n" * 10)
    t.run("pwrite-inline", pwrite_at, new, 10, b"m" * 20)
    t.run("append", write_new, new, b"a" * 5000, "ab")
    t.run("truncate-down", os.truncate, new, 50)
    t.run("truncate-up", os.truncate, new, 10000)
    t.run("read", read_file, new, 1 << 20)
    t.run("mkdir", os.mkdir, j(mnt, "fz-dir"))
    for i in range(40):  # grows an inline directory into a block directory
        t.run("create-many", write_new, j(mnt, "fz-dir", "entry-%02d-with-a-long-name" % i), b"e")
    t.run("rename", os.rename, j(mnt, "fz-dir", "entry-00-with-a-long-name"), j(mnt, "fz-renamed"))
    t.run("symlink", os.symlink, "fz-new.txt", j(mnt, "fz-link"))
    t.run("symlink-long", os.symlink, "L" * 300, j(mnt, "fz-long-link"))
    t.run("link", os.link, new, j(mnt, "fz-hardlink"))
    t.run("setxattr", os.setxattr, new, "user.fz", b"v" * 100)
    t.run("setxattr-big", os.setxattr, new, "user.fz-big", b"w" * 600)
    t.run("removexattr", os.removexattr, new, "user.fz")
    for i in range(1, 40, 3):
        t.run("unlink", os.unlink, j(mnt, "fz-dir", "entry-%02d-with-a-long-name" % i))
    # Existing files and directories, chosen by sorted name (deterministic).
    root = t.run("listdir", lambda: sorted(os.listdir(mnt))) or []
    regs, dirs = [], []
    for name in root:
        if name.startswith("fz-"):
            continue
        st = t.run("lstat", os.lstat, j(mnt, name))
        if st is None:
            continue
        if stat.S_ISREG(st.st_mode):
            regs.append(j(mnt, name))
        elif stat.S_ISDIR(st.st_mode) and name != "lost+found":
            dirs.append(j(mnt, name))
    for p in regs[:5]:
        t.run("pwrite-existing", pwrite_at, p, 10, b"Z" * 7)
        t.run("append-existing", write_new, p, b"A" * 100, "ab")
        st = t.run("stat", os.stat, p)
        if st is not None:
            t.run("truncate-existing", os.truncate, p, min(st.st_size // 2, 1 << 30))
    for d in dirs[:4]:
        p = j(d, "fz-in-existing-dir")
        t.run("create-in-dir", write_new, p, b"x" * 30)
        t.run("unlink-in-dir", os.unlink, p)
        t.run("mkdir-in-dir", os.mkdir, j(d, "fz-subdir"))
        t.run("rmdir-in-dir", os.rmdir, j(d, "fz-subdir"))
    if regs:
        t.run("unlink-existing", os.unlink, regs[-1])
    t.run("unlink", os.unlink, j(mnt, "fz-hardlink"))
    t.run("statvfs", os.statvfs, mnt)
    return {"ok": t.ok, "errors": t.errors}


def worker_main(phase, mnt):
    fn = {"walk": phase_walk, "write": phase_write}[phase]
    print(json.dumps(fn(mnt)))
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------
# Mount, exercise, unmount.

def daemon_backtrace(proc):
    """All threads' stacks of our hung daemon, if gdb is installed (bounded)."""
    if proc is None or proc.poll() is not None or not shutil.which("gdb"):
        return ""
    try:
        r = subprocess.run(["gdb", "-batch", "-nx", "-p", str(proc.pid),
                            "-ex", "thread apply all bt 30"], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        return "\n".join(l for l in r.stdout.splitlines()
                         if l.startswith(("#", "Thread ")))
    except subprocess.TimeoutExpired:
        return "(gdb timed out)"


def kill_daemon(proc):
    """SIGKILL our own daemon (by PID) and reap it; remembered on the Popen."""
    if proc is not None and proc.poll() is None:
        proc.uext4_killed = True
        proc.kill()
        proc.wait()


def run_bounded(cmd, timeout, daemon):
    """Run cmd (a child of ours) for at most `timeout` seconds. On timeout,
    SIGKILL it; a child stuck in a FUSE request cannot die until its request
    ends, so if it does not, SIGKILL our daemon too (which aborts the FUSE
    connection). Returns (returncode, stdout, stderr, timed_out)."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        so, se = p.communicate(timeout=timeout)
        return p.returncode, so, se, False
    except subprocess.TimeoutExpired:
        p.kill()
        try:
            so, se = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            kill_daemon(daemon)
            so, se = p.communicate()
        return p.returncode, so or "", se or "", True


def unmount(mnt, log, daemon=None):
    """fusermount3 -u, retried; -uz as the last resort. Never hangs: a stuck
    unmount (waiting for writeback the daemon never answers) kills our daemon.
    (The toolkit's fuse_unmount waits for fusermount3; a damaged image can
    make it wait forever, so the sweep keeps this bounded variant.)"""
    for attempt in range(6):
        if not mounted_at(mnt):
            return True
        rc, _, err, timed_out = run_bounded(["fusermount3", "-u", mnt], 15, daemon)
        if timed_out:
            log.append("fusermount3 -u timed out")
        elif rc == 0:
            return True
        else:
            log.append("fusermount3 -u: " + err.strip())
        time.sleep(0.2 * (attempt + 1))
    if mounted_at(mnt):
        run_bounded(["fusermount3", "-uz", mnt], 15, daemon)
        log.append("needed fusermount3 -uz")
    return not mounted_at(mnt)


def stop_daemon(proc, timeout):
    """Wait for our daemon; SIGKILL it (by its PID) if it outlives timeout.
    Returns True if it exited by itself."""
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        kill_daemon(proc)
        return False


class Outcome:
    def __init__(self):
        self.status = None  # mounted | refused | crashed | hung
        self.reason = ""
        self.notes = []
        self.phases = {}
        self.stderr = ""
        self.backtrace = ""


def sanitizer_report(text):
    for m in SAN_MARKERS:
        if m in text:
            return m
    return None


def exercise(args, img, mnt, errpath, opts):
    out = Outcome()
    cmd = [args.fuse2fs or args.uext4, img, mnt, "-f"] + (["-o", opts] if opts else [])
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    errf = open(errpath, "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                            start_new_session=True, env=env)
    mounted_at_exit = False
    try:
        deadline = time.monotonic() + args.mount_timeout
        while not mounted_at(mnt):
            if proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                out.status, out.reason = "hung", "no mount after %gs" % args.mount_timeout
                break
            time.sleep(0.01)
        if out.status is None and proc.poll() is None:
            out.status = "mounted"
            for phase in args.phases.split(","):
                key = phase if phase not in out.phases else phase + "2"
                rc, so, se, timed_out = run_bounded(
                    [sys.executable, os.path.abspath(__file__), "--worker", phase, mnt],
                    args.op_timeout, proc)
                if timed_out:
                    out.status, out.reason = "hung", "%s phase took > %gs" % (key, args.op_timeout)
                    break
                if rc == 0 and so.strip():
                    out.phases[key] = json.loads(so.strip().splitlines()[-1])
                else:
                    out.phases[key] = {"worker-exit": rc, "stderr": se.strip()[-300:]}
                if proc.poll() is not None:
                    mounted_at_exit = mounted_at(mnt)
                    break
        if out.status == "hung":
            out.backtrace = daemon_backtrace(proc)
            kill_daemon(proc)
    finally:
        ulog = []
        if proc.poll() is None:
            if not unmount(mnt, ulog, proc):
                ulog.append("could not unmount")
            if getattr(proc, "uext4_killed", False) and out.status != "hung":
                out.status, out.reason = "hung", "unmount stuck; daemon killed"
            elif not stop_daemon(proc, args.exit_timeout) and out.status != "hung":
                out.status, out.reason = "hung", "daemon still running %gs after unmount" \
                    % args.exit_timeout
        else:
            proc.wait()
        if mounted_at(mnt):
            unmount(mnt, ulog)
        out.notes += ulog
        errf.close()
    with open(errpath, "rb") as f:
        out.stderr = f.read().decode("utf-8", "replace")
    rc = proc.returncode
    killed = getattr(proc, "uext4_killed", False)
    if killed and out.status != "hung":
        out.status, out.reason = "hung", "daemon had to be killed"
    san = sanitizer_report(out.stderr)
    if san:
        out.status, out.reason = "crashed", "sanitizer: %s" % san
    elif rc is not None and rc < 0 and not killed:
        out.status, out.reason = "crashed", "killed by signal %s" % signal.Signals(-rc).name
    elif out.status == "mounted" and mounted_at_exit:
        out.status, out.reason = "crashed", "daemon exited (rc %s) while mounted" % rc
    elif out.status is None:
        out.status = "refused"
        msg = out.stderr.strip().splitlines()
        out.reason = "rc %s: %s" % (rc, msg[-1][:160] if msg else "(no message on stderr)")
        if rc == 0:
            out.notes.append("exited 0 without mounting")
        if not msg:
            out.notes.append("refused without a message")
    if LEAK_MARKER in out.stderr:
        out.notes.append("LeakSanitizer report")
    return out


# ---------------------------------------------------------------------------

def mount_opts(args, seed):
    """--mount-opts if given; for uext4, otherwise errors=continue and
    errors=remount-ro on alternate seeds of each base (a damaged s_errors could
    otherwise ask for errors=panic, whose abort() is on purpose)."""
    if args.mount_opts or args.fuse2fs:
        return args.mount_opts
    if seed == "control":
        return "errors=continue"
    return "errors=continue" if (seed // 3) % 2 == 0 else "errors=remount-ro"


def build_bases(tmp):
    d = os.path.join(tmp, "bases")
    r = subprocess.run(["bash", BUILD_SH, d] + BASES, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit("corrupt_sweep: images/build.sh failed to build the base images")
    oq = os.path.join(d, OQ_BASE)
    shutil.copyfile(os.path.join(d, BASES[0]), oq)
    r = subprocess.run(["tune2fs", "-O", "orphan_file,quota,project", "-Q",
                        "usrquota,grpquota,prjquota", oq], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit("corrupt_sweep: tune2fs failed to make %s" % OQ_BASE)
    return [Base(n, os.path.join(d, n)) for n in BASES + [OQ_BASE]]


class Interrupted(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    who = ap.add_mutually_exclusive_group()
    who.add_argument("--uext4", metavar="PATH", help="the uext4 daemon binary")
    who.add_argument("--fuse2fs", metavar="PATH", nargs="?", const=shutil.which("fuse2fs") or
                     "/usr/bin/fuse2fs", help="run the sweep against fuse2fs instead")
    ap.add_argument("--seeds", type=int, default=60)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--keep-failures", metavar="DIR")
    ap.add_argument("--mount-opts", default="",
                    help="-o OPTS for the daemon (default for uext4: errors=continue or "
                    "errors=remount-ro, alternating)")
    ap.add_argument("--op-timeout", type=float, default=20.0, help="per phase (s)")
    ap.add_argument("--mount-timeout", type=float, default=10.0)
    ap.add_argument("--exit-timeout", type=float, default=20.0, help="daemon exit after unmount")
    ap.add_argument("--phases", default="walk,write,walk",
                    help="comma-separated worker phases while mounted (walk, write)")
    ap.add_argument("--no-control", action="store_true",
                    help="skip the runs on the undamaged base images")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--worker", nargs=2, metavar=("PHASE", "MNT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(*args.worker)
    os.environ["PATH"] = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    if not args.uext4 and not args.fuse2fs:
        ap.error("one of --uext4 PATH or --fuse2fs is required")
    daemon = args.uext4 or args.fuse2fs
    if not (os.path.isfile(daemon) and os.access(daemon, os.X_OK)):
        print("corrupt_sweep: %s is not an executable file" % daemon)
        print("0 passed, 1 failed")
        return 1
    for tool in ("fusermount3", "debugfs", "e2fsck", "mke2fs", "tune2fs"):
        if not shutil.which(tool):
            print("corrupt_sweep: %s not found" % tool)
            print("0 passed, 1 failed")
            return 1

    def on_term(signum, frame):
        raise Interrupted()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    tmp = os.path.realpath(tempfile.mkdtemp(prefix="uext4-fz-"))
    counts = {"mounted": 0, "refused": 0, "crashed": 0, "hung": 0}
    failures = []
    control_notes = []
    passed = failed = 0
    t0 = time.monotonic()
    try:
        bases = build_bases(tmp)
        broken = {}
        for b in bases:
            broken[b.name] = check_csums(b) if b.csum else set()
            if broken[b.name]:
                print("warning: %s: checksum fixers disagree with the image for %s; not used"
                      % (b.name, ", ".join(sorted(broken[b.name]))))
            if args.verbose:
                kinds = {}
                for r in b.regions:
                    kinds[r.kind] = kinds.get(r.kind, 0) + 1
                print("base %s: %d inodes, regions %s" % (b.name, len(b.inodes), kinds))
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        img = os.path.join(tmp, "image.img")
        errpath = os.path.join(tmp, "daemon.stderr")
        print("corrupt sweep: %s, seeds %d..%d" % (daemon, args.start, args.start + args.seeds - 1))
        sys.stdout.flush()
        jobs = [] if args.no_control else [("control", b) for b in bases]
        jobs += [(seed, bases[seed % len(bases)])
                 for seed in range(args.start, args.start + args.seeds)]
        for seed, base in jobs:
            data = bytearray(base.data)
            if seed == "control":
                records = [{"target": "none", "what": "undamaged base image", "offset": 0,
                            "old": "", "new": ""}]
            else:
                records = mutate(base, data, random.Random(seed), broken[base.name])
            with open(img, "wb") as f:
                f.write(data)
            try:
                fsck = run(["e2fsck", "-fn", img], check_rc=False, timeout=60).returncode
            except subprocess.TimeoutExpired:
                fsck = "timeout"
            ts = time.monotonic()
            opts = mount_opts(args, seed)
            out = exercise(args, img, mnt, errpath, opts)
            dt = time.monotonic() - ts
            if seed == "control" and out.status == "mounted":
                # Informational: the daemon's writes should leave a clean image clean.
                after = run(["e2fsck", "-fn", img], check_rc=False, timeout=60)
                if after.returncode != 0:
                    msg = [l for l in after.stdout.decode(errors="replace").splitlines()
                           if l and not l.startswith(
                        ("Pass ", "e2fsck ")) and "***" not in l]
                    out.notes.append("e2fsck -fn after the run: exit %d: %s" % (
                        after.returncode, " | ".join(msg[:6])))
                    control_notes.append("%s: %s" % (base.name, out.notes[-1]))
            counts[out.status] += 1
            bad = out.status in ("crashed", "hung")
            errs = {}
            for ph in out.phases.values():
                for k, v in ph.get("errors", {}).items():
                    e = k.split(":", 1)[1]
                    errs[e] = errs.get(e, 0) + v
            line = "seed %s [%s%s] %-8s %s%s (%.1fs, e2fsck %s)" % (
                seed, base.name[:-4], " -o " + opts if opts else "",
                out.status.upper() if bad else out.status,
                out.reason + " " if out.reason else "",
                ("errors " + ",".join("%s*%d" % kv for kv in sorted(errs.items())))
                if errs else "", dt, fsck)
            print(line)
            if args.verbose or bad:
                print("    mutation: " + describe(records))
            if args.verbose:
                for k, v in out.phases.items():
                    print("    %s: %s" % (k, json.dumps(v)[:400]))
            if out.notes:
                print("    notes: " + "; ".join(out.notes))
            if bad:
                failed += 1
                lines = out.stderr.strip().splitlines()
                first = next((i for i, l in enumerate(lines)
                              if any(m in l for m in SAN_MARKERS)), None)
                tail = "\n".join(lines[first:first + 24] if first is not None else lines[-25:])
                print("    reproduce: %s --%s %s %s -v" % (
                    os.path.abspath(__file__), "uext4" if args.uext4 else "fuse2fs", daemon,
                    "--seeds 0" if seed == "control" else "--no-control --start %d --seeds 1"
                    % seed))
                if tail:
                    print("    daemon stderr:\n      " + tail.replace("\n", "\n      "))
                if out.backtrace:
                    print("    daemon threads when found hung:\n      "
                          + out.backtrace.replace("\n", "\n      "))
                failures.append((seed, base.name, out.status, out.reason, describe(records)))
                if args.keep_failures:
                    kd = os.path.join(args.keep_failures, "seed-%s" % (
                        seed if seed != "control" else "control-" + base.name[:-4]))
                    os.makedirs(kd, exist_ok=True)
                    shutil.copyfile(img, os.path.join(kd, "image.img"))
                    shutil.copyfile(errpath, os.path.join(kd, "daemon.stderr"))
                    if out.backtrace:
                        with open(os.path.join(kd, "backtrace.txt"), "w") as f:
                            f.write(out.backtrace + "\n")
                    with open(os.path.join(kd, "mutation.json"), "w") as f:
                        json.dump({"seed": seed, "base": base.name, "status": out.status,
                                   "reason": out.reason, "mutations": records,
                                   "phases": out.phases}, f, indent=1)
            else:
                passed += 1
            sys.stdout.flush()
    except Interrupted:
        print("corrupt_sweep: interrupted")
        failed += 1
    finally:
        m = os.path.join(tmp, "mnt")
        if mounted_at(m) and not unmount(m, []):
            print("corrupt_sweep: could not unmount %s; leaving %s in place" % (m, tmp))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("summary: %s in %.0fs" % (", ".join("%s %d" % kv for kv in counts.items()),
                                    time.monotonic() - t0))
    for n in control_notes:
        print("note (not a failure): control %s" % n)
    for seed, b, st, why, m in failures:
        print("FAILED seed %s [%s] %s: %s -- %s" % (seed, b, st, why, m))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

/* Quota usage: the user, group and project quota files of the `quota`
 * feature, kept as e2fsck checks them.
 *
 * What counts (e2fsck pass 1, mkquota.c): every inode with links, the root
 * or one from s_first_ino on, except the quota files and EA inodes; it is
 * charged to its uid, gid and projid with i_blocks in bytes (data, extent
 * tree and xattr blocks alike, and the values in EA inodes, which
 * eainode.c adds to i_blocks) and one inode, plus one for each reference
 * its xattrs hold to an EA inode (in its body or its xattr block, shared
 * or not: ext4_xattr_inode_alloc_quota, ext4_get_inode_usage). So the
 * charge is a function of the inode and its xattrs. Those references
 * change only through eainode.c, which charges the difference
 * (e2_quota_charge_ea_refs_locked); every other change of the charge is
 * one of the inode alone, and the one place that sees every change of it is
 * libext2fs's write_inode hook: every inode write, ours and those libext2fs
 * makes inside bmap, punch or the xattr code, passes it. The hook charges
 * the difference between the inode on disk and the one being written, in
 * memory; e2_quota_flush_locked() adds the differences to the quota files,
 * before every commit captures the transaction and before the image is
 * closed, so the quota files commit with the changes they count.
 *
 * The hook is given no buffer size: libext2fs may write 128 bytes. The
 * projid (beyond those) is taken from the buffer only when our own code
 * writes a whole large inode (e2_quota_whole_inode), else from the disk.
 *
 * The files are the kernel's QFMT_VFS_V1 format: 1 KiB quota blocks; block
 * 0 holds the header (magic per type, version 1) and the info (grace
 * times, flags, block count, free block list, list of data blocks with
 * free entries); block 1 is the root of a 4-level radix tree indexed by the
 * bytes of the id, most significant first, whose last level points at data
 * blocks: a 16-byte header (free-list links, entry count) and 14 entries of
 * 72 bytes. An entry whose bytes are all zero is free (so an id 0 entry
 * that would be all zero keeps dqb_itime 1, as the kernel writes it).
 * Entries are added for new ids; entries whose usage falls to zero are
 * kept (e2fsck accepts them; the kernel would delete those without
 * limits).
 *
 * Soft limits follow the kernel's dquot rules: a charge that takes an id
 * past its soft limit while no grace period runs starts one (dqb_btime or
 * dqb_itime = now + the file's dqi_bgrace or dqi_igrace), a release that
 * brings it back to the limit or under ends it, and once now reaches the
 * time the soft limit refuses like a hard one. "Now" is the daemon's clock
 * (CLOCK_REALTIME, as ktime_get_real_seconds) when the charge is added to
 * the file, at the flush before the commit: a grace period starts up to a
 * commit interval after the operation that passed the limit. */
#include "e2/e2_internal.h"
#include "base/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QT_BLKSIZE    1024u
#define QT_TREEOFF    1u
#define QT_TREEDEPTH  4
#define QT_HDR_SIZE   16u
#define QT_ENTRY_SIZE 72u
#define QT_PER_BLOCK  ((QT_BLKSIZE - QT_HDR_SIZE) / QT_ENTRY_SIZE)
#define QT_INFO_OFF   8u

/* Offsets in an entry (struct v2r1_disk_dqblk). */
#define DQ_ID        0
#define DQ_IHARD     8
#define DQ_ISOFT     16
#define DQ_CURINODES 24
#define DQ_BHARD     32
#define DQ_BSOFT     40
#define DQ_CURSPACE  48
#define DQ_BTIME     56
#define DQ_ITIME     64

/* Offsets in the info (struct v2_disk_dqinfo), from QT_INFO_OFF. */
#define DQI_BGRACE 0
#define DQI_IGRACE 4

static const uint32_t qt_magic[E2_QUOTA_TYPES] = {0xd9c01f11, 0xd9c01927, 0xd9c03f14};
static const char *const qt_name[E2_QUOTA_TYPES] = {"user", "group", "project"};

struct qt_delta {
    uint32_t id;
    int64_t space; /* bytes */
    int64_t inodes;
};

struct qt_file {
    uint32_t inum; /* 0: the image has no quota file of this type */
    struct qt_delta *d;
    size_t n, cap;
};

struct e2_quota {
    struct qt_file f[E2_QUOTA_TYPES];
    bool whole; /* the inode being written is a whole ext2_inode_large */
    bool fresh; /* ... and a new one: nothing was charged for its slot */
};

/* ---- little-endian fields ---- */

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return ext2fs_le32_to_cpu(v);
}

static void put32(unsigned char *p, uint32_t v)
{
    v = ext2fs_cpu_to_le32(v);
    memcpy(p, &v, 4);
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return ext2fs_le64_to_cpu(v);
}

static void put64(unsigned char *p, uint64_t v)
{
    v = ext2fs_cpu_to_le64(v);
    memcpy(p, &v, 8);
}

/* ---- quota blocks of a quota file ---- */

/* Read quota block @n of file @inum; a hole or a block past the end reads
 * as zeros. */
static int qblk_read(ext2_filsys fs, uint32_t inum, uint32_t n, unsigned char *buf)
{
    uint64_t off = (uint64_t)n * QT_BLKSIZE;
    blk64_t pblk = 0;
    char *fsblk;
    errcode_t err;

    err = ext2fs_bmap2(fs, inum, NULL, NULL, 0, off / fs->blocksize, NULL, &pblk);
    if (err)
        return e2_errno(err);
    if (!pblk) {
        memset(buf, 0, QT_BLKSIZE);
        return 0;
    }
    err = ext2fs_get_mem(fs->blocksize, &fsblk);
    if (err)
        return e2_errno(err);
    err = io_channel_read_blk64(fs->io, pblk, 1, fsblk);
    if (!err)
        memcpy(buf, fsblk + off % fs->blocksize, QT_BLKSIZE);
    ext2fs_free_mem(&fsblk);
    return e2_errno(err);
}

/* Write quota block @n, allocating the file block under it and growing
 * i_size as needed. Through the io channel: in the running transaction. */
static int qblk_write(ext2_filsys fs, uint32_t inum, uint32_t n, const unsigned char *buf)
{
    uint64_t off = (uint64_t)n * QT_BLKSIZE, end = off + QT_BLKSIZE;
    struct ext2_inode_large in;
    blk64_t pblk = 0;
    char *fsblk = NULL;
    errcode_t err;
    int ret_flags = 0;

    err = ext2fs_get_memzero(fs->blocksize, &fsblk);
    if (err)
        return e2_errno(err);
    err = ext2fs_bmap2(fs, inum, NULL, NULL, 0, off / fs->blocksize, NULL, &pblk);
    if (!err && !pblk)
        err =
            ext2fs_bmap2(fs, inum, NULL, NULL, BMAP_ALLOC, off / fs->blocksize, &ret_flags, &pblk);
    else if (!err)
        err = io_channel_read_blk64(fs->io, pblk, 1, fsblk);
    if (err)
        goto out_free;
    memcpy(fsblk + off % fs->blocksize, buf, QT_BLKSIZE);
    err = io_channel_write_blk64(fs->io, pblk, 1, fsblk);
    if (err)
        goto out_free;
    err = ext2fs_read_inode_full(fs, inum, (struct ext2_inode *)&in, sizeof(in));
    if (!err && EXT2_I_SIZE(&in) < end) {
        err = ext2fs_inode_size_set(fs, (struct ext2_inode *)&in, end);
        if (!err)
            err = ext2fs_write_inode_full(fs, inum, (struct ext2_inode *)&in, sizeof(in));
    }
out_free:
    ext2fs_free_mem(&fsblk);
    return e2_errno(err);
}

/* ---- the tree ---- */

struct qt_info {
    unsigned char blk[QT_BLKSIZE]; /* block 0 as read */
    uint32_t blocks, free_blk, free_entry;
};

static int info_read(ext2_filsys fs, int type, uint32_t inum, struct qt_info *qi)
{
    int ret = qblk_read(fs, inum, 0, qi->blk);

    if (ret)
        return ret;
    if (get32(qi->blk) != qt_magic[type] || get32(qi->blk + 4) != 1)
        return -EUCLEAN;
    qi->blocks = get32(qi->blk + QT_INFO_OFF + 12);
    qi->free_blk = get32(qi->blk + QT_INFO_OFF + 16);
    qi->free_entry = get32(qi->blk + QT_INFO_OFF + 20);
    if (qi->blocks <= QT_TREEOFF)
        return -EUCLEAN;
    return 0;
}

static int info_write(ext2_filsys fs, uint32_t inum, struct qt_info *qi)
{
    put32(qi->blk + QT_INFO_OFF + 12, qi->blocks);
    put32(qi->blk + QT_INFO_OFF + 16, qi->free_blk);
    put32(qi->blk + QT_INFO_OFF + 20, qi->free_entry);
    return qblk_write(fs, inum, 0, qi->blk);
}

static bool ref_ok(const struct qt_info *qi, uint32_t ref)
{
    return ref > QT_TREEOFF && ref < qi->blocks;
}

static bool entry_unused(const unsigned char *e)
{
    for (unsigned i = 0; i < QT_ENTRY_SIZE; i++) {
        if (e[i])
            return false;
    }
    return true;
}

static unsigned tree_index(uint32_t id, int depth)
{
    return (id >> ((QT_TREEDEPTH - depth - 1) * 8)) & 0xff;
}

/* Where the entry of @id is: data block *@blk (0 if the id has none), at
 * byte *@off in it. */
static int entry_find(ext2_filsys fs, uint32_t inum, const struct qt_info *qi, uint32_t id,
                      uint32_t *blk, unsigned *off)
{
    unsigned char buf[QT_BLKSIZE];
    uint32_t ref = QT_TREEOFF;
    int ret;

    *blk = 0;
    for (int depth = 0; depth < QT_TREEDEPTH; depth++) {
        ret = qblk_read(fs, inum, ref, buf);
        if (ret)
            return ret;
        ref = get32(buf + 4 * tree_index(id, depth));
        if (!ref)
            return 0;
        if (!ref_ok(qi, ref))
            return -EUCLEAN;
    }
    ret = qblk_read(fs, inum, ref, buf);
    if (ret)
        return ret;
    for (unsigned i = 0; i < QT_PER_BLOCK; i++) {
        const unsigned char *e = buf + QT_HDR_SIZE + i * QT_ENTRY_SIZE;
        if (!entry_unused(e) && get32(e + DQ_ID) == id) {
            *blk = ref;
            *off = QT_HDR_SIZE + i * QT_ENTRY_SIZE;
            return 0;
        }
    }
    return -EUCLEAN; /* the tree points at a block without the id */
}

/* A block for a new tree or data block: the head of the free block list,
 * else one past the end of the file. */
static int block_get(ext2_filsys fs, uint32_t inum, struct qt_info *qi, uint32_t *blk)
{
    unsigned char buf[QT_BLKSIZE];
    int ret;

    if (qi->free_blk) {
        if (!ref_ok(qi, qi->free_blk))
            return -EUCLEAN;
        ret = qblk_read(fs, inum, qi->free_blk, buf);
        if (ret)
            return ret;
        *blk = qi->free_blk;
        qi->free_blk = get32(buf); /* dqdh_next_free */
        return 0;
    }
    *blk = qi->blocks++;
    return 0;
}

/* A free entry slot for a new id: in the first data block with free
 * entries, or a new data block put on that list. Takes the block off the
 * list when it becomes full. The block is left in @buf with the entry
 * count raised (the caller fills the entry at *@off and writes it). */
static int slot_get(ext2_filsys fs, uint32_t inum, struct qt_info *qi, uint32_t *blk, unsigned *off,
                    unsigned char *buf)
{
    unsigned entries;
    int ret;

    if (qi->free_entry) {
        if (!ref_ok(qi, qi->free_entry))
            return -EUCLEAN;
        *blk = qi->free_entry;
        ret = qblk_read(fs, inum, *blk, buf);
        if (ret)
            return ret;
    } else {
        ret = block_get(fs, inum, qi, blk);
        if (ret)
            return ret;
        memset(buf, 0, QT_BLKSIZE);
        qi->free_entry = *blk; /* the list was empty: the block is all of it */
    }
    entries = buf[8] | (unsigned)buf[9] << 8;
    if (entries >= QT_PER_BLOCK)
        return -EUCLEAN;
    entries++;
    buf[8] = (unsigned char)entries;
    buf[9] = (unsigned char)(entries >> 8);
    if (entries == QT_PER_BLOCK) {
        /* Full: off the list, of which it is the head. */
        uint32_t next = get32(buf);
        unsigned char nb[QT_BLKSIZE];

        if (next) {
            if (!ref_ok(qi, next))
                return -EUCLEAN;
            ret = qblk_read(fs, inum, next, nb);
            if (!ret) {
                put32(nb + 4, 0); /* dqdh_prev_free */
                ret = qblk_write(fs, inum, next, nb);
            }
            if (ret)
                return ret;
        }
        qi->free_entry = next;
        put32(buf, 0);
        put32(buf + 4, 0);
    }
    for (unsigned i = 0; i < QT_PER_BLOCK; i++) {
        if (entry_unused(buf + QT_HDR_SIZE + i * QT_ENTRY_SIZE)) {
            *off = QT_HDR_SIZE + i * QT_ENTRY_SIZE;
            return 0;
        }
    }
    return -EUCLEAN; /* the count said there was room */
}

/* Add an entry for @id (none exists) with zero usage and no limits. */
static int entry_insert(ext2_filsys fs, uint32_t inum, struct qt_info *qi, uint32_t id,
                        uint32_t *dblk, unsigned *doff)
{
    unsigned char tree[QT_BLKSIZE], data[QT_BLKSIZE];
    uint32_t ref = QT_TREEOFF, next;
    unsigned idx;
    int ret;

    for (int depth = 0; depth < QT_TREEDEPTH; depth++) {
        ret = qblk_read(fs, inum, ref, tree);
        if (ret)
            return ret;
        idx = tree_index(id, depth);
        next = get32(tree + 4 * idx);
        if (depth == QT_TREEDEPTH - 1) {
            if (next)
                return -EUCLEAN; /* the leaf slot is taken but lacks @id */
            ret = slot_get(fs, inum, qi, dblk, doff, data);
            if (ret)
                return ret;
            memset(data + *doff, 0, QT_ENTRY_SIZE);
            put32(data + *doff + DQ_ID, id);
            if (entry_unused(data + *doff))
                put64(data + *doff + DQ_ITIME, 1);
            ret = qblk_write(fs, inum, *dblk, data);
            if (!ret) {
                put32(tree + 4 * idx, *dblk);
                ret = qblk_write(fs, inum, ref, tree);
            }
            return ret;
        }
        if (!next) {
            unsigned char zero[QT_BLKSIZE] = {0};

            ret = block_get(fs, inum, qi, &next);
            if (!ret)
                ret = qblk_write(fs, inum, next, zero);
            if (!ret) {
                put32(tree + 4 * idx, next);
                ret = qblk_write(fs, inum, ref, tree);
            }
            if (ret)
                return ret;
        } else if (!ref_ok(qi, next)) {
            return -EUCLEAN;
        }
        ref = next;
    }
    return -EUCLEAN; /* not reached */
}

static uint64_t add_clamped(uint64_t v, int64_t d)
{
    if (d < 0 && (uint64_t)-d > v)
        return 0;
    return v + (uint64_t)d;
}

/* Add @d to the usage at @cur_off of entry @e and start or end its grace
 * period (time at @time_off) against the soft limit @soft (0: none), as
 * the kernel's check_bdq/check_idq and dquot_decr_space/inodes do. */
static void charge_entry(unsigned char *e, unsigned cur_off, unsigned time_off, uint64_t soft,
                         int64_t d, uint32_t grace, uint64_t now)
{
    uint64_t cur = add_clamped(get64(e + cur_off), d);

    put64(e + cur_off, cur);
    if (d > 0 && soft && cur > soft && !get64(e + time_off))
        put64(e + time_off, now + grace);
    else if (d < 0 && cur <= soft)
        put64(e + time_off, 0);
}

/* Add one type's differences to its file. */
static int flush_file(ext2_filsys fs, int type, struct qt_file *f)
{
    unsigned char buf[QT_BLKSIZE];
    struct qt_info qi;
    uint32_t blk;
    unsigned off;
    bool info_dirty = false;
    uint64_t now = (uint64_t)time(NULL);
    uint32_t bgrace, igrace;
    int ret;

    if (!f->n)
        return 0;
    ret = info_read(fs, type, f->inum, &qi);
    if (ret)
        return ret;
    bgrace = get32(qi.blk + QT_INFO_OFF + DQI_BGRACE);
    igrace = get32(qi.blk + QT_INFO_OFF + DQI_IGRACE);
    while (f->n) {
        struct qt_delta *d = &f->d[f->n - 1];

        if (d->space || d->inodes) {
            ret = entry_find(fs, f->inum, &qi, d->id, &blk, &off);
            if (!ret && !blk) {
                uint32_t before = qi.blocks, fb = qi.free_blk, fe = qi.free_entry;
                ret = entry_insert(fs, f->inum, &qi, d->id, &blk, &off);
                info_dirty |= before != qi.blocks || fb != qi.free_blk || fe != qi.free_entry;
            }
            if (!ret)
                ret = qblk_read(fs, f->inum, blk, buf);
            if (ret)
                break;
            unsigned char *e = buf + off;
            charge_entry(e, DQ_CURSPACE, DQ_BTIME, get64(e + DQ_BSOFT) * QT_BLKSIZE, d->space,
                         bgrace, now);
            charge_entry(e, DQ_CURINODES, DQ_ITIME, get64(e + DQ_ISOFT), d->inodes, igrace, now);
            if (entry_unused(e))
                put64(e + DQ_ITIME, 1);
            ret = qblk_write(fs, f->inum, blk, buf);
            if (ret)
                break;
        }
        f->n--;
    }
    if (info_dirty) {
        int iret = info_write(fs, f->inum, &qi);
        ret = ret ? ret : iret;
    }
    return ret;
}

/* ---- charging ---- */

static int note(struct qt_file *f, uint32_t id, int64_t space, int64_t inodes)
{
    struct qt_delta *d;

    if (!f->inum || (!space && !inodes))
        return 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->d[i].id == id) {
            f->d[i].space += space;
            f->d[i].inodes += inodes;
            return 0;
        }
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        d = realloc(f->d, cap * sizeof(*d));
        if (!d)
            return -ENOMEM;
        f->d = d;
        f->cap = cap;
    }
    f->d[f->n++] = (struct qt_delta){id, space, inodes};
    return 0;
}

struct charge {
    bool counted;
    uint32_t id[E2_QUOTA_TYPES];
    int64_t space;
    int64_t inodes; /* 1 + the EA inode references, when counted */
};

static void charge_of(ext2_filsys fs, const struct ext2_inode *in, uint32_t projid,
                      struct charge *c)
{
    c->counted = in->i_links_count && !(in->i_flags & EXT4_EA_INODE_FL);
    c->id[E2_QUOTA_USER] = inode_uid(*in);
    c->id[E2_QUOTA_GROUP] = inode_gid(*in);
    c->id[E2_QUOTA_PROJECT] = projid;
    c->space = (int64_t)ext2fs_get_stat_i_blocks(fs, (struct ext2_inode *)in) * 512;
    c->inodes = 1;
}

/* The EA inode references of inode @ino as on disk, which a write of the
 * inode alone (not through the xattr code) leaves as they are. */
static int ea_refs_on_disk(struct e2_image *img, ext2_ino_t ino, int64_t *refs)
{
    struct e2_ea_refs r;
    int ret = e2_ea_refs_get_locked(img, ino, &r);

    *refs = r.n;
    e2_ea_refs_free(&r);
    return ret;
}

static uint32_t projid_of(const struct ext2_inode_large *in)
{
    return e2_inode_has_extra(in, offsetof(struct ext2_inode_large, i_projid) + 4) ? in->i_projid
                                                                                   : 0;
}

static bool is_charged_ino(ext2_filsys fs, const struct e2_quota *q, ext2_ino_t ino)
{
    if (ino != EXT2_ROOT_INO && ino < EXT2_FIRST_INODE(fs->super))
        return false;
    for (int t = 0; t < E2_QUOTA_TYPES; t++) {
        if (q->f[t].inum == ino)
            return false;
    }
    return true;
}

static errcode_t write_inode_hook(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode *inode)
{
    struct e2_image *img = fs->priv_data;
    struct e2_quota *q = img->quota;
    struct ext2_inode_large old;
    struct charge was = {0}, now;
    uint32_t projid;
    int64_t refs = 0;
    errcode_t err;
    int ret = 0;

    if (!is_charged_ino(fs, q, ino))
        return EXT2_ET_CALLBACK_NOTHANDLED;
    if (!q->fresh) {
        memset(&old, 0, sizeof(old));
        err =
            ext2fs_read_inode2(fs, ino, (struct ext2_inode *)&old, sizeof(old), READ_INODE_NOCSUM);
        if (err)
            return err;
        charge_of(fs, (struct ext2_inode *)&old, projid_of(&old), &was);
    }
    projid = q->whole ? projid_of((struct ext2_inode_large *)inode) : was.id[E2_QUOTA_PROJECT];
    charge_of(fs, inode, projid, &now);
    /* The inodes charged move only with the owner or liveness; then the
     * EA inode references move too (a new inode has none). */
    if (!q->fresh && (was.counted || now.counted) &&
        (was.counted != now.counted || memcmp(was.id, now.id, sizeof(was.id)))) {
        ret = ea_refs_on_disk(img, ino, &refs);
        if (ret == -ENOMEM)
            return EXT2_ET_NO_MEMORY;
        if (ret == -EIO)
            return EXT2_ET_SHORT_READ;
        if (ret)
            return EXT2_ET_EA_INODE_CORRUPTED; /* the walk found the xattrs unreadable */
        was.inodes += refs;
        now.inodes += refs;
    }
    for (int t = 0; t < E2_QUOTA_TYPES && !ret; t++) {
        if (was.counted && now.counted && was.id[t] == now.id[t]) {
            ret = note(&q->f[t], now.id[t], now.space - was.space, 0);
            continue;
        }
        if (was.counted)
            ret = note(&q->f[t], was.id[t], -was.space, -was.inodes);
        if (!ret && now.counted)
            ret = note(&q->f[t], now.id[t], now.space, now.inodes);
    }
    return ret ? EXT2_ET_NO_MEMORY : EXT2_ET_CALLBACK_NOTHANDLED;
}

/* ---- the contract (e2_internal.h) ---- */

int e2_quota_start(struct e2_image *img, char *why, size_t why_len)
{
    ext2_filsys fs = img->fs;
    struct e2_quota *q;
    struct qt_info qi;
    int ret;

    if (!ext2fs_has_feature_quota(fs->super))
        return 0;
    q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->f[E2_QUOTA_USER].inum = fs->super->s_usr_quota_inum;
    q->f[E2_QUOTA_GROUP].inum = fs->super->s_grp_quota_inum;
    if (ext2fs_has_feature_project(fs->super))
        q->f[E2_QUOTA_PROJECT].inum = fs->super->s_prj_quota_inum;
    for (int t = 0; t < E2_QUOTA_TYPES; t++) {
        uint32_t inum = q->f[t].inum;

        if (!inum)
            continue;
        ret = inum > fs->super->s_inodes_count ? -EUCLEAN : info_read(fs, t, inum, &qi);
        if (ret) {
            e2_say(why, why_len, "the %s quota file (inode %u) of '%s' is unusable: %s", qt_name[t],
                   inum, img->path, strerror(-ret));
            free(q);
            return ret;
        }
    }
    img->quota = q;
    fs->priv_data = img;
    fs->write_inode = write_inode_hook;
    return 0;
}

int e2_quota_flush_locked(struct e2_image *img)
{
    struct e2_quota *q = img->quota;
    int ret = 0;

    /* Also once read-only (remount, errors=remount-ro): what was done
     * before is written back with what it charged. */
    if (!q)
        return 0;
    for (int t = 0; t < E2_QUOTA_TYPES && !ret; t++) {
        ret = flush_file(img->fs, t, &q->f[t]);
        if (ret)
            log_err("'%s': cannot update the %s quota file (inode %u): %s", img->path, qt_name[t],
                    q->f[t].inum, strerror(-ret));
    }
    return ret;
}

void e2_quota_stop(struct e2_image *img)
{
    struct e2_quota *q = img->quota;

    if (!q)
        return;
    if (img->fs)
        img->fs->write_inode = NULL;
    for (int t = 0; t < E2_QUOTA_TYPES; t++)
        free(q->f[t].d);
    free(q);
    img->quota = NULL;
}

int e2_quota_charge_ea_refs_locked(struct e2_image *img, uint32_t ino,
                                   const struct ext2_inode_large *in, int64_t refs)
{
    struct e2_quota *q = img->quota;
    struct charge c;
    int ret = 0;

    if (!q || !refs || !is_charged_ino(img->fs, q, ino))
        return 0;
    charge_of(img->fs, (const struct ext2_inode *)in, projid_of(in), &c);
    for (int t = 0; t < E2_QUOTA_TYPES && c.counted && !ret; t++)
        ret = note(&q->f[t], c.id[t], 0, refs);
    return ret;
}

void e2_quota_whole_inode(struct e2_image *img, bool whole, bool fresh)
{
    if (img->quota) {
        img->quota->whole = whole;
        img->quota->fresh = fresh;
    }
}

/* ---- limits ---- */

/* The limit a charge may not pass: the hard limit, or the soft one once
 * its grace period has ended (the lower of the two; 0: none). */
static uint64_t limit_now(uint64_t hard, uint64_t soft, uint64_t grace_end, uint64_t now)
{
    if (soft && grace_end && now >= grace_end && (!hard || soft < hard))
        return soft;
    return hard;
}

/* The bytes @ids may still be charged before a block limit, and the
 * inodes before an inode limit (UINT64_MAX: no limit), for the types in
 * the bit @mask: hard limits, and soft ones whose grace has ended. */
static int room_locked(struct e2_image *img, const uint32_t ids[E2_QUOTA_TYPES], unsigned mask,
                       uint64_t *space, uint64_t *inodes)
{
    struct e2_quota *q = img->quota;
    unsigned char buf[QT_BLKSIZE];
    struct qt_info qi;
    uint32_t blk;
    unsigned off;
    uint64_t now = (uint64_t)time(NULL);
    int ret;

    *space = *inodes = UINT64_MAX;
    for (int t = 0; t < E2_QUOTA_TYPES; t++) {
        struct qt_file *f = &q->f[t];
        uint64_t bhard, ihard, cur_space, cur_inodes;

        if (!f->inum || !(mask & (1u << t)))
            continue;
        ret = info_read(img->fs, t, f->inum, &qi);
        if (!ret)
            ret = entry_find(img->fs, f->inum, &qi, ids[t], &blk, &off);
        if (!ret && blk)
            ret = qblk_read(img->fs, f->inum, blk, buf);
        if (ret)
            return ret;
        if (!blk)
            continue; /* no entry: no limits */
        bhard = limit_now(get64(buf + off + DQ_BHARD), get64(buf + off + DQ_BSOFT),
                          get64(buf + off + DQ_BTIME), now) *
                QT_BLKSIZE;
        ihard = limit_now(get64(buf + off + DQ_IHARD), get64(buf + off + DQ_ISOFT),
                          get64(buf + off + DQ_ITIME), now);
        cur_space = get64(buf + off + DQ_CURSPACE);
        cur_inodes = get64(buf + off + DQ_CURINODES);
        for (size_t i = 0; i < f->n; i++) {
            if (f->d[i].id == ids[t]) {
                cur_space = add_clamped(cur_space, f->d[i].space);
                cur_inodes = add_clamped(cur_inodes, f->d[i].inodes);
            }
        }
        if (bhard && bhard - (cur_space < bhard ? cur_space : bhard) < *space)
            *space = bhard - (cur_space < bhard ? cur_space : bhard);
        if (ihard && ihard - (cur_inodes < ihard ? cur_inodes : ihard) < *inodes)
            *inodes = ihard - (cur_inodes < ihard ? cur_inodes : ihard);
    }
    return 0;
}

int e2_quota_may_create(struct e2_image *img, const struct e2_attr *a, uint64_t space)
{
    uint32_t ids[E2_QUOTA_TYPES] = {a->uid, a->gid, a->projid};
    uint64_t room_space, room_inodes;
    int ret = 0;

    e2_lock(img);
    if (img->quota)
        ret = room_locked(img, ids, ~0u, &room_space, &room_inodes);
    if (img->quota && !ret && (room_inodes < 1 || room_space < space))
        ret = -EDQUOT;
    e2_unlock(img);
    return ret;
}

int e2_quota_may_transfer(struct e2_image *img, uint32_t ino, const struct e2_attr *from,
                          const struct e2_attr *to)
{
    uint32_t ids[E2_QUOTA_TYPES] = {to->uid, to->gid, to->projid};
    unsigned mask = (from->uid != to->uid ? 1u << E2_QUOTA_USER : 0) |
                    (from->gid != to->gid ? 1u << E2_QUOTA_GROUP : 0) |
                    (from->projid != to->projid ? 1u << E2_QUOTA_PROJECT : 0);
    uint64_t room_space, room_inodes;
    int64_t refs = 0;
    int ret = 0;

    e2_lock(img);
    if (img->quota && mask)
        ret = ea_refs_on_disk(img, ino, &refs);
    if (img->quota && mask && !ret)
        ret = room_locked(img, ids, mask, &room_space, &room_inodes);
    if (img->quota && mask && !ret &&
        (room_inodes < 1 + (uint64_t)refs || room_space < from->blocks * 512))
        ret = -EDQUOT;
    e2_unlock(img);
    return ret;
}

int e2_quota_may_write(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t *size)
{
    struct ext2_inode_large in;
    uint32_t ids[E2_QUOTA_TYPES];
    uint64_t bs, room, room_inodes, charged = 0;
    blk64_t first, last, pblk;
    int ret;

    e2_lock(img);
    if (!img->quota || !*size) {
        ret = 0;
        goto out_unlock;
    }
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    ids[E2_QUOTA_USER] = inode_uid(in);
    ids[E2_QUOTA_GROUP] = inode_gid(in);
    ids[E2_QUOTA_PROJECT] = projid_of(&in);
    ret = room_locked(img, ids, ~0u, &room, &room_inodes);
    if (ret || room == UINT64_MAX)
        goto out_unlock;
    bs = img->fs->blocksize;
    first = off / bs;
    last = (off + *size - 1) / bs;
    /* Block by block, as ext4 reserves them: the write stops at the first
     * new block that does not fit. */
    for (blk64_t b = first; b <= last; b++) {
        pblk = 0;
        if (!(in.i_flags & EXT4_INLINE_DATA_FL)) {
            ret = e2_errno(
                ext2fs_bmap2(img->fs, ino, (struct ext2_inode *)&in, NULL, 0, b, NULL, &pblk));
            if (ret)
                goto out_unlock;
        }
        if (pblk)
            continue;
        charged += bs;
        if (charged > room) {
            if (b == first) {
                ret = -EDQUOT;
            } else {
                *size = b * bs - off;
            }
            break;
        }
    }
out_unlock:
    e2_unlock(img);
    return ret;
}

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
 * The files are the kernel's QFMT_VFS_V1 trees, read and written by
 * qtree.c; entries falling to zero usage are kept.
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
#include "e2/qtree.h"
#include "base/log.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Ids recently found or given an entry, per type: entries are never
 * removed while the image is open, so one seen once needs no lookup. */
#define QT_KNOWN 8

struct e2_quota {
    struct qt_file f[E2_QUOTA_TYPES];
    struct {
        uint32_t id[QT_KNOWN];
        unsigned n, next; /* slots filled; the one to replace next */
    } known[E2_QUOTA_TYPES];
    bool whole; /* the inode being written is a whole ext2_inode_large */
    bool fresh; /* ... and a new one: nothing was charged for its slot */
    /* e2_quota_hold_ea_inode_locked(): the inode whose xattr a caller held
     * to limits is setting (0: none), and the value's size. */
    uint32_t held_ino;
    size_t held_len;
};

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
    uint64_t cur = add_clamped(e2_qt_get64(e + cur_off), d);

    e2_qt_put64(e + cur_off, cur);
    if (d > 0 && soft && cur > soft && !e2_qt_get64(e + time_off))
        e2_qt_put64(e + time_off, now + grace);
    else if (d < 0 && cur <= soft)
        e2_qt_put64(e + time_off, 0);
}

/* Add one type's differences to its file. */
static int flush_file(ext2_filsys fs, int type, struct qt_file *f)
{
    unsigned char buf[E2_QT_BLKSIZE];
    struct e2_qtree qt;
    uint32_t blk;
    unsigned off;
    uint64_t now = (uint64_t)time(NULL);
    int ret, cret;

    if (!f->n)
        return 0;
    ret = e2_qtree_open(&qt, fs, type, f->inum);
    if (ret)
        return ret;
    while (f->n) {
        struct qt_delta *d = &f->d[f->n - 1];

        if (d->space || d->inodes) {
            ret = e2_qtree_find(&qt, d->id, &blk, &off);
            if (!ret && !blk)
                ret = e2_qtree_insert(&qt, d->id, &blk, &off);
            if (!ret)
                ret = e2_qtree_read_block(&qt, blk, buf);
            if (ret)
                break;
            unsigned char *e = buf + off;
            charge_entry(e, E2_DQ_CURSPACE, E2_DQ_BTIME,
                         e2_qt_get64(e + E2_DQ_BSOFT) * E2_QT_BLKSIZE, d->space,
                         e2_qtree_grace(&qt, false), now);
            charge_entry(e, E2_DQ_CURINODES, E2_DQ_ITIME, e2_qt_get64(e + E2_DQ_ISOFT), d->inodes,
                         e2_qtree_grace(&qt, true), now);
            e2_qtree_keep_entry(e);
            ret = e2_qtree_write_block(&qt, blk, buf);
            if (ret)
                break;
        }
        f->n--;
    }
    cret = e2_qtree_close(&qt);
    return ret ? ret : cret;
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

static int may_add_ea_inode_locked(struct e2_image *img, struct e2_quota *q);

/* An EA inode being created: libext2fs writes it, linked, (three times)
 * before it marks it in the inode bitmap, so its first write is the point
 * where a refusal leaves nothing changed (xattr_create_ea_inode fails, and
 * so ext2fs_xattr_set before it writes the xattrs). One being freed is
 * written unmarked too, but unlinked. */
static bool is_new_ea_inode(ext2_filsys fs, ext2_ino_t ino, const struct ext2_inode *inode)
{
    return (inode->i_flags & EXT4_EA_INODE_FL) && inode->i_links_count &&
           !ext2fs_test_inode_bitmap2(fs->inode_map, ino);
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

    if (q->held_ino && is_new_ea_inode(fs, ino, inode)) {
        ret = may_add_ea_inode_locked(img, q);
        if (ret)
            return (errcode_t)-ret; /* an errno, which e2_errno passes through */
    }
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
    struct e2_qtree qt;
    int ret = 0;

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
        struct ext2_inode_large in;

        if (!inum)
            continue;
        ret = inum > fs->super->s_inodes_count ? -EUCLEAN : e2_qtree_open(&qt, fs, t, inum);
        /* Usage is written into its blocks in place: none may be in the
         * system zone (blocks it gains later come from the allocator). */
        if (!ret) {
            e2_lock(img);
            ret = e2_read_inode_locked(img, inum, &in);
            if (!ret)
                ret = e2_sysz_check_free_locked(img, inum, &in, 0, ~0ULL);
            e2_unlock(img);
        }
        if (ret) {
            e2_say(why, why_len, "the %s quota file (inode %u) of '%s' is unusable: %s", qt_name[t],
                   inum, img->path, strerror(-ret));
            break;
        }
    }
    if (ret) {
        free(q);
        return ret;
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

static bool is_known(const struct e2_quota *q, int t, uint32_t id)
{
    for (unsigned i = 0; i < q->known[t].n; i++) {
        if (q->known[t].id[i] == id)
            return true;
    }
    return false;
}

static void know(struct e2_quota *q, int t, uint32_t id)
{
    if (is_known(q, t, id))
        return;
    if (q->known[t].n < QT_KNOWN) {
        q->known[t].id[q->known[t].n++] = id;
        return;
    }
    q->known[t].id[q->known[t].next] = id;
    q->known[t].next = (q->known[t].next + 1) % QT_KNOWN;
}

/* The entry of @id in the open quota file @qt of type @t, made now if it
 * has none (dquot_acquire: the kernel writes a new id's entry when an
 * operation first charges it, and fails the operation if it cannot). At
 * the flush before the commit it would be too late: on a full file system
 * the entry could not be made, and every commit would fail. Here, outside
 * the flush, the blocks held until the commit are not lent, so a full file
 * system fails the operation with -ENOSPC, before it changes anything.
 * An insert that fails part way may leave new tree blocks that lead to no
 * entry: a valid tree, which a later insert continues. */
static int entry_made_locked(struct e2_image *img, struct e2_qtree *qt, int t, uint32_t id,
                             uint32_t *blk, unsigned *off)
{
    int ret = e2_qtree_find(qt, id, blk, off);

    if (ret || *blk)
        return ret;
    if (img->read_only)
        return -EROFS;
    ret = e2_qtree_insert(qt, id, blk, off);
    /* ENOSPC is the operation's answer, as any full file system's. */
    if (ret && ret != -ENOSPC)
        log_err("'%s': no %s quota entry for id %u: %s", img->path, qt_name[t], id, strerror(-ret));
    return ret;
}

/* The limits of @id's entry at @off in @buf, less its usage and what is
 * pending for it in @f: the bytes and inodes it may still be charged. */
static void entry_room(const struct qt_file *f, uint32_t id, const unsigned char *e,
                       uint64_t *space, uint64_t *inodes)
{
    uint64_t now = (uint64_t)time(NULL);
    uint64_t bhard, ihard, cur_space, cur_inodes;

    bhard = limit_now(e2_qt_get64(e + E2_DQ_BHARD), e2_qt_get64(e + E2_DQ_BSOFT),
                      e2_qt_get64(e + E2_DQ_BTIME), now) *
            E2_QT_BLKSIZE;
    ihard = limit_now(e2_qt_get64(e + E2_DQ_IHARD), e2_qt_get64(e + E2_DQ_ISOFT),
                      e2_qt_get64(e + E2_DQ_ITIME), now);
    cur_space = e2_qt_get64(e + E2_DQ_CURSPACE);
    cur_inodes = e2_qt_get64(e + E2_DQ_CURINODES);
    for (size_t i = 0; i < f->n; i++) {
        if (f->d[i].id == id) {
            cur_space = add_clamped(cur_space, f->d[i].space);
            cur_inodes = add_clamped(cur_inodes, f->d[i].inodes);
        }
    }
    if (bhard && bhard - (cur_space < bhard ? cur_space : bhard) < *space)
        *space = bhard - (cur_space < bhard ? cur_space : bhard);
    if (ihard && ihard - (cur_inodes < ihard ? cur_inodes : ihard) < *inodes)
        *inodes = ihard - (cur_inodes < ihard ? cur_inodes : ihard);
}

/* The bytes @ids may still be charged before a block limit, and the
 * inodes before an inode limit (UINT64_MAX: no limit), for the types in
 * the bit @mask: hard limits, and soft ones whose grace has ended; none
 * unless @limits. With @make, an id without an entry gets one first. */
static int room_locked(struct e2_image *img, const uint32_t ids[E2_QUOTA_TYPES], unsigned mask,
                       bool make, bool limits, uint64_t *space, uint64_t *inodes)
{
    struct e2_quota *q = img->quota;
    unsigned char buf[E2_QT_BLKSIZE];
    struct e2_qtree qt;
    uint32_t blk;
    unsigned off;
    int ret, cret;

    *space = *inodes = UINT64_MAX;
    for (int t = 0; t < E2_QUOTA_TYPES; t++) {
        struct qt_file *f = &q->f[t];

        if (!f->inum || !(mask & (1u << t)) || (!limits && is_known(q, t, ids[t])))
            continue;
        ret = e2_qtree_open(&qt, img->fs, t, f->inum);
        if (ret)
            return ret;
        if (make)
            ret = entry_made_locked(img, &qt, t, ids[t], &blk, &off);
        else
            ret = e2_qtree_find(&qt, ids[t], &blk, &off);
        cret = e2_qtree_close(&qt); /* an insert changed the header */
        ret = ret ? ret : cret;
        if (!ret && blk && limits)
            ret = e2_qtree_read_block(&qt, blk, buf);
        if (ret)
            return ret;
        if (blk)
            know(q, t, ids[t]);
        if (blk && limits)
            entry_room(f, ids[t], buf + off, space, inodes);
    }
    return 0;
}

/* Whether the ids of inode @ino may be charged @inodes more inodes and
 * @space more bytes: -EDQUOT past a hard limit or a soft one whose grace
 * has ended, of any type. */
static int may_charge_locked(struct e2_image *img, uint32_t ino, uint64_t inodes, uint64_t space)
{
    struct ext2_inode_large in;
    uint32_t ids[E2_QUOTA_TYPES];
    uint64_t room_space, room_inodes;
    int ret = e2_read_inode_locked(img, ino, &in);

    if (ret)
        return ret;
    ids[E2_QUOTA_USER] = inode_uid(in);
    ids[E2_QUOTA_GROUP] = inode_gid(in);
    ids[E2_QUOTA_PROJECT] = projid_of(&in);
    ret = room_locked(img, ids, ~0u, false, true, &room_space, &room_inodes);
    if (!ret && (room_inodes < inodes || room_space < space))
        ret = -EDQUOT;
    return ret;
}

/* ext4_xattr_inode_alloc_quota(): a new EA inode costs the ids of the
 * inode whose value it holds one inode and the value's clusters (held_len
 * also counts the xattr block the same change needs, if any: charged
 * after it, e2_quota_may_add_xattr_block_locked). Checked once per xattr
 * change (it creates one EA inode at most). */
static int may_add_ea_inode_locked(struct e2_image *img, struct e2_quota *q)
{
    ext2_filsys fs = img->fs;
    uint64_t cluster = (uint64_t)fs->blocksize << fs->cluster_ratio_bits;
    uint64_t need = (q->held_len + cluster - 1) / cluster * cluster;
    uint32_t ino = q->held_ino;

    q->held_ino = 0;
    return may_charge_locked(img, ino, 1, need);
}

int e2_quota_may_add_xattr_block_locked(struct e2_image *img, uint32_t ino)
{
    ext2_filsys fs = img->fs;

    assert(mutex_is_held(&img->disk_lock));
    if (!img->quota)
        return 0;
    return may_charge_locked(img, ino, 0, (uint64_t)fs->blocksize << fs->cluster_ratio_bits);
}

void e2_quota_hold_ea_inode_locked(struct e2_image *img, uint32_t ino, size_t len)
{
    assert(mutex_is_held(&img->disk_lock));
    if (img->quota) {
        img->quota->held_ino = ino;
        img->quota->held_len = len;
    }
}

int e2_quota_may_create(struct e2_image *img, const struct e2_attr *a, uint64_t space, bool limits)
{
    uint32_t ids[E2_QUOTA_TYPES] = {a->uid, a->gid, a->projid};
    uint64_t room_space, room_inodes;
    int ret = 0;

    e2_lock(img);
    if (img->quota)
        ret = room_locked(img, ids, ~0u, true, limits, &room_space, &room_inodes);
    if (img->quota && !ret && (room_inodes < 1 || room_space < space))
        ret = -EDQUOT;
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

int e2_quota_may_transfer(struct e2_image *img, uint32_t ino, const struct e2_attr *from,
                          const struct e2_attr *to, bool limits)
{
    uint32_t ids[E2_QUOTA_TYPES] = {to->uid, to->gid, to->projid};
    unsigned mask = (from->uid != to->uid ? 1u << E2_QUOTA_USER : 0) |
                    (from->gid != to->gid ? 1u << E2_QUOTA_GROUP : 0) |
                    (from->projid != to->projid ? 1u << E2_QUOTA_PROJECT : 0);
    uint64_t room_space, room_inodes;
    int64_t refs = 0;
    int ret = 0;

    e2_lock(img);
    if (img->quota && mask && limits)
        ret = ea_refs_on_disk(img, ino, &refs);
    if (img->quota && mask && !ret)
        ret = room_locked(img, ids, mask, true, limits, &room_space, &room_inodes);
    if (img->quota && mask && !ret &&
        (room_inodes < 1 + (uint64_t)refs || room_space < from->blocks * 512))
        ret = -EDQUOT;
    e2_step_end_locked(img);
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
    ret = room_locked(img, ids, ~0u, false, true, &room, &room_inodes);
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

/* EA inodes (the ea_inode feature): xattr values too large for the inode
 * body or the xattr block live in inodes of their own (EXT4_EA_INODE_FL),
 * which count their references in i_ctime and i_version. libext2fs creates,
 * reads and drops them when an xattr is set or removed; two rules of the
 * kernel's are left to us, and e2fsck checks both (a third, the EA inode's
 * owner, matters to quota):
 *  - the owner pays: every reference to an EA inode adds the value's size,
 *    rounded up to clusters, to the referencing inode's i_blocks (the
 *    kernel charges it to the owner's quota, which moves i_blocks);
 *  - freeing an inode drops the references of its xattrs: those in the
 *    inode body, and those in its xattr block when this inode held the
 *    block's last reference (a shared block's entries are referenced once
 *    per block, not per inode sharing it);
 *  - a new EA inode is owned by the owner of the inode it serves, and each
 *    reference is one more inode charged to the owner's quota (quota.c).
 * Unlike the kernel, uext4 does not share one EA inode between equal values
 * (it only keeps the references of those it finds right). */
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*ea_ref_fn)(struct e2_image *img, uint32_t inum, uint32_t size, bool last_ref,
                         void *arg);

/* Call @fn for each entry between @start and @end whose value is in an EA
 * inode; @last_ref says whether this inode's reference to the entry is the
 * last (always, in the inode body). */
static int walk_entries(struct e2_image *img, char *start, char *end, bool last_ref, ea_ref_fn fn,
                        void *arg)
{
    struct ext2_ext_attr_entry *e = (void *)start;
    int ret;

    while ((char *)e + sizeof(uint32_t) <= end && !EXT2_EXT_IS_LAST_ENTRY(e)) {
        if ((char *)e + sizeof(*e) > end || (char *)EXT2_EXT_ATTR_NEXT(e) > end)
            return -EUCLEAN;
        if (e->e_value_inum) {
            if (e->e_value_inum > img->fs->super->s_inodes_count)
                return -EUCLEAN;
            ret = fn(img, e->e_value_inum, e->e_value_size, last_ref, arg);
            if (ret)
                return ret;
        }
        e = EXT2_EXT_ATTR_NEXT(e);
    }
    return 0;
}

/* Every EA inode reference of inode @ino, in its body and its block. */
static int walk_locked(struct e2_image *img, uint32_t ino, ea_ref_fn fn, void *arg)
{
    ext2_filsys fs = img->fs;
    unsigned isize = EXT2_INODE_SIZE(fs->super);
    struct ext2_ext_attr_header *hdr;
    struct ext2_inode_large *in;
    char *ibuf, *bbuf = NULL;
    blk64_t blk;
    int ret;

    ibuf = calloc(1, isize > sizeof(*in) ? isize : sizeof(*in));
    if (!ibuf)
        return -ENOMEM;
    in = (void *)ibuf;
    ret = e2_errno(ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)in, isize));
    if (ret)
        goto out;
    if (isize > EXT2_GOOD_OLD_INODE_SIZE && in->i_extra_isize >= sizeof(in->i_extra_isize) &&
        isize > EXT2_GOOD_OLD_INODE_SIZE + in->i_extra_isize + sizeof(uint32_t)) {
        char *magic = ibuf + EXT2_GOOD_OLD_INODE_SIZE + in->i_extra_isize;

        if (in->i_extra_isize & 3) {
            ret = -EUCLEAN;
            goto out;
        }
        if (*(uint32_t *)magic == EXT2_EXT_ATTR_MAGIC) {
            ret = walk_entries(img, magic + sizeof(uint32_t), ibuf + isize, true, fn, arg);
            if (ret)
                goto out;
        }
    }
    blk = ext2fs_file_acl_block(fs, (struct ext2_inode *)in);
    if (!blk)
        goto out;
    if (blk < fs->super->s_first_data_block || blk >= ext2fs_blocks_count(fs->super)) {
        ret = -EUCLEAN;
        goto out;
    }
    bbuf = malloc(fs->blocksize);
    if (!bbuf) {
        ret = -ENOMEM;
        goto out;
    }
    ret = e2_errno(ext2fs_read_ext_attr3(fs, blk, bbuf, ino));
    if (ret)
        goto out;
    hdr = (void *)bbuf;
    if (hdr->h_magic != EXT2_EXT_ATTR_MAGIC) {
        ret = -EUCLEAN;
        goto out;
    }
    ret =
        walk_entries(img, bbuf + sizeof(*hdr), bbuf + fs->blocksize, hdr->h_refcount <= 1, fn, arg);
out:
    free(bbuf);
    free(ibuf);
    return ret;
}

/* What one reference costs its owner, in file system blocks. */
static uint64_t charge_blocks(ext2_filsys fs, uint32_t size)
{
    uint64_t cluster = (uint64_t)fs->blocksize << fs->cluster_ratio_bits;

    return (size + cluster - 1) / cluster * EXT2FS_CLUSTER_RATIO(fs);
}

static int note_ref(struct e2_image *img, uint32_t inum, uint32_t size, bool last_ref, void *arg)
{
    struct e2_ea_refs *r = arg;

    r->charge += charge_blocks(img->fs, size);
    if (r->n == r->cap) {
        unsigned cap = r->cap ? 2 * r->cap : 8;
        uint32_t *p = realloc(r->inums, cap * sizeof(*p));

        if (!p)
            return -ENOMEM;
        r->inums = p;
        r->cap = cap;
    }
    r->inums[r->n++] = inum;
    return 0;
}

int e2_ea_refs_get_locked(struct e2_image *img, uint32_t ino, struct e2_ea_refs *r)
{
    memset(r, 0, sizeof(*r));
    if (!ext2fs_has_feature_ea_inode(img->fs->super))
        return 0;
    return walk_locked(img, ino, note_ref, r);
}

void e2_ea_refs_free(struct e2_ea_refs *r)
{
    free(r->inums);
    memset(r, 0, sizeof(*r));
}

static bool has_inum(const struct e2_ea_refs *r, uint32_t inum)
{
    for (unsigned i = 0; i < r->n; i++) {
        if (r->inums[i] == inum)
            return true;
    }
    return false;
}

/* An EA inode libext2fs has just created belongs to root; the kernel gives
 * it the owner of the inode whose value it holds (whose quota pays). */
static int set_owner_locked(struct e2_image *img, uint32_t inum, const struct ext2_inode_large *of)
{
    struct ext2_inode_large ea;
    int ret = e2_read_inode_locked(img, inum, &ea);

    if (ret)
        return ret;
    ea.i_uid = of->i_uid;
    ea.osd2.linux2.l_i_uid_high = of->osd2.linux2.l_i_uid_high;
    ea.i_gid = of->i_gid;
    ea.osd2.linux2.l_i_gid_high = of->osd2.linux2.l_i_gid_high;
    return e2_write_inode_locked(img, inum, &ea);
}

int e2_ea_refs_update_locked(struct e2_image *img, uint32_t ino, const struct e2_ea_refs *before)
{
    struct ext2_inode_large in;
    struct e2_ea_refs after;
    errcode_t err = 0;
    int ret;

    if (!ext2fs_has_feature_ea_inode(img->fs->super))
        return 0;
    ret = e2_ea_refs_get_locked(img, ino, &after);
    if (ret)
        goto out;
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out;
    for (unsigned i = 0; i < after.n && !ret; i++) {
        if (!has_inum(before, after.inums[i]))
            ret = set_owner_locked(img, after.inums[i], &in);
    }
    if (!ret)
        ret = e2_quota_charge_ea_refs_locked(img, ino, &in, (int64_t)after.n - (int64_t)before->n);
    if (ret || after.charge == before->charge)
        goto out;
    if (after.charge > before->charge)
        err = ext2fs_iblk_add_blocks(img->fs, (struct ext2_inode *)&in,
                                     after.charge - before->charge);
    else
        err = ext2fs_iblk_sub_blocks(img->fs, (struct ext2_inode *)&in,
                                     before->charge - after.charge);
    ret = err ? e2_errno(err) : e2_write_inode_locked(img, ino, &in);
out:
    e2_ea_refs_free(&after);
    return ret;
}

/* Drop one reference to EA inode @inum, freeing it with the last. */
static int drop_ref(struct e2_image *img, uint32_t inum, uint32_t size, bool last_ref, void *arg)
{
    struct ext2_inode_large ea;
    uint64_t refs;
    int ret;

    if (!last_ref)
        return 0;
    ret = e2_read_inode_locked(img, inum, &ea);
    if (ret)
        return ret;
    if (!(ea.i_flags & EXT4_EA_INODE_FL) || ea.i_links_count == 0)
        return -EUCLEAN;
    refs = ext2fs_get_ea_inode_ref((struct ext2_inode *)&ea);
    if (refs > 1) {
        ext2fs_set_ea_inode_ref((struct ext2_inode *)&ea, refs - 1);
        return e2_write_inode_locked(img, inum, &ea);
    }
    ext2fs_set_ea_inode_ref((struct ext2_inode *)&ea, 0);
    if (ext2fs_inode_has_valid_blocks2(img->fs, (struct ext2_inode *)&ea)) {
        ret = e2_punch_locked(img, inum, &ea, 0, ~0ULL);
        if (ret)
            return ret;
    }
    ea.i_links_count = 0;
    ea.i_dtime = (uint32_t)time(NULL);
    ret = e2_write_inode_locked(img, inum, &ea);
    if (ret)
        return ret;
    ext2fs_inode_alloc_stats2(img->fs, inum, -1, 0);
    return 0;
}

int e2_ea_inodes_release_locked(struct e2_image *img, uint32_t ino)
{
    if (!ext2fs_has_feature_ea_inode(img->fs->super))
        return 0;
    return walk_locked(img, ino, drop_ref, NULL);
}

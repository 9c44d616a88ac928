/* Where a changed xattr will go: whether a set needs an xattr block the
 * inode does not own alone (a new one, or a copy of a shared one), which
 * the kernel charges to the owner's block quota and refuses at a limit
 * (ext4_xattr_block_set: ext4_new_meta_blocks -> dquot_alloc_block).
 *
 * Why predicted and not caught at the allocation: libext2fs (1.47,
 * ext2fs_xattr_set) changes the image before it allocates the block: it
 * creates the new value's EA inode, drops a reference to the old one's
 * (freeing it with the last) and decrements a shared block's count. A
 * refusal there would leave those done. So the layout rules of
 * ext2fs_xattr_set and xattr_array_update are applied here to the entries
 * on disk, before anything is changed:
 *  - an entry costs EXT2_EXT_ATTR_LEN(short name) plus, unless its value
 *    is in an EA inode, EXT2_EXT_ATTR_SIZE(value);
 *  - the named entry's own space is free to it where it is;
 *  - it goes into the inode body if it fits there, else into the block if
 *    it fits, else (ea_inode) again with the value in an EA inode; a value
 *    longer than a block's room goes to an EA inode from the start;
 *  - an unchanged value outside an EA inode changes nothing. */
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* libext2fs's name prefixes (ext_attr.c ea_names), longest match first. */
static const struct {
    unsigned index;
    const char *prefix;
} xf_prefix[] = {
    {10, "gnu."},
    {3, "system.posix_acl_default"},
    {2, "system.posix_acl_access"},
    {8, "system.richacl"},
    {6, "security."},
    {4, "trusted."},
    {7, "system."},
    {1, "user."},
};

/* The named entry, as found in one area (the inode body or the block). */
struct xf_area {
    int free;      /* bytes left for entries and values */
    unsigned n;    /* entries */
    bool has_old;  /* the named entry is here */
    int old_space; /* what it takes */
    bool old_same; /* its value is the new one, not in an EA inode */
};

struct xf_name {
    unsigned index;
    const char *s; /* the short name */
    size_t len;
    const void *val;
    size_t val_len; /* as stored: ACLs shrink (ext4_acl format) */
};

static void split_name(const char *name, struct xf_name *n)
{
    n->index = 0;
    n->s = name;
    for (size_t i = 0; i < sizeof(xf_prefix) / sizeof(xf_prefix[0]); i++) {
        size_t pl = strlen(xf_prefix[i].prefix);

        if (!strncmp(name, xf_prefix[i].prefix, pl)) {
            n->index = xf_prefix[i].index;
            n->s = name + pl;
            break;
        }
    }
    n->len = strlen(n->s);
}

/* A POSIX ACL in ext4's format, as libext2fs stores it: a 4-byte header
 * (version 1), then each entry as tag and perm (4 bytes) and, for
 * ACL_USER and ACL_GROUP only, the id (8 bytes). @out NULL: the size only.
 * -EINVAL: not an ACL, which the set then refuses by itself. */
static int acl_to_disk(const unsigned char *v, size_t len, unsigned char *out)
{
    size_t n = 4;

    if (len < 4 || (len - 4) % 8)
        return -EINVAL;
    if (out)
        memcpy(out, "\x01\0\0\0", 4);
    for (size_t off = 4; off < len; off += 8) {
        unsigned tag = v[off] | (unsigned)v[off + 1] << 8;
        size_t ent = (tag == 0x02 || tag == 0x08) ? 8 : 4;

        if (out)
            memcpy(out + n, v + off, ent);
        n += ent;
    }
    return (int)n;
}

/* Sum the entries between @start and @end (values at @vbase + offset) and
 * find @nm among them. -EUCLEAN when an entry runs past @end. */
static int scan(char *start, char *end, char *vbase, const struct xf_name *nm, struct xf_area *a)
{
    struct ext2_ext_attr_entry *e = (void *)start;
    int used = 0, space;

    while ((char *)e + sizeof(uint32_t) <= end && !EXT2_EXT_IS_LAST_ENTRY(e)) {
        if ((char *)e + sizeof(*e) > end || (char *)EXT2_EXT_ATTR_NEXT(e) > end)
            return -EUCLEAN;
        space = EXT2_EXT_ATTR_LEN(e->e_name_len) +
                (e->e_value_inum ? 0 : EXT2_EXT_ATTR_SIZE(e->e_value_size));
        used += space;
        a->n++;
        if (e->e_name_index == nm->index && e->e_name_len == nm->len &&
            !memcmp(e + 1, nm->s, nm->len)) {
            a->has_old = true;
            a->old_space = space;
            a->old_same = nm->val && !e->e_value_inum && e->e_value_size == nm->val_len &&
                          vbase + e->e_value_offs + nm->val_len <= end &&
                          !memcmp(vbase + e->e_value_offs, nm->val, nm->val_len);
        }
        e = EXT2_EXT_ATTR_NEXT(e);
    }
    a->free -= used;
    return 0;
}

/* The inode body's area (ext2fs_xattr_set's ibody_free). */
static int scan_body(ext2_filsys fs, char *ibuf, const struct xf_name *nm, struct xf_area *a)
{
    struct ext2_inode_large *in = (void *)ibuf;
    unsigned isize = EXT2_INODE_SIZE(fs->super);
    unsigned extra = in->i_extra_isize;
    char *magic;

    if (isize <= EXT2_GOOD_OLD_INODE_SIZE)
        return 0;
    if (!extra)
        extra = fs->super->s_want_extra_isize ? fs->super->s_want_extra_isize : 4;
    a->free = (int)isize - EXT2_GOOD_OLD_INODE_SIZE - (int)extra - 8;
    if (!in->i_extra_isize || (extra & 3) ||
        isize <= EXT2_GOOD_OLD_INODE_SIZE + extra + sizeof(uint32_t))
        return 0;
    magic = ibuf + EXT2_GOOD_OLD_INODE_SIZE + extra;
    if (*(uint32_t *)magic != EXT2_EXT_ATTR_MAGIC)
        return 0;
    return scan(magic + 4, ibuf + isize, magic + 4, nm, a);
}

enum xf_block { XF_NONE, XF_OWNED, XF_SHARED };

/* The block's area; *@state: whether the inode has one, its own or shared. */
static int scan_block(ext2_filsys fs, uint32_t ino, blk64_t blk, const struct xf_name *nm,
                      struct xf_area *a, enum xf_block *state)
{
    struct ext2_ext_attr_header *hdr;
    char *buf;
    int ret;

    a->free = (int)fs->blocksize - (int)sizeof(*hdr) - 4;
    *state = XF_NONE;
    if (!blk)
        return 0;
    buf = malloc(fs->blocksize);
    if (!buf)
        return -ENOMEM;
    ret = e2_errno(ext2fs_read_ext_attr3(fs, blk, buf, ino));
    hdr = (void *)buf;
    if (!ret && hdr->h_magic != EXT2_EXT_ATTR_MAGIC)
        ret = -EUCLEAN;
    if (!ret) {
        *state = hdr->h_refcount == 1 ? XF_OWNED : XF_SHARED;
        ret = scan(buf + sizeof(*hdr), buf + fs->blocksize, buf, nm, a);
    }
    free(buf);
    return ret;
}

/* xattr_array_update(): 0 into the body, 1 into the block, -1 no room. */
static int place(const struct xf_name *nm, const struct xf_area *body, const struct xf_area *blk,
                 bool in_ea_inode)
{
    int needed = EXT2_EXT_ATTR_LEN(nm->len) + (in_ea_inode ? 0 : EXT2_EXT_ATTR_SIZE(nm->val_len));

    if (needed <= body->free + (body->has_old ? body->old_space : 0))
        return 0;
    return needed <= blk->free + (blk->has_old ? blk->old_space : 0) ? 1 : -1;
}

/* Apply the rules to the two areas; *@needs as e2_xattr_needs_block_locked.
 * A shared block is copied when the change is in it (the entry was there
 * or goes there), as the kernel clones it; libext2fs also copies it for a
 * change in the inode body alone, which the kernel does not and which
 * changes no i_blocks, so it is charged nothing here either. */
static void decide(ext2_filsys fs, const struct xf_name *nm, const struct xf_area *body,
                   const struct xf_area *blk, enum xf_block state, bool *needs)
{
    bool ea = ext2fs_has_feature_ea_inode(fs->super);
    bool in_ea_inode = ea && nm->val_len > fs->blocksize - EXT2_EXT_ATTR_LEN(3) -
                                               sizeof(struct ext2_ext_attr_header) - 4;
    int where = place(nm, body, blk, in_ea_inode);
    unsigned in_block;

    if (where < 0 && !in_ea_inode && ea)
        where = place(nm, body, blk, true);
    if (where < 0 || (body->has_old && body->old_same) || (blk->has_old && blk->old_same))
        return; /* refused for room, or nothing to write */
    in_block = blk->n - (blk->has_old ? 1 : 0) + (where == 1 ? 1 : 0);
    if (state == XF_NONE)
        *needs = in_block > 0;
    else if (state == XF_SHARED)
        *needs = in_block > 0 && (blk->has_old || where == 1);
}

int e2_xattr_needs_block_locked(struct e2_image *img, uint32_t ino, const char *name,
                                const void *val, size_t len, bool *needs)
{
    ext2_filsys fs = img->fs;
    unsigned isize = EXT2_INODE_SIZE(fs->super);
    struct xf_area body = {0}, blk = {0};
    struct xf_name nm = {.val = val, .val_len = len};
    enum xf_block state;
    unsigned char *acl = NULL;
    char *ibuf;
    int ret;

    *needs = false;
    split_name(name, &nm);
    if (!strcmp(name, "system.data"))
        return 0; /* the inode body only */
    if (nm.index == 2 || nm.index == 3) {
        /* Compared as stored, so that an unchanged ACL is seen as one. */
        ret = acl_to_disk(val, len, NULL);
        if (ret < 0)
            return 0;
        nm.val_len = (size_t)ret;
        nm.val = acl = malloc(nm.val_len);
        if (!acl)
            return -ENOMEM;
        acl_to_disk(val, len, acl);
    }
    ibuf = calloc(1, isize > sizeof(struct ext2_inode_large) ? isize
                                                             : sizeof(struct ext2_inode_large));
    if (!ibuf) {
        free(acl);
        return -ENOMEM;
    }
    ret = e2_errno(ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)ibuf, isize));
    if (!ret)
        ret = scan_body(fs, ibuf, &nm, &body);
    if (!ret)
        ret = scan_block(fs, ino, ext2fs_file_acl_block(fs, (struct ext2_inode *)ibuf), &nm, &blk,
                         &state);
    if (!ret)
        decide(fs, &nm, &body, &blk, state, needs);
    free(ibuf);
    free(acl);
    return ret;
}

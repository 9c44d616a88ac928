/* The ioctls FUSE forwards that ext4 answers: file attributes (lsattr,
 * chattr: FS_IOC_GETFLAGS/SETFLAGS, FS_IOC_FSGETXATTR/FSSETXATTR), the
 * inode generation (FS_IOC_GETVERSION), FITRIM, the volume label
 * (FS_IOC_GETFSLABEL/SETFSLABEL, e.g. `xfs_io -c label`), and fs-verity's
 * FS_IOC_ENABLE_VERITY and FS_IOC_MEASURE_VERITY, the online grow
 * EXT4_IOC_RESIZE_FS (`resize2fs IMAGE` while it is mounted), the journal
 * flush EXT4_IOC_CHECKPOINT, the boot loader swap EXT4_IOC_SWAP_BOOT,
 * and EXT4_IOC_PRECACHE_EXTENTS and EXT4_IOC_CLEAR_ES_CACHE, which only
 * touch caches. Why the other ext4
 * and VFS ioctls cannot reach us, or are refused, is the README's
 * (Features, ioctls): those the kernel declares with a direction or size
 * other than what ext4 copies (GETSTATE, SHUTDOWN, GETFSUUID/SETFSUUID,
 * the fscrypt ones), variable-length ones (GETFSMAP, GET_ES_CACHE), and
 * MOVE_EXT, whose donor is a descriptor of the caller.
 *
 * fs-verity (Linux 6.10+ fs/fuse/ioctl.c): the kernel sizes the two
 * verity ioctls itself, still restricted: ENABLE's input is the struct
 * fsverity_enable_arg followed by the salt and then the signature it
 * points to; MEASURE's input and output are the struct fsverity_digest
 * header and as many digest bytes as the caller's digest_size. No
 * FUSE_IOCTL_* flag is needed. FS_IOC_READ_VERITY_METADATA is not
 * special-cased: only its 40-byte argument would come, never the buffer
 * its buf_ptr names, so it is ENOTTY here (fsverity dump_metadata cannot
 * work over FUSE).
 *
 * All are restricted ioctls: the kernel sizes the argument from the
 * command and copies it in and out itself. The attribute ioctls do not
 * come from the caller as such: the kernel's VFS turns them into its own
 * fileattr calls (checking ownership and CAP_LINUX_IMMUTABLE with the
 * caller's real capabilities) and FUSE sends them to us with a 4-byte
 * flags word or a struct fsxattr. Anything else is -ENOTTY, as ext4
 * answers an ioctl it does not know. */
#include "frontend/fe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/fscrypt.h>
#include <linux/fsverity.h>
#include <string.h>
#include <sys/ioctl.h>

/* ext4's own commands (fs/ext4/ext4.h; in no uapi header). RESIZE_FS:
 * the new block count, 8 bytes in; CHECKPOINT: its flags, 4 bytes in;
 * the other two carry nothing. */
#define FE_EXT4_IOC_RESIZE_FS        _IOW('f', 16, uint64_t)
#define FE_EXT4_IOC_SWAP_BOOT        _IO('f', 17)
#define FE_EXT4_IOC_PRECACHE_EXTENTS _IO('f', 18)
#define FE_EXT4_IOC_CLEAR_ES_CACHE   _IO('f', 40)
#define FE_EXT4_IOC_CHECKPOINT       _IOW('f', 43, uint32_t)
/* EXT4_IOC_GETVERSION: FS_IOC_GETVERSION's older name, 'f' 3. */
#define FE_EXT4_IOC_GETVERSION _IOR('f', 3, long)

/* ext4's i_flags that FS_IOC_FSGETXATTR shows as FS_XFLAG_* bits
 * (EXT4_FL_XFLAG_VISIBLE); FS_*_FL values are ext4's. */
static const struct {
    uint32_t fl, xfl;
} fe_xflags[] = {
    {FS_SYNC_FL, FS_XFLAG_SYNC},       {FS_IMMUTABLE_FL, FS_XFLAG_IMMUTABLE},
    {FS_APPEND_FL, FS_XFLAG_APPEND},   {FS_NODUMP_FL, FS_XFLAG_NODUMP},
    {FS_NOATIME_FL, FS_XFLAG_NOATIME}, {FS_PROJINHERIT_FL, FS_XFLAG_PROJINHERIT},
    {FS_DAX_FL, FS_XFLAG_DAX},
};

#define FE_NXFLAGS (sizeof(fe_xflags) / sizeof(fe_xflags[0]))

static uint32_t fe_flags_to_xflags(uint32_t flags)
{
    uint32_t x = 0;

    for (unsigned i = 0; i < FE_NXFLAGS; i++)
        x |= (flags & fe_xflags[i].fl) ? fe_xflags[i].xfl : 0;
    return x;
}

/* The new i_flags for FS_IOC_FSSETXATTR: the xflag-visible bits from
 * @xflags, the rest as they are. Other xflags are ignored, as ext4 does. */
static uint32_t fe_xflags_to_flags(uint32_t xflags, uint32_t old)
{
    uint32_t f = old;

    for (unsigned i = 0; i < FE_NXFLAGS; i++) {
        f &= ~fe_xflags[i].fl;
        f |= (xflags & fe_xflags[i].xfl) ? fe_xflags[i].fl : 0;
    }
    return f;
}

static void fe_getflags(fuse_req_t req, uint32_t ino, size_t out_size)
{
    struct uext4_fileattr fa;
    int rc = out_size < sizeof(uint32_t) ? -EINVAL : uext4_fileattr_get(fe_fs(req), ino, &fa);

    fe_reply_ioctl(req, rc, &fa.flags, sizeof(fa.flags));
}

static void fe_getversion(fuse_req_t req, uint32_t ino, size_t out_size)
{
    struct uext4_fileattr fa;
    int rc = out_size < sizeof(uint32_t) ? -EINVAL : uext4_fileattr_get(fe_fs(req), ino, &fa);

    /* ext4 stores an int through the long pointer: 4 bytes. */
    fe_reply_ioctl(req, rc, &fa.generation, sizeof(fa.generation));
}

static void fe_fsgetxattr(fuse_req_t req, uint32_t ino, size_t out_size)
{
    struct uext4_fileattr fa;
    struct fsxattr x;
    int rc = out_size < sizeof(x) ? -EINVAL : uext4_fileattr_get(fe_fs(req), ino, &fa);

    memset(&x, 0, sizeof(x));
    if (!rc) {
        x.fsx_xflags = fe_flags_to_xflags(fa.flags);
        x.fsx_projid = fa.projid;
    }
    fe_reply_ioctl(req, rc, &x, sizeof(x));
}

/* SETFLAGS (@x NULL: @flags) or FSSETXATTR (@x). The core changes the
 * ctime, but after IOCTL the kernel refreshes nothing: its cached
 * attributes are dropped, or stat(2) would show the old ctime until they
 * time out (fstests generic/277). */
static void fe_setattrs(fuse_req_t req, fuse_ino_t fino, const uint32_t *flags,
                        const struct fsxattr *x)
{
    uint32_t ino = fe_ext4_ino(fino);
    struct uext4_fileattr fa;
    struct fe_cred c;
    uint32_t nflags = 0;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_fileattr_get(fe_fs(req), ino, &fa);
    if (!rc)
        nflags = x ? fe_xflags_to_flags(x->fsx_xflags, fa.flags) : *flags;
    if (!rc)
        rc = uext4_fileattr_set(fe_fs(req), &c.cr, ino, nflags, x ? x->fsx_projid : fa.projid);
    fe_cred_release(&c);
    if (!rc)
        fe_inval_attr(req, fino);
    fe_reply_ioctl(req, rc, NULL, 0);
}

static void fe_fitrim(fuse_req_t req, const struct fstrim_range *in)
{
    struct fstrim_range r = *in;
    struct fe_cred c;
    uint64_t trimmed = 0;
    int rc;

    fe_cred_init(&c, req, false);
    rc = uext4_trim(fe_fs(req), &c.cr, r.start, r.len, r.minlen, &trimmed);
    fe_cred_release(&c);
    r.len = trimmed;
    fe_reply_ioctl(req, rc, &r, sizeof(r));
}

static void fe_getlabel(fuse_req_t req, size_t out_size)
{
    char buf[FSLABEL_MAX];
    int rc = out_size < sizeof(buf) ? -EINVAL : 0;

    /* ext4 copies out all FSLABEL_MAX bytes, NUL-padded. */
    memset(buf, 0, sizeof(buf));
    if (!rc)
        rc = uext4_label_get(fe_fs(req), buf);
    fe_reply_ioctl(req, rc, buf, sizeof(buf));
}

static void fe_setlabel(fuse_req_t req, const char *label)
{
    struct fe_cred c;
    int rc;

    fe_cred_init(&c, req, false);
    rc = uext4_label_set(fe_fs(req), &c.cr, label, FSLABEL_MAX);
    fe_cred_release(&c);
    fe_reply_ioctl(req, rc, NULL, 0);
}

/* FS_IOC_ENABLE_VERITY: the argument, then the salt and the signature.
 * The caller's descriptor's flags come from the open (fi->fh); without an
 * OPEN (no_open: nothing to check at open) it counts as read-only. */
static void fe_enable_verity(fuse_req_t req, fuse_ino_t fino, const struct fuse_file_info *fi,
                             const void *in, size_t in_size)
{
    const uint64_t zero[11] = {0};
    struct fsverity_enable_arg arg;
    struct uext4_verity_args va;
    const char *p = (const char *)in + sizeof(arg);
    int flags = (fi->fh & FE_FH_OPEN) ? (int)(uint32_t)fi->fh : O_RDONLY;
    struct fe_cred c;
    int rc;

    memcpy(&arg, in, sizeof(arg));
    if (in_size - sizeof(arg) < (uint64_t)arg.salt_size + arg.sig_size) {
        fe_reply_err(req, -EINVAL);
        return;
    }
    if (arg.version != 1 || arg.__reserved1 || memcmp(arg.__reserved2, zero, sizeof(zero))) {
        fe_reply_err(req, -EINVAL);
        return;
    }
    va = (struct uext4_verity_args){.hash_algorithm = arg.hash_algorithm,
                                    .block_size = arg.block_size,
                                    .salt = p,
                                    .salt_size = arg.salt_size,
                                    .sig = p + arg.salt_size,
                                    .sig_size = arg.sig_size};
    fe_cred_init(&c, req, false);
    rc = uext4_enable_verity(fe_fs(req), &c.cr, fe_ext4_ino(fino), flags, &va);
    fe_cred_release(&c);
    /* The flag shows in statx's attributes: drop the cached ones. */
    if (!rc)
        fe_inval_attr(req, fino);
    fe_reply_ioctl(req, rc, NULL, 0);
}

/* FS_IOC_MEASURE_VERITY: -EOVERFLOW when the caller's digest_size is too
 * small for the digest, as the kernel. */
static void fe_measure_verity(fuse_req_t req, uint32_t ino, const void *in, size_t in_size,
                              size_t out_size)
{
    char out[sizeof(struct fsverity_digest) + 64];
    struct fsverity_digest d;
    unsigned alg = 0;
    int rc;

    memcpy(&d, in, sizeof(d));
    (void)in_size;
    if (out_size < sizeof(d)) {
        fe_reply_err(req, -EINVAL);
        return;
    }
    rc = uext4_measure_verity(fe_fs(req), ino, &alg, out + sizeof(d), sizeof(out) - sizeof(d));
    if (rc >= 0 && (d.digest_size < rc || out_size < sizeof(d) + (size_t)rc))
        rc = -EOVERFLOW;
    if (rc >= 0) {
        d.digest_algorithm = (uint16_t)alg;
        d.digest_size = (uint16_t)rc;
        memcpy(out, &d, sizeof(d));
    }
    fe_reply_ioctl(req, rc < 0 ? rc : 0, out, rc < 0 ? 0 : sizeof(d) + (size_t)rc);
}

static void fe_resize(fuse_req_t req, const void *in)
{
    struct fe_cred c;
    uint64_t n;
    int rc;

    memcpy(&n, in, sizeof(n));
    fe_cred_init(&c, req, false);
    rc = uext4_resize(fe_fs(req), &c.cr, n);
    fe_cred_release(&c);
    fe_reply_ioctl(req, rc, NULL, 0);
}

static void fe_checkpoint(fuse_req_t req, const void *in)
{
    struct fe_cred c;
    uint32_t flags;
    int rc;

    memcpy(&flags, in, sizeof(flags));
    fe_cred_init(&c, req, false);
    rc = uext4_checkpoint(fe_fs(req), &c.cr, flags);
    fe_cred_release(&c);
    fe_reply_ioctl(req, rc, NULL, 0);
}

/* EXT4_IOC_SWAP_BOOT: the caller's descriptor's flags come from the open;
 * without an OPEN (no_open) they are not known and not checked, but a
 * directory is never open for writing. The file's contents changed under
 * the kernel's cache. */
static void fe_swap_boot(fuse_req_t req, fuse_ino_t fino, const struct fuse_file_info *fi,
                         unsigned ioctl_flags)
{
    int flags = (fi->fh & FE_FH_OPEN) ? (int)(uint32_t)fi->fh : -1;
    struct fe_cred c;
    int rc;

    if (ioctl_flags & FUSE_IOCTL_DIR)
        flags = O_RDONLY;
    fe_cred_init(&c, req, false);
    rc = uext4_swap_boot(fe_fs(req), &c.cr, fe_ext4_ino(fino), flags);
    fe_cred_release(&c);
    if (!rc)
        fe_inval_data(req, fino);
    fe_reply_ioctl(req, rc, NULL, 0);
}

/* EXT4_IOC_PRECACHE_EXTENTS: ext4 reads the extent tree into its extent
 * status cache; here the walk brings the tree's blocks into the image's
 * block cache. Only a damaged tree fails it, as in ext4. */
static void fe_precache(fuse_req_t req, uint32_t ino)
{
    struct uext4_inode_info info;
    int rc = uext4_inspect(fe_fs(req), ino, &info);

    if (!rc)
        uext4_inode_info_free(&info);
    fe_reply_ioctl(req, rc, NULL, 0);
}

/* EXT4_IOC_CLEAR_ES_CACHE: the owner or root (inode_owner_or_capable:
 * -EACCES), then nothing to drop: uext4 keeps no extent status cache. */
static void fe_clear_es_cache(fuse_req_t req, uint32_t ino)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct stat st;
    int rc = uext4_getattr(fe_fs(req), ino, &st);

    if (!rc && ctx->uid != 0 && ctx->uid != st.st_uid)
        rc = -EACCES;
    fe_reply_ioctl(req, rc, NULL, 0);
}

/* The file system's commands (FITRIM, the label), ext4's own and the
 * fscrypt ones (a short argument: -EINVAL); false if @cmd is none of
 * them. */
static bool fe_ioctl_fs(fuse_req_t req, fuse_ino_t fino, unsigned cmd, const void *in_buf,
                        size_t in_bufsz, size_t out_bufsz)
{
    struct fstrim_range r;

    switch (cmd) {
    case FITRIM:
        if (in_bufsz < sizeof(r) || out_bufsz < sizeof(r)) {
            fe_reply_err(req, -EINVAL);
            return true;
        }
        memcpy(&r, in_buf, sizeof(r));
        fe_fitrim(req, &r);
        return true;
    case FS_IOC_GETFSLABEL:
        fe_getlabel(req, out_bufsz);
        return true;
    case FS_IOC_SETFSLABEL:
        if (in_bufsz < FSLABEL_MAX)
            fe_reply_err(req, -EINVAL);
        else
            fe_setlabel(req, in_buf);
        return true;
    case FE_EXT4_IOC_RESIZE_FS:
        if (in_bufsz < sizeof(uint64_t))
            fe_reply_err(req, -EINVAL);
        else
            fe_resize(req, in_buf);
        return true;
    case FE_EXT4_IOC_CHECKPOINT:
        if (in_bufsz < sizeof(uint32_t))
            fe_reply_err(req, -EINVAL);
        else
            fe_checkpoint(req, in_buf);
        return true;
    case FE_EXT4_IOC_PRECACHE_EXTENTS:
        fe_precache(req, fe_ext4_ino(fino));
        return true;
    case FE_EXT4_IOC_CLEAR_ES_CACHE:
        fe_clear_es_cache(req, fe_ext4_ino(fino));
        return true;
    case FS_IOC_SET_ENCRYPTION_POLICY:
    case FS_IOC_GET_ENCRYPTION_PWSALT:
    case FS_IOC_GET_ENCRYPTION_POLICY:
    case FS_IOC_GET_ENCRYPTION_POLICY_EX:
    case FS_IOC_ADD_ENCRYPTION_KEY:
    case FS_IOC_REMOVE_ENCRYPTION_KEY:
    case FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS:
    case FS_IOC_GET_ENCRYPTION_KEY_STATUS:
    case FS_IOC_GET_ENCRYPTION_NONCE:
        /* ext4's answer on an image without `encrypt`, before it reads
         * the argument: the only images opened here (e2/image.c refuses
         * the feature), so `fscrypt status` says "not supported". */
        fe_reply_err(req, -EOPNOTSUPP);
        return true;
    default:
        return false;
    }
}

void fe_ioctl(fuse_req_t req, fuse_ino_t fino, unsigned int cmd, void *arg,
              struct fuse_file_info *fi, unsigned flags, const void *in_buf, size_t in_bufsz,
              size_t out_bufsz)
{
    uint32_t ino = fe_ext4_ino(fino);
    uint32_t f;

    /* A 32-bit caller's FITRIM and fsxattr have the same layout, but
     * nothing else here is worth the translation. */
    switch (cmd) {
    case FS_IOC_GETFLAGS:
        fe_getflags(req, ino, out_bufsz);
        return;
    case FS_IOC_SETFLAGS:
        if (in_bufsz < sizeof(f))
            break;
        memcpy(&f, in_buf, sizeof(f));
        fe_setattrs(req, fino, &f, NULL);
        return;
    case FS_IOC_FSGETXATTR:
        fe_fsgetxattr(req, ino, out_bufsz);
        return;
    case FS_IOC_FSSETXATTR: {
        struct fsxattr x;
        if (in_bufsz < sizeof(x))
            break;
        memcpy(&x, in_buf, sizeof(x));
        fe_setattrs(req, fino, NULL, &x);
        return;
    }
    case FS_IOC_GETVERSION:
    case FE_EXT4_IOC_GETVERSION:
        fe_getversion(req, ino, out_bufsz);
        return;
    case FS_IOC_ENABLE_VERITY:
        if (in_bufsz < sizeof(struct fsverity_enable_arg))
            break;
        fe_enable_verity(req, fino, fi, in_buf, in_bufsz);
        return;
    case FS_IOC_MEASURE_VERITY:
        if (in_bufsz < sizeof(struct fsverity_digest))
            break;
        fe_measure_verity(req, ino, in_buf, in_bufsz, out_bufsz);
        return;
    case FE_EXT4_IOC_SWAP_BOOT:
        fe_swap_boot(req, fino, fi, flags);
        return;
    default:
        if (!fe_ioctl_fs(req, fino, cmd, in_buf, in_bufsz, out_bufsz))
            fe_reply_err(req, -ENOTTY);
        return;
    }
    fe_reply_err(req, -EINVAL);
}

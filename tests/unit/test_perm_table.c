/* The permission checks of src/fs/perm.c as a table: one row per rule of
 * generic_permission() and POSIX ACL evaluation (owner, group, other, the
 * ACL mask, named users and groups, supplementary groups, root's
 * CAP_DAC_OVERRIDE with its one-x-bit rule for exec, immutable files).
 *
 * Each row gets a file of its own on one image made by mke2fs: root sets
 * its owner and mode, its access ACL (system.posix_acl_access) and flags
 * through the library, then uext4_access() runs as the row's caller. The
 * expected results are the kernel's (man 5 acl, "ACCESS CHECK ALGORITHM";
 * fs/namei.c generic_permission()). The image is checked by e2fsck. */
#include "lib_images.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#define A_USER_OBJ  0x01
#define A_USER      0x02
#define A_GROUP_OBJ 0x04
#define A_GROUP     0x08
#define A_MASK      0x10
#define A_OTHER     0x20
#define NO_ID       0xffffffffu

/* Owner of every file: uid 1000, group 100. Callers: */
#define OWNER                                                                                      \
    1000, 1000, 0,                                                                                 \
    {                                                                                              \
        0                                                                                          \
    } /* the owner, not in group 100 */
#define MEMBER                                                                                     \
    2000, 100, 0,                                                                                  \
    {                                                                                              \
        0                                                                                          \
    } /* primary group 100 */
#define SUPPL                                                                                      \
    2001, 2001, 2,                                                                                 \
    {                                                                                              \
        7, 100                                                                                     \
    } /* group 100 as a supplementary group */
#define OTHER                                                                                      \
    3000, 3000, 1,                                                                                 \
    {                                                                                              \
        8                                                                                          \
    } /* neither owner nor in group 100 */
#define NAMED                                                                                      \
    4000, 4000, 0,                                                                                 \
    {                                                                                              \
        0                                                                                          \
    } /* a named user in some ACLs */
#define NGRP                                                                                       \
    4100, 500, 0,                                                                                  \
    {                                                                                              \
        0                                                                                          \
    } /* in group 500, named in some ACLs */
#define ROOT                                                                                       \
    0, 0, 0,                                                                                       \
    {                                                                                              \
        0                                                                                          \
    }

struct ace {
    uint16_t tag, perm;
    uint32_t id;
};

struct perm_row {
    const char *name;
    mode_t mode;       /* S_IFREG or S_IFDIR and the permission bits */
    bool immutable;    /* chattr +i */
    struct ace acl[5]; /* between USER_OBJ and OTHER (from @mode); tag 0 ends */
    uid_t uid;         /* the caller */
    gid_t gid;
    unsigned ngroups;
    gid_t groups[2];
    int mask; /* R_OK | W_OK | X_OK, or F_OK */
    int want; /* 0 or -errno */
};

#define REG S_IFREG
#define DIR S_IFDIR
#define GOBJ(p)                                                                                    \
    {                                                                                              \
        A_GROUP_OBJ, p, NO_ID                                                                      \
    }
#define MASK(p)                                                                                    \
    {                                                                                              \
        A_MASK, p, NO_ID                                                                           \
    }
#define USR(id, p)                                                                                 \
    {                                                                                              \
        A_USER, p, id                                                                              \
    }
#define GRP(id, p)                                                                                 \
    {                                                                                              \
        A_GROUP, p, id                                                                             \
    }

static const struct perm_row rows[] = {
    /* Mode bits: the class that applies is the only one asked. */
    {"owner_reads_0600", REG | 0600, false, {{0}}, OWNER, R_OK, 0},
    {"owner_writes_0600", REG | 0600, false, {{0}}, OWNER, R_OK | W_OK, 0},
    {"owner_no_exec_0600", REG | 0600, false, {{0}}, OWNER, X_OK, -EACCES},
    {"owner_class_only_0077", REG | 0077, false, {{0}}, OWNER, R_OK, -EACCES},
    {"member_reads_0640", REG | 0640, false, {{0}}, MEMBER, R_OK, 0},
    {"member_no_write_0640", REG | 0640, false, {{0}}, MEMBER, W_OK, -EACCES},
    {"member_group_class_only_0606", REG | 0606, false, {{0}}, MEMBER, R_OK, -EACCES},
    {"suppl_group_reads_0640", REG | 0640, false, {{0}}, SUPPL, R_OK, 0},
    {"other_no_read_0640", REG | 0640, false, {{0}}, OTHER, R_OK, -EACCES},
    {"other_reads_0604", REG | 0604, false, {{0}}, OTHER, R_OK, 0},
    {"other_rw_needs_both_0604", REG | 0604, false, {{0}}, OTHER, R_OK | W_OK, -EACCES},
    {"exists_needs_nothing_0000", REG | 0000, false, {{0}}, OTHER, F_OK, 0},
    {"dir_search_0711", DIR | 0711, false, {{0}}, OTHER, X_OK, 0},
    {"dir_list_0711", DIR | 0711, false, {{0}}, OTHER, R_OK, -EACCES},

    /* root: CAP_DAC_OVERRIDE reads and writes anything; executes a file
     * only if one x bit is set; searches any directory. */
    {"root_reads_0000", REG | 0000, false, {{0}}, ROOT, R_OK | W_OK, 0},
    {"root_no_exec_0666", REG | 0666, false, {{0}}, ROOT, X_OK, -EACCES},
    {"root_exec_other_x_0001", REG | 0001, false, {{0}}, ROOT, X_OK, 0},
    {"root_exec_group_x_0010", REG | 0010, false, {{0}}, ROOT, X_OK, 0},
    {"root_exec_owner_x_0100", REG | 0100, false, {{0}}, ROOT, X_OK, 0},
    {"root_searches_dir_0000", DIR | 0000, false, {{0}}, ROOT, X_OK, 0},
    {"root_no_exec_acl_mask_x",
     REG | 0660,
     false,
     {USR(4000, 7), GOBJ(6), MASK(6)},
     ROOT,
     X_OK,
     -EACCES},

    /* Immutable: nobody writes, root included; reading is unaffected. */
    {"immutable_root_write", REG | 0666, true, {{0}}, ROOT, W_OK, -EPERM},
    {"immutable_owner_write", REG | 0666, true, {{0}}, OWNER, W_OK, -EPERM},
    {"immutable_owner_read", REG | 0666, true, {{0}}, OWNER, R_OK, 0},

    /* ACLs: the owner uses USER_OBJ, never the mask. */
    {"acl_owner_ignores_mask",
     REG | 0600,
     false,
     {USR(4000, 7), GOBJ(0), MASK(0)},
     OWNER,
     R_OK | W_OK,
     0},
    /* A named user: its entry, limited by the mask. */
    {"acl_named_user_rw",
     REG | 0660,
     false,
     {USR(4000, 6), GOBJ(0), MASK(6)},
     NAMED,
     R_OK | W_OK,
     0},
    {"acl_named_user_masked",
     REG | 0640,
     false,
     {USR(4000, 6), GOBJ(0), MASK(4)},
     NAMED,
     W_OK,
     -EACCES},
    {"acl_named_user_mask_allows_read",
     REG | 0640,
     false,
     {USR(4000, 6), GOBJ(0), MASK(4)},
     NAMED,
     R_OK,
     0},
    /* A named user's entry decides: no falling through to other. */
    {"acl_named_user_not_other",
     REG | 0674,
     false,
     {USR(4000, 0), GOBJ(0), MASK(7)},
     NAMED,
     R_OK,
     -EACCES},
    /* Owning group through GROUP_OBJ, limited by the mask (the mode's group
     * bits are the mask's, so GROUP_OBJ says more than the mode). */
    {"acl_group_obj_masked",
     REG | 0640,
     false,
     {USR(4000, 4), GOBJ(6), MASK(4)},
     MEMBER,
     W_OK,
     -EACCES},
    {"acl_group_obj_reads", REG | 0640, false, {USR(4000, 4), GOBJ(6), MASK(4)}, MEMBER, R_OK, 0},
    {"acl_group_obj_denies_despite_mask",
     REG | 0670,
     false,
     {USR(4000, 4), GOBJ(0), MASK(7)},
     MEMBER,
     R_OK,
     -EACCES},
    /* A named group, also through a supplementary group. */
    {"acl_named_group_rw",
     REG | 0660,
     false,
     {GOBJ(0), GRP(500, 6), MASK(6)},
     NGRP,
     R_OK | W_OK,
     0},
    {"acl_named_group_masked",
     REG | 0640,
     false,
     {GOBJ(0), GRP(500, 6), MASK(4)},
     NGRP,
     W_OK,
     -EACCES},
    {"acl_named_group_suppl", REG | 0640, false, {GOBJ(0), GRP(7, 4), MASK(4)}, SUPPL, R_OK, 0},
    /* Any matching group entry that grants suffices; one that matches but
     * does not grant keeps the caller from other. */
    {"acl_one_group_grants", REG | 0660, false, {GOBJ(0), GRP(7, 6), MASK(6)}, SUPPL, W_OK, 0},
    {"acl_group_matched_not_other",
     REG | 0647,
     false,
     {GOBJ(4), GRP(7, 4), MASK(4)},
     SUPPL,
     W_OK,
     -EACCES},
    /* Nobody matched: other, which the mask does not limit. */
    {"acl_other_unmasked",
     REG | 0607,
     false,
     {USR(4000, 0), GOBJ(0), MASK(0)},
     OTHER,
     R_OK | W_OK,
     0},
    {"acl_other_denies", REG | 0670, false, {USR(4000, 7), GOBJ(7), MASK(7)}, OTHER, R_OK, -EACCES},
    /* Execute through a named user on a directory. */
    {"acl_named_user_searches_dir",
     DIR | 0710,
     false,
     {USR(4000, 1), GOBJ(0), MASK(1)},
     NAMED,
     X_OK,
     0},
    {"acl_named_user_dir_masked",
     DIR | 0700,
     false,
     {USR(4000, 1), GOBJ(0), MASK(0)},
     NAMED,
     X_OK,
     -EACCES},
};

static unsigned acl_len(const struct perm_row *r)
{
    unsigned n = 0;

    while (n < 5 && r->acl[n].tag)
        n++;
    return n;
}

/* The ACL xattr value: USER_OBJ and OTHER from the mode, the row's entries
 * between them, in the order the kernel requires. */
static size_t acl_value(const struct perm_row *r, unsigned char *buf)
{
    unsigned n = acl_len(r);
    struct ace all[7];
    uint32_t v = htole32(2);
    size_t len = 4;

    all[0] = (struct ace){A_USER_OBJ, (r->mode >> 6) & 7, NO_ID};
    memcpy(&all[1], r->acl, n * sizeof(struct ace));
    all[n + 1] = (struct ace){A_OTHER, r->mode & 7, NO_ID};
    memcpy(buf, &v, 4);
    for (unsigned i = 0; i < n + 2; i++, len += 8) {
        uint16_t tag = htole16(all[i].tag), perm = htole16(all[i].perm);
        uint32_t id = htole32(all[i].id);
        memcpy(buf + len, &tag, 2);
        memcpy(buf + len + 2, &perm, 2);
        memcpy(buf + len + 4, &id, 4);
    }
    return len;
}

/* Create the row's file as root; returns its inode or 0 (reason printed). */
static uint32_t make_file(struct uext4_fs *fs, unsigned i, const struct perm_row *r)
{
    unsigned char acl[4 + 8 * 7];
    struct stat st, in = {0};
    char name[16];
    int ret;

    snprintf(name, sizeof(name), "f%u", i);
    if (S_ISDIR(r->mode))
        ret = uext4_mkdir(fs, &root, 2, name, 0700, &st);
    else
        ret = uext4_mknod(fs, &root, 2, name, S_IFREG | 0600, 0, &st);
    if (ret) {
        fprintf(stderr, "  %s: create: %d\n", r->name, ret);
        return 0;
    }
    in.st_uid = 1000;
    in.st_gid = 100;
    in.st_mode = r->mode;
    ret = uext4_setattr(fs, &root, (uint32_t)st.st_ino, &in,
                        UEXT4_SET_UID | UEXT4_SET_GID | UEXT4_SET_MODE, &st);
    if (!ret && acl_len(r))
        ret = uext4_setxattr(fs, &root, (uint32_t)st.st_ino, "system.posix_acl_access", acl,
                             acl_value(r, acl), 0);
    if (!ret && r->immutable) {
        struct uext4_fileattr fa;
        ret = uext4_fileattr_get(fs, (uint32_t)st.st_ino, &fa);
        if (!ret)
            ret = uext4_fileattr_set(fs, &root, (uint32_t)st.st_ino, fa.flags | FS_IMMUTABLE_FL, 0);
    }
    if (!ret)
        ret = uext4_getattr(fs, (uint32_t)st.st_ino, &st);
    if (ret) {
        fprintf(stderr, "  %s: set up: %d\n", r->name, ret);
        return 0;
    }
    /* The row must be coherent: with an ACL the mode's group bits are the
     * mask, so the row's mode has to say so. */
    if (st.st_mode != r->mode || st.st_uid != 1000 || st.st_gid != 100) {
        fprintf(stderr, "  %s: set up: mode 0%o uid %u gid %u, row says 0%o 1000 100\n", r->name,
                (unsigned)st.st_mode, (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)r->mode);
        return 0;
    }
    return (uint32_t)st.st_ino;
}

static const char *mask_name(int mask)
{
    static char s[4];

    if (mask == F_OK)
        return "F";
    snprintf(s, sizeof(s), "%s%s%s", mask & R_OK ? "r" : "", mask & W_OK ? "w" : "",
             mask & X_OK ? "x" : "");
    return s;
}

int main(void)
{
    size_t nrows = sizeof(rows) / sizeof(rows[0]);
    unsigned pass = 0, fail = 0;
    struct uext4_fs *fs;
    const char *img;

    if (make_tmpdir("/tmp", "uext4-perm") || !(img = mkimg("-t ext4 -b 4096 -I 256"))) {
        fprintf(stderr, "cannot make the image\n");
        return 1;
    }
    fs = open_img(img, NULL);
    if (!fs)
        return 1;
    for (unsigned i = 0; i < nrows; i++) {
        const struct perm_row *r = &rows[i];
        struct uext4_cred cr = {.uid = r->uid, .gid = r->gid, .umask = 022};
        uint32_t ino = make_file(fs, i, r);
        int got = 1; /* not a result uext4_access() gives */

        cr.ngroups = r->ngroups;
        cr.groups = r->groups;
        if (ino)
            got = uext4_access(fs, &cr, ino, r->mask);
        if (got == r->want) {
            pass++;
            printf("ok %s\n", r->name);
        } else {
            fail++;
            printf("FAIL %s: mode 0%o, uid %u gid %u, access %s: got %d, want %d\n", r->name,
                   (unsigned)r->mode, (unsigned)r->uid, (unsigned)r->gid, mask_name(r->mask), got,
                   r->want);
        }
    }
    if (uext4_close(fs)) {
        printf("FAIL close\n");
        fail++;
    }
    if (!fsck_clean(img)) {
        printf("FAIL e2fsck -fn %s\n", img);
        fail++;
    }
    sh("rm -rf %s", tmpdir);
    printf("%u passed, %u failed\n", pass, fail);
    return fail ? 1 : 0;
}

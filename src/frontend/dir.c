/* Directory handles: opendir takes the core's snapshot of the entries and
 * keeps it in fi->fh until releasedir; readdir and readdirplus page through
 * it by the positions the core hands out. */
#include "frontend/fe_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct uext4_dir *fe_dir(struct fuse_file_info *fi)
{
    return (struct uext4_dir *)(uintptr_t)fi->fh;
}

void fe_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct uext4_fs *fs = fe_fs(req);
    struct uext4_dir *dir;
    struct fe_cred c;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_opendir(fs, &c.cr, fe_ext4_ino(ino), &dir);
    fe_cred_release(&c);
    if (rc < 0) {
        fe_reply_err(req, rc);
        return;
    }
    fi->fh = (uintptr_t)dir;
    if (fuse_reply_open(req, fi) != 0)
        uext4_releasedir(fs, dir);
}

void fe_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    uext4_releasedir(fe_fs(req), fe_dir(fi));
    fe_reply_status(req, 0);
}

void fe_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    int rc = uext4_fsync(fe_fs(req), fe_ext4_ino(ino), datasync != 0);

    fe_record_flush(fe_ctx(req)->rec);
    fe_reply_status(req, rc);
}

/* ---- readdir: entries go straight into the reply buffer ---- */

struct fe_dirbuf {
    fuse_req_t req;
    char *buf;
    size_t size;
    size_t used;
};

static int fe_fill_dirent(void *ctx, const char *name, uint32_t ino, unsigned dtype,
                          uint64_t next_pos)
{
    struct fe_dirbuf *db = ctx;
    struct stat st = {.st_ino = ino, .st_mode = DTTOIF(dtype)};
    size_t room = db->size - db->used;
    size_t need;

    need = fuse_add_direntry(db->req, db->buf + db->used, room, name, &st, (off_t)next_pos);
    if (need > room)
        return 1;
    db->used += need;
    return 0;
}

void fe_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct fe_dirbuf db = {.req = req, .size = size};
    int rc;

    db.buf = malloc(size ? size : 1);
    if (!db.buf) {
        fe_reply_err(req, -ENOMEM);
        return;
    }
    rc = uext4_readdir(fe_fs(req), fe_dir(fi), (uint64_t)off, fe_fill_dirent, &db);
    /* Entries already in the buffer are worth more than a late error; the
     * next readdir from their position will meet the error again. */
    fe_reply_buf(req, db.used > 0 || rc >= 0 ? (ssize_t)db.used : rc, db.buf);
    free(db.buf);
}

/* ---- readdirplus ----
 *
 * Each entry but "." and ".." carries a lookup reference, so each needs a
 * uext4_lookup(). That is not done from inside the uext4_readdir() callback,
 * which may run under the core's directory locks; instead the callback only
 * collects the entries that will fit, and the lookups follow. */

struct fe_plus_ent {
    char *name;
    uint32_t ino;
    unsigned dtype;
    uint64_t next_pos;
    bool referenced; /* holds a lookup reference the kernel must get */
};

struct fe_plus_list {
    fuse_req_t req;
    size_t size;   /* the reply buffer's size */
    size_t needed; /* bytes the collected entries will take in it */
    size_t n, cap;
    struct fe_plus_ent *ents;
    int err; /* -ENOMEM while collecting */
};

static int fe_collect_plus(void *ctx, const char *name, uint32_t ino, unsigned dtype,
                           uint64_t next_pos)
{
    struct fe_plus_list *l = ctx;
    size_t need = fuse_add_direntry_plus(l->req, NULL, 0, name, NULL, 0);
    struct fe_plus_ent *ent;

    if (l->needed + need > l->size)
        return 1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        struct fe_plus_ent *ents = realloc(l->ents, cap * sizeof(*ents));

        if (!ents)
            goto out_nomem;
        l->ents = ents;
        l->cap = cap;
    }
    ent = &l->ents[l->n];
    ent->name = strdup(name);
    if (!ent->name)
        goto out_nomem;
    ent->ino = ino;
    ent->dtype = dtype;
    ent->next_pos = next_pos;
    ent->referenced = false;
    l->n++;
    l->needed += need;
    return 0;

out_nomem:
    l->err = -ENOMEM;
    return 1;
}

static bool fe_is_dot(const char *name)
{
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* Fill @e for @ent, taking the lookup reference. An entry that vanished
 * since the snapshot goes out without attributes (nodeid 0), which the
 * kernel lists but does not instantiate; so do "." and "..". */
static int fe_plus_entry(fuse_req_t req, const struct uext4_cred *cr, uint32_t dir,
                         struct fe_plus_ent *ent, struct fuse_entry_param *e)
{
    struct uext4_fs *fs = fe_fs(req);
    struct stat st;
    int rc = -ENOENT;

    if (!fe_is_dot(ent->name))
        rc = uext4_lookup_listed(fs, cr, dir, ent->name, &st);
    if (rc == 0) {
        /* The name may have been replaced since the snapshot: the reference
         * is on what the lookup found. */
        ent->ino = (uint32_t)st.st_ino;
        rc = fe_entry_fill(req, e, &st);
        if (rc < 0) {
            uext4_forget(fs, ent->ino, 1);
            return rc;
        }
        ent->referenced = true;
        return 0;
    }
    /* An inode whose blocks lie is listed without attributes, as a
     * kernel readdir lists it, and no error is recorded for it; only its
     * stat fails. */
    if (rc != -ENOENT && rc != -EUCLEAN)
        return rc;
    memset(e, 0, sizeof(*e));
    e->attr.st_ino = ent->ino;
    e->attr.st_mode = DTTOIF(ent->dtype);
    return 0;
}

/* Turn the collected entries into the reply in @buf; returns the bytes used,
 * or an error if the first entry already failed. After a later failure the
 * entries before it are sent: their references are taken and must reach the
 * kernel, which counts them. */
static ssize_t fe_plus_fill(fuse_req_t req, fuse_ino_t ino, struct fe_plus_list *l, char *buf)
{
    struct uext4_fs *fs = fe_fs(req);
    size_t used = 0;
    struct fe_cred c;
    int rc = 0;

    fe_cred_init(&c, req, true);
    for (size_t i = 0; i < l->n; i++) {
        struct fe_plus_ent *ent = &l->ents[i];
        struct fuse_entry_param e;
        size_t need;

        rc = fe_plus_entry(req, &c.cr, fe_ext4_ino(ino), ent, &e);
        if (rc < 0)
            break;
        need = fuse_add_direntry_plus(req, buf + used, l->size - used, ent->name, &e,
                                      (off_t)ent->next_pos);
        if (need > l->size - used) {
            if (ent->referenced)
                uext4_forget(fs, ent->ino, 1);
            ent->referenced = false;
            break;
        }
        used += need;
    }
    fe_cred_release(&c);
    return used == 0 && rc < 0 ? rc : (ssize_t)used;
}

static void fe_plus_list_free(struct fe_plus_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->ents[i].name);
    free(l->ents);
}

/* Send the reply; a reply the kernel never receives means it took none of
 * the references, so they are given back. */
static void fe_plus_reply(fuse_req_t req, struct fe_plus_list *l, const char *buf, size_t len)
{
    if (fuse_reply_buf(req, buf, len) == 0)
        return;
    for (size_t i = 0; i < l->n; i++) {
        if (l->ents[i].referenced)
            uext4_forget(fe_fs(req), l->ents[i].ino, 1);
    }
}

void fe_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fe_plus_list l = {.req = req, .size = size};
    ssize_t len;
    char *buf;
    int rc;

    buf = malloc(size ? size : 1);
    if (!buf) {
        fe_reply_err(req, -ENOMEM);
        return;
    }
    rc = uext4_readdir(fe_fs(req), fe_dir(fi), (uint64_t)off, fe_collect_plus, &l);
    if (l.err < 0)
        rc = l.err;
    /* As in readdir, collected entries go out before a late error. */
    if (l.n == 0 && rc < 0) {
        fe_reply_err(req, rc);
        goto out_free;
    }
    len = fe_plus_fill(req, ino, &l, buf);
    if (len < 0) {
        fe_reply_err(req, (int)len);
        goto out_free;
    }
    fe_plus_reply(req, &l, buf, (size_t)len);
out_free:
    fe_plus_list_free(&l);
    free(buf);
}

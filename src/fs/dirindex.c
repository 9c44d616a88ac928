/* Name lookups. libext2fs's ext2fs_lookup scans a directory linearly, even
 * an htree one; large directories get an in-memory hash index of their
 * names, built by one scan at the first lookup and kept in step by the
 * namespace operations (which run under the mount lock held for writing).
 * In a casefold directory names match by any case (e2_name_eq) and the
 * index hashes the casefolded name; a change of the directory's casefold
 * flag drops its index (fileattr.c). */
#include "fs/fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Directories up to this size are scanned: one or two blocks are cheaper
 * to read than an index is to build and keep. */
#define INDEX_MIN_BYTES 8192

struct dentry {
    struct dentry *next;
    uint32_t hash, ino;
    unsigned ftype;
    char name[];
};

struct dirindex {
    size_t nbuckets, count;
    struct dentry **buckets;
    struct e2_image *img;
    uint32_t fold; /* E2_FL_CASEFOLD if the directory has it, else 0 */
};

static uint32_t name_hash(const struct dirindex *di, const char *name, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    if (di->fold)
        return e2_name_hash(di->img, di->fold, name, len);

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h;
}

static void index_grow(struct dirindex *di)
{
    size_t n = di->nbuckets ? di->nbuckets * 2 : 256;
    struct dentry **b = calloc(n, sizeof(*b));

    if (!b)
        return;
    for (size_t i = 0; i < di->nbuckets; i++) {
        struct dentry *d, *next;
        for (d = di->buckets[i]; d; d = next) {
            next = d->next;
            d->next = b[d->hash & (n - 1)];
            b[d->hash & (n - 1)] = d;
        }
    }
    free(di->buckets);
    di->buckets = b;
    di->nbuckets = n;
}

static int index_insert(struct dirindex *di, const char *name, size_t len, uint32_t ino,
                        unsigned ftype)
{
    struct dentry *d;

    if (di->count >= di->nbuckets)
        index_grow(di);
    if (!di->nbuckets)
        return -ENOMEM;
    d = malloc(sizeof(*d) + len + 1);
    if (!d)
        return -ENOMEM;
    d->hash = name_hash(di, name, len);
    d->ino = ino;
    d->ftype = ftype;
    memcpy(d->name, name, len);
    d->name[len] = '\0';
    d->next = di->buckets[d->hash & (di->nbuckets - 1)];
    di->buckets[d->hash & (di->nbuckets - 1)] = d;
    di->count++;
    return 0;
}

static struct dentry **index_slot(struct dirindex *di, const char *name)
{
    size_t len = strlen(name);
    uint32_t h = name_hash(di, name, len);
    struct dentry **pp = &di->buckets[h & (di->nbuckets - 1)];

    while (*pp && ((*pp)->hash != h ||
                   !e2_name_eq(di->img, di->fold, (*pp)->name, strlen((*pp)->name), name, len)))
        pp = &(*pp)->next;
    return pp;
}

void fs_dir_index_free(struct fs_inode *dir)
{
    struct dirindex *di = dir->names;

    if (!di)
        return;
    for (size_t i = 0; i < di->nbuckets; i++) {
        struct dentry *d, *next;
        for (d = di->buckets[i]; d; d = next) {
            next = d->next;
            free(d);
        }
    }
    free(di->buckets);
    free(di);
    dir->names = NULL;
}

static int build_proc(void *ctx, const char *name, size_t len, uint32_t ino, unsigned ftype)
{
    return index_insert(ctx, name, len, ino, ftype) ? 1 : 0;
}

static int build_index(struct uext4_fs *fs, struct fs_inode *dir, uint32_t dir_flags)
{
    struct dirindex *di = calloc(1, sizeof(*di));
    int ret;

    if (!di)
        return -ENOMEM;
    di->img = fs->img;
    di->fold = dir_flags & E2_FL_CASEFOLD;
    index_grow(di);
    dir->names = di;
    ret = e2_dir_iterate(fs->img, dir->ino, build_proc, di);
    if (ret) {
        fs_dir_index_free(dir);
        return ret;
    }
    return 0;
}

struct scan_ctx {
    struct e2_image *img;
    uint32_t fold;
    const char *name;
    size_t len;
    uint32_t ino;
    unsigned ftype;
};

static int scan_proc(void *ctx, const char *name, size_t len, uint32_t ino, unsigned ftype)
{
    struct scan_ctx *sc = ctx;

    if (!e2_name_eq(sc->img, sc->fold, name, len, sc->name, sc->len))
        return 0;
    sc->ino = ino;
    sc->ftype = ftype;
    return 1;
}

int fs_dir_check(struct uext4_fs *fs, struct fs_inode *dir)
{
    int ret;

    if (atomic_load_explicit(&dir->dir_checked, memory_order_acquire))
        return 0;
    ret = e2_dir_check(fs->img, dir->ino);
    if (!ret)
        atomic_store_explicit(&dir->dir_checked, true, memory_order_release);
    return ret;
}

int fs_dir_check_ino(struct uext4_fs *fs, uint32_t dir)
{
    struct fs_inode *di = fs_inode_get(fs, dir);
    int ret;

    if (!di)
        return -ENOMEM;
    ret = fs_dir_check(fs, di);
    fs_inode_put(fs, di);
    return ret;
}

int fs_dir_is_empty(struct uext4_fs *fs, uint32_t dir)
{
    int ret = fs_dir_check_ino(fs, dir);

    return ret ? ret : e2_dir_is_empty(fs->img, dir);
}

int fs_dir_find(struct uext4_fs *fs, struct fs_inode *dir, const char *name, uint32_t *ino,
                unsigned *ftype)
{
    struct scan_ctx sc = {fs->img, 0, name, strlen(name), 0, 0};
    struct e2_attr a;
    struct dentry *d;
    int ret;

    if (!dir->names) {
        ret = fs_dir_check(fs, dir);
        if (ret)
            return ret;
        ret = e2_inode_get(fs->img, dir->ino, &a);
        if (ret)
            return ret;
        sc.fold = a.flags & E2_FL_CASEFOLD;
        if (a.size > INDEX_MIN_BYTES) {
            ret = build_index(fs, dir, a.flags);
            if (ret && ret != -ENOMEM)
                return ret;
        }
    }
    if (dir->names) {
        d = *index_slot(dir->names, name);
        if (!d)
            return -ENOENT;
        *ino = d->ino;
        *ftype = d->ftype;
        return 0;
    }
    ret = e2_dir_iterate(fs->img, dir->ino, scan_proc, &sc);
    if (ret)
        return ret;
    if (!sc.ino)
        return -ENOENT;
    *ino = sc.ino;
    *ftype = sc.ftype;
    return 0;
}

void fs_dir_index_add(struct fs_inode *dir, const char *name, uint32_t ino, unsigned ftype)
{
    /* Without memory for the entry, drop the index: it is rebuilt later. */
    if (dir->names && index_insert(dir->names, name, strlen(name), ino, ftype))
        fs_dir_index_free(dir);
}

void fs_dir_index_remove(struct fs_inode *dir, const char *name)
{
    struct dentry **pp, *d;

    if (!dir->names)
        return;
    pp = index_slot(dir->names, name);
    d = *pp;
    if (!d)
        return;
    *pp = d->next;
    free(d);
    dir->names->count--;
}

/* The in-memory inode table: lookup/open counts and deferred deletion.
 *
 * An inode whose link count reaches 0 while the kernel still holds lookup
 * references or open files stays allocated on disk until the last forget or
 * release, as the kernel keeps an open unlinked file. */
#include "fs/fs_internal.h"
#include "base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t slot(const struct uext4_fs *fs, uint32_t ino)
{
    return (ino * 2654435761u) & (fs->itable_size - 1);
}

int fs_icache_init(struct uext4_fs *fs)
{
    mutex_init(&fs->itable_lock, LC_ITABLE, 0);
    fs->itable_size = 1024;
    fs->itable = calloc(fs->itable_size, sizeof(*fs->itable));
    if (!fs->itable)
        return -ENOMEM;
    /* The root is never looked up (FUSE holds it without a lookup count):
     * pinned for the life of the mount, its in-memory state — the name
     * index of a large root directory — is not rebuilt at every
     * operation. Released by fs_icache_destroy(). */
    fs->root = fs_inode_get(fs, UEXT4_ROOT_INO);
    return fs->root ? 0 : -ENOMEM;
}

static void grow_locked(struct uext4_fs *fs)
{
    size_t old = fs->itable_size;
    struct fs_inode **tab = calloc(old * 2, sizeof(*tab)), **oldtab = fs->itable;

    if (!tab)
        return; /* longer chains; still correct */
    fs->itable = tab;
    fs->itable_size = old * 2;
    for (size_t i = 0; i < old; i++) {
        struct fs_inode *fi = oldtab[i], *next;
        for (; fi; fi = next) {
            size_t s = slot(fs, fi->ino);
            next = fi->hnext;
            fi->hnext = tab[s];
            tab[s] = fi;
        }
    }
    free(oldtab);
}

static struct fs_inode *find_locked(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi = fs->itable[slot(fs, ino)];

    while (fi && fi->ino != ino)
        fi = fi->hnext;
    return fi;
}

static struct fs_inode *get_locked(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi = find_locked(fs, ino);
    size_t s;

    if (fi)
        return fi;
    fi = calloc(1, sizeof(*fi));
    if (!fi)
        return NULL;
    fi->ino = ino;
    fi->times_shown = UINT64_MAX;
    mutex_init(&fi->lock, LC_INODE, 0);
    pthread_rwlock_init(&fi->reply_lock, NULL);
    if (fs->itable_count * 2 > fs->itable_size)
        grow_locked(fs);
    s = slot(fs, ino);
    fi->hnext = fs->itable[s];
    fs->itable[s] = fi;
    fs->itable_count++;
    return fi;
}

static void unhash_locked(struct uext4_fs *fs, struct fs_inode *fi)
{
    struct fs_inode **pp = &fs->itable[slot(fs, fi->ino)];

    while (*pp != fi)
        pp = &(*pp)->hnext;
    *pp = fi->hnext;
    fs->itable_count--;
}

static void destroy_inode(struct fs_inode *fi)
{
    fs_dir_index_free(fi);
    fs_verity_free(fi->verity);
    mutex_destroy(&fi->lock);
    pthread_rwlock_destroy(&fi->reply_lock);
    free(fi);
}

/* Freeing unlinked inode @ino failed with @err: log it, record it, and
 * latch the first such failure for fs_take_free_error(). */
static int free_failed_locked(struct uext4_fs *fs, uint32_t ino, int err)
{
    log_err("freeing unlinked inode %u: %s", ino, strerror(-err));
    fs_record_error(fs, ino, __func__, __LINE__);
    if (!fs->free_err)
        fs->free_err = err;
    return err;
}

/* Drop @fi if nothing refers to it; free its disk inode if unlinked.
 * Returns the error of that free. */
static int release_if_unused_locked(struct uext4_fs *fs, struct fs_inode *fi)
{
    int ret = 0;

    if (fi->nlookup || fi->nopen || fi->pins)
        return 0;
    unhash_locked(fs, fi);
    if (fi->unlinked) {
        pc_forget(fs->pc, fi->ino);
        ret = e2_inode_free(fs->img, fi->ino);
        if (ret)
            free_failed_locked(fs, fi->ino, ret);
    }
    destroy_inode(fi);
    return ret;
}

/* *@err, one of the mount's latched errors (itable_lock), taken. */
static int take_error(struct uext4_fs *fs, int *err)
{
    int ret;

    mutex_lock(&fs->itable_lock);
    ret = *err;
    *err = 0;
    mutex_unlock(&fs->itable_lock);
    return ret;
}

int fs_take_free_error(struct uext4_fs *fs)
{
    return take_error(fs, &fs->free_err);
}

int fs_take_write_error(struct uext4_fs *fs)
{
    return take_error(fs, &fs->write_err);
}

struct fs_inode *fs_inode_get(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi;

    mutex_lock(&fs->itable_lock);
    fi = get_locked(fs, ino);
    if (fi)
        fi->pins++;
    mutex_unlock(&fs->itable_lock);
    return fi;
}

void fs_inode_put(struct uext4_fs *fs, struct fs_inode *fi)
{
    if (!fi)
        return;
    mutex_lock(&fs->itable_lock);
    fi->pins--;
    release_if_unused_locked(fs, fi);
    mutex_unlock(&fs->itable_lock);
}

void fs_inode_ref_lookup(struct uext4_fs *fs, uint32_t ino, uint64_t n, const struct e2_attr *a)
{
    struct fs_inode *fi;

    mutex_lock(&fs->itable_lock);
    fi = get_locked(fs, ino);
    if (fi) {
        fi->nlookup += n;
        if (a) {
            fi->generation = a->generation;
            fi->has_generation = true;
        }
    }
    mutex_unlock(&fs->itable_lock);
}

bool fs_inode_generation(struct uext4_fs *fs, uint32_t ino, uint32_t *generation)
{
    struct fs_inode *fi;
    bool known;

    mutex_lock(&fs->itable_lock);
    fi = find_locked(fs, ino);
    known = fi && fi->has_generation;
    if (known)
        *generation = fi->generation;
    mutex_unlock(&fs->itable_lock);
    return known;
}

void uext4_forget(struct uext4_fs *fs, uint32_t ino, uint64_t n)
{
    struct fs_inode *fi;

    mutex_lock(&fs->itable_lock);
    fi = find_locked(fs, ino);
    if (fi) {
        fi->nlookup = n > fi->nlookup ? 0 : fi->nlookup - n;
        release_if_unused_locked(fs, fi);
    }
    mutex_unlock(&fs->itable_lock);
}

int fs_inode_ref_open(struct uext4_fs *fs, uint32_t ino, int delta)
{
    struct fs_inode *fi;
    int ret = 0;

    mutex_lock(&fs->itable_lock);
    fi = delta > 0 ? get_locked(fs, ino) : find_locked(fs, ino);
    if (fi) {
        if (delta > 0)
            fi->nopen++;
        else if (fi->nopen)
            fi->nopen--;
        ret = release_if_unused_locked(fs, fi);
    }
    mutex_unlock(&fs->itable_lock);
    return ret;
}

void fs_inode_ref_writer(struct uext4_fs *fs, uint32_t ino, int delta)
{
    struct fs_inode *fi;

    mutex_lock(&fs->itable_lock);
    fi = find_locked(fs, ino);
    if (fi && delta > 0)
        fi->nwrite++;
    else if (fi && fi->nwrite)
        fi->nwrite--;
    mutex_unlock(&fs->itable_lock);
}

unsigned fs_inode_writers(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi;
    unsigned n;

    mutex_lock(&fs->itable_lock);
    fi = find_locked(fs, ino);
    n = fi ? fi->nwrite : 0;
    mutex_unlock(&fs->itable_lock);
    return n;
}

int fs_inode_unlinked(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi;
    int ret = 0;

    mutex_lock(&fs->itable_lock);
    fi = find_locked(fs, ino);
    if (fi && (fi->nlookup || fi->nopen || fi->pins)) {
        /* Still open: on the orphan list in the same commit as the
         * unlink, so a crash cannot leak it. */
        fi->unlinked = true;
        ret = e2_orphan_add(fs->img, ino);
    } else {
        /* The unlink returns the error; its FS_CHECK records corruption,
         * and any other failure is recorded here: the inode is left
         * allocated with no name either way. */
        ret = e2_inode_free(fs->img, ino);
        if (ret && ret != -EUCLEAN) {
            log_err("freeing unlinked inode %u: %s", ino, strerror(-ret));
            fs_record_error(fs, ino, __func__, __LINE__);
        }
    }
    mutex_unlock(&fs->itable_lock);
    return ret;
}

void fs_inode_set_linkable(struct uext4_fs *fs, uint32_t ino, bool linkable)
{
    struct fs_inode *fi;

    mutex_lock(&fs->itable_lock);
    fi = find_locked(fs, ino);
    if (fi)
        fi->linkable = linkable;
    mutex_unlock(&fs->itable_lock);
}

bool fs_inode_is_linkable(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi;
    bool linkable;

    mutex_lock(&fs->itable_lock);
    fi = find_locked(fs, ino);
    linkable = fi && fi->unlinked && fi->linkable;
    mutex_unlock(&fs->itable_lock);
    return linkable;
}

int fs_inode_relink(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi;
    int ret = -ENOENT;

    mutex_lock(&fs->itable_lock);
    fi = find_locked(fs, ino);
    if (fi && fi->unlinked && fi->linkable) {
        ret = e2_orphan_remove(fs->img, ino);
        if (!ret) {
            fi->unlinked = false;
            fi->linkable = false;
        }
    }
    mutex_unlock(&fs->itable_lock);
    return ret;
}

struct fs_inode *fs_op_begin_read(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi;

    fs_commit_if_overdue(fs);
    rwlock_rdlock(&fs->mount_lock);
    fi = fs_inode_get(fs, ino);
    if (!fi) {
        rwlock_unlock(&fs->mount_lock);
        return NULL;
    }
    mutex_lock(&fi->lock);
    return fi;
}

struct fs_inode *fs_op_begin(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi = fs_op_begin_read(fs, ino);

    if (fi)
        fs_inode_drain_replies_locked(fi);
    return fi;
}

void fs_inode_drain_replies_locked(struct fs_inode *fi)
{
    assert_inode_locked(fi);
    /* A reply in flight holds reply_lock for reading and waits on nothing
     * of this file system, so this wait ends. */
    pthread_rwlock_wrlock(&fi->reply_lock);
    pthread_rwlock_unlock(&fi->reply_lock);
}

void fs_op_end(struct uext4_fs *fs, struct fs_inode *fi)
{
    mutex_unlock(&fi->lock);
    fs_inode_put(fs, fi);
    rwlock_unlock(&fs->mount_lock);
}

int fs_icache_destroy(struct uext4_fs *fs)
{
    int first = 0;

    /* The unlinked inodes still referenced are the orphan list: released
     * from its head, each in O(1), rather than one by one below. */
    if (!e2_is_read_only(fs->img))
        first = e2_orphans_release(fs->img);

    mutex_lock(&fs->itable_lock);
    if (first)
        free_failed_locked(fs, 0, first); /* somewhere on the orphan list */
    for (size_t i = 0; i < fs->itable_size; i++) {
        struct fs_inode *fi, *next;
        for (fi = fs->itable[i]; fi; fi = next) {
            next = fi->hnext;
            if (fi->unlinked && !e2_is_read_only(fs->img)) {
                int ret = e2_inode_free(fs->img, fi->ino);
                if (ret)
                    free_failed_locked(fs, fi->ino, ret);
                if (ret && !first)
                    first = ret;
            }
            destroy_inode(fi);
        }
    }
    free(fs->itable);
    fs->itable = NULL;
    mutex_unlock(&fs->itable_lock);
    mutex_destroy(&fs->itable_lock);
    return first;
}

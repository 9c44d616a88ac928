/* The lib backend: scenario steps as calls into include/uext4.h, in this
 * process, on the image opened read-write. Open files are the library's
 * open-file counts (uext4_open_file/uext4_release); mmap stores go to the
 * library's page-cache emulation, so a step order pins an interleaving
 * exactly: nothing is written back until a step (or a close) says so. */
#include "scenario/scn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define MAX_HANDLES 64

struct lib_handle {
    char *path; /* NULL: free slot */
    uint32_t ino;
    int flags;   /* the open(2) flags: O_ACCMODE, O_APPEND */
    bool mapped; /* a mapping step touched it since the open or munmap */
    bool map_ro; /* `mprotect PATH ro`: stores fault (-EFAULT) */
};

#define MAX_HELD 256

struct lib_state {
    struct uext4_fs *fs;
    pthread_mutex_t lock; /* protects handles[] and held[] against parallel steps */
    struct lib_handle handles[MAX_HANDLES];
    /* Lookup references of created files, kept as the kernel's dentry
     * cache keeps a new file's inode after its close: the inode stays in
     * uext4's cache with its in-memory state (an empty new file may still
     * become inline), until drop-caches, an unlink of its name or stop. */
    uint32_t held[MAX_HELD];
    unsigned nheld;
};

/* The scenario acts as root with umask 022, as the syscall backends do. */
static const struct uext4_cred root_cred = {.uid = 0, .gid = 0, .umask = 022};

static struct lib_state *st_of(struct scn_run *r)
{
    return r->priv;
}

/* Keep @ino's lookup reference (forget it at once if the table is full). */
static void hold_ref(struct lib_state *s, uint32_t ino)
{
    bool kept = false;

    pthread_mutex_lock(&s->lock);
    if (s->nheld < MAX_HELD) {
        s->held[s->nheld++] = ino;
        kept = true;
    }
    pthread_mutex_unlock(&s->lock);
    if (!kept)
        uext4_forget(s->fs, ino, 1);
}

/* Drop the held references of @ino (0: all of them), as the kernel drops
 * a dentry on unlink, or its caches on drop_caches. */
static void drop_refs(struct lib_state *s, uint32_t ino)
{
    uint32_t gone[MAX_HELD];
    unsigned n = 0;

    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->nheld;) {
        if (ino && s->held[i] != ino) {
            i++;
            continue;
        }
        gone[n++] = s->held[i];
        s->held[i] = s->held[--s->nheld];
    }
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < n; i++)
        uext4_forget(s->fs, gone[i], 1);
}

/* `mount-opts uext4=...`: the daemon's options that the library has as
 * struct uext4_options fields. Returns false with the first one it has
 * not, for the run to be skipped. */
static bool lib_mount_opts(const char *list, struct uext4_options *o, char *why, size_t why_len)
{
    char copy[256], *save = NULL;

    snprintf(copy, sizeof(copy), "%s", list);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned v;
        char end;

        if (!strcmp(t, "ro"))
            o->read_only = true;
        else if (!strcmp(t, "noatime"))
            o->noatime = true;
        else if (!strcmp(t, "strictatime"))
            o->strictatime = true;
        else if (!strcmp(t, "nodiratime"))
            o->nodiratime = true;
        else if (!strcmp(t, "grpid"))
            o->grpid = true;
        else if (sscanf(t, "commit=%u%c", &v, &end) == 1)
            o->commit_seconds = v;
        else {
            snprintf(why, why_len,
                     "mount-opts uext4=%s: '%s' is a daemon option the library has no "
                     "uext4_options field for",
                     list, t);
            return false;
        }
    }
    return true;
}

static bool lib_available(struct scn_run *r, char *why, size_t why_len)
{
    struct uext4_options o = {.size = sizeof(o)};

    return lib_mount_opts(r->script->image.uext4_opts, &o, why, why_len);
}

/* O_DIRECT has nothing to bypass here: the library has no page cache of its
 * own for read/write (include/uext4.h), and no alignment rule to enforce. */
static const char *lib_cannot(struct scn_run *r, const struct scn_step *st)
{
    if (st->op == SCN_OPEN && (st->mode & O_DIRECT))
        return "open direct: the library has no O_DIRECT (uext4_read/uext4_write have no "
               "page cache to bypass nor an alignment rule)";
    return NULL;
}

static void lib_fini(struct scn_run *r)
{
    struct lib_state *s = st_of(r);

    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s);
    r->priv = NULL;
}

static int lib_start(struct scn_run *r, char *why, size_t why_len)
{
    struct uext4_options opts = {.size = sizeof(opts), .inline_mmap = r->inline_mmap};
    struct lib_state *s = r->priv;
    int ret;

    if (!lib_mount_opts(r->script->image.uext4_opts, &opts, why, why_len))
        return -EINVAL;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        r->priv = s;
    }
    ret = uext4_open(r->image, &opts, &s->fs, why, why_len);
    if (ret)
        s->fs = NULL;
    return ret;
}

static int lib_stop(struct scn_run *r, char *why, size_t why_len)
{
    struct lib_state *s = st_of(r);
    int ret = 0, err;

    if (!s || !s->fs)
        return 0;
    drop_refs(s, 0);
    /* Releasing the last open writes dirty pages back, as a close does
     * through FUSE; the first error wins. */
    for (unsigned i = 0; i < MAX_HANDLES; i++) {
        if (!s->handles[i].path)
            continue;
        err = uext4_release(s->fs, s->handles[i].ino);
        if (err && !ret) {
            ret = err;
            snprintf(why, why_len, "release of %s: %s", s->handles[i].path, scn_errno_name(err));
        }
        free(s->handles[i].path);
        s->handles[i].path = NULL;
    }
    err = uext4_close(s->fs);
    s->fs = NULL;
    if (err && !ret) {
        ret = err;
        snprintf(why, why_len, "uext4_close: %s", scn_errno_name(err));
    }
    return ret;
}

/* Parent directory inode and last component of @path. */
static int lib_parent(struct lib_state *s, const char *path, uint32_t *dir, const char **name)
{
    char buf[4096];
    const char *slash = strrchr(path, '/');

    if (!slash) {
        *dir = UEXT4_ROOT_INO;
        *name = path;
        return 0;
    }
    snprintf(buf, sizeof(buf), "/%.*s", (int)(slash - path), path);
    *name = slash + 1;
    return uext4_resolve(s->fs, buf, dir);
}

static int lib_resolve(struct lib_state *s, const char *path, uint32_t *ino)
{
    char buf[4096];

    if (!strcmp(path, ".")) {
        *ino = UEXT4_ROOT_INO;
        return 0;
    }
    snprintf(buf, sizeof(buf), "/%s", path);
    return uext4_resolve(s->fs, buf, ino);
}

static struct lib_handle *find_handle_locked(struct lib_state *s, const char *path)
{
    for (unsigned i = 0; i < MAX_HANDLES; i++)
        if (s->handles[i].path && !strcmp(s->handles[i].path, path))
            return &s->handles[i];
    return NULL;
}

/* Record an open of @ino under @path, closing what was open under it. */
static int add_handle(struct lib_state *s, const char *path, uint32_t ino, int flags)
{
    struct lib_handle *h;
    int ret = -EMFILE;

    pthread_mutex_lock(&s->lock);
    h = find_handle_locked(s, path);
    if (h) {
        uext4_release(s->fs, h->ino);
        h->ino = ino;
        h->flags = flags;
        h->mapped = h->map_ro = false;
        ret = 0;
        goto out_unlock;
    }
    for (unsigned i = 0; i < MAX_HANDLES; i++) {
        if (s->handles[i].path)
            continue;
        s->handles[i].path = strdup(path);
        s->handles[i].ino = ino;
        s->handles[i].flags = flags;
        s->handles[i].mapped = s->handles[i].map_ro = false;
        ret = s->handles[i].path ? 0 : -ENOMEM;
        break;
    }
out_unlock:
    pthread_mutex_unlock(&s->lock);
    if (ret)
        uext4_release(s->fs, ino);
    return ret;
}

/* The inode behind @path: its open file if there is one, else by name. */
static int lib_ino(struct scn_run *r, const char *path, uint32_t *ino)
{
    struct lib_state *s = st_of(r);
    struct lib_handle *h;

    pthread_mutex_lock(&s->lock);
    h = find_handle_locked(s, path);
    if (h)
        *ino = h->ino;
    pthread_mutex_unlock(&s->lock);
    return h ? 0 : lib_resolve(s, path, ino);
}

/* Data steps need an open file, as their syscalls do: open it once and
 * keep it open until `close` or the next checkpoint. */
static int lib_open_ino(struct scn_run *r, const char *path, uint32_t *ino)
{
    struct lib_state *s = st_of(r);
    bool open;
    int ret;

    pthread_mutex_lock(&s->lock);
    open = find_handle_locked(s, path) != NULL;
    pthread_mutex_unlock(&s->lock);
    ret = lib_ino(r, path, ino);
    if (ret || open)
        return ret;
    ret = uext4_open_file(s->fs, &root_cred, *ino, O_RDWR);
    return ret ? ret : add_handle(s, path, *ino, O_RDWR);
}

/* The open flags of @path's open file (-1: none), marking it mapped. */
static int handle_flags(struct lib_state *s, const char *path, bool map, bool *map_ro)
{
    struct lib_handle *h;
    int flags = -1;

    pthread_mutex_lock(&s->lock);
    h = find_handle_locked(s, path);
    if (h) {
        flags = h->flags;
        h->mapped = h->mapped || map;
        if (map_ro)
            *map_ro = h->map_ro;
    }
    pthread_mutex_unlock(&s->lock);
    return flags;
}

static int lib_create(struct scn_run *r, const char *path, mode_t mode)
{
    struct lib_state *s = st_of(r);
    const char *name;
    struct stat st;
    uint32_t dir;
    int ret;

    ret = lib_parent(s, path, &dir, &name);
    if (!ret)
        ret = uext4_mknod(s->fs, &root_cred, dir, name, S_IFREG | mode, 0, &st);
    if (ret)
        return ret;
    ret = uext4_open_file(s->fs, &root_cred, (uint32_t)st.st_ino, O_CREAT | O_RDWR);
    /* mknod's lookup reference is the kernel's dentry: kept (hold_ref) */
    hold_ref(s, (uint32_t)st.st_ino);
    return ret ? ret : add_handle(s, path, (uint32_t)st.st_ino, O_RDWR);
}

/* uext4_open_file checks the access mode and applies O_TRUNC; O_APPEND
 * and a read-only mode are this backend's to honour on later steps. */
static int lib_open(struct scn_run *r, const char *path, int flags)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    flags &= O_ACCMODE | O_APPEND | O_TRUNC;
    if (!ret)
        ret = uext4_open_file(st_of(r)->fs, &root_cred, ino, flags);
    return ret ? ret : add_handle(st_of(r), path, ino, flags & ~O_TRUNC);
}

static int lib_close(struct scn_run *r, const char *path)
{
    struct lib_state *s = st_of(r);
    struct lib_handle *h;
    uint32_t ino = 0;

    pthread_mutex_lock(&s->lock);
    h = find_handle_locked(s, path);
    if (h) {
        ino = h->ino;
        free(h->path);
        h->path = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    return h ? uext4_release(s->fs, ino) : -EBADF;
}

/* pwrite(2): EBADF through a read-only open; with O_APPEND at the end of
 * the file whatever @off says, as Linux's pwrite does. */
static ssize_t lib_write(struct scn_run *r, const char *path, const void *buf, size_t len,
                         off_t off)
{
    struct stat sb;
    uint32_t ino;
    int ret = lib_open_ino(r, path, &ino);
    int flags = ret ? 0 : handle_flags(st_of(r), path, false, NULL);

    if (ret)
        return ret;
    if ((flags & O_ACCMODE) == O_RDONLY)
        return -EBADF;
    if (flags & O_APPEND) {
        ret = uext4_getattr(st_of(r)->fs, ino, &sb);
        if (ret)
            return ret;
        off = sb.st_size;
    }
    return uext4_write(st_of(r)->fs, &root_cred, ino, buf, len, off, 0);
}

static ssize_t lib_read(struct scn_run *r, const char *path, void *buf, size_t len, off_t off)
{
    uint32_t ino;
    size_t done = 0;
    int ret = lib_ino(r, path, &ino);

    while (!ret && done < len) {
        ssize_t n =
            uext4_read(st_of(r)->fs, ino, (char *)buf + done, len - done, off + (off_t)done);

        if (n <= 0)
            return n < 0 ? n : (ssize_t)done;
        done += (size_t)n;
    }
    return ret ? ret : (ssize_t)done;
}

static int lib_mmap_store(struct scn_run *r, const char *path, const void *buf, size_t len,
                          off_t off)
{
    uint32_t ino;
    bool map_ro = false;
    int ret = lib_open_ino(r, path, &ino);
    int flags = ret ? 0 : handle_flags(st_of(r), path, true, &map_ro);

    if (ret)
        return ret;
    /* mmap(PROT_WRITE, MAP_SHARED) of a read-only open is EACCES; a store
     * into a mapping made read-only faults */
    if ((flags & O_ACCMODE) == O_RDONLY)
        return -EACCES;
    return map_ro ? -EFAULT : uext4_mmap_store(st_of(r)->fs, ino, off, buf, len);
}

/* The emulation has pages, not mappings: dropping the mapping leaves its
 * dirty pages dirty, to be written back later, as munmap(2) does. */
static int lib_munmap(struct scn_run *r, const char *path)
{
    struct lib_state *s = st_of(r);
    struct lib_handle *h;
    uint32_t ino;

    pthread_mutex_lock(&s->lock);
    h = find_handle_locked(s, path);
    if (h)
        h->mapped = h->map_ro = false;
    pthread_mutex_unlock(&s->lock);
    return h ? 0 : lib_resolve(s, path, &ino);
}

/* A mapping must exist (-ENOMEM, as msync and mprotect say of an unmapped
 * range): a mapping step since the open or the last munmap. */
static int lib_mapped(struct scn_run *r, const char *path, int prot, bool set_prot)
{
    struct lib_state *s = st_of(r);
    struct lib_handle *h;
    int ret = -ENOMEM;

    pthread_mutex_lock(&s->lock);
    h = find_handle_locked(s, path);
    if (h && h->mapped) {
        ret = 0;
        if (set_prot)
            h->map_ro = !(prot & PROT_WRITE);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* MS_ASYNC starts nothing on Linux (the pages are already in the cache
 * that writeback walks); the emulated pages likewise stay dirty. */
static int lib_msync_async(struct scn_run *r, const char *path)
{
    return lib_mapped(r, path, 0, false);
}

static int lib_mprotect(struct scn_run *r, const char *path, int prot)
{
    return lib_mapped(r, path, prot, true);
}

/* MAP_PRIVATE: the copy-on-write pages are the process's; nothing reaches
 * the file or the emulated pages. Only the SIGBUS rule is observable. */
static int lib_mmap_private_store(struct scn_run *r, const char *path, const void *buf, size_t len,
                                  off_t off)
{
    struct stat sb;
    uint32_t ino;
    int ret = lib_open_ino(r, path, &ino);

    if (!ret)
        ret = uext4_getattr(st_of(r)->fs, ino, &sb);
    if (ret)
        return ret;
    if (len && (off + (off_t)len - 1) / 4096 > (sb.st_size ? (sb.st_size - 1) / 4096 : -1))
        return -EFAULT;
    return 0;
}

static int lib_statfs(struct scn_run *r, struct statvfs *sv)
{
    return uext4_statfs(st_of(r)->fs, sv);
}

/* The emulated pages are what uext4_read returns, dirty ones included;
 * a load from a page wholly past EOF is SIGBUS, as a store is. */
static ssize_t lib_mmap_load(struct scn_run *r, const char *path, void *buf, size_t len, off_t off)
{
    struct stat sb;
    uint32_t ino;
    int ret = lib_open_ino(r, path, &ino);

    if (!ret) {
        handle_flags(st_of(r), path, true, NULL); /* now mapped */
        ret = uext4_getattr(st_of(r)->fs, ino, &sb);
    }
    if (ret)
        return ret;
    if (len && (off + (off_t)len - 1) / 4096 > (sb.st_size ? (sb.st_size - 1) / 4096 : -1))
        return -EFAULT;
    /* bytes past EOF in the last page read as zeros */
    memset(buf, 0, len);
    ssize_t n = lib_read(r, path, buf, len, off);

    return n < 0 ? n : (ssize_t)len;
}

static int lib_copy_range(struct scn_run *r, const char *from, off_t off_in, const char *to,
                          off_t off_out, size_t len)
{
    uint32_t in, out;
    ssize_t n;
    int ret = lib_open_ino(r, from, &in);

    if (!ret)
        ret = lib_open_ino(r, to, &out);
    if (ret)
        return ret;
    n = uext4_copy_file_range(st_of(r)->fs, &root_cred, in, off_in, out, off_out, len);
    if (n < 0)
        return (int)n;
    return (size_t)n == len ? 0 : -EIO;
}

static int lib_writeback(struct scn_run *r, const char *path)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    return ret ? ret : uext4_writeback(st_of(r)->fs, ino);
}

static int lib_truncate(struct scn_run *r, const char *path, off_t size)
{
    struct lib_state *s = st_of(r);
    struct stat in = {.st_size = size}, out;
    unsigned how = UEXT4_SET_SIZE;
    uint32_t ino;
    int ret;

    pthread_mutex_lock(&s->lock);
    if (find_handle_locked(s, path))
        how |= UEXT4_SET_FH;
    pthread_mutex_unlock(&s->lock);
    ret = lib_ino(r, path, &ino);
    return ret ? ret : uext4_setattr(s->fs, &root_cred, ino, &in, how, &out);
}

static int lib_fallocate(struct scn_run *r, const char *path, int mode, off_t off, off_t len)
{
    uint32_t ino;
    int ret = lib_open_ino(r, path, &ino);

    if (!ret && (handle_flags(st_of(r), path, false, NULL) & O_ACCMODE) == O_RDONLY)
        return -EBADF;
    return ret ? ret : uext4_fallocate(st_of(r)->fs, &root_cred, ino, mode, off, len);
}

static int lib_fsync(struct scn_run *r, const char *path)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    return ret ? ret : uext4_fsync(st_of(r)->fs, ino, false);
}

static int lib_fdatasync(struct scn_run *r, const char *path)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    return ret ? ret : uext4_fsync(st_of(r)->fs, ino, true);
}

/* syncfs(2): the library's whole-image flush; with a path, that name must
 * resolve, as the syscall needs a descriptor of it. */
static int lib_sync(struct scn_run *r, const char *path)
{
    uint32_t ino;
    int ret = path ? lib_ino(r, path, &ino) : 0;

    return ret ? ret : uext4_sync(st_of(r)->fs);
}

/* The kernel keeps dirty pages through drop_caches; the syscall backends
 * syncfs first so that every backend ends with nothing dirty. Here that is
 * uext4_sync: every emulated page written back, then the image flushed. */
static int lib_drop_caches(struct scn_run *r)
{
    int ret = uext4_sync(st_of(r)->fs);

    /* then the "dentries and inodes": files not open leave the cache */
    drop_refs(st_of(r), 0);
    return ret;
}

/* By name, as chmod(2), lchown(2) and utimensat(2) are. */
static int lib_setattr(struct scn_run *r, const char *path, const struct stat *in, unsigned what)
{
    struct stat out;
    uint32_t ino;
    int ret = lib_resolve(st_of(r), path, &ino);

    return ret ? ret : uext4_setattr(st_of(r)->fs, &root_cred, ino, in, what, &out);
}

static off_t lib_lseek(struct scn_run *r, const char *path, off_t off, int whence)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    return ret ? ret : uext4_lseek(st_of(r)->fs, ino, off, whence);
}

static int lib_unlink(struct scn_run *r, const char *path)
{
    const char *name;
    uint32_t dir, ino = 0;
    int ret = lib_parent(st_of(r), path, &dir, &name);

    if (!ret && lib_resolve(st_of(r), path, &ino))
        ino = 0;
    if (!ret)
        ret = uext4_unlink(st_of(r)->fs, &root_cred, dir, name);
    if (!ret && ino)
        drop_refs(st_of(r), ino);
    return ret;
}

static int lib_rmdir(struct scn_run *r, const char *path)
{
    const char *name;
    uint32_t dir;
    int ret = lib_parent(st_of(r), path, &dir, &name);

    return ret ? ret : uext4_rmdir(st_of(r)->fs, &root_cred, dir, name);
}

static int lib_mkdir(struct scn_run *r, const char *path, mode_t mode)
{
    struct lib_state *s = st_of(r);
    const char *name;
    struct stat st;
    uint32_t dir;
    int ret = lib_parent(s, path, &dir, &name);

    if (!ret)
        ret = uext4_mkdir(s->fs, &root_cred, dir, name, mode, &st);
    if (!ret)
        uext4_forget(s->fs, (uint32_t)st.st_ino, 1);
    return ret;
}

/* Open files follow their names across rename, as fds do. */
static void rename_handles(struct lib_state *s, const char *from, const char *to, unsigned flags)
{
    struct lib_handle *a, *b;

    pthread_mutex_lock(&s->lock);
    a = find_handle_locked(s, from);
    b = find_handle_locked(s, to);
    if (flags & UEXT4_RENAME_EXCHANGE && a && b) {
        uint32_t t = a->ino;

        a->ino = b->ino;
        b->ino = t;
    } else if (a && !b) {
        char *np = strdup(to);

        if (np) {
            free(a->path);
            a->path = np;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

static int lib_rename(struct scn_run *r, const char *from, const char *to, unsigned flags)
{
    struct lib_state *s = st_of(r);
    const char *n1, *n2;
    uint32_t d1, d2;
    uint32_t victim = 0;
    int ret = lib_parent(s, from, &d1, &n1);

    if (!ret)
        ret = lib_parent(s, to, &d2, &n2);
    /* a target replaced loses its name: its dentry goes */
    if (!ret && (flags & UEXT4_RENAME_EXCHANGE || lib_resolve(s, to, &victim)))
        victim = 0;
    if (!ret)
        ret = uext4_rename(s->fs, &root_cred, d1, n1, d2, n2, flags);
    if (!ret)
        rename_handles(s, from, to, flags);
    if (!ret && victim)
        drop_refs(s, victim);
    return ret;
}

static int lib_link(struct scn_run *r, const char *from, const char *to)
{
    struct lib_state *s = st_of(r);
    const char *name;
    struct stat st;
    uint32_t ino, dir;
    /* link(2) takes a name: an open file whose name is gone is not it */
    int ret = lib_resolve(s, from, &ino);

    if (!ret)
        ret = lib_parent(s, to, &dir, &name);
    if (!ret)
        ret = uext4_link(s->fs, &root_cred, ino, dir, name, &st);
    if (!ret)
        uext4_forget(s->fs, ino, 1);
    return ret;
}

static int lib_symlink(struct scn_run *r, const char *target, const char *path)
{
    struct lib_state *s = st_of(r);
    const char *name;
    struct stat st;
    uint32_t dir;
    int ret = lib_parent(s, path, &dir, &name);

    if (!ret)
        ret = uext4_symlink(s->fs, &root_cred, dir, name, target, &st);
    if (!ret)
        uext4_forget(s->fs, (uint32_t)st.st_ino, 1);
    return ret;
}

static int lib_setxattr(struct scn_run *r, const char *path, const char *name, const void *v,
                        size_t len, int flags)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    return ret ? ret : uext4_setxattr(st_of(r)->fs, &root_cred, ino, name, v, len, flags);
}

static int lib_removexattr(struct scn_run *r, const char *path, const char *name)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    return ret ? ret : uext4_removexattr(st_of(r)->fs, &root_cred, ino, name);
}

static int lib_stat(struct scn_run *r, const char *path, struct stat *st)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    return ret ? ret : uext4_getattr(st_of(r)->fs, ino, st);
}

static int lib_lookup(struct scn_run *r, const char *path)
{
    uint32_t ino;

    return lib_resolve(st_of(r), path, &ino);
}

static ssize_t lib_getxattr(struct scn_run *r, const char *path, const char *name, void *v,
                            size_t len)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    return ret ? ret : uext4_getxattr(st_of(r)->fs, &root_cred, ino, name, v, len);
}

static ssize_t lib_listxattr(struct scn_run *r, const char *path, char *list, size_t len)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    return ret ? ret : uext4_listxattr(st_of(r)->fs, &root_cred, ino, list, len);
}

struct entries_ctx {
    char *list;
    size_t len, cap;
    uint64_t next;
    int err;
};

static int collect_entry(void *ctx, const char *name, uint32_t ino, unsigned dtype,
                         uint64_t next_pos)
{
    struct entries_ctx *c = ctx;
    size_t n = strlen(name) + 1;

    c->next = next_pos;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    if (c->len + n > c->cap) {
        size_t cap = (c->cap + n) * 2;
        char *nl = realloc(c->list, cap);

        if (!nl) {
            c->err = -ENOMEM;
            return 1;
        }
        c->list = nl;
        c->cap = cap;
    }
    memcpy(c->list + c->len, name, n);
    c->len += n;
    return 0;
}

static ssize_t lib_entries(struct scn_run *r, const char *path, char **list)
{
    struct lib_state *s = st_of(r);
    struct entries_ctx c = {0};
    struct uext4_dir *d;
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    if (!ret)
        ret = uext4_opendir(s->fs, &root_cred, ino, &d);
    if (ret)
        return ret;
    ret = uext4_readdir(s->fs, d, 0, collect_entry, &c);
    uext4_releasedir(s->fs, d);
    if (!ret)
        ret = c.err;
    if (ret) {
        free(c.list);
        return ret;
    }
    *list = c.list;
    return (ssize_t)c.len;
}

static int lib_dirty_pages(struct scn_run *r, const char *path)
{
    uint32_t ino;
    int ret = lib_ino(r, path, &ino);

    return ret ? ret : (int)uext4_dirty_pages(st_of(r)->fs, ino);
}

/* By name, as the syscall backends inspect the image at rest: an open
 * file whose name was unlinked or renamed over is not what PATH names. */
static int lib_inspect(struct scn_run *r, const char *path, struct uext4_inode_info *info)
{
    uint32_t ino;
    int ret = lib_resolve(st_of(r), path, &ino);

    return ret ? ret : uext4_inspect(st_of(r)->fs, ino, info);
}

const struct scn_backend scn_backend_lib = {
    .name = "lib",
    .tag = SCN_TAG_LIB,
    .live_inspect = true,
    .available = lib_available,
    .start = lib_start,
    .stop = lib_stop,
    .fini = lib_fini,
    .inspect = lib_inspect,
    .create = lib_create,
    .open = lib_open,
    .close = lib_close,
    .write = lib_write,
    .read = lib_read,
    .mmap_store = lib_mmap_store,
    .mmap_load = lib_mmap_load,
    .copy_range = lib_copy_range,
    .writeback = lib_writeback,
    .truncate = lib_truncate,
    .fallocate = lib_fallocate,
    .fsync = lib_fsync,
    .fdatasync = lib_fdatasync,
    .sync = lib_sync,
    .drop_caches = lib_drop_caches,
    .setattr = lib_setattr,
    .lseek = lib_lseek,
    .unlink = lib_unlink,
    .rmdir = lib_rmdir,
    .mkdir = lib_mkdir,
    .rename = lib_rename,
    .link = lib_link,
    .symlink = lib_symlink,
    .setxattr = lib_setxattr,
    .removexattr = lib_removexattr,
    .stat = lib_stat,
    .lookup = lib_lookup,
    .getxattr = lib_getxattr,
    .listxattr = lib_listxattr,
    .entries = lib_entries,
    .dirty_pages = lib_dirty_pages,
    .munmap = lib_munmap,
    .msync_async = lib_msync_async,
    .mmap_private_store = lib_mmap_private_store,
    .mprotect = lib_mprotect,
    .statfs = lib_statfs,
    .cannot = lib_cannot,
};

/* Planted: a punch succeeds and changes nothing. */
static int fake_fallocate(struct scn_run *r, const char *path, int mode, off_t off, off_t len)
{
    uint32_t ino;
    int ret = lib_open_ino(r, path, &ino);

    if (ret || (mode & FALLOC_FL_PUNCH_HOLE))
        return ret;
    return uext4_fallocate(st_of(r)->fs, &root_cred, ino, mode, off, len);
}

static struct scn_backend fake_backend;

static void fake_init(void)
{
    fake_backend = scn_backend_lib;
    fake_backend.name = "fake";
    fake_backend.tag = SCN_TAG_FAKE;
    fake_backend.fallocate = fake_fallocate;
}

const struct scn_backend *scn_backend_fake(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, fake_init);
    return &fake_backend;
}

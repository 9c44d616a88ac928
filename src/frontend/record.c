/* -o record=FILE: the file operations a mount serves, written as a scenario
 * (doc/scenario-format.md) that replays them in library mode.
 *
 * FUSE names inodes, scenarios name paths: the recorder keeps the path by
 * which it last saw each inode (from LOOKUP and the replies that create a
 * name) and rewrites them on rename. It records what succeeded, in the
 * order the handlers finished (a sequential workload replays exactly;
 * concurrent requests are recorded in one of their orders), and at the end
 * writes expect lines for every path it touched, read from the file system
 * as it is after the last request.
 *
 * Locking: one mutex, a leaf taken after every core call has returned (the
 * end of recording reads the file system under it, when no request is left),
 * guards the path table and the output. Lines go to a stdio buffer,
 * flushed at fsync and at the end; the first error writing FILE is logged
 * and ends the recording, never the mount. */
#include "frontend/fe_int.h"
#include "frontend/record.h"

#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define REC_BUCKETS  16384u
#define REC_LINE_MAX 3000 /* bytes of encoded data per line: the format's lines end at 4096 */

/* The path of one inode, in two hash chains: by inode and by path. */
struct rec_node {
    uint32_t ino;
    bool is_dir;
    char *path; /* "." for the root */
    struct rec_node *next_ino, *next_path;
};

struct rec_str {
    char *s;
    struct rec_str *next;
};

struct fe_record {
    pthread_mutex_t lock;
    FILE *out;  /* NULL once writing failed */
    char *file; /* for messages */
    struct rec_node *by_ino[REC_BUCKETS], *by_path[REC_BUCKETS];
    unsigned ndirs; /* nodes with is_dir: a rename or rmdir scans for children only if any */
    struct rec_str *touched_set[REC_BUCKETS];
    char **touched; /* paths to check at the end, in first-touch order */
    unsigned ntouched, cap;
};

static unsigned hash_str(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % REC_BUCKETS;
}

static struct rec_node **ino_slot_locked(struct fe_record *r, uint32_t ino)
{
    struct rec_node **p = &r->by_ino[ino % REC_BUCKETS];

    while (*p && (*p)->ino != ino)
        p = &(*p)->next_ino;
    return p;
}

static struct rec_node **path_slot_locked(struct fe_record *r, const char *path)
{
    struct rec_node **p = &r->by_path[hash_str(path)];

    while (*p && strcmp((*p)->path, path))
        p = &(*p)->next_path;
    return p;
}

static const char *path_locked(struct fe_record *r, uint32_t ino)
{
    struct rec_node *n = *ino_slot_locked(r, ino);

    return n ? n->path : NULL;
}

static void free_node_locked(struct fe_record *r, struct rec_node *n)
{
    struct rec_node **p = ino_slot_locked(r, n->ino);

    *p = n->next_ino;
    p = path_slot_locked(r, n->path);
    *p = n->next_path;
    r->ndirs -= n->is_dir;
    free(n->path);
    free(n);
}

/* @n takes @path (owned): rehashed in the path chains. */
static void rename_node_locked(struct fe_record *r, struct rec_node *n, char *path)
{
    struct rec_node **p = path_slot_locked(r, n->path);
    struct rec_node *stale;

    *p = n->next_path;
    free(n->path);
    n->path = path;
    /* A name is one inode's: an older mapping of it is stale. */
    stale = *path_slot_locked(r, path);
    if (stale)
        free_node_locked(r, stale);
    p = &r->by_path[hash_str(path)];
    n->next_path = *p;
    *p = n;
}

static void set_path_locked(struct fe_record *r, uint32_t ino, char *path, bool is_dir)
{
    struct rec_node **p, *n;

    if (!path)
        return;
    n = *ino_slot_locked(r, ino);
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n) {
            free(path);
            return;
        }
        n->ino = ino;
        n->path = strdup("");
        if (!n->path) {
            free(n);
            free(path);
            return;
        }
        p = &r->by_ino[ino % REC_BUCKETS];
        n->next_ino = *p;
        *p = n;
        p = &r->by_path[hash_str(n->path)];
        n->next_path = *p;
        *p = n;
    }
    r->ndirs += is_dir - n->is_dir;
    n->is_dir = is_dir;
    rename_node_locked(r, n, path);
}

/* "DIR/NAME" for NAME in directory @dir, or NULL (directory never seen, or
 * out of memory). */
static char *child_locked(struct fe_record *r, uint32_t dir, const char *name)
{
    const char *d = path_locked(r, dir);
    char *p;

    if (!d)
        return NULL;
    if (!strcmp(d, "."))
        return strdup(name);
    if (asprintf(&p, "%s/%s", d, name) < 0)
        return NULL;
    return p;
}

/* Whether the format can carry @p as a word: no blanks, no quote, no '..',
 * not starting with '/' or '#', short enough to leave a line room for data. */
static bool is_word(const char *p)
{
    if (!p || !*p || *p == '/' || *p == '#' || strstr(p, "..") || strlen(p) > 400)
        return false;
    for (; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == 0x7f)
            return false;
    return true;
}

static void touch_locked(struct fe_record *r, const char *path)
{
    struct rec_str **slot, *e;
    char **t;

    if (!strcmp(path, "."))
        return;
    slot = &r->touched_set[hash_str(path)];
    for (e = *slot; e; e = e->next)
        if (!strcmp(e->s, path))
            return;
    if (r->ntouched == r->cap) {
        unsigned cap = r->cap ? r->cap * 2 : 64;

        t = realloc(r->touched, cap * sizeof(*t));
        if (!t)
            return;
        r->touched = t;
        r->cap = cap;
    }
    e = calloc(1, sizeof(*e));
    if (!e || !(e->s = strdup(path))) {
        free(e);
        return;
    }
    e->next = *slot;
    *slot = e;
    r->touched[r->ntouched++] = e->s;
}

static void fail_locked(struct fe_record *r, int err)
{
    if (!r->out)
        return;
    log_err("record: writing '%s' failed: %s; recording stops, the mount goes on", r->file,
            strerror(err));
    fclose(r->out);
    r->out = NULL;
}

static void line_locked(struct fe_record *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void line_locked(struct fe_record *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!r->out)
        return;
    va_start(ap, fmt);
    n = vfprintf(r->out, fmt, ap);
    va_end(ap);
    if (n < 0 || fputc('\n', r->out) == EOF)
        fail_locked(r, errno ? errno : EIO);
}

/* Encode up to REC_LINE_MAX characters' worth of @b as DATA pieces into
 * @out (runs of 8 or more equal bytes as zero:N / fill:N:B, the rest as
 * quoted text); returns the bytes consumed (at least one). */
static size_t encode(const unsigned char *b, size_t n, char *out)
{
    size_t i = 0, o = 0;
    bool in_str = false;

    out[0] = '\0';
    while (i < n && o < REC_LINE_MAX) {
        size_t run = 1;

        while (i + run < n && b[i + run] == b[i])
            run++;
        if (run >= 8) {
            o += (size_t)sprintf(out + o, "%s%s", in_str ? "\"" : "", o ? "+" : "");
            if (b[i])
                o += (size_t)sprintf(out + o, "fill:%zu:0x%02x", run, b[i]);
            else
                o += (size_t)sprintf(out + o, "zero:%zu", run);
            in_str = false;
            i += run;
            continue;
        }
        if (!in_str) {
            o += (size_t)sprintf(out + o, "%s\"", o ? "+" : "");
            in_str = true;
        }
        for (; run; run--, i++) {
            unsigned char c = b[i];

            if (c == '"' || c == '\\')
                o += (size_t)sprintf(out + o, "\\%c", c);
            else if (c < 0x20 || c >= 0x7f)
                o += (size_t)sprintf(out + o, "\\x%02x", c);
            else
                out[o++] = (char)c;
        }
    }
    if (in_str)
        out[o++] = '"';
    out[o] = '\0';
    return i;
}

static void data_lines_locked(struct fe_record *r, const char *step, const char *path, off_t off,
                              const unsigned char *b, size_t n)
{
    char enc[REC_LINE_MAX + 64];

    if (!n) {
        line_locked(r, "%s %s %jd \"\"", step, path, (intmax_t)off);
        return;
    }
    while (n) {
        size_t used = encode(b, n, enc);

        line_locked(r, "%s %s %jd %s", step, path, (intmax_t)off, enc);
        b += used;
        n -= used;
        off += (off_t)used;
    }
}

/* The image's features, read from its superblock (offset 1024), as
 * mke2fs -O wants them: each feature a scenario's mke2fs could differ on,
 * on or off ("^name"). */
static const struct feature {
    int word; /* 0 compat, 1 incompat, 2 ro_compat */
    uint32_t bit;
    const char *name;
    bool always; /* say it when off too */
} features[] = {
    {0, 0x0004, "has_journal", true},  {0, 0x0008, "ext_attr", true},
    {0, 0x0010, "resize_inode", true}, {0, 0x0020, "dir_index", true},
    {0, 0x1000, "orphan_file", true},  {1, 0x0002, "filetype", true},
    {1, 0x0040, "extent", true},       {1, 0x0080, "64bit", true},
    {1, 0x0200, "flex_bg", true},      {1, 0x0400, "ea_inode", false},
    {1, 0x0100, "mmp", false},         {1, 0x4000, "large_dir", false},
    {1, 0x8000, "inline_data", true},  {1, 0x2000, "metadata_csum_seed", false},
    {2, 0x0001, "sparse_super", true}, {2, 0x0002, "large_file", true},
    {2, 0x0008, "huge_file", true},    {2, 0x0020, "dir_nlink", true},
    {2, 0x0040, "extra_isize", true},  {2, 0x0400, "metadata_csum", true},
    {2, 0x0010, "uninit_bg", false},   {2, 0x0200, "bigalloc", false},
    {2, 0x0100, "quota", false},       {2, 0x2000, "project", false},
    {2, 0x8000, "verity", false},
};

static uint32_t le32(const unsigned char *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int header(struct fe_record *r, const char *image, bool convert)
{
    unsigned char sb[1024];
    char list[512];
    struct stat st;
    uint32_t w[3];
    size_t o = 0;
    int fd = open(image, O_RDONLY | O_CLOEXEC), ret = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || pread(fd, sb, sizeof(sb), 1024) != (ssize_t)sizeof(sb))
        ret = errno ? -errno : -EIO;
    close(fd);
    if (ret)
        return ret;
    w[0] = le32(sb + 0x5c);
    w[1] = le32(sb + 0x60);
    w[2] = le32(sb + 0x64);
    list[0] = '\0';
    for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
        bool on = w[features[i].word] & features[i].bit;

        if (on || features[i].always)
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s%s", o ? "," : "", on ? "" : "^",
                                  features[i].name);
    }
    fprintf(r->out,
            "# Recorded by uext4 -o record=%s from %s (doc/uext4.1). It starts from a fresh\n"
            "# image of the same geometry: files the image held before the mount are not in\n"
            "# it. Replay: uext4-scenario --backend=lib FILE\n",
            r->file, image);
    fprintf(r->out, "image %s size=%jd inode_size=%u blocksize=%u features=%s\n",
            w[1] & 0x40  ? "ext4"
            : w[0] & 0x4 ? "ext3"
                         : "ext2",
            (intmax_t)st.st_size, (unsigned)(sb[0x58] | sb[0x59] << 8), 1024u << le32(sb + 0x18),
            list);
    fprintf(r->out, "inline-mmap %s\n", convert ? "convert" : "keep");
    return 0;
}

int fe_record_open(struct fe_record **out, const char *file, const char *image, bool convert)
{
    struct fe_record *r = calloc(1, sizeof(*r));
    int ret;

    *out = NULL;
    if (!r)
        return -ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    r->file = strdup(file);
    r->out = fopen(file, "we");
    if (!r->file || !r->out) {
        ret = r->file ? -errno : -ENOMEM;
        log_err("record: cannot create '%s': %s", file, strerror(-ret));
        goto out_free;
    }
    setvbuf(r->out, NULL, _IOFBF, 1u << 20);
    ret = header(r, image, convert);
    if (ret) {
        log_err("record: cannot read the superblock of '%s': %s", image, strerror(-ret));
        goto out_free;
    }
    set_path_locked(r, UEXT4_ROOT_INO, strdup("."), true);
    *out = r;
    return 0;
out_free:
    if (r->out)
        fclose(r->out);
    free(r->file);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return ret;
}

void fe_record_flush(struct fe_record *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    if (r->out && fflush(r->out) == EOF)
        fail_locked(r, errno);
    pthread_mutex_unlock(&r->lock);
}

void fe_rec_name(struct fe_record *r, uint32_t dir, const char *name, uint32_t ino, bool is_dir)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    if (!path_locked(r, ino))
        set_path_locked(r, ino, child_locked(r, dir, name), is_dir);
    pthread_mutex_unlock(&r->lock);
}

void fe_rec_new(struct fe_record *r, uint32_t dir, const char *name, const struct stat *st,
                dev_t rdev, const char *target)
{
    char *p;

    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    p = child_locked(r, dir, name);
    if (!is_word(p)) {
        line_locked(r, "# not recorded: a name the format cannot carry in inode %" PRIu32, dir);
    } else if (S_ISREG(st->st_mode)) {
        line_locked(r, "create %s 0%o", p, (unsigned)(st->st_mode & 07777));
    } else if (S_ISDIR(st->st_mode)) {
        line_locked(r, "mkdir %s 0%o", p, (unsigned)(st->st_mode & 07777));
    } else if (S_ISLNK(st->st_mode) && is_word(target)) {
        line_locked(r, "symlink %s %s", target, p);
    } else {
        /* The format has no mknod, nor absolute or '..' symlink targets. */
        line_locked(r, "# not recorded: %s %s (mode 0%o, device %ju:%ju)",
                    S_ISLNK(st->st_mode) ? "symlink to a target the format cannot carry," : "mknod",
                    p, (unsigned)st->st_mode, (uintmax_t)major(rdev), (uintmax_t)minor(rdev));
    }
    if (p && is_word(p) &&
        (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode) || (S_ISLNK(st->st_mode) && is_word(target))))
        touch_locked(r, p);
    set_path_locked(r, (uint32_t)st->st_ino, p, S_ISDIR(st->st_mode));
    pthread_mutex_unlock(&r->lock);
}

void fe_rec_link(struct fe_record *r, uint32_t ino, uint32_t dir, const char *name)
{
    char *p;

    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    p = child_locked(r, dir, name);
    if (is_word(p) && is_word(path_locked(r, ino))) {
        line_locked(r, "link %s %s", path_locked(r, ino), p);
        touch_locked(r, p);
    } else {
        line_locked(r, "# not recorded: a link of inode %" PRIu32, ino);
    }
    free(p);
    pthread_mutex_unlock(&r->lock);
}

/* Forget the names at and under @p (an unlinked file keeps no path: a
 * later operation through an open handle is not expressible). Children
 * are looked for only when @p names a directory. */
static void drop_locked(struct fe_record *r, const char *p)
{
    struct rec_node *n = *path_slot_locked(r, p);
    size_t len = strlen(p);
    bool dir = n && n->is_dir;

    if (n)
        free_node_locked(r, n);
    if (!dir || !r->ndirs)
        return;
    for (unsigned b = 0; b < REC_BUCKETS; b++)
        for (struct rec_node *c = r->by_ino[b], *next; c; c = next) {
            next = c->next_ino;
            if (!strncmp(c->path, p, len) && c->path[len] == '/')
                free_node_locked(r, c);
        }
}

void fe_rec_remove(struct fe_record *r, uint32_t dir, const char *name, bool is_dir)
{
    char *p;

    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    p = child_locked(r, dir, name);
    if (is_word(p)) {
        line_locked(r, "%s %s", is_dir ? "rmdir" : "unlink", p);
        touch_locked(r, p);
        drop_locked(r, p);
    } else {
        line_locked(r, "# not recorded: an %s in inode %" PRIu32, is_dir ? "rmdir" : "unlink", dir);
    }
    free(p);
    pthread_mutex_unlock(&r->lock);
}

/* Every name at or under @from now lies under @to. */
static void move_locked(struct fe_record *r, const char *from, const char *to)
{
    struct rec_node *n = *path_slot_locked(r, from);
    size_t len = strlen(from);
    char *np;

    if (!n)
        return;
    if (n->is_dir) {
        struct rec_node **kids = NULL, **k;
        size_t nk = 0;

        /* Collected first: renaming may free a stale node of the chains. */
        for (unsigned b = 0; b < REC_BUCKETS; b++)
            for (struct rec_node *c = r->by_ino[b]; c; c = c->next_ino) {
                if (strncmp(c->path, from, len) || c->path[len] != '/')
                    continue;
                k = realloc(kids, (nk + 1) * sizeof(*kids));
                if (!k)
                    break;
                kids = k;
                kids[nk++] = c;
            }
        for (size_t i = 0; i < nk; i++)
            if (asprintf(&np, "%s%s", to, kids[i]->path + len) >= 0)
                rename_node_locked(r, kids[i], np);
        free(kids);
    }
    np = strdup(to);
    if (np)
        rename_node_locked(r, n, np);
}

/* The files touched under a directory moved from @from to @to are checked
 * at their new paths too (the old ones: missing). */
static void touch_moved_locked(struct fe_record *r, const char *from, const char *to)
{
    size_t len = strlen(from);
    unsigned n = r->ntouched;

    for (unsigned i = 0; i < n; i++) {
        char *np;

        if (strncmp(r->touched[i], from, len) || r->touched[i][len] != '/')
            continue;
        if (asprintf(&np, "%s%s", to, r->touched[i] + len) < 0)
            continue;
        touch_locked(r, np);
        free(np);
    }
}

void fe_rec_rename(struct fe_record *r, uint32_t dir, const char *name, uint32_t newdir,
                   const char *newname, unsigned flags)
{
    char *from, *to;

    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    from = child_locked(r, dir, name);
    to = child_locked(r, newdir, newname);
    if (!is_word(from) || !is_word(to) || (flags & RENAME_WHITEOUT)) {
        line_locked(r, "# not recorded: a rename%s",
                    flags & RENAME_WHITEOUT ? " with whiteout" : "");
    } else {
        line_locked(r, "rename %s %s%s", from, to,
                    flags & RENAME_EXCHANGE    ? " exchange"
                    : flags & RENAME_NOREPLACE ? " noreplace"
                                               : "");
        touch_locked(r, from);
        touch_locked(r, to);
        if (flags & RENAME_EXCHANGE) {
            move_locked(r, to, "\x01");
            move_locked(r, from, to);
            move_locked(r, "\x01", from);
        } else {
            drop_locked(r, to);
            move_locked(r, from, to);
            touch_moved_locked(r, from, to);
        }
    }
    free(from);
    free(to);
    pthread_mutex_unlock(&r->lock);
}

/* The path of @ino for a data step, touched; NULL (and a comment) when the
 * recorder has none. */
static const char *data_path_locked(struct fe_record *r, uint32_t ino, const char *what)
{
    const char *p = path_locked(r, ino);

    if (!is_word(p)) {
        line_locked(r, "# not recorded: %s of inode %" PRIu32 " (no name known)", what, ino);
        return NULL;
    }
    touch_locked(r, p);
    return p;
}

void fe_rec_write(struct fe_record *r, uint32_t ino, const void *buf, size_t n, off_t off,
                  bool mmap)
{
    const char *p;

    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    p = data_path_locked(r, ino, "a write");
    if (p) {
        data_lines_locked(r, mmap ? "mmap-store" : "write", p, off, buf, n);
        if (mmap)
            line_locked(r, "writeback %s", p);
    }
    pthread_mutex_unlock(&r->lock);
}

void fe_rec_fallocate(struct fe_record *r, uint32_t ino, int mode, off_t off, off_t len)
{
    bool keep = mode & FALLOC_FL_KEEP_SIZE;
    const char *p;

    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    p = data_path_locked(r, ino, "a fallocate");
    if (p && (mode & FALLOC_FL_PUNCH_HOLE))
        line_locked(r, "punch %s %jd %jd", p, (intmax_t)off, (intmax_t)len);
    else if (p)
        line_locked(r, "%s %s %jd %jd%s", mode & FALLOC_FL_ZERO_RANGE ? "zero-range" : "fallocate",
                    p, (intmax_t)off, (intmax_t)len, keep ? " keep-size" : "");
    pthread_mutex_unlock(&r->lock);
}

void fe_rec_copy(struct fe_record *r, uint32_t in, off_t off_in, uint32_t out, off_t off_out,
                 size_t n)
{
    const char *pi, *po;

    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    pi = data_path_locked(r, in, "a copy_file_range");
    po = pi ? data_path_locked(r, out, "a copy_file_range") : NULL;
    if (po)
        line_locked(r, "copy-range %s %jd %s %jd %zu", pi, (intmax_t)off_in, po, (intmax_t)off_out,
                    n);
    pthread_mutex_unlock(&r->lock);
}

void fe_rec_setattr(struct fe_record *r, uint32_t ino, unsigned mask, const struct stat *st)
{
    const char *p;

    if (!r || !(mask & (UEXT4_SET_SIZE | UEXT4_SET_MODE | UEXT4_SET_UID | UEXT4_SET_GID |
                        UEXT4_SET_ATIME | UEXT4_SET_MTIME)))
        return;
    pthread_mutex_lock(&r->lock);
    p = data_path_locked(r, ino, "a setattr");
    if (p && (mask & UEXT4_SET_SIZE))
        line_locked(r, "truncate %s %jd", p, (intmax_t)st->st_size);
    if (p && (mask & UEXT4_SET_MODE))
        line_locked(r, "chmod %s 0%o", p, (unsigned)(st->st_mode & 07777));
    if (p && (mask & (UEXT4_SET_UID | UEXT4_SET_GID)))
        line_locked(r, "chown %s %u %u", p, (unsigned)st->st_uid, (unsigned)st->st_gid);
    if (p && (mask & (UEXT4_SET_ATIME | UEXT4_SET_MTIME)))
        line_locked(r, "utimes %s %jd %jd", p, (intmax_t)st->st_atim.tv_sec,
                    (intmax_t)st->st_mtim.tv_sec);
    pthread_mutex_unlock(&r->lock);
}

void fe_rec_xattr(struct fe_record *r, uint32_t ino, const char *name, const void *value,
                  size_t size, int flags)
{
    char enc[REC_LINE_MAX + 64];
    const char *p;

    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    p = data_path_locked(r, ino, "an xattr change");
    if (p && !is_word(name))
        line_locked(r, "# not recorded: an xattr name the format cannot carry on %s", p);
    else if (p && !value)
        line_locked(r, "removexattr %s %s", p, name);
    else if (p && encode(value, size, enc) < size)
        line_locked(r, "# not recorded: setxattr %s %s (%zu bytes: longer than a line)", p, name,
                    size);
    else if (p)
        line_locked(r, "setxattr %s %s %s%s", p, name, size ? enc : "\"\"",
                    flags & XATTR_CREATE    ? " create"
                    : flags & XATTR_REPLACE ? " replace"
                                            : "");
    pthread_mutex_unlock(&r->lock);
}

static uint64_t fnv1a(uint64_t h, const unsigned char *b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* "SIZE:HASH" of the file's whole content, as `expect PATH digest` wants. */
static int digest(struct uext4_fs *fs, uint32_t ino, uint64_t size, char *out, size_t len)
{
    static unsigned char buf[1u << 16];
    uint64_t h = 0xcbf29ce484222325ull, done = 0;

    while (done < size) {
        ssize_t n = uext4_read(fs, ino, buf, sizeof(buf), (off_t)done);

        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        h = fnv1a(h, buf, (size_t)n);
        done += (uint64_t)n;
    }
    snprintf(out, len, "%" PRIu64 ":%016" PRIx64, done, h);
    return 0;
}

/* The expect lines for one touched path, as the file system holds it now. */
static void expect_locked(struct fe_record *r, struct uext4_fs *fs, const char *path)
{
    char full[4200], dg[64];
    struct uext4_inode_info info;
    struct stat st;
    uint32_t ino;
    int ret;

    snprintf(full, sizeof(full), "/%s", path);
    ret = uext4_resolve(fs, full, &ino);
    if (ret == -ENOENT) {
        line_locked(r, "expect %s missing", path);
        return;
    }
    if (!ret)
        ret = uext4_getattr(fs, ino, &st);
    if (ret) {
        line_locked(r, "# cannot check %s: %s", path, strerror(-ret));
        return;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
        return; /* the format's `type` knows files, directories and symlinks */
    line_locked(r, "expect %s type %s", path,
                S_ISREG(st.st_mode)   ? "file"
                : S_ISDIR(st.st_mode) ? "dir"
                                      : "symlink");
    if (S_ISREG(st.st_mode)) {
        line_locked(r, "expect %s size %jd", path, (intmax_t)st.st_size);
        ret = digest(fs, ino, (uint64_t)st.st_size, dg, sizeof(dg));
        if (ret)
            line_locked(r, "# cannot read %s: %s", path, strerror(-ret));
        else
            line_locked(r, "expect %s digest %s", path, dg);
    }
    if (uext4_inspect(fs, ino, &info))
        return;
    if (info.is_inline || (info.flags & 0x80000u))
        line_locked(r, "expect %s %s", path, info.is_inline ? "inline" : "extents");
    line_locked(r, "expect %s blocks %" PRIu64, path, info.blocks);
    uext4_inode_info_free(&info);
}

void fe_record_close(struct fe_record *r, struct uext4_fs *fs)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    line_locked(r, "# the file system as the daemon left it at unmount");
    for (unsigned i = 0; i < r->ntouched; i++)
        expect_locked(r, fs, r->touched[i]);
    if (r->out && fclose(r->out) == EOF)
        log_err("record: writing '%s' failed: %s", r->file, strerror(errno));
    r->out = NULL;
    for (unsigned b = 0; b < REC_BUCKETS; b++) {
        for (struct rec_node *n = r->by_ino[b], *next; n; n = next) {
            next = n->next_ino;
            free(n->path);
            free(n);
        }
        for (struct rec_str *e = r->touched_set[b], *next; e; e = next) {
            next = e->next;
            free(e->s);
            free(e);
        }
    }
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_destroy(&r->lock);
    free(r->touched);
    free(r->file);
    free(r);
}

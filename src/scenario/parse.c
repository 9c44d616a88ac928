/* Scenario parsing: one line at a time into struct scn_step, every problem
 * reported as FILE:LINE: problem (doc/scenario-format.md is the grammar). */
#include "scenario/scn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/xattr.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096
/* repeat N: at most this many steps after expansion, so a typo in N cannot
 * exhaust memory */
#define MAX_EXPANDED 100000

/* How a step keyword reads its arguments: P path, Q second path, O offset,
 * N length/size, D bytes, X xattr name, M optional mode (octal), F R C one
 * optional flag word (flag_word), G a required one, * any number of them. */
static const struct keyword {
    const char *word;
    enum scn_op op;
    const char *args;
    int fmode; /* fallocate mode */
} keywords[] = {
    {"create", SCN_CREATE, "PM", 0},
    {"open", SCN_OPEN, "P*", O_RDWR},
    {"close", SCN_CLOSE, "P", 0},
    {"write", SCN_WRITE, "POD", 0},
    {"read", SCN_READ, "POD", 0},
    {"mmap-store", SCN_MMAP_STORE, "POD", 0},
    {"writeback", SCN_WRITEBACK, "P", 0},
    {"truncate", SCN_TRUNCATE, "PN", 0},
    {"fallocate", SCN_FALLOCATE, "PONF", 0},
    {"punch", SCN_FALLOCATE, "PON", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE},
    {"zero-range", SCN_FALLOCATE, "PONF", FALLOC_FL_ZERO_RANGE},
    {"collapse-range", SCN_FALLOCATE, "PON", FALLOC_FL_COLLAPSE_RANGE},
    {"insert-range", SCN_FALLOCATE, "PON", FALLOC_FL_INSERT_RANGE},
    {"fsync", SCN_FSYNC, "P", 0},
    {"unlink", SCN_UNLINK, "P", 0},
    {"rmdir", SCN_RMDIR, "P", 0},
    {"mkdir", SCN_MKDIR, "PM", 0},
    {"rename", SCN_RENAME, "PQR", 0},
    {"link", SCN_LINK, "PQ", 0},
    {"symlink", SCN_SYMLINK, "PQ", 0},
    {"setxattr", SCN_SETXATTR, "PXDC", 0},
    {"removexattr", SCN_REMOVEXATTR, "PX", 0},
    {"remount", SCN_REMOUNT, "", 0},
    {"fsck-clean", SCN_FSCK_CLEAN, "", 0},
    {"sync", SCN_SYNC, "", 0},
    {"syncfs", SCN_SYNC, "P", 0},
    {"fdatasync", SCN_FDATASYNC, "P", 0},
    {"drop-caches", SCN_DROP_CACHES, "", 0},
    {"sleep", SCN_SLEEP, "N", 0},
    /* V value, W value2; chmod's mode is octal as 0640 */
    {"chmod", SCN_SETATTR, "PV", UEXT4_SET_MODE},
    {"chown", SCN_SETATTR, "PVW", UEXT4_SET_UID | UEXT4_SET_GID},
    {"utimes", SCN_SETATTR, "PVW", UEXT4_SET_ATIME | UEXT4_SET_MTIME},
    /* the resulting offset; none with `=> ENXIO` */
    {"seek-data", SCN_SEEK, "POV", SEEK_DATA},
    {"seek-hole", SCN_SEEK, "POV", SEEK_HOLE},
    {"mmap-load", SCN_MMAP_LOAD, "POD", 0},
    /* copy-range FROM OFF_IN TO OFF_OUT LEN */
    {"copy-range", SCN_COPY_RANGE, "POQVN", 0},
    {"munmap", SCN_MUNMAP, "P", 0},
    {"msync-async", SCN_MSYNC_ASYNC, "P", 0},
    {"mmap-private-store", SCN_MMAP_PRIVATE_STORE, "POD", 0},
    {"mprotect", SCN_MPROTECT, "PG", 0},
    {"stamp", SCN_STAMP, "P", 0},
};

static const struct what_word {
    const char *word;
    enum scn_what what;
    char arg; /* '-' none, 'N' number, 'D' bytes, 'A' alternatives, 'L' names,
               * 'F' flags, 'T' type, 'X' name, 'V' name and bytes, 'P' path,
               * 'S' statfs field and value */
} whats[] = {
    {"inline", SCN_W_INLINE, '-'},
    {"extents", SCN_W_EXTENTS, '-'},
    {"flags", SCN_W_FLAGS, 'F'},
    {"disk-size", SCN_W_DISK_SIZE, 'N'},
    {"inline-size", SCN_W_INLINE_SIZE, 'N'},
    {"capacity", SCN_W_CAPACITY, 'N'},
    {"blocks", SCN_W_BLOCKS, 'N'},
    {"nextents", SCN_W_NEXTENTS, 'N'},
    {"size", SCN_W_SIZE, 'N'},
    {"nlink", SCN_W_NLINK, 'N'},
    {"type", SCN_W_TYPE, 'T'},
    {"exists", SCN_W_EXISTS, '-'},
    {"missing", SCN_W_MISSING, '-'},
    {"content", SCN_W_CONTENT, 'D'},
    {"content-one-of", SCN_W_CONTENT_ONE_OF, 'A'},
    {"xattr", SCN_W_XATTR, 'V'},
    {"no-xattr", SCN_W_NO_XATTR, 'X'},
    {"xattrs", SCN_W_XATTRS, 'L'},
    {"entries", SCN_W_ENTRIES, 'L'},
    {"dirty-pages", SCN_W_DIRTY_PAGES, 'N'},
    {"mode", SCN_W_MODE, 'N'},
    {"uid", SCN_W_UID, 'N'},
    {"gid", SCN_W_GID, 'N'},
    {"mtime", SCN_W_MTIME, 'N'},
    {"digest", SCN_W_DIGEST, 'X'},
    {"statfs", SCN_W_STATFS, 'S'},
    {"newer", SCN_W_NEWER, 'P'},
    {"mtime-changed", SCN_W_MTIME_CHANGED, '-'},
    {"mtime-same", SCN_W_MTIME_SAME, '-'},
};

/* The statvfs fields `expect . statfs FIELD N` can name. */
static const char *const statfs_fields[] = {"blocks", "bfree", "bavail", "files", "ffree"};

static const struct {
    const char *name;
    uint32_t bit;
} flag_names[] = {
    {"inline", 0x10000000u},    {"extents", 0x00080000u}, {"index", 0x00001000u},
    {"immutable", 0x00000010u}, {"append", 0x00000020u},  {"huge", 0x00040000u},
    {"ea_inode", 0x00200000u},  {"noatime", 0x00000080u},
};

struct parser {
    const char *file;
    int line;
    int errors;
    struct scn_script *s;
    bool seen_step;
    int parallel_line;     /* inside a parallel block: its line, else 0 */
    struct scn_step *body; /* the parallel block's steps, moved at `end` */
    unsigned nbody;
    /* inside `repeat N`: its line, the count, and the body's lines (with
     * their numbers), parsed N times at its `end`; depth counts the blocks
     * opened inside it */
    int repeat_line;
    int64_t repeat_n;
    char **rep_text;
    int *rep_lineno;
    unsigned nrep, rep_depth;
};

static void perr(struct parser *p, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: ", p->file, p->line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    p->errors++;
}

const char *scn_op_name(enum scn_op op)
{
    if (op == SCN_EXPECT)
        return "expect";
    if (op == SCN_PARALLEL)
        return "parallel";
    if (op == SCN_SYNC)
        return "sync"; /* and syncfs */
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (keywords[i].op == op)
            return keywords[i].word;
    return "?";
}

/* The keyword a step was written with, for messages. */
const char *scn_step_name(const struct scn_step *st)
{
    if (st->op == SCN_SEEK)
        return st->mode == SEEK_HOLE ? "seek-hole" : "seek-data";
    if (st->op == SCN_SYNC)
        return st->path ? "syncfs" : "sync";
    if (st->op == SCN_SETATTR)
        return st->mode & UEXT4_SET_MODE ? "chmod" : st->mode & UEXT4_SET_UID ? "chown" : "utimes";
    return scn_op_name(st->op);
}

/* Split "word[tag,tag]" into the word and its tags. */
static int parse_tags(struct parser *p, char *tok, unsigned *tags)
{
    static const struct {
        const char *name;
        unsigned tag;
    } names[] = {{"lib", SCN_TAG_LIB},         {"mount", SCN_TAG_MOUNT},
                 {"kernel", SCN_TAG_KERNEL},   {"keep", SCN_TAG_KEEP},
                 {"convert", SCN_TAG_CONVERT}, {"uext4", SCN_TAG_LIB | SCN_TAG_MOUNT},
                 {"fake", SCN_TAG_FAKE}};
    char *open = strchr(tok, '['), *save = NULL;

    *tags = 0;
    if (!open)
        return 0;
    if (tok[strlen(tok) - 1] != ']') {
        perr(p, "'%s': a qualifier is written word[tag,...] with no spaces", tok);
        return -EINVAL;
    }
    tok[strlen(tok) - 1] = '\0';
    *open = '\0';
    for (char *t = strtok_r(open + 1, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t i;

        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (!strcmp(names[i].name, t))
                break;
        if (i == sizeof(names) / sizeof(names[0])) {
            perr(p, "unknown qualifier '%s' (lib, mount, kernel, uext4, fake, keep, convert)", t);
            return -EINVAL;
        }
        *tags |= names[i].tag;
    }
    return 0;
}

static int num_arg(struct parser *p, const char *tok, const char *what, int64_t *out)
{
    if (scn_parse_num(tok, out) == 0)
        return 0;
    perr(p, "%s '%s' is not a number", what, tok);
    return -EINVAL;
}

static int data_arg(struct parser *p, const char *tok, struct scn_data *d)
{
    char why[256];

    if (scn_parse_data(tok, d, why, sizeof(why)) == 0)
        return 0;
    perr(p, "%s", why);
    return -EINVAL;
}

static int path_arg(struct parser *p, const char *tok, char **out)
{
    if (tok[0] == '/' || tok[0] == '"' || strstr(tok, "..")) {
        perr(p, "path '%s' must be relative to the root, unquoted, without '..'", tok);
        return -EINVAL;
    }
    *out = strdup(tok);
    return *out ? 0 : -ENOMEM;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A comma list of names ("-" for none), sorted. */
static int names_arg(const char *tok, struct scn_step *st)
{
    char *copy = strdup(tok), *save = NULL;

    if (!copy)
        return -ENOMEM;
    st->names = calloc(strlen(tok) + 1, sizeof(char *));
    if (!st->names) {
        free(copy);
        return -ENOMEM;
    }
    if (strcmp(tok, "-"))
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            st->names[st->nnames++] = strdup(t);
    qsort(st->names, st->nnames, sizeof(char *), compare_names);
    free(copy);
    return 0;
}

static int flags_arg(struct parser *p, char **tok, int ntok, struct scn_step *st)
{
    for (int i = 0; i < ntok; i++) {
        char sign = tok[i][0];
        size_t k;

        if (sign == '=') {
            int64_t v;

            if (num_arg(p, tok[i] + 1, "flags", &v))
                return -EINVAL;
            st->flags_exact = true;
            st->flags_set = (uint32_t)v;
            continue;
        }
        for (k = 0; k < sizeof(flag_names) / sizeof(flag_names[0]); k++)
            if (!strcmp(flag_names[k].name, tok[i] + 1))
                break;
        if ((sign != '+' && sign != '-') || k == sizeof(flag_names) / sizeof(flag_names[0])) {
            perr(p,
                 "flags: '%s' is not +NAME, -NAME or =HEX (names: inline, extents, index, "
                 "immutable, append, huge, ea_inode, noatime)",
                 tok[i]);
            return -EINVAL;
        }
        *(sign == '+' ? &st->flags_set : &st->flags_clear) |= flag_names[k].bit;
    }
    if (!ntok) {
        perr(p, "flags needs +NAME, -NAME or =HEX");
        return -EINVAL;
    }
    return 0;
}

/* content-one-of: two or more byte specifications, any of which may match. */
static int alts_arg(struct parser *p, char **args, int nargs, struct scn_step *st)
{
    st->alts = calloc((size_t)(nargs ? nargs : 1), sizeof(*st->alts));
    for (int i = 0; st->alts && i < nargs; i++, st->nalts++)
        if (data_arg(p, args[i], &st->alts[i]))
            return -EINVAL;
    if (nargs >= 2)
        return 0;
    perr(p, "content-one-of needs at least two byte specifications");
    return -EINVAL;
}

/* statfs FIELD [>=|<=]N */
static int statfs_arg(struct parser *p, const char *field, const char *v, struct scn_step *st)
{
    size_t i;

    for (i = 0; i < sizeof(statfs_fields) / sizeof(statfs_fields[0]); i++)
        if (!strcmp(statfs_fields[i], field))
            break;
    if (i == sizeof(statfs_fields) / sizeof(statfs_fields[0])) {
        perr(p, "expect statfs: '%s' is not blocks, bfree, bavail, files or ffree", field);
        return -EINVAL;
    }
    st->name = strdup(field);
    st->mode = !strncmp(v, ">=", 2) ? SCN_CMP_GE : !strncmp(v, "<=", 2) ? SCN_CMP_LE : SCN_CMP_EQ;
    return num_arg(p, v + (st->mode == SCN_CMP_EQ ? 0 : 2), "statfs value", &st->value);
}

/* The arguments after PATH WHAT, by the check's argument kind (its count
 * already checked). */
static int expect_args(struct parser *p, const struct what_word *w, char **tok, struct scn_step *st)
{
    switch (w->arg) {
    case 'N':
        return num_arg(p, tok[3], w->word, &st->value);
    case 'D':
        return data_arg(p, tok[3], &st->data);
    case 'L':
        return names_arg(tok[3], st);
    case 'X':
        st->name = strdup(tok[3]);
        return 0;
    case 'V':
        st->name = strdup(tok[3]);
        return data_arg(p, tok[4], &st->data);
    case 'P':
        return path_arg(p, tok[3], &st->path2);
    case 'S':
        return statfs_arg(p, tok[3], tok[4], st);
    case 'T':
        if (strcmp(tok[3], "file") && strcmp(tok[3], "dir") && strcmp(tok[3], "symlink")) {
            perr(p, "expect type: '%s' is not file, dir or symlink", tok[3]);
            return -EINVAL;
        }
        st->name = strdup(tok[3]);
        return 0;
    }
    return 0;
}

static int parse_expect(struct parser *p, char **tok, int ntok, struct scn_step *st)
{
    const struct what_word *w = NULL;
    int nargs = ntok - 3;

    if (ntok < 3) {
        perr(p, "expect needs a path and what to check");
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(whats) / sizeof(whats[0]); i++)
        if (!strcmp(whats[i].word, tok[2]))
            w = &whats[i];
    if (!w) {
        perr(p, "expect: unknown check '%s'", tok[2]);
        return -EINVAL;
    }
    st->what = w->what;
    if (path_arg(p, tok[1], &st->path))
        return -EINVAL;
    if (w->arg == 'F')
        return flags_arg(p, tok + 3, nargs, st);
    if (w->arg == 'A')
        return alts_arg(p, tok + 3, nargs, st);
    if (nargs != (w->arg == '-' ? 0 : w->arg == 'V' || w->arg == 'S' ? 2 : 1)) {
        perr(p, "expect %s: wrong number of arguments", w->word);
        return -EINVAL;
    }
    return expect_args(p, w, tok, st);
}

/* The optional trailing word of fallocate/zero-range, rename and setxattr. */
static int flag_word(struct parser *p, const struct keyword *kw, const char *tok, int *mode)
{
    if ((kw->op == SCN_FALLOCATE) && !strcmp(tok, "keep-size"))
        *mode |= FALLOC_FL_KEEP_SIZE;
    else if (kw->op == SCN_RENAME && !strcmp(tok, "noreplace"))
        *mode = UEXT4_RENAME_NOREPLACE;
    else if (kw->op == SCN_RENAME && !strcmp(tok, "exchange"))
        *mode = UEXT4_RENAME_EXCHANGE;
    else if (kw->op == SCN_SETXATTR && !strcmp(tok, "create"))
        *mode = XATTR_CREATE;
    else if (kw->op == SCN_SETXATTR && !strcmp(tok, "replace"))
        *mode = XATTR_REPLACE;
    else if (kw->op == SCN_MPROTECT && (!strcmp(tok, "ro") || !strcmp(tok, "rw")))
        *mode = PROT_READ | (tok[1] == 'w' ? PROT_WRITE : 0);
    else if (kw->op == SCN_OPEN && !strcmp(tok, "ro"))
        *mode &= ~O_ACCMODE; /* O_RDONLY */
    else if (kw->op == SCN_OPEN && !strcmp(tok, "append"))
        *mode |= O_APPEND;
    else if (kw->op == SCN_OPEN && !strcmp(tok, "trunc"))
        *mode |= O_TRUNC;
    else if (kw->op == SCN_OPEN && !strcmp(tok, "direct"))
        *mode |= O_DIRECT;
    else {
        perr(p, "%s: unexpected '%s'", kw->word, tok);
        return -EINVAL;
    }
    return 0;
}

/* The argument of code @code (keyword.args) at tok[*@i] into @st; the
 * flags code '*' takes the rest of the tokens, leaving *@i at the last. */
static int parse_arg(struct parser *p, const struct keyword *kw, char code, char **tok, int ntok,
                     int *i, struct scn_step *st)
{
    int64_t v;
    int ret = 0;

    switch (code) {
    case 'P':
        ret = path_arg(p, tok[*i], &st->path);
        break;
    case 'Q':
        /* A symlink's target may be anything. */
        if (kw->op == SCN_SYMLINK) {
            st->path2 = st->path;
            ret = path_arg(p, tok[*i], &st->path);
        } else {
            ret = path_arg(p, tok[*i], &st->path2);
        }
        break;
    case 'O':
        ret = num_arg(p, tok[*i], "offset", &st->off);
        break;
    case 'N':
        ret = num_arg(p, tok[*i], "length", &st->len);
        break;
    case 'D':
        ret = data_arg(p, tok[*i], &st->data);
        break;
    case 'X':
        st->name = strdup(tok[*i]);
        break;
    case 'M':
        ret = num_arg(p, tok[*i], "mode", &v);
        st->mode = (int)v;
        break;
    case 'V':
        ret = num_arg(p, tok[*i], "value", &st->value);
        break;
    case 'W':
        ret = num_arg(p, tok[*i], "value", &st->value2);
        break;
    case '*':
        for (; *i + 1 < ntok && !ret; (*i)++)
            ret = flag_word(p, kw, tok[*i], &st->mode);
        if (!ret)
            ret = flag_word(p, kw, tok[*i], &st->mode);
        break;
    default:
        ret = flag_word(p, kw, tok[*i], &st->mode);
    }
    return ret;
}

static int parse_step(struct parser *p, const struct keyword *kw, char **tok, int ntok,
                      struct scn_step *st)
{
    const char *a = kw->args;
    int i = 1, ret = 0;

    st->op = kw->op;
    st->mode = kw->fmode;
    for (; *a && !ret; a++) {
        /* seek-data/seek-hole have no result offset when they must fail */
        bool optional =
            strchr("MFRC*", *a) != NULL || (*a == 'V' && kw->op == SCN_SEEK && st->want_errno);

        if (i >= ntok) {
            if (optional)
                continue;
            perr(p, "%s: missing arguments (%s)", kw->word, kw->args);
            return -EINVAL;
        }
        ret = parse_arg(p, kw, *a, tok, ntok, &i, st);
        i++;
    }
    if (!ret && i < ntok) {
        perr(p, "%s: unexpected '%s'", kw->word, tok[i]);
        ret = -EINVAL;
    }
    if ((kw->op == SCN_CREATE || kw->op == SCN_MKDIR) && !st->mode)
        st->mode = kw->op == SCN_CREATE ? 0644 : 0755;
    return ret;
}

/* `mount-opts kernel=OPTS uext4=OPTS`, `debugfs "CMD"`, `fill N`. */
static int parse_image_edits(struct parser *p, char **tok, int ntok)
{
    struct scn_image *im = &p->s->image;

    if (!strcmp(tok[0], "fill")) {
        if (ntok != 2 || num_arg(p, tok[1], "fill", &im->fill_free)) {
            if (ntok != 2)
                perr(p, "fill takes one number: the blocks to leave free");
            return -EINVAL;
        }
        return 0;
    }
    if (!strcmp(tok[0], "debugfs")) {
        struct scn_data d;
        char **na;

        if (ntok != 2 || tok[1][0] != '"') {
            perr(p, "debugfs takes one quoted command (debugfs \"set_super_value ...\")");
            return -EINVAL;
        }
        if (data_arg(p, tok[1], &d))
            return -EINVAL;
        na = realloc(im->debugfs, (im->ndebugfs + 1) * sizeof(*na));
        if (!na || memchr(d.bytes, '\0', d.len) || memchr(d.bytes, '\n', d.len)) {
            free(d.bytes);
            if (na)
                im->debugfs = na;
            perr(p, "debugfs: the command must be one line of text");
            return -EINVAL;
        }
        im->debugfs = na;
        d.bytes[d.len] = '\0'; /* scn_parse_data leaves room */
        im->debugfs[im->ndebugfs++] = (char *)d.bytes;
        return 0;
    }
    for (int i = 1; i < ntok; i++) {
        char *eq = strchr(tok[i], '=');
        char *dst = NULL;

        if (eq && !strncmp(tok[i], "kernel=", 7))
            dst = im->kernel_opts;
        else if (eq && !strncmp(tok[i], "uext4=", 6))
            dst = im->uext4_opts;
        if (!dst || strlen(eq + 1) >= sizeof(im->kernel_opts) || !eq[1]) {
            perr(p, "mount-opts: '%s' is not kernel=OPTS or uext4=OPTS", tok[i]);
            return -EINVAL;
        }
        strcpy(dst, eq + 1);
    }
    if (ntok < 2) {
        perr(p, "mount-opts needs kernel=OPTS and/or uext4=OPTS");
        return -EINVAL;
    }
    return 0;
}

/* One KEY=VALUE of an image line (@eq: VALUE, the '=' cut off). */
static int image_key(struct parser *p, const char *key, const char *eq)
{
    struct scn_script *s = p->s;
    int64_t v = 0;

    if (!strcmp(key, "features") && strlen(eq) < sizeof(s->image.features)) {
        strcpy(s->image.features, eq);
        return 0;
    }
    if (num_arg(p, eq, key, &v))
        return -EINVAL;
    if (!strcmp(key, "size") && v >= (1 << 20))
        s->image.size = (uint64_t)v;
    else if (!strcmp(key, "inode_size"))
        s->image.inode_size = (unsigned)v;
    else if (!strcmp(key, "blocksize"))
        s->image.block_size = (unsigned)v;
    else {
        perr(p,
             "image: unknown or bad key '%s' (size>=1M, inode_size, blocksize, "
             "features)",
             key);
        return -EINVAL;
    }
    return 0;
}

/* image FSTYPE [KEY=VALUE]... */
static int parse_image(struct parser *p, char **tok, int ntok)
{
    struct scn_script *s = p->s;

    if (ntok < 2 || strlen(tok[1]) >= sizeof(s->image.fstype)) {
        perr(p, "image needs a file system type (ext2, ext3, ext4)");
        return -EINVAL;
    }
    strcpy(s->image.fstype, tok[1]);
    for (int i = 2; i < ntok; i++) {
        char *eq = strchr(tok[i], '=');

        if (!eq) {
            perr(p, "image: '%s' is not KEY=VALUE", tok[i]);
            return -EINVAL;
        }
        *eq++ = '\0';
        if (image_key(p, tok[i], eq))
            return -EINVAL;
    }
    return 0;
}

/* backends B... or inline-mmap M...: the tags the script runs under. */
static int parse_tag_set(struct parser *p, char **tok, int ntok)
{
    struct scn_script *s = p->s;
    unsigned *set = !strcmp(tok[0], "backends") ? &s->backends : &s->modes;

    *set = 0;
    for (int i = 1; i < ntok; i++) {
        unsigned t;

        char word[64];
        snprintf(word, sizeof(word), "x[%s]", tok[i]);
        if (parse_tags(p, word, &t))
            return -EINVAL;
        if (set == &s->backends ? (t & ~SCN_TAGS_BACKEND) : (t & ~SCN_TAGS_MODE)) {
            perr(p, "%s: '%s' does not belong here", tok[0], tok[i]);
            return -EINVAL;
        }
        *set |= t;
    }
    if (!*set) {
        perr(p, "%s: needs at least one value", tok[0]);
        return -EINVAL;
    }
    return 0;
}

static int parse_header(struct parser *p, char **tok, int ntok)
{
    if (!strcmp(tok[0], "fill") || !strcmp(tok[0], "debugfs") || !strcmp(tok[0], "mount-opts"))
        return parse_image_edits(p, tok, ntok);
    if (!strcmp(tok[0], "no-final-fsck")) {
        p->s->final_fsck = false;
        if (ntok == 1)
            return 0;
        perr(p, "no-final-fsck takes no arguments");
        return -EINVAL;
    }
    if (!strcmp(tok[0], "image"))
        return parse_image(p, tok, ntok);
    return parse_tag_set(p, tok, ntok);
}

static struct scn_step *new_step(struct parser *p)
{
    struct scn_step **arr = p->parallel_line ? &p->body : &p->s->steps;
    unsigned *n = p->parallel_line ? &p->nbody : &p->s->nsteps;
    struct scn_step *na = realloc(*arr, (*n + 1) * sizeof(**arr));

    if (!na)
        return NULL;
    *arr = na;
    memset(&na[*n], 0, sizeof(na[0]));
    na[*n].line = p->line;
    return &na[(*n)++];
}

/* `end` of a parallel block: the block's step keeps its body aside until
 * the whole file is read (place_bodies). */
static void close_parallel(struct parser *p)
{
    struct scn_script *s = p->s;
    struct scn_step *blk = &s->steps[s->nsteps - 1];

    if (p->nbody < 2 || p->nbody > SCN_MAX_PARALLEL)
        perr(p, "a parallel block needs 2 to %d steps", SCN_MAX_PARALLEL);
    blk->body = p->body;
    blk->count = p->nbody;
    p->body = NULL;
    p->nbody = 0;
    p->parallel_line = 0;
}

static void parse_outcome(struct parser *p, char *spec, struct scn_step *st)
{
    char *save = NULL;
    unsigned n = 0;

    for (char *t = strtok_r(spec, "|", &save); t; t = strtok_r(NULL, "|", &save), n++) {
        int e = 0;

        /* short:N, or short for any count short of the whole */
        if (!strncmp(t, "short:", 6) || !strcmp(t, "short")) {
            st->short_len = -1;
            if (st->want_short || (t[5] && num_arg(p, t + 6, "short count", &st->short_len)))
                return;
            st->want_short = true;
            st->short_only = n == 0;
            continue;
        }
        if (strcmp(t, "ok") && !(e = scn_errno_by_name(t))) {
            perr(p, "'=> %s': not an errno name (ENOENT, ENOSPC, ...), ok or short:N", t);
            return;
        }
        if (n >= 1 + sizeof(st->want_alt) / sizeof(st->want_alt[0])) {
            perr(p, "'=>': at most %zu results separated by |",
                 1 + sizeof(st->want_alt) / sizeof(st->want_alt[0]));
            return;
        }
        if (n == 0 || (n == 1 && st->short_only))
            st->want_errno = e;
        else
            st->want_alt[st->nalt++] = e;
        if (n == 1 && st->short_only)
            st->short_only = false;
    }
}

static void parse_line(struct parser *p, char *line);

/* The first word of @line without its qualifiers ("" if none). */
static void first_word(const char *line, char *out, size_t len)
{
    size_t skip = strspn(line, " \t"), n = strcspn(line + skip, " \t[#");

    snprintf(out, len, "%.*s", (int)n, line + skip);
}

/* Inside `repeat N`: keep the body's lines until its own `end`, then parse
 * them N times (a nested parallel or repeat block is parsed then, too). */
static void collect_repeat(struct parser *p, const char *line)
{
    char word[32], **text;
    int *lineno, end_line = p->line;
    unsigned n;
    int64_t times;

    first_word(line, word, sizeof(word));
    if (!strcmp(word, "parallel") || !strcmp(word, "repeat"))
        p->rep_depth++;
    if (strcmp(word, "end") || p->rep_depth-- > 0) {
        char **nt = realloc(p->rep_text, (p->nrep + 1) * sizeof(*nt));
        int *nl = nt ? realloc(p->rep_lineno, (p->nrep + 1) * sizeof(*nl)) : NULL;

        if (nt)
            p->rep_text = nt;
        if (nl)
            p->rep_lineno = nl;
        if (!nt || !nl || !(p->rep_text[p->nrep] = strdup(line))) {
            perr(p, "out of memory");
            return;
        }
        p->rep_lineno[p->nrep++] = p->line;
        return;
    }
    /* The block's own end: take its lines out first, so that a repeat in
     * the body starts a collection of its own. */
    text = p->rep_text;
    lineno = p->rep_lineno;
    n = p->nrep;
    times = p->repeat_n;
    p->rep_text = NULL;
    p->rep_lineno = NULL;
    p->nrep = p->rep_depth = 0;
    p->repeat_line = 0;
    if (!n) {
        perr(p, "an empty repeat block");
        times = 0;
    }
    for (int64_t k = 0; k < times && !p->errors; k++) {
        for (unsigned i = 0; i < n && !p->errors; i++) {
            char copy[LINE_MAX_LEN + 2];

            snprintf(copy, sizeof(copy), "%s", text[i]);
            p->line = lineno[i];
            parse_line(p, copy);
        }
        if (p->s->nsteps + p->nbody > MAX_EXPANDED) {
            perr(p, "repeat: more than %d steps once expanded", MAX_EXPANDED);
            break;
        }
    }
    p->line = end_line;
    for (unsigned i = 0; i < n; i++)
        free(text[i]);
    free(text);
    free(lineno);
}

/* Is @word one of the header's keywords (allowed before the first step only)? */
static bool is_header_word(const char *word)
{
    static const char *const header[] = {"image",      "backends", "inline-mmap", "no-final-fsck",
                                         "mount-opts", "debugfs",  "fill"};

    for (size_t i = 0; i < sizeof(header) / sizeof(header[0]); i++)
        if (!strcmp(word, header[i]))
            return true;
    return false;
}

/* repeat N: the lines up to 'end' are collected, then expanded N times. */
static void open_repeat(struct parser *p, char **tok, int ntok, unsigned tags)
{
    if (p->parallel_line || tags || ntok != 2 || num_arg(p, tok[1], "repeat", &p->repeat_n) ||
        p->repeat_n < 1 || p->repeat_n > MAX_EXPANDED) {
        perr(p,
             "repeat N (1 to %d) opens a block closed by 'end'; not inside parallel, "
             "no qualifiers",
             MAX_EXPANDED);
        return;
    }
    p->repeat_line = p->line;
}

static void open_parallel(struct parser *p, int ntok, unsigned tags)
{
    struct scn_step *st;

    if (p->parallel_line || ntok != 1) {
        perr(p, "parallel blocks do not nest and take no arguments");
        return;
    }
    st = new_step(p);
    if (st) {
        st->op = SCN_PARALLEL;
        st->tags = tags;
    }
    p->parallel_line = p->line;
}

/* An expect line or an action step into @st (its tags and outcome set). */
static void parse_step_line(struct parser *p, char **tok, int ntok, struct scn_step *st)
{
    size_t k;

    if (!strcmp(tok[0], "expect")) {
        st->op = SCN_EXPECT;
        if (st->want_errno)
            perr(p, "expect lines take no '=> ERRNO'");
        if (p->parallel_line)
            perr(p, "expect cannot run inside a parallel block: check after 'end'");
        parse_expect(p, tok, ntok, st);
        return;
    }
    for (k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
        if (!strcmp(keywords[k].word, tok[0]))
            break;
    if (k == sizeof(keywords) / sizeof(keywords[0])) {
        perr(p, "unknown step '%s'", tok[0]);
        return;
    }
    /* stamp: the run's remembered mtimes are not shared between threads */
    if (p->parallel_line && (keywords[k].op == SCN_REMOUNT || keywords[k].op == SCN_FSCK_CLEAN ||
                             keywords[k].op == SCN_STAMP))
        perr(p, "%s cannot run inside a parallel block", tok[0]);
    if (st->want_short && keywords[k].op != SCN_WRITE)
        perr(p, "'=> short:N' is a write's result only");
    parse_step(p, &keywords[k], tok, ntok, st);
}

/* A line that is not header: 'end', repeat, parallel or a step. */
static void parse_body_line(struct parser *p, char **tok, int ntok)
{
    struct scn_step *st;
    unsigned tags;

    if (!strcmp(tok[0], "end")) {
        if (!p->parallel_line)
            perr(p, "'end' without 'parallel' or 'repeat'");
        else
            close_parallel(p);
        return;
    }
    p->seen_step = true;
    if (parse_tags(p, tok[0], &tags))
        return;
    if (!strcmp(tok[0], "repeat")) {
        open_repeat(p, tok, ntok, tags);
        return;
    }
    if (!strcmp(tok[0], "parallel")) {
        open_parallel(p, ntok, tags);
        return;
    }
    st = new_step(p);
    if (!st)
        return;
    st->tags = tags;
    /* A trailing "=> ENAME" (or "=> ok") states the step's result;
     * "=> ok|ENOSPC" accepts any of up to four. */
    if (ntok >= 2 && !strcmp(tok[ntok - 2], "=>"))
        parse_outcome(p, tok[ntok - 1], st);
    if (ntok >= 2 && !strcmp(tok[ntok - 2], "=>"))
        ntok -= 2;
    parse_step_line(p, tok, ntok, st);
}

static void parse_line(struct parser *p, char *line)
{
    char *tok[SCN_MAX_TOKENS], why[256];
    int ntok;

    if (p->repeat_line) {
        collect_repeat(p, line);
        return;
    }
    ntok = scn_tokenize(line, tok, why, sizeof(why));
    if (ntok < 0) {
        perr(p, "%s", why);
        return;
    }
    if (ntok == 0)
        return;
    if (!is_header_word(tok[0]))
        parse_body_line(p, tok, ntok);
    else if (p->seen_step)
        perr(p, "'%s' belongs in the header, before the first step", tok[0]);
    else
        parse_header(p, tok, ntok);
}

/* Append every parallel block's body after the top-level steps. */
static int place_bodies(struct scn_script *s)
{
    unsigned total = s->nsteps;
    struct scn_step *na;

    for (unsigned i = 0; i < s->nsteps; i++)
        if (s->steps[i].op == SCN_PARALLEL)
            total += s->steps[i].count;
    na = realloc(s->steps, (total ? total : 1) * sizeof(*na));
    if (!na)
        return -ENOMEM;
    s->steps = na;
    s->ntop = s->nsteps;
    for (unsigned i = 0; i < s->ntop; i++) {
        struct scn_step *blk = &s->steps[i];
        if (blk->op != SCN_PARALLEL)
            continue;
        memcpy(&s->steps[s->nsteps], blk->body, blk->count * sizeof(*blk->body));
        free(blk->body);
        blk->body = NULL;
        blk->first = s->nsteps;
        s->nsteps += blk->count;
    }
    return 0;
}

static void step_free(struct scn_step *st);

int scn_parse_file(const char *file, struct scn_script *out)
{
    struct parser p = {.file = file, .s = out};
    char line[LINE_MAX_LEN + 2];
    const char *base = strrchr(file, '/');
    FILE *f;

    memset(out, 0, sizeof(*out));
    out->file = strdup(file);
    out->name = strdup(base ? base + 1 : file);
    if (!out->file || !out->name)
        return -ENOMEM;
    if (strlen(out->name) > 4 && !strcmp(out->name + strlen(out->name) - 4, ".scn"))
        out->name[strlen(out->name) - 4] = '\0';
    out->backends = SCN_TAGS_BACKEND;
    out->modes = SCN_TAG_KEEP;
    out->final_fsck = true;
    out->image.fill_free = -1;
    f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open: %s\n", file, strerror(errno));
        return -errno;
    }
    while (fgets(line, sizeof(line), f)) {
        p.line++;
        if (!strchr(line, '\n') && !feof(f)) {
            perr(&p, "line longer than %d characters", LINE_MAX_LEN);
            break;
        }
        line[strcspn(line, "\n")] = '\0';
        parse_line(&p, line);
    }
    fclose(f);
    if (p.repeat_line) {
        p.line = p.repeat_line;
        perr(&p, "repeat block without 'end'");
        for (unsigned i = 0; i < p.nrep; i++)
            free(p.rep_text[i]);
        free(p.rep_text);
        free(p.rep_lineno);
    }
    if (p.parallel_line) {
        p.line = p.parallel_line;
        perr(&p, "parallel block without 'end'");
        for (unsigned i = 0; i < p.nbody; i++)
            step_free(&p.body[i]);
        free(p.body);
    }
    if (!out->image.fstype[0]) {
        p.line = 1;
        perr(&p, "no 'image' line (e.g. image ext4 inode_size=256 features=inline_data "
                 "size=16M)");
    }
    if (!p.errors && place_bodies(out))
        p.errors++;
    return p.errors ? -EINVAL : 0;
}

static void step_free(struct scn_step *st)
{
    free(st->path);
    free(st->path2);
    free(st->name);
    free(st->data.bytes);
    for (unsigned i = 0; i < st->nalts; i++)
        free(st->alts[i].bytes);
    free(st->alts);
    for (unsigned i = 0; i < st->nnames; i++)
        free(st->names[i]);
    free(st->names);
    /* a parallel block's body not yet placed (the file had errors) */
    for (unsigned i = 0; st->body && i < st->count; i++)
        step_free(&st->body[i]);
    free(st->body);
}

void scn_script_free(struct scn_script *s)
{
    for (unsigned i = 0; i < s->nsteps; i++)
        step_free(&s->steps[i]);
    free(s->steps);
    for (unsigned i = 0; i < s->image.ndebugfs; i++)
        free(s->image.debugfs[i]);
    free(s->image.debugfs);
    free(s->file);
    free(s->name);
    memset(s, 0, sizeof(*s));
}

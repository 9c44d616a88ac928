/* uext4-inspect: where one inode's data lives in an image, as stored.
 *
 *   uext4-inspect IMAGE PATH|INO [--json]
 *
 * Opens IMAGE read-only through the core library (so it takes the image's
 * lock: it refuses an image a daemon is serving, with -EBUSY), resolves
 * PATH (absolute, or relative to the root) or takes INO, and prints
 * uext4_inspect() plus the names of the inode's extended attributes.
 * Exit status: 0, 1 on an error (named with its cause on stderr), 2 on bad
 * usage. */
#include "uext4.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INLINE_FL  0x10000000u
#define EXTENTS_FL 0x00080000u

static const struct uext4_cred root_cred = {.uid = 0, .gid = 0, .umask = 022};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: uext4-inspect IMAGE PATH|INO [--json] [--offset=BYTES] [--sizelimit=BYTES]\n"
            "       uext4-inspect --help | --version\n"
            "\n"
            "Print where an inode's data lives in the ext2/3/4 IMAGE: type, size,\n"
            "flags, inline data size and capacity, extents and xattr names.\n"
            "The image is opened read-only; it must not be mounted by uext4.\n"
            "\n"
            "  --json         one JSON object instead of text\n"
            "  --offset=BYTES, --sizelimit=BYTES\n"
            "                 the file system is a partition of IMAGE (uext4's\n"
            "                 offset= and sizelimit= mount options)\n"
            "  -h, --help     print this help\n"
            "  -V, --version  print the version\n");
}

static void flags_text(uint32_t flags, char *out, size_t len)
{
    size_t o = 0;

    out[0] = '\0';
    for (unsigned i = 0; i < 32; i++) {
        const char *name = uext4_inode_flag_name(flags & (1u << i));

        if (name)
            o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%s", o ? "," : "", name);
    }
}

static void print_text(const char *what, const struct uext4_inode_info *in, const char *xl,
                       ssize_t xlen)
{
    char fl[256];

    flags_text(in->flags, fl, sizeof(fl));
    printf("%s: inode %" PRIu32 "\n", what, in->ino);
    printf("  type       %s, mode %04o, links %" PRIu32 "\n", uext4_inode_type_name(in->mode),
           (unsigned)(in->mode & 07777), in->nlink);
    printf("  size       %" PRIu64 " bytes, %" PRIu64 " 512-byte blocks\n", in->size, in->blocks);
    printf("  flags      0x%08" PRIx32 " (%s)\n", in->flags, fl[0] ? fl : "none");
    printf("  storage    %s\n", in->is_inline            ? "inline"
                                : in->flags & EXTENTS_FL ? "extents"
                                                         : "block map");
    if (in->is_inline)
        printf("  inline     %zu bytes in the inode (60 in i_block + %zu in system.data)\n",
               in->inline_size, in->inline_size > 60 ? in->inline_size - 60 : 0);
    if (in->inline_capacity)
        printf("  capacity   %zu bytes inline\n", in->inline_capacity);
    if (in->xattr_block)
        printf("  xattr blk  %" PRIu64 "\n", in->xattr_block);
    printf("  extents    %u\n", in->nextents);
    for (unsigned i = 0; i < in->nextents; i++) {
        const struct uext4_extent *e = &in->extents[i];

        printf("    [%u] logical %" PRIu64 "..%" PRIu64 " -> physical %" PRIu64 " (%" PRIu32
               " blocks)%s\n",
               i, e->lblk, e->lblk + e->len - 1, e->pblk, e->len, e->unwritten ? " unwritten" : "");
    }
    if (xlen < 0) {
        printf("  xattrs     (cannot list: %s)\n", strerror((int)-xlen));
        return;
    }
    printf("  xattrs     %s\n", xlen ? "" : "none");
    for (const char *p = xl; xlen > 0 && p < xl + xlen; p += strlen(p) + 1)
        printf("    %s\n", p);
}

static int print_json(const char *what, const struct uext4_inode_info *in, const char *xl,
                      ssize_t xlen)
{
    char *json;
    int ret = uext4_inspect_json(in, what, xl, xlen, &json);

    if (ret)
        return ret;
    printf("%s\n", json);
    free(json);
    return 0;
}

/* PATH, or INO when the argument is all digits. */
static int find_inode(struct uext4_fs *fs, const char *arg, uint32_t *ino)
{
    char path[4096];
    const char *p = arg;

    while (isdigit((unsigned char)*p))
        p++;
    if (*arg && !*p) {
        unsigned long v = strtoul(arg, NULL, 10);

        if (v == 0 || v > UINT32_MAX)
            return -EINVAL;
        *ino = (uint32_t)v;
        return 0;
    }
    snprintf(path, sizeof(path), "%s%s", arg[0] == '/' ? "" : "/", arg);
    return uext4_resolve(fs, path, ino);
}

/* A byte count: decimal digits only, within an off_t. */
static bool parse_bytes(const char *s, uint64_t *out)
{
    char *end;

    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return !errno && !*end && *out <= INT64_MAX;
}

/* The options; -1 when the two arguments follow, else the exit status. */
static int parse_args(int argc, char **argv, bool *json, struct uext4_options *o)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"offset", required_argument, NULL, 'o'},
        {"sizelimit", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    while ((opt = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            *json = true;
            break;
        case 'o':
        case 's':
            if (!parse_bytes(optarg, opt == 'o' ? &o->offset : &o->sizelimit)) {
                fprintf(stderr, "uext4-inspect: bad byte count for --%s: '%s'\n",
                        opt == 'o' ? "offset" : "sizelimit", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("uext4-inspect %s (libuext4 %s, libext2fs %s)\n", UEXT4_VERSION, uext4_version(),
                   uext4_ext2fs_version());
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Print what @image's inode @arg (a path or a number) holds; 0 or -errno,
 * said on stderr. */
static int inspect_one(struct uext4_fs *fs, const char *image, const char *arg, bool json)
{
    struct uext4_inode_info info;
    char *xl = NULL;
    ssize_t xlen;
    uint32_t ino;
    int ret;

    ret = find_inode(fs, arg, &ino);
    if (ret) {
        fprintf(stderr, "uext4-inspect: %s: %s: %s\n", image, arg, strerror(-ret));
        return ret;
    }
    ret = uext4_inspect(fs, ino, &info);
    if (ret) {
        fprintf(stderr, "uext4-inspect: %s: inode %" PRIu32 ": %s\n", image, ino, strerror(-ret));
        return ret;
    }
    xlen = uext4_listxattr(fs, &root_cred, ino, NULL, 0);
    if (xlen > 0) {
        xl = malloc((size_t)xlen);
        xlen = xl ? uext4_listxattr(fs, &root_cred, ino, xl, (size_t)xlen) : -ENOMEM;
    }
    if (json)
        ret = print_json(arg, &info, xl, xlen);
    else
        print_text(arg, &info, xl, xlen);
    if (ret)
        fprintf(stderr, "uext4-inspect: %s: inode %" PRIu32 ": %s\n", image, ino, strerror(-ret));
    free(xl);
    uext4_inode_info_free(&info);
    return ret;
}

int main(int argc, char **argv)
{
    struct uext4_options opts = {.size = sizeof(opts), .read_only = true};
    struct uext4_fs *fs = NULL;
    char why[512] = "";
    bool json = false;
    int ret;

    ret = parse_args(argc, argv, &json, &opts);
    if (ret >= 0)
        return ret;
    ret = uext4_open(argv[optind], &opts, &fs, why, sizeof(why));
    if (ret) {
        fprintf(stderr, "uext4-inspect: %s: %s\n", argv[optind], why[0] ? why : strerror(-ret));
        return 1;
    }
    ret = inspect_one(fs, argv[optind], argv[optind + 1], json);
    uext4_close(fs);
    return ret ? 1 : 0;
}

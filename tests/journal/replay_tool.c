/* Test driver for journal recovery and the journal format, on real images.
 *
 *   replay_tool recover IMAGE
 *       Replay IMAGE's journal with jbd2_recover(), then clear the
 *       needs_recovery flag (primary superblock only, nothing else
 *       rewritten). Prints the statistics as key=value lines; on failure
 *       prints "error=ERRNO_NAME" and the reason, exits 1.
 *
 *   replay_tool write IMAGE [--features=none|v1|v2|v3[,64bit]] TXN...
 *       Write transactions into IMAGE's (empty) journal with our builder
 *       (jfmt_txn_emit/jfmt_commit_block), as a crashed writer would leave
 *       them, and set needs_recovery: e2fsck, the kernel and recover can
 *       then replay them. TXN is "B1,B2,...[/R1,R2,...][!]": the home
 *       blocks to log, the blocks to revoke, '!' for no commit block.
 *       Home block B logged by the K-th TXN (from 0) holds the text
 *       "uext4 jfmt block B txn K\n" repeated, with the jbd2 magic over its
 *       first 4 bytes when B is even (to exercise escaping). --features rewrites the
 *       journal superblock's checksum/64bit features first (the log is
 *       empty, so a writer may choose them, as the kernel does at mount).
 */
#include "jbd2/jfmt.h"
#include "e2/jmap.h"
#include "jbd2/recover.h"

#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct image {
    unsigned bs;
    uint64_t blocks;
    uint64_t *map;
    uint32_t len;
};

static int load_map(const char *path, struct image *im)
{
    ext2_filsys fs;
    char why[256];
    errcode_t err;
    int ret;

    err = ext2fs_open(path, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
    if (err) {
        fprintf(stderr, "%s: %s\n", path, error_message(err));
        return -EIO;
    }
    im->bs = fs->blocksize;
    im->blocks = ext2fs_blocks_count(fs->super);
    ret = e2_journal_map_load(fs, &im->map, &im->len, why, sizeof(why));
    if (ret)
        printf("error=%s\n%s: %s\n", strerrorname_np(-ret), path, why);
    ext2fs_close_free(&fs);
    return ret;
}

/* Set or clear needs_recovery, writing the primary superblock only. */
static int set_needs_recovery(const char *path, bool on)
{
    ext2_filsys fs;
    errcode_t err;

    err = ext2fs_open(path, EXT2_FLAG_64BITS | EXT2_FLAG_RW, 0, 0, unix_io_manager, &fs);
    if (err) {
        fprintf(stderr, "%s: %s\n", path, error_message(err));
        return -EIO;
    }
    if (on)
        ext2fs_set_feature_journal_needs_recovery(fs->super);
    else
        ext2fs_clear_feature_journal_needs_recovery(fs->super);
    fs->flags |= EXT2_FLAG_SUPER_ONLY | EXT2_FLAG_MASTER_SB_ONLY;
    ext2fs_mark_super_dirty(fs);
    err = ext2fs_close_free(&fs);
    if (err) {
        fprintf(stderr, "%s: %s\n", path, error_message(err));
        return -EIO;
    }
    return 0;
}

static int do_recover(const char *path)
{
    struct image im = {0};
    struct jbd2_recover_stats st;
    char why[512];
    int fd, ret;

    ret = load_map(path, &im);
    if (ret)
        return 1;
    fd = open(path, O_RDWR);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    ret = jbd2_recover(&(struct jbd2_dev){.fd = fd}, im.bs, im.blocks, im.map, im.len, &st, why,
                       sizeof(why));
    close(fd);
    free(im.map);
    if (ret) {
        printf("error=%s\n%s: %s\n", strerrorname_np(-ret), path, why);
        return 1;
    }
    if (!st.was_empty && set_needs_recovery(path, false))
        return 1;
    printf("was_empty=%d\ntransactions=%u\nfirst_seq=%u\nlast_seq=%u\nnext_seq=%u\n"
           "tags=%llu\nblocks_written=%llu\nrevoke_records=%llu\nrevoked=%llu\n"
           "csum_errors=%llu\nsb_errno=%d\n",
           st.was_empty, st.transactions, st.first_seq, st.last_seq, st.next_seq,
           (unsigned long long)st.tags, (unsigned long long)st.blocks_written,
           (unsigned long long)st.revoke_records, (unsigned long long)st.revoked,
           (unsigned long long)st.csum_errors, st.sb_errno);
    return 0;
}

/* ---- write ---- */

struct writer {
    int fd;
    struct image *im;
    struct jfmt_journal j;
    uint32_t pos;
};

static void block_pattern(uint8_t *b, unsigned bs, uint64_t home, int txn)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "uext4 jfmt block %llu txn %d\n", (unsigned long long)home,
                     txn);

    for (unsigned i = 0; i < bs; i++)
        b[i] = (uint8_t)line[i % (unsigned)n];
    if (home % 2 == 0)
        jfmt_put_be32(b, JFMT_MAGIC);
}

static int emit_block(void *ctx, const void *block)
{
    struct writer *w = ctx;
    off_t off = (off_t)(w->im->map[w->pos] * w->im->bs);

    if (pwrite(w->fd, block, w->im->bs, off) != (ssize_t)w->im->bs)
        return -EIO;
    if (++w->pos >= w->j.last)
        w->pos = w->j.first;
    return 0;
}

static size_t parse_list(const char *s, uint64_t *out, size_t max)
{
    size_t n = 0;

    while (*s && n < max) {
        char *end;

        out[n++] = strtoull(s, &end, 0);
        s = *end == ',' ? end + 1 : end;
        if (*end != ',')
            break;
    }
    return n;
}

static int write_txn(struct writer *w, uint32_t seq, int txn, const char *spec)
{
    uint64_t homes[1024], revs[1024];
    struct jfmt_block blocks[1024];
    size_t n = parse_list(spec, homes, 1024), nr = 0;
    const char *slash = strchr(spec, '/');
    bool commit = !strchr(spec, '!');
    uint8_t *data = malloc(1024 * (size_t)w->im->bs);
    struct timespec now;
    uint32_t crc = 0;
    int ret;

    if (!data)
        return -ENOMEM;
    if (slash)
        nr = parse_list(slash + 1, revs, 1024);
    for (size_t i = 0; i < n; i++) {
        block_pattern(data + i * w->im->bs, w->im->bs, homes[i], txn);
        blocks[i] = (struct jfmt_block){.home = homes[i], .data = data + i * w->im->bs};
    }
    ret = jfmt_txn_emit(&w->j, seq, blocks, n, revs, nr, emit_block, w, &crc);
    if (!ret && commit) {
        clock_gettime(CLOCK_REALTIME, &now);
        jfmt_commit_block(&w->j, seq, &now, crc, data);
        ret = emit_block(w, data);
    }
    free(data);
    return ret;
}

/* Rewrite the jsb's checksum features to @spec. */
static void set_features(uint8_t *jsb, const char *spec)
{
    uint32_t compat = 0, incompat = jfmt_get_be32(jsb + JFMT_SB_INCOMPAT);

    incompat &= ~(JFMT_INCOMPAT_CSUM_V2 | JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_64BIT);
    if (strstr(spec, "v1"))
        compat = JFMT_COMPAT_CHECKSUM;
    if (strstr(spec, "v2"))
        incompat |= JFMT_INCOMPAT_CSUM_V2;
    if (strstr(spec, "v3"))
        incompat |= JFMT_INCOMPAT_CSUM_V3;
    if (strstr(spec, "64bit"))
        incompat |= JFMT_INCOMPAT_64BIT;
    jfmt_put_be32(jsb + JFMT_SB_COMPAT, compat);
    jfmt_put_be32(jsb + JFMT_SB_INCOMPAT, incompat);
    jsb[JFMT_SB_CHECKSUM_TYPE] =
        (incompat & (JFMT_INCOMPAT_CSUM_V2 | JFMT_INCOMPAT_CSUM_V3)) ? JFMT_CRC32C_CHKSUM : 0;
    jfmt_put_be32(jsb + JFMT_SB_CHECKSUM, 0);
    jfmt_put_be32(jsb + JFMT_SB_CHECKSUM, ext2fs_crc32c_le(~0u, jsb, JFMT_SB_SIZE));
}

static int do_write(const char *path, int argc, char **argv)
{
    struct image im = {0};
    struct writer w = {.im = &im};
    uint8_t jsb[65536];
    char why[256];
    uint32_t seq0;
    int ret;

    if (load_map(path, &im))
        return 1;
    w.fd = open(path, O_RDWR);
    if (w.fd < 0 || pread(w.fd, jsb, im.bs, (off_t)(im.map[0] * im.bs)) != (ssize_t)im.bs) {
        perror(path);
        return 1;
    }
    if (argc && !strncmp(argv[0], "--features=", 11)) {
        set_features(jsb, argv[0] + 11);
        argc--, argv++;
    }
    ret = jfmt_sb_parse(jsb, im.bs, &w.j, why, sizeof(why));
    if (ret || w.j.start) {
        fprintf(stderr, "%s: %s\n", path, ret ? why : "journal is not empty");
        return 1;
    }
    seq0 = w.j.sequence;
    w.pos = w.j.first;
    for (int i = 0; i < argc; i++) {
        ret = write_txn(&w, seq0 + (uint32_t)i, i, argv[i]);
        if (ret) {
            fprintf(stderr, "%s: writing transaction %d: %s\n", path, i, strerror(-ret));
            return 1;
        }
    }
    /* The log is durable before the superblock points at it. */
    jfmt_sb_set_tail(jsb, &w.j, seq0, w.j.first);
    if (fdatasync(w.fd) || pwrite(w.fd, jsb, im.bs, (off_t)(im.map[0] * im.bs)) != (ssize_t)im.bs ||
        fdatasync(w.fd)) {
        perror(path);
        return 1;
    }
    close(w.fd);
    free(im.map);
    printf("first_seq=%u\nlog_start=%u\n", seq0, w.j.first);
    return set_needs_recovery(path, true) ? 1 : 0;
}

int main(int argc, char **argv)
{
    initialize_ext2_error_table();
    if (argc >= 3 && !strcmp(argv[1], "recover"))
        return do_recover(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "write"))
        return do_write(argv[2], argc - 3, argv + 3);
    fprintf(stderr, "usage: %s recover IMAGE | write IMAGE [--features=...] TXN...\n", argv[0]);
    return 2;
}

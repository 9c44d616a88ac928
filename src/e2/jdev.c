/* An external journal's file: opened, locked, checked, mapped (jdev.h). */
#include "e2/jdev.h"
#include "e2/e2_internal.h"
#include "e2/imgfile.h"
#include "jbd2/jfmt.h"

#include <e2p/e2p.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JDEV_MAX_USERS 48 /* s_users holds 48 UUIDs (jbd2's JBD2_USERS_MAX) */
#define JFMT_SB_USERS  0x100

bool e2_journal_is_external(const struct ext2_super_block *sb)
{
    static const uint8_t null_uuid[16];

    return (sb->s_feature_compat & EXT3_FEATURE_COMPAT_HAS_JOURNAL) && !sb->s_journal_inum &&
           (sb->s_journal_dev || memcmp(sb->s_journal_uuid, null_uuid, 16));
}

/* The same file (or device) as the image: it would be its own journal. */
static bool is_same_file(const struct stat *a, const struct stat *b)
{
    if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
        return a->st_rdev == b->st_rdev;
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static int refuse_image_itself(const char *path, int image_fd, int fd, char *why, size_t len)
{
    struct stat img, st;
    int ret = fd >= 0 ? fstat(fd, &st) : stat(path, &st);

    if (ret || fstat(image_fd, &img))
        return 0; /* the open that follows says why it cannot be used */
    if (!is_same_file(&img, &st))
        return 0;
    e2_say(why, len, "journal_path '%s' is the image itself, not its external journal", path);
    return -EINVAL;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    ssize_t n;

    do
        n = pread(fd, buf, len, (off_t)off);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

static void uuid_text(const uint8_t *uuid, char *buf, size_t len)
{
    snprintf(buf, len, "%s", e2p_uuid2str((void *)uuid));
}

/* The ext2 superblock of the journal device: the kernel's checks. */
static int check_ext2_sb(const char *path, const struct ext2_super_block *jsb, ext2_filsys fs,
                         char *why, size_t len)
{
    uint32_t csum;
    char have[40], want[40];

    if (jsb->s_magic != EXT2_SUPER_MAGIC ||
        !(jsb->s_feature_incompat & EXT3_FEATURE_INCOMPAT_JOURNAL_DEV)) {
        e2_say(why, len, "'%s' is not an external journal device (%s)", path,
               jsb->s_magic != EXT2_SUPER_MAGIC ? "no ext2 superblock"
                                                : "its superblock lacks journal_dev");
        return -EINVAL;
    }
    csum = ext2fs_crc32c_le(~0U, (const unsigned char *)jsb,
                            offsetof(struct ext2_super_block, s_checksum));
    if ((jsb->s_feature_ro_compat & EXT4_FEATURE_RO_COMPAT_METADATA_CSUM) &&
        jsb->s_checksum != csum) {
        e2_say(why, len, "the external journal '%s' has a corrupt superblock (bad checksum)", path);
        return -EUCLEAN;
    }
    if (memcmp(jsb->s_uuid, fs->super->s_journal_uuid, 16)) {
        uuid_text(jsb->s_uuid, have, sizeof(have));
        uuid_text(fs->super->s_journal_uuid, want, sizeof(want));
        e2_say(why, len, "'%s' is the journal %s, not this file system's journal %s", path, have,
               want);
        return -EINVAL;
    }
    if (jsb->s_log_block_size > 6 || (1024u << jsb->s_log_block_size) != fs->blocksize) {
        e2_say(why, len, "the external journal '%s' has blocks of %u bytes, the file system %u",
               path, jsb->s_log_block_size > 6 ? 0 : 1024u << jsb->s_log_block_size, fs->blocksize);
        return -EINVAL;
    }
    return 0;
}

/* The file holds the device's @blocks blocks (a copy cut short would read
 * zeros for the end of the log). */
static int check_size(int fd, const char *path, uint64_t blocks, unsigned bs, char *why, size_t len)
{
    uint64_t size;
    int ret = e2_imgfile_size(fd, &size);

    if (ret) {
        e2_say(why, len, "cannot find the size of '%s': %s", path, strerror(-ret));
        return ret;
    }
    if (blocks > size / bs) {
        e2_say(why, len, "the external journal '%s' (%llu bytes) is shorter than its %llu blocks",
               path, (unsigned long long)size, (unsigned long long)blocks);
        return -EINVAL;
    }
    return 0;
}

/* One user, and it is @fs: the kernel refuses a shared journal, and a
 * journal whose user is another file system is not this one's. */
static int check_users(const char *path, const uint8_t *blk, ext2_filsys fs, char *why, size_t len)
{
    uint32_t n = jfmt_get_be32(blk + JFMT_SB_NR_USERS);
    char uuid[40];

    if (n != 1) {
        e2_say(why, len, "the external journal '%s' has %u users; exactly one is supported", path,
               n);
        return -EINVAL;
    }
    if (memcmp(blk + JFMT_SB_USERS, fs->super->s_uuid, 16)) {
        uuid_text(fs->super->s_uuid, uuid, sizeof(uuid));
        e2_say(why, len, "the external journal '%s' does not list the file system %s as its user",
               path, uuid);
        return -EINVAL;
    }
    return 0;
}

/* The jbd2 superblock in block @at, of a journal of at most @blocks. */
static int check_jsb(const char *path, const uint8_t *blk, ext2_filsys fs, uint64_t blocks,
                     uint64_t at, struct jfmt_journal *j, char *why, size_t len)
{
    char cause[200];
    int ret = jfmt_sb_parse(blk, fs->blocksize, j, cause, sizeof(cause));

    if (ret) {
        e2_say(why, len, "the external journal '%s' has a bad journal superblock: %s", path, cause);
        return ret;
    }
    if (j->version != 2) {
        e2_say(why, len, "the external journal '%s' has a v1 journal superblock (v2 needed)", path);
        return -EINVAL;
    }
    ret = check_users(path, blk, fs, why, len);
    if (ret)
        return ret;
    if (j->maxlen > blocks || j->maxlen > JFMT_MAX_LOG_BLOCKS || j->first <= at) {
        e2_say(why, len,
               "the external journal '%s' has an invalid geometry: %u blocks from block %u, "
               "the device %llu blocks",
               path, j->maxlen, j->first, (unsigned long long)blocks);
        return -EUCLEAN;
    }
    return 0;
}

/* Both superblocks of the journal open as @jd->fd, checked; the map. */
static int check_and_map(struct e2_jdev *jd, ext2_filsys fs, char *why, size_t len)
{
    struct ext2_super_block esb;
    struct jfmt_journal j;
    uint64_t at = 1024 / fs->blocksize + 1, blocks; /* the block after the ext2 superblock */
    uint8_t *blk;
    int ret = read_at(jd->fd, &esb, sizeof(esb), 1024);

    if (ret) {
        e2_say(why, len, "cannot read the superblock of '%s': %s", jd->path, strerror(-ret));
        return ret;
    }
    ret = check_ext2_sb(jd->path, &esb, fs, why, len);
    if (ret)
        return ret;
    blocks = ext2fs_blocks_count(&esb);
    ret = check_size(jd->fd, jd->path, blocks, fs->blocksize, why, len);
    blk = ret ? NULL : malloc(fs->blocksize);
    if (ret || !blk)
        return ret ? ret : -ENOMEM;
    ret = read_at(jd->fd, blk, fs->blocksize, at * fs->blocksize);
    if (ret)
        e2_say(why, len, "cannot read the journal superblock of '%s': %s", jd->path,
               strerror(-ret));
    if (!ret)
        ret = check_jsb(jd->path, blk, fs, blocks, at, &j, why, len);
    free(blk);
    if (ret)
        return ret;
    jd->maplen = j.maxlen;
    jd->map = malloc((size_t)j.maxlen * sizeof(*jd->map));
    if (!jd->map)
        return -ENOMEM;
    jd->map[0] = at;
    for (uint32_t i = 1; i < j.maxlen; i++)
        jd->map[i] = i;
    return 0;
}

int e2_jdev_open(const char *path, bool rw, int image_fd, struct struct_ext2_filsys *fs,
                 struct e2_jdev **out, char *why, size_t why_len)
{
    struct e2_jdev *jd;
    char cause[400];
    int ret = refuse_image_itself(path, image_fd, -1, why, why_len);

    if (ret)
        return ret;
    jd = calloc(1, sizeof(*jd));
    if (!jd || !(jd->path = strdup(path))) {
        free(jd);
        return -ENOMEM;
    }
    jd->fd = e2_imgfile_open(path, &(struct e2_imgfile_claim){rw, 0, 0}, cause, sizeof(cause));
    if (jd->fd < 0) {
        ret = jd->fd;
        e2_say(why, why_len, "cannot use '%s' as the external journal: %s", path, cause);
        goto out_free;
    }
    /* Again on the file opened: the path may have changed in between. */
    ret = refuse_image_itself(path, image_fd, jd->fd, why, why_len);
    if (!ret)
        ret = check_and_map(jd, fs, why, why_len);
    if (ret)
        goto out_free;
    *out = jd;
    return 0;

out_free:
    e2_jdev_close(jd);
    return ret;
}

uint64_t *e2_jdev_map_dup(const struct e2_jdev *jd)
{
    uint64_t *map = malloc((size_t)jd->maplen * sizeof(*map));

    if (map)
        memcpy(map, jd->map, (size_t)jd->maplen * sizeof(*map));
    return map;
}

void e2_jdev_close(struct e2_jdev *jd)
{
    if (!jd)
        return;
    if (jd->fd >= 0)
        close(jd->fd);
    free(jd->map);
    free(jd->path);
    free(jd);
}

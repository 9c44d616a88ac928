/* Multiple-mount protection (the mmp feature), the protocol a mounting
 * kernel runs, not the one of e2fsck and tune2fs (libext2fs's
 * ext2fs_mmp_start marks the block "being checked", which would make every
 * kernel refuse the image while we serve it).
 *
 * The MMP block holds a sequence number that whoever has the file system
 * mounted bumps every s_mmp_update_interval seconds, with its node and
 * device names. To mount:
 *   1. read it: FSCK means e2fsck or tune2fs holds it: refuse;
 *   2. unless it is CLEAN (0xFF4D4D50: released by its last user) someone
 *      may be alive: wait the check time (twice the check interval plus
 *      one second, capped at the interval plus 60 s; the check interval is
 *      the update interval, at least 5 s, or what the block asks for) and
 *      refuse, naming its node and device, if the sequence moved;
 *   3. write a new random sequence with our names, wait the check time
 *      again (none after CLEAN, as in the kernel) and refuse if someone
 *      else wrote in between;
 *   4. from then on a thread bumps the sequence (1, 2, ...) every update
 *      interval, first checking that the block still holds what it wrote;
 *   5. at unmount, after the last write to the image, write CLEAN.
 * The block is read and written with pread/pwrite on the image's one
 * descriptor (img->lock_fd, imgfile.h), beside the block layer (iomgr.c
 * never sees the block: libext2fs is told to skip MMP), and every write is
 * synced, as the kernel writes it synchronously. */
#include "e2/e2_internal.h"
#include "e2/iomgr.h"
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

struct e2_mmp {
    int fd;        /* the image's descriptor, img->lock_fd: not ours to close */
    uint64_t base; /* the byte of it where the file system starts */
    blk64_t block;
    unsigned blocksize;
    unsigned update_interval; /* seconds between our updates */
    unsigned check_interval;  /* what we tell others in the block */
    uint32_t written_seq;     /* the sequence the disk should hold */
    bool csum;
    uint32_t csum_seed;
    const char *path;
    struct e2_image *img;   /* made read-only when the block is taken over */
    struct mmp_struct *buf; /* one block: what we last wrote */
    struct mmp_struct *cur; /* one block: what the disk holds */

    pthread_t thread;
    bool thread_running;
    pthread_mutex_t m; /* a private leaf, never held across other locks */
    pthread_cond_t cv;
    bool stop;   /* protected by m */
    bool stolen; /* protected by m: someone else wrote the block */
};

static void mmp_name(char *dst, size_t dst_len, const uint8_t *src, size_t src_len)
{
    size_t n = strnlen((const char *)src, src_len);

    if (n >= dst_len)
        n = dst_len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static uint32_t mmp_csum(const struct e2_mmp *mp, const struct mmp_struct *s)
{
    return ext2fs_crc32c_le(mp->csum_seed, (const unsigned char *)s,
                            offsetof(struct mmp_struct, mmp_checksum));
}

/* Read the block into mp->cur, checking magic and checksum. */
static int mmp_read(struct e2_mmp *mp, char *why, size_t len)
{
    ssize_t n =
        pread(mp->fd, mp->cur, mp->blocksize, (off_t)(mp->base + mp->block * mp->blocksize));

    if (n != (ssize_t)mp->blocksize) {
        int err = n < 0 ? -errno : -EIO;
        e2_say(why, len, "cannot read the MMP block %llu of '%s': %s",
               (unsigned long long)mp->block, mp->path, strerror(-err));
        return err;
    }
    if (ext2fs_le32_to_cpu(mp->cur->mmp_magic) != EXT4_MMP_MAGIC ||
        (mp->csum && ext2fs_le32_to_cpu(mp->cur->mmp_checksum) != mmp_csum(mp, mp->cur))) {
        e2_say(why, len,
               "image '%s' is corrupt: its MMP block %llu has a bad %s; run 'e2fsck -fy' on it",
               mp->path, (unsigned long long)mp->block,
               ext2fs_le32_to_cpu(mp->cur->mmp_magic) != EXT4_MMP_MAGIC ? "magic" : "checksum");
        return -EUCLEAN;
    }
    return 0;
}

/* Write mp->buf with @seq, the time and our names, and sync it. */
static int mmp_write(struct e2_mmp *mp, uint32_t seq, char *why, size_t len)
{
    struct mmp_struct *s = mp->buf;
    struct utsname un;
    size_t plen = strlen(mp->path);
    ssize_t n;
    int err = 0;

    s->mmp_magic = ext2fs_cpu_to_le32(EXT4_MMP_MAGIC);
    s->mmp_seq = ext2fs_cpu_to_le32(seq);
    s->mmp_time = ext2fs_cpu_to_le64((uint64_t)time(NULL));
    memset(s->mmp_nodename, 0, sizeof(s->mmp_nodename));
    if (uname(&un) == 0)
        strncpy((char *)s->mmp_nodename, un.nodename, sizeof(s->mmp_nodename));
    /* The kernel names its block device; we name the image, by the end of
     * its path when the whole does not fit. */
    memset(s->mmp_bdevname, 0, sizeof(s->mmp_bdevname));
    if (plen >= sizeof(s->mmp_bdevname))
        memcpy(s->mmp_bdevname, mp->path + plen - (sizeof(s->mmp_bdevname) - 1),
               sizeof(s->mmp_bdevname) - 1);
    else
        memcpy(s->mmp_bdevname, mp->path, plen);
    s->mmp_check_interval = ext2fs_cpu_to_le16((uint16_t)mp->check_interval);
    if (mp->csum)
        s->mmp_checksum = ext2fs_cpu_to_le32(mmp_csum(mp, s));
    n = pwrite(mp->fd, s, mp->blocksize, (off_t)(mp->base + mp->block * mp->blocksize));
    if (n < 0)
        err = -errno;
    else if (n != (ssize_t)mp->blocksize)
        err = -EIO;
    else if (fdatasync(mp->fd) != 0)
        err = -errno;
    if (err)
        e2_say(why, len, "cannot write the MMP block of '%s': %s", mp->path, strerror(-err));
    else
        mp->written_seq = seq;
    return err;
}

/* Refuse: someone else has the image. */
static int mmp_busy(struct e2_mmp *mp, const char *what, const char *hint, char *why, size_t len)
{
    char node[sizeof(mp->cur->mmp_nodename) + 1], dev[sizeof(mp->cur->mmp_bdevname) + 1];

    mmp_name(node, sizeof(node), mp->cur->mmp_nodename, sizeof(mp->cur->mmp_nodename));
    mmp_name(dev, sizeof(dev), mp->cur->mmp_bdevname, sizeof(mp->cur->mmp_bdevname));
    e2_say(why, len,
           "image '%s' is in use: %s on node '%s', device '%s' (multiple-mount protection)%s",
           mp->path, what, node, dev, hint);
    return -EBUSY;
}

static uint32_t mmp_new_seq(void)
{
    uint32_t seq;

    do {
        if (getrandom(&seq, sizeof(seq), 0) != sizeof(seq))
            seq = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    } while (seq == 0 || seq > EXT4_MMP_SEQ_MAX);
    return seq;
}

static void mmp_sleep(unsigned seconds)
{
    struct timespec ts = {.tv_sec = seconds};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The update thread: step 4 above. */
static void *mmp_thread(void *arg)
{
    struct e2_mmp *mp = arg;
    struct timespec until;
    uint32_t seq = 0;
    bool first = true;
    char why[256];
    int ret;

    pthread_mutex_lock(&mp->m);
    while (!mp->stop) {
        if (!first) {
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += mp->update_interval;
            while (!mp->stop && pthread_cond_timedwait(&mp->cv, &mp->m, &until) != ETIMEDOUT)
                ;
            if (mp->stop)
                break;
        }
        pthread_mutex_unlock(&mp->m);
        ret = mmp_read(mp, why, sizeof(why));
        if (!ret && (ext2fs_le32_to_cpu(mp->cur->mmp_seq) != mp->written_seq ||
                     memcmp(mp->cur->mmp_nodename, mp->buf->mmp_nodename,
                            sizeof(mp->buf->mmp_nodename)) != 0)) {
            mmp_busy(mp, "the MMP block was taken over", "", why, sizeof(why));
            log_err("%s; serving it read-only from now on", why);
            /* As errors=remount-ro would: nothing more of ours reaches
             * an image that another system writes. */
            e2_lock(mp->img);
            mp->img->read_only = true;
            e2_unlock(mp->img);
            pthread_mutex_lock(&mp->m);
            mp->stolen = true;
            break;
        }
        first = false;
        seq = seq + 1 > EXT4_MMP_SEQ_MAX ? 1 : seq + 1;
        if (!ret)
            ret = mmp_write(mp, seq, why, sizeof(why));
        if (ret)
            log_err("%s (trying again in %u s)", why, mp->update_interval);
        pthread_mutex_lock(&mp->m);
    }
    pthread_mutex_unlock(&mp->m);
    return NULL;
}

static void mmp_free(struct e2_mmp *mp)
{
    free(mp->buf);
    free(mp->cur);
    pthread_cond_destroy(&mp->cv);
    pthread_mutex_destroy(&mp->m);
    free(mp);
}

/* A struct e2_mmp for @img's MMP block, its intervals taken from the
 * superblock (bounded as ext4 bounds them), the block number checked. */
static int mmp_new(struct e2_image *img, ext2_filsys fs, struct e2_mmp **out, char *why, size_t len)
{
    struct ext2_super_block *sb = fs->super;
    pthread_condattr_t ca;
    struct e2_mmp *mp;

    *out = NULL;
    mp = calloc(1, sizeof(*mp));
    if (!mp)
        return -ENOMEM;
    mp->fd = img->lock_fd;
    mp->base = e2_iom_base(fs->io);
    pthread_mutex_init(&mp->m, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mp->cv, &ca);
    pthread_condattr_destroy(&ca);
    mp->path = img->path;
    mp->img = img;
    mp->block = sb->s_mmp_block;
    mp->blocksize = fs->blocksize;
    mp->csum = ext2fs_has_feature_metadata_csum(sb);
    mp->csum_seed = fs->csum_seed;
    mp->update_interval =
        sb->s_mmp_update_interval ? sb->s_mmp_update_interval : EXT4_MMP_UPDATE_INTERVAL;
    if (mp->update_interval > EXT4_MMP_MAX_UPDATE_INTERVAL)
        mp->update_interval = EXT4_MMP_MAX_UPDATE_INTERVAL;
    mp->check_interval = 2 * mp->update_interval;
    if (mp->check_interval < EXT4_MMP_MIN_CHECK_INTERVAL)
        mp->check_interval = EXT4_MMP_MIN_CHECK_INTERVAL;
    if (mp->block <= sb->s_first_data_block || mp->block >= ext2fs_blocks_count(sb)) {
        e2_say(why, len, "image '%s' is corrupt: its MMP block number %llu is out of range",
               mp->path, (unsigned long long)mp->block);
        mmp_free(mp);
        return -EUCLEAN;
    }
    mp->buf = calloc(1, mp->blocksize);
    mp->cur = calloc(1, mp->blocksize);
    if (!mp->buf || !mp->cur) {
        mmp_free(mp);
        return -ENOMEM;
    }
    *out = mp;
    return 0;
}

/* Refuse the image if e2fsck holds it, or if another user updates the MMP
 * block while we watch it (skipped when it says clean). *@wait: how long a
 * claim must then wait for other users to notice (0 after a clean block). */
static int mmp_check_unused(struct e2_mmp *mp, unsigned *wait, char *why, size_t len)
{
    uint32_t seq;
    int ret;

    *wait = mp->update_interval;
    if (*wait < EXT4_MMP_MIN_CHECK_INTERVAL)
        *wait = EXT4_MMP_MIN_CHECK_INTERVAL;
    ret = mmp_read(mp, why, len);
    if (ret)
        return ret;
    seq = ext2fs_le32_to_cpu(mp->cur->mmp_seq);
    if (ext2fs_le16_to_cpu(mp->cur->mmp_check_interval) > *wait)
        *wait = ext2fs_le16_to_cpu(mp->cur->mmp_check_interval);
    *wait = 2 * *wait + 1 < *wait + 60 ? 2 * *wait + 1 : *wait + 60;
    if (seq == EXT4_MMP_SEQ_FSCK)
        return mmp_busy(mp, "e2fsck or tune2fs is working on it",
                        "; if none is, 'tune2fs -f -E clear_mmp' on the image releases it", why,
                        len);
    if (seq == EXT4_MMP_SEQ_CLEAN) {
        *wait = 0;
        return 0;
    }
    log_notice("'%s' was not unmounted cleanly or is in use elsewhere: waiting %u s to see "
               "whether its MMP block is being updated",
               mp->path, *wait);
    mmp_sleep(*wait);
    ret = mmp_read(mp, why, len);
    if (ret)
        return ret;
    if (ext2fs_le32_to_cpu(mp->cur->mmp_seq) != seq)
        return mmp_busy(mp, "mounted", "", why, len);
    return 0;
}

/* Write a new sequence number of ours, wait @wait seconds and read it back:
 * another user that claimed the image at the same time has overwritten it. */
static int mmp_claim(struct e2_mmp *mp, unsigned wait, char *why, size_t len)
{
    uint32_t seq;
    int ret;

    memcpy(mp->buf, mp->cur, mp->blocksize);
    seq = mmp_new_seq();
    ret = mmp_write(mp, seq, why, len);
    if (ret)
        return ret;
    if (wait)
        log_notice("'%s': multiple-mount protection: waiting %u s for other users of the image",
                   mp->path, wait);
    mmp_sleep(wait);
    ret = mmp_read(mp, why, len);
    if (ret)
        return ret;
    if (ext2fs_le32_to_cpu(mp->cur->mmp_seq) != seq)
        return mmp_busy(mp, "mounted at the same time", "", why, len);
    return 0;
}

int e2_mmp_start(struct e2_image *img, ext2_filsys fs, struct e2_mmp **out, char *why, size_t len)
{
    struct e2_mmp *mp;
    unsigned wait;
    int ret;

    *out = NULL;
    ret = mmp_new(img, fs, &mp, why, len);
    if (ret)
        return ret;
    ret = mmp_check_unused(mp, &wait, why, len);
    if (!ret)
        ret = mmp_claim(mp, wait, why, len);
    if (ret)
        goto out_free;
    ret = -pthread_create(&mp->thread, NULL, mmp_thread, mp);
    if (ret) {
        e2_say(why, len, "cannot start the MMP thread of '%s': %s", mp->path, strerror(-ret));
        goto out_clean;
    }
    mp->thread_running = true;
    *out = mp;
    return 0;

out_clean:
    mmp_write(mp, EXT4_MMP_SEQ_CLEAN, NULL, 0);
out_free:
    mmp_free(mp);
    return ret;
}

int e2_mmp_stop(struct e2_mmp *mp)
{
    bool stolen;
    int ret = 0;

    if (!mp)
        return 0;
    pthread_mutex_lock(&mp->m);
    mp->stop = true;
    pthread_cond_signal(&mp->cv);
    pthread_mutex_unlock(&mp->m);
    if (mp->thread_running)
        pthread_join(mp->thread, NULL);
    stolen = mp->stolen;
    /* The block is someone else's now: leave it to them. */
    if (!stolen) {
        char why[256];
        ret = mmp_write(mp, EXT4_MMP_SEQ_CLEAN, why, sizeof(why));
        if (ret)
            log_err("%s", why);
    }
    mmp_free(mp);
    return stolen ? -EBUSY : ret;
}

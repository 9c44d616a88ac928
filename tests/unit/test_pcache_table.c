/* The page-cache emulation's state machine (src/pcache, diagram in
 * pcache.h) as a table: (state, event) -> result, dirty pages, storage
 * reads and writebacks, what a reader sees, what storage holds, and the
 * latched error.
 *
 * Storage is a 3-page buffer standing for one file of STORE_SIZE bytes
 * ('b' each); the ops read it (zeros past EOF) and write back into it
 * (clamped at EOF, as the fs layer's writeback is), counting calls, and
 * fail with -EIO while told to. What a reader sees is storage with the
 * cached pages over it, as fs/ reads do; both are shown as one character
 * per probe offset: the byte, '0' for a zero, '.' past EOF. */
#include "pcache/pcache.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define INO        12u
#define STORE_SIZE 6000u
#define NPAGES     3u
#define BUDGET     PC_PAGE_SIZE /* a second dirty page puts the cache over it */

static const unsigned probes[] = {100, 102, 104, 3000, 4200, 5990, 6100};
#define NPROBES (sizeof(probes) / sizeof(probes[0]))

struct store {
    unsigned char bytes[NPAGES * PC_PAGE_SIZE];
    uint64_t isize;
    unsigned reads, writebacks;
    bool fail; /* writeback returns -EIO */
};

static ssize_t st_read(void *ctx, uint32_t ino, void *buf, size_t len, off_t off)
{
    struct store *s = ctx;

    (void)ino;
    s->reads++;
    memset(buf, 0, len);
    if ((uint64_t)off < s->isize)
        memcpy(buf, s->bytes + off,
               s->isize - (uint64_t)off < len ? (size_t)(s->isize - (uint64_t)off) : len);
    return (ssize_t)len;
}

static ssize_t st_writeback(void *ctx, uint32_t ino, const void *buf, size_t len, off_t off)
{
    struct store *s = ctx;

    (void)ino;
    s->writebacks++;
    if (s->fail)
        return -EIO;
    if ((uint64_t)off < s->isize)
        memcpy(s->bytes + off, buf,
               s->isize - (uint64_t)off < len ? (size_t)(s->isize - (uint64_t)off) : len);
    return (ssize_t)len;
}

static const struct pc_ops store_ops = {st_read, st_writeback};

/* ---- states, each reached through the API from an empty cache ---- */

enum state {
    ABSENT,        /* no cached page */
    DIRTY,         /* page 0 dirty: 'S' stored at 100..109 */
    DIRTY2,        /* pages 0 and 1 dirty: 'S' at 100..109, 'T' at 4200..4209 */
    DIRTY_PASTEOF, /* page 1 dirty: 'P' stored at 6100..6103, past EOF in EOF's page */
    DIRTY_ERR,     /* DIRTY after a failed writeback: -EIO latched */
};

static const char *state_names[] = {"absent", "dirty", "dirty2", "dirty-past-eof", "dirty-err"};

static int reach(struct pc_cache *pc, struct store *s, enum state st)
{
    int ret = 0;

    if (st == DIRTY || st == DIRTY2 || st == DIRTY_ERR)
        ret = pc_store(pc, INO, s->isize, 100, "SSSSSSSSSS", 10);
    if (!ret && st == DIRTY2)
        ret = pc_store(pc, INO, s->isize, 4200, "TTTTTTTTTT", 10);
    if (!ret && st == DIRTY_PASTEOF)
        ret = pc_store(pc, INO, s->isize, 6100, "PPPP", 4);
    if (!ret && st == DIRTY_ERR) {
        s->fail = true;
        ret = pc_writeback(pc, INO) == -EIO ? 0 : -1;
        s->fail = false;
    }
    return ret;
}

/* ---- events ---- */

enum event {
    STORE,         /* 'X' at 102..105 */
    STORE_TAIL,    /* 'E' at 5990..5993: the page holding EOF */
    STORE_PASTEOF, /* a page wholly past EOF: the kernel's SIGBUS */
    WRITE,         /* write(2) of 'W' at 104..107: storage, then pc_update */
    SHRINK_REGROW, /* truncate to 3000, then back to STORE_SIZE */
    SHRINK_ZERO,   /* truncate to 0 */
    GROW,          /* truncate up to 7000 */
    WRITEBACK,
    WRITEBACK_EIO, /* storage fails every writeback */
    TAKE_ERROR,
    FORGET, /* the inode is freed */
};

static const char *event_names[] = {"store",         "store-tail", "store-past-eof", "write",
                                    "shrink-regrow", "shrink-0",   "grow",           "writeback",
                                    "writeback-eio", "take-error", "forget"};

static void resize(struct pc_cache *pc, struct store *s, uint64_t size)
{
    /* The fs layer's part first: storage cut (zeros past the new EOF). */
    if (size < s->isize)
        memset(s->bytes + size, 0, sizeof(s->bytes) - size);
    pc_resize(pc, INO, s->isize, size);
    s->isize = size;
}

static int fire(struct pc_cache *pc, struct store *s, enum event ev)
{
    switch (ev) {
    case STORE:
        return pc_store(pc, INO, s->isize, 102, "XXXX", 4);
    case STORE_TAIL:
        return pc_store(pc, INO, s->isize, 5990, "EEEE", 4);
    case STORE_PASTEOF:
        return pc_store(pc, INO, s->isize, 2 * PC_PAGE_SIZE + 10, "Z", 1);
    case WRITE:
        memcpy(s->bytes + 104, "WWWW", 4);
        pc_update(pc, INO, 104, "WWWW", 4);
        return 0;
    case SHRINK_REGROW:
        resize(pc, s, 3000);
        resize(pc, s, STORE_SIZE);
        return 0;
    case SHRINK_ZERO:
        resize(pc, s, 0);
        return 0;
    case GROW:
        resize(pc, s, 7000);
        return 0;
    case WRITEBACK:
        return pc_writeback(pc, INO);
    case WRITEBACK_EIO:
        s->fail = true;
        return pc_writeback(pc, INO);
    case TAKE_ERROR:
        return pc_take_error(pc, INO);
    case FORGET:
        pc_forget(pc, INO);
        return 0;
    }
    return -1;
}

/* ---- the table ---- */

struct pc_row {
    enum state from;
    enum event ev;
    int ret;             /* of the event */
    unsigned dirty;      /* pages dirty after it */
    unsigned reads;      /* storage reads it made */
    unsigned writebacks; /* storage writebacks it tried */
    const char *view;    /* what a reader sees at the probes */
    const char *disk;    /* what storage holds at the probes */
    int latched;         /* pc_take_error() afterwards */
};

static const struct pc_row rows[] = {
    /* A store pages the page in once, then works on the copy. */
    {ABSENT, STORE, 0, 1, 1, 0, "bXXbbb.", "bbbbbb.", 0},
    {DIRTY, STORE, 0, 1, 0, 0, "SXXbbb.", "bbbbbb.", 0},
    {DIRTY_ERR, STORE, 0, 1, 0, 0, "SXXbbb.", "bbbbbb.", -EIO},
    /* Past EOF: the page holding EOF may be stored into, beyond it not;
     * over the budget a store writes this file's pages back first. */
    {ABSENT, STORE_TAIL, 0, 1, 1, 0, "bbbbbE.", "bbbbbb.", 0},
    {ABSENT, STORE_PASTEOF, -EFAULT, 0, 0, 0, "bbbbbb.", "bbbbbb.", 0},
    {DIRTY, STORE_PASTEOF, -EFAULT, 1, 0, 0, "SSSbbb.", "bbbbbb.", 0},
    {DIRTY2, STORE, 0, 1, 1, 2, "SXXbTb.", "SSSbTb.", 0},
    /* write(2) keeps a cached page coherent and caches nothing new. */
    {ABSENT, WRITE, 0, 0, 0, 0, "bbWbbb.", "bbWbbb.", 0},
    {DIRTY, WRITE, 0, 1, 0, 0, "SSWbbb.", "bbWbbb.", 0},
    /* Truncate: pages wholly past the new EOF go unwritten; bytes between
     * the two sizes read as zeros, also what was stored past EOF. */
    {DIRTY2, SHRINK_REGROW, 0, 1, 0, 0, "SSS000.", "bbb000.", 0},
    {DIRTY2, SHRINK_ZERO, 0, 0, 0, 0, ".......", ".......", 0},
    {DIRTY_PASTEOF, GROW, 0, 1, 0, 0, "bbbbbb0", "bbbbbb0", 0},
    /* Writeback: DIRTY -> WRITEBACK -> absent, each page written once. */
    {ABSENT, WRITEBACK, 0, 0, 0, 0, "bbbbbb.", "bbbbbb.", 0},
    {DIRTY, WRITEBACK, 0, 0, 0, 1, "SSSbbb.", "SSSbbb.", 0},
    {DIRTY2, WRITEBACK, 0, 0, 0, 2, "SSSbTb.", "SSSbTb.", 0},
    {DIRTY_PASTEOF, WRITEBACK, 0, 0, 0, 1, "bbbbbb.", "bbbbbb.", 0},
    /* Failure: WRITEBACK -> DIRTY, data kept, the first error latched and
     * kept across a later success until taken, once. */
    {DIRTY, WRITEBACK_EIO, -EIO, 1, 0, 1, "SSSbbb.", "bbbbbb.", -EIO},
    {DIRTY2, WRITEBACK_EIO, -EIO, 2, 0, 2, "SSSbTb.", "bbbbbb.", -EIO},
    {DIRTY_ERR, WRITEBACK, 0, 0, 0, 1, "SSSbbb.", "SSSbbb.", -EIO},
    {DIRTY_ERR, TAKE_ERROR, -EIO, 1, 0, 0, "SSSbbb.", "bbbbbb.", 0},
    {DIRTY, TAKE_ERROR, 0, 1, 0, 0, "SSSbbb.", "bbbbbb.", 0},
    /* Forget: dirty pages of a freed inode are dropped, never written. */
    {DIRTY2, FORGET, 0, 0, 0, 0, "bbbbbb.", "bbbbbb.", 0},
    {DIRTY_ERR, FORGET, 0, 0, 0, 0, "bbbbbb.", "bbbbbb.", 0},
};

static void render(const unsigned char *bytes, uint64_t isize, char *out)
{
    for (unsigned i = 0; i < NPROBES; i++) {
        unsigned char c = bytes[probes[i]];
        out[i] = probes[i] >= isize ? '.' : c ? (char)c : '0';
    }
    out[NPROBES] = 0;
}

static int run_row(const struct pc_row *r, char *why, size_t whylen)
{
    static struct store s;
    unsigned char seen[sizeof(s.bytes)];
    struct pc_cache *pc;
    char view[NPROBES + 1], disk[NPROBES + 1];
    unsigned reads, writebacks, dirty;
    int ret, latched;

    memset(&s, 0, sizeof(s));
    memset(s.bytes, 'b', STORE_SIZE);
    s.isize = STORE_SIZE;
    if (pc_create(&store_ops, &s, BUDGET, &pc)) {
        snprintf(why, whylen, "pc_create failed");
        return 1;
    }
    if (reach(pc, &s, r->from)) {
        snprintf(why, whylen, "cannot reach the state");
        pc_destroy(pc);
        return 1;
    }
    reads = s.reads;
    writebacks = s.writebacks;
    ret = fire(pc, &s, r->ev);
    s.fail = false;
    reads = s.reads - reads;
    writebacks = s.writebacks - writebacks;
    dirty = pc_dirty_count(pc, INO);
    memset(seen, 0, sizeof(seen));
    memcpy(seen, s.bytes, s.isize);
    pc_overlay(pc, INO, 0, seen, sizeof(seen));
    render(seen, s.isize, view);
    render(s.bytes, s.isize, disk);
    latched = pc_take_error(pc, INO);
    pc_destroy(pc);
    snprintf(why, whylen,
             "ret %d dirty %u reads %u writebacks %u view %s disk %s latched %d; want ret %d "
             "dirty %u reads %u writebacks %u view %s disk %s latched %d",
             ret, dirty, reads, writebacks, view, disk, latched, r->ret, r->dirty, r->reads,
             r->writebacks, r->view, r->disk, r->latched);
    return ret != r->ret || dirty != r->dirty || reads != r->reads || writebacks != r->writebacks ||
           strcmp(view, r->view) || strcmp(disk, r->disk) || latched != r->latched;
}

int main(void)
{
    unsigned pass = 0, fail = 0;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct pc_row *r = &rows[i];
        char why[400];

        if (run_row(r, why, sizeof(why))) {
            printf("FAIL %s+%s: %s\n", state_names[r->from], event_names[r->ev], why);
            fail++;
        } else {
            printf("ok %s+%s\n", state_names[r->from], event_names[r->ev]);
            pass++;
        }
    }
    printf("%u passed, %u failed\n", pass, fail);
    return fail ? 1 : 0;
}

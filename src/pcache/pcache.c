/* Page-cache emulation; see pcache.h for the state machine and locking. */
#include "pcache/pcache.h"
#include "base/lock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum pc_state { PC_DIRTY, PC_WRITEBACK };

struct pc_page {
    uint64_t index;
    enum pc_state state;
    unsigned char data[PC_PAGE_SIZE];
};

struct pc_file {
    uint32_t ino;
    int error;       /* latched writeback error */
    unsigned n, cap; /* pages, sorted by index */
    struct pc_page **pages;
    /* protected by pc_cache.lock: the pages of this file counted in
     * dirty_bytes, n again for pc_dirty_inodes(), which holds no inode
     * lock (n and the rest belong to the inode's lock holder). */
    unsigned counted;
    struct pc_file *next;
};

struct pc_cache {
    const struct pc_ops *ops;
    void *ctx;
    size_t budget;
    struct mutex lock;     /* LC_PCACHE: the file table and dirty_bytes */
    struct pc_file *files; /* protected by lock; few: only files with dirty pages */
    size_t dirty_bytes;    /* protected by lock */
};

static void assert_page_state(const struct pc_page *p, enum pc_state want)
{
    if (p->state != want)
        abort(); /* a page in the wrong state is our bug, not the image's */
}

int pc_create(const struct pc_ops *ops, void *ctx, size_t budget, struct pc_cache **out)
{
    struct pc_cache *pc = calloc(1, sizeof(*pc));

    if (!pc)
        return -ENOMEM;
    pc->ops = ops;
    pc->ctx = ctx;
    pc->budget = budget;
    mutex_init(&pc->lock, LC_PCACHE, 0);
    *out = pc;
    return 0;
}

static void free_file(struct pc_file *f)
{
    for (unsigned i = 0; i < f->n; i++)
        free(f->pages[i]);
    free(f->pages);
    free(f);
}

void pc_destroy(struct pc_cache *pc)
{
    struct pc_file *f, *next;

    for (f = pc->files; f; f = next) {
        next = f->next;
        free_file(f);
    }
    mutex_destroy(&pc->lock);
    free(pc);
}

static struct pc_file *find_file(struct pc_cache *pc, uint32_t ino, bool create)
{
    struct pc_file *f;

    mutex_lock(&pc->lock);
    for (f = pc->files; f && f->ino != ino; f = f->next)
        ;
    if (!f && create) {
        f = calloc(1, sizeof(*f));
        if (f) {
            f->ino = ino;
            f->next = pc->files;
            pc->files = f;
        }
    }
    mutex_unlock(&pc->lock);
    return f;
}

static void account(struct pc_cache *pc, struct pc_file *f, long pages)
{
    mutex_lock(&pc->lock);
    pc->dirty_bytes += (size_t)(pages * (long)PC_PAGE_SIZE);
    f->counted = (unsigned)((long)f->counted + pages);
    mutex_unlock(&pc->lock);
}

/* Position of page @index in @f, or where it would go. */
static unsigned page_slot(const struct pc_file *f, uint64_t index)
{
    unsigned lo = 0, hi = f->n;

    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (f->pages[mid]->index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct pc_page *find_page(const struct pc_file *f, uint64_t index)
{
    unsigned i = page_slot(f, index);

    return i < f->n && f->pages[i]->index == index ? f->pages[i] : NULL;
}

static int insert_page(struct pc_file *f, struct pc_page *p)
{
    unsigned i = page_slot(f, p->index);

    if (f->n == f->cap) {
        unsigned cap = f->cap ? f->cap * 2 : 8;
        struct pc_page **pp = realloc(f->pages, cap * sizeof(*pp));
        if (!pp)
            return -ENOMEM;
        f->pages = pp;
        f->cap = cap;
    }
    memmove(&f->pages[i + 1], &f->pages[i], (f->n - i) * sizeof(*f->pages));
    f->pages[i] = p;
    f->n++;
    return 0;
}

static void remove_slot(struct pc_file *f, unsigned i)
{
    free(f->pages[i]);
    memmove(&f->pages[i], &f->pages[i + 1], (f->n - i - 1) * sizeof(*f->pages));
    f->n--;
}

/* Read page @index in from storage and add it, dirty. */
static struct pc_page *page_in(struct pc_cache *pc, struct pc_file *f, uint64_t index, int *err)
{
    struct pc_page *p = calloc(1, sizeof(*p));
    ssize_t got;

    if (!p) {
        *err = -ENOMEM;
        return NULL;
    }
    p->index = index;
    p->state = PC_DIRTY;
    got = pc->ops->read(pc->ctx, f->ino, p->data, PC_PAGE_SIZE, (off_t)(index * PC_PAGE_SIZE));
    if (got < 0 || (*err = insert_page(f, p))) {
        if (got < 0)
            *err = (int)got;
        free(p);
        return NULL;
    }
    account(pc, f, 1);
    return p;
}

static bool over_budget(struct pc_cache *pc)
{
    bool over;

    mutex_lock(&pc->lock);
    over = pc->dirty_bytes > pc->budget;
    mutex_unlock(&pc->lock);
    return over;
}

int pc_store(struct pc_cache *pc, uint32_t ino, uint64_t isize, off_t off, const void *buf,
             size_t len)
{
    const unsigned char *src = buf;
    struct pc_file *f;
    int err = 0;

    if (off < 0)
        return -EINVAL;
    /* Memory pressure: write back this file's pages before adding more. */
    if (over_budget(pc))
        pc_writeback(pc, ino);
    f = find_file(pc, ino, true);
    if (!f)
        return -ENOMEM;
    while (len) {
        uint64_t index = (uint64_t)off / PC_PAGE_SIZE;
        size_t in = (size_t)((uint64_t)off % PC_PAGE_SIZE);
        size_t n = PC_PAGE_SIZE - in < len ? PC_PAGE_SIZE - in : len;
        struct pc_page *p;

        if (index * PC_PAGE_SIZE >= isize)
            return -EFAULT;
        p = find_page(f, index);
        if (!p)
            p = page_in(pc, f, index, &err);
        if (!p)
            return err;
        assert_page_state(p, PC_DIRTY);
        memcpy(p->data + in, src, n);
        src += n;
        off += (off_t)n;
        len -= n;
    }
    return 0;
}

/* Apply @fn to the overlap of [off, off+len) with each cached page. */
static void for_each_overlap(struct pc_file *f, off_t off, size_t len,
                             void (*fn)(struct pc_page *p, size_t pin, size_t bin, size_t n,
                                        void *arg),
                             void *arg)
{
    uint64_t start = (uint64_t)off, end = start + len;

    for (unsigned i = page_slot(f, start / PC_PAGE_SIZE); i < f->n; i++) {
        struct pc_page *p = f->pages[i];
        uint64_t ps = p->index * PC_PAGE_SIZE, pe = ps + PC_PAGE_SIZE;
        uint64_t s = ps > start ? ps : start, e = pe < end ? pe : end;
        if (ps >= end)
            break;
        if (s < e)
            fn(p, (size_t)(s - ps), (size_t)(s - start), (size_t)(e - s), arg);
    }
}

static void copy_out(struct pc_page *p, size_t pin, size_t bin, size_t n, void *arg)
{
    memcpy((unsigned char *)arg + bin, p->data + pin, n);
}

static void copy_in(struct pc_page *p, size_t pin, size_t bin, size_t n, void *arg)
{
    memcpy(p->data + pin, (const unsigned char *)arg + bin, n);
}

static void zero_range(struct pc_page *p, size_t pin, size_t bin, size_t n, void *arg)
{
    memset(p->data + pin, 0, n);
}

void pc_overlay(struct pc_cache *pc, uint32_t ino, off_t off, void *buf, size_t len)
{
    struct pc_file *f = find_file(pc, ino, false);

    if (f)
        for_each_overlap(f, off, len, copy_out, buf);
}

void pc_update(struct pc_cache *pc, uint32_t ino, off_t off, const void *buf, size_t len)
{
    struct pc_file *f = find_file(pc, ino, false);

    if (f)
        for_each_overlap(f, off, len, copy_in, (void *)buf);
}

void pc_resize(struct pc_cache *pc, uint32_t ino, uint64_t old, uint64_t new)
{
    struct pc_file *f = find_file(pc, ino, false);
    uint64_t lo = old < new ? old : new, hi = old < new ? new : old;
    long dropped = 0;

    if (!f)
        return;
    if (new < old) {
        /* Pages wholly past the new end go, as truncate_pagecache() does. */
        uint64_t first = (new + PC_PAGE_SIZE - 1) / PC_PAGE_SIZE;
        while (f->n && f->pages[f->n - 1]->index >= first) {
            remove_slot(f, f->n - 1);
            dropped++;
        }
        account(pc, f, -dropped);
    }
    /* Bytes between the sizes read as zeros afterwards, either way. */
    for_each_overlap(f, (off_t)lo, (size_t)(hi - lo), zero_range, NULL);
}

int pc_writeback(struct pc_cache *pc, uint32_t ino)
{
    struct pc_file *f = find_file(pc, ino, false);
    int first = 0;

    if (!f)
        return 0;
    for (unsigned i = 0; i < f->n;) {
        struct pc_page *p = f->pages[i];
        ssize_t ret;

        assert_page_state(p, PC_DIRTY);
        p->state = PC_WRITEBACK;
        ret = pc->ops->writeback(pc->ctx, ino, p->data, PC_PAGE_SIZE,
                                 (off_t)(p->index * PC_PAGE_SIZE));
        if (ret < 0) {
            /* Keep the data; report the error once, at the next fsync/close. */
            p->state = PC_DIRTY;
            if (!first)
                first = (int)ret;
            f->error = f->error ? f->error : (int)ret;
            i++;
            continue;
        }
        remove_slot(f, i);
        account(pc, f, -1);
    }
    return first;
}

int pc_take_error(struct pc_cache *pc, uint32_t ino)
{
    struct pc_file *f = find_file(pc, ino, false);
    int err = 0;

    if (f) {
        err = f->error;
        f->error = 0;
    }
    return err;
}

unsigned pc_dirty_count(struct pc_cache *pc, uint32_t ino)
{
    struct pc_file *f = find_file(pc, ino, false);

    return f ? f->n : 0;
}

void pc_forget(struct pc_cache *pc, uint32_t ino)
{
    struct pc_file **pp, *f;

    mutex_lock(&pc->lock);
    for (pp = &pc->files; *pp && (*pp)->ino != ino; pp = &(*pp)->next)
        ;
    f = *pp;
    if (f) {
        *pp = f->next;
        pc->dirty_bytes -= (size_t)f->counted * PC_PAGE_SIZE;
    }
    mutex_unlock(&pc->lock);
    if (f)
        free_file(f);
}

unsigned pc_dirty_inodes(struct pc_cache *pc, uint32_t *inos, unsigned max)
{
    unsigned n = 0;

    mutex_lock(&pc->lock);
    for (struct pc_file *f = pc->files; f && n < max; f = f->next) {
        if (f->counted)
            inos[n++] = f->ino;
    }
    mutex_unlock(&pc->lock);
    return n;
}

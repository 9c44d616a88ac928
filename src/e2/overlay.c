/* Blocks replayed in memory (overlay.h has the contract). A sorted array:
 * recovery puts blocks in increasing order, so a put is an append and a
 * lookup a binary search. */
#include "e2/overlay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct e2_overlay {
    unsigned bs;
    size_t n, cap;
    uint64_t *blks;       /* sorted, distinct */
    unsigned char **data; /* data[i] is block blks[i] */
};

struct e2_overlay *e2_overlay_new(unsigned blocksize)
{
    struct e2_overlay *ov = calloc(1, sizeof(*ov));

    if (ov)
        ov->bs = blocksize;
    return ov;
}

void e2_overlay_free(struct e2_overlay *ov)
{
    if (!ov)
        return;
    for (size_t i = 0; i < ov->n; i++)
        free(ov->data[i]);
    free(ov->data);
    free(ov->blks);
    free(ov);
}

/* The index of the first block >= @blk. */
static size_t lower_bound(const struct e2_overlay *ov, uint64_t blk)
{
    size_t lo = 0, hi = ov->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ov->blks[mid] < blk)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int reserve(struct e2_overlay *ov)
{
    size_t cap = ov->cap ? ov->cap * 2 : 64;
    uint64_t *b;
    unsigned char **d;

    if (ov->n < ov->cap)
        return 0;
    b = realloc(ov->blks, cap * sizeof(*b));
    if (!b)
        return -ENOMEM;
    ov->blks = b;
    d = realloc(ov->data, cap * sizeof(*d));
    if (!d)
        return -ENOMEM;
    ov->data = d;
    ov->cap = cap;
    return 0;
}

int e2_overlay_put(struct e2_overlay *ov, uint64_t blk, const void *data)
{
    size_t i = lower_bound(ov, blk);
    unsigned char *copy;

    if (i < ov->n && ov->blks[i] == blk) {
        memcpy(ov->data[i], data, ov->bs);
        return 0;
    }
    if (reserve(ov))
        return -ENOMEM;
    copy = malloc(ov->bs);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, data, ov->bs);
    memmove(ov->blks + i + 1, ov->blks + i, (ov->n - i) * sizeof(*ov->blks));
    memmove(ov->data + i + 1, ov->data + i, (ov->n - i) * sizeof(*ov->data));
    ov->blks[i] = blk;
    ov->data[i] = copy;
    ov->n++;
    return 0;
}

void e2_overlay_apply(const struct e2_overlay *ov, uint64_t off, size_t len, void *buf)
{
    uint64_t end = off + len;
    char *out = buf;

    if (!ov || !ov->n || !len)
        return;
    for (size_t i = lower_bound(ov, off / ov->bs); i < ov->n; i++) {
        uint64_t s = ov->blks[i] * ov->bs, e = s + ov->bs;
        uint64_t lo = s > off ? s : off, hi = e < end ? e : end;

        if (s >= end)
            break;
        memcpy(out + (lo - off), ov->data[i] + (lo - s), hi - lo);
    }
}

bool e2_overlay_any(const struct e2_overlay *ov, uint64_t blk, uint64_t count)
{
    size_t i;

    if (!ov || !ov->n || !count)
        return false;
    i = lower_bound(ov, blk);
    return i < ov->n && ov->blks[i] - blk < count;
}

size_t e2_overlay_count(const struct e2_overlay *ov)
{
    return ov ? ov->n : 0;
}

unsigned e2_overlay_block_size(const struct e2_overlay *ov)
{
    return ov->bs;
}

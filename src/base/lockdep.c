/* The lock-order checker: an analogue of the kernel's lockdep for the few
 * lock classes of base/lock.h.
 *
 * A lock's identity for ordering is (class, subclass). Each thread keeps the
 * stack of identities it holds. Acquiring B while holding A records the edge
 * A->B with the site of both; if B->A (directly, or through a chain) was
 * recorded earlier, the two orders can deadlock, and we abort with both. */
#include "base/lockdep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LD_SUBCLASSES 2
#define LD_IDS        (LC_NR_CLASSES * LD_SUBCLASSES)
#define LD_MAX_HELD   16

struct held_lock {
    unsigned id;
    struct lock_site site;
};

struct ld_edge {
    bool seen;
    struct lock_site outer, inner; /* first time the edge was made */
};

static const char *const class_names[LC_NR_CLASSES] = {
    [LC_MOUNT] = "mount", [LC_INODE] = "inode",   [LC_ITABLE] = "itable", [LC_PCACHE] = "pcache",
    [LC_DISK] = "disk",   [LC_TEST_A] = "test_a", [LC_TEST_B] = "test_b",
};

static _Thread_local struct held_lock held[LD_MAX_HELD];
static _Thread_local unsigned nheld;

static pthread_mutex_t graph_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ld_edge graph[LD_IDS][LD_IDS]; /* protected by graph_lock */
static bool enabled = UEXT4_LOCKDEP_DEFAULT;

void lockdep_enable(bool on)
{
    enabled = on;
}

bool lockdep_is_enabled(void)
{
    return enabled;
}

static void id_name(unsigned id, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%u", class_names[id / LD_SUBCLASSES], id % LD_SUBCLASSES);
}

/* Depth-first search for a path from -> to in the recorded graph. */
static bool path_exists(unsigned from, unsigned to, unsigned *via, bool *visited)
{
    if (from == to)
        return true;
    visited[from] = true;
    for (unsigned n = 0; n < LD_IDS; n++) {
        if (!graph[from][n].seen || visited[n])
            continue;
        if (path_exists(n, to, via, visited)) {
            if (*via == LD_IDS)
                *via = n;
            return true;
        }
    }
    return false;
}

static void report_inversion(unsigned outer, const struct held_lock *h, unsigned inner,
                             struct lock_site site, unsigned via)
{
    char a[32], b[32];
    const struct ld_edge *e = &graph[inner][via];

    id_name(outer, a, sizeof(a));
    id_name(inner, b, sizeof(b));
    fprintf(stderr,
            "uext4 lockdep: lock order inversion\n"
            "  acquiring %s at %s:%d\n"
            "  while holding %s taken at %s:%d\n"
            "  but %s was earlier held (taken at %s:%d) while acquiring the next\n"
            "  lock in a chain back to %s, at %s:%d\n",
            b, site.file, site.line, a, h->site.file, h->site.line, b, e->outer.file, e->outer.line,
            a, e->inner.file, e->inner.line);
    abort();
}

void lockdep_acquire(enum lock_class cls, unsigned subclass, struct lock_site site)
{
    unsigned id = cls * LD_SUBCLASSES + (subclass % LD_SUBCLASSES);

    if (!enabled)
        return;
    pthread_mutex_lock(&graph_lock);
    for (unsigned i = 0; i < nheld; i++) {
        unsigned outer = held[i].id;
        bool visited[LD_IDS] = {false};
        unsigned via = LD_IDS;

        if (outer == id) {
            fprintf(stderr,
                    "uext4 lockdep: recursive acquisition of class %s/%u at %s:%d "
                    "(first taken at %s:%d)\n",
                    class_names[cls], subclass, site.file, site.line, held[i].site.file,
                    held[i].site.line);
            abort();
        }
        if (!graph[outer][id].seen && path_exists(id, outer, &via, visited))
            report_inversion(outer, &held[i], id, site, via);
        if (!graph[outer][id].seen) {
            graph[outer][id].seen = true;
            graph[outer][id].outer = held[i].site;
            graph[outer][id].inner = site;
        }
    }
    pthread_mutex_unlock(&graph_lock);
    if (nheld == LD_MAX_HELD) {
        fprintf(stderr, "uext4 lockdep: more than %d locks held at %s:%d\n", LD_MAX_HELD, site.file,
                site.line);
        abort();
    }
    held[nheld].id = id;
    held[nheld].site = site;
    nheld++;
}

void lockdep_release(enum lock_class cls, unsigned subclass)
{
    unsigned id = cls * LD_SUBCLASSES + (subclass % LD_SUBCLASSES);

    if (!enabled)
        return;
    /* Locks need not be released in LIFO order; remove the newest match. */
    for (unsigned i = nheld; i-- > 0;) {
        if (held[i].id != id)
            continue;
        memmove(&held[i], &held[i + 1], (nheld - i - 1) * sizeof(held[0]));
        nheld--;
        return;
    }
    fprintf(stderr, "uext4 lockdep: releasing %s/%u which this thread does not hold\n",
            class_names[cls], subclass);
    abort();
}

unsigned lockdep_held_count(void)
{
    return nheld;
}

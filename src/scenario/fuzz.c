/* uext4-scenario fuzz: random scenarios from a seed, run on two backends;
 * on any difference (or a run that fails: e2fsck, a mount that will not
 * come up) the scenario is minimised and written out as a .scn.
 *
 * A generated scenario is a list of "generated steps", each one or two
 * lines of scenario text. Action steps carry no expected result and expect
 * lines a placeholder value: the runs observe (struct scn_run.observe_only)
 * and every line's outcome is compared between the backends. Scenario I of
 * seed S is drawn from its own generator state (S, I), so any one can be
 * regenerated alone, and the lib backend makes the whole run deterministic.
 *
 * Minimising is delta debugging: drop chunks of steps, halving the chunk
 * while nothing can go, then shrink every number (offsets, lengths, the N
 * of pat:N:SEED) towards 0 while the difference stays. "The difference"
 * is its signature: the keyword and check of the first differing line, or
 * the failing run's backend, so that a shrink cannot trade one finding for
 * another. The written scenario states each line's outcome, qualified per
 * backend where they differ, and runs as an ordinary scenario file. */
#include "scenario/scn.h"

#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_GSTEPS 64
#define GTEXT      200
#define MSG        1024
#define NFILES     3

/* One generated step: an action, or an expect whose value the runs fill. */
struct gstep {
    char text[GTEXT]; /* "write f0 100 pat:30:7", "expect f0 size" */
    bool expect;
    bool presync; /* a `sync` line first: storage is compared at rest */
};

struct gscn {
    unsigned inode_size;
    struct gstep st[MAX_GSTEPS];
    unsigned n;
};

/* What two runs of one generated scenario saw. */
struct outcome {
    char *line[2][MAX_GSTEPS]; /* per backend, per step: outcome text */
    bool failed[2];            /* the run failed (not an observed difference) */
    char msg[2][MSG];
};

struct fuzz {
    const struct scn_backend *be[2];
    unsigned mode[2]; /* SCN_TAG_KEEP or SCN_TAG_CONVERT */
    const char *daemon, *out;
    bool dump;
    const char *no_check; /* comma list of expect checks left out */
    char tmp[300];
    unsigned runs; /* scenario runs made, for the summary */
};

/* SIGINT/SIGTERM: finish the scenario at hand (its mounts come down) and
 * stop; a minimisation in progress gives up. */
static volatile sig_atomic_t stop_now;

static void on_stop(int sig)
{
    (void)sig;
    stop_now = 1;
}

/* ---- generator ---- */

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned pick(uint64_t *s, unsigned n)
{
    return (unsigned)(next(s) % n);
}

/* A size or offset near a boundary that matters to ext4's inline data
 * (i_block's 60 bytes, the in-inode xattr space of each inode size, the
 * 4 KiB block), or anywhere in the first 16 KiB. */
static unsigned near_boundary(uint64_t *s, unsigned inode_size)
{
    const unsigned base[] = {
        0, 1, 60, inode_size - 128 - 32 + 60, inode_size - 128 + 60, 128, 256, 4096, 8192, 12288};
    unsigned b = base[pick(s, sizeof(base) / sizeof(base[0]))];
    int d = (int)pick(s, 9) - 4;

    if (pick(s, 4) == 0)
        return pick(s, 16384);
    return (int)b + d < 0 ? 0 : (unsigned)((int)b + d);
}

static void add(struct gscn *g, bool expect, bool presync, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add(struct gscn *g, bool expect, bool presync, const char *fmt, ...)
{
    va_list ap;

    if (g->n >= MAX_GSTEPS)
        return;
    va_start(ap, fmt);
    vsnprintf(g->st[g->n].text, GTEXT, fmt, ap);
    va_end(ap);
    g->st[g->n].expect = expect;
    g->st[g->n].presync = presync;
    g->n++;
}

/* Random steps: @k picks the kind (drawn first), @a and @b are sizes or
 * offsets near a boundary. Each case keeps its pick() calls in one
 * expression, as written: a seed's scenarios must not change. */
static void add_data_step(struct gscn *g, uint64_t *s, unsigned k, unsigned f, unsigned a,
                          unsigned b)
{
    switch (k) {
    case 0:
    case 1:
    case 2:
        add(g, false, false, "write f%u %u pat:%u:%u", f, a, b, 1 + pick(s, 9));
        break;
    case 3:
    case 4:
        add(g, false, false, "mmap-store f%u %u pat:%u:%u", f, a, b % 4096 + 1, 1 + pick(s, 9));
        break;
    case 5:
        add(g, false, false, "writeback f%u", f);
        break;
    case 6:
        add(g, false, false, "truncate f%u %u", f, a);
        break;
    case 7:
        add(g, false, false, "fallocate f%u %u %u%s", f, a, b, pick(s, 2) ? " keep-size" : "");
        break;
    case 8:
        add(g, false, false, "punch f%u %u %u", f, a, b);
        break;
    default:
        add(g, false, false, "zero-range f%u %u %u%s", f, a, b, pick(s, 2) ? " keep-size" : "");
    }
}

static void add_other_step(struct gscn *g, uint64_t *s, unsigned k, unsigned f)
{
    switch (k) {
    case 10:
        add(g, false, false, "setxattr f%u user.x%u fill:%u:0x%02x", f, pick(s, 3),
            1 + pick(s, 2) * pick(s, g->inode_size), 0x41 + pick(s, 26));
        break;
    case 11:
        add(g, false, false, "removexattr f%u user.x%u", f, pick(s, 3));
        break;
    case 12:
        add(g, false, false, "rename f%u f%u", f, pick(s, NFILES));
        break;
    case 13:
        add(g, false, false, "%s f%u f%u", pick(s, 2) ? "link" : "unlink", f, pick(s, NFILES));
        /* unlink takes one path: drop the second */
        if (!strncmp(g->st[g->n - 1].text, "unlink", 6))
            *strrchr(g->st[g->n - 1].text, ' ') = '\0';
        break;
    case 14:
        add(g, false, false, "%s f%u", pick(s, 2) ? "fsync" : "close", f);
        break;
    case 15:
        add(g, false, false, "%s", pick(s, 2) ? "remount" : "drop-caches");
        break;
    case 16:
        add(g, false, false, "create f%u", f);
        break;
    default:
        /* a live look: no checkpoint, the pages stay as they are */
        add(g, true, false, "expect f%u %s", f, pick(s, 2) ? "size" : "digest");
    }
}

/* The end state, live and then at rest. */
static void add_end_checks(struct gscn *g)
{
    for (unsigned f = 0; f < NFILES; f++) {
        add(g, true, false, "expect f%u digest", f);
        add(g, true, false, "expect f%u xattrs", f);
    }
    add(g, true, false, "expect . entries");
    for (unsigned f = 0; f < NFILES; f++) {
        add(g, true, true, "expect f%u inline", f);
        add(g, true, false, "expect f%u blocks", f);
    }
}

static void generate(uint64_t seed, unsigned index, struct gscn *g)
{
    static const unsigned isizes[] = {256, 512, 1024};
    uint64_t s = seed * 0x100000001b3ull ^ ((uint64_t)index << 32 | index);
    unsigned nsteps;

    memset(g, 0, sizeof(*g));
    next(&s);
    g->inode_size = isizes[pick(&s, 3)];
    nsteps = 4 + pick(&s, 16);
    for (unsigned i = 0; i < NFILES; i++)
        if (i == 0 || pick(&s, 2))
            add(g, false, false, "create f%u", i);
    for (unsigned i = 0; i < nsteps; i++) {
        unsigned f = pick(&s, NFILES), a = near_boundary(&s, g->inode_size),
                 b = near_boundary(&s, g->inode_size) + 1;

        unsigned k = pick(&s, 20);

        if (k < 10)
            add_data_step(g, &s, k, f, a, b);
        else
            add_other_step(g, &s, k, f);
    }
    add_end_checks(g);
}

/* The placeholder value an expect line is parsed with (observe mode). */
static const char *placeholder(const char *text)
{
    const char *check = strrchr(text, ' ') + 1;

    if (!strcmp(check, "digest"))
        return " 0:0";
    if (!strcmp(check, "xattrs") || !strcmp(check, "entries"))
        return " -";
    if (!strcmp(check, "inline"))
        return "";
    return " 0";
}

/* The scenario text; @line_of[i] gets the line number of step i's own
 * line (after its `sync`, if any). */
static void render_header(FILE *f, const struct gscn *g)
{
    fprintf(f, "image ext4 inode_size=%u features=inline_data size=16M\n", g->inode_size);
}

static int write_runnable(const struct gscn *g, const char *path, int *line_of)
{
    FILE *f = fopen(path, "w");
    int line = 1;

    if (!f)
        return -errno;
    render_header(f, g);
    for (unsigned i = 0; i < g->n; i++) {
        if (g->st[i].presync) {
            fprintf(f, "sync\n");
            line++;
        }
        fprintf(f, "%s%s\n", g->st[i].text, g->st[i].expect ? placeholder(g->st[i].text) : "");
        line_of[i] = ++line;
    }
    return fclose(f) ? -errno : 0;
}

/* ---- running ---- */

static void outcome_free(struct outcome *o)
{
    for (unsigned b = 0; b < 2; b++)
        for (unsigned i = 0; i < MAX_GSTEPS; i++) {
            free(o->line[b][i]);
            o->line[b][i] = NULL;
        }
}

static int run_both(struct fuzz *z, const struct gscn *g, struct outcome *o)
{
    struct scn_script s;
    int line_of[MAX_GSTEPS], ret;

    memset(o, 0, sizeof(*o));
    ret = write_runnable(g, z->tmp, line_of);
    if (!ret)
        ret = scn_parse_file(z->tmp, &s);
    if (ret)
        return ret;
    for (unsigned b = 0; b < 2; b++) {
        struct scn_run r = {0};
        enum scn_result res;

        r.script = &s;
        r.be = z->be[b];
        r.inline_mmap =
            z->mode[b] == SCN_TAG_CONVERT ? UEXT4_INLINE_MMAP_CONVERT : UEXT4_INLINE_MMAP_KEEP;
        r.active = z->be[b]->tag | (z->be[b]->tag == SCN_TAG_KERNEL ? 0 : z->mode[b]);
        r.daemon = z->daemon;
        r.observe_only = true;
        res = scn_run(&r, o->msg[b], sizeof(o->msg[b]));
        z->runs++;
        o->failed[b] = res == SCN_FAIL;
        if (res == SCN_SKIP) {
            fprintf(stderr, "uext4-scenario fuzz: %s backend: %s\n", z->be[b]->name, o->msg[b]);
            scn_run_free(&r);
            scn_script_free(&s);
            return -EOPNOTSUPP;
        }
        for (unsigned i = 0; i < s.nsteps; i++)
            for (unsigned k = 0; k < g->n; k++)
                if (s.steps[i].line == line_of[k] && r.outcome[i])
                    o->line[b][k] = strdup(r.outcome[i]);
        scn_run_free(&r);
    }
    scn_script_free(&s);
    return 0;
}

/* The signature of what differs ("" if nothing): the first differing
 * step's keyword and check, or which run failed. */
static void signature(const struct gscn *g, const struct outcome *o, char *sig, size_t len)
{
    sig[0] = '\0';
    if (o->failed[0] != o->failed[1] || o->failed[0]) {
        snprintf(sig, len, "run failed:%d%d", o->failed[0], o->failed[1]);
        return;
    }
    for (unsigned i = 0; i < g->n; i++) {
        const char *a = o->line[0][i], *b = o->line[1][i];

        if (!a || !b || !strcmp(a, b) || !strcmp(a, "n/a") || !strcmp(b, "n/a"))
            continue;
        /* "write f1 ..." -> "write"; "expect f1 digest" -> "expect digest" */
        if (g->st[i].expect)
            snprintf(sig, len, "expect %s", strrchr(g->st[i].text, ' ') + 1);
        else
            snprintf(sig, len, "%.*s", (int)strcspn(g->st[i].text, " "), g->st[i].text);
        return;
    }
}

static bool still(struct fuzz *z, const struct gscn *g, const char *want)
{
    struct outcome o;
    char sig[64];

    if (stop_now || run_both(z, g, &o))
        return false;
    signature(g, &o, sig, sizeof(sig));
    outcome_free(&o);
    return !strcmp(sig, want);
}

/* ---- minimiser ---- */

static void drop_range(struct gscn *g, unsigned from, unsigned count)
{
    memmove(&g->st[from], &g->st[from + count], (g->n - from - count) * sizeof(g->st[0]));
    g->n -= count;
}

static void shrink_steps(struct fuzz *z, struct gscn *g, const char *sig)
{
    for (unsigned chunk = g->n / 2 ? g->n / 2 : 1; chunk >= 1; chunk /= 2) {
        bool progress = true;

        while (progress) {
            progress = false;
            for (unsigned at = 0; at + chunk <= g->n && g->n > chunk; at += chunk) {
                struct gscn t = *g;

                drop_range(&t, at, chunk);
                if (still(z, &t, sig)) {
                    *g = t;
                    progress = true;
                    break;
                }
            }
        }
        if (chunk == 1)
            break;
    }
}

/* Replace the @k-th number in @text (a decimal word, or the N of
 * pat:N:SEED and fill:N:B; seeds and byte values stay) by @v, giving the
 * old value in @old; false if there is no such number. */
static bool set_number(char *text, unsigned k, unsigned long v, unsigned long *old)
{
    char out[GTEXT], copy[GTEXT], *save = NULL;
    size_t o = 0;
    unsigned seen = 0;
    bool done = false;

    snprintf(copy, sizeof(copy), "%s", text);
    for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *num = w, *end;
        const char *prefix = "";

        if (!strncmp(w, "pat:", 4) || !strncmp(w, "fill:", 5)) {
            prefix = w[0] == 'p' ? "pat:" : "fill:";
            num = w + strlen(prefix);
        }
        if (*num >= '0' && *num <= '9' && !(num[0] == '0' && num[1] == 'x')) {
            unsigned long n = strtoul(num, &end, 10);

            if ((*end == '\0' || (*prefix && *end == ':')) && seen++ == k) {
                *old = n;
                done = true;
                o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s%lu%s", o ? " " : "", prefix,
                                      v, end);
                continue;
            }
        }
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", o ? " " : "", w);
    }
    if (done)
        snprintf(text, GTEXT, "%s", out);
    return done;
}

static void shrink_numbers(struct fuzz *z, struct gscn *g, const char *sig)
{
    for (unsigned i = 0; i < g->n; i++) {
        if (g->st[i].expect)
            continue;
        for (unsigned k = 0; k < 4; k++) {
            unsigned long old = 0;
            char probe[GTEXT];

            snprintf(probe, sizeof(probe), "%s", g->st[i].text);
            if (!set_number(probe, k, 0, &old))
                break;
            /* Smaller and smaller: 0, then halves of the distance left. */
            for (unsigned long lo = 0, hi = old; lo < hi;) {
                struct gscn t = *g;
                unsigned long mid = lo + (hi - lo) / 2, dummy;

                set_number(t.st[i].text, k, mid, &dummy);
                if (still(z, &t, sig)) {
                    *g = t;
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
        }
    }
}

/* ---- output ---- */

/* An expect line with its observed value, or NULL if the outcome is not
 * a value the check takes (an errno). */
static bool expect_line(const char *text, const char *got, const char *tags, char *out, size_t len)
{
    const char *check = strrchr(text, ' ') + 1;
    const char *sp = strchr(text, ' ');
    char word[16];

    snprintf(word, sizeof(word), "expect%s", tags);
    if (!got)
        return false;
    if (!strcmp(check, "inline")) {
        if (strcmp(got, "inline") && strcmp(got, "extents"))
            return false;
        snprintf(out, len, "%s%.*s %s", word, (int)(check - sp - 1), sp, got);
        return true;
    }
    if ((got[0] < '0' || got[0] > '9') && strcmp(check, "xattrs") && strcmp(check, "entries"))
        return false;
    if (got[0] == 'E' || !strncmp(got, "errno", 5))
        return false;
    snprintf(out, len, "%s%s %s", word, sp, got);
    return true;
}

static void emit_line(FILE *f, const struct gstep *st, const char *got, const char *tags)
{
    char line[GTEXT + 600];

    if (st->expect) {
        if (expect_line(st->text, got, tags, line, sizeof(line)))
            fprintf(f, "%s\n", line);
        else
            fprintf(f, "# expect%s%s: %s\n", tags, strchr(st->text, ' '), got ? got : "not run");
        return;
    }
    fprintf(f, "%.*s%s%s", (int)strcspn(st->text, " "), st->text, tags,
            st->text + strcspn(st->text, " "));
    if (!got)
        fprintf(f, "  # not run\n");
    else if (!strcmp(got, "success") || !strcmp(got, "clean"))
        fprintf(f, "\n");
    else if (scn_errno_by_name(got) || !strncmp(got, "short:", 6))
        fprintf(f, " => %s\n", got);
    else
        fprintf(f, "  # %s\n", got);
}

static int write_finding(struct fuzz *z, const struct gscn *g, const struct outcome *o,
                         uint64_t seed, unsigned index, unsigned from, const char *sig, char *path,
                         size_t plen)
{
    char tag[2][24];
    FILE *f;

    snprintf(path, plen, "%s/fuzz-%" PRIu64 "-%u.scn", z->out, seed, index);
    f = fopen(path, "w");
    if (!f)
        return -errno;
    for (unsigned b = 0; b < 2; b++)
        snprintf(tag[b], sizeof(tag[b]), "[%s]", z->be[b]->name);
    fprintf(f, "# Found by: uext4-scenario fuzz --backend=%s,%s --seed %" PRIu64 " (scenario %u)\n",
            z->be[0]->name, z->be[1]->name, seed, index);
    fprintf(f, "# uext4 runs in inline_mmap=%s mode; minimised from %u to %u steps.\n",
            z->mode[0] == SCN_TAG_CONVERT ? "convert" : "keep", from, g->n);
    fprintf(f, "# What differs (%s):\n", sig);
    for (unsigned b = 0; b < 2; b++)
        if (o->failed[b])
            fprintf(f, "#   %s run failed: %s\n", z->be[b]->name, o->msg[b]);
    for (unsigned i = 0; i < g->n; i++) {
        const char *a = o->line[0][i], *c = o->line[1][i];

        if (a && c && strcmp(a, c))
            fprintf(f, "#   %s:  %s=%s  %s=%s\n", g->st[i].text, z->be[0]->name, a, z->be[1]->name,
                    c);
    }
    fprintf(f, "backends %s %s\n", z->be[0]->name, z->be[1]->name);
    if (z->mode[0] == SCN_TAG_CONVERT)
        fprintf(f, "inline-mmap convert\n");
    render_header(f, g);
    for (unsigned i = 0; i < g->n; i++) {
        const char *a = o->line[0][i], *c = o->line[1][i];

        if (g->st[i].presync)
            fprintf(f, "sync\n");
        if ((a && c && !strcmp(a, c)) || (!a && !c)) {
            emit_line(f, &g->st[i], a, "");
        } else {
            emit_line(f, &g->st[i], a, tag[0]);
            emit_line(f, &g->st[i], c, tag[1]);
        }
    }
    if (o->failed[0] || o->failed[1])
        fprintf(f, "no-final-fsck  # see above: a run failed\n");
    return fclose(f) ? -errno : 0;
}

/* Leave out the expect lines of checks in @list (a known difference that
 * would otherwise be found again and again). */
static void drop_checks(struct gscn *g, const char *list)
{
    char copy[256], *save = NULL;

    snprintf(copy, sizeof(copy), "%s", list ? list : "");
    for (char *c = strtok_r(copy, ",", &save); c; c = strtok_r(NULL, ",", &save))
        for (unsigned i = 0; i < g->n;)
            if (g->st[i].expect && !strcmp(strrchr(g->st[i].text, ' ') + 1, c))
                drop_range(g, i, 1);
            else
                i++;
}

static int dump_scenario(struct fuzz *z, const struct gscn *g, uint64_t seed, unsigned index)
{
    char path[600];
    int line_of[MAX_GSTEPS];

    snprintf(path, sizeof(path), "%s/gen-%" PRIu64 "-%u.scn", z->out, seed, index);
    return write_runnable(g, path, line_of);
}

/* ---- command line ---- */

static void usage(FILE *out)
{
    fprintf(out, "usage: uext4-scenario fuzz [--backend=B,B] [--time SECONDS] [--count N]\n"
                 "                           [--seed N] [--from I] [--inline-mmap=keep|convert]\n"
                 "                           [--uext4=PATH] [--dump] [--no-check=C,C] --out DIR\n"
                 "\n"
                 "Run random scenarios (inline sizes at the inode sizes' boundaries, writes,\n"
                 "mmap stores and writebacks, truncate, fallocate, punch, zero-range, xattrs,\n"
                 "renames, links, unlinks, remounts, drop-caches) on two backends (default\n"
                 "lib,mount). Each difference, or failed run, is minimised and written to\n"
                 "DIR/fuzz-SEED-I.scn with the backends' outcomes in its header.\n"
                 "\n"
                 "  --time S      stop starting scenarios after S seconds (default 60)\n"
                 "  --count N     run at most N scenarios\n"
                 "  --seed N      the seed (default: the time); scenario I of a seed is\n"
                 "                always the same scenario\n"
                 "  --inline-mmap uext4's mode (default: convert against kernel, else keep:\n"
                 "                the deliberate mmap rule is not reported)\n"
                 "  --dump        also write every generated scenario, DIR/gen-SEED-I.scn\n"
                 "  --no-check=C,C  leave out those expect checks (size, digest, xattrs,\n"
                 "                entries, inline, blocks): a known difference\n"
                 "Exit status: 0 nothing found, 1 differences found, 2 bad usage.\n");
}

/* The command line's choices that are not the run's own state. */
struct fuzz_args {
    uint64_t seed;
    int64_t limit_s, count, first;
    unsigned mode; /* 0 until --inline-mmap, or the default, says */
};

/* One option into @z or @a: -1 to go on, else the exit status. */
static int parse_opt(struct fuzz *z, struct fuzz_args *a, int opt)
{
    unsigned nb = 0;
    int64_t v;

    switch (opt) {
    case 'b':
        if (scn_parse_backends(optarg, z->be, 2, &nb) || nb != 2) {
            fprintf(stderr, "uext4-scenario fuzz: --backend needs two backends\n");
            return 2;
        }
        break;
    case 't':
    case 'n':
    case 's':
    case 'f':
        if (scn_parse_num(optarg, &v)) {
            fprintf(stderr, "uext4-scenario fuzz: '%s' is not a number\n", optarg);
            return 2;
        }
        if (opt == 's')
            a->seed = (uint64_t)v;
        else if (opt == 'f')
            a->first = v;
        else
            *(opt == 't' ? &a->limit_s : &a->count) = v;
        break;
    case 'o':
        z->out = optarg;
        break;
    case 'u':
        z->daemon = optarg;
        break;
    case 'd':
        z->dump = true;
        break;
    case 'x':
        z->no_check = optarg;
        break;
    case 'm':
        if (strcmp(optarg, "keep") && strcmp(optarg, "convert")) {
            fprintf(stderr, "uext4-scenario fuzz: --inline-mmap is keep or convert\n");
            return 2;
        }
        a->mode = !strcmp(optarg, "keep") ? SCN_TAG_KEEP : SCN_TAG_CONVERT;
        break;
    case 'h':
        usage(stdout);
        return 0;
    default:
        usage(stderr);
        return 2;
    }
    return -1;
}

/* -1 when the run can start, else the exit status. */
static int parse_args(int argc, char **argv, struct fuzz *z, struct fuzz_args *a)
{
    static const struct option longopts[] = {
        {"backend", required_argument, NULL, 'b'},  {"time", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},    {"seed", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},      {"uext4", required_argument, NULL, 'u'},
        {"dump", no_argument, NULL, 'd'},           {"inline-mmap", required_argument, NULL, 'm'},
        {"from", required_argument, NULL, 'f'},     {"help", no_argument, NULL, 'h'},
        {"no-check", required_argument, NULL, 'x'}, {NULL, 0, NULL, 0},
    };
    int opt, ret;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
        if ((ret = parse_opt(z, a, opt)) >= 0)
            return ret;
    if (!z->out || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (mkdir(z->out, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "uext4-scenario fuzz: cannot make %s: %s\n", z->out, strerror(errno));
        return 2;
    }
    return -1;
}

/* The mode, the scratch file, signals; then the banner. */
static void prepare(struct fuzz *z, struct fuzz_args *a)
{
    const char *tmp = getenv("TMPDIR");

    if (!a->mode)
        a->mode = z->be[0]->tag == SCN_TAG_KERNEL || z->be[1]->tag == SCN_TAG_KERNEL
                      ? SCN_TAG_CONVERT
                      : SCN_TAG_KEEP;
    z->mode[0] = z->mode[1] = a->mode;
    snprintf(z->tmp, sizeof(z->tmp), "%s/uext4-fuzz-%d.scn", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    umask(022);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    printf("# fuzz: seed %" PRIu64 ", backends %s,%s, uext4 inline_mmap=%s\n", a->seed,
           z->be[0]->name, z->be[1]->name, a->mode == SCN_TAG_CONVERT ? "convert" : "keep");
}

enum fuzz_next { FUZZ_NEXT, FUZZ_STOP, FUZZ_FAIL };

/* Minimise @g's difference @sig and write it out; *@found counts it. */
static enum fuzz_next minimise_and_write(struct fuzz *z, struct gscn *g, const char *sig,
                                         uint64_t seed, unsigned index, unsigned *found)
{
    unsigned from = g->n;
    struct outcome o;
    char path[600];
    int ret;

    /* Until nothing shrinks (a smaller number can free a step, and
     * the reverse); three rounds reach that in practice. */
    for (unsigned round = 0; round < 3; round++) {
        struct gscn before = *g;

        shrink_steps(z, g, sig);
        shrink_numbers(z, g, sig);
        if (!memcmp(&before, g, sizeof(*g)))
            break;
    }
    /* The final outcome, for the header and the expect lines. */
    if (stop_now || run_both(z, g, &o) != 0)
        return FUZZ_NEXT;
    ret = write_finding(z, g, &o, seed, index, from, sig, path, sizeof(path));
    outcome_free(&o);
    if (ret) {
        fprintf(stderr, "uext4-scenario fuzz: %s: %s\n", path, scn_errno_name(ret));
        return FUZZ_STOP;
    }
    printf("diff scenario %u (%s): %u -> %u steps: %s\n", index, sig, from, g->n, path);
    (*found)++;
    return FUZZ_NEXT;
}

/* Scenario @index of @seed: generate, run on both, minimise what differs. */
static enum fuzz_next fuzz_one(struct fuzz *z, uint64_t seed, unsigned index, unsigned *found)
{
    struct gscn g;
    struct outcome o;
    char sig[64];
    int ret;

    generate(seed, index, &g);
    drop_checks(&g, z->no_check);
    if (z->dump && dump_scenario(z, &g, seed, index)) {
        fprintf(stderr, "uext4-scenario fuzz: cannot write to %s: %s\n", z->out, strerror(errno));
        return FUZZ_STOP;
    }
    ret = run_both(z, &g, &o);
    if (ret) {
        fprintf(stderr, "uext4-scenario fuzz: scenario %u: %s\n", index, scn_errno_name(ret));
        return FUZZ_FAIL;
    }
    signature(&g, &o, sig, sizeof(sig));
    /* A failed run's reason, before the minimiser's runs replace it
     * (a failure that does not come back is not minimised away). */
    for (unsigned b = 0; b < 2; b++)
        if (o.failed[b])
            printf("# scenario %u: %s run failed: %s\n", index, z->be[b]->name, o.msg[b]);
    outcome_free(&o);
    if (!sig[0])
        return FUZZ_NEXT;
    return minimise_and_write(z, &g, sig, seed, index, found);
}

int scn_fuzz_main(int argc, char **argv)
{
    struct fuzz z = {.daemon = scn_default_daemon()};
    struct fuzz_args a = {.seed = (uint64_t)time(NULL), .limit_s = 60, .count = -1};
    unsigned found = 0, index;
    time_t start = time(NULL);
    enum fuzz_next next_step;
    int ret;

    z.be[0] = &scn_backend_lib;
    z.be[1] = &scn_backend_mount;
    ret = parse_args(argc, argv, &z, &a);
    if (ret >= 0)
        return ret;
    prepare(&z, &a);
    for (index = (unsigned)a.first; a.count < 0 || index < (uint64_t)(a.first + a.count); index++) {
        if (stop_now || (a.count < 0 && time(NULL) - start >= a.limit_s))
            break;
        next_step = fuzz_one(&z, a.seed, index, &found);
        if (next_step == FUZZ_FAIL) {
            unlink(z.tmp);
            return 2;
        }
        if (next_step == FUZZ_STOP)
            break;
    }
    unlink(z.tmp);
    printf("%u scenarios, %u runs, %u differences\n", index - (unsigned)a.first, z.runs, found);
    return found ? 1 : 0;
}

/* One run of a scenario: a private temp dir and image, the steps in order,
 * checkpoints where a check needs the image at rest, and the final fsck.
 *
 * The file system is in one of three states:
 *
 *   live ----(storage check, mount/kernel)----> at rest, read-only view open
 *     ^  \---(fsck-clean, remount)----------> down
 *     |                                          |
 *     +----(any other step: start again)---------+
 *
 * Going down closes every open file and mapping (their dirty pages are
 * written back, as on a real unmount), so a scenario that must keep pages
 * dirty across a check is only meaningful in the lib backend, where
 * storage checks read the live inode (doc/scenario-format.md). */
#include "scenario/scn.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEXT 512

static bool applies(const struct scn_run *r, unsigned tags)
{
    unsigned b = tags & SCN_TAGS_BACKEND, m = tags & SCN_TAGS_MODE;

    return (!b || (b & r->active)) && (!m || (m & r->active));
}

static int go_live(struct scn_run *r, char *why, size_t why_len)
{
    int ret;

    if (r->live)
        return 0;
    if (r->ro) {
        uext4_close(r->ro);
        r->ro = NULL;
    }
    ret = r->be->start(r, why, why_len);
    r->live = ret == 0;
    return ret;
}

static int go_down(struct scn_run *r, char *why, size_t why_len)
{
    if (!r->live)
        return 0;
    r->live = false;
    return r->be->stop(r, why, why_len);
}

/* The image at rest, opened read-only by the library, for storage checks
 * of the syscall backends. */
static int go_at_rest(struct scn_run *r, char *why, size_t why_len)
{
    struct uext4_options opts = {.size = sizeof(opts), .read_only = true};
    int ret = go_down(r, why, why_len);

    if (ret || r->ro)
        return ret;
    return uext4_open(r->image, &opts, &r->ro, why, why_len);
}

/* `stamp PATH`: remember PATH's mtime, then wait until the clock has moved
 * past it (file systems stamp from the coarse clock), so that any later
 * change gives a later mtime and `expect PATH mtime-changed` is exact. */
static int stamp(struct scn_run *r, const char *path)
{
    struct timespec now;
    struct stat sb;
    unsigned i;
    int ret = r->be->stat(r, path, &sb);

    if (ret)
        return ret;
    for (i = 0; i < r->nstamps && strcmp(r->stamp_path[i], path); i++)
        ;
    if (i == sizeof(r->stamp_path) / sizeof(r->stamp_path[0]))
        return -ENOSPC;
    if (i == r->nstamps) {
        r->stamp_path[i] = strdup(path);
        if (!r->stamp_path[i])
            return -ENOMEM;
        r->nstamps++;
    }
    r->stamp_mtime[i] = sb.st_mtim;
    /* at most a tick or two (4 ms at HZ=250); bounded in case the file's
     * mtime lies in the future */
    for (int k = 0; k < 1000; k++) {
        clock_gettime(CLOCK_REALTIME_COARSE, &now);
        if (now.tv_sec > sb.st_mtim.tv_sec ||
            (now.tv_sec == sb.st_mtim.tv_sec && now.tv_nsec > sb.st_mtim.tv_nsec))
            return 0;
        usleep(1000);
    }
    return 0;
}

/* The steps that give back more than an error: bytes read, the count
 * written, the offset found. */
static int act_io(struct scn_run *r, const struct scn_step *st, unsigned char **rbuf, size_t *rlen)
{
    const struct scn_backend *be = r->be;
    ssize_t n;
    off_t o;

    switch (st->op) {
    case SCN_WRITE:
        /* the count written travels in @rlen */
        n = be->write(r, st->path, st->data.bytes, st->data.len, st->off);
        break;
    case SCN_READ:
    case SCN_MMAP_LOAD:
        *rbuf = malloc(st->data.len + 1);
        if (!*rbuf)
            return -ENOMEM;
        if (st->op == SCN_READ)
            n = be->read(r, st->path, *rbuf, st->data.len, st->off);
        else
            n = be->mmap_load(r, st->path, *rbuf, st->data.len, st->off);
        break;
    default:
        o = be->lseek(r, st->path, st->off, st->mode);
        /* the offset found travels in @rlen */
        *rlen = o < 0 ? 0 : (size_t)o;
        return o < 0 ? (int)o : 0;
    }
    *rlen = n < 0 ? 0 : (size_t)n;
    return n < 0 ? (int)n : 0;
}

static int act_setattr(struct scn_run *r, const struct scn_step *st)
{
    struct stat in = {0};

    in.st_mode = (mode_t)st->value;
    in.st_uid = (uid_t)st->value;
    in.st_gid = (gid_t)st->value2;
    in.st_atim.tv_sec = st->value;
    in.st_mtim.tv_sec = st->value2;
    return r->be->setattr(r, st->path, &in, (unsigned)st->mode);
}

/* Steps on names and attributes. */
static int act_names(struct scn_run *r, const struct scn_step *st)
{
    const struct scn_backend *be = r->be;

    switch (st->op) {
    case SCN_UNLINK:
        return be->unlink(r, st->path);
    case SCN_RMDIR:
        return be->rmdir(r, st->path);
    case SCN_MKDIR:
        return be->mkdir(r, st->path, (mode_t)st->mode);
    case SCN_RENAME:
        return be->rename(r, st->path, st->path2, (unsigned)st->mode);
    case SCN_LINK:
        return be->link(r, st->path, st->path2);
    case SCN_SYMLINK:
        return be->symlink(r, st->path2, st->path);
    case SCN_SETXATTR:
        return be->setxattr(r, st->path, st->name, st->data.bytes, st->data.len, st->mode);
    case SCN_REMOVEXATTR:
        return be->removexattr(r, st->path, st->name);
    default:
        return act_setattr(r, st);
    }
}

/* Steps on a file's contents, mappings and syncs, and the rest. */
static int act_file(struct scn_run *r, const struct scn_step *st)
{
    const struct scn_backend *be = r->be;

    switch (st->op) {
    case SCN_CREATE:
        return be->create(r, st->path, (mode_t)st->mode);
    case SCN_OPEN:
        return be->open(r, st->path, st->mode);
    case SCN_CLOSE:
        return be->close(r, st->path);
    case SCN_COPY_RANGE:
        return be->copy_range(r, st->path, st->off, st->path2, st->value, (size_t)st->len);
    case SCN_MMAP_STORE:
        return be->mmap_store(r, st->path, st->data.bytes, st->data.len, st->off);
    case SCN_MUNMAP:
        return be->munmap(r, st->path);
    case SCN_MSYNC_ASYNC:
        return be->msync_async(r, st->path);
    case SCN_MMAP_PRIVATE_STORE:
        return be->mmap_private_store(r, st->path, st->data.bytes, st->data.len, st->off);
    case SCN_MPROTECT:
        return be->mprotect(r, st->path, st->mode);
    case SCN_STAMP:
        return stamp(r, st->path);
    case SCN_WRITEBACK:
        return be->writeback(r, st->path);
    case SCN_TRUNCATE:
        return be->truncate(r, st->path, st->len);
    case SCN_FALLOCATE:
        return be->fallocate(r, st->path, st->mode, st->off, st->len);
    case SCN_FSYNC:
        return be->fsync(r, st->path);
    case SCN_SYNC:
        return be->sync(r, st->path);
    case SCN_FDATASYNC:
        return be->fdatasync(r, st->path);
    case SCN_DROP_CACHES:
        return be->drop_caches(r);
    case SCN_SLEEP:
        return usleep((useconds_t)st->len * 1000) < 0 ? -errno : 0;
    default:
        return -ENOSYS;
    }
}

/* An action step; the result is 0 or -errno, reads also give their bytes. */
static int act(struct scn_run *r, const struct scn_step *st, unsigned char **rbuf, size_t *rlen)
{
    switch (st->op) {
    case SCN_WRITE:
    case SCN_READ:
    case SCN_MMAP_LOAD:
    case SCN_SEEK:
        return act_io(r, st, rbuf, rlen);
    case SCN_UNLINK:
    case SCN_RMDIR:
    case SCN_MKDIR:
    case SCN_RENAME:
    case SCN_LINK:
    case SCN_SYMLINK:
    case SCN_SETXATTR:
    case SCN_REMOVEXATTR:
    case SCN_SETATTR:
        return act_names(r, st);
    default:
        return act_file(r, st);
    }
}

static void record(struct scn_run *r, const struct scn_step *st, const char *text)
{
    size_t i = (size_t)(st - r->script->steps);

    free(r->outcome[i]);
    r->outcome[i] = strdup(text);
    if (r->verbose)
        printf("#   %s:%d: %s %s\n", r->script->name, st->line, scn_step_name(st), text);
}

static void short_text(const struct scn_step *st, char *out, size_t len)
{
    if (st->short_len < 0)
        snprintf(out, len, "short");
    else
        snprintf(out, len, "short:%" PRId64, st->short_len);
}

/* Judge an action's result. Returns true if as expected. */
static bool judge(struct scn_run *r, const struct scn_step *st, int ret, const unsigned char *rb,
                  size_t rlen, char *msg, size_t msg_len)
{
    char got[TEXT], want[TEXT];
    bool pass;

    if ((st->op == SCN_READ || st->op == SCN_MMAP_LOAD) && !ret && !st->want_errno) {
        struct scn_data want_data = st->data;

        scn_describe(want_data.bytes, want_data.len, want, sizeof(want));
        pass = rlen == want_data.len && !memcmp(rb, want_data.bytes, rlen);
        scn_describe(rb, rlen, got, sizeof(got));
    } else if (st->op == SCN_WRITE && !ret && rlen != st->data.len) {
        /* a short write: accepted only as `=> short:N` */
        if (st->want_short)
            short_text(st, want, sizeof(want));
        else
            snprintf(want, sizeof(want), "%s", scn_errno_name(st->want_errno));
        snprintf(got, sizeof(got), "short:%zu", rlen);
        pass = st->want_short && (st->short_len < 0 || (int64_t)rlen == st->short_len);
        /* `=> short` passes any count; the outcome shows which */
    } else if (st->op == SCN_SEEK && !ret && !st->want_errno) {
        snprintf(want, sizeof(want), "%" PRId64, st->value);
        snprintf(got, sizeof(got), "%zu", rlen);
        pass = (int64_t)rlen == st->value;
    } else {
        char sh[40];
        size_t o;

        short_text(st, sh, sizeof(sh));
        o = (size_t)snprintf(want, sizeof(want), "%s",
                             st->short_only ? sh : scn_errno_name(st->want_errno));
        snprintf(got, sizeof(got), "%s", scn_errno_name(ret));
        pass = ret == -st->want_errno && !st->short_only;
        if (st->want_short && !st->short_only && o < sizeof(want))
            o += (size_t)snprintf(want + o, sizeof(want) - o, " or %s", sh);
        for (unsigned i = 0; i < st->nalt; i++) {
            pass = pass || ret == -st->want_alt[i];
            if (o < sizeof(want))
                o += (size_t)snprintf(want + o, sizeof(want) - o, " or %s",
                                      scn_errno_name(st->want_alt[i]));
        }
    }
    if (r->observe_only)
        pass = true;
    record(r, st, got);
    if (!pass)
        snprintf(msg, msg_len, "step %d: %s: expected %s, got %s", st->line, scn_step_name(st),
                 want, got);
    return pass;
}

struct par_arg {
    struct scn_run *r;
    const struct scn_step *st;
    int ret;
    unsigned char *rb;
    size_t rlen;
    pthread_barrier_t *start;
};

static void *par_main(void *p)
{
    struct par_arg *a = p;

    /* All steps leave the barrier together: the interleaving is up to the
     * scheduler and the file system's locks. */
    pthread_barrier_wait(a->start);
    a->ret = act(a->r, a->st, &a->rb, &a->rlen);
    return NULL;
}

static bool run_parallel(struct scn_run *r, const struct scn_step *blk, char *msg, size_t msg_len)
{
    struct par_arg args[SCN_MAX_PARALLEL] = {{0}};
    pthread_t th[SCN_MAX_PARALLEL];
    pthread_barrier_t start;
    unsigned n = 0;
    bool pass = true;

    pthread_barrier_init(&start, NULL, blk->count);
    for (unsigned i = 0; i < blk->count; i++) {
        args[i] = (struct par_arg){r, &r->script->steps[blk->first + i], 0, NULL, 0, &start};
        if (pthread_create(&th[i], NULL, par_main, &args[i]))
            break;
        n++;
    }
    if (n < blk->count) {
        /* Cannot happen short of resource exhaustion; the barrier would
         * never open, so release the started threads one by one. */
        snprintf(msg, msg_len, "step %d: parallel: cannot start threads", blk->line);
        for (unsigned i = n; i < blk->count; i++)
            pthread_barrier_wait(&start);
        pass = false;
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (unsigned i = 0; pass && i < n; i++)
        pass = judge(r, args[i].st, args[i].ret, args[i].rb, args[i].rlen, msg, msg_len);
    for (unsigned i = 0; i < n; i++)
        free(args[i].rb);
    record(r, blk, pass ? "done" : "failed");
    return pass;
}

/* One top-level step; false on failure with @msg set. */
static bool run_step(struct scn_run *r, const struct scn_step *st, char *msg, size_t msg_len)
{
    char why[TEXT], got[TEXT], want[TEXT];
    unsigned char *rb = NULL;
    size_t rlen = 0;
    bool pass;
    int ret;

    if (st->op == SCN_FSCK_CLEAN || st->op == SCN_REMOUNT) {
        ret = go_down(r, why, sizeof(why));
        if (!ret && r->ro) {
            uext4_close(r->ro);
            r->ro = NULL;
        }
        if (!ret && st->op == SCN_FSCK_CLEAN)
            ret = scn_fsck(r->image, r->log, why, sizeof(why));
        if (!ret && st->op == SCN_REMOUNT)
            ret = go_live(r, why, sizeof(why));
        record(r, st, ret ? why : "clean");
        if (ret)
            snprintf(msg, msg_len, "step %d: %s: %s", st->line, scn_step_name(st), why);
        return !ret;
    }
    if (scn_is_storage_check(st) && !r->be->live_inspect)
        ret = go_at_rest(r, why, sizeof(why));
    else
        ret = go_live(r, why, sizeof(why));
    if (ret) {
        snprintf(msg, msg_len, "step %d: cannot %s the file system: %s", st->line,
                 r->live ? "check" : "bring up", why);
        return false;
    }
    if (st->op == SCN_PARALLEL)
        return run_parallel(r, st, msg, msg_len);
    if (st->op != SCN_EXPECT) {
        ret = act(r, st, &rb, &rlen);
        pass = judge(r, st, ret, rb, rlen, msg, msg_len);
        free(rb);
        return pass;
    }
    pass = scn_check(r, st, got, sizeof(got), want, sizeof(want)) || r->observe_only;
    record(r, st, got);
    if (!pass)
        snprintf(msg, msg_len, "step %d: expect %s: expected %s, got %s", st->line, st->path, want,
                 got);
    return pass;
}

/* An expect line qualified for other runs is still looked at, without
 * judging, when that changes nothing (no checkpoint, no restart): the diff
 * between runs then shows what each one saw on the lines that differ on
 * purpose. */
static void observe(struct scn_run *r, const struct scn_step *st)
{
    char got[TEXT], want[TEXT];
    bool at_rest = scn_is_storage_check(st) && !r->be->live_inspect;

    if (st->op != SCN_EXPECT || (at_rest ? !r->ro : !r->live))
        return;
    scn_check(r, st, got, sizeof(got), want, sizeof(want));
    record(r, st, got);
}

static int make_dir(struct scn_run *r)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(r->dir, sizeof(r->dir), "%s/uext4-scn-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(r->dir))
        return -errno;
    snprintf(r->image, sizeof(r->image), "%s/image", r->dir);
    snprintf(r->mnt, sizeof(r->mnt), "%s/mnt", r->dir);
    snprintf(r->log, sizeof(r->log), "%s/log", r->dir);
    return mkdir(r->mnt, 0755) < 0 ? -errno : 0;
}

static void remove_dir(struct scn_run *r)
{
    char p[400];
    static const char *const files[] = {"image", "image.fsck", "log"};

    if (!r->dir[0])
        return;
    if (r->keep) {
        printf("# kept %s\n", r->dir);
        return;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", r->dir, files[i]);
        unlink(p);
    }
    rmdir(r->mnt); /* fails, harmlessly, if still mounted */
    rmdir(r->dir);
}

enum scn_result scn_run(struct scn_run *r, char *msg, size_t msg_len)
{
    const struct scn_script *s = r->script;
    char why[TEXT];
    bool pass = true;
    int ret;

    msg[0] = '\0';
    if (!(s->backends & r->be->tag)) {
        snprintf(msg, msg_len, "not for the %s backend", r->be->name);
        return SCN_SKIP;
    }
    if (!r->be->available(r, msg, msg_len))
        return SCN_SKIP;
    for (unsigned i = 0; r->be->cannot && i < s->nsteps; i++) {
        const char *why_not = applies(r, s->steps[i].tags) ? r->be->cannot(r, &s->steps[i]) : NULL;

        if (why_not) {
            snprintf(msg, msg_len, "step %d: %s", s->steps[i].line, why_not);
            return SCN_SKIP;
        }
    }
    r->outcome = calloc(s->nsteps ? s->nsteps : 1, sizeof(char *));
    if (!r->outcome || make_dir(r)) {
        snprintf(msg, msg_len, "cannot make a temp dir: %s", strerror(errno));
        return SCN_FAIL;
    }
    ret = scn_mkfs(&s->image, r->image, r->log, msg, msg_len);
    for (unsigned i = 0; !ret && pass && i < s->ntop; i++) {
        if (applies(r, s->steps[i].tags))
            pass = run_step(r, &s->steps[i], msg, msg_len);
        else
            observe(r, &s->steps[i]);
    }
    /* Take everything down even after a failure: no mount may outlive
     * the run. The first failure is the one reported. */
    if (go_down(r, why, sizeof(why)) && pass && !ret) {
        snprintf(msg, msg_len, "at the end: %s", why);
        pass = false;
    }
    if (r->ro) {
        uext4_close(r->ro);
        r->ro = NULL;
    }
    if (!ret && pass && s->final_fsck && scn_fsck(r->image, r->log, why, sizeof(why))) {
        snprintf(msg, msg_len, "at the end: %s", why);
        pass = false;
    }
    if (r->be->fini)
        r->be->fini(r);
    if (ret || !pass)
        r->keep = r->keep || r->verbose;
    remove_dir(r);
    return ret || !pass ? SCN_FAIL : SCN_OK;
}

void scn_run_free(struct scn_run *r)
{
    for (unsigned i = 0; r->outcome && i < r->script->nsteps; i++)
        free(r->outcome[i]);
    for (unsigned i = 0; i < r->nstamps; i++)
        free(r->stamp_path[i]);
    r->nstamps = 0;
    free(r->outcome);
    r->outcome = NULL;
}

/* uext4-scenario: run scenario files on one or more backends and report.
 *
 * Output (stdout): `ok NAME (BACKEND[, MODE])`, `FAIL NAME (...): step LINE:
 * expected X, got Y` or `skip NAME (...): reason` per run; `# diff` lines
 * where two runs of one scenario observed different outcomes; then exactly
 * `N passed, N failed` (plus `, N skipped`). Exit status: 0, 1 if anything
 * failed, 2 for bad usage or a bad scenario file (FILE:LINE: problem on
 * stderr, nothing run), 77 if everything was skipped. */
#include "scenario/scn.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MSG      1024
#define MAX_RUNS 8

struct counts {
    unsigned passed, failed, skipped;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: uext4-scenario [OPTIONS] FILE...\n"
                 "\n"
                 "Replay scenario files (doc/scenario-format.md) on uext4 and report.\n"
                 "\n"
                 "       uext4-scenario fuzz [--backend=B,B] [--time S] [--count N] [--seed N]\n"
                 "                           --out DIR   (see uext4-scenario fuzz --help)\n"
                 "\n"
                 "  --backend=LIST       comma list of lib, mount, kernel (default lib):\n"
                 "                       lib    in-process through the uext4 library\n"
                 "                       mount  through a FUSE mount by the uext4 daemon\n"
                 "                       kernel on a kernel loop mount (root only)\n"
                 "                       fake   lib with punch-hole planted as a no-op\n"
                 "                              (tests the fuzzer's minimiser)\n"
                 "  --inline-mmap=MODE   only run the keep or convert mode of each\n"
                 "                       scenario (default: the modes the file lists)\n"
                 "  --uext4=PATH         the daemon for the mount backend (default: uext4\n"
                 "                       next to this program, or $UEXT4)\n"
                 "  --keep               keep each run's temp dir (image, log)\n"
                 "  -v, --verbose        print every step's outcome; keep failed runs' dirs\n"
                 "  --check              only parse the files\n"
                 "  -h, --help           print this help\n"
                 "  -V, --version        print the version\n"
                 "\n"
                 "With several backends or modes, lines whose outcomes differ between\n"
                 "runs of the same scenario are printed as '# diff' lines.\n"
                 "Exit status: 0 ok, 1 failures, 2 bad usage or scenario file, 77 all skipped.\n");
}

int scn_parse_backends(const char *arg, const struct scn_backend **out, unsigned max, unsigned *n)
{
    const struct scn_backend *const all[] = {&scn_backend_lib, &scn_backend_mount,
                                             &scn_backend_kernel, scn_backend_fake()};
    char *copy = strdup(arg), *save = NULL;

    *n = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t i;

        for (i = 0; i < 4 && strcmp(all[i]->name, t); i++)
            ;
        if (i == 4 || *n == max) {
            fprintf(stderr,
                    "uext4-scenario: unknown backend '%s' or more than %u (lib, mount, kernel, "
                    "fake)\n",
                    t, max);
            free(copy);
            return -EINVAL;
        }
        out[(*n)++] = all[i];
    }
    free(copy);
    return *n ? 0 : -EINVAL;
}

const char *scn_default_daemon(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("UEXT4");
    ssize_t n;

    if (env && *env)
        return env;
    n = readlink("/proc/self/exe", path, sizeof(path) - 8);
    if (n < 0)
        return "uext4";
    path[n] = '\0';
    snprintf(strrchr(path, '/') ? strrchr(path, '/') + 1 : path, 8, "uext4");
    return path;
}

static const char *run_label(const struct scn_run *r, char *buf, size_t len)
{
    if (r->be->tag == SCN_TAG_KERNEL)
        snprintf(buf, len, "%s", r->be->name);
    else
        snprintf(buf, len, "%s/%s", r->be->name,
                 r->inline_mmap == UEXT4_INLINE_MMAP_CONVERT ? "convert" : "keep");
    return buf;
}

/* Lines where the runs of one scenario saw different things. */
static void print_diff(const struct scn_script *s, struct scn_run *runs, unsigned n)
{
    char label[64];

    for (unsigned i = 0; n > 1 && i < s->nsteps; i++) {
        const char *first = NULL;
        bool differ = false;
        unsigned seen = 0;

        for (unsigned k = 0; k < n; k++) {
            const char *o = runs[k].outcome ? runs[k].outcome[i] : NULL;

            /* "n/a": not observable there (dirty-pages), not a difference. */
            if (!o || !strcmp(o, "n/a"))
                continue;
            seen++;
            if (!first)
                first = o;
            else if (strcmp(first, o))
                differ = true;
        }
        if (!differ || seen < 2)
            continue;
        printf("# diff %s:%d: %s %s:", s->name, s->steps[i].line, scn_step_name(&s->steps[i]),
               s->steps[i].path ? s->steps[i].path : "");
        for (unsigned k = 0; k < n; k++)
            if (runs[k].outcome && runs[k].outcome[i] && strcmp(runs[k].outcome[i], "n/a"))
                printf("  %s=%s", run_label(&runs[k], label, sizeof(label)), runs[k].outcome[i]);
        printf("\n");
    }
}

struct cli {
    const struct scn_backend *backends[3];
    unsigned nbackends;
    unsigned mode_filter; /* SCN_TAGS_MODE subset; 0: the file's modes */
    const char *daemon;
    bool keep, verbose, check_only;
};

static void run_script(const struct cli *c, const struct scn_script *s, struct counts *cnt)
{
    struct scn_run runs[MAX_RUNS];
    char msg[MSG], label[64];
    unsigned n = 0;

    memset(runs, 0, sizeof(runs));
    for (unsigned b = 0; b < c->nbackends; b++) {
        const struct scn_backend *be = c->backends[b];
        unsigned modes = s->modes & (c->mode_filter ? c->mode_filter : SCN_TAGS_MODE);

        /* The kernel has one behaviour: one run, with no mode tag. */
        if (be->tag == SCN_TAG_KERNEL)
            modes = SCN_TAG_KEEP;
        for (unsigned m = SCN_TAG_KEEP; m <= SCN_TAG_CONVERT && n < MAX_RUNS; m <<= 1) {
            struct scn_run *r = &runs[n];
            enum scn_result res;

            if (!(modes & m))
                continue;
            r->script = s;
            r->be = be;
            r->inline_mmap =
                m == SCN_TAG_CONVERT ? UEXT4_INLINE_MMAP_CONVERT : UEXT4_INLINE_MMAP_KEEP;
            r->active = be->tag | (be->tag == SCN_TAG_KERNEL ? 0 : m);
            r->daemon = c->daemon;
            r->keep = c->keep;
            r->verbose = c->verbose;
            res = scn_run(r, msg, sizeof(msg));
            run_label(r, label, sizeof(label));
            if (res == SCN_OK) {
                printf("ok %s (%s)\n", s->name, label);
                cnt->passed++;
            } else if (res == SCN_SKIP) {
                printf("skip %s (%s): %s\n", s->name, label, msg);
                cnt->skipped++;
            } else {
                printf("FAIL %s (%s): %s\n", s->name, label, msg);
                cnt->failed++;
            }
            fflush(stdout);
            n++;
        }
    }
    print_diff(s, runs, n);
    for (unsigned k = 0; k < n; k++)
        scn_run_free(&runs[k]);
}

/* One option into @c: -1 to go on, else the exit status (--help and
 * --version exit here). */
static int parse_cli_opt(struct cli *c, int opt)
{
    switch (opt) {
    case 'b':
        if (scn_parse_backends(optarg, c->backends, 3, &c->nbackends))
            return 2;
        break;
    case 'm':
        if (strcmp(optarg, "keep") && strcmp(optarg, "convert")) {
            fprintf(stderr, "uext4-scenario: --inline-mmap is keep or convert\n");
            return 2;
        }
        c->mode_filter = !strcmp(optarg, "keep") ? SCN_TAG_KEEP : SCN_TAG_CONVERT;
        break;
    case 'u':
        c->daemon = optarg;
        break;
    case 'k':
        c->keep = true;
        break;
    case 'v':
        c->verbose = true;
        break;
    case 'c':
        c->check_only = true;
        break;
    case 'h':
        usage(stdout);
        exit(0);
    case 'V':
        printf("uext4-scenario %s (libuext4 %s, libext2fs %s)\n", UEXT4_VERSION, uext4_version(),
               uext4_ext2fs_version());
        exit(0);
    default:
        usage(stderr);
        return 2;
    }
    return -1;
}

static int parse_cli(int argc, char **argv, struct cli *c)
{
    static const struct option longopts[] = {
        {"backend", required_argument, NULL, 'b'},
        {"inline-mmap", required_argument, NULL, 'm'},
        {"uext4", required_argument, NULL, 'u'},
        {"keep", no_argument, NULL, 'k'},
        {"verbose", no_argument, NULL, 'v'},
        {"check", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt, ret;

    c->backends[0] = &scn_backend_lib;
    c->nbackends = 1;
    c->daemon = scn_default_daemon();
    while ((opt = getopt_long(argc, argv, "vhV", longopts, NULL)) != -1)
        if ((ret = parse_cli_opt(c, opt)) >= 0)
            return ret;
    if (optind == argc) {
        usage(stderr);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cli c = {0};
    struct counts cnt = {0};
    struct scn_script *scripts;
    int nfiles, bad = 0, ret;

    if (argc > 1 && !strcmp(argv[1], "fuzz"))
        return scn_fuzz_main(argc - 1, argv + 1);
    ret = parse_cli(argc, argv, &c);

    if (ret)
        return ret;
    nfiles = argc - optind;
    scripts = calloc((size_t)nfiles, sizeof(*scripts));
    if (!scripts)
        return 2;
    /* Parse everything first: a typo in the tenth file should not cost a
     * run of the first nine. */
    for (int i = 0; i < nfiles; i++)
        if (scn_parse_file(argv[optind + i], &scripts[i]))
            bad++;
    if (bad || c.check_only) {
        if (bad)
            fprintf(stderr, "uext4-scenario: %d bad scenario file%s, nothing run\n", bad,
                    bad > 1 ? "s" : "");
        ret = bad ? 2 : 0;
        goto out_free;
    }
    umask(022);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < nfiles; i++)
        run_script(&c, &scripts[i], &cnt);
    printf("%u passed, %u failed", cnt.passed, cnt.failed);
    if (cnt.skipped)
        printf(", %u skipped", cnt.skipped);
    printf("\n");
    ret = cnt.failed ? 1 : (!cnt.passed && cnt.skipped) ? 77 : 0;
out_free:
    for (int i = 0; i < nfiles; i++)
        scn_script_free(&scripts[i]);
    free(scripts);
    return ret;
}

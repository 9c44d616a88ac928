/* The -o parser of the uext4 command: every accepted and refused form. */
#include "frontend/mount_opts.h"
#include "harness.h"

#include <errno.h>
#include <stdlib.h>

struct opt_row {
    const char *name, *in;
    int rc;
    const char *err_names; /* the message must name this */
};

static const struct opt_row rows[] = {
    {"empty", "", 0, NULL},
    {"stray_commas", ",ro,,", 0, NULL},
    {"unknown", "foo", -EINVAL, "foo"},
    {"unknown_with_value", "foo=1", -EINVAL, "foo"},
    {"uidmap", "uidmap=0:1000", 0, NULL},
    {"uidmap_count", "uidmap=0:1000:65536", 0, NULL},
    {"uidmap_zero_count", "uidmap=0:1000:0", -EINVAL, "uidmap"},
    {"uidmap_negative", "uidmap=-1:2", -EINVAL, "uidmap"},
    {"uidmap_space", "uidmap= 1:2", -EINVAL, "uidmap"},
    {"uidmap_trailing", "uidmap=1:2:3:4", -EINVAL, "uidmap"},
    {"uidmap_range_overflow", "uidmap=4294967295:1", -EINVAL, "uidmap"},
    {"uidmap_too_big", "uidmap=99999999999:1", -EINVAL, "uidmap"},
    {"uidmap_nine",
     "uidmap=1:1,uidmap=2:2,uidmap=3:3,uidmap=4:4,uidmap=5:5,uidmap=6:6,"
     "uidmap=7:7,uidmap=8:8,uidmap=9:9",
     -EINVAL, "uidmap"},
    {"uidmap_eight",
     "uidmap=1:1,uidmap=2:2,uidmap=3:3,uidmap=4:4,uidmap=5:5,uidmap=6:6,"
     "uidmap=7:7,uidmap=8:8",
     0, NULL},
    {"uidmap_overlap", "uidmap=1:100:10,uidmap=50:105", -EINVAL, "uidmap"},
    {"uidmap_adjacent", "uidmap=1:100:10,uidmap=11:110", 0, NULL},
    {"gidmap", "gidmap=0:100", 0, NULL},
    {"errors", "errors=remount-ro", 0, NULL},
    {"errors_empty", "errors=", -EINVAL, "errors"},
    {"errors_bad", "errors=explode", -EINVAL, "errors"},
    {"inline_mmap_bad", "inline_mmap=sometimes", -EINVAL, "inline_mmap"},
    {"commit", "commit=30", 0, NULL},
    {"commit_empty", "commit=", -EINVAL, "commit"},
    {"fsname_empty", "fsname=", -EINVAL, "fsname"},
    {"flag_with_value", "noatime=1", -EINVAL, "noatime"},
    {"fakeroot_dp", "fakeroot,default_permissions", -EINVAL, "fakeroot"},
    {"dp_fakeroot", "default_permissions,fakeroot", -EINVAL, "default_permissions"},
    {"fakeroot_no_dp", "fakeroot,no_default_permissions", 0, NULL},
    {"no_dp_value", "no_default_permissions=1", -EINVAL, "no_default_permissions"},
};

static int test_rows(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct fe_mount_opts o;
        char err[256] = "";
        char *s = strdup(rows[i].in);
        int rc;

        fe_opts_init(&o);
        rc = fe_opts_parse(&o, s, err, sizeof(err));
        if (rc == 0)
            rc = fe_opts_finish(&o, err, sizeof(err));
        free(s);
        if (rc != rows[i].rc) {
            fprintf(stderr, "  row %s: rc %d, want %d (%s)\n", rows[i].name, rc, rows[i].rc, err);
            return 1;
        }
        if (rows[i].err_names && !strstr(err, rows[i].err_names)) {
            fprintf(stderr, "  row %s: message '%s' does not name '%s'\n", rows[i].name, err,
                    rows[i].err_names);
            return 1;
        }
    }
    return 0;
}

static int test_values_reach_core(void)
{
    struct fe_mount_opts o;
    char err[256];
    char s[] = "ro,fakeroot,uidmap=0:1000:2,gidmap=5:6,errors=panic,inline_mmap=convert,"
               "commit=7,noatime,nosuid,suid";

    fe_opts_init(&o);
    CHECK_EQ(fe_opts_parse(&o, s, err, sizeof(err)), 0);
    CHECK(o.core.read_only);
    CHECK(o.core.fakeroot);
    CHECK(o.core.noatime);
    CHECK_EQ(o.core.nuidmap, 1);
    CHECK_EQ(o.core.uidmap[0].image, 0);
    CHECK_EQ(o.core.uidmap[0].local, 1000);
    CHECK_EQ(o.core.uidmap[0].count, 2);
    CHECK_EQ(o.core.ngidmap, 1);
    CHECK_EQ(o.core.gidmap[0].image, 5);
    CHECK_EQ(o.core.errors, UEXT4_ERRORS_PANIC);
    CHECK_EQ(o.core.inline_mmap, UEXT4_INLINE_MMAP_CONVERT);
    CHECK_EQ(o.core.commit_seconds, 7);
    CHECK(o.kflag[FE_KF_SUID] && !strcmp(o.kflag[FE_KF_SUID], "suid")); /* last one wins */
    return 0;
}

/* Who checks permissions, for each way of saying it. */
static int test_perm_check(void)
{
    static const struct {
        const char *in;
        enum fe_perm_check want;
    } cases[] = {
        {"", FE_PERM_KERNEL},
        {"default_permissions", FE_PERM_KERNEL},
        {"no_default_permissions", FE_PERM_DAEMON},
        {"no_default_permissions,default_permissions", FE_PERM_KERNEL},
        {"default_permissions,no_default_permissions", FE_PERM_DAEMON},
        {"fakeroot", FE_PERM_DAEMON},
        {"allow_other,ro", FE_PERM_KERNEL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fe_mount_opts o;
        char err[256] = "";
        char *s = strdup(cases[i].in);

        fe_opts_init(&o);
        CHECK_EQ(fe_opts_parse(&o, s, err, sizeof(err)), 0);
        CHECK_EQ(fe_opts_finish(&o, err, sizeof(err)), 0);
        free(s);
        if (o.perm_check != cases[i].want) {
            fprintf(stderr, "  '%s': perm_check %d, want %d\n", cases[i].in, o.perm_check,
                    cases[i].want);
            return 1;
        }
    }
    return 0;
}

int main(void)
{
    static const struct test_case cases[] = {
        {"option_rows", test_rows},
        {"values_reach_core", test_values_reach_core},
        {"perm_check", test_perm_check},
    };
    return run_tests(cases, sizeof(cases) / sizeof(cases[0]));
}

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
    {"loop_offset", "loop,offset=1048576,sizelimit=33554432", 0, NULL},
    {"offset_max", "offset=9223372036854775807", 0, NULL},
    {"offset_past_off_t", "offset=9223372036854775808", -EINVAL, "offset"},
    {"offset_empty", "offset=", -EINVAL, "offset"},
    {"offset_suffix", "offset=1M", -EINVAL, "offset"},
    {"offset_negative", "offset=-512", -EINVAL, "offset"},
    {"sizelimit_hex", "sizelimit=0x100", -EINVAL, "sizelimit"},
    {"journal_path", "journal_path=/tmp/j.img", 0, NULL},
    {"journal_path_empty", "journal_path=", -EINVAL, "journal_path"},
    {"journal_dev_refused", "journal_dev=1792", -EINVAL, "journal_path"},
    {"loop_value", "loop=/dev/loop0", -EINVAL, "loop"},
    {"fsname_empty", "fsname=", -EINVAL, "fsname"},
    {"record", "record=/tmp/x.scn", 0, NULL},
    {"record_empty", "record=", -EINVAL, "record"},
    {"flag_with_value", "noatime=1", -EINVAL, "noatime"},
    {"fakeroot_dp", "fakeroot,default_permissions", -EINVAL, "fakeroot"},
    {"dp_fakeroot", "default_permissions,fakeroot", -EINVAL, "default_permissions"},
    {"fakeroot_no_dp", "fakeroot,no_default_permissions", 0, NULL},
    {"fakeroot_allow_other", "fakeroot,allow_other", -EINVAL, "allow_other"},
    {"allow_other_fakeroot", "allow_other,no_default_permissions,fakeroot", -EINVAL, "fakeroot"},
    {"no_dp_value", "no_default_permissions=1", -EINVAL, "no_default_permissions"},
    /* what mount(8) and fstests pass (issue 12) */
    {"atime_modes", "nodiratime,strictatime,lazytime,relatime,atime,diratime,noatime", 0, NULL},
    {"norelatime", "norelatime,nostrictatime", 0, NULL},
    {"subtype_empty", "subtype=", 0, NULL},
    {"generic_flags", "rw,nosuid,nodev,noexec,suid,dev,exec,sync,async,dirsync", 0, NULL},
    {"fstab_only", "defaults,auto,noauto,user,users,nouser,owner,group,_netdev,nofail", 0, NULL},
    {"fstab_values", "comment=systemd.automount,x-systemd.device-timeout=5,X-mount.mkdir", 0, NULL},
    {"ext4_journal",
     "data=ordered,data=journal,data=writeback,data_err=abort,commit=5,barrier,"
     "barrier=0,nobarrier,journal_checksum,nojournal_checksum,"
     "journal_async_commit,journal_ioprio=3,min_batch_time=0,max_batch_time=15000",
     0, NULL},
    {"ext4_alloc",
     "discard,nodiscard,delalloc,nodelalloc,auto_da_alloc,auto_da_alloc=0,"
     "noauto_da_alloc,stripe=16,inode_readahead_blks=32,init_itable,init_itable=10,"
     "noinit_itable,block_validity,noblock_validity,dioread_nolock,dioread_lock",
     0, NULL},
    {"ext4_misc",
     "acl,noacl,user_xattr,nouser_xattr,i_version,iversion,dax,dax=never,"
     "resuid=0,resgid=0,sb=1,usrquota,grpquota,prjquota,quota,noquota,"
     "usrjquota=aquota.user,jqfmt=vfsv0,grpid,bsdgroups,nogrpid,sysvgroups,"
     "errors=continue,nombcache,max_dir_size_kb=0,nouid32,bsddf,minixdf",
     0, NULL},
    {"data_bad", "data=everything", -EINVAL, "data"},
    {"data_no_value", "data", -EINVAL, "data"},
    {"stripe_not_number", "stripe=wide", -EINVAL, "stripe"},
    {"stripe_no_value", "stripe", -EINVAL, "stripe"},
    {"barrier_bad", "barrier=yes", -EINVAL, "barrier"},
    {"discard_value", "discard=1", -EINVAL, "discard"},
    {"dax_bad", "dax=sometimes", -EINVAL, "dax"},
    {"lazytime_value", "lazytime=1", -EINVAL, "lazytime"},
    {"strictatime_value", "strictatime=1", -EINVAL, "strictatime"},
    {"nodiratime_value", "nodiratime=1", -EINVAL, "nodiratime"},
    {"unknown_ext4_like", "nodelalloc2", -EINVAL, "nodelalloc2"},
    {"unknown_x_like", "xsystemd", -EINVAL, "xsystemd"},
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
    char s[] =
        "ro,fakeroot,uidmap=0:1000:2,gidmap=5:6,errors=panic,inline_mmap=convert,"
        "commit=7,noatime,nosuid,suid,offset=1048576,sizelimit=4294967296,journal_path=j.img";

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
    CHECK_EQ(o.core.offset, 1048576);
    CHECK_EQ(o.core.sizelimit, 4294967296ull);
    CHECK(o.core.journal_path && !strcmp(o.core.journal_path, "j.img"));
    CHECK(o.kflag[FE_KF_SUID] && !strcmp(o.kflag[FE_KF_SUID], "suid")); /* last one wins */
    return 0;
}

/* The atime options, each one's effect on the core, last one winning. */
static int test_atime(void)
{
    static const struct {
        const char *in;
        bool noatime, strictatime, nodiratime;
    } cases[] = {
        {"", false, false, false},
        {"strictatime", false, true, false},
        {"noatime", true, false, false},
        {"strictatime,noatime", true, false, false},
        {"noatime,strictatime", false, true, false},
        {"strictatime,relatime", false, false, false},
        {"strictatime,norelatime", false, false, false},
        {"nodiratime", false, false, true},
        {"nodiratime,strictatime", false, true, true},
        {"nodiratime,diratime", false, false, false},
        {"noatime,atime", false, false, false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fe_mount_opts o;
        char err[256] = "";
        char *s = strdup(cases[i].in);

        fe_opts_init(&o);
        CHECK_EQ(fe_opts_parse(&o, s, err, sizeof(err)), 0);
        free(s);
        if (o.core.noatime != cases[i].noatime || o.core.strictatime != cases[i].strictatime ||
            o.core.nodiratime != cases[i].nodiratime) {
            fprintf(stderr, "  '%s': noatime %d strictatime %d nodiratime %d\n", cases[i].in,
                    o.core.noatime, o.core.strictatime, o.core.nodiratime);
            return 1;
        }
    }
    return 0;
}

/* Options with no effect are noted once each, with a reason; the others
 * are not noted; an empty subtype is the default. */
static int test_noted(void)
{
    struct fe_mount_opts o;
    char err[256];
    char s[] = "lazytime,data=ordered,lazytime,grpid,noatime,x-foo,defaults,subtype=,discard";

    fe_opts_init(&o);
    CHECK_EQ(fe_opts_parse(&o, s, err, sizeof(err)), 0);
    CHECK_EQ(o.nnoted, 3);
    CHECK(!strcmp(o.noted[0].name, "lazytime") && o.noted[0].why && o.noted[0].why[0]);
    CHECK(!strcmp(o.noted[1].name, "data"));
    CHECK(!strcmp(o.noted[2].name, "discard"));
    CHECK(o.core.grpid);
    CHECK(o.subtype == NULL);
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
        {"option_rows", test_rows},      {"values_reach_core", test_values_reach_core},
        {"perm_check", test_perm_check}, {"atime", test_atime},
        {"noted", test_noted},
    };
    return run_tests(cases, sizeof(cases) / sizeof(cases[0]));
}

/* ext4 timestamp encoding: 34-bit seconds and nanoseconds in the extra
 * field, and the errcode table. */
#include "e2/e2.h"
#include "e2/e2_internal.h"
#include "harness.h"

#include <errno.h>

struct time_row {
    const char *name;
    int64_t sec;
    long nsec;
    uint32_t want_secs, want_extra;
};

static const struct time_row rows[] = {
    {"epoch", 0, 0, 0, 0},
    {"ns", 1, 999999999, 1, 999999999u << 2},
    {"before_1970", -1, 5, 0xffffffffu, 5u << 2},
    {"y2038_last", 0x7fffffff, 0, 0x7fffffffu, 0},
    {"y2038_first_past", 0x80000000LL, 0, 0x80000000u, 1},
    {"y2106", 0x100000000LL, 7, 0, (7u << 2) | 1},
    {"y2446_max", 0x37fffffffLL, 0, 0x7fffffffu, 3},
    {"min_1901", -0x80000000LL, 0, 0x80000000u, 0},
};

static int test_time_rows(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct time_row *r = &rows[i];
        struct timespec ts = {r->sec, r->nsec}, back;
        uint32_t secs, extra;
        e2_time_encode(&ts, &secs, &extra);
        if (secs != r->want_secs || extra != r->want_extra) {
            fprintf(stderr, "  row %s: encoded %#x/%#x, want %#x/%#x\n", r->name, secs, extra,
                    r->want_secs, r->want_extra);
            return 1;
        }
        e2_time_decode(secs, extra, true, &back);
        if (back.tv_sec != r->sec || back.tv_nsec != r->nsec) {
            fprintf(stderr, "  row %s: decoded %lld.%ld\n", r->name, (long long)back.tv_sec,
                    back.tv_nsec);
            return 1;
        }
    }
    return 0;
}

static int test_time_without_extra(void)
{
    struct timespec ts;

    e2_time_decode(0x80000000u, 0xffffffffu, false, &ts);
    CHECK_EQ(ts.tv_sec, -0x80000000LL); /* 128-byte inodes: signed 32 bits */
    CHECK_EQ(ts.tv_nsec, 0);
    return 0;
}

static int test_time_corrupt_nsec_clamped(void)
{
    struct timespec ts;

    e2_time_decode(1, 0xfffffffcu, true, &ts); /* ns field 1073741823 */
    CHECK_EQ(ts.tv_nsec, 999999999);
    return 0;
}

static int test_errcode_table(void)
{
    CHECK_EQ(e2_errno(0), 0);
    CHECK_EQ(e2_errno(EXT2_ET_BLOCK_ALLOC_FAIL), -ENOSPC);
    CHECK_EQ(e2_errno(EXT2_ET_DIR_CORRUPTED), -EUCLEAN);
    CHECK_EQ(e2_errno(EXT2_ET_INODE_CSUM_INVALID), -EUCLEAN);
    CHECK_EQ(e2_errno(EXT2_ET_EA_KEY_NOT_FOUND), -ENODATA);
    CHECK_EQ(e2_errno(EXT2_ET_RO_FILSYS), -EROFS);
    CHECK_EQ(e2_errno(EXT2_ET_FILE_TOO_BIG), -EFBIG);
    CHECK_EQ(e2_errno(EIO), -EIO); /* system errno passes through */
    CHECK_EQ(e2_errno(ENOMEM), -ENOMEM);
    CHECK_EQ(e2_errno(EXT2_ET_MAGIC_RESERVED_19), -EIO); /* unmapped: EIO, logged */
    return 0;
}

int main(void)
{
    static const struct test_case cases[] = {
        {"time_rows", test_time_rows},
        {"time_without_extra", test_time_without_extra},
        {"time_corrupt_nsec_clamped", test_time_corrupt_nsec_clamped},
        {"errcode_table", test_errcode_table},
    };
    return run_tests(cases, sizeof(cases) / sizeof(cases[0]));
}

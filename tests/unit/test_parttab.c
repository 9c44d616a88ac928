/* src/e2/parttab.c on hostile partition tables: what a whole disk image
 * is told about its partitions, exactly, or nothing, never a read past
 * the buffers or an offset that wrapped. Each row writes a table into a
 * fresh file of the row's length and asks e2_parttab_describe() for the
 * message (run under ASan in CI). */
#include "e2/e2_internal.h"
#include "harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

enum { SECTOR = 512, FILE_LEN = 64 * 1024 };

struct row {
    const char *name;
    void (*build)(unsigned char *d);
    size_t file_len; /* bytes of the table file written */
    size_t out_len;  /* the caller's buffer */
    int want_n;
    const char *want; /* the whole message */
};

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static void mbr_entry(unsigned char *d, int i, unsigned type, uint32_t lba, uint32_t n)
{
    unsigned char *e = d + 446 + 16 * i;

    e[4] = (unsigned char)type;
    put32(e + 8, lba);
    put32(e + 12, n);
    d[510] = 0x55;
    d[511] = 0xAA;
}

static void mbr_two(unsigned char *d)
{
    mbr_entry(d, 0, 0x83, 2048, 4096);
    mbr_entry(d, 1, 0x05, 8192, 100); /* extended: not followed, not named */
    mbr_entry(d, 2, 0x83, 0xFFFFFFFF, 0xFFFFFFFF);
}

/* A GPT header at sector 1: entry array at @lba, @count entries of @esize. */
static void gpt_header(unsigned char *d, uint64_t lba, uint32_t count, uint32_t esize)
{
    mbr_entry(d, 0, 0xEE, 1, 0xFFFFFFFF);
    memcpy(d + SECTOR, "EFI PART", 8);
    put64(d + SECTOR + 72, lba);
    put32(d + SECTOR + 80, count);
    put32(d + SECTOR + 84, esize);
}

static void gpt_entry(unsigned char *d, size_t at, uint64_t first, uint64_t last)
{
    d[at] = 0xAF; /* any non-zero type GUID */
    put64(d + at + 32, first);
    put64(d + at + 40, last);
}

/* 2^32-1 entries claimed: only the first 128 are read (128 x 128 bytes
 * from sector 2 fit the file); the last one of those is named. */
static void gpt_huge_count(unsigned char *d)
{
    gpt_header(d, 2, 0xFFFFFFFF, 128);
    gpt_entry(d, 2 * SECTOR, 2048, 4095);
    gpt_entry(d, 2 * SECTOR + 127 * 128, 8192, 8192);
}

static void gpt_esize_zero(unsigned char *d)
{
    gpt_header(d, 2, 4, 0);
    gpt_entry(d, 2 * SECTOR, 2048, 4095);
}

static void gpt_esize_huge(unsigned char *d)
{
    gpt_header(d, 2, 4, 0x80000000u);
    gpt_entry(d, 2 * SECTOR, 2048, 4095);
}

/* The array's sector times 512 is 2^64 + 1024: wrapped, it would be
 * sector 2, where an entry lies; not read at all. */
static void gpt_lba_wraps(unsigned char *d)
{
    gpt_header(d, (1ULL << 55) + 2, 4, 128);
    gpt_entry(d, 2 * SECTOR, 2048, 4095);
}

/* Past INT64_MAX bytes: pread refuses it. */
static void gpt_lba_past_off_t(unsigned char *d)
{
    gpt_header(d, UINT64_MAX / SECTOR - 1, 4, 128);
}

/* Entries whose byte offsets would wrap, or that end before they start:
 * skipped; the sane one named. */
static void gpt_entries_wrap(unsigned char *d)
{
    gpt_header(d, 2, 4, 128);
    gpt_entry(d, 2 * SECTOR, 1, UINT64_MAX - 1);
    gpt_entry(d, 2 * SECTOR + 128, UINT64_MAX / SECTOR, UINT64_MAX / SECTOR);
    gpt_entry(d, 2 * SECTOR + 256, 5000, 4000);
    gpt_entry(d, 2 * SECTOR + 384, 34, 34);
}

static const struct row rows[] = {
    {"mbr_primary_and_max_values", mbr_two, FILE_LEN, 256, 2,
     "partition 1: offset=1048576,sizelimit=2097152; "
     "partition 3: offset=2199023255040,sizelimit=2199023255040"},
    {"mbr_truncated", mbr_two, 300, 256, 0, ""},
    {"mbr_small_buffer", mbr_two, FILE_LEN, 81, 1, "partition 1: offset=1048576,sizelimit=2097152"},
    {"gpt_huge_count", gpt_huge_count, FILE_LEN, 256, 2,
     "partition 1: offset=1048576,sizelimit=1048576; "
     "partition 128: offset=4194304,sizelimit=512"},
    {"gpt_esize_zero", gpt_esize_zero, FILE_LEN, 256, 0, ""},
    {"gpt_esize_huge", gpt_esize_huge, FILE_LEN, 256, 0, ""},
    {"gpt_lba_wraps", gpt_lba_wraps, FILE_LEN, 256, 0, ""},
    {"gpt_lba_past_off_t", gpt_lba_past_off_t, FILE_LEN, 256, 0, ""},
    {"gpt_entries_wrap", gpt_entries_wrap, FILE_LEN, 256, 1,
     "partition 4: offset=17408,sizelimit=512"},
    {"gpt_entries_truncated", gpt_huge_count, 2 * SECTOR + 1000, 256, 0, ""},
    {"gpt_header_truncated", gpt_huge_count, SECTOR + 40, 256, 0, ""},
};

static int run_row(const struct row *r)
{
    static unsigned char d[FILE_LEN];
    char path[] = "/tmp/uext4-parttab-XXXXXX", *out = malloc(r->out_len);
    int fd = mkstemp(path), n = -1;

    memset(d, 0, sizeof(d));
    r->build(d);
    if (fd >= 0 && out && pwrite(fd, d, r->file_len, 0) == (ssize_t)r->file_len)
        n = e2_parttab_describe(fd, out, r->out_len);
    if (fd >= 0) {
        unlink(path);
        close(fd);
    }
    if (n != r->want_n || (out && strcmp(out, r->want))) {
        fprintf(stderr, "  row %s: %d \"%s\", want %d \"%s\"\n", r->name, n, out ? out : "",
                r->want_n, r->want);
        n = -1;
    }
    free(out);
    return n == r->want_n ? 0 : 1;
}

static int test_rows(void)
{
    int failed = 0;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        failed += run_row(&rows[i]);
    CHECK_EQ(failed, 0);
    return 0;
}

int main(void)
{
    static const struct test_case tests[] = {
        {"parttab_rows", test_rows},
    };
    return run_tests(tests, sizeof(tests) / sizeof(tests[0]));
}

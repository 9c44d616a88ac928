/* The partition table of a disk image, read only to say where its
 * partitions are when the image itself is not a file system: a user who
 * mounts a whole disk image is told the offset= and sizelimit= of each
 * partition (mount(8)'s loop options) instead of "bad magic number".
 *
 * MBR: the 0x55AA signature at byte 510 and four 16-byte entries from
 * byte 446 (type at +4, first sector at +8, sectors at +12, little
 * endian); type 0xEE is the protective entry of a GPT disk, 0x05, 0x0F and
 * 0x85 are extended partitions (their logical ones are not followed).
 * GPT: the header "EFI PART" at sector 1 (of 512 or 4096 bytes) gives the
 * entry array's sector (+72), count (+80) and entry size (+84); an entry
 * with a non-zero type GUID spans sectors first (+32) to last (+40),
 * inclusive. Nothing here is trusted beyond the message it builds. */
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GPT_MAX_ENTRIES 128
#define GPT_MAX_ESIZE   4096

static uint32_t le32(const unsigned char *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static bool read_at(int fd, void *buf, size_t len, uint64_t off)
{
    return pread(fd, buf, len, (off_t)off) == (ssize_t)len;
}

/* Append "N: offset=...,sizelimit=..." for a partition, if there is room. */
static void add(char *out, size_t len, unsigned *n, unsigned idx, uint64_t start, uint64_t bytes)
{
    size_t used = strlen(out);

    if (!bytes || used + 80 > len)
        return;
    snprintf(out + used, len - used, "%spartition %u: offset=%llu,sizelimit=%llu", *n ? "; " : "",
             idx, (unsigned long long)start, (unsigned long long)bytes);
    (*n)++;
}

/* The GPT whose header is at byte @sector of @fd (sectors of @sector
 * bytes). Returns the partitions listed, or -1 when there is no header. */
static int gpt(int fd, uint64_t sector, char *out, size_t len)
{
    unsigned char hdr[92], *ents;
    uint64_t lba;
    uint32_t count, esize;
    unsigned n = 0;

    if (!read_at(fd, hdr, sizeof(hdr), sector) || memcmp(hdr, "EFI PART", 8))
        return -1;
    lba = le64(hdr + 72);
    count = le32(hdr + 80);
    esize = le32(hdr + 84);
    if (count > GPT_MAX_ENTRIES)
        count = GPT_MAX_ENTRIES;
    if (esize < 128 || esize > GPT_MAX_ESIZE || lba > UINT64_MAX / sector)
        return 0;
    ents = malloc((size_t)count * esize);
    if (!ents || !read_at(fd, ents, (size_t)count * esize, lba * sector)) {
        free(ents);
        return 0;
    }
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *e = ents + (size_t)i * esize, zero[16] = {0};
        uint64_t first = le64(e + 32), last = le64(e + 40);

        if (memcmp(e, zero, 16) && last >= first && last < UINT64_MAX / sector)
            add(out, len, &n, i + 1, first * sector, (last - first + 1) * sector);
    }
    free(ents);
    return (int)n;
}

/* The primary partitions of the MBR in @mbr; *@protective: a GPT disk's. */
static unsigned mbr(const unsigned char *mbr, bool *protective, char *out, size_t len)
{
    unsigned n = 0;

    *protective = false;
    for (unsigned i = 0; i < 4; i++) {
        const unsigned char *e = mbr + 446 + 16 * i;
        unsigned type = e[4];

        if (type == 0xEE)
            *protective = true;
        else if (type && type != 0x05 && type != 0x0F && type != 0x85)
            add(out, len, &n, i + 1, (uint64_t)le32(e + 8) * 512, (uint64_t)le32(e + 12) * 512);
    }
    return n;
}

int e2_parttab_describe(int fd, char *out, size_t len)
{
    unsigned char first[512];
    bool protective;
    unsigned n;
    int g;

    if (!len)
        return 0;
    out[0] = '\0';
    if (!read_at(fd, first, sizeof(first), 0) || first[510] != 0x55 || first[511] != 0xAA)
        return 0;
    n = mbr(first, &protective, out, len);
    if (!protective)
        return (int)n;
    out[0] = '\0';
    g = gpt(fd, 512, out, len);
    if (g < 0)
        g = gpt(fd, 4096, out, len);
    return g < 0 ? 0 : g;
}

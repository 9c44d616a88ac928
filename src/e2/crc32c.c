/* crc32c.c: libext2fs's checksum function, with the CPU's CRC32 instruction.
 *
 * Every metadata_csum checksum libext2fs computes or verifies (directory,
 * extent, inode, bitmap, group descriptor, superblock, journal blocks) goes
 * through its exported ext2fs_crc32c_le(), which libext2fs 1.47 computes
 * 8 bytes at a time from tables: a quarter of the core's CPU samples in
 * library-mode creates, lookups and unlinks (a 4 KiB directory block
 * verified or checksummed per change), 7% of the daemon's in 5,000
 * creates through FUSE (2% with the instruction); jbd2/jfmt.c's journal
 * checksums call it too. libext2fs calls it through its PLT, so a
 * definition exported by the executable takes the place of its own for the
 * whole process (the daemon exports this one: meson.build); the function
 * computes the same CRC-32C (Castagnoli, reflected, @crc in and out without
 * inversion), on x86-64 with SSE 4.2 with the instruction that computes
 * exactly that. Without the instruction it hands over to libext2fs's own
 * function, which ours hides from the PLT but dlsym(RTLD_NEXT) still finds
 * in the objects loaded after ours: its slicing-by-8 is faster than a byte
 * table. Only if that lookup fails (no libext2fs loaded after us, or the
 * lookup finds ours again) does the byte table of ours serve. The choice is
 * made once, by a constructor.
 *
 * e2_crc32c_check() (called when an image is opened, which also keeps this
 * file in the executable's link) compares the chosen way with the table on
 * a known vector, so a wrong path cannot write a checksum unnoticed. */
#include "e2/e2_internal.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The reflected Castagnoli polynomial. */
#define CRC32C_POLY 0x82f63b78u

static uint32_t crc_table[256];

static void __attribute__((constructor)) crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[i] = c;
    }
}

/* A byte at a time: the last resort, and the check. */
uint32_t e2_crc32c_sw(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
                                                         size_t len)
{
    uint64_t c = crc;

    for (; len && ((uintptr_t)p & 7); len--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t v;

        memcpy(&v, p, sizeof(v));
        c = _mm_crc32_u64(c, v);
    }
    for (; len; len--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}

static bool cpu_has_crc_insn(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}

static e2_crc_fn crc_insn(void)
{
    return crc_hw;
}
#else
static bool cpu_has_crc_insn(void)
{
    return false;
}

static e2_crc_fn crc_insn(void)
{
    return NULL;
}
#endif

/* Until the constructor below has chosen. */
static e2_crc_fn crc_impl = e2_crc32c_sw;

/* libext2fs's own ext2fs_crc32c_le: the next definition after this
 * object's (the daemon's, which takes its place in the PLT; in libuext4,
 * which keeps ours local, the same). NULL if there is none, or the lookup
 * came back to ours. */
static e2_crc_fn libext2fs_crc(void)
{
    void *f = dlsym(RTLD_NEXT, "ext2fs_crc32c_le");

    if (!f || f == (void *)ext2fs_crc32c_le)
        return NULL;
    return (e2_crc_fn)f;
}

e2_crc_fn e2_crc32c_select(bool hw)
{
    e2_crc_fn f = hw ? crc_insn() : NULL;

    if (!f)
        f = libext2fs_crc();
    return f ? f : e2_crc32c_sw;
}

static void __attribute__((constructor)) crc_choose(void)
{
    bool hw = cpu_has_crc_insn();

    /* Tests take the path of CPUs without the instruction. */
    if (UEXT4_TEST_HOOKS && getenv("UEXT4_TEST_NO_SSE42"))
        hw = false;
    crc_impl = e2_crc32c_select(hw);
}

e2_crc_fn e2_crc32c_impl(void)
{
    return crc_impl;
}

uint32_t e2_crc32c(uint32_t crc, const unsigned char *p, size_t len)
{
    return crc_impl(crc, p, len);
}

/* libext2fs's name and prototype (ext2fs.h): see the top of the file. */
__u32 ext2fs_crc32c_le(__u32 crc, unsigned char const *p, size_t len)
{
    return crc_impl(crc, p, len);
}

int e2_crc32c_check(void)
{
    /* CRC-32C of "123456789" (RFC 3720's check value), unaligned and long
     * enough for every path of crc_hw. */
    static const char v[] = "x123456789123456789";
    uint32_t a = ~e2_crc32c(~0u, (const unsigned char *)v + 1, 9);
    uint32_t b = e2_crc32c(~0u, (const unsigned char *)v + 1, 18);
    uint32_t c = e2_crc32c_sw(~0u, (const unsigned char *)v + 1, 18);

    return a == 0xe3069283u && b == c ? 0 : -EIO;
}

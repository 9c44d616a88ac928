/* src/e2/crc32c.c: the CRC-32C that takes the place of libext2fs's
 * ext2fs_crc32c_le() in the daemon gives libext2fs's own results, for every
 * length, alignment and seed; without the CPU's instruction it is
 * libext2fs's own function; and the daemon does export it (argv[1] is the
 * uext4 executable). In builds with test hooks the program runs itself
 * again with UEXT4_TEST_NO_SSE42 set, where every case holds too and the
 * function chosen at load is libext2fs's. */
#include "e2/e2_internal.h"
#include "harness.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

typedef uint32_t (*crc_fn)(uint32_t, const unsigned char *, size_t);

static const char *exe_path, *self_path;

/* libext2fs's own function: dlsym on its handle searches libext2fs first,
 * not the executable whose definition would take its place. */
static crc_fn libext2fs_crc(void)
{
    void *h = dlopen("libext2fs.so.2", RTLD_NOW | RTLD_LOCAL);

    return h ? (crc_fn)dlsym(h, "ext2fs_crc32c_le") : NULL;
}

static int test_check_value(void)
{
    CHECK_EQ(~e2_crc32c(~0u, (const unsigned char *)"123456789", 9), 0xe3069283u);
    CHECK_EQ(~e2_crc32c_sw(~0u, (const unsigned char *)"123456789", 9), 0xe3069283u);
    CHECK_EQ(e2_crc32c_check(), 0);
    return 0;
}

/* Lengths 0-4200 (every path: unaligned head, 8-byte body, tail) and
 * 64 KiB, at each alignment, from varied seeds: e2_crc32c (the function
 * chosen at load), the byte table and the choice for a CPU without the
 * instruction all give libext2fs's results. */
static int test_same_as_libext2fs(void)
{
    enum { MAX = 65536 + 8 };
    crc_fn orig = libext2fs_crc(), no_insn = e2_crc32c_select(false);
    unsigned char *buf = malloc(MAX);
    uint32_t seed = 0x12345678u;
    size_t n = 0;

    CHECK(orig != NULL);
    CHECK(orig != (crc_fn)e2_crc32c);
    CHECK(buf != NULL);
    for (size_t i = 0; i < MAX; i++)
        buf[i] = (unsigned char)(i * 131u + (i >> 7));
    for (size_t len = 0; len <= 4200 || len == 65536; len = len < 4200 ? len + 1 : 65536) {
        for (size_t off = 0; off < 8; off++, n++) {
            uint32_t want = orig(seed, buf + off, len), got = e2_crc32c(seed, buf + off, len);

            if (got != want || e2_crc32c_sw(seed, buf + off, len) != want ||
                no_insn(seed, buf + off, len) != want) {
                fprintf(stderr, "  len %zu off %zu seed %#x: %#x, libext2fs %#x\n", len, off, seed,
                        got, want);
                free(buf);
                return 1;
            }
            seed = seed * 1103515245u + 12345u;
        }
        if (len == 65536)
            break;
    }
    free(buf);
    CHECK(n > 4200 * 8);
    return 0;
}

/* Without the instruction, libext2fs's own function itself: not ours,
 * not the byte table. */
static int test_no_insn_is_libext2fs(void)
{
    crc_fn orig = libext2fs_crc();

    CHECK(orig != NULL);
    CHECK(e2_crc32c_select(false) == orig);
    CHECK(e2_crc32c_select(false) != e2_crc32c_sw);
    return 0;
}

static bool forced_no_insn(void)
{
    return UEXT4_TEST_HOOKS && getenv("UEXT4_TEST_NO_SSE42");
}

/* What the constructor chose: libext2fs's own when told there is no
 * instruction; else the choice for this CPU, which with SSE 4.2 is not
 * libext2fs's. */
static int test_chosen_at_load(void)
{
    crc_fn orig = libext2fs_crc();

    if (forced_no_insn()) {
        CHECK(e2_crc32c_impl() == orig);
        return 0;
    }
    CHECK(e2_crc32c_impl() == e2_crc32c_select(true) || e2_crc32c_impl() == orig);
    CHECK(e2_crc32c_impl() != e2_crc32c_sw);
    return 0;
}

/* This program again, as on a CPU without the instruction: all of it
 * passes there too. */
static int test_run_without_insn(void)
{
    pid_t pid;
    int status;

    if (!UEXT4_TEST_HOOKS || forced_no_insn())
        return 0; /* nothing to force without the hooks; already forced */
    CHECK(self_path != NULL);
    fflush(stdout);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setenv("UEXT4_TEST_NO_SSE42", "1", 1);
        execl(self_path, self_path, exe_path, (char *)NULL);
        _exit(127);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    return 0;
}

/* Without the export, libext2fs keeps its own table-driven function and
 * the daemon loses the speed (nothing else would show it). */
static int test_daemon_exports_it(void)
{
    char cmd[4200], line[512];
    FILE *f;
    int found = 0;

    CHECK(exe_path != NULL);
    snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s'", exe_path);
    f = popen(cmd, "r");
    CHECK(f != NULL);
    while (fgets(line, sizeof(line), f))
        if (strstr(line, " T ext2fs_crc32c_le\n"))
            found = 1;
    CHECK_EQ(pclose(f), 0);
    CHECK(found);
    return 0;
}

int main(int argc, char **argv)
{
    const char *ver = NULL;
    static const struct test_case cases[] = {
        {"check_value", test_check_value},
        {"same_as_libext2fs", test_same_as_libext2fs},
        {"no_insn_is_libext2fs", test_no_insn_is_libext2fs},
        {"chosen_at_load", test_chosen_at_load},
        {"daemon_exports_it", test_daemon_exports_it},
        {"run_without_insn", test_run_without_insn},
    };

    /* A call into libext2fs also makes it a library the program needs,
     * loaded before crc32c.c's constructor looks for its function, as in
     * the daemon (else the linker's --as-needed leaves it out). */
    ext2fs_get_library_version(&ver, NULL);
    printf("# libext2fs %s%s\n", ver,
           forced_no_insn() ? ", UEXT4_TEST_NO_SSE42: as without the CRC32 instruction" : "");
    self_path = "/proc/self/exe";
    exe_path = argc > 1 ? argv[1] : NULL;
    return run_tests(cases, sizeof(cases) / sizeof(cases[0]));
}

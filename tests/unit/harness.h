/* A minimal table-driven test harness: each case is a named function that
 * returns 0 on success; CHECK reports the failing expression. The last line
 * printed is "N passed, N failed". */
#ifndef UEXT4_TEST_HARNESS_H
#define UEXT4_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

struct test_case {
    const char *name;
    int (*fn)(void);
};

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

#define CHECK_EQ(a, b)                                                                         \
    do {                                                                                       \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                  \
        if (va_ != vb_) {                                                                      \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__,  \
                    #a, va_, #b, vb_);                                                         \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

static inline int run_tests(const struct test_case *t, size_t n)
{
    unsigned pass = 0, fail = 0;

    for (size_t i = 0; i < n; i++) {
        int r = t[i].fn();
        printf("%s %s\n", r ? "FAIL" : "ok", t[i].name);
        fflush(stdout);
        r ? fail++ : pass++;
    }
    printf("%u passed, %u failed\n", pass, fail);
    return fail ? 1 : 0;
}

#endif

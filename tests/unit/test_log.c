/* Rate-limited logging of errors found in an image (log_corrupt(),
 * src/base/log.c): a burst per window, the rest counted and said at the
 * start of the next window; other messages are never limited. Lines are
 * captured through log_set_func(), as library mode receives them. */
#include "base/log.h"
#include "harness.h"

#include <string.h>
#include <time.h>

static unsigned lines;
static char last[256], first_of_window[256];

static void capture(enum log_level lvl, const char *line, void *data)
{
    (void)lvl;
    (void)data;
    if (!lines)
        snprintf(first_of_window, sizeof(first_of_window), "%s", line);
    lines++;
    snprintf(last, sizeof(last), "%s", line);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts))
        ;
}

/* Three of ten pass in a 300 ms window; the rest are counted. */
static int test_burst_then_count(void)
{
    log_set_func(capture, NULL, LOG_LVL_DEBUG);
    log_corrupt_limit(3, 300);
    lines = 0;
    for (int i = 0; i < 10; i++)
        log_corrupt("inode %d lies", i);
    CHECK_EQ(lines, 3);
    CHECK(!strcmp(last, "inode 2 lies"));
    /* After the window: the count of those left out, then the message. */
    sleep_ms(350);
    lines = 0;
    log_corrupt("inode %d lies", 10);
    CHECK_EQ(lines, 2);
    CHECK(!strcmp(first_of_window, "7 more errors found in the image were not logged"));
    CHECK(!strcmp(last, "inode 10 lies"));
    /* Nothing left out in that window: no count in the next. */
    sleep_ms(350);
    lines = 0;
    log_corrupt("inode %d lies", 11);
    CHECK_EQ(lines, 1);
    log_set_func(NULL, NULL, LOG_LVL_WARN);
    return 0;
}

/* log_err() and the other levels are not limited. */
static int test_other_messages_unlimited(void)
{
    log_set_func(capture, NULL, LOG_LVL_DEBUG);
    log_corrupt_limit(1, 60000);
    lines = 0;
    log_corrupt("counted");
    log_corrupt("left out");
    for (int i = 0; i < 20; i++)
        log_err("error %d", i);
    CHECK_EQ(lines, 21);
    log_corrupt_limit(0, 0);
    log_set_func(NULL, NULL, LOG_LVL_WARN);
    return 0;
}

int main(void)
{
    static const struct test_case cases[] = {
        {"burst_then_count", test_burst_then_count},
        {"other_messages_unlimited", test_other_messages_unlimited},
    };
    return run_tests(cases, sizeof(cases) / sizeof(cases[0]));
}

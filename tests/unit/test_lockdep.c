/* The lock-order checker catches inversions and recursion, and stays quiet
 * for a consistent order. Each case runs in a child process, since a
 * caught inversion aborts. */
#include "base/lock.h"
#include "harness.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static struct mutex a, b, a2;

/* Run @fn in a child with stderr captured; returns its wait status. */
static int in_child(void (*fn)(void), char *err, size_t errlen)
{
    int pipefd[2], status = 0;
    ssize_t n, total = 0;
    pid_t pid;

    if (pipe(pipefd))
        return -1;
    pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        lockdep_enable(true);
        mutex_init(&a, LC_TEST_A, 0);
        mutex_init(&b, LC_TEST_B, 0);
        mutex_init(&a2, LC_TEST_A, 0);
        fn();
        _exit(0);
    }
    close(pipefd[1]);
    while ((n = read(pipefd[0], err + total, errlen - 1 - (size_t)total)) > 0)
        total += n;
    err[total] = '\0';
    close(pipefd[0]);
    waitpid(pid, &status, 0);
    return status;
}

static void consistent_order(void)
{
    for (int i = 0; i < 3; i++) {
        mutex_lock(&a);
        mutex_lock(&b);
        mutex_unlock(&b);
        mutex_unlock(&a);
    }
}

static void inversion(void)
{
    mutex_lock(&a);
    mutex_lock(&b);
    mutex_unlock(&b);
    mutex_unlock(&a);
    /* The opposite order, in the same thread and with no contention: a
     * deadlock that did not happen this time is still reported. */
    mutex_lock(&b);
    mutex_lock(&a);
    mutex_unlock(&a);
    mutex_unlock(&b);
}

static void recursion(void)
{
    mutex_lock(&a);
    mutex_lock(&a2); /* same class, same subclass */
}

static void nested_subclass(void)
{
    mutex_lock_nested(&a, 0);
    mutex_lock_nested(&a2, 1);
    mutex_unlock(&a2);
    mutex_unlock(&a);
}

static int test_consistent_order_passes(void)
{
    char err[4096];
    int st = in_child(consistent_order, err, sizeof(err));

    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(strlen(err), 0);
    return 0;
}

static int test_inversion_aborts_with_both_sites(void)
{
    char err[4096];
    int st = in_child(inversion, err, sizeof(err));

    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(strstr(err, "lock order inversion"));
    CHECK(strstr(err, "acquiring test_a/0"));
    CHECK(strstr(err, "while holding test_b/0"));
    CHECK(strstr(err, "test_lockdep.c"));
    return 0;
}

static int test_recursion_aborts(void)
{
    char err[4096];
    int st = in_child(recursion, err, sizeof(err));

    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(strstr(err, "recursive acquisition"));
    return 0;
}

static int test_nested_subclass_passes(void)
{
    char err[4096];
    int st = in_child(nested_subclass, err, sizeof(err));

    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

int main(void)
{
    static const struct test_case cases[] = {
        {"consistent_order_passes", test_consistent_order_passes},
        {"inversion_aborts_with_both_sites", test_inversion_aborts_with_both_sites},
        {"recursion_aborts", test_recursion_aborts},
        {"nested_subclass_passes", test_nested_subclass_passes},
    };
    return run_tests(cases, sizeof(cases) / sizeof(cases[0]));
}

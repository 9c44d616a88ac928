/* Child processes for the runner: tools (mke2fs, e2fsck, mount, fusermount3)
 * run with a deadline, their output appended to the run's log file. Only
 * processes started here are ever signalled, by their pid. */
#include "scenario/scn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int scn_wait_pid(pid_t pid, unsigned timeout_s)
{
    double deadline = now() + timeout_s;
    int status;

    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);

        if (got == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (got < 0 && errno != EINTR)
            return -errno;
        if (now() > deadline)
            return -ETIMEDOUT;
        usleep(5000);
    }
}

int scn_run_cmd(char *const argv[], const char *log, unsigned timeout_s)
{
    pid_t pid;
    int ret;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    ret = scn_wait_pid(pid, timeout_s);
    if (ret == -ETIMEDOUT) {
        /* Our own child, by pid: a hung tool must not hang the suite. */
        kill(pid, SIGKILL);
        scn_wait_pid(pid, 10);
    }
    return ret;
}

void scn_log_excerpt(const char *path, char *out, size_t max)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;

    out[0] = '\0';
    if (!f)
        return;
    n = fread(out, 1, max - 1, f);
    out[n] = '\0';
    fclose(f);
    /* Keep messages on one line: the report is line oriented. */
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (out[i] == '\n')
            out[i] = '|';
}

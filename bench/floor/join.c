/* What it costs a new process to be in a cgroup v2 directory after an idle
 * moment (bench/cpu.sh): a fork whose child moves itself there through
 * cgroup.procs (how safeexec's target joined its v2 cgroup before), a
 * clone3 that starts the child there (CLONE_INTO_CGROUP, how it is born
 * there now), and a plain fork, each followed by the child's exit and the
 * parent's wait, one idle second before each. Usage: join CGROUP2-DIR ROUNDS
 * (as root; DIR/join-probe-PID is made and removed). Prints each round. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define INTO_CGROUP 0x200000000ULL

static double ms_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Milliseconds from before the fork to the child reaped; -1 on failure. */
static double timed(int how, int dir, const char *procs)
{
    uint64_t args[11] = {0}; /* struct clone_args, its second version */
    double start;
    int status;
    long pid;

    sleep(1);
    start = ms_now();
    if (how == 1) {
        args[0] = INTO_CGROUP;
        args[4] = SIGCHLD;
        args[10] = (uint64_t)dir;
        pid = syscall(SYS_clone3, args, sizeof args);
    } else {
        pid = fork();
    }
    if (pid == 0) {
        if (how == 0) {
            int fd = open(procs, O_WRONLY);
            if (fd < 0 || write(fd, "0", 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || status != 0)
        return -1;
    return ms_now() - start;
}

int main(int argc, char **argv)
{
    char path[4096], procs[4200];
    int rounds, dir;

    if (argc != 3 || (rounds = atoi(argv[2])) < 1) {
        fprintf(stderr, "usage: join CGROUP2-DIR ROUNDS\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s/join-probe-%d", argv[1], (int)getpid());
    snprintf(procs, sizeof procs, "%s/cgroup.procs", path);
    if (mkdir(path, 0755) != 0 || (dir = open(path, O_RDONLY | O_DIRECTORY)) < 0) {
        perror(path);
        return 1;
    }
    for (int i = 0; i < rounds; i++) {
        double moved = timed(0, dir, procs);
        double born = timed(1, dir, procs);
        double alone = timed(2, dir, procs);
        printf("  fork, then a move through cgroup.procs: %6.2f ms   clone3 into the cgroup: "
               "%5.2f ms   fork alone: %5.2f ms\n", moved, born, alone);
    }
    close(dir);
    rmdir(path);
    return 0;
}

/* The floor's setuid side (bench/cpu.sh): new pid, mount, IPC and UTS
 * namespaces, a child in them that drops to the user nobody and execs
 * /bin/true, and a wait. No limits, no cgroups, no checks: it only shows
 * what the kernel asks of this shape of sandbox per run. It runs nothing
 * but /bin/true, so a member of its group gains nothing by it, and
 * bench/cpu.sh removes it when it ends. */
#define _GNU_SOURCE
#include <grp.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    char *args[] = {"/bin/true", 0};
    char *env[] = {0};
    const uid_t nobody = 65534;
    int status;
    pid_t pid;

    if (unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) != 0)
        return 120;
    pid = fork();
    if (pid == 0) {
        if (setgroups(0, 0) || setresgid(nobody, nobody, nobody) ||
            setresuid(nobody, nobody, nobody))
            _exit(121);
        execve(args[0], args, env);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 125;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}

/* The floor's caller side (bench/cpu.sh): what every sandbox of safeexec's
 * shape must do on the caller's side and no more. It spawns the setuid
 * helper named by its argument and exits with the helper's status. */
#include <spawn.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    char *args[] = {argv[1], 0};
    char *env[] = {0};
    pid_t pid;
    int status;

    if (argc != 2 || posix_spawn(&pid, argv[1], 0, 0, args, env) != 0)
        return 126;
    if (waitpid(pid, &status, 0) < 0)
        return 125;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}

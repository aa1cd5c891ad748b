#!/bin/bash
# The cgroup tests on a pure cgroup v2 machine: boots a throwaway guest with
# ../shared/tools/cgv2-vm.sh (cgroup v1 off, every controller enabled at the
# root, the host's / read-only, one writable scratch folder) and runs a
# focused set of tests/tests/cgroups.rs there, in three layouts of the
# caller:
#
#   root     the caller in the root cgroup;
#   service  the caller in /system.slice/apache2.service, a cgroup that
#            holds processes and is not delegated, controllers enabled down
#            to system.slice (a systemd host);
#   unit     the same caller, with the packaged unit's cgroup
#            /system.slice/safeexec.service (Delegate=yes, its keeper in
#            keeper/) as safeexec's subtree.
#
# The guest runs under software emulation (10 to 50 times slower), so the
# binaries, the test executable, the test installation and its fixtures
# are all made here first; the installation lives in the scratch folder
# (the guest can write nothing else that it keeps).
#
# Usage: sudo bash tests/cgv2.sh      (CI: from .ci/run)
# Exits non-zero when a test fails in the guest, or the guest fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

vm=${CGV2_VM:-$repo/../shared/tools/cgv2-vm.sh}
[ -f "$vm" ] || { echo "cgv2.sh: error: no $vm" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "cgv2.sh: error: must run as root" >&2; exit 1; }
if ! command -v cargo >/dev/null 2>&1; then
    PATH=/root/.cargo/bin:$PATH
fi

# Not under /tmp or /var/tmp: the guest mounts fresh ones there, and the
# sandbox hides them from runs.
scratch=${CGV2_SCRATCH:-/var/lib/safeexec-cgv2}
prefix=$scratch/prefix
mkdir -p "$scratch"
chmod 0755 "$scratch"

tests=(
    reports_come_from_the_runs_own_cgroup
    rss_limit_is_enforced_by_the_kernel
    a_100_mib_spikes_peak_is_within_2_percent
    the_process_limit_is_the_cgroups_and_its_peak_is_counted
    the_cgroups_cpu_counter_is_the_runs_cpu_time
    cpu_time_of_children_reaped_without_a_wait_is_reported
    run_cgroups_are_removed_after_every_kind_of_end
    a_caller_that_keeps_the_reply_pipe_open_holds_the_clean_up_back_briefly
    twenty_concurrent_runs_each_have_their_own_cgroups_and_leave_none
    the_target_sees_no_cgroup_file_system_and_its_cgroups_are_in_safeexecs_subtree
    the_caller_cannot_touch_a_live_runs_cgroups
    past_max_memory_cgroups_a_run_gets_no_memory_cgroup
    the_run_is_in_a_cpu_cgroup_weighted_as_its_niceness
    a_session_the_run_starts_stays_in_its_weighted_cpu_cgroup
    a_cut_v2_cgroup_line_does_not_keep_the_helper_in_the_callers_cgroup
)

echo "cgv2.sh: building the test executable"
exe=$(cargo test --locked -p safeexec-tests --test cgroups --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$exe" ] || { echo "cgv2.sh: error: no test executable" >&2; exit 1; }

echo "cgv2.sh: installing into $prefix (users, build, fixtures)"
SAFEEXEC_TEST_PREFIX=$prefix SAFEEXEC_REQUIRE_ROOT_TESTS=1 \
    "$exe" --include-ignored --exact reports_come_from_the_runs_own_cgroup >"$scratch/host.log" 2>&1 || {
    cat "$scratch/host.log" >&2
    echo "cgv2.sh: error: the set-up on the host failed" >&2
    exit 1
}
# The host's run kept its network namespace in the prefix's pool (the
# helper's netpool, its own tmpfs): let go of it, as tests/run.sh does.
for _ in 1 2 3 4; do umount -l "$prefix/var/lib/safeexec/netns" 2>/dev/null || break; done

# What the guest runs: each layout, then a check that no run's cgroup is
# left anywhere in the hierarchy. Any failure ends it with a non-zero status.
guest=$scratch/guest.sh
cat >"$guest" <<EOF
set -euo pipefail
export SAFEEXEC_TEST_PREFIX=$prefix SAFEEXEC_TEST_INSTALLED=1 SAFEEXEC_REQUIRE_ROOT_TESTS=1
cg=/sys/fs/cgroup
run_set() {
    echo "== layout \$1: caller in \$(cat /proc/self/cgroup)"
    "$exe" --include-ignored --exact --test-threads 1 ${tests[*]}
    left=\$(find \$cg -mindepth 2 -type d -path '*safeexec*' -regex '.*/[0-9]+\$' | head -n 5)
    [ -z "\$left" ] || { echo "left behind: \$left"; exit 1; }
}
run_set root
mkdir -p \$cg/system.slice/apache2.service
echo "+memory +pids +cpu" >\$cg/system.slice/cgroup.subtree_control
echo \$\$ >\$cg/system.slice/apache2.service/cgroup.procs
run_set service
mkdir -p \$cg/system.slice/safeexec.service/keeper
sleep 100000 &
echo \$! >\$cg/system.slice/safeexec.service/keeper/cgroup.procs
run_set unit
kill \$!
EOF

echo "cgv2.sh: running ${#tests[@]} tests in a cgroup v2 guest, 3 layouts"
start=$(date +%s)
status=0
CGV2_SCRATCH=$scratch "$vm" "bash $guest" || status=$?
echo "cgv2.sh: the guest took $(($(date +%s) - start)) s, status $status"
exit "$status"

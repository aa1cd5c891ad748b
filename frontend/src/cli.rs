//! The command line: every option of the original safeexec, with its names,
//! defaults and units, plus the new ones. The clap definition here is also
//! the source of the man page and the shell completions.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};

/// Environment given by `--env_vars PY`, as in the original.
pub const PY_ENV: &[&str] = &["PYTHONIOENCODING=utf-8", "PYTHONHOME=/", "PYTHONPATH=/static"];

/// Environment of the target when none is asked for: the caller's own
/// environment may hold secrets, so it is never passed on.
pub const DEFAULT_ENV: &[&str] = &["PATH=/usr/local/bin:/usr/bin:/bin"];

/// The file system the program sees (outside a chroot directory).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum RootChoice {
    /// A new root of read-only system directories (/usr, /bin, /lib...,
    /// part of /etc), a private /tmp, a minimal /dev, its own /proc, and
    /// the working directory, the program's directory and the --bind and
    /// --bind-rw directories at their own paths; nothing else of the host.
    Minimal,
    /// The host's whole file system, read-only, with private /tmp, /var/tmp,
    /// /dev/shm and /run.
    Host,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// The original four-line report.
    Text,
    /// One JSON object (schema in the README).
    Json,
}

/// Run an untrusted program as a throw-away user, without network, with
/// limits on CPU, wall clock, memory, processes, file size and output, and
/// report what happened.
#[derive(Parser, Debug)]
#[command(
    name = "safeexec",
    version,
    about,
    // As the original: an option given twice takes its last value.
    args_override_self = true,
    override_usage = "safeexec [OPTIONS] --exec PROGRAM [ARGS...]\n       safeexec [OPTIONS] -- PROGRAM [ARGS...]",
    long_about = "Run an untrusted program as a throw-away user, without network, with limits on \
                  CPU, wall clock, memory, processes, file size and output, and report what \
                  happened.\n\n\
                  The program never gets the caller's terminal. Where safeexec's standard input, \
                  output or error is a terminal, the program gets a new pseudo-terminal of its \
                  own in its place, and safeexec copies between the two: the output (counted \
                  with the rest against --output) and, when safeexec is in the terminal's \
                  foreground, the keys. If its standard output is a terminal too, the caller's \
                  terminal is in raw mode for the run, so that the program's terminal handles \
                  every key; its settings are put back when the run ends, and before safeexec \
                  ends on SIGINT, SIGTERM, SIGHUP or SIGQUIT (which it passes on to the helper, \
                  ending the run) or stops on SIGTSTP. While no process of the run has the new \
                  terminal as its controlling terminal, the interrupt, quit and suspend keys act \
                  on safeexec, as they would on the caller's terminal. Otherwise (a pipeline, \
                  say) the caller's terminal is left as it is and its lines are passed on, an \
                  end of file (^D) as the program's. A run started in the background gets \
                  /dev/null as its standard input.",
    after_help = "Exit status: 0 when the verdict is OK, 1 when the program failed or hit a limit, \
                  2 when safeexec itself could not run it."
)]
pub struct Cli {
    /// CPU time limit of the whole run, in seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub cpu: u64,

    /// Wall-clock limit, in seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
    pub clock: u64,

    /// Address-space limit of each process, in KiB (RLIMIT_AS and RLIMIT_DATA).
    /// Past it allocations fail (the program usually ends with an error or
    /// a signal): never Memory Limit Exceeded, which only --rss gives.
    #[arg(long, value_name = "KIB", default_value_t = 32768)]
    pub mem: u64,

    /// Memory limit of the whole run, in KiB (for runtimes such as the JVM
    /// that reserve much address space): enforced by the kernel through the
    /// run's memory cgroup where there is one; otherwise the supervisor
    /// samples the run's resident memory.
    #[arg(long, value_name = "KIB")]
    pub rss: Option<u64>,

    /// Stack limit, in KiB.
    #[arg(long, value_name = "KIB", default_value_t = 8192)]
    pub stack: u64,

    /// Core file size limit, in KiB.
    #[arg(long, value_name = "KIB", default_value_t = 0)]
    pub core: u64,

    /// Largest file the program may write, in KiB (0: none at all; a redirected
    /// stdout that is a regular file counts).
    #[arg(long, value_name = "KIB", default_value_t = 0)]
    pub fsize: u64,

    /// Processes the program may start besides itself (0: no fork at all).
    #[arg(long, value_name = "COUNT", default_value_t = 0)]
    pub nproc: u64,

    /// Open files per process.
    #[arg(long, value_name = "COUNT", default_value_t = 512)]
    pub nfile: u64,

    /// Limit on what the program writes to stdout and stderr together, in KiB.
    #[arg(long, value_name = "KIB")]
    pub output: Option<u64>,

    /// Extra seconds past the CPU and wall limits before the run is killed, so
    /// that a program just over its limit reports its real time.
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = parse_seconds_or_zero)]
    pub grace: u64,

    /// Scheduling niceness of the program, 10 to 19.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(i32).range(10..=19))]
    pub niceness: i32,

    /// Accepted for compatibility and ignored: the group comes from the policy.
    #[arg(long, value_name = "GID")]
    pub gid: Option<u64>,

    /// Accepted for compatibility and ignored: the uid comes from the policy.
    #[arg(long, value_name = "N")]
    pub uidplus: Option<u64>,

    /// Directory to use as the root of the program's file system; opened as
    /// the caller, and it must be allowed by the policy.
    #[arg(long = "chroot_dir", visible_alias = "chroot-dir", value_name = "DIR")]
    pub chroot_dir: Option<PathBuf>,

    /// Directory to run in (inside the chroot directory, if any).
    #[arg(long = "exec_dir", visible_alias = "exec-dir", value_name = "DIR")]
    pub exec_dir: Option<String>,

    /// The program's environment: "X=Y\nA=B" (newlines or the two
    /// characters \n separate entries, each passed as it is, as the
    /// original did, an entry without = included), or PY for Python's; --env-file,
    /// --env and --pass-env add to it, in that order, a later variable
    /// replacing an earlier one of the same name. Default, when none of
    /// these is given: only PATH.
    #[arg(long = "env_vars", visible_alias = "env-vars", value_name = "VARS")]
    pub env_vars: Option<String>,

    /// Add one variable to the program's environment (repeatable). The
    /// value is on safeexec's command line, which every user can read while
    /// the run lasts: pass secrets with --env-file or --pass-env.
    #[arg(long = "env", value_name = "NAME=VALUE", action = ArgAction::Append)]
    pub env: Vec<String>,

    /// Add the variables of FILE to the program's environment (repeatable):
    /// the way to pass secrets, which then appear on no command line. One
    /// NAME=VALUE a line, the value being the rest of the line as it is (no
    /// quotes); blank lines and lines starting with # are skipped. Read as
    /// the caller; a pipe will do (--env-file <(command)).
    #[arg(long = "env-file", value_name = "FILE", action = ArgAction::Append)]
    pub env_file: Vec<PathBuf>,

    /// Pass the variable NAME, with the value it has in safeexec's own
    /// environment, to the program (repeatable): the way to pass a secret
    /// held in a variable (TOKEN=... safeexec --pass-env TOKEN ...). It is
    /// an error if it is not set.
    #[arg(long = "pass-env", value_name = "NAME", action = ArgAction::Append)]
    pub pass_env: Vec<String>,

    /// Write the report to this file (opened as the caller) instead of stderr.
    /// It is created if absent; it must be a regular file, and a symbolic
    /// link at PATH is refused, not followed (as for --meta).
    #[arg(long = "report_file", visible_alias = "report-file", value_name = "PATH")]
    pub report_file: Option<PathBuf>,

    /// Write the report to this inherited descriptor instead of stderr
    /// (-1, the original's default: stderr).
    #[arg(
        long = "report_fd",
        visible_alias = "report-fd",
        value_name = "FD",
        allow_negative_numbers = true
    )]
    pub report_fd: Option<i32>,

    /// Keep the host's network, if the policy allows it (otherwise the run
    /// has its own, loopback only, as without this option).
    #[arg(long = "share_newnet", visible_alias = "share-net")]
    pub share_newnet: bool,

    /// The program's file system: minimal or host. Default: the policy's
    /// (host in the packaged policy).
    #[arg(long, value_enum, value_name = "ROOT", conflicts_with = "chroot_dir")]
    pub root: Option<RootChoice>,

    /// A directory of your own the program may write, at its own path
    /// (repeatable, at most 8; opened as the caller). The rest of the file
    /// system is read-only to the program, except its private /tmp and the
    /// working directory when it is yours. The directory's own permissions
    /// still apply.
    #[arg(long = "bind-rw", value_name = "DIR", action = ArgAction::Append)]
    pub bind_rw: Vec<PathBuf>,

    /// A directory you can read that the program may read, at its own path
    /// (repeatable, at most 8; opened as the caller): with --root minimal,
    /// what it needs besides the system directories. The working directory
    /// and the program's directory are shown without it.
    #[arg(long = "bind", value_name = "DIR", action = ArgAction::Append, conflicts_with = "chroot_dir")]
    pub bind: Vec<PathBuf>,

    /// Let the program see the host's /tmp and /var/tmp (read-only, like the
    /// rest of the host), if the policy allows it. By default it gets empty,
    /// private ones it may write (one small tmpfs, gone after the run).
    #[arg(long = "host-tmp", conflicts_with = "private_tmp")]
    pub host_tmp: bool,

    /// Private /tmp and /var/tmp: the default, accepted for clarity.
    #[arg(long = "private-tmp")]
    pub private_tmp: bool,

    /// Print no report.
    #[arg(long)]
    pub silent: bool,

    /// Report format.
    #[arg(long = "report-format", value_enum, default_value = "text", value_name = "FORMAT")]
    pub report_format: ReportFormat,

    /// Same as --report-format json.
    #[arg(long)]
    pub json: bool,

    /// Also write an isolate-style key:value meta file (opened as the caller,
    /// as for --report_file: a regular file, a link at PATH refused).
    #[arg(long, value_name = "PATH")]
    pub meta: Option<PathBuf>,

    /// The program and its arguments; everything after --exec belongs to it.
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "PROGRAM")]
    pub exec: Vec<String>,

    /// The program and its arguments, after --.
    #[arg(last = true, value_name = "PROGRAM")]
    pub command: Vec<String>,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses seconds with up to millisecond precision; rounds up so that a
/// limit is never shorter than asked.
fn parse_seconds(s: &str) -> Result<u64, String> {
    let ms = parse_seconds_or_zero(s)?;
    if ms == 0 {
        return Err("must be more than 0".into());
    }
    Ok(ms)
}

fn parse_seconds_or_zero(s: &str) -> Result<u64, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("'{s}' is not a number of seconds"));
    }
    // 10^9 seconds is far beyond any policy; refusing here keeps u64 sane.
    if secs > 1e9 {
        return Err(format!("{s} seconds is too long"));
    }
    Ok((secs * 1000.0).ceil() as u64)
}

/// Splits `--env_vars`: newlines, or the two characters `\n`, separate
/// entries; `PY` stands for Python's environment.
pub fn parse_env_vars(vars: &str) -> Vec<String> {
    if vars == "PY" {
        return PY_ENV.iter().map(|s| s.to_string()).collect();
    }
    vars.split('\n')
        .flat_map(|line| line.split("\\n"))
        .filter(|entry| !entry.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_take_fractions_and_round_up() {
        assert_eq!(parse_seconds("0.25"), Ok(250));
        assert_eq!(parse_seconds("1"), Ok(1000));
        assert_eq!(parse_seconds("0.0001"), Ok(1));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("nan").is_err());
        assert!(parse_seconds("1e30").is_err());
    }

    #[test]
    fn env_vars_split_on_newlines_and_backslash_n() {
        assert_eq!(parse_env_vars("X=Y\\nA=B"), vec!["X=Y", "A=B"]);
        assert_eq!(parse_env_vars("X=Y\nA=B\n"), vec!["X=Y", "A=B"]);
        assert_eq!(parse_env_vars("PY").len(), 3);
    }

    #[test]
    fn exec_takes_everything_after_it() {
        let cli =
            Cli::try_parse_from(["safeexec", "--cpu", "1", "--exec", "/bin/echo", "--cpu", "-n"])
                .unwrap();
        assert_eq!(cli.exec, vec!["/bin/echo", "--cpu", "-n"]);
        assert_eq!(cli.cpu, 1000);
    }

    #[test]
    fn an_option_given_twice_takes_its_last_value_as_in_the_original() {
        let cli = Cli::try_parse_from([
            "safeexec",
            "--cpu",
            "5",
            "--cpu",
            "1",
            "--silent",
            "--silent",
            "--report_fd",
            "-1",
            "--env_vars",
            "A=1",
            "--env_vars",
            "B=2",
            "--env",
            "C=3",
            "--env",
            "D=4",
            "--exec",
            "/bin/true",
        ])
        .unwrap();
        assert_eq!(cli.cpu, 1000);
        assert!(cli.silent);
        assert_eq!(cli.report_fd, Some(-1));
        assert_eq!(cli.env_vars.as_deref(), Some("B=2"));
        // Repeatable options still collect every value.
        assert_eq!(cli.env, ["C=3", "D=4"]);
    }

    #[test]
    fn double_dash_form_works() {
        let cli = Cli::try_parse_from(["safeexec", "--", "/bin/echo", "--mem"]).unwrap();
        assert_eq!(cli.command, vec!["/bin/echo", "--mem"]);
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }
}

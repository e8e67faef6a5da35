//! Running untrusted generated programs: each in its own temporary directory and process group,
//! under rlimits (address space, CPU seconds, file size, open files, processes), killed as a
//! group at the wall-clock limit, its output capped. Where bubblewrap (`bwrap`) is installed the
//! program also runs in new namespaces: no network, a read-only root, a private /tmp, its own
//! PID namespace (a fork bomb dies with it). Without bubblewrap the run says so
//! ([`Isolation::RlimitsOnly`]): the rlimits still hold, but the program can read the machine,
//! use the network and (as root) exceed the process limit.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Address-space limit in bytes.
    pub memory_bytes: u64,
    /// Largest file the program may write, in bytes.
    pub file_bytes: u64,
    /// Processes of the user (not enforced for root: bubblewrap's PID namespace covers that).
    pub processes: u64,
    /// Bytes of stdout/stderr kept.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_secs(10), memory_bytes: 4 << 30, file_bytes: 64 << 20, processes: 256, output_bytes: 2048 }
    }
}

/// How strongly runs are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// bubblewrap namespaces + rlimits.
    Bubblewrap,
    /// rlimits and a process group only (bubblewrap not installed).
    RlimitsOnly,
}

/// Picks bubblewrap when it is installed and works here (it needs user namespaces).
pub fn detect_isolation() -> Isolation {
    let works = Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all", "--die-with-parent", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        Isolation::Bubblewrap
    } else {
        tracing::warn!("bubblewrap (bwrap) is not available: generated code runs with rlimits and a process group only (no network or filesystem isolation); install the `bubblewrap` package");
        Isolation::RlimitsOnly
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum RunResult {
    /// Exit status 0.
    Passed,
    /// Non-zero exit or a signal.
    Failed {
        /// Exit code, if it exited.
        code: Option<i32>,
        /// The end of its stderr.
        stderr: String,
    },
    /// Killed at the wall-clock limit.
    TimedOut,
}

/// Runs `argv` in `dir` under `limits` and `isolation`; `dir` is the only writable place.
pub fn run(argv: &[&str], dir: &Path, limits: &Limits, isolation: Isolation) -> std::io::Result<RunResult> {
    let c = run_captured(argv, dir, limits, isolation, &[])?;
    Ok(if c.timed_out {
        RunResult::TimedOut
    } else if c.success {
        RunResult::Passed
    } else {
        RunResult::Failed { code: c.code, stderr: c.stderr }
    })
}

/// How a run ended, with the (capped) ends of both output streams: for harnesses whose pass
/// rule reads the output (MultiPL-E's JavaScript passes only when nothing is printed, C# fails
/// on "Fail" in stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Exit code, if it exited (None: killed by a signal or at the wall clock).
    pub code: Option<i32>,
    /// Exit status 0.
    pub success: bool,
    /// Killed at the wall-clock limit.
    pub timed_out: bool,
    /// The last `output_bytes` of stdout.
    pub stdout: String,
    /// The last `output_bytes` of stderr.
    pub stderr: String,
}

/// [`run`] with extra environment variables (set after the sandbox's own `PATH`, `HOME` and
/// `TMPDIR`, so they can override them), returning both output streams.
pub fn run_captured(argv: &[&str], dir: &Path, limits: &Limits, isolation: Isolation, env: &[(&str, &str)]) -> std::io::Result<Captured> {
    let dir_s = dir.to_string_lossy().into_owned();
    let mut cmd = match isolation {
        Isolation::Bubblewrap => {
            let mut c = Command::new("bwrap");
            c.args([
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--proc",
                "/proc",
                "--tmpfs",
                "/tmp",
                "--bind",
                &dir_s,
                &dir_s,
                "--chdir",
                &dir_s,
            ]);
            c.args(["--unshare-all", "--die-with-parent", "--new-session", "--"]);
            c.args(argv);
            c
        }
        Isolation::RlimitsOnly => {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    cmd.current_dir(dir).env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin").env("HOME", &dir_s).env("TMPDIR", &dir_s);
    cmd.envs(env.iter().copied());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.process_group(0);
    let l = *limits;
    let cpu = l.timeout.as_secs() + 1;
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let set = |res, v: u64| {
                let r = libc::rlimit { rlim_cur: v as libc::rlim_t, rlim_max: v as libc::rlim_t };
                libc::setrlimit(res, &r);
            };
            set(libc::RLIMIT_AS, l.memory_bytes);
            set(libc::RLIMIT_CPU, cpu);
            set(libc::RLIMIT_FSIZE, l.file_bytes);
            set(libc::RLIMIT_NOFILE, 256);
            set(libc::RLIMIT_NPROC, l.processes);
            set(libc::RLIMIT_CORE, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    let cap = l.output_bytes;
    let read_capped = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                // Keep the end (where Python puts the error), drain the rest.
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * cap {
                    kept.drain(..kept.len() - cap);
                }
            }
            let start = kept.len().saturating_sub(cap);
            String::from_utf8_lossy(&kept[start..]).into_owned()
        })
    };
    let out = read_capped(Box::new(child.stdout.take().expect("piped")));
    let err = read_capped(Box::new(child.stderr.take().expect("piped")));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() >= l.timeout {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Kill the whole group either way: a finished program may have left children behind.
    // SAFETY: killpg with our child's process group id.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    let timed_out = status.is_none();
    if timed_out {
        let _ = child.wait();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(Captured { code: status.and_then(|s| s.code()), success: status.is_some_and(|s| s.success()), timed_out, stdout, stderr })
}

/// A Python driver that runs `program.py` with I/O swallowed and destructive functions
/// disabled (what the reference harnesses do before `exec`), under a wall-clock timer.
pub const PYTHON_DRIVER: &str = r#"import builtins, faulthandler, io, os, shutil, signal, subprocess, sys
timeout = float(sys.argv[1])
source = open("program.py").read()
def on_alarm(signum, frame):
    raise TimeoutError("timed out")
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, timeout)
# Modules the test preludes import are loaded before the guard below: numpy 2 calls
# os.putenv while importing, which the guard disables.
for name in ["numpy", "hashlib", "datetime", "collections", "heapq", "functools", "itertools", "string", "typing"]:
    try:
        __import__(name)
    except ImportError:
        pass
real_stderr = sys.stderr
sys.stdin = io.StringIO()
sys.stdout = io.StringIO()
sys.stderr = io.StringIO()
for name in ["kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot", "lchown", "getcwd", "chdir"]:
    if hasattr(os, name):
        setattr(os, name, None)
for name in ["rmtree", "move", "chown"]:
    setattr(shutil, name, None)
subprocess.Popen = None
builtins.exit = None
builtins.quit = None
try:
    exec(compile(source, "program.py", "exec"), {"__name__": "__main__"})
except BaseException as e:
    import traceback
    real_stderr.write("".join(traceback.format_exception(type(e), e, e.__traceback__))[-2000:])
    real_stderr.flush()
    os._exit(1)
os._exit(0)
"#;

/// The Python interpreter programs run with: `python3` on the PATH, resolved once to the real
/// executable (`sys.executable`), since the sandbox clears the environment (a pyenv shim would
/// otherwise fall through to another interpreter, without numpy).
pub fn python() -> &'static str {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "python3".into())
    })
}

/// Runs a Python program (text) in a fresh temporary directory: passes when it finishes
/// without an exception.
pub fn run_python(program: &str, limits: &Limits, isolation: Isolation) -> std::io::Result<RunResult> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("program.py"), program)?;
    std::fs::write(dir.path().join("driver.py"), PYTHON_DRIVER)?;
    let timeout = format!("{}", limits.timeout.as_secs_f64());
    // The driver's own timer fires first; the sandbox's wall clock (a little later) catches a
    // program that blocks the timer (signal handlers masked, a C extension spinning).
    let outer = Limits { timeout: limits.timeout + Duration::from_secs(1), ..*limits };
    let r = run(&[python(), "driver.py", &timeout], dir.path(), &outer, isolation)?;
    Ok(match r {
        RunResult::Failed { stderr, .. } if stderr.contains("TimeoutError: timed out") => RunResult::TimedOut,
        other => other,
    })
}

/// The top-level modules a Python program imports at module level (`import a.b as c, d` gives
/// `a` and `d`; `from e.f import g` gives `e`), in first-seen order; relative imports skipped.
pub fn python_imports(program: &str) -> Vec<String> {
    let mut modules: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        let root = name.trim().split(['.', ' ']).next().unwrap_or("");
        if !root.is_empty() && root.chars().all(|c| c.is_alphanumeric() || c == '_') && !modules.iter().any(|m| m == root) {
            modules.push(root.to_string());
        }
    };
    for line in program.lines() {
        let line = line.split('#').next().unwrap_or("").trim_end();
        if let Some(rest) = line.strip_prefix("import ") {
            rest.split(',').for_each(&mut add);
        } else if let Some(rest) = line.strip_prefix("from ") {
            if let Some((module, _)) = rest.split_once(" import ") {
                add(module);
            }
        }
    }
    modules
}

/// Checks, before the first problem, that `python3` starts and can import `modules` (what the
/// benchmark's test programs import at the top, e.g. numpy from DeepSeek-Coder's prelude):
/// without this, every program would die on its first line and the run would end normally
/// with pass@1 = 0. The error names the interpreter, the missing modules and how to install them.
pub fn check_python(modules: &[String]) -> Result<(), crate::EvalError> {
    check_python_with(python(), modules)
}

/// [`check_python`] with an explicit interpreter.
pub fn check_python_with(interpreter: &str, modules: &[String]) -> Result<(), crate::EvalError> {
    const FIND: &str = "import importlib.util, sys\nprint(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))";
    let out = Command::new(interpreter).arg("-c").arg(FIND).args(modules).stdin(Stdio::null()).output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return Err(crate::EvalError::Preflight(format!(
                "{interpreter} failed to start ({}): {}; the test programs are Python, so kiln needs a working python3 on PATH",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )))
        }
        Err(e) => {
            return Err(crate::EvalError::Preflight(format!(
                "cannot run {interpreter} ({e}): the test programs are Python; install python3 (Debian: apt-get install python3) or put it on PATH"
            )))
        }
    };
    let missing: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap_or("").split_whitespace().collect();
    if missing.is_empty() {
        return Ok(());
    }
    let debian: Vec<String> = missing.iter().map(|m| format!("python3-{m}")).collect();
    Err(crate::EvalError::Preflight(format!(
        "{interpreter} cannot import {}, which the benchmark's test programs import; every program would fail. \
         Install it for that interpreter (`{interpreter} -m pip install {}`, or on Debian `apt-get install {}`), or put a python3 that has it first on PATH",
        missing.join(", "),
        missing.join(" "),
        debian.join(" ")
    )))
}

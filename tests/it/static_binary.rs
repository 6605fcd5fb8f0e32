//! The static build (issue 12, item 6): `supervise` built for x86_64-unknown-linux-musl
//! runs as PID 1 of a new pid namespace, chrooted into a root that holds only the two
//! static binaries, the ecosystem file, /etc/passwd and /etc/group (no libc, no /dev,
//! no /proc, no /run), and starts an app as a user that exists only in that root's
//! passwd file: musl reads /etc/passwd itself, so the lookup happens inside the root.
//!
//! The test builds the musl binaries with cargo (dev profile, same target dir, so only
//! the first run compiles) and skips with a printed reason when the musl target is not
//! installed (`rustup target add x86_64-unknown-linux-musl`; `.ci/run` installs it) or
//! when `unshare`/`chroot` cannot run here.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

const MUSL: &str = "x86_64-unknown-linux-musl";
/// A user and group that exist only in the test root (never on the host).
const USER: &str = "static-test-user";
const GROUP: &str = "static-test-group";
const UID: u32 = 47_231;
const GID: u32 = 47_232;

/// The cargo target directory this test binary was built in.
fn target_dir() -> PathBuf {
    // .../target/debug/supervise -> .../target
    Path::new(supervise_bin())
        .ancestors()
        .nth(2)
        .expect("the binary lives in target/PROFILE/")
        .to_path_buf()
}

/// Build the musl binaries; None (with the reason printed) when the target is missing.
fn build_static() -> Option<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--bins", "--features", "testapp", "--target", MUSL])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("target may not be installed") || stderr.contains("can't find crate") {
            eprintln!(
                "note: skipping the static binary test: the {MUSL} target is not installed \
                 (rustup target add {MUSL})"
            );
            return None;
        }
        panic!("the static build failed:\n{stderr}");
    }
    Some(target_dir().join(MUSL).join("debug"))
}

fn can_unshare_chroot() -> bool {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "chroot", "/", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "note: skipping the static binary test, `unshare --pid --fork --mount chroot` \
                 failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("note: skipping the static binary test, cannot run `unshare`: {e}");
            false
        }
    }
}

/// The field of /proc/PID/status named `key`, split into words.
fn status_field(pid: i32, key: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::to_string))
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Kills the whole namespace (by killing its PID 1) if the test fails half way.
struct Namespace {
    unshare: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for pid in descendants(self.unshare.id() as i32) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        if std::thread::panicking() {
            eprintln!(
                "supervise printed:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
        }
    }
}

#[test]
fn static_binary_runs_as_pid_1_in_an_empty_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("note: skipping the static binary test: chroot needs root");
        return;
    }
    if !can_unshare_chroot() {
        return;
    }
    let Some(built) = build_static() else {
        return;
    };
    assert!(
        nix::unistd::User::from_name(USER).unwrap().is_none(),
        "the host must not know {USER}, or the test proves nothing"
    );
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::copy(built.join("supervise"), r.join("supervise")).unwrap();
    std::fs::copy(built.join("supervise-testapp"), r.join("testapp")).unwrap();
    std::fs::create_dir(r.join("etc")).unwrap();
    std::fs::write(
        r.join("etc/passwd"),
        format!("root:x:0:0:root:/:/nonexistent\n{USER}:x:{UID}:{GID}::/:/nonexistent\n"),
    )
    .unwrap();
    std::fs::write(
        r.join("etc/group"),
        format!("root:x:0:\n{GROUP}:x:{GID}:\n"),
    )
    .unwrap();
    std::fs::write(
        r.join("ecosystem.toml"),
        format!(
            "[apps.app]\ncommand = [\"/testapp\", \"--ready-line\", \"--trap-term\"]\n\
             user = \"{USER}\"\ngroup = \"{GROUP}\"\nstop_timeout = \"5s\"\n"
        ),
    )
    .unwrap();

    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "chroot"])
        .arg(r)
        .args(["/supervise", "/ecosystem.toml"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare starts");
    let lines = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        Box::new(unshare.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(unshare.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
    }
    let seen = lines.clone();
    let has_line = |text: &str| seen.lock().unwrap().iter().any(|l| l.contains(text));
    let mut ns = Namespace { unshare, lines };

    assert!(
        poll_until(|| has_line("ready pid="), LONG),
        "the app never got ready"
    );
    // From the host: unshare -> supervise (PID 1 inside) -> the app.
    let unshare_pid = ns.unshare.id() as i32;
    let tree = descendants(unshare_pid);
    let supervise = *tree
        .iter()
        .find(|&&p| cmdline(p).is_some_and(|a| a[0] == "/supervise"))
        .expect("supervise runs under unshare");
    assert_eq!(
        status_field(supervise, "NSpid").last().map(String::as_str),
        Some("1"),
        "supervise is PID 1 of its namespace"
    );
    let app = *tree
        .iter()
        .find(|&&p| cmdline(p).is_some_and(|a| a[0] == "/testapp"))
        .expect("the app runs under supervise");
    assert_eq!(status_field(app, "Uid")[0], UID.to_string(), "app uid");
    assert_eq!(status_field(app, "Gid")[0], GID.to_string(), "app gid");
    assert_eq!(
        std::fs::read_link(format!("/proc/{supervise}/exe")).unwrap(),
        r.join("supervise"),
        "the static binary is what runs"
    );

    kill(Pid::from_raw(supervise), Signal::SIGTERM).unwrap();
    let status = poll_until(
        || matches!(ns.unshare.try_wait(), Ok(Some(_))),
        Duration::from_secs(15),
    );
    assert!(status, "supervise did not stop on SIGTERM");
    assert_eq!(ns.unshare.wait().unwrap().code(), Some(0));
    assert!(
        has_line("got SIGTERM, exiting"),
        "the app was stopped gracefully"
    );
}

//! `supervise` client commands (`status`, `logs`, `stop`...) run against the harness's
//! supervise, with a deadline.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{poll_until, supervise_bin, Harness, LONG, POLL};

impl Harness {
    /// A `supervise ARGS` client command that reaches this harness's supervise (same
    /// `SUPERVISE_SOCKET`, run in the test directory, `NO_COLOR`), not yet started.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(supervise_bin());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("SUPERVISE_SOCKET", self.path("ctl.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Run `supervise ARGS` as a client of this harness's supervise, e.g.
    /// `h.cli(&["status", "--json"])`; panics if it has not finished within [`LONG`] * 3.
    #[track_caller]
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        output_within(self.cli_command(args), LONG * 3)
    }
}

/// Run `command` (stdout and stderr piped) and collect its output; kill it and panic if
/// it has not exited within `timeout`.
#[track_caller]
pub fn output_within(mut command: Command, timeout: Duration) -> std::process::Output {
    let shown = format!("{command:?}");
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    let collect = |stream: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = stream {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = collect(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = collect(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {timeout:?}");
        }
        thread::sleep(POLL);
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Run a client command that must succeed; returns its stdout.
#[track_caller]
pub fn cli_ok(h: &Harness, args: &[&str]) -> String {
    let out = h.cli(args);
    assert!(
        out.status.success(),
        "supervise {args:?} failed ({}): stdout {:?} stderr {:?}",
        out.status,
        stdout_of(&out),
        stderr_of(&out)
    );
    stdout_of(&out)
}

/// `supervise status --json`, parsed.
#[track_caller]
pub fn status_json(h: &Harness) -> Value {
    let text = cli_ok(h, &["status", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json: {e}: {text}"))
}

/// The instance `app.index` of a status report.
#[track_caller]
pub fn instance<'a>(report: &'a Value, app: &str, index: u64) -> &'a Value {
    report["instances"]
        .as_array()
        .expect("instances is an array")
        .iter()
        .find(|i| i["app"] == app && i["index"] == index)
        .unwrap_or_else(|| panic!("no {app}.{index} in {report:#}"))
}

/// Poll `status --json` until instance `app.index` satisfies `pred`; returns it.
#[track_caller]
pub fn wait_instance(
    h: &Harness,
    app: &str,
    index: u64,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let held = poll_until(
        || {
            let report = status_json(h);
            last = instance(&report, app, index).clone();
            pred(&last)
        },
        timeout,
    );
    assert!(
        held,
        "timed out after {timeout:?} waiting on {app}.{index}; last seen {last:#}"
    );
    last
}

pub fn pid_of(inst: &Value) -> Option<i32> {
    inst["pid"].as_i64().map(|p| p as i32)
}

/// Wait for the control socket to exist.
#[track_caller]
pub fn socket(h: &Harness) -> PathBuf {
    let path = h.path("ctl.sock");
    h.wait_for(|| path.exists(), LONG);
    path
}

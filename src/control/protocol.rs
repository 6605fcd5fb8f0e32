//! The control protocol: versioned JSON lines over the control socket.
//!
//! The client writes one request per line, `{"v":1,"cmd":"status"}`, and gets one
//! response line back. For `logs` with `follow: true` the response is followed by one
//! [`LogLine`] object per line until the client closes the connection.
//!
//! Every object carries the protocol version `v`; a supervise that does not speak the
//! client's version answers with an error instead of guessing. Unknown fields are
//! ignored, so a newer peer may add optional fields without a version bump.
//!
//! Targets and signals are typed ([`Target`], [`SignalName`]): they are strings on the
//! wire and are checked once, when the line is parsed, so the loop never sees a bad one.

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The version this supervise speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line the server reads (the newline excluded).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// A request as written on the wire: the version and the command.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RequestEnvelope {
    pub v: u32,
    #[serde(flatten)]
    pub request: Request,
}

/// A client command. Targets are `all`, `APP` or `APP.N` (see [`Target`]).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Status,
    Logs {
        target: Target,
        lines: usize,
        follow: bool,
        /// Only this stream's lines (and none of supervise's own events).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<LogStream>,
    },
    Restart {
        target: Target,
    },
    /// With a target: rolling replacement; without: re-read the ecosystem file now,
    /// as SIGHUP does.
    Reload {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Target>,
    },
    Stop {
        target: Target,
    },
    Start {
        target: Target,
    },
    Signal {
        signal: SignalName,
        target: Target,
    },
    /// What applying this file (absolute path; default: the running one, as it is on
    /// disk now) would change, without applying it.
    Diff {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<String>,
    },
    /// Stop everything and exit, as SIGTERM does.
    Shutdown,
}

/// An instance's output stream, as `logs --out` / `--err` choose it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

impl Request {
    /// The command's name as on the wire (`"status"`, `"restart"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Logs { .. } => "logs",
            Request::Restart { .. } => "restart",
            Request::Reload { .. } => "reload",
            Request::Stop { .. } => "stop",
            Request::Start { .. } => "start",
            Request::Signal { .. } => "signal",
            Request::Diff { .. } => "diff",
            Request::Shutdown => "shutdown",
        }
    }

    /// The target, for the commands that have one.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Request::Status | Request::Diff { .. } | Request::Shutdown => None,
            Request::Reload { target } => target.as_ref(),
            Request::Logs { target, .. }
            | Request::Restart { target }
            | Request::Stop { target }
            | Request::Start { target }
            | Request::Signal { target, .. } => Some(target),
        }
    }

    /// The request as one line, newline included.
    pub fn to_line(&self) -> String {
        let env = RequestEnvelope {
            v: PROTOCOL_VERSION,
            request: self.clone(),
        };
        let mut s = serde_json::to_string(&env).expect("a request always serializes");
        s.push('\n');
        s
    }
}

/// Parse one request line (without its newline). The error is the text of the error
/// reply: `unsupported protocol version N (this supervise speaks 1)` or
/// `bad request: ...`.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "bad request: not UTF-8".to_string())?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("bad request: {e}"))?;
    let Some(obj) = value.as_object() else {
        return Err("bad request: expected a JSON object".to_string());
    };
    match obj.get("v") {
        None => return Err("bad request: missing field `v` (the protocol version)".to_string()),
        Some(v) => match v.as_u64() {
            Some(n) if n == u64::from(PROTOCOL_VERSION) => {}
            Some(n) => {
                return Err(format!(
                    "unsupported protocol version {n} (this supervise speaks {PROTOCOL_VERSION})"
                ))
            }
            None => return Err(format!("bad request: `v` must be a number, not {v}")),
        },
    }
    // Targets and signals are checked here, by their types' `TryFrom<String>`.
    let env: RequestEnvelope =
        serde_json::from_value(value).map_err(|e| format!("bad request: {e}"))?;
    Ok(env.request)
}

/// A signal named in a request: `"SIGUSR1"`, `"USR1"`, `"usr1"` or `"10"` on the wire
/// (the forms of the ecosystem file), its `SIG` name when written.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(try_from = "String", into = "String")]
pub struct SignalName(pub Signal);

impl SignalName {
    pub fn parse(s: &str) -> Result<SignalName, String> {
        crate::config::units::parse_signal(s).map(SignalName)
    }
}

impl TryFrom<String> for SignalName {
    type Error = String;
    fn try_from(s: String) -> Result<SignalName, String> {
        SignalName::parse(&s)
    }
}

impl std::str::FromStr for SignalName {
    type Err = String;
    fn from_str(s: &str) -> Result<SignalName, String> {
        SignalName::parse(s)
    }
}

impl From<SignalName> for String {
    fn from(s: SignalName) -> String {
        s.0.as_str().to_string()
    }
}

/// What a request names: every instance, one app's instances, or one instance.
/// A string on the wire (`"all"`, `"web"`, `"web.2"`), checked when read.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    All,
    App(String),
    Instance(String, u32),
}

impl Target {
    /// `"all"`, `"web"` or `"web.2"`. App names follow the ecosystem file's rule
    /// (letters, digits, `_`, `-`).
    pub fn parse(s: &str) -> Result<Target, String> {
        let bad = |why: &str| {
            format!(
                "bad target `{s}`: {why} (expected `all`, an app name such as `web`, \
                 or one instance such as `web.0`)"
            )
        };
        if s == "all" {
            return Ok(Target::All);
        }
        let (app, index) = match s.split_once('.') {
            Some((app, n)) => (app, Some(n)),
            None => (s, None),
        };
        if app.is_empty() {
            return Err(bad("empty app name"));
        }
        if !app
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad(
                "an app name may only contain letters, digits, `_` and `-`",
            ));
        }
        match index {
            None => Ok(Target::App(app.to_string())),
            Some(n) => {
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the instance number must be a number"));
                }
                let n: u32 = n
                    .parse()
                    .map_err(|_| bad("the instance number is too large"))?;
                Ok(Target::Instance(app.to_string(), n))
            }
        }
    }

    /// Whether instance `index` of `app` is named by this target.
    pub fn matches(&self, app: &str, index: u32) -> bool {
        match self {
            Target::All => true,
            Target::App(a) => a == app,
            Target::Instance(a, i) => a == app && *i == index,
        }
    }

    /// The app this target is limited to, if any.
    pub fn app(&self) -> Option<&str> {
        match self {
            Target::All => None,
            Target::App(a) | Target::Instance(a, _) => Some(a),
        }
    }
}

impl TryFrom<String> for Target {
    type Error = String;
    fn try_from(s: String) -> Result<Target, String> {
        Target::parse(&s)
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        t.to_string()
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        Target::parse(s)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            Target::App(a) => f.write_str(a),
            Target::Instance(a, i) => write!(f, "{a}.{i}"),
        }
    }
}

/// The answer to one request. `ok: false` comes with `error`; `message` is a human
/// summary ("restarted web.0, web.1"); `status` answers `status`; `lines` answers `logs`;
/// `diff` answers `diff`, one line per app.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LogLine>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
}

impl Response {
    /// A success with nothing more to say.
    pub fn ok() -> Response {
        Response {
            ok: true,
            ..Response::default()
        }
    }

    /// A success with a human message.
    pub fn message(text: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: Some(text.into()),
            ..Response::default()
        }
    }

    /// A failure.
    pub fn error(text: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(text.into()),
            ..Response::default()
        }
    }

    /// The response as one line, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a response always serializes");
        s.push('\n');
        s
    }
}

/// The answer to `status`. Every field is always present in JSON (null when unknown),
/// so `supervise status --json` has a stable shape for scripts.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct StatusReport {
    /// The ecosystem file supervise runs.
    pub config: String,
    /// The current config error (the last reload failed; the previous config runs).
    #[serde(default)]
    pub config_error: Option<String>,
    #[serde(default)]
    pub instances: Vec<InstanceStatus>,
}

/// One instance in `status`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct InstanceStatus {
    pub app: String,
    pub index: u32,
    #[serde(default)]
    pub pid: Option<i32>,
    /// starting | running | stopping | backoff | errored | exited | stopped
    pub state: String,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub uptime_ms: Option<u64>,
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// How the last run ended, e.g. `code 1` or `SIGKILL`.
    #[serde(default)]
    pub last_exit: Option<String>,
    #[serde(default)]
    pub ready: bool,
    /// The sd_notify `STATUS=` text.
    #[serde(default)]
    pub status_text: Option<String>,
    /// A job's (`schedule`) or `cron_restart` app's next time, local, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// The instance this one replaces (a reload or a changed command), while it still
    /// serves or stops.
    #[serde(default)]
    pub outgoing: Option<Outgoing>,
}

/// The old instance of a slot being replaced.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Outgoing {
    #[serde(default)]
    pub pid: Option<i32>,
    /// running (still serving, until its successor is ready) | stopping
    pub state: String,
}

/// One log line, in `logs` answers and streamed by `logs --follow`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct LogLine {
    /// Unix epoch, milliseconds.
    pub time_ms: u64,
    pub app: String,
    pub index: u32,
    /// stdout | stderr
    pub stream: String,
    pub line: String,
}

impl LogLine {
    /// The line as one JSON line, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a log line always serializes");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    fn all_requests() -> Vec<Request> {
        vec![
            Request::Status,
            Request::Logs {
                target: t("web.1"),
                lines: 20,
                follow: true,
                stream: None,
            },
            Request::Restart { target: t("all") },
            Request::Reload {
                target: Some(t("web")),
            },
            Request::Reload { target: None },
            Request::Shutdown,
            Request::Stop { target: t("web.0") },
            Request::Start { target: t("web") },
            Request::Signal {
                signal: SignalName::parse("SIGUSR1").unwrap(),
                target: t("worker"),
            },
            Request::Diff { config: None },
            Request::Diff {
                config: Some("/srv/next.toml".into()),
            },
        ]
    }

    #[test]
    fn requests_round_trip() {
        for r in all_requests() {
            let line = r.to_line();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(parse_request(line.trim_end().as_bytes()), Ok(r.clone()));
            assert!(
                line.contains(&format!("\"cmd\":\"{}\"", r.name())),
                "{line}"
            );
        }
    }

    #[test]
    fn wire_format_is_stable() {
        assert_eq!(Request::Status.to_line(), "{\"v\":1,\"cmd\":\"status\"}\n");
        assert_eq!(
            Request::Signal {
                signal: SignalName::parse("HUP").unwrap(),
                target: t("web.2")
            }
            .to_line(),
            "{\"v\":1,\"cmd\":\"signal\",\"signal\":\"SIGHUP\",\"target\":\"web.2\"}\n"
        );
        // Every spelling of the file is read; numbers too.
        assert_eq!(
            parse_request(br#"{"v":1,"cmd":"signal","signal":"usr1","target":"web"}"#),
            Ok(Request::Signal {
                signal: SignalName(Signal::SIGUSR1),
                target: t("web")
            })
        );
        assert_eq!(Response::ok().to_line(), "{\"ok\":true}\n");
        assert_eq!(
            Request::Diff { config: None }.to_line(),
            "{\"v\":1,\"cmd\":\"diff\"}\n"
        );
        assert_eq!(
            Response::error("nope").to_line(),
            "{\"ok\":false,\"error\":\"nope\"}\n"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(
            parse_request(br#"{"v":1,"cmd":"status","colour":true}"#),
            Ok(Request::Status)
        );
    }

    #[test]
    fn responses_round_trip() {
        let r = Response {
            ok: true,
            error: None,
            message: Some("hi".into()),
            status: Some(StatusReport {
                config: "/etc/eco.toml".into(),
                config_error: Some("eco.toml:3:1: bad".into()),
                instances: vec![InstanceStatus {
                    app: "web".into(),
                    index: 0,
                    pid: Some(42),
                    state: "running".into(),
                    restarts: 3,
                    uptime_ms: Some(1234),
                    cpu_percent: Some(0.5),
                    memory_bytes: Some(1 << 20),
                    last_exit: Some("code 1".into()),
                    ready: true,
                    status_text: Some("serving".into()),
                    next_run: Some("2026-11-30T07:00:00+00:00".into()),
                    outgoing: None,
                }],
            }),
            lines: vec![LogLine {
                time_ms: 1,
                app: "web".into(),
                index: 0,
                stream: "stdout".into(),
                line: "hello \"x\"\n".into(),
            }],
            diff: vec!["web: scale 2 -> 5".into(), "cron: added".into()],
        };
        let line = r.to_line();
        assert_eq!(line.matches('\n').count(), 1);
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        let l = &r.lines[0];
        assert_eq!(serde_json::from_str::<LogLine>(&l.to_line()).unwrap(), *l);
    }

    #[test]
    fn status_json_has_every_field() {
        let s = InstanceStatus {
            app: "a".into(),
            state: "stopped".into(),
            ..Default::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        for k in [
            "app",
            "index",
            "pid",
            "state",
            "restarts",
            "uptime_ms",
            "cpu_percent",
            "memory_bytes",
            "last_exit",
            "ready",
            "status_text",
            "outgoing",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
    }

    #[test]
    fn garbage_gives_errors_not_panics() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "bad request: "),
            (b"hello", "bad request: "),
            (b"\xff\xfe", "bad request: not UTF-8"),
            (b"[1,2]", "bad request: expected a JSON object"),
            (b"{}", "bad request: missing field `v`"),
            (b"{\"cmd\":\"status\"}", "bad request: missing field `v`"),
            (
                b"{\"v\":\"1\",\"cmd\":\"status\"}",
                "bad request: `v` must be a number",
            ),
            (
                b"{\"v\":2,\"cmd\":\"status\"}",
                "unsupported protocol version 2 (this supervise speaks 1)",
            ),
            (b"{\"v\":1}", "bad request: missing field `cmd`"),
            (
                b"{\"v\":1,\"cmd\":\"explode\"}",
                "bad request: unknown variant `explode`",
            ),
            (
                b"{\"v\":1,\"cmd\":\"restart\"}",
                "bad request: missing field `target`",
            ),
            (
                b"{\"v\":1,\"cmd\":\"restart\",\"target\":5}",
                "bad request: invalid type",
            ),
            (
                b"{\"v\":1,\"cmd\":\"restart\",\"target\":\"web.x\"}",
                "bad request: bad target `web.x`",
            ),
            (
                b"{\"v\":1,\"cmd\":\"signal\",\"signal\":\"SIGNOPE\",\"target\":\"web\"}",
                "bad request: unknown signal `SIGNOPE`",
            ),
            (
                b"{\"v\":1,\"cmd\":\"logs\",\"target\":\"all\",\"lines\":-1,\"follow\":false}",
                "bad request: invalid value",
            ),
        ];
        for (input, want) in cases {
            let got = parse_request(input).unwrap_err();
            assert!(
                got.starts_with(want),
                "{:?}: got {got:?}, want {want:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn targets() {
        assert_eq!(Target::parse("all"), Ok(Target::All));
        assert_eq!(Target::parse("web"), Ok(Target::App("web".into())));
        assert_eq!(
            Target::parse("my-app_2"),
            Ok(Target::App("my-app_2".into()))
        );
        assert_eq!(
            Target::parse("web.2"),
            Ok(Target::Instance("web".into(), 2))
        );
        for bad in [
            "",
            ".1",
            "web.",
            "web.x",
            "web.-1",
            "web.1.2",
            "a b",
            "web.99999999999",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(e.starts_with(&format!("bad target `{bad}`")), "{e}");
        }
        assert_eq!(Target::parse("web.2").unwrap().to_string(), "web.2");
        let t = Target::parse("web").unwrap();
        assert!(t.matches("web", 3) && !t.matches("api", 0));
        let t = Target::parse("web.1").unwrap();
        assert!(t.matches("web", 1) && !t.matches("web", 0));
        assert!(Target::All.matches("x", 9));
    }
}

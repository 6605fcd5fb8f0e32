//! `settings.http` (SPEC section 7, issue 12 item 1): /livez, /readyz and /metrics through
//! startup, readiness, a crash and shutdown; the metrics read by real parsers and scraped
//! by a real Prometheus server; silent clients never delay supervision.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

/// One request on a fresh connection: (status, head, body).
pub fn http(port: u16, method: &str, path: &str) -> Option<(u16, String, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conn = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).ok()?;
    conn.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).ok()?;
    let text = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

pub fn get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) =
        http(port, "GET", path).unwrap_or_else(|| panic!("GET {path} on {port} failed"));
    (status, body)
}

/// Wait until GET `path` answers `status` with a body for which `pred` holds.
#[track_caller]
pub fn wait_http(port: u16, path: &str, status: u16, pred: impl Fn(&str) -> bool) -> String {
    let mut last = None;
    let ok = poll_until(
        || {
            last = http(port, "GET", path);
            matches!(&last, Some((s, _, b)) if *s == status && pred(b))
        },
        LONG,
    );
    assert!(ok, "GET {path}: wanted {status}, last answer {last:?}");
    last.unwrap().2
}

/// The value of the sample `name{labels}` in a metrics text (labels as written).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok())?
    })
}

/// A crash keeps the worker in backoff for an hour (readiness shows it).
const WORKER_BACKS_OFF: &str = "min_uptime = \"1h\"\nrestart_delay = \"1h\"";

/// `web` is ready once the test removes its `not-ready` file; `worker` writes its pid.
fn config(h: &mut Harness, port: u16, settings: &str, worker_policy: &str) -> std::path::PathBuf {
    let app_port = free_port();
    let gate = h.path("not-ready");
    std::fs::write(&gate, "").unwrap();
    let web = app_cmd(&[
        "--serve-own",
        "--port",
        &app_port.to_string(),
        "--unhealthy-file",
        gate.to_str().unwrap(),
        "--trap-term",
    ]);
    let worker = app_cmd(&["--pid-dir", h.pids()]);
    let text = format!(
        r#"
[settings]
http = "127.0.0.1:{port}"
{settings}

[apps.web]
command = {web}
ready = {{ http = "http://127.0.0.1:{app_port}/" }}
stop_timeout = "5s"

[apps.worker]
command = {worker}
{worker_policy}
"#
    );
    h.write_config("eco.toml", &text)
}

#[test]
fn probes_through_startup_readiness_a_crash_and_shutdown() {
    let mut h = Harness::new();
    let port = free_port();
    let config = config(&mut h, port, "", WORKER_BACKS_OFF);
    h.start(&config);

    // Startup: alive at once, not ready while web's own check fails.
    wait_http(port, "/livez", 200, |b| b == "ok\n");
    let body = wait_http(port, "/readyz", 503, |b| b.contains("[-] web.0 starting"));
    assert!(body.contains("[+] worker.0 ready"), "{body}");

    // Readiness: web's check passes.
    std::fs::remove_file(h.path("not-ready")).unwrap();
    let body = wait_http(port, "/readyz", 200, |_| true);
    assert_eq!(body, "[+] web.0 ready\n[+] worker.0 ready\n");
    let metrics = get(port, "/metrics").1;
    let ready = |app: &str| format!("supervise_instance_ready{{app=\"{app}\",index=\"0\"}}");
    assert_eq!(sample(&metrics, &ready("web")), Some(1.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "supervise_instance_state{app=\"web\",index=\"0\",state=\"running\"}"
        ),
        Some(1.0)
    );

    // A crash: the worker backs off for an hour, so the pod is not ready.
    let worker = h.wait_pid("worker", 0);
    kill(Pid::from_raw(worker), Signal::SIGKILL).unwrap();
    let body = wait_http(port, "/readyz", 503, |b| b.contains("[-] worker.0 backoff"));
    assert!(body.contains("[+] web.0 ready"), "{body}");
    let metrics = get(port, "/metrics").1;
    let worker_series = |name: &str| format!("{name}{{app=\"worker\",index=\"0\"}}");
    assert_eq!(
        sample(
            &metrics,
            &worker_series("supervise_instance_last_exit_code")
        ),
        Some(137.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "supervise_instance_state{app=\"worker\",index=\"0\",state=\"backoff\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, &worker_series("supervise_instance_ready")),
        Some(0.0)
    );
    assert!(
        !metrics.contains(&format!("{worker}")),
        "no pid in the metrics"
    );

    // Methods and paths.
    let (status, head, body) = http(port, "POST", "/readyz").unwrap();
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    assert!(!body.is_empty());
    assert_eq!(get(port, "/nothing-here").0, 404);
    let (status, head, body) = http(port, "HEAD", "/livez").unwrap();
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(head.contains("Content-Length: 3"), "{head}");

    // Shutdown: not ready at once, alive until the end.
    h.send_signal(Signal::SIGTERM);
    let body = wait_http(port, "/readyz", 503, |b| b.contains("supervise stopping"));
    assert!(body.contains("[-] supervise stopping"), "{body}");
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    assert!(
        http(port, "GET", "/livez").is_none(),
        "the listener is closed"
    );
}

/// `promtool check metrics` (Debian's prometheus package) and the Python client's
/// parser (PyPI prometheus-client) both read /metrics; each is skipped with a note
/// where it is not installed (.ci/run installs both).
#[test]
fn metrics_are_read_by_real_parsers() {
    let mut h = Harness::new();
    let port = free_port();
    let config = config(&mut h, port, "", WORKER_BACKS_OFF);
    h.start(&config);
    std::fs::remove_file(h.path("not-ready")).unwrap();
    wait_http(port, "/readyz", 200, |_| true);
    let metrics = get(port, "/metrics").1;
    for name in [
        "supervise_build_info{version=",
        "supervise_config_last_reload_successful 1",
        "supervise_config_last_reload_success_timestamp_seconds ",
        "supervise_app_desired_instances{app=\"web\"} 1",
        "supervise_instance_restarts_total{app=\"web\",index=\"0\"} 0",
        "supervise_instance_start_time_seconds{app=\"web\",index=\"0\"} ",
        "supervise_instance_cpu_seconds_total{app=\"web\",index=\"0\"} ",
        "supervise_instance_resident_memory_bytes{app=\"web\",index=\"0\"} ",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    let (_, head, _) = http(port, "GET", "/metrics").unwrap();
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );

    match fed(
        Command::new("promtool").args(["check", "metrics"]),
        &metrics,
    ) {
        Err(e) => eprintln!("note: promtool not available ({e}); apt-get install prometheus"),
        Ok(out) => {
            let said = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "promtool: {said}\n{metrics}");
            // Lint findings (names, units, help) are printed; there must be none.
            assert!(said.trim().is_empty(), "promtool lint: {said}");
        }
    }

    let script = r#"
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("missing"); sys.exit(0)
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
assert families["supervise_instance_restarts"].type == "counter", families.keys()
web = [s for s in families["supervise_instance_state"].samples if s.labels["app"] == "web"]
assert len(web) == 7 and sum(s.value for s in web) == 1, web
print("ok", len(families))
"#;
    let out = fed(Command::new("python3").args(["-c", script]), &metrics).expect("python3 runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python parser: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if said.trim() == "missing" {
        eprintln!("note: python prometheus_client not installed; pip install prometheus-client");
    } else {
        assert!(said.starts_with("ok "), "{said}");
    }
}

/// A real Prometheus server (Debian's `prometheus`) scrapes supervise and answers a
/// query about it through its HTTP API.
#[test]
fn prometheus_scrapes_supervise() {
    if Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("note: skipping: no prometheus server here (apt-get install prometheus)");
        return;
    }
    let mut h = Harness::new();
    let port = free_port();
    let config = config(&mut h, port, "", WORKER_BACKS_OFF);
    h.start(&config);
    wait_http(port, "/livez", 200, |_| true);

    let prom_port = free_port();
    let prom_config = h.write_file(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: supervise\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    );
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", prom_config.display()))
        .arg(format!("--storage.tsdb.path={}", h.path("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prometheus starts");
    let _stop = KillOnDrop(prometheus.id() as i32);
    let query = "/api/v1/query?query=supervise_app_desired_instances%7Bapp%3D%22web%22%7D";
    let mut last = None;
    let answered = poll_until(
        || {
            last = http(prom_port, "GET", query);
            matches!(&last, Some((200, _, body)) if body.contains("\"value\":[") && body.contains("\"1\"]"))
        },
        Duration::from_secs(60),
    );
    let up = http(prom_port, "GET", "/api/v1/query?query=up");
    let _ = prometheus.kill();
    let mut stderr = String::new();
    let _ = prometheus
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr);
    let _ = prometheus.wait();
    assert!(
        answered,
        "prometheus never answered the query; last: {last:?}; up: {up:?}\n{stderr}"
    );
    let body = last.unwrap().2;
    assert!(body.contains("\"job\":\"supervise\""), "{body}");
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

/// 50 connections that never send a byte (and one that sends half a request) hold no
/// part of the loop: a crashed instance is restarted while they sit there, and the
/// probes still answer.
#[test]
fn silent_http_clients_do_not_delay_a_respawn() {
    let mut h = Harness::new();
    let port = free_port();
    let config = config(&mut h, port, "", "");
    h.start(&config);
    wait_http(port, "/livez", 200, |_| true);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut silent: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).unwrap())
        .collect();
    let mut half = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: te")
        .unwrap();
    silent.push(half);

    let old = h.wait_pid("worker", 0);
    let t0 = Instant::now();
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    let new = h.wait_pid_change("worker", 0, old, LONG);
    assert_ne!(new, old);
    assert_eq!(get(port, "/livez"), (200, "ok\n".to_string()));
    eprintln!(
        "respawned with 51 idle HTTP connections open in {:?}",
        t0.elapsed()
    );
    drop(silent);
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

/// Runs `command` with `input` on its standard input; its output, both streams. `Err`
/// only when it cannot be started (not installed).
fn fed(command: &mut Command, input: &str) -> std::io::Result<std::process::Output> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).expect("feed its stdin");
    drop(stdin);
    Ok(child.wait_with_output().expect("wait for it"))
}

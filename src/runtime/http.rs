//! What the HTTP endpoint answers (SPEC section 7), from the loop's own state: the
//! server in `crate::http` frames requests; this says 200 or 503 and renders the
//! readiness lines and the metrics, sampling /proc only when `/metrics` is scraped.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mio::Token;

use super::Runtime;
use crate::http::metrics::{Exposition, Kind, CONTENT_TYPE};
use crate::http::{Request, Response};
use crate::os;
use crate::plan::readiness::readiness;
use crate::state::{state_of, Instance, InstanceId};

/// The states of SPEC section 4, each a `supervise_instance_state` series.
const STATES: &[&str] = &[
    "starting", "running", "stopping", "backoff", "errored", "exited", "stopped",
];

impl Runtime {
    pub(super) fn on_http(&mut self, token: Token) {
        let Some(mut server) = self.http.take() else {
            return;
        };
        let now = Instant::now();
        server.ready(self.poll.registry(), token, now, &mut |request| {
            self.answer_http(request, now)
        });
        self.http = Some(server);
    }

    /// Once per loop turn: drop the clients whose time is up, and accept again if the
    /// listener stalled for lack of descriptors (never a reason to wake by itself).
    pub(super) fn tend_http(&mut self, now: Instant) {
        if let Some(server) = &mut self.http {
            if server.next_deadline().is_some_and(|at| at <= now) {
                server.expire(self.poll.registry(), now);
            }
            server.retry(self.poll.registry(), now);
        }
    }

    fn answer_http(&self, request: &Request, now: Instant) -> Response {
        if request.method != "GET" && request.method != "HEAD" {
            return Response::text(405, "only GET and HEAD\n");
        }
        match request.path.as_str() {
            "/livez" => Response::text(200, "ok\n"),
            "/readyz" => {
                let r = readiness(&self.desired, &self.observed, now);
                Response::text(if r.ready() { 200 } else { 503 }, r.body())
            }
            "/metrics" => Response {
                status: 200,
                content_type: CONTENT_TYPE,
                body: self.metrics(now).into_bytes(),
            },
            _ => Response::text(404, "not found: try /livez, /readyz or /metrics\n"),
        }
    }

    fn metrics(&self, now: Instant) -> String {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        // Wall-clock seconds of a moment of the loop's monotonic clock.
        let at = |t: Instant| wall - now.saturating_duration_since(t).as_secs_f64();
        let mut e = Exposition::new();
        e.family(
            "supervise_build_info",
            Kind::Gauge,
            "Always 1; the version of supervise.",
        );
        e.sample(
            "supervise_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        e.single(
            "supervise_config_last_reload_successful",
            Kind::Gauge,
            "1 when the last read of the ecosystem file was valid, else 0.",
            flag(self.observed.config_error.is_none()),
        );
        e.single(
            "supervise_config_last_reload_success_timestamp_seconds",
            Kind::Gauge,
            "When a version of the ecosystem file was last applied, in seconds since the epoch.",
            at(self.observed.reloaded_at.unwrap_or(self.started.0)),
        );
        e.family(
            "supervise_app_desired_instances",
            Kind::Gauge,
            "Instances the ecosystem file asks for, per app.",
        );
        for app in &self.desired.eco.apps {
            let n = app.instances as f64;
            e.sample("supervise_app_desired_instances", &[("app", &app.name)], n);
        }

        let rows = self.metric_rows();
        let pgids: Vec<i32> = rows.iter().filter_map(|(_, i)| (*i)?.group()).collect();
        let usage = os::procfs::groups_usage(&pgids);
        let facts: Vec<Facts> = rows
            .iter()
            .map(|(id, inst)| {
                let held = self.desired.holds.contains(id);
                let ready_spec = self.desired.app(&id.app).map(|a| &a.ready);
                let ready = inst.is_some_and(|i| i.is_ready(ready_spec, now));
                let state = state_of(*inst, ready_spec, held, now).as_str();
                let group = inst.and_then(|i| i.group());
                Facts {
                    app: &id.app,
                    index: id.index.to_string(),
                    inst: *inst,
                    ready,
                    state,
                    usage: group.and_then(|g| usage.get(&g).copied()),
                }
            })
            .collect();
        e.family(
            "supervise_instance_state",
            Kind::Gauge,
            "1 for the instance's current state (as supervise status shows it), 0 for the others.",
        );
        for f in &facts {
            for state in STATES {
                let labels = [("app", f.app), ("index", &f.index), ("state", state)];
                e.sample("supervise_instance_state", &labels, flag(f.state == *state));
            }
        }
        let per_instance = |e: &mut Exposition,
                            name: &str,
                            kind: Kind,
                            help: &str,
                            value: &dyn Fn(&Facts) -> Option<f64>| {
            e.family(name, kind, help);
            for f in &facts {
                if let Some(v) = value(f) {
                    e.sample(name, &[("app", f.app), ("index", &f.index)], v);
                }
            }
        };
        per_instance(
            &mut e,
            "supervise_instance_ready",
            Kind::Gauge,
            "1 while the instance is ready (its `ready` check passed), else 0.",
            &|f| Some(flag(f.ready)),
        );
        per_instance(
            &mut e,
            "supervise_instance_restarts_total",
            Kind::Counter,
            "Times the instance was started again.",
            &|f| Some(f.inst.map_or(0.0, |i| i.restarts() as f64)),
        );
        per_instance(
            &mut e,
            "supervise_instance_start_time_seconds",
            Kind::Gauge,
            "When the running instance started, in seconds since the epoch.",
            &|f| Some(at(f.inst?.started_at()?)),
        );
        per_instance(
            &mut e,
            "supervise_instance_last_exit_code",
            Kind::Gauge,
            "Exit code of the instance's last run (128+N for signal N).",
            &|f| Some(f.inst?.last_exit.as_ref()?.0.code() as f64),
        );
        per_instance(
            &mut e,
            "supervise_instance_cpu_seconds_total",
            Kind::Counter,
            "CPU time of the instance's process group (user + system) in its current run.",
            &|f| Some(f.usage?.cpu.as_secs_f64()),
        );
        per_instance(
            &mut e,
            "supervise_instance_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory of the instance's process group.",
            &|f| Some(f.usage?.rss_bytes as f64),
        );

        let own = os::own_process::own_process();
        let process = [
            (
                "process_cpu_seconds_total",
                Kind::Counter,
                "Total user and system CPU time of supervise itself, in seconds.",
                own.cpu.as_secs_f64(),
            ),
            (
                "process_resident_memory_bytes",
                Kind::Gauge,
                "Resident memory of supervise itself, in bytes.",
                own.rss_bytes as f64,
            ),
            (
                "process_open_fds",
                Kind::Gauge,
                "Open file descriptors of supervise itself.",
                own.open_fds as f64,
            ),
            (
                "process_start_time_seconds",
                Kind::Gauge,
                "When supervise started, in seconds since the epoch.",
                own.start_time,
            ),
        ];
        for (name, kind, help, value) in process {
            e.single(name, kind, help, value);
        }
        e.finish()
    }

    /// One row per instance slot, each once: the wanted ones (recorded or not yet), then
    /// recorded ones on their way out (scaled down, app removed). Outgoing instances of
    /// a rolling update share their slot's labels and are left out.
    fn metric_rows(&self) -> Vec<(InstanceId, Option<&Instance>)> {
        let mut rows = Vec::new();
        let mut seen = HashMap::new();
        for app in &self.desired.eco.apps {
            for index in 0..app.instances {
                let id = InstanceId::new(&app.name, index);
                let inst = self.observed.instances.get(&id);
                seen.insert(id.clone(), ());
                rows.push((id, inst));
            }
        }
        for (id, inst) in &self.observed.instances {
            if !seen.contains_key(id) {
                rows.push((id.clone(), Some(inst)));
            }
        }
        rows
    }
}

struct Facts<'a> {
    app: &'a str,
    index: String,
    inst: Option<&'a Instance>,
    ready: bool,
    state: &'static str,
    usage: Option<os::procfs::Usage>,
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

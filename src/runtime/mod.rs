//! The event loop: the one owner of runtime state. It decides nothing itself.
//!
//! One thread polls a single `mio::Poll` for signals (SIGCHLD included, through
//! signal-hook's self-pipe), the instances' pipes, the notify socket, the control socket
//! and the wakers of the writer, the watcher and the prober. Every turn goes the same
//! way: translate what happened into facts (`state::observe`), ask `plan` what to do,
//! `perform` it (each effect recorded as a fact again), and sleep until the next event or
//! the one wake-up time: the plan's next deadline, or an exec probe's timeout. When
//! nothing is due, the poll has no timeout: an idle supervise never wakes.
//!
//! A child's exit to its respawn: `exits::reap` -> `Fact::Exited` -> `plan::plan` says
//! `Action::Spawn` (now, or at the backoff deadline) -> `perform::spawn`, which does not
//! wait for the exec: `starts` learns its outcome from the poll.
//!
//! The files, one concern each: `exits` (reaping, group leftovers, the final sweep),
//! `perform` (actions), `launch` (what a child gets), `starts` (exec outcomes), `checks` (probes), `notify`
//! (sd_notify), `reload` (the file read again), `control` (the control socket's
//! requests), `pipes` and `sinks` (instance output), `logfiles` (`log_dir`).

/// The destinations of instance lines, borrowed from the runtime's fields so that the
/// pipes (another field) can be driven at the same time.
macro_rules! sinks {
    ($rt:expr) => {
        $crate::runtime::sinks::Sinks {
            output: &$rt.output,
            files: $rt.files.as_ref(),
            ring: &mut $rt.ring,
            outbox: if $rt.control.following() {
                Some(&mut $rt.control.outbox)
            } else {
                None
            },
        }
    };
}

mod checks;
mod control;
mod exits;
mod follow;
mod http;
mod launch;
pub use launch::{fds_needed, fds_warning};
mod logfiles;
mod notify;
mod parent;
mod perform;
mod pipes;
mod reload;
mod schedules;
mod sinks;
mod starts;
mod status;

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::signal::Signal;
use signal_hook::consts::signal::*;
use signal_hook_mio::v1_0::Signals;

use crate::config::Ecosystem;
use crate::control::server::ControlServer;
use crate::logs::files::LogFiles;
use crate::logs::ring::LogRing;
use crate::logs::Output;
use crate::os;
use crate::plan::{self, Action, Desired};
use crate::state::{Fact, InstanceId, Observed};
use crate::watch::Watcher;

const SIGNALS: Token = Token(0);
const WAKER: Token = Token(1);
const NOTIFY: Token = Token(2);
const CONTROL: Token = Token(3);
const HTTP: Token = Token(4);
const FOLDERS: Token = Token(5);
const FIRST_PIPE: usize = 16;
/// Control clients get tokens from here up, far above any pipe's.
const FIRST_CLIENT: usize = 1 << 40;
/// Start reports (`starts`) get tokens from here up, far above any pipe's.
const FIRST_START: usize = 1 << 39;
/// HTTP clients get tokens from here up, far above any control client's.
const FIRST_HTTP_CLIENT: usize = 1 << 41;

/// How long the writers may wait for a start's exec before being woken (see run_loop).
const OUTPUT_DEFER: Duration = Duration::from_millis(2);

/// How long the final sweep waits for leftover processes after SIGTERM.
const SWEEP_GRACE: Duration = Duration::from_secs(2);

/// Who a child process is, for the reaper's routing table.
#[derive(Debug, Clone)]
pub(super) enum Owner {
    Instance(InstanceId),
    Probe(crate::probes::ProbeId),
}

pub struct Runtime {
    poll: Poll,
    signals: Signals,
    desired: Desired,
    observed: Observed,
    /// Reloads and `watch` restarts, debounced.
    reload: reload::Reloader,
    watcher: Option<Watcher>,
    /// Routing table of the reaper: leader pid -> instance or probe. Unknown pids are
    /// orphans.
    leaders: HashMap<i32, Owner>,
    /// Listening sockets of cluster mode, bound once and kept across restarts.
    sockets: os::sockets::SocketSet,
    /// Prepares what each spawn executes (environment, users resolved per load).
    launcher: launch::Launcher,
    /// Instances whose exec is not confirmed yet.
    starts: starts::Starts,
    checks: checks::Checks,
    pipes: pipes::Pipes,
    output: Output,
    /// Per-instance log files, with `log_dir`.
    files: Option<LogFiles>,
    /// The last lines of every instance, for `supervise logs`.
    ring: LogRing,
    control: control::Control,
    waker: Arc<Waker>,
    /// The Node listen adapter's preload module, written on first use, removed on drop.
    adapter: crate::listen_adapter::Preload,
    /// `settings.http`: /livez, /readyz, /metrics.
    http: Option<crate::http::HttpServer>,
    /// The service manager that started supervise, told over sd_notify.
    parent: Option<parent::Parent>,
    /// When supervise started, on both clocks (metrics are in wall-clock seconds).
    started: (Instant, std::time::SystemTime),
}

/// Run the ecosystem until it is told to stop or has finished; the exit code.
/// `socket` is the control socket to serve.
pub fn run(ecosystem: Ecosystem, socket: &Path) -> io::Result<i32> {
    // First: every thread made after this one inherits the policy.
    os::sched::become_batch();
    if std::process::id() != 1 {
        if let Err(e) = os::reap::become_subreaper() {
            log::warn!("could not become child subreaper ({e}); orphans will not be reaped");
        }
    }
    let poll = Poll::new()?;
    // As PID 1 the kernel drops signals that have no handler: every signal we obey
    // needs one. SIGCHLD drives the reaper.
    let mut signals = Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    // No disposition changes after this: children reset only those that differ.
    os::spawn::note_signal_dispositions();
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let waker_for_checks = waker.clone();
    let settings = &ecosystem.settings;
    let output = Output::start(
        settings.log_format,
        settings.log_timestamps,
        Some(waker.clone()),
    );
    output.set_apps(&app_names(&ecosystem));
    let watcher = match Watcher::new(waker.clone(), poll.registry(), FOLDERS) {
        Ok(w) => Some(w),
        Err(e) => {
            output.event(&format!(
                "cannot watch files ({e}); edits are applied on SIGHUP only"
            ));
            None
        }
    };
    // First: a second supervise on the same socket is told so plainly.
    let mut server = match ControlServer::bind(socket) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("supervise: {e}");
            return Ok(1);
        }
    };
    server.register(poll.registry(), CONTROL, FIRST_CLIENT)?;
    let files = match logfiles::start_files(&ecosystem.settings, &waker) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("supervise: {e}");
            server.remove_file();
            return Ok(1);
        }
    };
    let mut sockets = os::sockets::SocketSet::new();
    if let Err(errors) = sockets.sync(&listen_addrs(&ecosystem)) {
        // The socket layer's messages name the address already.
        for (_, e) in errors {
            eprintln!("supervise: cannot listen on {e}");
        }
        server.remove_file();
        return Ok(1);
    }
    let http = match settings_http(&ecosystem, &poll) {
        Ok(http) => http,
        Err(e) => {
            eprintln!("supervise: {e}");
            server.remove_file();
            return Ok(1);
        }
    };
    let mut runtime = Runtime {
        http,
        parent: parent::Parent::from_env(),
        started: (Instant::now(), std::time::SystemTime::now()),
        files,
        ring: LogRing::default(),
        control: control::Control::new(server),
        waker: waker.clone(),
        adapter: Default::default(),
        sockets,
        launcher: launch::Launcher::new(&ecosystem),
        starts: starts::Starts::new(FIRST_START),
        checks: checks::Checks::new(waker_for_checks),
        poll,
        signals,
        reload: reload::Reloader::new(&ecosystem),
        desired: Desired::new(ecosystem),
        observed: Observed::default(),
        watcher,
        leaders: HashMap::new(),
        pipes: pipes::Pipes::new(FIRST_PIPE),
        output,
    };
    runtime.update_watches();
    runtime.ensure_notify_socket();
    let code = runtime.run_loop()?;
    runtime.sweep();
    let deadline = runtime.drain_pipes();
    runtime.announce_exit(code);
    runtime.sockets.close_all();
    if let Some(server) = runtime.control.server.take() {
        server.remove_file();
    }
    if let Some(notify) = runtime.checks.notify.take() {
        let dir = notify.path().parent().map(std::path::Path::to_path_buf);
        drop(notify);
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
    let Runtime { output, files, .. } = runtime;
    if let Some(files) = files {
        files.finish(sinks::time_left(deadline));
    }
    output.finish(sinks::time_left(deadline));
    Ok(code)
}

/// The HTTP endpoint of `settings.http`, bound and registered, if set.
fn settings_http(eco: &Ecosystem, poll: &Poll) -> Result<Option<crate::http::HttpServer>, String> {
    let Some(addr) = eco.settings.http else {
        return Ok(None);
    };
    let mut server = crate::http::HttpServer::bind(addr)
        .map_err(|e| format!("cannot serve settings.http on {addr}: {e}"))?;
    server
        .register(poll.registry(), HTTP, FIRST_HTTP_CLIENT)
        .map_err(|e| format!("cannot serve settings.http on {addr}: {e}"))?;
    Ok(Some(server))
}

/// Every `listen` address of the file, in order, once.
pub(super) fn listen_addrs(eco: &Ecosystem) -> Vec<crate::config::ListenAddr> {
    let mut addrs = Vec::new();
    for addr in eco.apps.iter().flat_map(|a| &a.listen) {
        if !addrs.contains(addr) {
            addrs.push(addr.clone());
        }
    }
    addrs
}

pub(super) fn app_names(eco: &Ecosystem) -> Vec<(String, u32)> {
    eco.apps
        .iter()
        .map(|a| (a.name.clone(), a.instances))
        .collect()
}

impl Runtime {
    fn run_loop(&mut self) -> io::Result<i32> {
        let mut events = Events::with_capacity(256);
        // The last plan's deadline and the turn's wake-up, while only pipes were read since:
        // output changes no fact, so a busy pipe costs no planning (issue 10 item 7).
        let mut planned: Option<(Option<Instant>, Option<Instant>)> = None;
        loop {
            self.expire_exec_probes(Instant::now());
            self.tend_http(Instant::now());
            let skipped = planned
                .take()
                .filter(|(_, at)| at.is_none_or(|at| Instant::now() < at));
            let (plan_at, exit) = match skipped {
                Some((plan_at, _)) => (plan_at, None),
                None => self.reconcile(),
            };
            let commanded = self.serve_control(Instant::now());
            self.flush_followers();
            if skipped.is_none() {
                self.notify_parent(Instant::now(), exit.is_some());
            }
            if let Some(code) = exit {
                sinks!(self).hold(false);
                return Ok(code);
            }
            // One wake-up: the plan's next deadline, an exec probe's timeout, an HTTP
            // client's, or the parent's watchdog.
            let wake_at = plan_at
                .into_iter()
                .chain(self.checks.next_deadline())
                .chain(self.http.as_ref().and_then(|h| h.next_deadline()))
                .chain(self.parent.as_ref().and_then(|p| p.next_deadline()))
                .min();
            // While a lone start's exec is pending (its report comes at the exec), the
            // writers are not woken: the child, often on this CPU, runs first; their
            // lines follow with its "started" at most OUTPUT_DEFER later. Not in a
            // burst: there a start is always pending, and output must keep flowing.
            let defer = self
                .starts
                .oldest_at()
                .filter(|_| self.starts.in_flight() == 1)
                .map(|at| at + OUTPUT_DEFER)
                .filter(|until| Instant::now() < *until);
            let room = sinks!(self).room();
            let timeout = if self.pipes.busy(room) || commanded || self.control_backlog() {
                Some(Duration::ZERO)
            } else {
                // A resting pipe's read is no reason to plan: not in `planned`.
                let at = wake_at
                    .into_iter()
                    .chain(self.pipes.next_deadline())
                    .chain(defer)
                    .min();
                at.map(|at| at.saturating_duration_since(Instant::now()))
            };
            if defer.is_none() {
                sinks!(self).hold(false);
            }
            let polled = self.poll.poll(&mut events, timeout);
            sinks!(self).hold(true);
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if !commanded && events.iter().all(|e| self.pipes.owns(e.token())) {
                planned = Some((plan_at, wake_at));
            }
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.on_signals(),
                    WAKER => {
                        self.on_files_changed();
                        self.on_probe_results();
                    }
                    NOTIFY => self.on_notify(),
                    FOLDERS => {
                        if let Some(watcher) = &mut self.watcher {
                            watcher.read_folders();
                        }
                        self.on_files_changed();
                    }
                    // Before control: its clients' tokens are all those above its first.
                    token if self.http.as_ref().is_some_and(|h| h.owns(token)) => {
                        self.on_http(token)
                    }
                    token if self.control.server.as_ref().is_some_and(|s| s.owns(token)) => {
                        self.on_control(token, event)
                    }
                    token if self.starts.owns(token) => self.on_start_report(token),
                    token if self.pipes.owns(token) => {
                        self.pipes
                            .readable(self.poll.registry(), token, &mut sinks!(self))
                    }
                    _ => {}
                }
            }
            self.pipes.wake_due(self.poll.registry(), &mut sinks!(self));
            self.pipes.resume(self.poll.registry(), &mut sinks!(self));
        }
    }

    /// Plan and perform until the plan asks for nothing more now. Returns the plan's
    /// next deadline and, when it says so, the exit code.
    fn reconcile(&mut self) -> (Option<Instant>, Option<i32>) {
        // Each round records its effects as facts, so it converges in a few rounds (a
        // rolling update takes three per instance). Past the bound, the loop polls
        // without sleeping and comes back, so signals and pipes are served meanwhile.
        for _ in 0..64 {
            self.check_groups();
            let plan = plan::plan(&self.desired, &self.observed, Instant::now());
            if plan.actions.is_empty() {
                return (plan.wake_at, None);
            }
            for action in plan.actions {
                if let Action::Exit(code) = action {
                    return (None, Some(code));
                }
                self.perform(action);
            }
        }
        (Some(Instant::now()), None)
    }

    fn on_signals(&mut self) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for signo in pending {
            match signo {
                SIGCHLD => self.reap(),
                SIGTERM | SIGINT | SIGQUIT => self.shutdown(signo),
                SIGHUP => self.reload_now(),
                SIGUSR1 => match &self.files {
                    Some(files) => {
                        files.reopen();
                        self.output
                            .event("received SIGUSR1, reopening the log files");
                    }
                    None => self.output.event("received SIGUSR1 (no log_dir), ignored"),
                },
                other => self
                    .output
                    .event(&format!("received {}, ignored", signal_name(other))),
            }
        }
    }

    /// SIGTERM/SIGINT: graceful shutdown; a second one (or SIGQUIT): kill at once.
    fn shutdown(&mut self, signo: i32) {
        let name = signal_name(signo);
        self.record(Fact::ShutdownAsked {
            quit: signo == SIGQUIT,
        });
        if self.observed.shutdown.is_some_and(|s| s.force) {
            self.output
                .event(&format!("received {name} again, killing everything now"));
        } else {
            self.output.event(&format!("received {name}, stopping"));
        }
    }

    fn announce_exit(&self, code: i32) {
        let what = if self.observed.shutdown.is_some() {
            "all apps stopped"
        } else {
            "all apps finished"
        };
        self.output
            .event(&format!("{what}, exiting with code {code}"));
    }
}

pub fn signal_name(signo: i32) -> &'static str {
    Signal::try_from(signo)
        .map(|s| s.as_str())
        .unwrap_or("signal")
}

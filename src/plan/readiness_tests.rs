use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{AppSpec, Ecosystem, ReadySpec, Settings};
use crate::state::{observe, Ended, ExitStatus, Fact, NotifyMessage, Phase, Shutdown, Who};

fn app(name: &str, instances: u32) -> AppSpec {
    let mut a = AppSpec::new(name, "/bin/sleep", &["sleep", "1000"]);
    a.instances = instances;
    a
}

fn desired(apps: Vec<AppSpec>) -> Desired {
    Desired::new(Ecosystem {
        path: PathBuf::from("/tmp/ecosystem.toml"),
        settings: Settings::default(),
        apps,
    })
}

fn spawn(d: &Desired, o: &mut Observed, app: &str, index: u32, pid: i32, now: Instant) {
    let generation = d.generation(d.app(app).unwrap());
    let id = InstanceId::new(app, index);
    observe(
        o,
        Fact::Spawned {
            id,
            pid,
            generation,
        },
        now,
    );
}

fn notify_ready(o: &mut Observed, who: Who, now: Instant) {
    let message = NotifyMessage {
        ready: true,
        ..Default::default()
    };
    let fact = Fact::Notified {
        who,
        message,
        ready_counts: true,
    };
    observe(o, fact, now);
}

fn exited(o: &mut Observed, who: Who, spec: Option<&AppSpec>, code: i32, now: Instant) {
    let fact = Fact::Exited {
        who,
        status: ExitStatus::Code(code),
        group_alive: false,
        spec,
    };
    observe(o, fact, now);
}

fn slot(app: &str, index: u32) -> Who {
    Who::Slot(InstanceId::new(app, index))
}

#[test]
fn ready_when_every_instance_is() {
    let t0 = Instant::now();
    let mut web = app("web", 2);
    web.ready = ReadySpec::Notify;
    let d = desired(vec![web, app("db", 1)]);
    let mut o = Observed::default();
    let r = readiness(&d, &o, t0);
    assert!(!r.ready());
    assert_eq!(
        r.summary(),
        "0/3 ready; not ready: web.0 starting, web.1 starting, db.0 starting"
    );

    spawn(&d, &mut o, "web", 0, 10, t0);
    spawn(&d, &mut o, "web", 1, 11, t0);
    spawn(&d, &mut o, "db", 0, 12, t0);
    notify_ready(&mut o, slot("web", 0), t0);
    let r = readiness(&d, &o, t0);
    assert!(!r.ready());
    assert_eq!(r.summary(), "2/3 ready; not ready: web.1 starting");
    assert_eq!(
        r.body(),
        "[+] web.0 ready\n[-] web.1 starting\n[+] db.0 ready\n"
    );

    notify_ready(&mut o, slot("web", 1), t0);
    let r = readiness(&d, &o, t0);
    assert!(r.ready() && r.converged);
    assert_eq!(r.summary(), "3/3 ready");
}

#[test]
fn delay_readiness_comes_with_time() {
    let t0 = Instant::now();
    let mut a = app("a", 1);
    a.ready = ReadySpec::Delay(Duration::from_secs(2));
    let d = desired(vec![a]);
    let mut o = Observed::default();
    spawn(&d, &mut o, "a", 0, 10, t0);
    assert!(!readiness(&d, &o, t0 + Duration::from_secs(1)).ready());
    assert!(readiness(&d, &o, t0 + Duration::from_secs(2)).ready());
}

#[test]
fn a_clean_one_shot_counts_an_errored_one_does_not() {
    let t0 = Instant::now();
    let mut job = app("migrate", 1);
    job.restart = crate::config::RestartPolicy::Never;
    let d = desired(vec![job, app("web", 1)]);
    let mut o = Observed::default();
    spawn(&d, &mut o, "migrate", 0, 10, t0);
    spawn(&d, &mut o, "web", 0, 11, t0);
    let later = t0 + Duration::from_secs(5);
    exited(&mut o, slot("migrate", 0), d.app("migrate"), 0, later);
    let r = readiness(&d, &o, later);
    assert!(r.ready());
    assert_eq!(r.body(), "[+] migrate.0 exited\n[+] web.0 ready\n");

    exited(&mut o, slot("web", 0), None, 1, later);
    o.instances
        .get_mut(&InstanceId::new("web", 0))
        .unwrap()
        .phase = Phase::Ended(Ended {
        leftovers: None,
        stop: None,
        next: Next::Errored,
    });
    let r = readiness(&d, &o, later);
    assert!(!r.ready());
    assert_eq!(r.summary(), "1/2 ready; not ready: web.0 errored");
}

#[test]
fn held_instances_are_not_waited_for_and_many_missing_are_counted() {
    let t0 = Instant::now();
    let mut d = desired(vec![app("w", 6)]);
    d.holds.insert(InstanceId::new("w", 5));
    let o = Observed::default();
    let r = readiness(&d, &o, t0);
    assert_eq!(r.instances.len(), 5);
    assert_eq!(
        r.summary(),
        "0/5 ready; not ready: w.0 starting, w.1 starting, w.2 starting and 2 more"
    );
}

#[test]
fn shutdown_is_never_ready() {
    let t0 = Instant::now();
    let d = desired(vec![app("a", 1)]);
    let mut o = Observed::default();
    spawn(&d, &mut o, "a", 0, 10, t0);
    assert!(readiness(&d, &o, t0).ready());
    o.shutdown = Some(Shutdown {
        at: t0,
        force: false,
        exit_code: None,
    });
    let r = readiness(&d, &o, t0);
    assert!(!r.ready());
    assert_eq!(r.summary(), "stopping; 1/1 ready");
    assert!(r.body().ends_with("[-] supervise stopping\n"));
}

#[test]
fn a_rolling_update_is_not_converged_until_the_old_one_is_gone() {
    let t0 = Instant::now();
    let mut d = desired(vec![app("a", 1)]);
    let mut o = Observed::default();
    spawn(&d, &mut o, "a", 0, 10, t0);
    d.epochs.insert("a".into(), 1);
    let r = readiness(&d, &o, t0);
    assert!(r.ready() && !r.converged, "an outdated instance still runs");
    observe(&mut o, Fact::Replaced(InstanceId::new("a", 0)), t0);
    spawn(&d, &mut o, "a", 0, 11, t0);
    assert!(!readiness(&d, &o, t0).converged, "the old one is outgoing");
    o.outgoing.clear();
    assert!(readiness(&d, &o, t0).converged);
}

fn state(ok: bool, shutting_down: bool, converged: bool) -> Readiness {
    Readiness {
        instances: vec![InstanceReadiness {
            id: InstanceId::new("web", 0),
            ok,
            state: if ok { "ready" } else { "starting" },
        }],
        shutting_down,
        converged,
        config_error: false,
    }
}

#[test]
fn the_parent_hears_ready_reloading_and_stopping_in_order() {
    let mut told = Announced::default();
    assert_eq!(
        announce(&mut told, &state(false, false, true), 0, 1),
        ["STATUS=0/1 ready; not ready: web.0 starting"]
    );
    assert!(
        announce(&mut told, &state(false, false, true), 0, 1).is_empty(),
        "no news"
    );
    assert_eq!(
        announce(&mut told, &state(true, false, true), 0, 1),
        ["READY=1\nSTATUS=1/1 ready"]
    );
    assert!(
        announce(&mut told, &state(true, false, true), 0, 1).is_empty(),
        "once"
    );
    // A reload applied: RELOADING at once, READY when converged again.
    assert_eq!(
        announce(&mut told, &state(true, false, false), 1, 77),
        ["RELOADING=1\nMONOTONIC_USEC=77"]
    );
    assert!(announce(&mut told, &state(true, false, false), 1, 78).is_empty());
    assert_eq!(
        announce(&mut told, &state(true, false, true), 1, 79),
        ["READY=1\nSTATUS=1/1 ready"]
    );
    // A reload that changes nothing running converges in the same turn.
    assert_eq!(
        announce(&mut told, &state(true, false, true), 2, 80),
        [
            "RELOADING=1\nMONOTONIC_USEC=80",
            "READY=1\nSTATUS=1/1 ready"
        ]
    );
    assert_eq!(
        announce(&mut told, &state(true, true, true), 2, 81),
        ["STOPPING=1\nSTATUS=stopping; 1/1 ready"]
    );
    assert_eq!(
        announce(&mut told, &state(false, true, true), 2, 82),
        ["STATUS=stopping; 0/1 ready"]
    );
}

#[test]
fn a_reload_before_the_first_ready_is_not_announced() {
    let mut told = Announced::default();
    announce(&mut told, &state(false, false, true), 0, 1);
    assert_eq!(
        announce(&mut told, &state(false, false, true), 1, 2),
        Vec::<String>::new()
    );
}

//! `schedule` and `cron_restart` with a fake clock (wall and monotonic moving
//! together, from 06:59:30): the next time is a deadline, nothing polls, a run that
//! overlaps the next time is skipped, a job never makes supervise exit.

use super::*;
use crate::config::CronTimes;

fn job(name: &str, times: &str) -> AppSpec {
    let mut a = app(name, 2);
    a.schedule = Some(CronTimes::parse(times).unwrap());
    a
}

#[test]
fn a_job_waits_for_its_time_then_runs_each_instance() {
    let mut s = Sim::new(eco(vec![job("backup", "*/5 * * * *")]));
    // At start: the next time is computed, nothing is spawned.
    assert_eq!(s.step(), vec![Action::ArmSchedule("backup".into())]);
    assert_eq!(
        s.wake_at(),
        Some(s.now + Duration::from_secs(30)),
        "07:00:00"
    );
    s.advance(Duration::from_secs(29));
    assert!(s.step().is_empty());
    s.advance(Duration::from_secs(1));
    assert_eq!(
        s.step(),
        vec![
            Action::RunJob {
                app: "backup".into(),
                skip: false
            },
            Action::ArmSchedule("backup".into()),
            Action::Spawn(id("backup", 0)),
            Action::Spawn(id("backup", 1)),
        ]
    );
    assert_eq!(
        s.wake_at(),
        Some(s.now + Duration::from_secs(300)),
        "07:05:00"
    );
    // A clean exit ends the run (restart = "always" does not loop a job) and
    // supervise does not exit: the job runs again at its next time.
    for index in 0..2 {
        s.advance(ms(1500));
        assert_eq!(
            s.exit(&id("backup", index), ExitStatus::Code(0)),
            Next::Finished(ExitStatus::Code(0))
        );
    }
    assert!(s.step().is_empty());
    s.advance(Duration::from_secs(297));
    let acts = s.step();
    assert!(acts.contains(&Action::Spawn(id("backup", 0))), "{acts:?}");
    assert_eq!(s.obs.instances[&id("backup", 1)].restarts(), 1);
}

#[test]
fn a_failed_run_is_retried_by_on_failure_and_a_run_still_going_is_skipped() {
    let mut s = Sim::new(eco(vec![job("sync", "* * * * *")]));
    s.step();
    s.advance(Duration::from_secs(30));
    s.step();
    // sync.0 fails at once: retried after restart_delay (100ms), as on-failure does.
    s.advance(ms(10));
    assert!(matches!(
        s.exit(&id("sync", 0), ExitStatus::Code(1)),
        Next::Restart(_)
    ));
    s.advance(ms(100));
    assert_eq!(s.step(), vec![Action::Spawn(id("sync", 0))]);
    // Both still run at 07:01: that time is skipped (and logged by the runtime).
    s.advance(Duration::from_secs(60));
    let acts = s.step();
    assert_eq!(
        acts,
        vec![
            Action::RunJob {
                app: "sync".into(),
                skip: true
            },
            Action::ArmSchedule("sync".into()),
        ]
    );
    assert_eq!(s.pid(&id("sync", 1)), Some(102), "left alone");
}

#[test]
fn cron_restart_rolls_a_long_running_app_at_its_times() {
    let mut web = app("web", 1);
    web.cron_restart = Some(CronTimes::parse("0 7 * * *").unwrap());
    let mut s = Sim::new(eco(vec![web]));
    let acts = s.step();
    assert_eq!(
        acts,
        vec![
            Action::ArmSchedule("web".into()),
            Action::Spawn(id("web", 0))
        ],
        "a long-running app starts at once"
    );
    let old = s.pid(&id("web", 0)).unwrap();
    s.advance(Duration::from_secs(30));
    let acts = s.step();
    assert_eq!(acts[0], Action::ScheduledRestart("web".into()));
    assert!(acts.contains(&Action::Replace(id("web", 0))), "{acts:?}");
    assert!(
        acts.contains(&Action::Stop(Who::Old(old), Why::Asked)),
        "{acts:?}"
    );
    let next = s.obs.schedules["web"].at;
    assert_eq!(
        next,
        Some(s.now + Duration::from_secs(24 * 3600)),
        "tomorrow 07:00"
    );
}

#[test]
fn removing_a_schedule_forgets_its_time_and_idle_means_no_timer() {
    let mut s = Sim::new(eco(vec![job("backup", "@daily")]));
    s.step();
    assert!(s.wake_at().is_some());
    s.d = Desired::new(eco(vec![app("backup", 1)]));
    let acts = s.step();
    assert_eq!(
        acts,
        vec![
            Action::DropSchedule("backup".into()),
            Action::Spawn(id("backup", 0))
        ]
    );
    assert!(s.obs.schedules.is_empty());
    assert_eq!(s.wake_at(), None);
}

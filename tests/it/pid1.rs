//! PID 1 duties: orphans are reaped, as PID 1 of a pid namespace and as the child
//! subreaper (issue 3, point 7).

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::*;

fn orphan_config(h: &mut Harness) -> std::path::PathBuf {
    let config = format!(
        r#"
[apps.daemon]
command = {}
instances = 2
stop_timeout = "2s"
"#,
        app_cmd(&["--orphan", h.pids(), "--ready-line"])
    );
    h.write_config("eco.toml", &config)
}

/// Once both instances left their orphan and the orphans exited, supervise's only
/// descendants are the two instances: no orphan, alive or zombie, is left under it.
fn assert_orphans_reaped(h: &Harness, supervise: i32) {
    h.wait_for_lines(|l| l.contains("| ready pid="), 2, LONG);
    h.wait_for(|| h.orphan_pids().len() == 2, LONG);
    let settled = poll_until(
        || {
            let under = descendants(supervise);
            under.len() == 2 && under.iter().all(|&p| alive(p))
        },
        LONG,
    );
    let zombies = zombies_with_parent(supervise);
    assert!(
        zombies.is_empty(),
        "zombies left under supervise: {zombies:?}"
    );
    assert!(
        settled,
        "supervise should have exactly its 2 instances under it, has {:?}",
        descendants(supervise)
            .iter()
            .map(|&p| (p, stat(p).map(|s| s.state), cmdline(p)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn as_pid_1_orphans_are_reaped() {
    let mut h = Harness::new();
    let config = orphan_config(&mut h);
    if !h.start_unshare(&config) {
        return;
    }
    let supervise = h.supervise_pid();
    assert!(
        cmdline(supervise).is_some_and(|a| a[0].ends_with("supervise")),
        "the child of unshare should be supervise: {:?}",
        cmdline(supervise)
    );
    assert_orphans_reaped(&h, supervise);
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    assert!(!alive(supervise));
}

#[test]
fn as_subreaper_orphans_are_reaped() {
    let mut h = Harness::new();
    let config = orphan_config(&mut h);
    h.start(&config);
    let supervise = h.supervise_pid();
    assert_orphans_reaped(&h, supervise);
    // Here the markers carry real pids: each orphan is gone entirely, not a zombie.
    for orphan in h.orphan_pids() {
        assert!(
            poll_until(|| gone(orphan), Duration::from_secs(5)),
            "orphan {orphan} not reaped: {:?}",
            stat(orphan)
        );
    }
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

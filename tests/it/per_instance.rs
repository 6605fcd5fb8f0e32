//! Per-instance values (SPEC §8): `port` gives instance N the port `port + N` as `PORT`
//! and `{port}`, so each instance of a cluster can serve, and be probed, on its own port.

use std::fs;
use std::net::TcpListener;

use crate::support::*;

/// Two consecutive ports that were free a moment ago.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let first = free_port();
        if first < u16::MAX && TcpListener::bind(("127.0.0.1", first + 1)).is_ok() {
            return first;
        }
    }
    panic!("no two consecutive free ports");
}

#[test]
fn each_instance_serves_and_is_probed_on_its_own_port() {
    let mut h = Harness::new();
    let base = free_port_pair();
    let marker = h.path("unhealthy");
    let marker_arg = marker.to_str().unwrap().to_string();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\ninstances = 2\nport = {base}\n\
             ready = {{ http = \"http://127.0.0.1:{{port}}/health\" }}\n\
             health = {{ http = \"http://127.0.0.1:{{port}}/health\", interval = \"200ms\", \
             timeout = \"1s\", failures = 2 }}\n",
            app_cmd(&[
                "--pid-dir",
                h.pids(),
                "--serve-own",
                "--port",
                "{port}",
                "--unhealthy-file",
                &marker_arg,
            ])
        ),
    );
    h.start(&config);
    let pids = [h.wait_pid("web", 0), h.wait_pid("web", 1)];
    h.wait_for_event(|t| t.starts_with("web.1 is ready"), LONG);
    // Each instance answers on its own port, and says so.
    for (index, pid) in pids.iter().enumerate() {
        assert_eq!(
            served_by(base + index as u16),
            Some(*pid),
            "instance {index}"
        );
    }
    // Only web.1 turns unhealthy: only its own port is probed as failing.
    fs::write(&marker, format!("{}\n", pids[1])).unwrap();
    h.wait_for_event(|t| t == "web.1 is unhealthy, restarting it", LONG);
    let new = h.wait_pid_change("web", 1, pids[1], LONG);
    h.wait_for(|| served_by(base + 1) == Some(new), LONG);
    assert_eq!(served_by(base), Some(pids[0]));
    assert_eq!(h.starts("web", 0), vec![pids[0]]);
    assert_eq!(
        h.count_events(|t| t.starts_with("web.0 health check failed")),
        0,
        "{:?}",
        h.events()
    );
}

#[test]
fn an_unknown_placeholder_is_a_located_error() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        "[apps.web]\ncommand = [\"echo\", \"{app}\", \"{nope}\"]\nenv = { URL = \"x:{port}\" }\n",
    );
    let out = h.cli(&["check", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("eco.toml:2:29: apps.web.command[2]: unknown placeholder `{nope}`"),
        "{err}"
    );
    assert!(
        err.contains("apps.web.env.URL: `{port}` needs `port` on the app"),
        "{err}"
    );
}

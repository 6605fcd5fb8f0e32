//! `supervise top` in a real terminal (issue 13 item 5): tmux runs a shell at a fixed
//! size, the test types `supervise top` into it, reads the screen with `capture-pane`,
//! sends keys, and checks that the shell is usable again after `q`, Ctrl-C and a closed
//! terminal. Skipped, with a note, where tmux is missing (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

/// A private tmux server (its own socket in the test directory), killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// A tmux server with one 100x30 window running `sh` with a known prompt; None (and
    /// a note) when tmux is not installed.
    fn start(dir: &Path) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("note: tmux is not installed; skipping the terminal test of `top`");
            return None;
        }
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "30",
            "-s",
            "t",
            "env",
            "PS1=prompt$ ",
            "TERM=xterm-256color",
            "NO_COLOR=1",
            "sh",
        ]);
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend(keys);
        self.run(&args);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// Whether the pane shows the alternate screen (a full-screen program).
    fn alternate(&self) -> bool {
        self.run(&["display-message", "-p", "-t", "t", "#{alternate_on}"])
            .trim()
            == "1"
    }

    /// Read the screen until `cond` holds; panics with the last screen at the deadline.
    #[track_caller]
    fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LONG;
        loop {
            let screen = self.screen();
            if cond(&screen) {
                return screen;
            }
            if Instant::now() >= deadline {
                panic!("the screen never showed {what}:\n{screen}");
            }
            // A poll interval (each capture is a process), not a synchronisation sleep.
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// The RESTARTS column of `name`'s row: the row is `│> web.0  PID  STATE  READY
/// RESTARTS ...` (the marker only on the selected row).
fn restarts(screen: &str, name: &str) -> Option<u32> {
    let line = screen.lines().find(|l| l.contains(&format!(" {name} ")))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == name)?;
    words.get(at + 4)?.parse().ok()
}

/// The command line typed into the shell: top, then its exit status.
fn top_line(h: &Harness) -> String {
    format!(
        "{} top --socket {}; echo \"top exited $?\"",
        supervise_bin(),
        h.path("ctl.sock").display()
    )
}

/// The pid of the `supervise ... top` the shell runs (its command line names the test
/// directory through `--socket`).
fn top_pid(h: &Harness) -> Option<i32> {
    let dir = h.dir().to_str().unwrap().to_string();
    processes_with_cmdline(|a| {
        a.get(1).is_some_and(|l| l == "top") && a.iter().any(|x| x.contains(&dir))
    })
    .first()
    .copied()
}

#[test]
fn top_shows_instances_restarts_one_and_gives_the_terminal_back() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\ninstances = 2\n\n[apps.worker]\ncommand = {}\n",
            app_cmd(&["--pid-dir", h.pids(), "--print", "3"]),
            app_cmd(&["--pid-dir", h.pids()]),
        ),
    );
    h.start(&config);
    let web0 = h.wait_pid("web", 0);
    h.wait_pid("web", 1);
    h.wait_pid("worker", 0);
    let Some(tmux) = Tmux::start(h.dir()) else {
        return;
    };
    tmux.wait_screen("the prompt", |s| s.contains("prompt$"));

    // Rows for every instance, the graph and log panels of the selection, the help line.
    tmux.keys(&[&top_line(&h), "Enter"]);
    // (Waiting for the whole screen: a capture may fall in the middle of a redraw.)
    let wants = [
        "supervise top",
        "web cpu",
        "web memory",
        "web.0 last lines",
        "q quit",
    ];
    tmux.wait_screen("the instance rows, graphs, lines and help", |s| {
        ["web.0", "web.1", "worker.0"]
            .iter()
            .all(|n| restarts(s, n) == Some(0))
            && s.contains("running")
            && wants.iter().all(|w| s.contains(w))
    });
    assert!(tmux.alternate(), "top uses the alternate screen");
    tmux.wait_screen("web.0's output", |s| s.contains("line 3 of web.0"));

    // `r` restarts the selected instance (the first row): the count goes up on screen.
    tmux.keys(&["r"]);
    tmux.wait_screen("web.0 restarted once, web.1 not", |s| {
        restarts(s, "web.0") == Some(1) && restarts(s, "web.1") == Some(0)
    });
    h.wait_pid_change("web", 0, web0, LONG);

    // `q`: the normal screen again, the exit status 0, a shell that echoes what we type.
    tmux.keys(&["q"]);
    tmux.wait_screen("top's exit status", |s| s.contains("top exited 0"));
    assert!(!tmux.alternate(), "the alternate screen is left");
    tmux.keys(&["echo typed-$((6*7))", "Enter"]);
    tmux.wait_screen("the shell's answer", |s| s.contains("typed-42"));

    // Ctrl-C quits the same way.
    tmux.keys(&["clear", "Enter"]);
    tmux.keys(&[&top_line(&h), "Enter"]);
    tmux.wait_screen("the rows again", |s| restarts(s, "worker.0") == Some(0));
    tmux.keys(&["C-c"]);
    tmux.wait_screen("top's exit status", |s| s.contains("top exited 0"));
    assert!(!tmux.alternate());

    // A closed terminal (SIGHUP): top goes away instead of spinning on a dead tty.
    tmux.keys(&["clear", "Enter"]);
    tmux.keys(&[&top_line(&h), "Enter"]);
    tmux.wait_screen("the rows again", |s| restarts(s, "worker.0") == Some(0));
    let pid = top_pid(&h).expect("top is running");
    drop(tmux);
    assert!(
        poll_until(|| gone(pid) || !alive(pid), LONG),
        "top outlived its terminal"
    );
}

#[test]
fn top_refuses_without_a_terminal() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\n",
            app_cmd(&["--pid-dir", h.pids()])
        ),
    );
    h.start(&config);
    h.wait_pid("web", 0);
    // Like `supervise top | cat`: stdout is a pipe.
    let out = h.cli(&["top"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("top needs a terminal"), "{err}");
    assert!(out.stdout.is_empty(), "nothing drawn into the pipe");
}

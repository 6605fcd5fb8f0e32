//! CPU and memory of process groups from /proc, sampled only when asked (`status`,
//! a `max_memory` check): there is no timer here.
//!
//! An instance is its process group (supervise starts each instance as a group leader),
//! so its usage includes every child it forked that stayed in the group.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::time::{Duration, Instant};

use nix::unistd::SysconfVar;

/// Usage of one process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Resident memory of all members.
    pub rss_bytes: u64,
    /// CPU time used so far: utime + stime of all members, plus cutime + cstime (the
    /// CPU of their children that exited and were waited for, so the total does not
    /// drop when a short-lived child of the group ends).
    pub cpu: Duration,
    /// Members found.
    pub processes: usize,
}

/// The fields of /proc/PID/stat we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    pub pgrp: i32,
    /// utime + stime + cutime + cstime, in clock ticks.
    pub ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

/// Parse a /proc/PID/stat line. The command name (field 2) is in parentheses and may
/// itself contain spaces and parentheses, so the fields are split after the LAST `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    // Fields from 3 (state) on; field N is at index N - 3.
    let f: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    let num = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    let pgrp = f.get(5 - 3)?.parse().ok()?;
    let ticks = num(14)? + num(15)? + num(16).unwrap_or(0) + num(17).unwrap_or(0);
    // rss is signed in the kernel's format; a negative value never happens in practice.
    let rss_pages = f.get(24 - 3)?.parse::<i64>().ok()?.max(0) as u64;
    Some(Stat {
        pid,
        pgrp,
        ticks,
        rss_pages,
    })
}

/// Usage of the process group `pgid`, or None if it has no members.
pub fn group_usage(pgid: i32) -> Option<Usage> {
    groups_usage(&[pgid]).remove(&pgid)
}

/// Usage of many process groups with a single scan of /proc (one read of
/// /proc/PID/stat per process on the system). Groups without members are absent.
pub fn groups_usage(pgids: &[i32]) -> HashMap<i32, Usage> {
    let mut out: HashMap<i32, Usage> = HashMap::new();
    if pgids.is_empty() {
        return out;
    }
    let wanted: std::collections::HashSet<i32> = pgids.iter().copied().collect();
    let tick = clock_ticks_per_second();
    let page = page_size();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    let mut buf = String::with_capacity(512);
    let mut path = String::with_capacity(32);
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        path.clear();
        path.push_str("/proc/");
        path.push_str(name);
        path.push_str("/stat");
        buf.clear();
        // The process may have ended since the listing: skip it.
        let Ok(mut f) = fs::File::open(&path) else {
            continue;
        };
        if f.read_to_string(&mut buf).is_err() {
            continue;
        }
        let Some(st) = parse_stat(&buf) else { continue };
        if !wanted.contains(&st.pgrp) {
            continue;
        }
        let u = out.entry(st.pgrp).or_default();
        u.processes += 1;
        u.rss_bytes += st.rss_pages * page;
        u.cpu += ticks_to_duration(st.ticks, tick);
    }
    out
}

/// CPU use between two samples of a group's CPU time, in percent of one CPU (so a
/// busy process with 4 threads shows up to 400%, like `top`). 0 when no wall time
/// passed or the counter went down (members left the group).
pub fn cpu_percent(prev: (Duration, Instant), now: (Duration, Instant)) -> f64 {
    let wall = now.1.saturating_duration_since(prev.1).as_secs_f64();
    if wall <= 0.0 || now.0 < prev.0 {
        return 0.0;
    }
    (now.0 - prev.0).as_secs_f64() / wall * 100.0
}

fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    let per_second = per_second.max(1);
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

fn clock_ticks_per_second() -> u64 {
    sysconf(SysconfVar::CLK_TCK, 100)
}

fn page_size() -> u64 {
    sysconf(SysconfVar::PAGE_SIZE, 4096)
}

fn sysconf(var: SysconfVar, default: u64) -> u64 {
    match nix::unistd::sysconf(var) {
        Ok(Some(v)) if v > 0 => v as u64,
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_weird_command_name() {
        // comm `a) (b c) 9 9` — spaces, parentheses and digits.
        let line = "4242 (a) (b c) 9 9) S 1 777 777 0 -1 4194560 100 0 0 0 \
                    250 50 7 3 20 0 1 0 12345 10000000 321 18446744073709551615 \
                    0 0 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
        let st = parse_stat(line).unwrap();
        assert_eq!(
            st,
            Stat {
                pid: 4242,
                pgrp: 777,
                ticks: 250 + 50 + 7 + 3,
                rss_pages: 321
            }
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x"), None);
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(
            parse_stat("x (y) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22"),
            None
        );
    }

    #[test]
    fn our_own_group_is_found() {
        let pgid = nix::unistd::getpgrp().as_raw();
        // Burn a little CPU so the counter is not zero.
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let all = groups_usage(&[pgid, -5]);
        let u = all[&pgid];
        assert!(u.processes >= 1, "{u:?}");
        assert!(u.rss_bytes > 0, "{u:?}");
        assert!(u.cpu > Duration::ZERO, "{u:?}");
        assert!(!all.contains_key(&-5));
        assert!(group_usage(pgid).is_some());
        assert!(groups_usage(&[]).is_empty());
    }

    #[test]
    fn percent() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let p = cpu_percent((s(10), t), (s(11), t + s(2)));
        assert!((p - 50.0).abs() < 1e-9, "{p}");
        assert_eq!(cpu_percent((s(10), t), (s(11), t)), 0.0);
        assert_eq!(cpu_percent((s(10), t), (s(9), t + s(1))), 0.0);
        let p = cpu_percent((s(0), t), (s(3), t + s(1)));
        assert!((p - 300.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn ticks() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
        assert_eq!(ticks_to_duration(0, 0), Duration::ZERO);
    }
}

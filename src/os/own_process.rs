//! supervise's own CPU, memory, descriptors and start time, from /proc, for the
//! `process_*` metrics every Prometheus client exports. Read only when scraped.

use std::fs;
use std::time::Duration;

use nix::unistd::SysconfVar;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OwnProcess {
    /// User + system time of supervise itself (not of the children it reaped).
    pub cpu: Duration,
    pub rss_bytes: u64,
    pub open_fds: usize,
    /// Since the Unix epoch, in seconds.
    pub start_time: f64,
}

pub fn own_process() -> OwnProcess {
    let ticks = nix::unistd::sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let page = nix::unistd::sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let boot = fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| boot_time(&s))
        .unwrap_or(0.0);
    let mut own = parse(&stat, ticks, page, boot);
    own.open_fds = fs::read_dir("/proc/self/fd").map_or(0, |d| d.count().saturating_sub(1));
    own
}

/// The fields of /proc/self/stat we need (after the command name's last `)`).
fn parse(stat: &str, ticks_per_second: f64, page: u64, boot_time: f64) -> OwnProcess {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_ascii_whitespace()
        .collect();
    // Field N of proc(5) is at index N - 3.
    let num = |n: usize| fields.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    let cpu_ticks = num(14).unwrap_or(0) + num(15).unwrap_or(0);
    OwnProcess {
        cpu: Duration::from_secs_f64(cpu_ticks as f64 / ticks_per_second),
        rss_bytes: num(24).unwrap_or(0) * page,
        open_fds: 0,
        start_time: boot_time + num(22).unwrap_or(0) as f64 / ticks_per_second,
    }
}

/// `btime` of /proc/stat: when the machine booted, in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_it_needs() {
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 7 7 20 0 3 0 1000 \
                    12345678 300 18446744073709551615";
        let own = parse(stat, 100.0, 4096, 1_700_000_000.0);
        assert_eq!(own.cpu, Duration::from_secs(3));
        assert_eq!(own.rss_bytes, 300 * 4096);
        assert_eq!(own.start_time, 1_700_000_010.0);
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
    }

    #[test]
    fn reads_itself() {
        let own = own_process();
        assert!(own.rss_bytes > 0 && own.open_fds > 0 && own.start_time > 1e9);
    }
}

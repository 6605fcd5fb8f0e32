//! Durations, sizes and signal names, as written in the ecosystem file and on the
//! command line (`supervise signal TERM web`).

use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

/// `"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"`, `"1.5s"`, `"1m30s"`, `"100us"`.
/// A bare number is refused: the unit must be written.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "missing unit: write e.g. \"{s}s\" or \"{s}ms\" (units: ms, s, m, h, d)"
        ));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("expected a number before `{unit}`"))?;
        let scale = match unit.trim() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => return Err(format!("missing unit after {num} (units: ms, s, m, h, d)")),
            other => return Err(format!("unknown unit `{other}` (units: ms, s, m, h, d)")),
        };
        total += value * scale;
        rest = tail;
    }
    if !total.is_finite() || total > 1e12 {
        return Err("duration too large".to_string());
    }
    Ok(Duration::from_secs_f64(total))
}

/// The short human form: `"250ms"`, `"1.5s"`, `"2m"`, `"1m30s"`, `"1h"`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000 {
        return if nanos.is_multiple_of(1000) {
            format!("{}us", nanos / 1000)
        } else {
            format!("{nanos}ns")
        };
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_decimal(nanos as f64 / 1e6));
    }
    let secs = d.as_secs();
    if secs < 60 {
        return format!("{}s", trim_decimal(d.as_secs_f64()));
    }
    let mut out = String::new();
    let (days, hours, mins) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60);
    for (n, unit) in [(days, "d"), (hours, "h"), (mins, "m")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    let rest = (secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    if rest > 0.0 {
        out.push_str(&format!("{}s", trim_decimal(rest)));
    }
    out
}

/// At most three decimals, trailing zeros dropped.
fn trim_decimal(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `"512MiB"`, `"1G"`, `"100MB"`, `"1024"` (bytes).
///
/// Binary units (K, M, G, T and KiB, MiB, GiB, TiB) are powers of 1024, because that is
/// what `free`, `top` and PM2's `max_memory_restart` mean by them; decimal units (KB, MB,
/// GB, TB) are powers of 1000. Letters are not case-sensitive; a trailing `B` alone is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err("expected a number, then an optional unit (KiB, MiB, GiB, KB, MB, GB)".into());
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{num}` is not a number"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (units: KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ))
        }
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err("size too large".to_string());
    }
    if scale == 1 && num.contains('.') {
        return Err("a size in bytes must be a whole number".to_string());
    }
    Ok(bytes as u64)
}

/// `"SIGTERM"`, `"TERM"`, `"term"`, `"sigterm"` or a number such as `"15"`.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i32>()
            .ok()
            .and_then(|n| Signal::try_from(n).ok())
            .ok_or_else(|| format!("{s} is not a signal number"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| {
        format!("unknown signal `{s}` (e.g. SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGKILL)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("10s"), Ok(ms(10_000)));
        assert_eq!(parse_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("0s"), Ok(ms(0)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("10x")
            .unwrap_err()
            .contains("unknown unit `x`"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1..5s").is_err());
    }

    #[test]
    fn formatting() {
        let ms = Duration::from_millis;
        assert_eq!(format_duration(ms(250)), "250ms");
        assert_eq!(format_duration(ms(1500)), "1.5s");
        assert_eq!(format_duration(ms(10_000)), "10s");
        assert_eq!(format_duration(ms(120_000)), "2m");
        assert_eq!(format_duration(ms(90_000)), "1m30s");
        assert_eq!(format_duration(ms(3_600_000)), "1h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_micros(5)), "5us");
        for text in ["250ms", "1.5s", "2m", "1m30s", "1h", "1d2h"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10KiB"), Ok(10240));
        assert_eq!(parse_size("2kb"), Ok(2000));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("1.5").is_err());
    }

    #[test]
    fn signals() {
        for s in ["SIGTERM", "TERM", "term", "sigterm", "15"] {
            assert_eq!(parse_signal(s), Ok(Signal::SIGTERM), "{s}");
        }
        assert_eq!(parse_signal("SIGWINCH"), Ok(Signal::SIGWINCH));
        assert_eq!(parse_signal("usr1"), Ok(Signal::SIGUSR1));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(parse_signal("SIGFOO").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("999").is_err());
        assert!(parse_signal("").is_err());
    }
}

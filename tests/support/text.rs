//! Reading what supervise prints: delays (`250ms`, `1.5s`) and RFC 3339 timestamps.

use std::time::Duration;

/// Parse a delay as supervise prints it ("now", "250ms", "1.5s", "2m").
pub fn parse_delay(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "now" {
        return Some(Duration::ZERO);
    }
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "us" | "µs" => number / 1e6,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Whether `text` starts with an RFC 3339 date-time (`2024-05-01T12:00:00.123Z` or with
/// an offset, `T` or a space between date and time); returns the rest.
pub fn strip_rfc3339(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        range
            .clone()
            .all(|i| b.get(i).is_some_and(u8::is_ascii_digit))
    };
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19))
    {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => Some(&text[i + 1..]),
        Some(b'+' | b'-') => {
            if digits(i + 1..i + 3) && b.get(i + 3) == Some(&b':') && digits(i + 4..i + 6) {
                Some(&text[i + 6..])
            } else {
                None
            }
        }
        _ => None,
    }
}

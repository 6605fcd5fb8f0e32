//! Cron times (SPEC §8): `schedule` (an app run as a job at those times) and
//! `cron_restart` (a rolling restart at those times).
//!
//! Five fields (`minute hour day-of-month month day-of-week`) or a nickname (`@hourly`,
//! `@daily`, `@weekly`, `@monthly`, `@yearly`), parsed by `croner`: its Vixie-cron
//! semantics include daylight-saving changes, which it documents and which the tests
//! below pin down: a fixed time that falls in a spring-forward gap runs once, right
//! after the gap; a fixed time in a fall-back overlap runs once, at its first
//! occurrence. Times are supervise's local time zone (`TZ` honoured).
//!
//! Pure: the next time is a function of the pattern and a given "now", so the plan's
//! tests drive it with a fake clock.

use chrono::{DateTime, TimeZone};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A validated cron pattern, kept as written (it is what `status` and `diff` show).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CronTimes(String);

impl CronTimes {
    /// Checks `text`; the error says what is wrong in the user's terms.
    pub fn parse(text: &str) -> Result<CronTimes, String> {
        parse(text)?;
        Ok(CronTimes(text.trim().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first time strictly after `now`, in `now`'s time zone; `None` when the
    /// pattern never matches again (e.g. `0 0 30 2 *`).
    pub fn next_after<Tz: TimeZone>(&self, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        parse(&self.0).ok()?.find_next_occurrence(now, false).ok()
    }
}

impl std::fmt::Display for CronTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse(text: &str) -> Result<Cron, String> {
    let text = text.trim();
    if !text.starts_with('@') && text.split_whitespace().count() != 5 {
        return Err(format!(
            "expected five cron fields (minute hour day-of-month month day-of-week) or \
             @hourly/@daily/@weekly/@monthly/@yearly, found {:?}",
            text
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| format!("invalid cron pattern {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Utc};
    use chrono_tz::America::New_York;

    fn at<Tz: TimeZone>(tz: &Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Tz> {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap();
        tz.from_local_datetime(&naive).earliest().unwrap()
    }

    #[test]
    fn five_fields_and_nicknames() {
        let now = at(&Utc, 2026, 11, 30, 6, 59);
        let every5 = CronTimes::parse("*/5 * * * *").unwrap();
        assert_eq!(every5.next_after(&now), Some(at(&Utc, 2026, 11, 30, 7, 0)));
        let hourly = CronTimes::parse("@hourly").unwrap();
        assert_eq!(hourly.next_after(&now), Some(at(&Utc, 2026, 11, 30, 7, 0)));
        let daily = CronTimes::parse(" @daily ").unwrap();
        assert_eq!(daily.as_str(), "@daily");
        assert_eq!(daily.next_after(&now), Some(at(&Utc, 2026, 12, 1, 0, 0)));
        // Strictly after: a time that is now is the next one's predecessor.
        let on_the_minute = at(&Utc, 2026, 11, 30, 7, 0);
        assert_eq!(
            every5.next_after(&on_the_minute),
            Some(at(&Utc, 2026, 11, 30, 7, 5))
        );
        assert_eq!(
            CronTimes::parse("0 0 30 2 *").unwrap().next_after(&now),
            None
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "",
            "* * * *",
            "0 * * * * *",
            "61 * * * *",
            "* * * * funday",
            "@sometimes",
        ] {
            let e = CronTimes::parse(bad).unwrap_err();
            assert!(e.contains("cron"), "{bad:?}: {e}");
        }
    }

    /// New York springs forward on 2026-03-08: 02:00 EST becomes 03:00 EDT.
    #[test]
    fn spring_forward_neither_skips_nor_doubles_a_fixed_time() {
        let daily_0230 = CronTimes::parse("30 2 * * *").unwrap();
        let before = at(&New_York, 2026, 3, 7, 12, 0);
        let first = daily_0230.next_after(&before).unwrap();
        assert_eq!(first, at(&New_York, 2026, 3, 8, 3, 0)); // right after the gap
        let second = daily_0230.next_after(&first).unwrap();
        assert_eq!(second, at(&New_York, 2026, 3, 9, 2, 30));
        // The absolute time between them is what the loop sleeps: 23.5 hours.
        assert_eq!((second - first).num_minutes(), 23 * 60 + 30);
    }

    /// New York falls back on 2026-11-01: 02:00 EDT becomes 01:00 EST.
    #[test]
    fn fall_back_runs_a_fixed_time_once() {
        let daily_0130 = CronTimes::parse("30 1 * * *").unwrap();
        let before = at(&New_York, 2026, 10, 31, 12, 0);
        let first = daily_0130.next_after(&before).unwrap();
        assert_eq!(first.with_timezone(&Utc), at(&Utc, 2026, 11, 1, 5, 30)); // 01:30 EDT
        let second = daily_0130.next_after(&first).unwrap();
        assert_eq!(second, at(&New_York, 2026, 11, 2, 1, 30)); // not 01:30 EST again
                                                               // Absolute times keep moving forward across the change.
        let hourly = CronTimes::parse("0 * * * *").unwrap();
        let mut t = at(&New_York, 2026, 11, 1, 0, 30);
        let mut seen = Vec::new();
        for _ in 0..4 {
            t = hourly.next_after(&t).unwrap();
            seen.push(t.with_timezone(&Utc));
        }
        assert!(seen.windows(2).all(|w| w[1] > w[0]), "{seen:?}");
    }
}

//! Time as plain data: UTC timestamps, calendar days and budget durations.
//!
//! The crate never reads the clock; callers pass `now` in. Calendar math is
//! done here (proleptic Gregorian, UTC) so that budget resets land on the same
//! boundaries as LiteLLM's `get_next_standardized_reset_time`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::BudgetError;

const MILLIS_PER_SECOND: i64 = 1_000;
const MILLIS_PER_MINUTE: i64 = 60 * MILLIS_PER_SECOND;
const MILLIS_PER_HOUR: i64 = 60 * MILLIS_PER_MINUTE;
const MILLIS_PER_DAY: i64 = 24 * MILLIS_PER_HOUR;

/// A UTC instant in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// A UTC calendar day, counted in days since 1970-01-01. Prints as `YYYY-MM-DD`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

/// A `duration` / `budget_duration` value: `30s`, `30m`, `1h`, `1d`, `7d`,
/// `30d`, `1w`, `1mo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetDuration {
    /// `Ns`.
    Seconds(u32),
    /// `Nm`.
    Minutes(u32),
    /// `Nh`.
    Hours(u32),
    /// `Nd`.
    Days(u32),
    /// `Nw`.
    Weeks(u32),
    /// `Nmo`: calendar months.
    Months(u32),
}

impl Timestamp {
    /// Milliseconds since the epoch.
    pub fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Seconds since the epoch.
    pub fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(MILLIS_PER_SECOND))
    }

    /// Converts a system time (the server reads the clock, not this crate).
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => Self(-i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// The same instant as a system time.
    pub fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_millis(self.0.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_millis(self.0.unsigned_abs())
        }
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant plus a duration, saturating.
    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// The UTC day containing this instant.
    pub fn day(self) -> Day {
        Day(self.0.div_euclid(MILLIS_PER_DAY))
    }

    /// Milliseconds since the start of the UTC day.
    fn millis_of_day(self) -> i64 {
        self.0.rem_euclid(MILLIS_PER_DAY)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2024-06-14T22:48:36.594Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.millis_of_day();
        write!(
            f,
            "{}T{:02}:{:02}:{:02}.{:03}Z",
            self.day(),
            ms / MILLIS_PER_HOUR,
            ms % MILLIS_PER_HOUR / MILLIS_PER_MINUTE,
            ms % MILLIS_PER_MINUTE / MILLIS_PER_SECOND,
            ms % MILLIS_PER_SECOND
        )
    }
}

impl Day {
    /// The day for a calendar date; `None` for an invalid date.
    pub fn from_ymd(year: i64, month: u32, day: u32) -> Option<Day> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Day(days_from_civil(year, month, day)))
    }

    /// Year, month (1-12), day (1-31).
    pub fn ymd(self) -> (i64, u32, u32) {
        civil_from_days(self.0)
    }

    /// Midnight at the start of this day.
    pub fn start(self) -> Timestamp {
        Timestamp(self.0.saturating_mul(MILLIS_PER_DAY))
    }

    /// The next day.
    pub fn next(self) -> Day {
        Day(self.0 + 1)
    }

    /// Monday is 0, Sunday is 6.
    fn weekday_from_monday(self) -> i64 {
        // 1970-01-01 was a Thursday.
        (self.0 + 3).rem_euclid(7)
    }
}

impl fmt::Debug for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = self.ymd();
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

impl FromStr for Day {
    type Err = BudgetError;

    /// Parses `YYYY-MM-DD`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || BudgetError::InvalidDate(text.to_owned());
        let mut parts = text.splitn(3, '-');
        let year = parts.next().and_then(|p| p.parse::<i64>().ok());
        let month = parts.next().and_then(|p| p.parse::<u32>().ok());
        let day = parts.next().and_then(|p| p.parse::<u32>().ok());
        match (year, month, day) {
            (Some(y), Some(m), Some(d)) => Day::from_ymd(y, m, d).ok_or_else(invalid),
            _ => Err(invalid()),
        }
    }
}

impl Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl BudgetDuration {
    /// The instant this duration after `start`, for key expiry: exact, not
    /// aligned (`mo` adds calendar months, clamping the day of month).
    pub fn after(self, start: Timestamp) -> Timestamp {
        match self {
            BudgetDuration::Months(n) => shift_months(start, i64::from(n)),
            fixed => Timestamp(start.0.saturating_add(fixed.fixed_millis())),
        }
    }

    /// The instant this duration before `end` (retention cut-offs); `mo`
    /// subtracts calendar months.
    pub fn before(self, end: Timestamp) -> Timestamp {
        match self {
            BudgetDuration::Months(n) => shift_months(end, -i64::from(n)),
            fixed => Timestamp(end.0.saturating_sub(fixed.fixed_millis())),
        }
    }

    /// The next budget reset strictly after `now`, aligned like LiteLLM:
    /// `1d` the next midnight, `7d` next Monday, `30d` and `1mo` the first of
    /// next month, `Nd` today's midnight + N days, `Nh`/`Nm`/`Ns` the next
    /// multiple of N counted from midnight. `Nw` is next Monday plus N-1 weeks
    /// (LiteLLM resets `w` at midnight, which looks like a bug).
    pub fn next_reset(self, now: Timestamp) -> Timestamp {
        let today = now.day();
        let next = match self {
            BudgetDuration::Days(1) => today.next().start(),
            BudgetDuration::Days(7) | BudgetDuration::Weeks(1) => next_monday(today).start(),
            BudgetDuration::Weeks(n) => {
                Day(next_monday(today).0 + 7 * (i64::from(n.max(1)) - 1)).start()
            }
            BudgetDuration::Days(30) => first_of_month_after(today, 1),
            BudgetDuration::Days(n) => Day(today.0 + i64::from(n.max(1))).start(),
            BudgetDuration::Months(n) => first_of_month_after(today, n.max(1)),
            BudgetDuration::Hours(n) => aligned(now, MILLIS_PER_HOUR * i64::from(n.max(1))),
            BudgetDuration::Minutes(n) => aligned(now, MILLIS_PER_MINUTE * i64::from(n.max(1))),
            BudgetDuration::Seconds(n) => aligned(now, MILLIS_PER_SECOND * i64::from(n.max(1))),
        };
        if next > now {
            next
        } else {
            Timestamp(now.0 + 1)
        }
    }

    fn fixed_millis(self) -> i64 {
        match self {
            BudgetDuration::Seconds(n) => i64::from(n) * MILLIS_PER_SECOND,
            BudgetDuration::Minutes(n) => i64::from(n) * MILLIS_PER_MINUTE,
            BudgetDuration::Hours(n) => i64::from(n) * MILLIS_PER_HOUR,
            BudgetDuration::Days(n) => i64::from(n) * MILLIS_PER_DAY,
            BudgetDuration::Weeks(n) => i64::from(n) * 7 * MILLIS_PER_DAY,
            BudgetDuration::Months(n) => i64::from(n) * 30 * MILLIS_PER_DAY,
        }
    }
}

impl FromStr for BudgetDuration {
    type Err = BudgetError;

    /// Parses `(\d+)(mo|[smhdw])`. A bare number is rejected, as in LiteLLM.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || BudgetError::InvalidDuration(text.to_owned());
        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (digits, unit) = trimmed.split_at(digits_end);
        let count: u32 = digits.parse().map_err(|_| invalid())?;
        Ok(match unit {
            "s" => BudgetDuration::Seconds(count),
            "m" => BudgetDuration::Minutes(count),
            "h" => BudgetDuration::Hours(count),
            "d" => BudgetDuration::Days(count),
            "w" => BudgetDuration::Weeks(count),
            "mo" => BudgetDuration::Months(count),
            _ => return Err(invalid()),
        })
    }
}

impl fmt::Display for BudgetDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetDuration::Seconds(n) => write!(f, "{n}s"),
            BudgetDuration::Minutes(n) => write!(f, "{n}m"),
            BudgetDuration::Hours(n) => write!(f, "{n}h"),
            BudgetDuration::Days(n) => write!(f, "{n}d"),
            BudgetDuration::Weeks(n) => write!(f, "{n}w"),
            BudgetDuration::Months(n) => write!(f, "{n}mo"),
        }
    }
}

impl Serialize for BudgetDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BudgetDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn aligned(now: Timestamp, step: i64) -> Timestamp {
    let midnight = now.day().start().0;
    let into_day = now.0 - midnight;
    Timestamp(midnight + (into_day / step + 1) * step)
}

fn next_monday(today: Day) -> Day {
    Day(today.0 + 7 - today.weekday_from_monday())
}

fn first_of_month_after(today: Day, months: u32) -> Timestamp {
    let (year, month, _) = today.ymd();
    let index = year * 12 + i64::from(month - 1) + i64::from(months);
    Day(days_from_civil(
        index.div_euclid(12),
        (index.rem_euclid(12) + 1) as u32,
        1,
    ))
    .start()
}

fn shift_months(start: Timestamp, months: i64) -> Timestamp {
    let (year, month, day) = start.day().ymd();
    let index = year * 12 + i64::from(month - 1) + months;
    let (new_year, new_month) = (index.div_euclid(12), (index.rem_euclid(12) + 1) as u32);
    let new_day = day.min(days_in_month(new_year, new_month));
    Timestamp(
        days_from_civil(new_year, new_month, new_day) * MILLIS_PER_DAY + start.millis_of_day(),
    )
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        // `YYYY-MM-DDTHH:MM:SS`
        let (date, clock) = text.split_once('T').unwrap_or((text, "00:00:00"));
        let day: Day = date.parse().unwrap_or(Day(0));
        let parts: Vec<i64> = clock.split(':').filter_map(|p| p.parse().ok()).collect();
        Timestamp(
            day.start().0
                + parts[0] * MILLIS_PER_HOUR
                + parts[1] * MILLIS_PER_MINUTE
                + parts[2] * MILLIS_PER_SECOND,
        )
    }

    #[test]
    fn durations_parse_like_litellm() {
        let check = |text: &str, expected: Option<BudgetDuration>| {
            assert_eq!(text.parse::<BudgetDuration>().ok(), expected, "{text}");
        };
        check("30s", Some(BudgetDuration::Seconds(30)));
        check("30m", Some(BudgetDuration::Minutes(30)));
        check("1h", Some(BudgetDuration::Hours(1)));
        check("7d", Some(BudgetDuration::Days(7)));
        check("1w", Some(BudgetDuration::Weeks(1)));
        check("1mo", Some(BudgetDuration::Months(1)));
        check("30", None);
        check("d", None);
        check("5y", None);
        assert_eq!(BudgetDuration::Months(1).to_string(), "1mo");
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-800_000, -1, 0, 59, 11_016, 19_000, 20_000, 2_000_000] {
            let (y, m, d) = Day(days).ymd();
            assert_eq!(Day::from_ymd(y, m, d), Some(Day(days)));
        }
        assert_eq!(Day(0).to_string(), "1970-01-01");
        assert_eq!(
            at("2024-02-29T13:04:05").to_string(),
            "2024-02-29T13:04:05.000Z"
        );
        assert!("2023-02-29".parse::<Day>().is_err());
    }

    #[test]
    fn resets_align_to_litellm_boundaries() {
        let now = at("2024-06-14T22:48:36"); // a Friday
        let check = |duration: &str, expected: &str| {
            let duration: BudgetDuration = duration.parse().unwrap_or(BudgetDuration::Days(1));
            assert_eq!(duration.next_reset(now), at(expected), "{duration}");
        };
        check("1d", "2024-06-15T00:00:00");
        check("7d", "2024-06-17T00:00:00");
        check("1w", "2024-06-17T00:00:00");
        check("30d", "2024-07-01T00:00:00");
        check("1mo", "2024-07-01T00:00:00");
        check("3d", "2024-06-17T00:00:00");
        check("1h", "2024-06-14T23:00:00");
        check("5h", "2024-06-15T01:00:00");
        check("30m", "2024-06-14T23:00:00");
        check("30s", "2024-06-14T22:49:00");
        let december = at("2024-12-31T10:00:00");
        assert_eq!(
            BudgetDuration::Months(1).next_reset(december),
            at("2025-01-01T00:00:00")
        );
    }

    #[test]
    fn expiry_is_exact_and_months_clamp() {
        let start = at("2024-01-31T10:00:00");
        assert_eq!(
            BudgetDuration::Hours(2).after(start),
            at("2024-01-31T12:00:00")
        );
        assert_eq!(
            BudgetDuration::Months(1).after(start),
            at("2024-02-29T10:00:00")
        );
    }

    #[test]
    fn civil_dates_agree_with_a_day_by_day_walk() {
        // Walk forward from 1970-01-01 for 200 years and compare.
        let (mut year, mut month, mut day) = (1970i64, 1u32, 1u32);
        for days in 0..(200 * 366) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }
}

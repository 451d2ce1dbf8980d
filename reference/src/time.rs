//! Event time by hand: RFC 3339 timestamps and weekly schedules.
//!
//! Both are written from the definitions (proleptic Gregorian calendar, 1970-01-01 a Thursday)
//! rather than taken from a date crate, so that the reference shares no code with the engine.

/// Milliseconds in one day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of the civil date `y-m-d` (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads exactly `n` ASCII digits at `*pos`.
fn digits(b: &[u8], pos: &mut usize, n: usize) -> Option<i64> {
    let s = b.get(*pos..*pos + n)?;
    let mut v = 0i64;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    *pos += n;
    Some(v)
}

fn expect(b: &[u8], pos: &mut usize, allowed: &[u8]) -> Option<u8> {
    let c = *b.get(*pos)?;
    if allowed.contains(&c) {
        *pos += 1;
        Some(c)
    } else {
        None
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS(.f+)?(Z|±HH:MM)` into milliseconds since the Unix epoch.
///
/// `t` and `z` may be lower case (RFC 3339 §5.6 allows it). Fractions of any length are
/// truncated to milliseconds. Seconds run 00–59 (no leap second).
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut p = 0;
    let year = digits(b, &mut p, 4)?;
    expect(b, &mut p, b"-")?;
    let month = digits(b, &mut p, 2)?;
    expect(b, &mut p, b"-")?;
    let day = digits(b, &mut p, 2)?;
    expect(b, &mut p, b"Tt")?;
    let hour = digits(b, &mut p, 2)?;
    expect(b, &mut p, b":")?;
    let minute = digits(b, &mut p, 2)?;
    expect(b, &mut p, b":")?;
    let second = digits(b, &mut p, 2)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut millis = 0i64;
    if expect(b, &mut p, b".").is_some() {
        let start = p;
        while p < b.len() && b[p].is_ascii_digit() {
            if p - start < 3 {
                millis = millis * 10 + i64::from(b[p] - b'0');
            }
            p += 1;
        }
        let n = p - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_min = match expect(b, &mut p, b"Zz+-")? {
        b'Z' | b'z' => 0,
        sign => {
            let oh = digits(b, &mut p, 2)?;
            expect(b, &mut p, b":")?;
            let om = digits(b, &mut p, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if sign == b'-' { -m } else { m }
        }
    };
    if p != b.len() {
        return None;
    }
    let local =
        days_from_civil(year, month, day) * DAY_MS + hour * 3_600_000 + minute * 60_000 + second * 1000 + millis;
    Some(local - offset_min * 60_000)
}

/// Day index Mon=0 … Sun=6 of a day count since 1970-01-01 (a Thursday).
pub(crate) fn weekday(day: i64) -> u32 {
    // The value is in 0..7, so the cast cannot truncate.
    (day + 3).rem_euclid(7) as u32
}

/// One `DAYS HH:MM-HH:MM` entry: a set of weekdays (bit 0 = Monday) and a half-open minute range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScheduleEntry {
    days: u8,
    start_min: i64,
    end_min: i64,
}

/// A weekly schedule: the local times at which access to an area is normal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schedule {
    entries: Vec<ScheduleEntry>,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(name: &str) -> Option<u32> {
    let lower = name.trim().to_ascii_lowercase();
    DAY_NAMES.iter().position(|d| *d == lower).map(|i| i as u32)
}

fn parse_days(s: &str) -> Option<u8> {
    if s.eq_ignore_ascii_case("daily") {
        return Some(0x7f);
    }
    let mut mask = 0u8;
    for item in s.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                // A range may wrap over the week end (`Fri-Mon`).
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << day_index(item)?,
        }
    }
    Some(mask)
}

fn parse_hhmm(s: &str) -> Option<i64> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

impl Schedule {
    /// Parses `;`-separated `DAYS HH:MM-HH:MM` entries. Empty entries (a trailing `;`) are
    /// skipped; a schedule with no entry at all is an error. `24:00` is accepted as an end.
    pub(crate) fn parse(s: &str) -> Result<Schedule, String> {
        let mut entries = Vec::new();
        for raw in s.split(';') {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let bad = || format!("bad schedule entry {raw:?}");
            let (days, range) = raw.split_once(char::is_whitespace).ok_or_else(bad)?;
            let days = parse_days(days.trim()).ok_or_else(bad)?;
            let (start, end) = range.trim().split_once('-').ok_or_else(bad)?;
            let start_min = parse_hhmm(start).ok_or_else(bad)?;
            let end_min = parse_hhmm(end).ok_or_else(bad)?;
            if start_min >= 24 * 60 || end_min <= start_min {
                return Err(bad());
            }
            entries.push(ScheduleEntry { days, start_min, end_min });
        }
        if entries.is_empty() {
            return Err(format!("empty schedule {s:?}"));
        }
        Ok(Schedule { entries })
    }

    /// Whether local time `local_ms` (ms since 1970-01-01 00:00 local) is inside an entry.
    pub(crate) fn contains(&self, local_ms: i64) -> bool {
        let day = local_ms.div_euclid(DAY_MS);
        let ms_of_day = local_ms.rem_euclid(DAY_MS);
        let wd = weekday(day);
        self.entries
            .iter()
            .any(|e| e.days & (1 << wd) != 0 && ms_of_day >= e.start_min * 60_000 && ms_of_day < e.end_min * 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2025-11-22T08:00:00.123Z"), Some(1_763_798_400_123));
        assert_eq!(parse_rfc3339("2025-11-22T09:00:00.123+01:00"), Some(1_763_798_400_123));
        assert_eq!(parse_rfc3339("2025-11-22t07:30:00.1-00:30"), Some(1_763_798_400_100));
        assert_eq!(parse_rfc3339("2025-11-22T08:00:00.123456z"), Some(1_763_798_400_123));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_rfc3339("1969-12-31T23:00:00Z"), Some(-3_600_000));
    }

    #[test]
    fn rfc3339_rejects_malformed() {
        for s in [
            "",
            "2025-11-22",
            "2025-11-22T08:00:00",
            "2025-11-22 08:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-11-22T24:00:00Z",
            "2025-11-22T08:00:60Z",
            "2025-11-22T08:00:00.Z",
            "2025-11-22T08:00:00+0100",
            "2025-11-22T08:00:00Zx",
            "25-11-22T08:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }

    #[test]
    fn schedule_days_and_exclusive_end() {
        let s = Schedule::parse("Mon-Fri 07:00-19:00; Sat 10:00-12:00").expect("valid");
        // 1970-01-05 was a Monday.
        let monday = 4 * DAY_MS;
        assert!(!s.contains(monday + 7 * 3_600_000 - 1));
        assert!(s.contains(monday + 7 * 3_600_000));
        assert!(s.contains(monday + 19 * 3_600_000 - 1));
        assert!(!s.contains(monday + 19 * 3_600_000));
        let saturday = monday + 5 * DAY_MS;
        assert!(s.contains(saturday + 11 * 3_600_000));
        assert!(!s.contains(saturday + 12 * 3_600_000));
        assert!(!s.contains(saturday + DAY_MS + 11 * 3_600_000));
        let d = Schedule::parse("Daily 00:00-24:00").expect("valid");
        assert!(d.contains(monday - 1));
        let l = Schedule::parse("Mon,Wed 08:00-09:00").expect("valid");
        assert!(l.contains(monday + 2 * DAY_MS + 8 * 3_600_000));
        assert!(!l.contains(monday + DAY_MS + 8 * 3_600_000));
    }

    #[test]
    fn schedule_rejects_bad_entries() {
        for s in ["", "Mon", "Mon 09:00-08:00", "Xyz 08:00-09:00", "Mon 8:00-9:00"] {
            assert!(Schedule::parse(s).is_err(), "{s}");
        }
    }
}

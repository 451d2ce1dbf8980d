//! Area schedules: `;`-separated entries `DAYS HH:MM-HH:MM` (DESIGN §3).

use std::fmt;

/// A weekly schedule: a grant at a local time inside no entry is after-hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Bit `d` set for weekday `d` (0 = Monday).
    days: u8,
    /// Minutes after local midnight, start inclusive.
    start: u16,
    /// Minutes after local midnight, end exclusive.
    end: u16,
}

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Schedule {
    /// Parses a schedule string; the error says which part is wrong.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let mut entries = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (days, hours) = part
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("entry `{part}` is not `DAYS HH:MM-HH:MM`"))?;
            let days = parse_days(days.trim())?;
            let (start, end) = hours
                .trim()
                .split_once('-')
                .ok_or_else(|| format!("hours `{}` are not `HH:MM-HH:MM`", hours.trim()))?;
            let (start, end) = (parse_hhmm(start)?, parse_hhmm(end)?);
            if end <= start {
                return Err(format!("entry `{part}` ends before it starts"));
            }
            entries.push(Entry { days, start, end });
        }
        if entries.is_empty() {
            return Err("schedule is empty".into());
        }
        Ok(Schedule { entries })
    }

    /// True when local time `local_ms` (milliseconds since the epoch, already shifted by the site's
    /// UTC offset) falls inside an entry.
    pub fn contains(&self, local_ms: i64) -> bool {
        let minutes = local_ms.div_euclid(60_000);
        let day = minutes.div_euclid(1_440);
        // 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
        let weekday = (day + 3).rem_euclid(7) as u8;
        let minute = minutes.rem_euclid(1_440) as u16;
        self.entries.iter().any(|e| e.days & (1 << weekday) != 0 && e.start <= minute && minute < e.end)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let days: Vec<&str> = (0..7).filter(|d| e.days & (1 << d) != 0).map(|d| DAY_NAMES[d]).collect();
            write!(
                f,
                "{} {:02}:{:02}-{:02}:{:02}",
                days.join(","),
                e.start / 60,
                e.start % 60,
                e.end / 60,
                e.end % 60
            )?;
        }
        Ok(())
    }
}

fn day_index(name: &str) -> Result<u8, String> {
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .map(|i| i as u8)
        .ok_or_else(|| format!("unknown day `{name}`"))
}

fn parse_days(text: &str) -> Result<u8, String> {
    if text.eq_ignore_ascii_case("daily") {
        return Ok(0x7f);
    }
    let mut mask = 0u8;
    for item in text.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                if b < a {
                    return Err(format!("day range `{item}` runs backwards"));
                }
                for d in a..=b {
                    mask |= 1 << d;
                }
            }
            None => mask |= 1 << day_index(item)?,
        }
    }
    Ok(mask)
}

fn parse_hhmm(text: &str) -> Result<u16, String> {
    let bad = || format!("time `{text}` is not HH:MM");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    // 24:00 is allowed as an (exclusive) end of day.
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2025-11-24 was a Monday.
    const MON_0000: i64 = 1_763_942_400_000;

    #[test]
    fn weekday_hours_with_exclusive_end() {
        let s = Schedule::parse("Mon-Fri 07:00-19:00").expect("valid");
        assert!(!s.contains(MON_0000 + 6 * 3_600_000 + 59 * 60_000));
        assert!(s.contains(MON_0000 + 7 * 3_600_000));
        assert!(s.contains(MON_0000 + 19 * 3_600_000 - 1));
        assert!(!s.contains(MON_0000 + 19 * 3_600_000));
        // Saturday 10:00
        assert!(!s.contains(MON_0000 + 5 * 86_400_000 + 10 * 3_600_000));
    }

    #[test]
    fn lists_daily_and_several_entries() {
        let s = Schedule::parse("Mon,Wed 08:00-09:00; Daily 22:00-24:00").expect("valid");
        assert!(s.contains(MON_0000 + 8 * 3_600_000));
        assert!(!s.contains(MON_0000 + 86_400_000 + 8 * 3_600_000)); // Tuesday
        assert!(s.contains(MON_0000 + 6 * 86_400_000 + 23 * 3_600_000)); // Sunday 23:00
    }

    #[test]
    fn errors_name_the_bad_part() {
        assert!(Schedule::parse("Mon-Fri 19:00-07:00").unwrap_err().contains("ends before"));
        assert!(Schedule::parse("Funday 07:00-19:00").unwrap_err().contains("Funday"));
        assert!(Schedule::parse("Mon 7-19").unwrap_err().contains("HH:MM"));
        assert!(Schedule::parse("").is_err());
    }
}

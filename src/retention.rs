//! Retention policy: which snapshots `forget` keeps, and why.
//!
//! restic's semantics, which operators expect: snapshots are grouped by host and
//! paths; within a group, newest first, `--keep-last N` keeps the N newest, and each
//! `--keep-hourly/daily/weekly/monthly/yearly N` keeps the newest snapshot of each of
//! the N most recent periods that have one; `--keep-within D` keeps everything within
//! D of the group's newest snapshot (never of the clock, so a wrong clock deletes
//! nothing); `--keep-tag T` keeps every snapshot tagged T. A snapshot is kept if any
//! rule keeps it. One difference, documented in `forget --help`: periods are
//! calendar periods at a fixed UTC offset (`--utc-offset`, default UTC), where
//! restic uses the local time zone with its daylight-saving changes.
//!
//! Pure: no catalog, no vault. Order within a group is the order given (the catalog's
//! sequence order), not the snapshots' clocks.

use crate::model::SnapshotRecord;
use serde::Serialize;

/// What to keep.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Keep the N newest.
    pub last: usize,
    /// Keep the newest of each of the N most recent hours that have a snapshot.
    pub hourly: usize,
    /// … days.
    pub daily: usize,
    /// … ISO weeks (Monday to Sunday).
    pub weekly: usize,
    /// … months.
    pub monthly: usize,
    /// … years.
    pub yearly: usize,
    /// Keep every snapshot at most this many seconds older than the group's newest.
    pub within_seconds: Option<u64>,
    /// Keep every snapshot carrying one of these tags.
    pub tags: Vec<String>,
    /// Seconds east of UTC at which calendar periods are counted.
    pub utc_offset_seconds: i64,
}

impl Policy {
    /// True when no rule would keep anything: `forget` refuses to remove everything.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within_seconds.is_none()
            && self.tags.is_empty()
    }
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Snapshot id.
    pub id: String,
    /// Snapshot time (seconds since the epoch).
    pub time: i64,
    /// Host and paths: the group it was judged in.
    pub group: String,
    /// Kept by at least one rule.
    pub keep: bool,
    /// The rules that keep it (`last`, `daily 2026-11-28`, `within`, `tag T`, …).
    pub reasons: Vec<String>,
}

/// A calendar period a rule counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// Civil date (year, month, day) of a day number (days since 1970-01-01).
fn civil(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil, exact for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The period a time falls in, as a label that sorts and reads well.
fn period_of(time: i64, offset: i64, period: Period) -> String {
    let local = time + offset;
    let days = local.div_euclid(86_400);
    let (year, month, day) = civil(days);
    match period {
        Period::Hour => format!(
            "{year:04}-{month:02}-{day:02}T{:02}",
            local.rem_euclid(86_400) / 3600
        ),
        Period::Day => format!("{year:04}-{month:02}-{day:02}"),
        Period::Week => {
            // ISO 8601: the week belongs to the year of its Thursday.
            let monday_based = (days + 3).rem_euclid(7); // 1970-01-01 was a Thursday
            let thursday = days - monday_based + 3;
            let (iso_year, _, _) = civil(thursday);
            let jan1 = days_from_civil(iso_year, 1, 1);
            format!("{iso_year:04}-W{:02}", (thursday - jan1) / 7 + 1)
        }
        Period::Month => format!("{year:04}-{month:02}"),
        Period::Year => format!("{year:04}"),
    }
}

/// Day number of a civil date (inverse of [`civil`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The group a snapshot is judged in: host and paths.
fn group_of(snapshot: &SnapshotRecord) -> String {
    let mut paths: Vec<String> = snapshot.paths.iter().map(|p| p.escaped()).collect();
    paths.sort();
    format!("{} /{}", snapshot.host, paths.join(" /"))
}

/// Judge every snapshot (given oldest first, in sequence order).
pub fn judge(snapshots: &[SnapshotRecord], policy: &Policy) -> Vec<Decision> {
    let mut groups: Vec<(String, Vec<&SnapshotRecord>)> = Vec::new();
    for snapshot in snapshots {
        let group = group_of(snapshot);
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(snapshot),
            None => groups.push((group, vec![snapshot])),
        }
    }
    let rules = [
        (Period::Hour, policy.hourly, "hourly"),
        (Period::Day, policy.daily, "daily"),
        (Period::Week, policy.weekly, "weekly"),
        (Period::Month, policy.monthly, "monthly"),
        (Period::Year, policy.yearly, "yearly"),
    ];
    let mut decisions = Vec::new();
    for (group, members) in groups {
        // Newest first: the last in sequence order is the newest, whatever its clock says.
        let newest_time = members.last().map_or(0, |s| s.time);
        let mut left: Vec<usize> = rules.iter().map(|(_, n, _)| *n).collect();
        let mut last_period: Vec<Option<String>> = vec![None; rules.len()];
        let mut judged = Vec::new();
        for (rank, snapshot) in members.iter().rev().enumerate() {
            let mut reasons = Vec::new();
            if rank < policy.last {
                reasons.push("last".to_string());
            }
            for (i, (period, _, name)) in rules.iter().enumerate() {
                if left[i] == 0 {
                    continue;
                }
                let label = period_of(snapshot.time, policy.utc_offset_seconds, *period);
                if last_period[i].as_ref() != Some(&label) {
                    reasons.push(format!("{name} {label}"));
                    last_period[i] = Some(label);
                    left[i] -= 1;
                }
            }
            if let Some(within) = policy.within_seconds {
                if newest_time.saturating_sub(snapshot.time) <= within as i64 {
                    reasons.push("within".to_string());
                }
            }
            for tag in &policy.tags {
                if snapshot.tags.contains(tag) {
                    reasons.push(format!("tag {tag}"));
                }
            }
            judged.push(Decision {
                id: snapshot.id.to_string(),
                time: snapshot.time,
                group: group.clone(),
                keep: !reasons.is_empty(),
                reasons,
            });
        }
        judged.reverse();
        decisions.extend(judged);
    }
    decisions
}

/// Parse `+HH:MM` / `-HH:MM` (or `Z`) into seconds east of UTC.
pub fn parse_utc_offset(text: &str) -> Option<i64> {
    if text == "Z" || text == "UTC" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':').unwrap_or((rest, "0"));
    let (hours, minutes): (i64, i64) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SnapshotId;
    use crate::model::{PathBytes, SnapshotStats};

    /// Seconds since the epoch of a UTC date and time.
    fn at(year: i64, month: u32, day: u32, hour: i64) -> i64 {
        days_from_civil(year, month, day) * 86_400 + hour * 3600
    }

    fn snapshot(time: i64, host: &str, tags: &[&str]) -> SnapshotRecord {
        SnapshotRecord {
            id: SnapshotId::random(),
            time,
            host: host.into(),
            paths: vec![PathBytes(b"srv".to_vec())],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            parent: None,
            tree: Vec::new(),
            stats: SnapshotStats::default(),
            warnings: Vec::new(),
            warning_count: 0,
        }
    }

    /// Which of `times` (oldest first, one host) the policy keeps, by index.
    fn kept(times: &[i64], policy: &Policy) -> Vec<usize> {
        let snapshots: Vec<_> = times.iter().map(|t| snapshot(*t, "h", &[])).collect();
        judge(&snapshots, policy)
            .iter()
            .enumerate()
            .filter(|(_, d)| d.keep)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn calendar_arithmetic_matches_known_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(days_from_civil(2000, 2, 29)), (2000, 2, 29));
        assert_eq!(civil(days_from_civil(2038, 1, 19)), (2038, 1, 19));
        assert_eq!(civil(-1), (1969, 12, 31));
        // ISO weeks at year edges: 2020-12-31 is in 2020-W53, 2021-01-03 too,
        // 2021-01-04 starts 2021-W01; 2024-12-30 is already 2025-W01.
        assert_eq!(period_of(at(2020, 12, 31, 12), 0, Period::Week), "2020-W53");
        assert_eq!(period_of(at(2021, 1, 3, 12), 0, Period::Week), "2020-W53");
        assert_eq!(period_of(at(2021, 1, 4, 0), 0, Period::Week), "2021-W01");
        assert_eq!(period_of(at(2024, 12, 30, 0), 0, Period::Week), "2025-W01");
        assert_eq!(
            period_of(at(2026, 11, 28, 23), 0, Period::Hour),
            "2026-11-28T23"
        );
    }

    #[test]
    fn gfs_keep_sets_are_exact() {
        // Nightly at 02:00 UTC from 2026-09-20 to 2026-11-28 (70 nights).
        let nights: Vec<i64> = (0..70).map(|n| at(2026, 9, 20, 2) + n * 86_400).collect();
        let last = nights.len() - 1;
        let cases: Vec<(&str, Policy, Vec<usize>)> = vec![
            (
                "last 3",
                Policy {
                    last: 3,
                    ..Policy::default()
                },
                vec![last - 2, last - 1, last],
            ),
            (
                "daily 7",
                Policy {
                    daily: 7,
                    ..Policy::default()
                },
                (last - 6..=last).collect(),
            ),
            (
                // Newest of each ISO week: the Sundays (the 28th is a Saturday, the
                // newest of its own week).
                "weekly 3",
                Policy {
                    weekly: 3,
                    ..Policy::default()
                },
                vec![last - 13, last - 6, last],
            ),
            (
                // Newest of November (the 28th), October (the 31st), September (the 30th).
                "monthly 3",
                Policy {
                    monthly: 3,
                    ..Policy::default()
                },
                vec![10, 41, last],
            ),
            (
                "daily 2 + weekly 2 overlap",
                Policy {
                    daily: 2,
                    weekly: 2,
                    ..Policy::default()
                },
                vec![last - 6, last - 1, last],
            ),
            (
                "within 3 days of the newest",
                Policy {
                    within_seconds: Some(3 * 86_400),
                    ..Policy::default()
                },
                (last - 3..=last).collect(),
            ),
            (
                "yearly 5: one year so far",
                Policy {
                    yearly: 5,
                    ..Policy::default()
                },
                vec![last],
            ),
        ];
        for (name, policy, expected) in cases {
            assert_eq!(kept(&nights, &policy), expected, "{name}");
        }
    }

    #[test]
    fn periods_follow_the_utc_offset() {
        // 23:30 UTC on the 27th and 00:30 UTC on the 28th: two days in UTC, one day at
        // +02:00 (01:30 and 02:30 on the 28th) and at -02:00 (21:30 and 22:30 on the 27th).
        let times = [at(2026, 11, 27, 23) + 1800, at(2026, 11, 28, 0) + 1800];
        let daily = |offset| Policy {
            daily: 5,
            utc_offset_seconds: offset,
            ..Policy::default()
        };
        assert_eq!(kept(&times, &daily(0)), vec![0, 1]);
        assert_eq!(kept(&times, &daily(2 * 3600)), vec![1]);
        assert_eq!(kept(&times, &daily(-2 * 3600)), vec![1]);
        assert_eq!(parse_utc_offset("+02:00"), Some(7200));
        assert_eq!(parse_utc_offset("-05:30"), Some(-19_800));
        assert_eq!(parse_utc_offset("Z"), Some(0));
        assert_eq!(parse_utc_offset("02:00"), None);
        assert_eq!(parse_utc_offset("+25:00"), None);
    }

    #[test]
    fn order_is_by_sequence_not_clock_and_groups_are_separate() {
        // The newest run's clock says 1970: it is still the newest (T30).
        let times = [at(2026, 11, 26, 2), at(2026, 11, 27, 2), 86_400];
        assert_eq!(
            kept(
                &times,
                &Policy {
                    last: 1,
                    ..Policy::default()
                }
            ),
            vec![2]
        );
        // Within counts back from the newest snapshot's own time, never from "now":
        // snapshots whose clocks are later than the newest one's are kept (a clock that
        // jumped back keeps more, never less).
        let within = Policy {
            within_seconds: Some(7 * 86_400),
            ..Policy::default()
        };
        assert_eq!(kept(&times, &within), vec![0, 1, 2]);
        // Two hosts: last 1 keeps one of each; tags keep across rules.
        let snapshots = vec![
            snapshot(at(2026, 11, 1, 0), "a", &["monthly-offsite"]),
            snapshot(at(2026, 11, 2, 0), "b", &[]),
            snapshot(at(2026, 11, 3, 0), "a", &[]),
            snapshot(at(2026, 11, 4, 0), "b", &[]),
        ];
        let policy = Policy {
            last: 1,
            tags: vec!["monthly-offsite".into()],
            ..Policy::default()
        };
        let decisions = judge(&snapshots, &policy);
        let keep: Vec<(&str, bool)> = decisions.iter().map(|d| (&d.group[..1], d.keep)).collect();
        // Group by group: a's two (the tagged one and the newest), then b's newest.
        assert_eq!(keep, [("a", true), ("a", true), ("b", false), ("b", true)]);
        assert_eq!(decisions[0].reasons, ["tag monthly-offsite"]);
        assert!(Policy::default().is_empty());
    }
}

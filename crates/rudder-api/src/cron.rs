//! Cron schedules as Kubernetes' CronJob controller reads them: the
//! five-field syntax and the descriptors of robfig/cron v3
//! (`cron.ParseStandard`, parser.go), the search for the next activation of
//! its `SpecSchedule.Next` (spec.go) and `ConstantDelaySchedule.Next`
//! (constantdelay.go), and the time zones of Go's `time` package that the
//! search walks in: TZif files (zoneinfo_read.go) with their POSIX TZ footer
//! (zoneinfo.go `tzset`), and `time.Date`'s way of placing a wall-clock time
//! (time.go).
//!
//! Instants are seconds since the Unix epoch (UTC); cron fields match the
//! wall clock of a [`Zone`]. Go's behaviour around daylight saving time is
//! kept, as robfig's own tests pin it: a wall time that does not exist (the
//! hour skipped in spring) is never matched, so a job at 02:30 does not run
//! on the day Berlin jumps from 02:00 to 03:00, and a job inside the hour
//! repeated in autumn runs twice.
//!
//! Kubernetes refuses `TZ=`/`CRON_TZ=` in `spec.schedule` (batch validation
//! `validateScheduleFormat`, which looks for `"TZ"` anywhere in the string,
//! see [`TZ_IN_SCHEDULE`]) and instead prefixes `TZ=<spec.timeZone> ` itself
//! before parsing (cronjob controller `formatSchedule`); without a time zone
//! the controller's own local zone applies, which is the `tz` argument of
//! [`Schedule::next_after`].

use std::io::ErrorKind;
use std::path::Path;

/// Kubernetes' message for a schedule that mentions `TZ` (pkg/apis/batch/
/// validation `validateScheduleFormat`, where the test is
/// `strings.Contains(schedule, "TZ")` on the raw string).
pub const TZ_IN_SCHEDULE: &str = "cannot use TZ or CRON_TZ in schedule, use timeZone field instead";

/// Kubernetes' message for `timeZone: Local` (batch validation
/// `validateTimeZone`).
pub const LOCAL_TIME_ZONE: &str =
    "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones";

/// Kubernetes' message for `timeZone: ""` (batch validation
/// `validateTimeZone`).
pub const EMPTY_TIME_ZONE: &str = "timeZone must be nil or non-empty string";

// ---------------------------------------------------------------------------
// Schedules (robfig/cron v3 parser.go, spec.go, constantdelay.go)
// ---------------------------------------------------------------------------

/// Set in a field's bits when the field was written `*` or `?` (spec.go
/// `starBit`); it decides how day-of-month and day-of-week combine.
const STAR_BIT: u64 = 1 << 63;

/// Instants further than this from the epoch (about a million years) are
/// refused by [`Schedule::next_after`] so that no arithmetic can overflow.
const MAX_ABS_INSTANT: i64 = 1 << 45;

/// A bound on the steps of one [`Schedule::next_after`] search. robfig's
/// loop always ends through its five-year limit; the bound only guards the
/// controller against a zone table that would make it spin. The slowest real
/// search (an empty minute list, `", * * * *"`, walked for five years) takes
/// about three million steps.
const MAX_SEARCH_STEPS: u32 = 10_000_000;

/// The range of one field and its names (spec.go `bounds`).
#[derive(Debug)]
struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const SECONDS: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
/// Day of week: 0–6 only, Sunday is 0 (robfig v3 refuses 7).
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// The bit sets of a crontab line (spec.go `SpecSchedule`). The standard
/// parser has no seconds field: `second` is always bit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpecSchedule {
    second: u64,
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A crontab line or one of the `@yearly`…`@hourly` descriptors.
    Spec(SpecSchedule),
    /// `@every <duration>`, in whole seconds (constantdelay.go
    /// `ConstantDelaySchedule`).
    Every(i64),
}

/// A parsed schedule, as `cron.ParseStandard` returns it.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    /// The zone of a `TZ=`/`CRON_TZ=` prefix; `None` when there was none or
    /// it named `Local` (robfig's `time.Local`: the zone of the time given
    /// to `Next`).
    location: Option<Zone>,
    tz_prefix: bool,
}

/// Parses a schedule as robfig/cron v3 `ParseStandard` does (parser.go
/// `Parser.Parse` with `Minute | Hour | Dom | Month | Dow | Descriptor`),
/// with its error messages.
///
/// Accepted: five whitespace-separated fields (minute, hour, day of month,
/// month, day of week), each a comma-separated list of `*`, `?`, `n`,
/// `a-b`, `*/s`, `a-b/s` or `a/s` (`a` to the maximum), months `jan`–`dec`
/// and days `sun`–`sat` in any case; the descriptors `@yearly`,
/// `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` and
/// `@every <Go duration>`; and a leading `TZ=<zone> ` or `CRON_TZ=<zone> `.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty spec string".to_owned());
    }

    let mut rest = spec;
    let mut location = None;
    let tz_prefix = spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=");
    if tz_prefix {
        let eq = spec.find('=').unwrap_or(0);
        let Some(space) = spec.find(' ') else {
            // robfig slices `spec[eq+1:-1]` here and panics.
            return Err(format!(
                "provided bad location {}: no schedule follows the time zone",
                &spec[eq + 1..]
            ));
        };
        let name = spec.get(eq + 1..space).unwrap_or_default();
        location =
            go_load_location(name).map_err(|e| format!("provided bad location {name}: {e}"))?;
        rest = spec[space..].trim();
    }

    let kind = if rest.starts_with('@') {
        parse_descriptor(rest)?
    } else {
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields.as_slice() else {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        };
        Kind::Spec(SpecSchedule {
            second: get_field("0", &SECONDS)?,
            minute: get_field(minute, &MINUTES)?,
            hour: get_field(hour, &HOURS)?,
            dom: get_field(dom, &DOM)?,
            month: get_field(month, &MONTHS)?,
            dow: get_field(dow, &DOW)?,
        })
    };
    Ok(Schedule {
        kind,
        location,
        tz_prefix,
    })
}

impl Schedule {
    /// Whether the schedule began with `TZ=` or `CRON_TZ=`, which robfig
    /// accepts and Kubernetes refuses on create (see [`TZ_IN_SCHEDULE`]; the
    /// API server's own test is the wider `schedule.contains("TZ")`, which
    /// also covers schedules that then fail to parse).
    pub fn has_tz_prefix(&self) -> bool {
        self.tz_prefix
    }

    /// The zone named by a `TZ=`/`CRON_TZ=` prefix, which overrides the zone
    /// given to [`Schedule::next_after`] (spec.go `Next`: `t.In(s.Location)`).
    pub fn location(&self) -> Option<&Zone> {
        self.location.as_ref()
    }

    /// The first activation strictly after `t` (Unix seconds), reading the
    /// fields on the wall clock of `tz` (or of the prefix's zone), as
    /// robfig's `SpecSchedule.Next` and `ConstantDelaySchedule.Next` do.
    /// `None` when nothing matches within five years (robfig's zero time),
    /// or for instants more than a million years from the epoch.
    pub fn next_after(&self, t: i64, tz: &Zone) -> Option<i64> {
        if !(-MAX_ABS_INSTANT..=MAX_ABS_INSTANT).contains(&t) {
            return None;
        }
        match self.kind {
            Kind::Every(delay) => t.checked_add(delay),
            Kind::Spec(spec) => spec_next(&spec, t, self.location.as_ref().unwrap_or(tz)),
        }
    }
}

/// parser.go `parseDescriptor`: the named schedules, then `@every`.
fn parse_descriptor(descriptor: &str) -> Result<Kind, String> {
    // Minute 0 and hour 0, the first day and month, or all of a field.
    let (m, h, d, mo) = (
        1 << MINUTES.min,
        1 << HOURS.min,
        1 << DOM.min,
        1 << MONTHS.min,
    );
    let named = match descriptor {
        "@yearly" | "@annually" => Some((m, h, d, mo, all(&DOW))),
        "@monthly" => Some((m, h, d, all(&MONTHS), all(&DOW))),
        "@weekly" => Some((m, h, all(&DOM), all(&MONTHS), 1 << DOW.min)),
        "@daily" | "@midnight" => Some((m, h, all(&DOM), all(&MONTHS), all(&DOW))),
        "@hourly" => Some((m, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW))),
        _ => None,
    };
    if let Some((minute, hour, dom, month, dow)) = named {
        let second = 1 << SECONDS.min;
        return Ok(Kind::Spec(SpecSchedule {
            second,
            minute,
            hour,
            dom,
            month,
            dow,
        }));
    }
    if let Some(duration) = descriptor.strip_prefix("@every ") {
        let nanos = parse_go_duration(duration)
            .map_err(|e| format!("failed to parse duration {descriptor}: {e}"))?;
        return Ok(Kind::Every(every_seconds(nanos)));
    }
    Err(format!("unrecognized descriptor: {descriptor}"))
}

/// constantdelay.go `Every`: at least one second, fractions of a second
/// dropped.
fn every_seconds(nanos: i64) -> i64 {
    const SECOND: i64 = 1_000_000_000;
    nanos.max(SECOND) / SECOND
}

/// parser.go `getField`: a comma-separated list of ranges. Empty items are
/// skipped (`strings.FieldsFunc`), so `,` alone is a field matching nothing.
fn get_field(field: &str, r: &Bounds) -> Result<u64, String> {
    let mut bits = 0;
    for expr in field.split(',').filter(|e| !e.is_empty()) {
        bits |= get_range(expr, r)?;
    }
    Ok(bits)
}

/// parser.go `getRange`: `*`, `?`, `n`, `a-b`, each optionally `/step`.
/// A step above 1 clears the star bit, so `*/2` in day-of-month counts as a
/// restriction; `n/step` runs from `n` to the maximum. Anything after a
/// leading `*-` is ignored, as in robfig.
fn get_range(expr: &str, r: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single_digit = low_and_high.len() == 1;

    let (start, mut end, mut extra);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        start = r.min;
        end = r.max;
        extra = STAR_BIT;
    } else {
        start = parse_int_or_name(low_and_high[0], r.names)?;
        end = match low_and_high.as_slice() {
            [_] => start,
            [_, high] => parse_int_or_name(high, r.names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        extra = 0;
    }

    let step = match range_and_step.as_slice() {
        [_] => 1,
        [_, step] => {
            let step = must_parse_int(step)?;
            if single_digit {
                end = r.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };

    if start < r.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            r.min
        ));
    }
    if end > r.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            r.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(get_bits(start, end, step) | extra)
}

/// parser.go `parseIntOrName`: names are matched lower-cased.
fn parse_int_or_name(expr: &str, names: &[(&str, u64)]) -> Result<u64, String> {
    let lower = expr.to_lowercase();
    if let Some(&(_, n)) = names.iter().find(|(name, _)| *name == lower) {
        return Ok(n);
    }
    must_parse_int(expr)
}

/// parser.go `mustParseInt`: Go's `strconv.Atoi`, negatives refused.
fn must_parse_int(expr: &str) -> Result<u64, String> {
    let num = go_atoi(expr).map_err(|e| format!("failed to parse int from {expr}: {e}"))?;
    u64::try_from(num).map_err(|_| format!("negative number ({num}) not allowed: {expr}"))
}

/// parser.go `getBits`: the values `min..=max` stepping by `step`.
/// Callers have checked `min <= max <= 59` and `step >= 1`.
fn get_bits(min: u64, max: u64, step: u64) -> u64 {
    if step == 1 {
        let below_max = !u64::MAX.checked_shl((max + 1) as u32).unwrap_or(0);
        return below_max & u64::MAX.checked_shl(min as u32).unwrap_or(0);
    }
    let mut bits = 0;
    let mut i = min;
    while i <= max {
        bits |= 1 << i;
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    bits
}

/// parser.go `all`: every value of the field, plus the star bit.
fn all(r: &Bounds) -> u64 {
    get_bits(r.min, r.max, 1) | STAR_BIT
}

/// spec.go `dayMatches`: if either day field was written with a star, both
/// must match; if both are restricted, either may.
fn day_matches(s: &SpecSchedule, w: &WallClock) -> bool {
    let dom_match = s.dom & (1 << w.day) != 0;
    let dow_match = s.dow & (1 << w.weekday) != 0;
    if s.dom & STAR_BIT != 0 || s.dow & STAR_BIT != 0 {
        dom_match && dow_match
    } else {
        dom_match || dow_match
    }
}

/// spec.go `SpecSchedule.Next`, step for step: find the month, then the day
/// (correcting midnights that daylight saving moved), the hour, the minute
/// and the second, starting over (`goto WRAP`) whenever a field wraps, and
/// giving up five years after the start.
fn spec_next(s: &SpecSchedule, t: i64, loc: &Zone) -> Option<i64> {
    // Start at the upcoming second (instants here are whole seconds).
    let mut t = t + 1;
    // Whether a field has been incremented (and the smaller ones zeroed).
    let mut added = false;
    let year_limit = loc.wall_clock(t).year + 5;
    let mut steps = 0u32;
    let mut step = || {
        steps += 1;
        steps <= MAX_SEARCH_STEPS
    };

    'wrap: loop {
        let mut w = loc.wall_clock(t);
        if w.year > year_limit || !step() {
            return None;
        }

        // The month: if it has to move, start from the first of the month.
        while s.month & (1 << w.month) == 0 {
            if !step() {
                return None;
            }
            if !added {
                added = true;
                t = loc.date(w.year, i64::from(w.month), 1, 0, 0, 0);
                w = loc.wall_clock(t);
            }
            t = loc.add_date(&w, 0, 1, 0);
            w = loc.wall_clock(t);
            if w.month == 1 {
                continue 'wrap;
            }
        }

        // The day. Midnight may not exist (Sao Paulo used to skip from 00:00
        // to 01:00): robfig pulls an hour 1–12 back to midnight and pushes an
        // hour 13–23 forward to the next one.
        while !day_matches(s, &w) {
            if !step() {
                return None;
            }
            if !added {
                added = true;
                t = loc.date(w.year, i64::from(w.month), i64::from(w.day), 0, 0, 0);
                w = loc.wall_clock(t);
            }
            t = loc.add_date(&w, 0, 0, 1);
            w = loc.wall_clock(t);
            if w.hour != 0 {
                let hour = i64::from(w.hour);
                t += if hour > 12 {
                    (24 - hour) * 3600
                } else {
                    -hour * 3600
                };
                w = loc.wall_clock(t);
            }
            if w.day == 1 {
                continue 'wrap;
            }
        }

        // The hour, walked in real hours: a skipped hour is never seen and a
        // repeated one is seen twice.
        while s.hour & (1 << w.hour) == 0 {
            if !step() {
                return None;
            }
            if !added {
                added = true;
                let (y, m, d, h) = (w.year, w.month, w.day, w.hour);
                t = loc.date(y, i64::from(m), i64::from(d), i64::from(h), 0, 0);
            }
            t += 3600;
            w = loc.wall_clock(t);
            if w.hour == 0 {
                continue 'wrap;
            }
        }

        while s.minute & (1 << w.minute) == 0 {
            if !step() {
                return None;
            }
            if !added {
                added = true;
                // Go's `Truncate(time.Minute)` works on the instant, not on
                // the wall clock.
                t -= t.rem_euclid(60);
            }
            t += 60;
            w = loc.wall_clock(t);
            if w.minute == 0 {
                continue 'wrap;
            }
        }

        while s.second & (1 << w.second) == 0 {
            if !step() {
                return None;
            }
            // `Truncate(time.Second)` changes nothing on whole seconds.
            added = true;
            t += 1;
            w = loc.wall_clock(t);
            if w.second == 0 {
                continue 'wrap;
            }
        }

        return Some(t);
    }
}

// ---------------------------------------------------------------------------
// Go's strconv.Atoi and time.ParseDuration, with their error texts
// ---------------------------------------------------------------------------

/// Go's `strconv.Atoi`: an optional sign and decimal digits, within `i64`.
/// Errors read `strconv.Atoi: parsing "x": invalid syntax` or `... value out
/// of range`.
fn go_atoi(s: &str) -> Result<i64, String> {
    let syntax = || {
        format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            go_strconv_quote(s)
        )
    };
    let range = || {
        format!(
            "strconv.Atoi: parsing {}: value out of range",
            go_strconv_quote(s)
        )
    };
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(syntax());
    }
    // strconv.ParseUint: a syntax error where a non-digit comes first, a
    // range error where the value overflows first.
    let mut n: u64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return Err(syntax());
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or_else(range)?;
    }
    if neg {
        0i64.checked_sub_unsigned(n).ok_or_else(range)
    } else {
        i64::try_from(n).map_err(|_| range())
    }
}

/// Go's `strconv.Quote`, for the texts that reach it here (no whitespace:
/// fields are split on it). Printability is approximated by "not a control
/// character".
fn go_strconv_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() && (c as u32) < 0x10000 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `quote` of Go's time package: bytes of non-ASCII and control
/// characters as `\xNN`, `"` and `\` escaped.
fn go_time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if (c as u32) >= 0x80 || (c as u32) < 0x20 {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Go's `time.ParseDuration` (time/format.go), in nanoseconds:
/// `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with the units ns, us, µs, μs, ms, s,
/// m and h, or a bare `0`.
fn parse_go_duration(orig: &str) -> Result<i64, String> {
    const LIMIT: u64 = 1 << 63;
    let invalid = || format!("time: invalid duration {}", go_time_quote(orig));

    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next()
        && (c == '-' || c == '+')
    {
        neg = c == '-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }

    let mut d: u64 = 0;
    while !s.is_empty() {
        // The next character must be [0-9.].
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // [0-9]*
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut v: u64 = 0;
        for b in s[..int_len].bytes() {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(b - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        let pre = int_len > 0;
        s = &s[int_len..];

        // (\.[0-9]*)?
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(after_dot) = s.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for b in after_dot[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                if f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(b - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = frac_len > 0;
            s = &after_dot[frac_len..];
        }
        if !pre && !post {
            // No digits, as in ".s" or "-.s".
            return Err(invalid());
        }

        // The unit: everything up to the next [0-9.].
        let unit_len = s
            .bytes()
            .take_while(|&b| b != b'.' && !b.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                go_time_quote(orig)
            ));
        }
        let (u, tail) = s.split_at(unit_len);
        s = tail;
        let unit: u64 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_time_quote(u),
                    go_time_quote(orig)
                ));
            }
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // As Go: float64 keeps fractions of hours nanosecond-accurate.
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        d += v;
        if d > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok(0i64.checked_sub_unsigned(d).unwrap_or(i64::MIN));
    }
    i64::try_from(d).map_err(|_| invalid())
}

// ---------------------------------------------------------------------------
// Time zones (Go time/zoneinfo.go, zoneinfo_read.go, time.go)
// ---------------------------------------------------------------------------

/// Where Go looks for zone files on Unix (time/zoneinfo_unix.go
/// `platformZoneSources`), after `$ZONEINFO`.
const ZONE_SOURCES: [&str; 4] = [
    "/usr/share/zoneinfo/",
    "/usr/share/lib/zoneinfo/",
    "/usr/lib/locale/TZ/",
    "/etc/zoneinfo/",
];

/// Go's limit on a zone file (zoneinfo_read.go `maxFileSize`).
const MAX_ZONE_FILE: usize = 10 << 20;

const BAD_DATA: &str = "malformed time zone information";

/// A time zone: Go's `time.Location`, loaded from a TZif file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    name: String,
    /// Local time types (TZif `ttinfo`); empty for [`Zone::utc`].
    types: Vec<LocalType>,
    /// Transitions, ascending; a zone file without any gets one at the
    /// beginning of time, as Go adds.
    transitions: Vec<Transition>,
    /// The POSIX TZ footer, for instants after the last transition; `None`
    /// when absent or when Go's `tzset` would not parse it.
    extend: Option<PosixTz>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LocalType {
    /// Seconds east of UTC.
    offset: i32,
    is_dst: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transition {
    when: i64,
    /// Index into `Zone::types`.
    index: usize,
}

/// The offset in force at an instant and the span it is known to hold for
/// (Go's `lookup` results `offset, start, end`), which `time.Date` uses.
#[derive(Debug, Clone, Copy)]
struct Period {
    offset: i32,
    start: i64,
    end: i64,
}

/// A wall-clock reading of an instant in a zone, as Go's `Time` accessors
/// (`Date`, `Clock`, `Weekday`) give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    pub year: i64,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 is Sunday.
    pub weekday: u32,
    /// Seconds east of UTC.
    pub offset: i32,
}

impl Zone {
    /// UTC (Go's `time.UTC`).
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".to_owned(),
            types: Vec::new(),
            transitions: Vec::new(),
            extend: None,
        }
    }

    /// Loads a CronJob's `spec.timeZone` with the checks and messages of
    /// Kubernetes' batch validation `validateTimeZone` (not empty; each
    /// `/`-separated part 1–14 of `[A-Za-z0-9._+-]`, not `.` or `..`, not
    /// starting with `-`; not `Local` in any case), then as Go's
    /// `time.LoadLocation` does: `UTC` built in, otherwise the TZif file
    /// under `$ZONEINFO` or `/usr/share/zoneinfo` (and Go's other Unix
    /// directories). An unknown name gives `unknown time zone <name>`.
    pub fn load(name: &str) -> Result<Zone, String> {
        if name.is_empty() {
            return Err(EMPTY_TIME_ZONE.to_owned());
        }
        let valid_part = |p: &str| {
            (1..=14).contains(&p.len())
                && p != "."
                && p != ".."
                && !p.starts_with('-')
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        };
        if !name.split('/').all(valid_part) {
            return Err(format!("unknown time zone {name}"));
        }
        if name.eq_ignore_ascii_case("Local") {
            return Err(LOCAL_TIME_ZONE.to_owned());
        }
        go_load_location(name)?.ok_or_else(|| LOCAL_TIME_ZONE.to_owned())
    }

    /// Builds a zone from the bytes of a TZif file (Go's
    /// `time.LoadLocationFromTZData`): versions 1 to 4, using the 64-bit
    /// data of version 2 and later, and the POSIX TZ footer. Errors read
    /// `malformed time zone information`, as Go's.
    pub fn from_tzif(name: &str, data: &[u8]) -> Result<Zone, String> {
        parse_tzif(name, data).ok_or_else(|| BAD_DATA.to_owned())
    }

    /// The name the zone was loaded under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The offset from UTC, in seconds east, in force at the instant `utc`.
    pub fn offset_at(&self, utc: i64) -> i32 {
        self.lookup(utc).offset
    }

    /// The wall clock of the instant `utc` in this zone.
    pub fn wall_clock(&self, utc: i64) -> WallClock {
        let offset = self.offset_at(utc);
        let local = utc.saturating_add(i64::from(offset));
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        WallClock {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs % 3600 / 60,
            second: secs % 60,
            weekday: (days + 4).rem_euclid(7) as u32,
            offset,
        }
    }

    /// The instant of a wall-clock time in this zone, as Go's `time.Date`
    /// computes it: out-of-range fields carry over (month 13 is January of
    /// the next year, day 32 the next month's first…), and the offset is the
    /// one in force at the wall time read as UTC, unless the instant that
    /// gives lies outside that offset's span, in which case it is the offset
    /// at that instant. For times a transition skips or repeats, the result
    /// depends on the side of Greenwich, as in Go: in Berlin the skipped
    /// 02:30 is 03:30 CEST and the repeated 02:30 the later (CET) one; in
    /// New York the skipped 02:30 is 01:30 EST and the repeated 01:30 the
    /// earlier (EDT) one.
    pub fn date(
        &self,
        year: i64,
        month: i64,
        day: i64,
        hour: i64,
        minute: i64,
        second: i64,
    ) -> i64 {
        let (year, month) = (i128::from(year), i128::from(month));
        let year = year + (month - 1).div_euclid(12);
        let month = (month - 1).rem_euclid(12) + 1;
        let days = days_from_civil(year, month, i128::from(day));
        let unix =
            days * 86_400 + i128::from(hour) * 3600 + i128::from(minute) * 60 + i128::from(second);
        let unix = i64::try_from(unix).unwrap_or(if unix < 0 { i64::MIN } else { i64::MAX });

        // Look the offset up as if the wall time were UTC; if the instant
        // that gives falls outside the span of that offset, the offset of
        // that instant is the one to use.
        let period = self.lookup(unix);
        let mut offset = i64::from(period.offset);
        if offset != 0 {
            let utc = unix.saturating_sub(offset);
            if utc < period.start || utc >= period.end {
                offset = i64::from(self.lookup(utc).offset);
            }
        }
        unix.saturating_sub(offset)
    }

    /// Go's `Time.AddDate`: the wall clock `w` moved by whole years, months
    /// and days, through [`Zone::date`].
    fn add_date(&self, w: &WallClock, years: i64, months: i64, days: i64) -> i64 {
        self.date(
            w.year + years,
            i64::from(w.month) + months,
            i64::from(w.day) + days,
            i64::from(w.hour),
            i64::from(w.minute),
            i64::from(w.second),
        )
    }

    /// zoneinfo.go `Location.lookup`.
    fn lookup(&self, sec: i64) -> Period {
        if self.types.is_empty() {
            return Period {
                offset: 0,
                start: i64::MIN,
                end: i64::MAX,
            };
        }
        let tx = &self.transitions;
        match tx.first() {
            Some(first) if sec >= first.when => {}
            _ => {
                let offset = self.types[self.lookup_first_zone()].offset;
                let end = tx.first().map_or(i64::MAX, |t| t.when);
                return Period {
                    offset,
                    start: i64::MIN,
                    end,
                };
            }
        }
        // The last transition at or before `sec`.
        let next = tx.partition_point(|t| t.when <= sec);
        let current = tx[next - 1];
        let end = tx.get(next).map_or(i64::MAX, |t| t.when);
        if next == tx.len()
            && let Some(extend) = &self.extend
        {
            return extend.lookup(current.when, sec);
        }
        Period {
            offset: self.types[current.index].offset,
            start: current.when,
            end,
        }
    }

    /// zoneinfo.go `lookupFirstZone`: the type for times before the first
    /// transition.
    fn lookup_first_zone(&self) -> usize {
        // An unused first type is the one.
        if !self.transitions.iter().any(|t| t.index == 0) {
            return 0;
        }
        // If the first transition is to daylight time, the standard type
        // closest before it.
        if let Some(first) = self.transitions.first()
            && self.types[first.index].is_dst
            && let Some(i) = (0..first.index).rev().find(|&i| !self.types[i].is_dst)
        {
            return i;
        }
        // Otherwise the first standard type, or the first of all.
        self.types.iter().position(|t| !t.is_dst).unwrap_or(0)
    }
}

/// Go's `time.LoadLocation`: `""` and `UTC` are UTC, `Local` is `None`
/// (robfig then uses the zone of the time it is given); names with `..` or
/// a leading slash are refused; otherwise the first TZif file found under
/// `$ZONEINFO` and [`ZONE_SOURCES`].
fn go_load_location(name: &str) -> Result<Option<Zone>, String> {
    if name.is_empty() || name == "UTC" {
        return Ok(Some(Zone::utc()));
    }
    if name == "Local" {
        return Ok(None);
    }
    if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
        return Err("time: invalid location name".to_owned());
    }
    let env_dir = std::env::var("ZONEINFO")
        .ok()
        .filter(|d| !d.is_empty() && !d.ends_with(".zip"));
    let mut first_err = None;
    for dir in env_dir.iter().map(String::as_str).chain(ZONE_SOURCES) {
        match read_zone_file(&Path::new(dir).join(name)) {
            Ok(Some(data)) => match Zone::from_tzif(name, &data) {
                Ok(zone) => return Ok(Some(zone)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            },
            Ok(None) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| format!("unknown time zone {name}")))
}

/// Reads a zone file: `Ok(None)` when it does not exist, errors worded as
/// the system errors Go reports.
fn read_zone_file(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path) {
        Ok(data) if data.len() > MAX_ZONE_FILE => {
            Err(format!("time: file {} is too large", path.display()))
        }
        Ok(data) => Ok(Some(data)),
        Err(e) => match e.kind() {
            ErrorKind::NotFound => Ok(None),
            ErrorKind::IsADirectory => Err("is a directory".to_owned()),
            ErrorKind::NotADirectory => Err("not a directory".to_owned()),
            ErrorKind::PermissionDenied => Err("permission denied".to_owned()),
            _ => Err(e.to_string()),
        },
    }
}

/// A cursor over TZif bytes (zoneinfo_read.go `dataIO`).
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Some(head)
    }

    fn be32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn counts(&mut self) -> Option<[usize; 6]> {
        let mut n = [0; 6];
        for c in &mut n {
            *c = usize::try_from(self.be32()?).ok()?;
        }
        Some(n)
    }
}

/// zoneinfo_read.go `LoadLocationFromTZData`.
fn parse_tzif(name: &str, data: &[u8]) -> Option<Zone> {
    // The header counts, in file order.
    const UT_LOCAL: usize = 0;
    const STD_WALL: usize = 1;
    const LEAP: usize = 2;
    const TIME: usize = 3;
    const TYPES: usize = 4;
    const CHARS: usize = 5;

    let mut d = Reader { data };
    if d.take(4)? != b"TZif" {
        return None;
    }
    let version = match d.take(16)?[0] {
        0 => 1,
        b'2' => 2,
        b'3' => 3,
        b'4' => 4,
        _ => return None,
    };
    let mut n = d.counts()?;

    // Version 2 and later repeat the data with 64-bit times after the
    // 32-bit block: skip that block and the second header's magic and
    // version, and read the counts again.
    let mut size = 4;
    if version > 1 {
        let skip = n[TIME] * 4
            + n[TIME]
            + n[TYPES] * 6
            + n[CHARS]
            + n[LEAP] * 8
            + n[STD_WALL]
            + n[UT_LOCAL]
            + 4
            + 16;
        d.take(skip)?;
        n = d.counts()?;
        size = 8;
    }

    let mut times = Reader {
        data: d.take(n[TIME].checked_mul(size)?)?,
    };
    let indices = d.take(n[TIME])?;
    let mut type_data = Reader {
        data: d.take(n[TYPES].checked_mul(6)?)?,
    };
    let abbrev = d.take(n[CHARS])?;
    d.take(n[LEAP].checked_mul(size + 4)?)?;
    d.take(n[STD_WALL])?;
    d.take(n[UT_LOCAL])?;

    // The footer: a POSIX TZ string between newlines.
    let rest = d.data;
    let extend = match rest {
        [b'\n', footer @ .., b'\n'] if rest.len() > 2 => {
            std::str::from_utf8(footer).ok().and_then(parse_posix_tz)
        }
        _ => None,
    };

    if n[TYPES] == 0 {
        return None;
    }
    let mut types = Vec::with_capacity(n[TYPES]);
    for _ in 0..n[TYPES] {
        let offset = type_data.be32()? as i32;
        let flags = type_data.take(2)?;
        if usize::from(flags[1]) >= abbrev.len() {
            return None;
        }
        types.push(LocalType {
            offset,
            is_dst: flags[0] != 0,
        });
    }

    let mut transitions = Vec::with_capacity(n[TIME].max(1));
    for &index in indices {
        let when = if size == 8 {
            let hi = times.be32()?;
            let lo = times.be32()?;
            ((u64::from(hi) << 32) | u64::from(lo)) as i64
        } else {
            i64::from(times.be32()? as i32)
        };
        let index = usize::from(index);
        if index >= types.len() {
            return None;
        }
        transitions.push(Transition { when, index });
    }
    if transitions.is_empty() {
        // A fixed zone such as Etc/GMT+5: one transition covering all time.
        transitions.push(Transition {
            when: i64::MIN,
            index: 0,
        });
    }

    Some(Zone {
        name: name.to_owned(),
        types,
        transitions,
        extend,
    })
}

/// A POSIX TZ string as Go's `tzset` reads it, e.g. `CET-1CEST,M3.5.0,
/// M10.5.0/3`. Offsets are seconds east of UTC (the string's are west).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PosixTz {
    /// No daylight saving (`IST-5:30`, `<+0330>-3:30`, `UTC0`).
    Fixed { offset: i32 },
    Dst {
        std_offset: i32,
        dst_offset: i32,
        /// Start of daylight time, in standard time.
        start: Rule,
        /// End of daylight time, in daylight time.
        end: Rule,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleKind {
    /// `Jn`: day 1–365, February 29 never counted.
    Julian(i64),
    /// `n`: day 0–365, February 29 counted.
    DayOfYear(i64),
    /// `Mm.w.d`: weekday `d` (0 Sunday) of week `w` (5 = last) of month `m`.
    MonthWeekDay { month: i64, week: i64, day: i64 },
}

/// A transition rule: the day and the local time of day (default 02:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    kind: RuleKind,
    time: i64,
}

/// zoneinfo.go `tzset`, the parsing half: `None` where Go's would fail.
fn parse_posix_tz(s: &str) -> Option<PosixTz> {
    let (_, s) = tzset_name(s)?;
    let (std_west, s) = tzset_offset(s)?;
    let std_offset = i32::try_from(-std_west).ok()?;
    if s.is_empty() || s.starts_with(',') {
        // No daylight saving time (anything after a comma is ignored).
        return Some(PosixTz::Fixed { offset: std_offset });
    }

    let (_, s) = tzset_name(s)?;
    let (dst_offset, s) = if s.is_empty() || s.starts_with(',') {
        (std_offset + 3600, s)
    } else {
        let (dst_west, s) = tzset_offset(s)?;
        (i32::try_from(-dst_west).ok()?, s)
    };

    // Default rules per tzcode (the US rules).
    let s = if s.is_empty() { ",M3.2.0,M11.1.0" } else { s };
    // The TZ definition does not mention ';' but tzcode accepts it.
    let s = s.strip_prefix(',').or_else(|| s.strip_prefix(';'))?;
    let (start, s) = tzset_rule(s)?;
    let s = s.strip_prefix(',')?;
    let (end, s) = tzset_rule(s)?;
    if !s.is_empty() {
        return None;
    }
    Some(PosixTz::Dst {
        std_offset,
        dst_offset,
        start,
        end,
    })
}

/// zoneinfo.go `tzsetName`: three or more characters up to a digit, sign
/// or comma, or anything between `<` and `>`.
fn tzset_name(s: &str) -> Option<(&str, &str)> {
    if s.is_empty() {
        return None;
    }
    if let Some(quoted) = s.strip_prefix('<') {
        let close = quoted.find('>')?;
        return Some((&quoted[..close], &quoted[close + 1..]));
    }
    for (i, c) in s.char_indices() {
        if c.is_ascii_digit() || matches!(c, ',' | '-' | '+') {
            return if i < 3 {
                None
            } else {
                Some((&s[..i], &s[i..]))
            };
        }
    }
    if s.len() < 3 { None } else { Some((s, "")) }
}

/// zoneinfo.go `tzsetOffset`: `[+-]hh[:mm[:ss]]` in seconds, hours up to
/// 24 × 7 as tzcode allows.
fn tzset_offset(s: &str) -> Option<(i64, &str)> {
    if s.is_empty() {
        return None;
    }
    let (neg, s) = match s.as_bytes()[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let sign = if neg { -1 } else { 1 };
    let (hours, s) = tzset_num(s, 0, 24 * 7)?;
    let mut off = hours * 3600;
    let Some(s) = s.strip_prefix(':') else {
        return Some((sign * off, s));
    };
    let (mins, s) = tzset_num(s, 0, 59)?;
    off += mins * 60;
    let Some(s) = s.strip_prefix(':') else {
        return Some((sign * off, s));
    };
    let (secs, s) = tzset_num(s, 0, 59)?;
    off += secs;
    Some((sign * off, s))
}

/// zoneinfo.go `tzsetRule`: `Jn`, `n` or `Mm.w.d`, then `/time`.
fn tzset_rule(s: &str) -> Option<(Rule, &str)> {
    let (kind, s) = if let Some(s) = s.strip_prefix('J') {
        let (day, s) = tzset_num(s, 1, 365)?;
        (RuleKind::Julian(day), s)
    } else if let Some(s) = s.strip_prefix('M') {
        let (month, s) = tzset_num(s, 1, 12)?;
        let (week, s) = tzset_num(s.strip_prefix('.')?, 1, 5)?;
        let (day, s) = tzset_num(s.strip_prefix('.')?, 0, 6)?;
        (RuleKind::MonthWeekDay { month, week, day }, s)
    } else {
        let (day, s) = tzset_num(s, 0, 365)?;
        (RuleKind::DayOfYear(day), s)
    };
    match s.strip_prefix('/') {
        None => Some((
            Rule {
                kind,
                time: 2 * 3600,
            },
            s,
        )),
        Some(s) => {
            let (time, s) = tzset_offset(s)?;
            Some((Rule { kind, time }, s))
        }
    }
}

/// zoneinfo.go `tzsetNum`: a decimal number within `min..=max`.
fn tzset_num(s: &str, min: i64, max: i64) -> Option<(i64, &str)> {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return None;
    }
    let mut num = 0;
    for b in s[..len].bytes() {
        num = num * 10 + i64::from(b - b'0');
        if num > max {
            return None;
        }
    }
    if num < min {
        return None;
    }
    Some((num, &s[len..]))
}

impl PosixTz {
    /// zoneinfo.go `tzset`, the lookup half: the offset at `sec` and its
    /// span, which (as in Go) is exact near the year's transitions and
    /// otherwise ends at the year's bounds. `last_tx` is the last
    /// transition of the zone file.
    fn lookup(&self, last_tx: i64, sec: i64) -> Period {
        let (std_offset, dst_offset, start_rule, end_rule) = match *self {
            PosixTz::Fixed { offset } => {
                return Period {
                    offset,
                    start: last_tx,
                    end: i64::MAX,
                };
            }
            PosixTz::Dst {
                std_offset,
                dst_offset,
                start,
                end,
            } => (std_offset, dst_offset, start, end),
        };

        let days = sec.div_euclid(86_400);
        let (year, _, _) = civil_from_days(days);
        let year_start_days = days_from_civil(i128::from(year), 1, 1) as i64;
        // Go: yday * secondsPerDay + sec % secondsPerDay.
        let ysec = (days - year_start_days) * 86_400 + sec % 86_400;
        // Saturating: the bounds of the years at the ends of time do not fit.
        let abs = year_start_days.saturating_mul(86_400);

        let mut start_sec = tzrule_time(year, &start_rule, std_offset);
        let mut end_sec = tzrule_time(year, &end_rule, dst_offset);
        let (mut std, mut dst) = (std_offset, dst_offset);
        // Southern hemisphere: daylight time spans the new year.
        if end_sec < start_sec {
            std::mem::swap(&mut start_sec, &mut end_sec);
            std::mem::swap(&mut std, &mut dst);
        }
        if ysec < start_sec {
            Period {
                offset: std,
                start: abs,
                end: abs.saturating_add(start_sec),
            }
        } else if ysec >= end_sec {
            Period {
                offset: std,
                start: abs.saturating_add(end_sec),
                end: abs.saturating_add(365 * 86_400),
            }
        } else {
            Period {
                offset: dst,
                start: abs.saturating_add(start_sec),
                end: abs.saturating_add(end_sec),
            }
        }
    }
}

/// zoneinfo.go `tzruleTime`: seconds from the start of `year` (UTC) to the
/// transition, for a rule read in local time of offset `off`.
fn tzrule_time(year: i64, r: &Rule, off: i32) -> i64 {
    const DAYS_BEFORE: [i64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
    let day_secs = match r.kind {
        RuleKind::Julian(day) => {
            let leap_day = i64::from(is_leap(year) && day >= 60);
            (day - 1 + leap_day) * 86_400
        }
        RuleKind::DayOfYear(day) => day * 86_400,
        RuleKind::MonthWeekDay { month, week, day } => {
            // Zeller's congruence: the weekday of the first of the month.
            let m1 = (month + 9) % 12 + 1;
            let yy0 = if month <= 2 { year - 1 } else { year };
            let (yy1, yy2) = (yy0 / 100, yy0 % 100);
            let mut dow = ((26 * m1 - 2) / 10 + 1 + yy2 + yy2 / 4 + yy1 / 4 - 2 * yy1) % 7;
            if dow < 0 {
                dow += 7;
            }
            // The first such weekday (0-based day of the month), then the
            // requested week, stopping at the month's last.
            let mut d = day - dow;
            if d < 0 {
                d += 7;
            }
            for _ in 1..week {
                if d + 7 >= days_in_month(year, month) {
                    break;
                }
                d += 7;
            }
            d += DAYS_BEFORE[(month - 1) as usize];
            if is_leap(year) && month > 2 {
                d += 1;
            }
            d * 86_400
        }
    };
    day_secs + r.time - i64::from(off)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, `day` allowed past
/// the month's end (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> Zone {
        Zone::load(name).unwrap()
    }

    /// The instant of `YYYY-MM-DDTHH:MM:SS±hhmm`, robfig's test notation.
    fn at(s: &str) -> i64 {
        let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
        let local = Zone::utc().date(
            num(0..4),
            num(5..7),
            num(8..10),
            num(11..13),
            num(14..16),
            num(17..19),
        );
        let sign = if &s[19..20] == "-" { -1 } else { 1 };
        local - sign * (num(20..22) * 3600 + num(22..24) * 60)
    }

    fn utc(year: i64, month: i64, day: i64, hour: i64, minute: i64) -> i64 {
        Zone::utc().date(year, month, day, hour, minute, 0)
    }

    fn next(spec: &str, t: i64, tz: &Zone) -> Option<i64> {
        parse(spec).unwrap().next_after(t, tz)
    }

    fn spec_bits(spec: &str) -> SpecSchedule {
        match parse(spec).unwrap().kind {
            Kind::Spec(s) => s,
            Kind::Every(_) => panic!("{spec} is not a crontab line"),
        }
    }

    fn bits_of(values: &[u64]) -> u64 {
        values.iter().fold(0, |b, v| b | 1 << v)
    }

    fn minutes(field: &str) -> u64 {
        spec_bits(&format!("{field} * * * *")).minute
    }

    #[test]
    fn field_forms() {
        let every_minute = bits_of(&(0..60).collect::<Vec<_>>());
        assert_eq!(minutes("*"), every_minute | STAR_BIT);
        assert_eq!(minutes("?"), every_minute | STAR_BIT);
        assert_eq!(minutes("*/1"), every_minute | STAR_BIT);
        assert_eq!(minutes("5"), bits_of(&[5]));
        assert_eq!(minutes("+5"), bits_of(&[5]));
        assert_eq!(minutes("05"), bits_of(&[5]));
        assert_eq!(minutes("1-3"), bits_of(&[1, 2, 3]));
        assert_eq!(minutes("*/15"), bits_of(&[0, 15, 30, 45]));
        assert_eq!(minutes("?/20"), bits_of(&[0, 20, 40]));
        assert_eq!(minutes("10-20/5"), bits_of(&[10, 15, 20]));
        assert_eq!(minutes("5/20"), bits_of(&[5, 25, 45]));
        assert_eq!(minutes("1,15,30"), bits_of(&[1, 15, 30]));
        assert_eq!(minutes("1,,15,"), bits_of(&[1, 15]));
        assert_eq!(minutes("1-5,3-7/2"), bits_of(&[1, 2, 3, 4, 5, 7]));
        assert_eq!(minutes("59"), bits_of(&[59]));
        // A step past the range keeps only its start.
        assert_eq!(minutes("*/61"), bits_of(&[0]));
        // robfig ignores what follows "*-".
        assert_eq!(minutes("*-5"), every_minute | STAR_BIT);
        // "," alone is accepted and matches nothing.
        assert_eq!(minutes(","), 0);

        let s = spec_bits("0 0-23/6 1,L15 * *".replace("L", "").as_str());
        assert_eq!(s.hour, bits_of(&[0, 6, 12, 18]));
        assert_eq!(s.dom, bits_of(&[1, 15]));
        assert_eq!(s.second, 1, "no seconds field: always second 0");

        assert_eq!(spec_bits("0 0 * JAN-mar *").month, bits_of(&[1, 2, 3]));
        assert_eq!(spec_bits("0 0 * Dec,feb/5 *").month, bits_of(&[2, 7, 12]));
        assert_eq!(spec_bits("0 0 * * MON-FRI").dow, bits_of(&[1, 2, 3, 4, 5]));
        assert_eq!(spec_bits("0 0 * * sUn,SAT").dow, bits_of(&[0, 6]));
        assert_eq!(
            spec_bits("0 0 * * 0-6").dow,
            bits_of(&[0, 1, 2, 3, 4, 5, 6])
        );
        assert_eq!(
            spec_bits("0 0 * * *").dow,
            bits_of(&[0, 1, 2, 3, 4, 5, 6]) | STAR_BIT
        );
        assert_eq!(
            spec_bits("0 0 * 1-12 *").month,
            bits_of(&(1..13).collect::<Vec<_>>())
        );
        assert_eq!(
            spec_bits("0 0 1-31 * *").dom,
            bits_of(&(1..32).collect::<Vec<_>>())
        );
        // Tabs and repeated spaces separate fields too.
        assert_eq!(spec_bits("\t5  4\t* * *\n"), spec_bits("5 4 * * *"));
    }

    #[test]
    fn error_messages() {
        let cases = [
            ("", "empty spec string"),
            ("   ", "expected exactly 5 fields, found 0: []"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            (
                "0 * * * * *",
                "expected exactly 5 fields, found 6: [0 * * * * *]",
            ),
            (" @daily", "expected exactly 5 fields, found 1: [@daily]"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("0-70 * * * *", "end of range (70) above maximum (59): 0-70"),
            ("* 24 * * *", "end of range (24) above maximum (23): 24"),
            ("* * 32 * *", "end of range (32) above maximum (31): 32"),
            ("* * * 13 *", "end of range (13) above maximum (12): 13"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            ("* * * * 5-7", "end of range (7) above maximum (6): 5-7"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            (
                "* * * 0-3 *",
                "beginning of range (0) below minimum (1): 0-3",
            ),
            (
                "5-3 * * * *",
                "beginning of range (5) beyond end of range (3): 5-3",
            ),
            (
                "* * * * sat-mon",
                "beginning of range (6) beyond end of range (1): sat-mon",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("*/2/3 * * * *", "too many slashes: */2/3"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "5- * * * *",
                "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax",
            ),
            (
                "-5 * * * *",
                "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax",
            ),
            (
                "*/x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            ("*/-1 * * * *", "negative number (-1) not allowed: -1"),
            (
                "*/+ * * * *",
                "failed to parse int from +: strconv.Atoi: parsing \"+\": invalid syntax",
            ),
            (
                "99999999999999999999 * * * *",
                "failed to parse int from 99999999999999999999: strconv.Atoi: parsing \
                 \"99999999999999999999\": value out of range",
            ),
            (
                "0 0 * * XYZ",
                "failed to parse int from XYZ: strconv.Atoi: parsing \"XYZ\": invalid syntax",
            ),
            (
                "0 0 * JANUARY *",
                "failed to parse int from JANUARY: strconv.Atoi: parsing \"JANUARY\": invalid syntax",
            ),
            (
                "0 0 * * 1#2",
                "failed to parse int from 1#2: strconv.Atoi: parsing \"1#2\": invalid syntax",
            ),
            (
                "0 0 L * *",
                "failed to parse int from L: strconv.Atoi: parsing \"L\": invalid syntax",
            ),
            (
                "é * * * *",
                "failed to parse int from é: strconv.Atoi: parsing \"é\": invalid syntax",
            ),
            ("@foo", "unrecognized descriptor: @foo"),
            ("@DAILY", "unrecognized descriptor: @DAILY"),
            ("@daily ", "unrecognized descriptor: @daily "),
            ("@every", "unrecognized descriptor: @every"),
            (
                "@every ",
                "failed to parse duration @every : time: invalid duration \"\"",
            ),
            (
                "@every 1",
                "failed to parse duration @every 1: time: missing unit in duration \"1\"",
            ),
            (
                "@every 1d",
                "failed to parse duration @every 1d: time: unknown unit \"d\" in duration \"1d\"",
            ),
            (
                "TZ=Nowhere/Land 0 * * * *",
                "provided bad location Nowhere/Land: unknown time zone Nowhere/Land",
            ),
            (
                "CRON_TZ=../etc/passwd 0 * * * *",
                "provided bad location ../etc/passwd: time: invalid location name",
            ),
            (
                "TZ=UTC",
                "provided bad location UTC: no schedule follows the time zone",
            ),
            (
                "TZ=UTC 0 * * *",
                "expected exactly 5 fields, found 4: [0 * * *]",
            ),
        ];
        for (spec, message) in cases {
            assert_eq!(parse(spec).unwrap_err(), message, "{spec:?}");
        }
    }

    #[test]
    fn first_error_wins_in_field_order() {
        assert_eq!(
            parse("60 24 * * *").unwrap_err(),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            parse("0 24 32 * *").unwrap_err(),
            "end of range (24) above maximum (23): 24"
        );
        // Hyphens are checked before slashes, within a range.
        assert_eq!(
            parse("1-2-3/4/5 * * * *").unwrap_err(),
            "too many hyphens: 1-2-3/4/5"
        );
        // In a list, the first bad item.
        assert_eq!(
            parse("1,x,70 * * * *").unwrap_err(),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn descriptors_equal_their_crontab_lines() {
        for (descriptor, line) in [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ] {
            assert_eq!(spec_bits(descriptor), spec_bits(line), "{descriptor}");
        }
        let t = utc(2024, 5, 17, 10, 20);
        let z = Zone::utc();
        assert_eq!(next("@yearly", t, &z), Some(utc(2025, 1, 1, 0, 0)));
        assert_eq!(next("@monthly", t, &z), Some(utc(2024, 6, 1, 0, 0)));
        assert_eq!(
            next("@weekly", t, &z),
            Some(utc(2024, 5, 19, 0, 0)),
            "the next Sunday"
        );
        assert_eq!(next("@daily", t, &z), Some(utc(2024, 5, 18, 0, 0)));
        assert_eq!(next("@midnight", t, &z), Some(utc(2024, 5, 18, 0, 0)));
        assert_eq!(next("@hourly", t, &z), Some(utc(2024, 5, 17, 11, 0)));
        assert_eq!(next("TZ=UTC @hourly", t, &z), Some(utc(2024, 5, 17, 11, 0)));
    }

    #[test]
    fn every_descriptor() {
        for (spec, secs) in [
            ("@every 1h30m", 5400),
            ("@every 90s", 90),
            ("@every 1.5h", 5400),
            ("@every 2.9s", 2),
            ("@every 500ms", 1),
            ("@every 1µs", 1),
            ("@every 0", 1),
            ("@every -5m", 1),
            ("@every +2m", 120),
            ("@every 168h", 604_800),
        ] {
            assert_eq!(parse(spec).unwrap().kind, Kind::Every(secs), "{spec}");
            assert_eq!(
                next(spec, 1_000_000, &Zone::utc()),
                Some(1_000_000 + secs),
                "{spec}"
            );
        }
        // The zone plays no part.
        assert_eq!(next("@every 1m", 7, &zone("Asia/Kolkata")), Some(67));
    }

    #[test]
    fn go_durations() {
        for (s, nanos) in [
            ("0", 0),
            ("-0", 0),
            ("15m", 900_000_000_000),
            ("168h", 604_800_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300ms", 300_000_000),
            ("-2s", -2_000_000_000),
            ("+5s", 5_000_000_000),
            ("1us", 1_000),
            ("1\u{b5}s", 1_000),
            ("1\u{3bc}s", 1_000),
            ("7ns", 7),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("1h1m1s1ms1us1ns", 3_661_001_001_001),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
        ] {
            assert_eq!(parse_go_duration(s), Ok(nanos), "{s}");
        }
        for (s, message) in [
            ("", "time: invalid duration \"\""),
            ("-", "time: invalid duration \"-\""),
            ("abc", "time: invalid duration \"abc\""),
            ("10", "time: missing unit in duration \"10\""),
            ("5x", "time: unknown unit \"x\" in duration \"5x\""),
            ("1..5s", "time: missing unit in duration \"1..5s\""),
            (".s", "time: invalid duration \".s\""),
            ("\u{663}s", "time: invalid duration \"\\xd9\\xa3s\""),
            (
                "5\u{b5}x",
                "time: unknown unit \"\\xc2\\xb5x\" in duration \"5\\xc2\\xb5x\"",
            ),
            (
                "9223372036854775808ns",
                "time: invalid duration \"9223372036854775808ns\"",
            ),
            ("3000000h", "time: invalid duration \"3000000h\""),
            (
                "1h\"",
                "time: unknown unit \"h\\\"\" in duration \"1h\\\"\"",
            ),
        ] {
            assert_eq!(parse_go_duration(s), Err(message.to_owned()), "{s}");
        }
    }

    /// Go's time_test.go `parseDurationTests` and
    /// `parseDurationErrorTests` (those expressible as UTF-8).
    #[test]
    fn durations_like_go() {
        const MS: i64 = 1_000_000;
        const S: i64 = 1_000_000_000;
        const M: i64 = 60 * S;
        const H: i64 = 60 * M;
        for (s, want) in [
            ("0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13 * MS),
            ("14s", 14 * S),
            ("15m", 15 * M),
            ("16h", 16 * H),
            ("3h30m", 3 * H + 30 * M),
            ("10.5s4m", 4 * M + 10 * S + 500 * MS),
            ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
            ("1h2m3s4ms5us6ns", H + 2 * M + 3 * S + 4 * MS + 5_000 + 6),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 20 * M),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("0.100000000000000000000h", 6 * M),
            ("0.830103483285477580700h", 49 * M + 48 * S + 372_539_827),
        ] {
            assert_eq!(parse_go_duration(s), Ok(want), "{s}");
        }
        for (s, quoted) in [
            ("", "\"\""),
            ("3", "\"3\""),
            ("-", "\"-\""),
            ("s", "\"s\""),
            (".", "\".\""),
            ("-.", "\"-.\""),
            (".s", "\".s\""),
            ("+.s", "\"+.s\""),
            ("1d", "\"1d\""),
            ("\u{fffd}", "\"\\xef\\xbf\\xbd\""),
            (
                "\u{fffd} hello \u{fffd} world",
                "\"\\xef\\xbf\\xbd hello \\xef\\xbf\\xbd world\"",
            ),
            ("9223372036854775810ns", "\"9223372036854775810ns\""),
            ("9223372036854775808ns", "\"9223372036854775808ns\""),
            ("-9223372036854775809ns", "\"-9223372036854775809ns\""),
            ("9223372036854776us", "\"9223372036854776us\""),
            ("3000000h", "\"3000000h\""),
            ("9223372036854775.808us", "\"9223372036854775.808us\""),
            ("9223372036854ms775us808ns", "\"9223372036854ms775us808ns\""),
        ] {
            let err = parse_go_duration(s).unwrap_err();
            assert!(err.contains(quoted), "{s:?}: {err}");
        }
    }

    #[test]
    fn go_atoi_like_strconv() {
        assert_eq!(go_atoi("42"), Ok(42));
        assert_eq!(go_atoi("+42"), Ok(42));
        assert_eq!(go_atoi("-42"), Ok(-42));
        assert_eq!(go_atoi("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(go_atoi("9223372036854775807"), Ok(i64::MAX));
        let range = "strconv.Atoi: parsing \"9223372036854775808\": value out of range";
        assert_eq!(go_atoi("9223372036854775808"), Err(range.to_owned()));
        let syntax = "strconv.Atoi: parsing \"1_000\": invalid syntax";
        assert_eq!(go_atoi("1_000"), Err(syntax.to_owned()));
        assert_eq!(
            go_atoi("0x10"),
            Err("strconv.Atoi: parsing \"0x10\": invalid syntax".to_owned())
        );
        assert_eq!(
            go_atoi("a\"b"),
            Err("strconv.Atoi: parsing \"a\\\"b\": invalid syntax".to_owned())
        );
        assert_eq!(
            go_atoi("\u{7}"),
            Err("strconv.Atoi: parsing \"\\a\": invalid syntax".to_owned())
        );
        assert_eq!(
            go_atoi("\u{1}"),
            Err("strconv.Atoi: parsing \"\\x01\": invalid syntax".to_owned())
        );
        assert_eq!(
            go_atoi("\u{85}"),
            Err("strconv.Atoi: parsing \"\\u0085\": invalid syntax".to_owned())
        );
    }

    /// robfig spec_test.go `TestActivation`: `Next(t - 1s) == t` or not.
    #[test]
    fn activation() {
        let z = Zone::utc();
        for ((y, mo, d, h, mi), spec, expected) in [
            ((2012, 7, 9, 15, 0), "0/15 * * * *", true),
            ((2012, 7, 9, 15, 45), "0/15 * * * *", true),
            ((2012, 7, 9, 15, 40), "0/15 * * * *", false),
            ((2012, 7, 9, 15, 5), "5/15 * * * *", true),
            ((2012, 7, 9, 15, 20), "5/15 * * * *", true),
            ((2012, 7, 9, 15, 50), "5/15 * * * *", true),
            ((2012, 7, 15, 15, 0), "0/15 * * Jul *", true),
            ((2012, 7, 15, 15, 0), "0/15 * * Jun *", false),
            ((2012, 7, 15, 8, 30), "30 08 ? Jul Sun", true),
            ((2012, 7, 15, 8, 30), "30 08 15 Jul ?", true),
            ((2012, 7, 16, 8, 30), "30 08 ? Jul Sun", false),
            ((2012, 7, 16, 8, 30), "30 08 15 Jul ?", false),
            ((2012, 7, 9, 15, 0), "@hourly", true),
            ((2012, 7, 9, 15, 4), "@hourly", false),
            ((2012, 7, 9, 15, 0), "@daily", false),
            ((2012, 7, 9, 0, 0), "@daily", true),
            ((2012, 7, 9, 0, 0), "@weekly", false),
            ((2012, 7, 8, 0, 0), "@weekly", true),
            ((2012, 7, 8, 1, 0), "@weekly", false),
            ((2012, 7, 8, 0, 0), "@monthly", false),
            ((2012, 7, 1, 0, 0), "@monthly", true),
            // Both day fields restricted: either matches.
            ((2012, 7, 15, 0, 0), "* * 1,15 * Sun", true),
            ((2012, 6, 15, 0, 0), "* * 1,15 * Sun", true),
            ((2012, 8, 1, 0, 0), "* * 1,15 * Sun", true),
            // A step above 1 is a restriction (robfig issue #70).
            ((2012, 7, 15, 0, 0), "* * */10 * Sun", true),
            // One field with a star: both must match.
            ((2012, 7, 15, 0, 0), "* * * * Mon", false),
            ((2012, 7, 9, 0, 0), "* * 1,15 * *", false),
            ((2012, 7, 15, 0, 0), "* * 1,15 * *", true),
            ((2012, 7, 15, 0, 0), "* * */2 * Sun", true),
        ] {
            let t = utc(y, mo, d, h, mi);
            let fired = next(spec, t - 1, &z) == Some(t);
            assert_eq!(fired, expected, "{spec} at {y}-{mo}-{d} {h}:{mi}");
        }
    }

    /// robfig spec_test.go `TestNext`, the cases without a seconds field.
    #[test]
    fn next_like_robfig() {
        let z = Zone::utc();
        let cases = [
            (
                (2012, 7, 9, 14, 45, 0),
                "0/15 * * * *",
                Some((2012, 7, 9, 15, 0)),
            ),
            (
                (2012, 7, 9, 14, 59, 0),
                "0/15 * * * *",
                Some((2012, 7, 9, 15, 0)),
            ),
            (
                (2012, 7, 9, 14, 59, 59),
                "0/15 * * * *",
                Some((2012, 7, 9, 15, 0)),
            ),
            // Wrap around hours.
            (
                (2012, 7, 9, 15, 45, 0),
                "20-35/15 * * * *",
                Some((2012, 7, 9, 16, 20)),
            ),
            // Wrap around days.
            (
                (2012, 7, 9, 23, 46, 0),
                "*/15 * * * *",
                Some((2012, 7, 10, 0, 0)),
            ),
            (
                (2012, 7, 9, 23, 45, 0),
                "20-35/15 * * * *",
                Some((2012, 7, 10, 0, 20)),
            ),
            (
                (2012, 7, 9, 23, 35, 51),
                "20-35/15 * * * *",
                Some((2012, 7, 10, 0, 20)),
            ),
            (
                (2012, 7, 9, 23, 35, 51),
                "20-35/15 1/2 * * *",
                Some((2012, 7, 10, 1, 20)),
            ),
            (
                (2012, 7, 9, 23, 35, 51),
                "20-35/15 10-12 * * *",
                Some((2012, 7, 10, 10, 20)),
            ),
            (
                (2012, 7, 9, 23, 35, 51),
                "20-35/15 1/2 */2 * *",
                Some((2012, 7, 11, 1, 20)),
            ),
            (
                (2012, 7, 9, 23, 35, 51),
                "20-35/15 * 9-20 * *",
                Some((2012, 7, 10, 0, 20)),
            ),
            (
                (2012, 7, 9, 23, 35, 51),
                "20-35/15 * 9-20 Jul *",
                Some((2012, 7, 10, 0, 20)),
            ),
            // Wrap around months.
            (
                (2012, 7, 9, 23, 35, 0),
                "0 0 9 Apr-Oct ?",
                Some((2012, 8, 9, 0, 0)),
            ),
            (
                (2012, 7, 9, 23, 35, 0),
                "0 0 */5 Apr,Aug,Oct Mon",
                Some((2012, 8, 1, 0, 0)),
            ),
            (
                (2012, 7, 9, 23, 35, 0),
                "0 0 */5 Oct Mon",
                Some((2012, 10, 1, 0, 0)),
            ),
            // Wrap around years.
            (
                (2012, 7, 9, 23, 35, 0),
                "0 0 * Feb Mon",
                Some((2013, 2, 4, 0, 0)),
            ),
            (
                (2012, 7, 9, 23, 35, 0),
                "0 0 * Feb Mon/2",
                Some((2013, 2, 1, 0, 0)),
            ),
            // Wrap around minute, hour, day, month and year.
            (
                (2012, 12, 31, 23, 59, 45),
                "* * * * *",
                Some((2013, 1, 1, 0, 0)),
            ),
            // Leap year.
            (
                (2012, 7, 9, 23, 35, 0),
                "0 0 29 Feb ?",
                Some((2016, 2, 29, 0, 0)),
            ),
            // Unsatisfiable.
            ((2012, 7, 9, 23, 35, 0), "0 0 30 Feb ?", None),
            ((2012, 7, 9, 23, 35, 0), "0 0 31 Apr ?", None),
        ];
        for ((y, mo, d, h, mi, s), spec, expected) in cases {
            let t = Zone::utc().date(y, mo, d, h, mi, s);
            let expected = expected.map(|(y, mo, d, h, mi)| utc(y, mo, d, h, mi));
            assert_eq!(
                next(spec, t, &z),
                expected,
                "{spec} after {y}-{mo}-{d} {h}:{mi}:{s}"
            );
        }
    }

    /// robfig spec_test.go `TestNext`, New York's daylight saving changes
    /// of 2012 (seconds field dropped); and the same with the zone given
    /// by prefix, which overrides the zone passed in.
    #[test]
    fn new_york_dst_like_robfig() {
        let ny = zone("America/New_York");
        let cases = [
            // 2am EST (-5) -> 3am EDT (-4).
            (
                "2012-03-11T00:00:00-0500",
                "30 2 11 Mar ?",
                "2013-03-11T02:30:00-0400",
            ),
            // Hourly job.
            (
                "2012-03-11T00:00:00-0500",
                "0 * * * ?",
                "2012-03-11T01:00:00-0500",
            ),
            (
                "2012-03-11T01:00:00-0500",
                "0 * * * ?",
                "2012-03-11T03:00:00-0400",
            ),
            (
                "2012-03-11T03:00:00-0400",
                "0 * * * ?",
                "2012-03-11T04:00:00-0400",
            ),
            (
                "2012-03-11T04:00:00-0400",
                "0 * * * ?",
                "2012-03-11T05:00:00-0400",
            ),
            // 1am nightly job.
            (
                "2012-03-11T00:00:00-0500",
                "0 1 * * ?",
                "2012-03-11T01:00:00-0500",
            ),
            (
                "2012-03-11T01:00:00-0500",
                "0 1 * * ?",
                "2012-03-12T01:00:00-0400",
            ),
            // 2am nightly job (skipped).
            (
                "2012-03-11T00:00:00-0500",
                "0 2 * * ?",
                "2012-03-12T02:00:00-0400",
            ),
            // 2am EDT (-4) -> 1am EST (-5).
            (
                "2012-11-04T00:00:00-0400",
                "30 2 04 Nov ?",
                "2012-11-04T02:30:00-0500",
            ),
            (
                "2012-11-04T01:45:00-0400",
                "30 1 04 Nov ?",
                "2012-11-04T01:30:00-0500",
            ),
            // Hourly job.
            (
                "2012-11-04T00:00:00-0400",
                "0 * * * ?",
                "2012-11-04T01:00:00-0400",
            ),
            (
                "2012-11-04T01:00:00-0400",
                "0 * * * ?",
                "2012-11-04T01:00:00-0500",
            ),
            (
                "2012-11-04T01:00:00-0500",
                "0 * * * ?",
                "2012-11-04T02:00:00-0500",
            ),
            // 1am nightly job (runs twice).
            (
                "2012-11-04T00:00:00-0400",
                "0 1 * * ?",
                "2012-11-04T01:00:00-0400",
            ),
            (
                "2012-11-04T01:00:00-0400",
                "0 1 * * ?",
                "2012-11-04T01:00:00-0500",
            ),
            (
                "2012-11-04T01:00:00-0500",
                "0 1 * * ?",
                "2012-11-05T01:00:00-0500",
            ),
            // 2am nightly job.
            (
                "2012-11-04T00:00:00-0400",
                "0 2 * * ?",
                "2012-11-04T02:00:00-0500",
            ),
            (
                "2012-11-04T02:00:00-0500",
                "0 2 * * ?",
                "2012-11-05T02:00:00-0500",
            ),
            // 3am nightly job.
            (
                "2012-11-04T00:00:00-0400",
                "0 3 * * ?",
                "2012-11-04T03:00:00-0500",
            ),
            (
                "2012-11-04T03:00:00-0500",
                "0 3 * * ?",
                "2012-11-05T03:00:00-0500",
            ),
            // Monthly job.
            (
                "2012-11-04T00:00:00-0400",
                "0 3 3 * ?",
                "2012-12-03T03:00:00-0500",
            ),
        ];
        for (from, spec, expected) in cases {
            assert_eq!(
                next(spec, at(from), &ny),
                Some(at(expected)),
                "{spec} after {from}"
            );
            let prefixed = format!("TZ=America/New_York {spec}");
            assert_eq!(
                next(&prefixed, at(from), &Zone::utc()),
                Some(at(expected)),
                "{prefixed}"
            );
            let prefixed = format!("CRON_TZ=America/New_York {spec}");
            assert_eq!(
                next(&prefixed, at(from), &Zone::utc()),
                Some(at(expected)),
                "{prefixed}"
            );
        }
    }

    /// robfig spec_test.go: midnight did not exist in Sao Paulo on
    /// 2018-11-04 (robfig issue #157).
    #[test]
    fn sao_paulo_missing_midnight_like_robfig() {
        let sp = zone("America/Sao_Paulo");
        assert_eq!(
            next("0 9 10 * ?", at("2018-10-17T05:00:00-0400"), &sp),
            Some(at("2018-11-10T06:00:00-0500"))
        );
        assert_eq!(
            next("0 9 22 * ?", at("2018-02-14T05:00:00-0500"), &sp),
            Some(at("2018-02-22T07:00:00-0500"))
        );
        // A midnight job skips the day without a midnight: the hour loop
        // goes from 23:00 to 01:00 and never sees hour 0 that day.
        assert_eq!(
            next("0 0 * * *", at("2018-11-03T12:00:00-0300"), &sp),
            Some(at("2018-11-05T00:00:00-0200"))
        );
    }

    /// robfig spec_test.go `TestNextWithTz`, in Kolkata.
    #[test]
    fn kolkata_like_robfig() {
        let k = zone("Asia/Kolkata");
        assert_eq!(
            next("14 14 * * *", at("2016-01-03T13:09:03+0530"), &k),
            Some(at("2016-01-03T14:14:00+0530"))
        );
        assert_eq!(
            next("14 14 * * ?", at("2016-01-03T04:09:03+0530"), &k),
            Some(at("2016-01-03T14:14:00+0530"))
        );
        assert_eq!(
            next("14 14 * * *", at("2016-01-03T14:09:03+0530"), &k),
            Some(at("2016-01-03T14:14:00+0530"))
        );
        assert_eq!(
            next("14 14 * * ?", at("2016-01-03T14:00:00+0530"), &k),
            Some(at("2016-01-03T14:14:00+0530"))
        );
    }

    #[test]
    fn berlin_spring_forward_skips_the_missing_time() {
        let berlin = zone("Europe/Berlin");
        // 2024-03-31, the last Sunday of March: 02:00 CET becomes 03:00 CEST.
        // 02:30 does not exist, so the daily 02:30 job skips that day.
        let daily = "30 2 * * *";
        assert_eq!(
            next(daily, at("2024-03-30T12:00:00+0100"), &berlin),
            Some(at("2024-04-01T02:30:00+0200"))
        );
        // A job for March 31st at 02:30 waits a year (in 2025 the clocks
        // change on the 30th).
        let march_31 = "30 2 31 3 *";
        assert_eq!(
            next(march_31, at("2024-03-01T00:00:00+0100"), &berlin),
            Some(at("2025-03-31T02:30:00+0200"))
        );
        // The hours either side run as usual.
        assert_eq!(
            next("30 1 * * *", at("2024-03-31T00:00:00+0100"), &berlin),
            Some(at("2024-03-31T01:30:00+0100"))
        );
        assert_eq!(
            next("30 3 * * *", at("2024-03-31T01:30:00+0100"), &berlin),
            Some(at("2024-03-31T03:30:00+0200"))
        );
        // Hourly: 01:00 CET is followed by 03:00 CEST, one real hour later.
        assert_eq!(
            next("0 * * * *", at("2024-03-31T01:00:00+0100"), &berlin),
            Some(at("2024-03-31T03:00:00+0200"))
        );
    }

    #[test]
    fn fall_back_runs_the_repeated_time_twice() {
        // Berlin, 2024-10-27: 03:00 CEST becomes 02:00 CET.
        let berlin = zone("Europe/Berlin");
        let daily = "30 2 * * *";
        let first = next(daily, at("2024-10-27T00:00:00+0200"), &berlin).unwrap();
        assert_eq!(first, at("2024-10-27T02:30:00+0200"));
        let second = next(daily, first, &berlin).unwrap();
        assert_eq!(second, at("2024-10-27T02:30:00+0100"));
        assert_eq!(second - first, 3600);
        assert_eq!(
            next(daily, second, &berlin),
            Some(at("2024-10-28T02:30:00+0100"))
        );

        // New York, 2024-11-03 (the first Sunday of November): 01:30 twice.
        let ny = zone("America/New_York");
        let first = next("30 1 * * *", at("2024-11-03T00:00:00-0400"), &ny).unwrap();
        assert_eq!(first, at("2024-11-03T01:30:00-0400"));
        let second = next("30 1 * * *", first, &ny).unwrap();
        assert_eq!(second, at("2024-11-03T01:30:00-0500"));
        assert_eq!(
            next("30 1 * * *", second, &ny),
            Some(at("2024-11-04T01:30:00-0500"))
        );
    }

    #[test]
    fn month_ends_and_leap_years() {
        let z = Zone::utc();
        // The 31st skips the shorter months.
        assert_eq!(
            next("0 0 31 * *", utc(2024, 1, 31, 0, 0), &z),
            Some(utc(2024, 3, 31, 0, 0))
        );
        assert_eq!(
            next("0 0 31 * *", utc(2024, 3, 31, 0, 0), &z),
            Some(utc(2024, 5, 31, 0, 0))
        );
        assert_eq!(
            next("0 0 30 * *", utc(2024, 1, 30, 0, 0), &z),
            Some(utc(2024, 3, 30, 0, 0))
        );
        // Across the end of a month and of a year.
        assert_eq!(
            next("0 0 1 * *", utc(2024, 2, 29, 23, 59), &z),
            Some(utc(2024, 3, 1, 0, 0))
        );
        assert_eq!(
            next("59 23 * * *", utc(2024, 12, 31, 23, 59), &z),
            Some(utc(2025, 1, 1, 23, 59))
        );
        assert_eq!(
            next("0 0 1 1 *", utc(2024, 12, 31, 23, 59), &z),
            Some(utc(2025, 1, 1, 0, 0))
        );
        // February 29th: only leap years, and 2100 is not one.
        let feb29 = "0 0 29 2 *";
        assert_eq!(
            next(feb29, utc(2023, 3, 1, 0, 0), &z),
            Some(utc(2024, 2, 29, 0, 0))
        );
        assert_eq!(
            next(feb29, utc(2024, 2, 29, 0, 0), &z),
            Some(utc(2028, 2, 29, 0, 0))
        );
        assert_eq!(
            next(feb29, utc(2000, 1, 1, 0, 0), &z),
            Some(utc(2000, 2, 29, 0, 0))
        );
        // 2096 to 2104 is more than robfig's five years.
        assert_eq!(next(feb29, utc(2096, 3, 1, 0, 0), &z), None);
        assert_eq!(
            next(feb29, utc(2099, 3, 1, 0, 0), &z),
            Some(utc(2104, 2, 29, 0, 0))
        );
    }

    #[test]
    fn impossible_schedules_give_none() {
        let z = Zone::utc();
        let t = utc(2024, 6, 1, 0, 0);
        assert_eq!(next("0 0 30 2 *", t, &z), None);
        assert_eq!(next("0 0 31 4,6,9,11 *", t, &z), None);
        assert_eq!(next("0 0 , * *", t, &z), None);
        assert_eq!(next(", * * * *", t, &z), None);
        // But an impossible day-of-month OR a weekday is possible.
        assert_eq!(next("0 0 30 2 1", t, &z), Some(utc(2025, 2, 3, 0, 0)));
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        let z = Zone::utc();
        // 2024-09-01 is a Sunday. Friday or the 13th, both restricted: OR.
        let t = utc(2024, 9, 1, 0, 0);
        let fri_or_13 = "0 0 13 * 5";
        let first = next(fri_or_13, t, &z).unwrap();
        assert_eq!(first, utc(2024, 9, 6, 0, 0));
        let second = next(fri_or_13, first, &z).unwrap();
        assert_eq!(second, utc(2024, 9, 13, 0, 0));
        assert_eq!(
            next(fri_or_13, utc(2024, 9, 27, 0, 0), &z),
            Some(utc(2024, 10, 4, 0, 0))
        );
        assert_eq!(
            next("0 0 12 * 5", utc(2024, 9, 6, 0, 0), &z),
            Some(utc(2024, 9, 12, 0, 0))
        );
        // Day of week restricted, day of month a star: AND (Fridays only).
        assert_eq!(
            next("0 0 * * 5", utc(2024, 9, 6, 0, 0), &z),
            Some(utc(2024, 9, 13, 0, 0))
        );
        assert_eq!(
            next("0 0 ? * fri", utc(2024, 9, 6, 0, 0), &z),
            Some(utc(2024, 9, 13, 0, 0))
        );
        // Day of month restricted, day of week a star: AND (13ths only).
        assert_eq!(
            next("0 0 13 * *", utc(2024, 9, 13, 0, 0), &z),
            Some(utc(2024, 10, 13, 0, 0))
        );
        // "*/1" keeps the star, "*/2" does not.
        assert_eq!(
            next("0 0 */1 * 5", utc(2024, 9, 6, 0, 0), &z),
            Some(utc(2024, 9, 13, 0, 0))
        );
        assert_eq!(
            next("0 0 */2 * 5", utc(2024, 9, 6, 0, 0), &z),
            Some(utc(2024, 9, 7, 0, 0))
        );
        // A range covering every day is a restriction all the same.
        assert_eq!(
            next("0 0 1-31 * 5", utc(2024, 9, 6, 0, 0), &z),
            Some(utc(2024, 9, 7, 0, 0))
        );
    }

    #[test]
    fn tz_prefix() {
        let s = parse("TZ=Europe/Berlin 0 3 * * *").unwrap();
        assert!(s.has_tz_prefix());
        assert_eq!(s.location().map(Zone::name), Some("Europe/Berlin"));
        // The prefix's zone wins over the one passed in.
        let t = at("2024-07-01T00:00:00+0000");
        assert_eq!(
            s.next_after(t, &zone("Asia/Kolkata")),
            Some(at("2024-07-01T03:00:00+0200"))
        );

        let s = parse("CRON_TZ=Asia/Kolkata   @daily").unwrap();
        assert!(s.has_tz_prefix());
        assert_eq!(
            s.next_after(t, &Zone::utc()),
            Some(at("2024-07-02T00:00:00+0530"))
        );

        // TZ=Local is robfig's time.Local: the zone passed in.
        let s = parse("TZ=Local 0 3 * * *").unwrap();
        assert!(s.has_tz_prefix());
        assert!(s.location().is_none());
        assert_eq!(
            s.next_after(t, &zone("Asia/Kolkata")),
            Some(at("2024-07-02T03:00:00+0530"))
        );

        // An empty name is UTC, as Go's LoadLocation("").
        let s = parse("TZ= 0 3 * * *").unwrap();
        assert_eq!(s.location().map(Zone::name), Some("UTC"));

        let s = parse("0 3 * * *").unwrap();
        assert!(!s.has_tz_prefix());
        assert!(s.location().is_none());
        assert!(!parse("@hourly").unwrap().has_tz_prefix());
        assert_eq!(
            TZ_IN_SCHEDULE,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
        );
    }

    #[test]
    fn offsets_from_transitions_and_footers() {
        let ny = zone("America/New_York");
        // After the file's last transition (2037): the footer EST5EDT,M3.2.0,M11.1.0.
        assert_eq!(ny.offset_at(at("2040-07-01T12:00:00+0000")), -14_400);
        assert_eq!(ny.offset_at(at("2040-01-15T12:00:00+0000")), -18_000);
        // 2040-03-11 is the second Sunday of March: 02:00 EST is 07:00 UTC.
        assert_eq!(ny.offset_at(at("2040-03-11T06:59:59+0000")), -18_000);
        assert_eq!(ny.offset_at(at("2040-03-11T07:00:00+0000")), -14_400);
        // 2040-11-04 is the first Sunday of November: 02:00 EDT is 06:00 UTC.
        assert_eq!(ny.offset_at(at("2040-11-04T05:59:59+0000")), -14_400);
        assert_eq!(ny.offset_at(at("2040-11-04T06:00:00+0000")), -18_000);
        // From the transitions, and before the first one (local mean time).
        assert_eq!(ny.offset_at(at("2012-07-01T00:00:00+0000")), -14_400);
        assert_eq!(ny.offset_at(at("1850-01-01T00:00:00+0000")), -17_762);

        let berlin = zone("Europe/Berlin");
        assert_eq!(berlin.offset_at(at("2040-07-01T00:00:00+0000")), 7200);
        assert_eq!(berlin.offset_at(at("2040-12-01T00:00:00+0000")), 3600);
        // Last Sunday of March 2040 is the 25th, at 01:00 UTC.
        assert_eq!(berlin.offset_at(at("2040-03-25T00:59:59+0000")), 3600);
        assert_eq!(berlin.offset_at(at("2040-03-25T01:00:00+0000")), 7200);

        let kolkata = zone("Asia/Kolkata");
        assert_eq!(kolkata.offset_at(at("2024-01-01T00:00:00+0000")), 19_800);
        assert_eq!(kolkata.offset_at(at("2100-01-01T00:00:00+0000")), 19_800);

        // Lord Howe: a half-hour of daylight saving in the southern summer
        // (footer <+1030>-10:30<+11>-11,M10.1.0,M4.1.0).
        let lord_howe = zone("Australia/Lord_Howe");
        assert_eq!(lord_howe.offset_at(at("2040-01-15T00:00:00+0000")), 39_600);
        assert_eq!(lord_howe.offset_at(at("2040-07-15T00:00:00+0000")), 37_800);
        assert_eq!(lord_howe.offset_at(at("2024-01-15T00:00:00+0000")), 39_600);

        assert_eq!(zone("Etc/GMT+5").offset_at(0), -18_000);
        assert_eq!(
            zone("Etc/GMT+5").offset_at(at("2040-07-01T00:00:00+0000")),
            -18_000
        );
        assert_eq!(zone("UTC").offset_at(at("2040-07-01T00:00:00+0000")), 0);
        assert_eq!(zone("Etc/UTC").offset_at(at("2040-07-01T00:00:00+0000")), 0);
        assert_eq!(Zone::utc().offset_at(i64::MIN), 0);
    }

    #[test]
    fn cron_in_a_footer_year() {
        // 2040 is past New York's transitions: the footer drives the search.
        let ny = zone("America/New_York");
        assert_eq!(
            next("0 2 * * *", at("2040-03-10T12:00:00-0500"), &ny),
            Some(at("2040-03-12T02:00:00-0400"))
        );
        assert_eq!(
            next("0 1 * * *", at("2040-11-04T01:00:00-0400"), &ny),
            Some(at("2040-11-04T01:00:00-0500"))
        );
        let lord_howe = zone("Australia/Lord_Howe");
        // 2040-10-07, first Sunday of October: 02:00 becomes 02:30.
        assert_eq!(
            next("15 2 * * *", at("2040-10-06T12:00:00+1030"), &lord_howe),
            Some(at("2040-10-08T02:15:00+1100"))
        );
    }

    #[test]
    fn loading_zones() {
        assert_eq!(
            Zone::load("Nowhere/Land").unwrap_err(),
            "unknown time zone Nowhere/Land"
        );
        assert_eq!(Zone::load("Mars").unwrap_err(), "unknown time zone Mars");
        assert_eq!(Zone::load("").unwrap_err(), EMPTY_TIME_ZONE);
        assert_eq!(Zone::load("Local").unwrap_err(), LOCAL_TIME_ZONE);
        assert_eq!(Zone::load("local").unwrap_err(), LOCAL_TIME_ZONE);
        for name in [
            "../etc/passwd",
            "/etc/localtime",
            "Europe/",
            "Europe//Berlin",
            "./UTC",
            "-UTC",
            "Europe/Berlin\0",
            "America/Ñew_York",
            "America/ABCDEFGHIJKLMNO",
        ] {
            assert_eq!(
                Zone::load(name).unwrap_err(),
                format!("unknown time zone {name}"),
                "{name:?}"
            );
        }
        // A directory is not a zone; Go reports the read error.
        assert_eq!(Zone::load("America").unwrap_err(), "is a directory");
        assert_eq!(Zone::load("UTC").unwrap(), Zone::utc());
        assert_eq!(zone("Europe/Berlin").name(), "Europe/Berlin");
        assert_eq!(
            zone("America/Argentina/Buenos_Aires").offset_at(at("2024-01-01T00:00:00+0000")),
            -10_800
        );
        // Go's LoadLocation rules, behind the TZ= prefix.
        assert_eq!(go_load_location("Local"), Ok(None));
        assert_eq!(go_load_location(""), Ok(Some(Zone::utc())));
        assert_eq!(
            go_load_location("a/../b"),
            Err("time: invalid location name".to_owned())
        );
        assert_eq!(
            go_load_location("\\x"),
            Err("time: invalid location name".to_owned())
        );
    }

    #[test]
    fn wall_clock_and_date() {
        let berlin = zone("Europe/Berlin");
        let w = berlin.wall_clock(at("2024-01-01T00:00:00+0000"));
        assert_eq!(
            w,
            WallClock {
                year: 2024,
                month: 1,
                day: 1,
                hour: 1,
                minute: 0,
                second: 0,
                weekday: 1,
                offset: 3600
            }
        );
        assert_eq!(
            Zone::utc().wall_clock(0).weekday,
            4,
            "1970-01-01 was a Thursday"
        );
        assert_eq!(Zone::utc().wall_clock(-1).year, 1969);
        assert_eq!(Zone::utc().wall_clock(-1).hour, 23);

        assert_eq!(
            berlin.date(2024, 7, 1, 12, 0, 0),
            at("2024-07-01T12:00:00+0200")
        );
        // Carried-over fields, as time.Date normalises them.
        assert_eq!(
            berlin.date(2023, 13, 1, 0, 0, 0),
            at("2024-01-01T00:00:00+0100")
        );
        assert_eq!(
            berlin.date(2024, 0, 1, 0, 0, 0),
            at("2023-12-01T00:00:00+0100")
        );
        assert_eq!(
            berlin.date(2024, 2, 30, 0, 0, 0),
            at("2024-03-01T00:00:00+0100")
        );
        assert_eq!(
            berlin.date(2024, 1, 32, 24, 60, 60),
            at("2024-02-02T01:01:00+0100")
        );
        assert_eq!(
            berlin.date(2024, 3, 1, -1, 0, 0),
            at("2024-02-29T23:00:00+0100")
        );
        // A skipped time reads with the offset before the gap: 02:30 is 03:30 CEST.
        assert_eq!(
            berlin.date(2024, 3, 31, 2, 30, 0),
            at("2024-03-31T03:30:00+0200")
        );
        // A repeated time: the later instant.
        assert_eq!(
            berlin.date(2024, 10, 27, 2, 30, 0),
            at("2024-10-27T02:30:00+0100")
        );
        // West of Greenwich the same rule goes the other way (Go's own
        // time_test.go: "2:30:00 PDT ≡ 1:30 PST"): the skipped 02:30 is 01:30
        // EST, the repeated 01:30 the earlier, EDT one.
        let ny = zone("America/New_York");
        assert_eq!(
            ny.date(2024, 3, 10, 2, 30, 0),
            at("2024-03-10T01:30:00-0500")
        );
        assert_eq!(
            ny.date(2024, 11, 3, 1, 30, 0),
            at("2024-11-03T01:30:00-0400")
        );
        assert_eq!(
            ny.date(2040, 3, 11, 2, 30, 0),
            at("2040-03-11T01:30:00-0500")
        );
        assert_eq!(
            ny.date(2040, 11, 4, 1, 30, 0),
            at("2040-11-04T01:30:00-0400")
        );
        // Round trip over a few years of Berlin hours.
        let mut t = at("2023-01-01T00:00:00+0000");
        while t < at("2026-01-01T00:00:00+0000") {
            let w = berlin.wall_clock(t);
            let back = berlin.date(
                w.year,
                i64::from(w.month),
                i64::from(w.day),
                i64::from(w.hour),
                i64::from(w.minute),
                0,
            );
            // Only the first of the two repeated hours maps elsewhere.
            let repeated_first = w.offset == 7200 && berlin.offset_at(t + 3600) == 3600;
            assert!(back == t || repeated_first && back == t + 3600, "{t}");
            t += 1800;
        }
    }

    /// Go's time_test.go `dateTests` (run there with Local set to
    /// America/Los_Angeles).
    #[test]
    fn date_like_go() {
        let la = zone("America/Los_Angeles");
        for ((y, mo, d, h, mi, s), unix) in [
            ((2011, 11, 6, 1, 0, 0), 1_320_566_400),   // 1:00:00 PDT
            ((2011, 11, 6, 1, 59, 59), 1_320_569_999), // 1:59:59 PDT
            ((2011, 11, 6, 2, 0, 0), 1_320_573_600),   // 2:00:00 PST
            ((2011, 3, 13, 1, 0, 0), 1_300_006_800),   // 1:00:00 PST
            ((2011, 3, 13, 1, 59, 59), 1_300_010_399), // 1:59:59 PST
            ((2011, 3, 13, 3, 0, 0), 1_300_010_400),   // 3:00:00 PDT
            ((2011, 3, 13, 2, 30, 0), 1_300_008_600),  // 2:30:00 PDT ≡ 1:30 PST
            ((2012, 12, 24, 0, 0, 0), 1_356_336_000),  // Leap year
            // Many names for Fri Nov 18 7:56:35 PST 2011.
            ((2011, 11, 18, 7, 56, 35), 1_321_631_795),
            ((2011, 11, 19, -17, 56, 35), 1_321_631_795),
            ((2011, 11, 17, 31, 56, 35), 1_321_631_795),
            ((2011, 11, 18, 6, 116, 35), 1_321_631_795),
            ((2011, 10, 49, 7, 56, 35), 1_321_631_795),
            ((2011, 11, 18, 7, 55, 95), 1_321_631_795),
            ((2011, 12, -12, 7, 56, 35), 1_321_631_795),
            ((2012, 1, -43, 7, 56, 35), 1_321_631_795),
            ((2012, 1 - 2, 18, 7, 56, 35), 1_321_631_795),
            ((2010, 12 + 11, 18, 7, 56, 35), 1_321_631_795),
            ((1970, 1, 15_297, 7, 56, 35), 1_321_631_795),
            ((1970, 1, -25_508, 0, 0, 0), -2_203_948_800),
        ] {
            assert_eq!(
                la.date(y, mo, d, h, mi, s),
                unix,
                "{y}-{mo}-{d} {h}:{mi}:{s}"
            );
        }
    }

    #[test]
    fn posix_tz_strings() {
        assert_eq!(parse_posix_tz("UTC0"), Some(PosixTz::Fixed { offset: 0 }));
        assert_eq!(
            parse_posix_tz("IST-5:30"),
            Some(PosixTz::Fixed { offset: 19_800 })
        );
        assert_eq!(
            parse_posix_tz("<+0330>-3:30"),
            Some(PosixTz::Fixed { offset: 12_600 })
        );
        assert_eq!(
            parse_posix_tz("<-05>5"),
            Some(PosixTz::Fixed { offset: -18_000 })
        );
        assert_eq!(
            parse_posix_tz("XXX-1:02:03"),
            Some(PosixTz::Fixed { offset: 3723 })
        );
        assert_eq!(
            parse_posix_tz("EST5,anything"),
            Some(PosixTz::Fixed { offset: -18_000 })
        );
        let us_rules = parse_posix_tz("EST5EDT,M3.2.0,M11.1.0");
        assert_eq!(
            parse_posix_tz("EST5EDT"),
            us_rules,
            "tzcode's default rules"
        );
        assert_eq!(
            parse_posix_tz("CET-1CEST,M3.5.0,M10.5.0/3"),
            Some(PosixTz::Dst {
                std_offset: 3600,
                dst_offset: 7200,
                start: Rule {
                    kind: RuleKind::MonthWeekDay {
                        month: 3,
                        week: 5,
                        day: 0
                    },
                    time: 7200
                },
                end: Rule {
                    kind: RuleKind::MonthWeekDay {
                        month: 10,
                        week: 5,
                        day: 0
                    },
                    time: 10_800
                },
            })
        );
        assert_eq!(
            parse_posix_tz("AAA3BBB2;J60/-1,300/26:30"),
            Some(PosixTz::Dst {
                std_offset: -10_800,
                dst_offset: -7200,
                start: Rule {
                    kind: RuleKind::Julian(60),
                    time: -3600
                },
                end: Rule {
                    kind: RuleKind::DayOfYear(300),
                    time: 95_400
                },
            })
        );
        for bad in [
            "",
            "AB1",
            "AAA",
            "AAA+",
            "<AAA-1",
            "AAA-1BBB,M3.2.0",
            "AAA-1BBB,M13.1.0,M1.1.0",
            "AAA-1BBB,J0,J1",
            "AAA-1BBB,366,1",
            "AAA-1BBB,M3.2.0,M11.1.0x",
            "AAA169",
        ] {
            assert_eq!(parse_posix_tz(bad), None, "{bad:?}");
        }
    }

    /// A zone with no transitions and only a footer, as Go builds one for
    /// a TZif file without transitions.
    fn footer_zone(footer: &str) -> Zone {
        Zone {
            name: footer.to_owned(),
            types: vec![LocalType {
                offset: 0,
                is_dst: false,
            }],
            transitions: vec![Transition {
                when: i64::MIN,
                index: 0,
            }],
            extend: parse_posix_tz(footer),
        }
    }

    #[test]
    fn julian_and_day_of_year_rules() {
        // Jn never counts February 29: J60 is March 1st every year.
        let j = footer_zone("AAA-1BBB,J60,J300");
        for year in ["2040", "2041"] {
            // 02:00 AAA (+1) is 01:00 UTC.
            assert_eq!(
                j.offset_at(at(&format!("{year}-03-01T00:59:59+0000"))),
                3600,
                "{year}"
            );
            assert_eq!(
                j.offset_at(at(&format!("{year}-03-01T01:00:00+0000"))),
                7200,
                "{year}"
            );
        }
        // J300 is October 27th; 02:00 BBB (+2) is 00:00 UTC.
        assert_eq!(j.offset_at(at("2040-10-26T23:59:59+0000")), 7200);
        assert_eq!(j.offset_at(at("2040-10-27T00:00:00+0000")), 3600);
        // n counts from 0 and counts February 29: 59 is Feb 29 in a leap year.
        let n = footer_zone("AAA-1BBB,59,299");
        assert_eq!(n.offset_at(at("2040-02-29T00:59:59+0000")), 3600);
        assert_eq!(n.offset_at(at("2040-02-29T01:00:00+0000")), 7200);
        assert_eq!(n.offset_at(at("2041-03-01T00:59:59+0000")), 3600);
        assert_eq!(n.offset_at(at("2041-03-01T01:00:00+0000")), 7200);
        // Week 5 is the last such weekday: March 2041 has four Sundays after the 3rd.
        let last = footer_zone("CET-1CEST,M3.5.0,M10.5.0/3");
        assert_eq!(last.offset_at(at("2041-03-31T00:59:59+0000")), 3600);
        assert_eq!(last.offset_at(at("2041-03-31T01:00:00+0000")), 7200);
        // A footer Go cannot read leaves the last type in force.
        assert_eq!(
            footer_zone("AB1").offset_at(at("2040-07-01T00:00:00+0000")),
            0
        );
    }

    /// Builds a TZif file: a version 1 block (32-bit) then, for version 2,
    /// the 64-bit block and the footer.
    fn tzif(
        version: u8,
        transitions: &[(i64, u8)],
        types: &[(i32, bool)],
        footer: &str,
    ) -> Vec<u8> {
        let abbrev = b"AAA\0BBB\0";
        let block = |wide: bool| {
            let mut out = Vec::new();
            out.extend_from_slice(b"TZif");
            out.push(version);
            out.extend_from_slice(&[0; 15]);
            for count in [0, 0, 0, transitions.len(), types.len(), abbrev.len()] {
                out.extend_from_slice(&(count as u32).to_be_bytes());
            }
            for &(when, _) in transitions {
                if wide {
                    out.extend_from_slice(&when.to_be_bytes());
                } else {
                    out.extend_from_slice(&(when as i32).to_be_bytes());
                }
            }
            out.extend(transitions.iter().map(|&(_, index)| index));
            for (i, &(offset, dst)) in types.iter().enumerate() {
                out.extend_from_slice(&offset.to_be_bytes());
                out.push(u8::from(dst));
                out.push(if i % 2 == 0 { 0 } else { 4 });
            }
            out.extend_from_slice(abbrev);
            out
        };
        let mut data = block(false);
        if version != 0 {
            data.extend(block(true));
            data.extend_from_slice(format!("\n{footer}\n").as_bytes());
        }
        data
    }

    #[test]
    fn tzif_files() {
        let types = [(3600, false), (7200, true)];
        let data = tzif(
            b'2',
            &[(1_000_000, 1), (2_000_000, 0), (5_000_000_000, 1)],
            &types,
            "AAA-1BBB,J60,J300",
        );
        let z = Zone::from_tzif("Test/Zone", &data).unwrap();
        assert_eq!(z.name(), "Test/Zone");
        assert_eq!(z.transitions.len(), 3);
        // The 64-bit block was read: the third transition is past 2038.
        assert_eq!(z.transitions[2].when, 5_000_000_000);
        // Before the first transition: the first type is used, so the first
        // standard one.
        assert_eq!(z.offset_at(0), 3600);
        assert_eq!(z.offset_at(1_000_000), 7200);
        assert_eq!(z.offset_at(1_999_999), 7200);
        assert_eq!(z.offset_at(2_000_000), 3600);
        assert_eq!(z.offset_at(4_999_999_999), 3600);
        // After the last transition, the footer.
        assert_eq!(z.offset_at(at("2200-07-01T00:00:00+0000")), 7200);
        assert_eq!(z.offset_at(at("2200-12-01T00:00:00+0000")), 3600);

        // Version 1: 32-bit times, no footer.
        let v1 = Zone::from_tzif("V1", &tzif(0, &[(1_000_000, 1)], &types, "")).unwrap();
        assert_eq!(v1.offset_at(999_999), 3600);
        assert_eq!(v1.offset_at(at("2200-12-01T00:00:00+0000")), 7200);
        assert_eq!(v1.extend, None);

        // No transitions: one covering all time, then the footer.
        let fixed =
            Zone::from_tzif("Fixed", &tzif(b'3', &[], &[(-18_000, false)], "<-05>5")).unwrap();
        assert_eq!(fixed.offset_at(i64::MIN + 1), -18_000);
        assert_eq!(fixed.offset_at(i64::MAX), -18_000);

        // Malformed files.
        let bad = |data: &[u8]| Zone::from_tzif("Bad", data).unwrap_err();
        assert_eq!(bad(b"TZif"), BAD_DATA);
        assert_eq!(
            bad(b"NotTZif2 and then some more bytes than a header needs"),
            BAD_DATA
        );
        assert_eq!(bad(&data[..data.len() / 2]), BAD_DATA);
        let mut wrong_version = data.clone();
        wrong_version[4] = b'9';
        assert_eq!(bad(&wrong_version), BAD_DATA);
        assert_eq!(
            bad(&tzif(b'2', &[], &[], "UTC0")),
            BAD_DATA,
            "no local time types"
        );
        assert_eq!(
            bad(&tzif(b'2', &[(5, 2)], &types, "UTC0")),
            BAD_DATA,
            "type index out of range"
        );
    }

    #[test]
    fn system_zone_files_parse() {
        for name in [
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "Etc/UTC",
            "Etc/GMT+5",
            "America/Sao_Paulo",
        ] {
            let z = zone(name);
            assert!(z.extend.is_some(), "{name} has a footer Go can read");
        }
    }

    #[test]
    fn extreme_instants_do_not_overflow() {
        let zones = [
            zone("America/New_York"),
            zone("Australia/Lord_Howe"),
            footer_zone("AAA-1BBB,J60,J300"),
            footer_zone("<-05>5"),
            Zone::utc(),
        ];
        for z in &zones {
            for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
                let w = z.wall_clock(t);
                assert!(
                    (1..=12).contains(&w.month) && (1..=31).contains(&w.day),
                    "{t}"
                );
                assert!(z.offset_at(t).abs() < 86_400);
            }
            for y in [i64::MIN, -1_000_000_000_000, 1_000_000_000_000, i64::MAX] {
                let _ = z.date(y, i64::MAX, i64::MIN, i64::MAX, i64::MIN, i64::MAX);
            }
        }
    }

    #[test]
    fn out_of_range_instants() {
        let s = parse("* * * * *").unwrap();
        assert_eq!(s.next_after(i64::MAX, &Zone::utc()), None);
        assert_eq!(s.next_after(i64::MIN, &Zone::utc()), None);
        assert_eq!(
            parse("@every 1s")
                .unwrap()
                .next_after(i64::MAX, &Zone::utc()),
            None
        );
        // Far but within range.
        assert_eq!(
            s.next_after(-62_135_596_800, &Zone::utc()),
            Some(-62_135_596_740)
        );
    }
}

//! Completion indexes as a Job's status writes them: `"1,3-5,7"`
//! (kube's `orderedIntervals`).

use std::collections::BTreeSet;

/// The indexes of `s`, ignoring what does not parse (kube does the same:
/// a status written by hand must not stop the controller).
pub fn parse(s: Option<&str>) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<i32>().ok()),
        }
    }
    out
}

/// `set` as intervals: consecutive indexes become `a-b`.
pub fn format(set: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in set {
        run = match run {
            Some((a, b)) if b + 1 == i => Some((a, i)),
            Some(r) => {
                parts.push(interval(r));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    parts.extend(run.map(interval));
    parts.join(",")
}

fn interval((a, b): (i32, i32)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_trip() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(format(&set), "0-2,4,6-7");
        assert_eq!(parse(Some("0-2,4,6-7")), set);
        assert_eq!(format(&BTreeSet::new()), "");
        assert!(parse(None).is_empty());
        assert_eq!(parse(Some("3,x,5-")), [3].into());
    }
}

//! Resource quantities (`100m`, `1.5`, `128Mi`, `1e3`, `2G`) as
//! Kubernetes reads them: a decimal number with an optional binary
//! (`Ki`…`Ei`), decimal (`n u m k M G T P E`) or exponent suffix.
//!
//! Values are kept in milli-units, rounded up as `Quantity.MilliValue()`
//! rounds, which is exact for every quantity Kubernetes accepts at the
//! precision it keeps.

/// A quantity in thousandths of its unit (`100m` CPU → 100, `1Ki` → 1,024,000).
pub type Milli = i128;

/// Parses a quantity into milli-units; `None` if it is not one.
pub fn parse_milli(s: &str) -> Option<Milli> {
    let s = s.trim();
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let (negative, digits) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || int.len() + frac.len() > 30
    {
        return None;
    }
    // The number as an integer scaled by 10^-scale.
    let mantissa: i128 = format!("{int}{frac}").parse().ok()?;
    let mut scale = frac.len() as i32;
    let mut binary: i128 = 1;
    match suffix {
        "" => {}
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = "KMGTPE".find(&suffix[..1])? as u32 + 1;
            binary = 1i128 << (10 * power);
        }
        "n" => scale += 9,
        "u" => scale += 6,
        "m" => scale += 3,
        "k" => scale -= 3,
        "M" => scale -= 6,
        "G" => scale -= 9,
        "T" => scale -= 12,
        "P" => scale -= 15,
        "E" => scale -= 18,
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            if exp.abs() > 30 {
                return None;
            }
            scale -= exp;
        }
        _ => return None,
    }
    // milli = mantissa * binary * 1000 / 10^scale, rounded up.
    let mut value = mantissa.checked_mul(binary)?.checked_mul(1000)?;
    if scale < 0 {
        value = value.checked_mul(10i128.checked_pow((-scale) as u32)?)?;
    } else if scale > 0 {
        let div = 10i128.checked_pow(scale as u32)?;
        value = (value + div - 1) / div;
    }
    Some(if negative { -value } else { value })
}

/// Parses a quantity into whole units, rounded up (`Quantity.Value()`).
pub fn parse_value(s: &str) -> Option<i128> {
    parse_milli(s).map(|m| (m + 999).div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_kubernetes_reads_them() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("1"), Some(1000));
        assert_eq!(parse_milli("0.5"), Some(500));
        assert_eq!(parse_milli(".25"), Some(250));
        assert_eq!(parse_value("128Mi"), Some(128 << 20));
        assert_eq!(parse_value("1Gi"), Some(1 << 30));
        assert_eq!(parse_value("2G"), Some(2_000_000_000));
        assert_eq!(parse_value("1e3"), Some(1000));
        assert_eq!(parse_value("1.5k"), Some(1500));
        assert_eq!(parse_milli("1n"), Some(1), "rounded up");
        assert_eq!(parse_value("1500m"), Some(2), "rounded up");
        assert_eq!(parse_milli("-1"), Some(-1000));
        for bad in ["", "m", "1x", "1.2.3", "Gi", "1e", "abc", "1e99"] {
            assert_eq!(parse_milli(bad), None, "{bad}");
        }
    }
}

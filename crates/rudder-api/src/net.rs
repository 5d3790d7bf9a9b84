//! IPv4 ranges given on the command line (`--service-cidr`,
//! `--cluster-cidr`).

use std::net::Ipv4Addr;

/// Parses `10.43.0.0/16` into its network address and prefix length; the
/// prefix must lie in `allowed`.
pub fn parse_ipv4_cidr(
    cidr: &str,
    allowed: std::ops::RangeInclusive<u8>,
) -> Result<(u32, u8), String> {
    let (ip, len) = cidr
        .split_once('/')
        .ok_or_else(|| format!("{cidr:?} is not a CIDR such as 10.42.0.0/16"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("{cidr:?}: {ip:?} is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| allowed.contains(l))
        .ok_or_else(|| {
            format!(
                "{cidr:?}: the prefix must be /{} to /{}",
                allowed.start(),
                allowed.end()
            )
        })?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((u32::from(ip) & mask, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_to_their_network() {
        assert_eq!(
            parse_ipv4_cidr("10.43.7.9/16", 8..=30),
            Ok((u32::from(Ipv4Addr::new(10, 43, 0, 0)), 16))
        );
        assert!(parse_ipv4_cidr("10.43.0.0/31", 8..=30).is_err());
        assert!(parse_ipv4_cidr("10.43.0.0", 8..=30).is_err());
        assert!(parse_ipv4_cidr("ten/8", 8..=30).is_err());
    }
}

//! The name shapes of cluster DNS that are computed rather than stored:
//! dashed IP labels (`10-0-0-1`, upstream's encoding for pod names and
//! hostname-less endpoints) and reverse (`in-addr.arpa`, `ip6.arpa`) names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The dashed label of an address: `10.1.2.3` → `10-1-2-3`,
/// `fd00::1` → `fd00--1`, as upstream names pods and endpoints.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// The address a dashed label encodes, if any (the inverse of [`dashed`]).
pub fn undashed(label: &str) -> Option<IpAddr> {
    if label.matches('-').count() == 3
        && let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>()
    {
        return Some(IpAddr::V4(v4));
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The reverse name of an address, lowercase with the trailing dot:
/// `10.43.0.10` → `10.0.43.10.in-addr.arpa.`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(73);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str("ip6.arpa.");
            out
        }
    }
}

/// The address a complete reverse name stands for (lowercase, with or
/// without the trailing dot); partial names (a reverse zone) give `None`.
pub fn parse_reverse(name: &str) -> Option<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let labels: Vec<&str> = rest.split('.').collect();
        if labels.len() != 4 {
            return None;
        }
        for (i, label) in labels.iter().rev().enumerate() {
            if label.is_empty() || (label.len() > 1 && label.starts_with('0')) {
                return None;
            }
            octets[i] = label.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.len() != 32 {
        return None;
    }
    let mut bits: u128 = 0;
    for label in labels.iter().rev() {
        let [c] = label.as_bytes() else { return None };
        let nibble = (*c as char).to_digit(16)?;
        bits = (bits << 4) | u128::from(nibble);
    }
    Some(IpAddr::V6(Ipv6Addr::from(bits)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dashed_round_trips() {
        for ip in ["10.42.1.7", "fd00::1", "2001:db8::a:b"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(undashed(&dashed(ip)), Some(ip), "{ip}");
        }
        assert_eq!(dashed("10.42.1.7".parse().unwrap()), "10-42-1-7");
        assert_eq!(undashed("web-0"), None);
        assert_eq!(undashed("1-2-3"), None);
        assert_eq!(undashed("300-1-1-1"), None);
    }

    #[test]
    fn reverse_round_trips() {
        let v4: IpAddr = "10.43.0.10".parse().unwrap();
        assert_eq!(reverse_name(v4), "10.0.43.10.in-addr.arpa.");
        assert_eq!(parse_reverse(&reverse_name(v4)), Some(v4));
        let v6: IpAddr = "fd00:10:43::a".parse().unwrap();
        let name = reverse_name(v6);
        assert!(name.starts_with("a.0.0.0.0.0.0.0."), "{name}");
        assert_eq!(parse_reverse(&name), Some(v6));
        assert_eq!(parse_reverse("0.43.10.in-addr.arpa."), None);
        assert_eq!(parse_reverse("01.0.43.10.in-addr.arpa."), None);
        assert_eq!(parse_reverse("example.com."), None);
    }
}

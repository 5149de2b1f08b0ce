//! IP ranges (`10.0.0.0/8`, `2001:db8::/32`, or a bare address) as
//! Services' `loadBalancerSourceRanges` give them: parsed once so the
//! ruleset can split them by family and ask whether a node address falls
//! inside one (upstream then also lets load-balancer IPs through as sources).

use std::fmt;
use std::net::IpAddr;

/// A network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `a.b.c.d/n`, `x::y/n`, or a bare address (a /32 or /128); `None`
    /// when malformed (upstream skips such ranges too).
    pub fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    fn bits(ip: IpAddr) -> (u128, u8) {
        match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    }

    /// Whether `ip` (of the same family) lies inside the range.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let (net, width) = Cidr::bits(self.addr);
        let (host, _) = Cidr::bits(*ip);
        let shift = u32::from(width - self.prefix);
        net.checked_shr(shift).unwrap_or(0) == host.checked_shr(shift).unwrap_or(0)
    }
}

impl fmt::Display for Cidr {
    /// The network address and prefix (host bits cleared, so nft accepts
    /// it as an interval).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (bits, width) = Cidr::bits(self.addr);
        let shift = u32::from(width - self.prefix);
        let masked = bits
            .checked_shr(shift)
            .and_then(|b| b.checked_shl(shift))
            .unwrap_or(0);
        let net = match self.addr {
            IpAddr::V4(_) => IpAddr::from(u32::try_from(masked).unwrap_or(0).to_be_bytes()),
            IpAddr::V6(_) => IpAddr::from(masked.to_be_bytes()),
        };
        write!(f, "{net}/{}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn parse_contains_display() {
        let c = Cidr::parse("192.0.2.77/24");
        assert_eq!(c.map(|c| c.to_string()).as_deref(), Some("192.0.2.0/24"));
        assert!(c.is_some_and(|c| c.contains(&ip("192.0.2.200"))));
        assert!(!c.is_some_and(|c| c.contains(&ip("192.0.3.1"))));
        assert!(!c.is_some_and(|c| c.contains(&ip("::1"))));
        let any = Cidr::parse("0.0.0.0/0");
        assert!(any.is_some_and(|c| c.contains(&ip("8.8.8.8"))));
        assert_eq!(
            Cidr::parse("203.0.113.9").map(|c| c.to_string()).as_deref(),
            Some("203.0.113.9/32")
        );
        let v6 = Cidr::parse("2001:db8::1/32");
        assert_eq!(v6.map(|c| c.to_string()).as_deref(), Some("2001:db8::/32"));
        assert!(v6.is_some_and(|c| c.contains(&ip("2001:db8:ffff::1"))));
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("nope/8"), None);
        assert_eq!(Cidr::parse(""), None);
    }
}

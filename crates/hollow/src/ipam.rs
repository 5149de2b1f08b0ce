//! Pod IPs from a node's `spec.podCIDR`, as the CNI host-local plugin hands
//! them out (the first address is the bridge's gateway), and the /24s that
//! hollow nodes claim themselves when asked to.

use std::net::Ipv4Addr;

/// An IPv4 CIDR as (network, prefix length).
fn parse(cidr: &str) -> Result<(u32, u8), String> {
    let (ip, bits) = cidr
        .split_once('/')
        .ok_or_else(|| "expected <address>/<prefix length>".to_owned())?;
    let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{e}"))?;
    let bits: u8 = bits.parse().map_err(|e| format!("{e}"))?;
    if bits > 30 {
        return Err("the prefix length must be at most 30".into());
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Ok((u32::from(ip) & mask, bits))
}

/// A range split into /24s: node i claims the i-th.
#[derive(Clone, Debug)]
pub struct Subnets {
    base: u32,
    count: usize,
}

impl Subnets {
    pub fn parse(cidr: &str) -> Result<Subnets, String> {
        let (base, bits) = parse(cidr)?;
        if bits > 24 {
            return Err("the range must hold at least one /24".into());
        }
        Ok(Subnets {
            base,
            count: 1 << (24 - bits),
        })
    }

    /// The i-th /24, if the range has one.
    pub fn nth(&self, i: usize) -> Option<String> {
        if i >= self.count {
            return None;
        }
        let net = self.base + ((i as u32) << 8);
        Some(format!("{}/24", Ipv4Addr::from(net)))
    }
}

/// Larger pod CIDRs are capped to this many addresses (a node never runs
/// more pods than its `pods` capacity anyway).
const MAX_ADDRESSES: u32 = 1 << 16;

/// Which addresses of one node's pod CIDR are in use.
#[derive(Clone, Debug)]
pub struct PodAddresses {
    /// The first address handed out (network + 2; + 1 is the gateway).
    first: u32,
    /// One bit per address from `first`.
    used: Vec<u64>,
    size: u32,
}

impl PodAddresses {
    pub fn new(cidr: &str) -> Result<PodAddresses, String> {
        let (base, bits) = parse(cidr)?;
        // Network, gateway and broadcast are never pods'.
        let size = ((1u64 << (32 - bits)) - 3).min(u64::from(MAX_ADDRESSES)) as u32;
        Ok(PodAddresses {
            first: base + 2,
            used: vec![0; size.div_ceil(64) as usize],
            size,
        })
    }

    /// The lowest free address, now taken; `None` when all are taken.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        for (w, word) in self.used.iter_mut().enumerate() {
            if *word != u64::MAX {
                let bit = word.trailing_ones();
                let offset = w as u32 * 64 + bit;
                if offset >= self.size {
                    return None;
                }
                *word |= 1 << bit;
                return Some(Ipv4Addr::from(self.first + offset));
            }
        }
        None
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(ip).checked_sub(self.first)?;
        (offset < self.size).then_some(offset)
    }

    /// Marks `ip` as taken (a pod already running when we start); false if
    /// it is not in this range.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        match self.offset(ip) {
            Some(o) => {
                self.used[(o / 64) as usize] |= 1 << (o % 64);
                true
            }
            None => false,
        }
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(o) = self.offset(ip) {
            self.used[(o / 64) as usize] &= !(1 << (o % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_network_and_gateway_and_are_reused() {
        let mut a = PodAddresses::new("10.42.3.0/24").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.allocate(), Some(Ipv4Addr::new(10, 42, 3, 2)));
        assert_eq!(a.allocate(), Some(Ipv4Addr::new(10, 42, 3, 3)));
        a.release(Ipv4Addr::new(10, 42, 3, 2));
        assert_eq!(a.allocate(), Some(Ipv4Addr::new(10, 42, 3, 2)));
        assert!(a.reserve(Ipv4Addr::new(10, 42, 3, 4)));
        assert_eq!(a.allocate(), Some(Ipv4Addr::new(10, 42, 3, 5)));
        assert!(!a.reserve(Ipv4Addr::new(10, 42, 4, 4)));
        let mut n = 4;
        while a.allocate().is_some() {
            n += 1;
        }
        // .2 through .254: 253 pods.
        assert_eq!(n, 253);
    }

    #[test]
    fn claimed_subnets_are_consecutive_24s() {
        let s = Subnets::parse("10.64.0.0/14").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.nth(0).as_deref(), Some("10.64.0.0/24"));
        assert_eq!(s.nth(999).as_deref(), Some("10.67.231.0/24"));
        assert_eq!(s.nth(1024), None);
        assert!(Subnets::parse("10.64.0.0/25").is_err());
        assert!(Subnets::parse("nonsense").is_err());
    }
}

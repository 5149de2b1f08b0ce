//! Pod CIDRs carved from the cluster CIDR: each node gets the lowest free
//! subnet, and a subnet in use is never handed out twice.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Why a CIDR setting is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("{0:?} is not an IPv4 CIDR")]
    Invalid(String),
    #[error("node mask /{node} must be at least the cluster mask /{cluster} and at most /30")]
    Mask { cluster: u8, node: u8 },
}

/// The cluster CIDR split into equal node subnets.
#[derive(Clone, Debug)]
pub struct Allocator {
    base: u32,
    cluster_bits: u8,
    node_bits: u8,
}

fn parse(cidr: &str) -> Option<(u32, u8)> {
    let (ip, bits) = cidr.trim().split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    (bits <= 32).then_some((u32::from(ip), bits))
}

fn mask(bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits))
    }
}

impl Allocator {
    /// `cluster` (e.g. `10.42.0.0/16`) split into `/node_bits` subnets.
    pub fn new(cluster: &str, node_bits: u8) -> Result<Self, CidrError> {
        let (ip, cluster_bits) =
            parse(cluster).ok_or_else(|| CidrError::Invalid(cluster.into()))?;
        if node_bits < cluster_bits || node_bits > 30 {
            return Err(CidrError::Mask {
                cluster: cluster_bits,
                node: node_bits,
            });
        }
        Ok(Allocator {
            base: ip & mask(cluster_bits),
            cluster_bits,
            node_bits,
        })
    }

    /// The index of `cidr` among the node subnets, if it is one.
    pub fn index_of(&self, cidr: &str) -> Option<u32> {
        let (ip, bits) = parse(cidr)?;
        if bits != self.node_bits || ip & mask(self.cluster_bits) != self.base {
            return None;
        }
        Some((ip - self.base) >> (32 - u32::from(self.node_bits)))
    }

    /// The lowest subnet whose index is not in `used`.
    pub fn next_free(&self, used: &BTreeSet<u32>) -> Option<String> {
        let count: u64 = 1 << (self.node_bits - self.cluster_bits);
        let index = (0..count)
            .filter_map(|i| u32::try_from(i).ok())
            .find(|i| !used.contains(i))?;
        let ip = self.base + (index << (32 - u32::from(self.node_bits)));
        Some(format!("{}/{}", Ipv4Addr::from(ip), self.node_bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_subnet_first() {
        let a = Allocator::new("10.42.0.0/16", 24).unwrap_or_else(|e| panic!("{e}"));
        let mut used = BTreeSet::new();
        assert_eq!(a.next_free(&used).as_deref(), Some("10.42.0.0/24"));
        used.insert(a.index_of("10.42.0.0/24").unwrap_or(999));
        used.insert(a.index_of("10.42.2.0/24").unwrap_or(999));
        assert_eq!(a.next_free(&used).as_deref(), Some("10.42.1.0/24"));
        assert_eq!(a.index_of("10.43.0.0/24"), None);
        assert_eq!(a.index_of("10.42.5.0/25"), None);
        let full: BTreeSet<u32> = (0..256).collect();
        assert_eq!(a.next_free(&full), None);
        assert!(Allocator::new("10.42.0.0/16", 8).is_err());
        assert!(Allocator::new("nonsense", 24).is_err());
    }
}

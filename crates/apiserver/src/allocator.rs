//! Service ClusterIP and NodePort allocation without duplicates — also under
//! concurrent creates and across restarts — by claiming each address or
//! port with a create-if-absent marker key in the store.

use std::net::Ipv4Addr;
use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;
use skiff_store::{Store, StoreError};

use crate::status::ApiError;

/// The service CIDR (10.43.0.0/16) and node port range (30000–32767).
#[derive(Clone, Debug)]
pub struct Ranges {
    pub service_network: Ipv4Addr,
    pub service_prefix: u8,
    pub node_ports: std::ops::RangeInclusive<u16>,
}

impl Default for Ranges {
    fn default() -> Self {
        Ranges {
            service_network: Ipv4Addr::new(10, 43, 0, 0),
            service_prefix: 16,
            node_ports: 30000..=32767,
        }
    }
}

impl Ranges {
    /// The first usable address: the `kubernetes` Service's ClusterIP.
    pub fn api_service_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.service_network) + 1)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - u32::from(self.service_prefix.min(30)))
    }

    pub fn contains_ip(&self, ip: Ipv4Addr) -> bool {
        let offset = u32::from(ip).wrapping_sub(u32::from(self.service_network));
        offset > 0 && offset < self.size() - 1
    }
}

const IP_KEYS: &str = "/ranges/serviceips/";
const PORT_KEYS: &str = "/ranges/servicenodeports/";

pub struct Allocator {
    store: Arc<dyn Store>,
    pub ranges: Ranges,
}

impl Allocator {
    pub fn new(store: Arc<dyn Store>, ranges: Ranges) -> Self {
        Allocator { store, ranges }
    }

    async fn claim(&self, key: String) -> Result<bool, ApiError> {
        match self.store.create(&key, Bytes::new(), None).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(ApiError::internal(format!("allocating {key}: {e}"))),
        }
    }

    /// Claims a specific address asked for by the user.
    pub async fn claim_ip(&self, ip: Ipv4Addr) -> Result<bool, ApiError> {
        self.claim(format!("{IP_KEYS}{ip}")).await
    }

    /// A free ClusterIP. Random probing first, then a sweep, so a nearly
    /// full range still finds the last free address.
    pub async fn allocate_ip(&self) -> Result<Ipv4Addr, ApiError> {
        let base = u32::from(self.ranges.service_network);
        let size = self.ranges.size();
        for _ in 0..64 {
            let offset = rand::rng().random_range(2..size - 1);
            let ip = Ipv4Addr::from(base + offset);
            if self.claim_ip(ip).await? {
                return Ok(ip);
            }
        }
        for offset in 2..size - 1 {
            let ip = Ipv4Addr::from(base + offset);
            if self.claim_ip(ip).await? {
                return Ok(ip);
            }
        }
        Err(ApiError::internal(
            "range is full: no ClusterIP left in the service CIDR",
        ))
    }

    pub async fn claim_port(&self, port: u16) -> Result<bool, ApiError> {
        self.claim(format!("{PORT_KEYS}{port}")).await
    }

    pub async fn allocate_port(&self) -> Result<u16, ApiError> {
        let range = self.ranges.node_ports.clone();
        for _ in 0..64 {
            let port = rand::rng().random_range(range.clone());
            if self.claim_port(port).await? {
                return Ok(port);
            }
        }
        for port in range {
            if self.claim_port(port).await? {
                return Ok(port);
            }
        }
        Err(ApiError::internal("range is full: no NodePort left"))
    }

    /// Releases what a deleted Service held (best effort: a leaked marker
    /// only wastes one address).
    pub async fn release(&self, ips: &[String], ports: &[u16]) {
        for ip in ips {
            let _ = self.store.delete(&format!("{IP_KEYS}{ip}"), None).await;
        }
        for port in ports {
            let _ = self.store.delete(&format!("{PORT_KEYS}{port}"), None).await;
        }
    }
}

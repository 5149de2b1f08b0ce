//! Facts about the host the Node reports: capacity and nodeInfo, read from
//! /proc and /etc the way upstream's cadvisor-backed kubelet reports them.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// What the machine has, before reservations.
#[derive(Clone, Debug, PartialEq)]
pub struct Capacity {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub max_pods: u32,
}

impl Capacity {
    /// Reads the host: online CPUs, `MemTotal`, and the size of the
    /// filesystem holding `root_dir` (the kubelet's and containers' disk).
    pub fn read(root_dir: &Path, max_pods: u32) -> Capacity {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| meminfo_total(&text))
            .unwrap_or(0);
        let ephemeral_storage_bytes = disk_size(root_dir).unwrap_or(0);
        Capacity {
            cpus,
            memory_bytes,
            ephemeral_storage_bytes,
            max_pods,
        }
    }

    /// The `status.capacity` map, in upstream's units (Ki for bytes).
    pub fn quantities(&self) -> BTreeMap<String, Quantity> {
        let mut map = BTreeMap::new();
        map.insert("cpu".to_owned(), Quantity(self.cpus.to_string()));
        map.insert(
            "memory".to_owned(),
            Quantity(format!("{}Ki", self.memory_bytes / 1024)),
        );
        map.insert(
            "ephemeral-storage".to_owned(),
            Quantity(format!("{}Ki", self.ephemeral_storage_bytes / 1024)),
        );
        map.insert("pods".to_owned(), Quantity(self.max_pods.to_string()));
        map.insert("hugepages-2Mi".to_owned(), Quantity("0".to_owned()));
        map.insert("hugepages-1Gi".to_owned(), Quantity("0".to_owned()));
        map
    }

    /// `status.allocatable`: capacity minus what is reserved for the
    /// system and the kubelet (upstream's `--kube-reserved`/`--system-reserved`),
    /// and minus the hard eviction threshold for memory (100Mi).
    pub fn allocatable(&self, reserved: &Reserved) -> BTreeMap<String, Quantity> {
        let millicpus = (self.cpus * 1000).saturating_sub(reserved.millicpus);
        let memory = self
            .memory_bytes
            .saturating_sub(reserved.memory_bytes)
            .saturating_sub(100 * 1024 * 1024);
        let storage = self
            .ephemeral_storage_bytes
            .saturating_sub(reserved.ephemeral_storage_bytes);
        let mut map = self.quantities();
        map.insert(
            "cpu".to_owned(),
            Quantity(if millicpus.is_multiple_of(1000) {
                (millicpus / 1000).to_string()
            } else {
                format!("{millicpus}m")
            }),
        );
        map.insert(
            "memory".to_owned(),
            Quantity(format!("{}Ki", memory / 1024)),
        );
        // Upstream reports allocatable storage in bytes.
        map.insert(
            "ephemeral-storage".to_owned(),
            Quantity(storage.to_string()),
        );
        map
    }
}

/// Resources kept back from pods (sum of kube-reserved and system-reserved).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reserved {
    pub millicpus: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
}

impl Reserved {
    /// Adds an upstream-style list (`cpu=100m,memory=256Mi,ephemeral-storage=1Gi`),
    /// as `--kube-reserved` and `--system-reserved` take it.
    pub fn add_list(&mut self, list: &str) -> Result<(), String> {
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not name=quantity"))?;
            let milli = skiff_apimachinery::quantity::parse_milli(value)
                .filter(|v| *v >= 0)
                .ok_or_else(|| format!("{value:?} is not a quantity"))?;
            let whole = u64::try_from(milli / 1000).unwrap_or(0);
            match name {
                "cpu" => self.millicpus += u64::try_from(milli).unwrap_or(0),
                "memory" => self.memory_bytes += whole,
                "ephemeral-storage" => self.ephemeral_storage_bytes += whole,
                "pid" => {}
                other => return Err(format!("unsupported resource {other:?}")),
            }
        }
        Ok(())
    }
}

fn meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn disk_size(path: &Path) -> Option<u64> {
    let mut dir = path.to_path_buf();
    while !dir.exists() {
        dir = dir.parent()?.to_path_buf();
    }
    let stat = rustix::fs::statvfs(&dir).ok()?;
    Some(stat.f_blocks * stat.f_frsize)
}

/// `status.nodeInfo` fields that come from the host.
#[derive(Clone, Debug, Default)]
pub struct HostInfo {
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

impl HostInfo {
    pub fn read() -> HostInfo {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let machine_id = read("/etc/machine-id");
        let system_uuid = {
            let uuid = read("/sys/class/dmi/id/product_uuid");
            if uuid.is_empty() {
                machine_id.clone()
            } else {
                uuid
            }
        };
        HostInfo {
            system_uuid,
            machine_id,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            os_image: os_image(&read("/etc/os-release")),
        }
    }
}

fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".to_owned())
}

/// Upstream's name for this machine's architecture (`GOARCH`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_parsed_in_bytes() {
        let text = "MemTotal:       24588200 kB\nMemFree:        1 kB\n";
        assert_eq!(meminfo_total(text), Some(24588200 * 1024));
    }

    #[test]
    fn allocatable_subtracts_reservations_and_the_eviction_threshold() {
        let cap = Capacity {
            cpus: 2,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 10 << 30,
            max_pods: 110,
        };
        let reserved = Reserved {
            millicpus: 250,
            memory_bytes: 0,
            ephemeral_storage_bytes: 0,
        };
        let alloc = cap.allocatable(&reserved);
        assert_eq!(alloc["cpu"].0, "1750m");
        assert_eq!(
            alloc["memory"].0,
            format!("{}Ki", ((4u64 << 30) - (100 << 20)) / 1024)
        );
        assert_eq!(alloc["pods"].0, "110");
    }

    #[test]
    fn reservations_parse_like_upstream_flags() {
        let mut r = Reserved::default();
        assert!(r.add_list("cpu=100m,memory=256Mi").is_ok());
        assert!(r.add_list("cpu=0.5,ephemeral-storage=1Gi").is_ok());
        assert_eq!(r.millicpus, 600);
        assert_eq!(r.memory_bytes, 256 << 20);
        assert_eq!(r.ephemeral_storage_bytes, 1 << 30);
        assert!(r.add_list("gpu=1").is_err());
        assert!(r.add_list("memory").is_err());
    }

    #[test]
    fn os_image_comes_from_pretty_name() {
        assert_eq!(
            os_image("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
    }
}

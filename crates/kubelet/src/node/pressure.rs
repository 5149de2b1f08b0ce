//! Node-pressure signals and upstream's hard eviction thresholds
//! (`memory.available<100Mi`, `nodefs.available<10%`,
//! `nodefs.inodesFree<5%`, `imagefs.available<15%`): they set the Node's
//! MemoryPressure/DiskPressure conditions and make the kubelet evict pods.

use std::path::Path;

/// Which pressures the node is under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
}

/// What was measured, in bytes and percent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Signals {
    pub memory_available: u64,
    pub nodefs_available_percent: u64,
    pub nodefs_inodes_free_percent: u64,
    pub imagefs_available_percent: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub memory_available: u64,
    pub nodefs_available_percent: u64,
    pub nodefs_inodes_free_percent: u64,
    pub imagefs_available_percent: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            memory_available: 100 << 20,
            nodefs_available_percent: 10,
            nodefs_inodes_free_percent: 5,
            imagefs_available_percent: 15,
        }
    }
}

impl Thresholds {
    /// Reads upstream's `--eviction-hard` syntax
    /// (`memory.available<100Mi,nodefs.available<10%,...`); signals not
    /// named keep their defaults.
    pub fn parse(text: &str) -> Result<Thresholds, String> {
        let mut t = Thresholds::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (signal, value) = item
                .split_once('<')
                .ok_or_else(|| format!("{item:?} is not signal<quantity"))?;
            let percent = || -> Result<u64, String> {
                value
                    .strip_suffix('%')
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| (0.0..=100.0).contains(v))
                    .map(|v| v.ceil() as u64)
                    .ok_or_else(|| format!("{signal}: {value:?} is not a percentage"))
            };
            match signal {
                "memory.available" => {
                    t.memory_available = skiff_apimachinery::quantity::parse_milli(value)
                        .and_then(|m| u64::try_from(m / 1000).ok())
                        .ok_or_else(|| format!("memory.available: {value:?} is not a quantity"))?;
                }
                "nodefs.available" => t.nodefs_available_percent = percent()?,
                "nodefs.inodesFree" => t.nodefs_inodes_free_percent = percent()?,
                "imagefs.available" => t.imagefs_available_percent = percent()?,
                other => return Err(format!("unsupported eviction signal {other:?}")),
            }
        }
        Ok(t)
    }
}

/// The crossed threshold that an eviction names in its message.
#[derive(Clone, Debug, PartialEq)]
pub struct Crossed {
    /// `memory` or `ephemeral-storage`.
    pub resource: &'static str,
    pub threshold: String,
    pub available: String,
}

impl Crossed {
    /// Upstream's eviction message.
    pub fn message(&self) -> String {
        format!(
            "The node was low on resource: {}. Threshold quantity: {}, available: {}. ",
            self.resource, self.threshold, self.available
        )
    }
}

/// Reads the signals of the host (memory) and of the filesystems holding
/// the kubelet's root and the images.
pub fn read(root_dir: &Path, imagefs: Option<&Path>) -> Signals {
    let memory_available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemAvailable:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(u64::MAX, |kib| kib * 1024);
    let (nodefs, inodes) = fs_free(root_dir).unwrap_or((100, 100));
    let imagefs = imagefs.and_then(fs_free).map_or(100, |(bytes, _)| bytes);
    Signals {
        memory_available,
        nodefs_available_percent: nodefs,
        nodefs_inodes_free_percent: inodes,
        imagefs_available_percent: imagefs,
    }
}

/// Available space and free inodes of the filesystem holding `path`, in percent.
fn fs_free(path: &Path) -> Option<(u64, u64)> {
    let mut dir = path.to_path_buf();
    while !dir.exists() {
        dir = dir.parent()?.to_path_buf();
    }
    let s = rustix::fs::statvfs(&dir).ok()?;
    let bytes = (s.f_bavail * 100).checked_div(s.f_blocks).unwrap_or(100);
    let inodes = (s.f_favail * 100).checked_div(s.f_files).unwrap_or(100);
    Some((bytes, inodes))
}

/// The pressures the signals show, and the first threshold crossed.
pub fn evaluate(s: &Signals, t: &Thresholds) -> (Pressure, Option<Crossed>) {
    let memory = s.memory_available < t.memory_available;
    let nodefs = s.nodefs_available_percent < t.nodefs_available_percent;
    let inodes = s.nodefs_inodes_free_percent < t.nodefs_inodes_free_percent;
    let imagefs = s.imagefs_available_percent < t.imagefs_available_percent;
    let crossed = if memory {
        Some(Crossed {
            resource: "memory",
            threshold: format!("{}Mi", t.memory_available >> 20),
            available: format!("{}Ki", s.memory_available / 1024),
        })
    } else if nodefs || imagefs || inodes {
        Some(Crossed {
            resource: "ephemeral-storage",
            threshold: format!("{}%", t.nodefs_available_percent),
            available: format!(
                "{}%",
                s.nodefs_available_percent.min(s.imagefs_available_percent)
            ),
        })
    } else {
        None
    };
    (
        Pressure {
            memory,
            disk: nodefs || imagefs || inodes,
        },
        crossed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_hard_flags_parse() {
        let t = Thresholds::parse("memory.available<1Gi,imagefs.available<1%").unwrap_or_default();
        assert_eq!(t.memory_available, 1 << 30);
        assert_eq!(t.imagefs_available_percent, 1);
        assert_eq!(t.nodefs_available_percent, 10);
        assert!(Thresholds::parse("pid.available<5").is_err());
        assert!(Thresholds::parse("nodefs.available<x%").is_err());
    }

    #[test]
    fn thresholds_are_upstream_defaults() {
        let t = Thresholds::default();
        let fine = Signals {
            memory_available: 1 << 30,
            nodefs_available_percent: 50,
            nodefs_inodes_free_percent: 50,
            imagefs_available_percent: 50,
        };
        assert_eq!(evaluate(&fine, &t), (Pressure::default(), None));
        let low_memory = Signals {
            memory_available: 50 << 20,
            ..fine
        };
        let (p, crossed) = evaluate(&low_memory, &t);
        assert!(p.memory && !p.disk);
        assert_eq!(
            crossed.map(|c| c.message()),
            Some("The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki. ".to_owned())
        );
        let full_disk = Signals {
            nodefs_available_percent: 5,
            ..fine
        };
        assert!(evaluate(&full_disk, &t).0.disk);
    }
}

//! The pod network config the runtime's CNI plugin loader reads: Debian's
//! `bridge` + `host-local` over the node's podCIDR, and `portmap` for
//! hostPorts.

use std::path::Path;

/// The conflist's file name; lowest sort order wins in containerd.
pub const CONFLIST: &str = "10-skiff.conflist";
pub const BRIDGE: &str = "skiff0";

pub fn conflist(pod_cidr: &str) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "skiff",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "isDefaultGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_cidr }]],
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    })
    .to_string()
}

/// Writes the config when it differs (atomically: the runtime may be
/// reading the directory).
pub fn write(dir: &Path, pod_cidr: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(CONFLIST);
    let text = conflist(pod_cidr);
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let tmp = dir.join(format!(".{CONFLIST}.tmp"));
    std::fs::write(&tmp, &text)?;
    std::fs::rename(tmp, path)
}

/// Packet forwarding and bridge netfilter, which pod traffic needs;
/// failures are logged (the host may manage them itself).
pub fn enable_forwarding() {
    for (path, value) in [
        ("/proc/sys/net/ipv4/ip_forward", "1"),
        ("/proc/sys/net/bridge/bridge-nf-call-iptables", "1"),
    ] {
        if let Err(e) = std::fs::write(path, value) {
            tracing::debug!(path, error = %e, "setting a sysctl");
        }
    }
}

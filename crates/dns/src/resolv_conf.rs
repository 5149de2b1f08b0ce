//! The default upstreams: the `nameserver` lines of `/etc/resolv.conf`,
//! as upstream CoreDNS's `forward . /etc/resolv.conf`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// The system's resolv.conf.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The nameservers of resolv.conf text, on port 53, in file order.
/// Scoped IPv6 addresses (`fe80::1%eth0`) lose their scope.
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                return None;
            }
            let addr = words.next()?;
            let addr = addr.split('%').next().unwrap_or(addr);
            addr.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The nameservers of the file at `path`; none if it cannot be read.
pub fn read_nameservers(path: &Path) -> Vec<SocketAddr> {
    match std::fs::read_to_string(path) {
        Ok(text) => nameservers(&text),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "no upstream nameservers");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameserver_lines() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\n\
                    nameserver  fd00::53 # v6\n;nameserver 1.1.1.1\nnameserver fe80::1%eth0\n\
                    nameserver bogus\noptions ndots:5\n";
        let got: Vec<String> = nameservers(text).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["10.0.0.2:53", "[fd00::53]:53", "[fe80::1]:53"]);
    }
}

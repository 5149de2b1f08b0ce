//! Free loopback ports for servers started by tests.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

/// A loopback TCP port that was free a moment ago. Ports are handed out from
/// a per-process rotating start so parallel tests rarely race for one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    loop {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", 0))
            && let Ok(addr) = listener.local_addr()
            && NEXT.swap(addr.port(), Ordering::Relaxed) != addr.port()
        {
            return addr.port();
        }
    }
}

//! Test and benchmark harness for skiff: free loopback ports, temp data
//! dirs, and real dependencies (Debian's etcd) started on them and stopped
//! when dropped. Start at [`EtcdServer`].

mod etcd;
mod ports;

pub use etcd::{EtcdServer, TestkitError};
pub use ports::free_port;

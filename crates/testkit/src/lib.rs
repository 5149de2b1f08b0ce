//! Test and benchmark harness for skiff: free loopback ports, temp data
//! dirs, and real dependencies (Debian's etcd) started on them and stopped
//! when dropped, and a real skiff server with the real kubectl. Start at
//! [`Cluster`] and [`EtcdServer`]; [`cri::FakeRuntime`] is a scripted CRI
//! runtime for kubelet tests and hollow nodes.

mod cluster;
pub mod cri;
mod etcd;
mod ports;

pub use cluster::{Cluster, Kubectl, kubectl_binary};
pub use etcd::{EtcdServer, TestkitError};
pub use ports::free_port;

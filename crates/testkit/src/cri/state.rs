//! The fake runtime's memory: sandboxes, containers, images, scripts and the
//! call log, with the state transitions the gRPC handlers and the test
//! control API share. Everything here runs under one mutex and never awaits.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::{ContainerEventType, ContainerState, NamespaceMode, PodSandboxState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{broadcast, watch};
use tonic::{Code, Status};

use super::clock::FakeClock;
use super::image::{ImageRec, normalize};
use super::script::{ExecResult, LogLine, LogStream, PodRef, Run, Target, Usage};
use super::{Call, ContainerView, SandboxView};

type Labels = HashMap<String, String>;

/// The container annotation the kubelet sets to `terminationMessagePath`.
const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";

pub(crate) struct Sandbox {
    seq: u64,
    pub id: String,
    pub metadata: cri::PodSandboxMetadata,
    pub state: PodSandboxState,
    pub created_at: i64,
    /// Empty for host-network pods.
    pub ip: String,
    ip_offset: Option<u32>,
    pub labels: Labels,
    pub annotations: Labels,
    pub runtime_handler: String,
    pub log_directory: String,
    pub namespace_options: Option<cri::NamespaceOption>,
    reserved_name: String,
}

pub(crate) struct Container {
    seq: u64,
    pub id: String,
    pub sandbox_id: String,
    pub metadata: cri::ContainerMetadata,
    pub pod_namespace: String,
    pub pod_name: String,
    /// As reported in statuses: the image's tag, plus what the user wrote.
    pub image: cri::ImageSpec,
    /// The repo digest (ContainerStatus.image_ref, the pod's `imageID`).
    pub image_ref: String,
    pub image_id: String,
    pub labels: Labels,
    pub annotations: Labels,
    /// Full path (log directory joined with the relative log path); empty
    /// when the kubelet gave none.
    pub log_path: String,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// The run being played (its SIGTERM behaviour matters to StopContainer).
    pub run: Run,
    /// Bumped on start and exit, so stale exit timers do nothing.
    pub generation: u64,
    /// The host side of the mount at the termination message path.
    termination_log: Option<PathBuf>,
    reserved_name: String,
}

/// A pod CIDR handing out addresses round-robin, like CNI's host-local.
struct Ipam {
    base: u32,
    size: u32,
    next: u32,
    used: HashSet<u32>,
}

impl Ipam {
    fn parse(cidr: &str) -> Result<Ipam, String> {
        let (addr, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("pod CIDR {cidr:?} has no prefix length"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|e| format!("pod CIDR {cidr:?}: {e}"))?;
        let prefix: u32 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("pod CIDR {cidr:?}: prefix must be 8..=30"))?;
        let size = 1u32 << (32 - prefix);
        Ok(Ipam {
            base: u32::from(addr) & !(size - 1),
            size,
            next: 2,
            used: HashSet::new(),
        })
    }

    /// Offsets 2..size-1: .0 is the network, .1 the bridge gateway, the last
    /// the broadcast address.
    fn allocate(&mut self) -> Option<(u32, String)> {
        let usable = self.size - 3;
        for i in 0..usable {
            let offset = 2 + (self.next - 2 + i) % usable;
            if self.used.insert(offset) {
                self.next = 2 + (offset - 2 + 1) % usable;
                return Some((offset, Ipv4Addr::from(self.base + offset).to_string()));
            }
        }
        None
    }

    fn release(&mut self, offset: u32) {
        self.used.remove(&offset);
    }
}

/// A scripted ExecSync answer: for `target`'s containers, commands equal
/// to `argv` (`exact`) or starting with it.
pub(crate) struct ExecRule {
    pub target: Target,
    pub argv: Vec<String>,
    pub exact: bool,
    pub result: ExecResult,
}

struct PullFailure {
    code: Code,
    message: String,
}

pub(crate) struct State {
    pub clock: FakeClock,
    rng: StdRng,
    seq: u64,
    pub runtime_ready: bool,
    pub network_ready: bool,
    pub sandbox_failure: Option<String>,
    ipam: Ipam,
    pub sandboxes: HashMap<String, Sandbox>,
    pub containers: HashMap<String, Container>,
    reserved: HashSet<String>,
    images: Vec<ImageRec>,
    pull_failures: HashMap<String, PullFailure>,
    pull_delays: HashMap<String, Duration>,
    scripts: Vec<(Target, Vec<Run>)>,
    execs: Vec<ExecRule>,
    usages: Vec<(Target, Usage)>,
    /// Starts so far per (pod uid, container name): restarts of one pod,
    /// across its sandboxes; a recreated pod (new uid) starts over.
    starts: HashMap<(String, String), usize>,
    pub record_calls: bool,
    calls: Vec<Call>,
    /// Bumped on every container exit: StopContainer waits on it.
    pub exits: watch::Sender<u64>,
    /// Bumped on every call and exit: `FakeRuntime::wait_until` waits on it.
    pub changes: watch::Sender<u64>,
    pub events: broadcast::Sender<cri::ContainerEventResponse>,
}

/// What the caller must do outside the lock after a start.
pub(crate) struct Started {
    pub generation: u64,
    pub exit: Option<(Duration, i32)>,
    /// The log file and the lines due at start (the file is created even
    /// when there are none).
    pub log: Option<(PathBuf, Vec<String>)>,
    /// Lines due later, in time order.
    pub timed: Vec<LogLine>,
}

/// A CRI log line: `<RFC 3339 nano> <stream> F <text>\n`.
pub(crate) fn cri_log_line(ns: i64, stream: LogStream, text: &str) -> String {
    format!(
        "{} {} F {text}\n",
        super::clock::rfc3339_nano(ns),
        stream.as_str()
    )
}

fn not_found(what: &str, id: &str) -> Status {
    Status::not_found(format!(
        "an error occurred when try to find {what} {id:?}: not found"
    ))
}

fn labels_match(labels: &Labels, selector: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl State {
    pub fn new(clock: FakeClock, pod_cidr: &str, seed: Option<u64>) -> Result<State, String> {
        let (events, _) = broadcast::channel(1024);
        Ok(State {
            clock,
            rng: match seed {
                Some(s) => StdRng::seed_from_u64(s),
                None => StdRng::from_os_rng(),
            },
            seq: 0,
            runtime_ready: true,
            network_ready: true,
            sandbox_failure: None,
            ipam: Ipam::parse(pod_cidr)?,
            sandboxes: HashMap::new(),
            containers: HashMap::new(),
            reserved: HashSet::new(),
            images: Vec::new(),
            pull_failures: HashMap::new(),
            pull_delays: HashMap::new(),
            scripts: Vec::new(),
            execs: Vec::new(),
            usages: Vec::new(),
            starts: HashMap::new(),
            record_calls: true,
            calls: Vec::new(),
            exits: watch::channel(0).0,
            changes: watch::channel(0).0,
            events,
        })
    }

    fn new_id(&mut self) -> String {
        let bytes: [u8; 32] = self.rng.random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    // ---- call log -------------------------------------------------------

    pub fn record(&mut self, call: Call) {
        if self.record_calls {
            self.calls.push(call);
        }
        self.changes.send_modify(|n| *n += 1);
    }

    /// Records `method` on container `id`, with its name when it exists.
    pub fn record_container(&mut self, method: &'static str, id: &str) -> Call {
        let name = self
            .containers
            .get(id)
            .map(|c| c.metadata.name.clone())
            .unwrap_or_default();
        Call::new(method, id, &name)
    }

    /// Records `method` on sandbox `id`, named `namespace/name`.
    pub fn record_sandbox(&mut self, method: &'static str, id: &str) -> Call {
        let name = self
            .sandboxes
            .get(id)
            .map(|s| format!("{}/{}", s.metadata.namespace, s.metadata.name))
            .unwrap_or_default();
        Call::new(method, id, &name)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.clone()
    }

    pub fn clear_calls(&mut self) {
        self.calls.clear();
    }

    // ---- scripts ----------------------------------------------------------

    pub fn set_script(&mut self, target: Target, runs: Vec<Run>) {
        self.scripts.retain(|(t, _)| *t != target);
        self.scripts.push((target, runs));
    }

    pub fn set_exec(&mut self, rule: ExecRule) {
        self.execs
            .retain(|r| !(r.target == rule.target && r.argv == rule.argv && r.exact == rule.exact));
        self.execs.push(rule);
    }

    /// The run for the next start of container `id` of sandbox `sandbox_id`.
    fn run_for(&mut self, sandbox_id: &str, container: &str) -> Run {
        let Some(sandbox) = self.sandboxes.get(sandbox_id) else {
            return Run::default();
        };
        let key = (sandbox.metadata.uid.clone(), container.to_owned());
        let n = self.starts.entry(key).or_insert(0);
        let index = *n;
        *n += 1;
        let pod = PodRef {
            namespace: &sandbox.metadata.namespace,
            name: &sandbox.metadata.name,
            labels: &sandbox.labels,
        };
        self.scripts
            .iter()
            .filter_map(|(t, runs)| t.matches(&pod, container).map(|s| (s, runs)))
            .max_by_key(|(s, _)| *s)
            .and_then(|(_, runs)| runs.get(index).or_else(|| runs.last()))
            .cloned()
            .unwrap_or_default()
    }

    /// The scripted exec result for `cmd` in container `id` (default: exit 0).
    pub fn exec_for(&self, id: &str, cmd: &[String]) -> Result<ExecResult, Status> {
        let c = self
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id))?;
        if c.state != ContainerState::ContainerRunning {
            return Err(Status::unknown(format!(
                "container {id} is in {} state, cannot exec",
                c.state.as_str_name()
            )));
        }
        let no_labels = HashMap::new();
        let pod = PodRef {
            namespace: &c.pod_namespace,
            name: &c.pod_name,
            labels: self
                .sandboxes
                .get(&c.sandbox_id)
                .map_or(&no_labels, |s| &s.labels),
        };
        Ok(self
            .execs
            .iter()
            .filter(|r| {
                if r.exact {
                    cmd == r.argv.as_slice()
                } else {
                    cmd.starts_with(&r.argv)
                }
            })
            .filter_map(|r| {
                r.target
                    .matches(&pod, &c.metadata.name)
                    .map(|s| ((r.exact, r.argv.len(), s), r))
            })
            .max_by_key(|(k, _)| *k)
            .map(|(_, r)| r.result.clone())
            .unwrap_or_default())
    }

    // ---- stats ------------------------------------------------------------

    pub fn set_usage(&mut self, target: Target, usage: Usage) {
        self.usages.retain(|(t, _)| *t != target);
        self.usages.push((target, usage));
    }

    fn usage_of(&self, c: &Container) -> Usage {
        let no_labels = HashMap::new();
        let pod = PodRef {
            namespace: &c.pod_namespace,
            name: &c.pod_name,
            labels: self
                .sandboxes
                .get(&c.sandbox_id)
                .map_or(&no_labels, |s| &s.labels),
        };
        self.usages
            .iter()
            .filter_map(|(t, u)| t.matches(&pod, &c.metadata.name).map(|s| (s, u)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, u)| *u)
            .unwrap_or_default()
    }

    fn stats_of(&self, c: &Container) -> cri::ContainerStats {
        let now = self.clock.now_ns();
        let running = c.state == ContainerState::ContainerRunning;
        let scripted = self.usage_of(c);
        let usage = if running {
            scripted
        } else {
            Usage {
                cpu_millicores: 0,
                memory_bytes: 0,
            }
        };
        // CPU time: the rate over the time it ran (0 before it started).
        let end = if running { now } else { c.finished_at };
        let ran_ns = if c.started_at > 0 {
            u128::try_from(end.saturating_sub(c.started_at)).unwrap_or(0)
        } else {
            0
        };
        let rate = scripted.cpu_millicores * 1_000_000;
        let core_ns = u64::try_from(u128::from(rate) * ran_ns / 1_000_000_000).unwrap_or(u64::MAX);
        let value = |v: u64| Some(cri::UInt64Value { value: v });
        cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: c.id.clone(),
                metadata: Some(c.metadata.clone()),
                labels: c.labels.clone(),
                annotations: c.annotations.clone(),
            }),
            cpu: Some(cri::CpuUsage {
                timestamp: now,
                usage_core_nano_seconds: value(core_ns),
                usage_nano_cores: value(usage.cpu_millicores * 1_000_000),
            }),
            memory: Some(cri::MemoryUsage {
                timestamp: now,
                working_set_bytes: value(usage.memory_bytes),
                available_bytes: None,
                usage_bytes: value(usage.memory_bytes),
                rss_bytes: value(usage.memory_bytes),
                page_faults: value(0),
                major_page_faults: value(0),
            }),
            writable_layer: Some(cri::FilesystemUsage {
                timestamp: now,
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: "/var/lib/fake-cri/containers".to_owned(),
                }),
                used_bytes: value(4096),
                inodes_used: value(1),
            }),
            swap: None,
        }
    }

    pub fn container_stats(&self, id: &str) -> Result<cri::ContainerStats, Status> {
        let c = self
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id))?;
        Ok(self.stats_of(c))
    }

    /// Stats of the running containers the filter selects.
    pub fn list_container_stats(
        &self,
        filter: Option<&cri::ContainerStatsFilter>,
    ) -> Vec<cri::ContainerStats> {
        let mut items: Vec<&Container> = self
            .containers
            .values()
            .filter(|c| c.state == ContainerState::ContainerRunning)
            .filter(|c| match filter {
                None => true,
                Some(f) => {
                    (f.id.is_empty() || c.id.starts_with(&f.id))
                        && (f.pod_sandbox_id.is_empty()
                            || c.sandbox_id.starts_with(&f.pod_sandbox_id))
                        && labels_match(&c.labels, &f.label_selector)
                }
            })
            .collect();
        items.sort_by_key(|c| c.seq);
        items.into_iter().map(|c| self.stats_of(c)).collect()
    }

    pub fn sandbox_stats(&self, id: &str) -> Result<cri::PodSandboxStats, Status> {
        let s = self
            .sandboxes
            .get(id)
            .ok_or_else(|| not_found("sandbox", id))?;
        let now = self.clock.now_ns();
        let containers = self.list_container_stats(Some(&cri::ContainerStatsFilter {
            pod_sandbox_id: id.to_owned(),
            ..Default::default()
        }));
        let mut cpu_ns = 0u64;
        let mut nano_cores = 0u64;
        let mut memory = 0u64;
        for c in &containers {
            let cpu = c.cpu.as_ref();
            cpu_ns += cpu
                .and_then(|u| u.usage_core_nano_seconds)
                .map_or(0, |v| v.value);
            nano_cores += cpu.and_then(|u| u.usage_nano_cores).map_or(0, |v| v.value);
            memory += c
                .memory
                .as_ref()
                .and_then(|m| m.working_set_bytes)
                .map_or(0, |v| v.value);
        }
        let value = |v: u64| Some(cri::UInt64Value { value: v });
        let eth0 = cri::NetworkInterfaceUsage {
            name: "eth0".to_owned(),
            rx_bytes: value(0),
            rx_errors: value(0),
            tx_bytes: value(0),
            tx_errors: value(0),
        };
        Ok(cri::PodSandboxStats {
            attributes: Some(cri::PodSandboxAttributes {
                id: s.id.clone(),
                metadata: Some(s.metadata.clone()),
                labels: s.labels.clone(),
                annotations: s.annotations.clone(),
            }),
            linux: Some(cri::LinuxPodSandboxStats {
                cpu: Some(cri::CpuUsage {
                    timestamp: now,
                    usage_core_nano_seconds: value(cpu_ns),
                    usage_nano_cores: value(nano_cores),
                }),
                memory: Some(cri::MemoryUsage {
                    timestamp: now,
                    working_set_bytes: value(memory),
                    usage_bytes: value(memory),
                    rss_bytes: value(memory),
                    ..Default::default()
                }),
                network: Some(cri::NetworkUsage {
                    timestamp: now,
                    default_interface: Some(eth0.clone()),
                    interfaces: vec![eth0],
                }),
                process: Some(cri::ProcessUsage {
                    timestamp: now,
                    process_count: value(containers.len() as u64),
                }),
                containers,
            }),
            windows: None,
        })
    }

    /// Stats of the READY sandboxes the filter selects.
    pub fn list_sandbox_stats(
        &self,
        filter: Option<&cri::PodSandboxStatsFilter>,
    ) -> Vec<cri::PodSandboxStats> {
        let mut items: Vec<&Sandbox> = self
            .sandboxes
            .values()
            .filter(|s| s.state == PodSandboxState::SandboxReady)
            .filter(|s| match filter {
                None => true,
                Some(f) => {
                    (f.id.is_empty() || s.id.starts_with(&f.id))
                        && labels_match(&s.labels, &f.label_selector)
                }
            })
            .collect();
        items.sort_by_key(|s| s.seq);
        items
            .into_iter()
            .filter_map(|s| self.sandbox_stats(&s.id).ok())
            .collect()
    }

    // ---- images -----------------------------------------------------------

    pub fn image(&self, reference: &str) -> Option<&ImageRec> {
        self.images.iter().find(|i| i.matches(reference))
    }

    pub fn images(&self) -> &[ImageRec] {
        &self.images
    }

    pub fn add_image(&mut self, reference: &str) -> ImageRec {
        if let Some(existing) = self.image(reference) {
            return existing.clone();
        }
        let rec = ImageRec::new(reference);
        self.images.push(rec.clone());
        rec
    }

    pub fn remove_image(&mut self, reference: &str) {
        self.images.retain(|i| !i.matches(reference));
    }

    pub fn set_pull_failure(&mut self, reference: &str, failure: Option<(Code, String)>) {
        let key = normalize(reference);
        match failure {
            Some((code, message)) => {
                self.pull_failures
                    .insert(key, PullFailure { code, message });
            }
            None => {
                self.pull_failures.remove(&key);
            }
        }
    }

    pub fn set_pull_delay(&mut self, reference: &str, delay: Duration) {
        self.pull_delays.insert(normalize(reference), delay);
    }

    /// Before pulling: the scripted delay, or the scripted failure.
    pub fn pull_plan(&self, reference: &str) -> Result<Duration, Status> {
        let key = normalize(reference);
        if let Some(f) = self.pull_failures.get(&key) {
            return Err(Status::new(f.code, f.message.clone()));
        }
        Ok(self.pull_delays.get(&key).copied().unwrap_or_default())
    }

    // ---- sandboxes --------------------------------------------------------

    pub fn set_pod_cidr(&mut self, cidr: &str) -> Result<(), Status> {
        if cidr.is_empty() {
            return Ok(());
        }
        let ipam = Ipam::parse(cidr).map_err(Status::invalid_argument)?;
        if ipam.base != self.ipam.base || ipam.size != self.ipam.size {
            // Addresses of the old range are no longer ours to release.
            for s in self.sandboxes.values_mut() {
                s.ip_offset = None;
            }
            self.ipam = ipam;
        }
        Ok(())
    }

    pub fn run_sandbox(&mut self, req: cri::RunPodSandboxRequest) -> Result<String, Status> {
        if let Some(message) = &self.sandbox_failure {
            return Err(Status::unknown(message.clone()));
        }
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("sandbox config is required"))?;
        let metadata = config
            .metadata
            .ok_or_else(|| Status::invalid_argument("sandbox config metadata is required"))?;
        let reserved_name = format!(
            "k8s_POD_{}_{}_{}_{}",
            metadata.name, metadata.namespace, metadata.uid, metadata.attempt
        );
        if self.reserved.contains(&reserved_name) {
            return Err(Status::already_exists(format!(
                "failed to reserve sandbox name {reserved_name:?}: name is reserved"
            )));
        }
        let namespace_options = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone());
        let host_network = namespace_options
            .as_ref()
            .is_some_and(|o| o.network == NamespaceMode::Node as i32);
        let (ip_offset, ip) = if host_network {
            (None, String::new())
        } else {
            let (offset, ip) = self.ipam.allocate().ok_or_else(|| {
                Status::unknown(
                    "failed to setup network for sandbox: no IP addresses available in range set",
                )
            })?;
            (Some(offset), ip)
        };
        let id = self.new_id();
        let seq = self.next_seq();
        self.reserved.insert(reserved_name.clone());
        self.sandboxes.insert(
            id.clone(),
            Sandbox {
                seq,
                id: id.clone(),
                metadata,
                state: PodSandboxState::SandboxReady,
                created_at: self.clock.now_ns(),
                ip,
                ip_offset,
                labels: config.labels,
                annotations: config.annotations,
                runtime_handler: req.runtime_handler,
                log_directory: config.log_directory,
                namespace_options,
                reserved_name,
            },
        );
        Ok(id)
    }

    pub fn stop_sandbox(&mut self, id: &str) -> Result<(), Status> {
        if !self.sandboxes.contains_key(id) {
            return Err(not_found("sandbox", id));
        }
        let running: Vec<String> = self
            .containers
            .values()
            .filter(|c| c.sandbox_id == id && c.state == ContainerState::ContainerRunning)
            .map(|c| c.id.clone())
            .collect();
        for cid in running {
            self.exit(&cid, 137, None, None);
        }
        if let Some(s) = self.sandboxes.get_mut(id) {
            s.state = PodSandboxState::SandboxNotready;
            if let Some(offset) = s.ip_offset.take() {
                self.ipam.release(offset);
            }
        }
        Ok(())
    }

    pub fn remove_sandbox(&mut self, id: &str) {
        if !self.sandboxes.contains_key(id) {
            return;
        }
        let _ = self.stop_sandbox(id);
        let ids: Vec<String> = self
            .containers
            .values()
            .filter(|c| c.sandbox_id == id)
            .map(|c| c.id.clone())
            .collect();
        for cid in ids {
            self.remove_container(&cid);
        }
        if let Some(s) = self.sandboxes.remove(id) {
            self.reserved.remove(&s.reserved_name);
        }
    }

    pub fn sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, Status> {
        let s = self
            .sandboxes
            .get(id)
            .ok_or_else(|| not_found("sandbox", id))?;
        Ok(cri::PodSandboxStatus {
            id: s.id.clone(),
            metadata: Some(s.metadata.clone()),
            state: s.state as i32,
            created_at: s.created_at,
            network: Some(cri::PodSandboxNetworkStatus {
                ip: s.ip.clone(),
                additional_ips: Vec::new(),
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: s.namespace_options.clone(),
                }),
            }),
            labels: s.labels.clone(),
            annotations: s.annotations.clone(),
            runtime_handler: s.runtime_handler.clone(),
        })
    }

    pub fn list_sandboxes(&self, filter: Option<&cri::PodSandboxFilter>) -> Vec<cri::PodSandbox> {
        let mut items: Vec<&Sandbox> = self
            .sandboxes
            .values()
            .filter(|s| match filter {
                None => true,
                Some(f) => {
                    (f.id.is_empty() || s.id.starts_with(&f.id))
                        && f.state.as_ref().is_none_or(|st| st.state == s.state as i32)
                        && labels_match(&s.labels, &f.label_selector)
                }
            })
            .collect();
        items.sort_by_key(|s| s.seq);
        items
            .into_iter()
            .map(|s| cri::PodSandbox {
                id: s.id.clone(),
                metadata: Some(s.metadata.clone()),
                state: s.state as i32,
                created_at: s.created_at,
                labels: s.labels.clone(),
                annotations: s.annotations.clone(),
                runtime_handler: s.runtime_handler.clone(),
            })
            .collect()
    }

    // ---- containers -------------------------------------------------------

    pub fn create_container(&mut self, req: cri::CreateContainerRequest) -> Result<String, Status> {
        let sandbox = self
            .sandboxes
            .get(&req.pod_sandbox_id)
            .ok_or_else(|| not_found("sandbox", &req.pod_sandbox_id))?;
        if sandbox.state != PodSandboxState::SandboxReady {
            return Err(Status::failed_precondition(format!(
                "sandbox {:?} is not in ready state",
                sandbox.id
            )));
        }
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("container config is required"))?;
        let metadata = config
            .metadata
            .ok_or_else(|| Status::invalid_argument("container config metadata is required"))?;
        let spec = config.image.unwrap_or_default();
        let image = self.image(&spec.image).cloned().ok_or_else(|| {
            Status::not_found(format!(
                "failed to get image {:?}: image not found",
                spec.image
            ))
        })?;
        let reserved_name = format!(
            "k8s_{}_{}_{}_{}_{}",
            metadata.name,
            sandbox.metadata.name,
            sandbox.metadata.namespace,
            sandbox.metadata.uid,
            metadata.attempt
        );
        if self.reserved.contains(&reserved_name) {
            return Err(Status::already_exists(format!(
                "failed to reserve container name {reserved_name:?}: name is reserved"
            )));
        }
        let log_directory = if sandbox.log_directory.is_empty() {
            req.sandbox_config
                .map(|c| c.log_directory)
                .unwrap_or_default()
        } else {
            sandbox.log_directory.clone()
        };
        // Only absolute paths: a relative one would land in the test's cwd.
        let joined = Path::new(&log_directory).join(&config.log_path);
        let log_path = if config.log_path.is_empty() || !joined.is_absolute() {
            String::new()
        } else {
            joined.to_string_lossy().into_owned()
        };
        let pod_namespace = sandbox.metadata.namespace.clone();
        let pod_name = sandbox.metadata.name.clone();
        let id = self.new_id();
        let seq = self.next_seq();
        self.reserved.insert(reserved_name.clone());
        let termination_log = config
            .annotations
            .get(TERMINATION_MESSAGE_PATH)
            .and_then(|path| config.mounts.iter().find(|m| &m.container_path == path))
            .map(|m| PathBuf::from(&m.host_path));
        let user_specified = if spec.user_specified_image.is_empty() {
            spec.image.clone()
        } else {
            spec.user_specified_image.clone()
        };
        self.containers.insert(
            id.clone(),
            Container {
                seq,
                id: id.clone(),
                sandbox_id: req.pod_sandbox_id,
                metadata,
                pod_namespace,
                pod_name,
                image: cri::ImageSpec {
                    image: image.tag.clone(),
                    annotations: spec.annotations,
                    user_specified_image: user_specified,
                    runtime_handler: spec.runtime_handler,
                },
                image_ref: image.digest.clone(),
                image_id: image.id.clone(),
                labels: config.labels,
                annotations: config.annotations,
                log_path,
                state: ContainerState::ContainerCreated,
                created_at: self.clock.now_ns(),
                started_at: 0,
                finished_at: 0,
                exit_code: 0,
                reason: String::new(),
                message: String::new(),
                run: Run::default(),
                generation: 0,
                termination_log,
                reserved_name,
            },
        );
        self.emit(&id, ContainerEventType::ContainerCreatedEvent);
        Ok(id)
    }

    pub fn start_container(&mut self, id: &str) -> Result<Started, Status> {
        let c = self
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id))?;
        if c.state != ContainerState::ContainerCreated {
            return Err(Status::failed_precondition(format!(
                "container {id:?} is in {} state",
                c.state.as_str_name()
            )));
        }
        let ready = self
            .sandboxes
            .get(&c.sandbox_id)
            .is_some_and(|s| s.state == PodSandboxState::SandboxReady);
        if !ready {
            return Err(Status::failed_precondition(format!(
                "sandbox container {:?} is not running",
                c.sandbox_id
            )));
        }
        let (sandbox_id, name) = (c.sandbox_id.clone(), c.metadata.name.clone());
        let run = self.run_for(&sandbox_id, &name);
        let now = self.clock.now_ns();
        let Some(c) = self.containers.get_mut(id) else {
            return Err(not_found("container", id));
        };
        c.state = ContainerState::ContainerRunning;
        c.started_at = now;
        c.generation += 1;
        let (now_lines, mut timed): (Vec<LogLine>, Vec<LogLine>) =
            run.output.iter().cloned().partition(|l| l.after.is_zero());
        timed.sort_by_key(|l| l.after);
        let log = (!c.log_path.is_empty()).then(|| {
            let lines = now_lines
                .iter()
                .map(|l| cri_log_line(now, l.stream, &l.text))
                .collect();
            (PathBuf::from(&c.log_path), lines)
        });
        let started = Started {
            generation: c.generation,
            exit: run.exit,
            timed: if log.is_some() { timed } else { Vec::new() },
            log,
        };
        c.run = run;
        self.emit(id, ContainerEventType::ContainerStartedEvent);
        Ok(started)
    }

    /// Moves a running container to EXITED. `reason` defaults to
    /// "Completed" (code 0) or "Error". Returns false if it was not running.
    pub fn exit(
        &mut self,
        id: &str,
        code: i32,
        reason: Option<String>,
        message: Option<String>,
    ) -> bool {
        let now = self.clock.now_ns();
        let Some(c) = self.containers.get_mut(id) else {
            return false;
        };
        if c.state != ContainerState::ContainerRunning {
            return false;
        }
        c.state = ContainerState::ContainerExited;
        c.finished_at = now;
        c.exit_code = code;
        c.reason =
            reason.unwrap_or_else(|| if code == 0 { "Completed" } else { "Error" }.to_owned());
        c.message = message.unwrap_or_default();
        c.generation += 1;
        if let (Some(path), Some(text)) = (&c.termination_log, &c.run.termination_message)
            && let Err(e) = std::fs::write(path, text)
        {
            tracing::warn!(path = %path.display(), error = %e, "fake CRI: termination message");
        }
        self.exits.send_modify(|n| *n += 1);
        self.changes.send_modify(|n| *n += 1);
        self.emit(id, ContainerEventType::ContainerStoppedEvent);
        true
    }

    /// The scripted exit of run `generation`, if the container still plays it.
    pub fn scripted_exit(&mut self, id: &str, generation: u64, code: i32) {
        let Some(c) = self.containers.get(id) else {
            return;
        };
        if c.generation != generation {
            return;
        }
        let (reason, message) = (c.run.reason.clone(), c.run.message.clone());
        self.exit(id, code, reason, message);
    }

    /// The log file of container `id` if it still plays run `generation`.
    pub fn live_log_path(&self, id: &str, generation: u64) -> Option<PathBuf> {
        self.containers
            .get(id)
            .filter(|c| c.generation == generation && !c.log_path.is_empty())
            .map(|c| PathBuf::from(&c.log_path))
    }

    pub fn remove_container(&mut self, id: &str) {
        self.exit(id, 137, None, None);
        if self.containers.contains_key(id) {
            self.emit(id, ContainerEventType::ContainerDeletedEvent);
        }
        if let Some(c) = self.containers.remove(id) {
            self.reserved.remove(&c.reserved_name);
        }
    }

    pub fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, Status> {
        let c = self
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id))?;
        Ok(cri::ContainerStatus {
            id: c.id.clone(),
            metadata: Some(c.metadata.clone()),
            state: c.state as i32,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: Some(c.image.clone()),
            image_ref: c.image_ref.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            mounts: Vec::new(),
            log_path: c.log_path.clone(),
            resources: None,
            image_id: c.image_id.clone(),
            user: None,
        })
    }

    pub fn list_containers(&self, filter: Option<&cri::ContainerFilter>) -> Vec<cri::Container> {
        let mut items: Vec<&Container> = self
            .containers
            .values()
            .filter(|c| match filter {
                None => true,
                Some(f) => {
                    (f.id.is_empty() || c.id.starts_with(&f.id))
                        && (f.pod_sandbox_id.is_empty()
                            || c.sandbox_id.starts_with(&f.pod_sandbox_id))
                        && f.state.as_ref().is_none_or(|st| st.state == c.state as i32)
                        && labels_match(&c.labels, &f.label_selector)
                }
            })
            .collect();
        items.sort_by_key(|c| c.seq);
        items
            .into_iter()
            .map(|c| cri::Container {
                id: c.id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: Some(c.metadata.clone()),
                image: Some(c.image.clone()),
                image_ref: c.image_id.clone(),
                state: c.state as i32,
                created_at: c.created_at,
                labels: c.labels.clone(),
                annotations: c.annotations.clone(),
                image_id: c.image_id.clone(),
            })
            .collect()
    }

    // ---- events -----------------------------------------------------------

    fn emit(&self, id: &str, kind: ContainerEventType) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let Some(c) = self.containers.get(id) else {
            return;
        };
        let sandbox = self.sandbox_status(&c.sandbox_id).ok();
        let statuses = self
            .containers
            .values()
            .filter(|o| o.sandbox_id == c.sandbox_id)
            .filter_map(|o| self.container_status(&o.id).ok())
            .collect();
        let _ = self.events.send(cri::ContainerEventResponse {
            container_id: id.to_owned(),
            container_event_type: kind as i32,
            created_at: self.clock.now_ns(),
            pod_sandbox_status: sandbox,
            containers_statuses: statuses,
        });
    }

    // ---- views ------------------------------------------------------------

    pub fn sandbox_views(&self) -> Vec<SandboxView> {
        let mut items: Vec<&Sandbox> = self.sandboxes.values().collect();
        items.sort_by_key(|s| s.seq);
        items
            .into_iter()
            .map(|s| SandboxView {
                id: s.id.clone(),
                namespace: s.metadata.namespace.clone(),
                name: s.metadata.name.clone(),
                uid: s.metadata.uid.clone(),
                attempt: s.metadata.attempt,
                state: s.state,
                ip: s.ip.clone(),
                created_at: s.created_at,
            })
            .collect()
    }

    pub fn container_views(&self) -> Vec<ContainerView> {
        let mut items: Vec<&Container> = self.containers.values().collect();
        items.sort_by_key(|c| c.seq);
        items
            .into_iter()
            .map(|c| ContainerView {
                id: c.id.clone(),
                sandbox_id: c.sandbox_id.clone(),
                namespace: c.pod_namespace.clone(),
                pod: c.pod_name.clone(),
                name: c.metadata.name.clone(),
                attempt: c.metadata.attempt,
                state: c.state,
                image: c.image.user_specified_image.clone(),
                exit_code: c.exit_code,
                reason: c.reason.clone(),
                log_path: c.log_path.clone(),
                created_at: c.created_at,
                started_at: c.started_at,
                finished_at: c.finished_at,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipam_skips_network_gateway_and_broadcast_and_reuses() {
        let mut ipam = Ipam::parse("10.42.0.0/30").expect("cidr");
        // /30: .0 network, .1 gateway, .2 usable, .3 broadcast.
        let (off, ip) = ipam.allocate().expect("one address");
        assert_eq!(ip, "10.42.0.2");
        assert!(ipam.allocate().is_none());
        ipam.release(off);
        assert_eq!(
            ipam.allocate().map(|(_, ip)| ip).as_deref(),
            Some("10.42.0.2")
        );

        let mut ipam = Ipam::parse("10.42.7.0/24").expect("cidr");
        let a = ipam.allocate().expect("a");
        let b = ipam.allocate().expect("b");
        assert_eq!((a.1.as_str(), b.1.as_str()), ("10.42.7.2", "10.42.7.3"));
        ipam.release(a.0);
        // Round-robin: a released address is not handed out again at once.
        assert_eq!(
            ipam.allocate().map(|(_, ip)| ip).as_deref(),
            Some("10.42.7.4")
        );
    }
}

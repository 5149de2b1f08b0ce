//! One pod's worker: drives the runtime toward the pod's spec and reports
//! status, as upstream's `syncPod`. Level-triggered: each sync reads the
//! runtime afresh, so a restarted kubelet adopts running containers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1::{
    ContainerFilter, ContainerStatusRequest, CreateContainerRequest, ExecSyncRequest, ImageSpec,
    ImageStatusRequest, ListContainersRequest, ListPodSandboxRequest, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxState, PodSandboxStatusRequest, PullImageRequest,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopContainerRequest, StopPodSandboxRequest,
};
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, PodStatus};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::container::{ContainerInputs, container_config, spec_hash};
use super::context::Context;
use super::instance::Instance;
use super::probe::{self, Kind};
use super::sandbox::{SandboxInputs, sandbox_config};
use super::status::{View, Waiting, current_and_previous, pod_status};
use super::{env, labels, pull_secrets};
use crate::volumes::PodVolumes;

/// How often volumes backed by API objects are re-read.
const VOLUME_REFRESH: Duration = Duration::from_secs(60);
/// Upstream's minimum grace when stopping a container.
const MIN_GRACE: i64 = 2;

pub struct Worker {
    ctx: Arc<Context>,
    uid: String,
    /// The pod as the API last showed it; `None` once it is gone.
    pod: Option<Pod>,
    /// The last pod seen, for grace periods and events after deletion.
    last_known: Option<Pod>,
    sandboxes: Vec<PodSandbox>,
    instances: Vec<Instance>,
    cache: HashMap<String, Instance>,
    exit_seen: HashMap<String, Instant>,
    running_since: HashMap<String, Instant>,
    backoff: Backoff,
    waiting: HashMap<String, Waiting>,
    probes: HashMap<(String, Kind), probe::State>,
    ready: HashMap<String, bool>,
    started: HashMap<String, bool>,
    volumes: Option<PodVolumes>,
    volumes_refreshed: Option<Instant>,
    pod_ip: Option<(String, String)>,
    last_status: Option<PodStatus>,
    /// Set when the node evicted the pod: the status message.
    evicted: Option<String>,
    /// Events already recorded for a waiting reason (not repeated each sync).
    announced: HashMap<String, String>,
    pub done: bool,
}

/// Why a sync step stopped early.
type Step = Result<(), Option<Duration>>;

impl Worker {
    pub fn new(ctx: Arc<Context>, uid: String, pod: Option<Pod>) -> Worker {
        Worker {
            ctx,
            uid,
            last_known: pod.clone(),
            pod,
            sandboxes: Vec::new(),
            instances: Vec::new(),
            cache: HashMap::new(),
            exit_seen: HashMap::new(),
            running_since: HashMap::new(),
            backoff: Backoff::default(),
            waiting: HashMap::new(),
            probes: HashMap::new(),
            ready: HashMap::new(),
            started: HashMap::new(),
            volumes: None,
            volumes_refreshed: None,
            pod_ip: None,
            last_status: None,
            announced: HashMap::new(),
            evicted: None,
            done: false,
        }
    }

    /// The node evicts this pod: its containers are killed at once and it
    /// ends Failed with reason Evicted (the object stays, as upstream).
    pub fn evict(&mut self, message: String) {
        self.evicted = Some(message);
    }

    /// Makes the next sync write the status even if unchanged (a new
    /// mirror pod has none).
    pub fn forget_status(&mut self) {
        self.last_status = None;
    }

    /// Takes the API's latest pod; true when something the kubelet acts on
    /// changed (not just the status it wrote itself), as upstream ignores
    /// status-only updates.
    pub fn set_pod(&mut self, pod: Option<Pod>) -> bool {
        let significant = match (&self.pod, &pod) {
            (Some(old), Some(new)) => {
                old.spec != new.spec
                    || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
                    || old.metadata.deletion_grace_period_seconds
                        != new.metadata.deletion_grace_period_seconds
                    || old.metadata.labels != new.metadata.labels
                    || old.metadata.annotations != new.metadata.annotations
            }
            _ => true,
        };
        if let Some(p) = &pod {
            self.last_known = Some(p.clone());
        }
        self.pod = pod;
        significant
    }

    /// One pass; returns when the worker wants to run again at the latest.
    pub async fn sync(&mut self) -> Option<Duration> {
        if let Err(e) = self.refresh_runtime().await {
            tracing::warn!(pod = %self.uid, error = %e.message(), "listing the pod's runtime state");
            return Some(Duration::from_secs(1));
        }
        let pod = match &self.pod {
            Some(pod) if pod.metadata.deletion_timestamp.is_none() => pod.clone(),
            _ => {
                self.terminate().await;
                return None;
            }
        };
        if let Some(message) = self.evicted.clone()
            && !self.is_terminal(&pod)
        {
            self.ctx
                .recorder
                .warning(&pod, None, "Evicted", message)
                .await;
            let mut cri = self.ctx.cri.clone();
            for i in self.instances.iter().filter(|i| i.running()) {
                let _ = cri
                    .runtime
                    .stop_container(StopContainerRequest {
                        container_id: i.id.clone(),
                        timeout: 0,
                    })
                    .await;
            }
            let _ = self.refresh_runtime().await;
            self.stop_sandboxes().await;
            let _ = self.refresh_runtime().await;
            self.write_status(&pod).await;
            return None;
        }
        let wake = match self.sync_pod(&pod).await {
            Ok(()) => self.next_probe_wake(),
            Err(wake) => wake,
        };
        self.write_status(&pod).await;
        if self.is_terminal(&pod) {
            // A pod that reached Succeeded/Failed frees its sandbox (and IP).
            self.stop_sandboxes().await;
        }
        wake
    }

    async fn sync_pod(&mut self, pod: &Pod) -> Step {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        if self.is_terminal(pod) {
            self.stop_sandboxes().await;
            return Err(None);
        }
        let sandbox = match self.ready_sandbox() {
            Some(s) => s,
            None => {
                if policy == "Never" && !self.instances.is_empty() {
                    // The sandbox died after containers ran: nothing restarts.
                    return Err(None);
                }
                self.create_sandbox(pod).await?
            }
        };
        let config = self.sandbox_config(pod, sandbox.metadata.as_ref().map_or(0, |m| m.attempt));
        if self.pod_ip.as_ref().map(|(id, _)| id) != Some(&sandbox.id) {
            self.read_pod_ip(pod, &sandbox.id).await;
        }
        self.refresh_volumes(pod).await;
        // Init containers, in order, each to success.
        for c in spec.init_containers.iter().flatten() {
            let (current, _) = current_and_previous(&self.instances, &c.name, true);
            match current {
                Some(i) if i.exited() && i.exit_code == 0 => continue,
                Some(i) if i.running() => return Err(None),
                Some(i) if i.exited() => {
                    if policy == "Never" {
                        return Err(None);
                    }
                    let (id, attempt) = (i.id.clone(), i.attempt);
                    if let Some(wait) = self.in_backoff(pod, &c.name, &id) {
                        return Err(Some(wait));
                    }
                    self.start(pod, c, true, attempt + 1, &sandbox.id, &config)
                        .await;
                    return Err(None);
                }
                _ => {
                    let attempt = current.map_or(0, |i| i.attempt + 1);
                    self.start(pod, c, true, attempt, &sandbox.id, &config)
                        .await;
                    return Err(None);
                }
            }
        }
        let mut wake: Option<Duration> = None;
        for c in &spec.containers {
            if let Some(w) = self
                .sync_container(pod, c, &policy, &sandbox.id, &config)
                .await
            {
                wake = Some(wake.map_or(w, |x| x.min(w)));
            }
        }
        match wake {
            Some(w) => Err(Some(w.min(self.next_probe_wake().unwrap_or(w)))),
            None => Ok(()),
        }
    }

    /// Brings one regular container to its wanted state; `Some` = wake then.
    async fn sync_container(
        &mut self,
        pod: &Pod,
        c: &Container,
        policy: &str,
        sandbox_id: &str,
        config: &PodSandboxConfig,
    ) -> Option<Duration> {
        let (current, _) = current_and_previous(&self.instances, &c.name, false);
        let Some(current) = current.cloned() else {
            self.start(pod, c, false, 0, sandbox_id, config).await;
            return self
                .waiting
                .contains_key(&c.name)
                .then(|| Duration::from_secs(2));
        };
        if current.sandbox_id != sandbox_id {
            // A new sandbox: containers start over in it.
            self.start(pod, c, false, current.attempt + 1, sandbox_id, config)
                .await;
            return None;
        }
        if current.running() {
            if current.hash != spec_hash(c) {
                let message = format!("Container {} definition changed, will be restarted", c.name);
                self.kill(pod, &current, &message).await;
                self.start(pod, c, false, current.attempt + 1, sandbox_id, config)
                    .await;
                return None;
            }
            self.run_probes(pod, c, &current).await;
            return None;
        }
        if !current.exited() {
            return Some(Duration::from_secs(1));
        }
        let restart = match policy {
            "Always" => true,
            "OnFailure" => current.exit_code != 0,
            _ => false,
        };
        if !restart {
            self.waiting.remove(&c.name);
            return None;
        }
        if let Some(wait) = self.in_backoff(pod, &c.name, &current.id) {
            return Some(wait);
        }
        self.start(pod, c, false, current.attempt + 1, sandbox_id, config)
            .await;
        None
    }

    /// `Some(remaining)` while a crashed container waits for its back-off
    /// (status `CrashLoopBackOff`); otherwise records the restart.
    fn in_backoff(&mut self, pod: &Pod, name: &str, exited_id: &str) -> Option<Duration> {
        let now = Instant::now();
        let since = *self.exit_seen.entry(exited_id.to_owned()).or_insert(now);
        if let Some(remaining) = self.backoff.remaining(name, since, now) {
            let delay = self.backoff.delay(name);
            self.waiting.insert(
                name.to_owned(),
                Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!(
                        "back-off {} restarting failed container={name} pod={}_{}({})",
                        go_duration(delay),
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                        self.uid
                    ),
                },
            );
            let key = format!("backoff:{name}:{exited_id}");
            if self.announced.insert(key.clone(), key).is_none() {
                let pod = pod.clone();
                let recorder = self.ctx.recorder.clone();
                let field = field_path(&pod, name);
                let message = "Back-off restarting failed container".to_string()
                    + &format!(" {name} in pod {}", pod_ref(&pod));
                tokio::spawn(async move {
                    recorder.warning(&pod, field, "BackOff", message).await;
                });
            }
            return Some(remaining);
        }
        self.backoff.next(name, now);
        None
    }

    fn is_terminal(&self, pod: &Pod) -> bool {
        let phase = self
            .last_status
            .as_ref()
            .or(pod.status.as_ref())
            .and_then(|s| s.phase.as_deref());
        matches!(phase, Some("Succeeded" | "Failed"))
    }

    fn ready_sandbox(&self) -> Option<PodSandbox> {
        self.sandboxes
            .iter()
            .filter(|s| s.state == PodSandboxState::SandboxReady as i32)
            .max_by_key(|s| s.created_at)
            .cloned()
    }

    fn sandbox_config(&self, pod: &Pod, attempt: u32) -> PodSandboxConfig {
        let log_dir = self.ctx.pod_log_dir.join(labels::log_dir_name(pod));
        sandbox_config(
            pod,
            &SandboxInputs {
                attempt,
                log_dir: &log_dir,
                dns: self.ctx.dns.as_ref(),
                node_name: &self.ctx.node_name,
                host_resolv_conf: &self.ctx.host_resolv_conf,
            },
        )
    }

    async fn create_sandbox(&mut self, pod: &Pod) -> Result<PodSandbox, Option<Duration>> {
        // Containers of a dead sandbox are stopped first, as upstream.
        self.stop_sandboxes().await;
        if self.volumes.is_none() {
            match self.ctx.volumes.setup(pod).await {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.volumes_refreshed = Some(Instant::now());
                }
                Err(e) => {
                    let message = e.to_string();
                    self.announce(pod, None, "FailedMount", &message, true)
                        .await;
                    return Err(Some(Duration::from_secs(2)));
                }
            }
        }
        let attempt = self
            .sandboxes
            .iter()
            .filter_map(|s| s.metadata.as_ref().map(|m| m.attempt + 1))
            .max()
            .unwrap_or(0);
        let config = self.sandbox_config(pod, attempt);
        if let Err(e) = std::fs::create_dir_all(&config.log_directory) {
            tracing::warn!(error = %e, dir = %config.log_directory, "creating the pod log dir");
        }
        let mut cri = self.ctx.cri.clone();
        let id = match cri
            .runtime
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
        {
            Ok(resp) => resp.into_inner().pod_sandbox_id,
            Err(e) => {
                let message = format!("Failed to create pod sandbox: {}", e.message());
                self.announce(pod, None, "FailedCreatePodSandBox", &message, true)
                    .await;
                return Err(Some(Duration::from_secs(5)));
            }
        };
        if let Err(e) = self.refresh_runtime().await {
            tracing::warn!(error = %e.message(), "listing after sandbox creation");
        }
        self.sandboxes
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or(Some(Duration::from_secs(1)))
    }

    async fn read_pod_ip(&mut self, pod: &Pod, sandbox_id: &str) {
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let ip = if host_network {
            self.ctx.node_ip.clone()
        } else {
            let mut cri = self.ctx.cri.clone();
            match cri
                .runtime
                .pod_sandbox_status(PodSandboxStatusRequest {
                    pod_sandbox_id: sandbox_id.to_owned(),
                    verbose: false,
                })
                .await
            {
                Ok(resp) => resp
                    .into_inner()
                    .status
                    .and_then(|s| s.network)
                    .map(|n| n.ip)
                    .unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e.message(), "reading the sandbox status");
                    return;
                }
            }
        };
        self.pod_ip = Some((sandbox_id.to_owned(), ip));
    }

    async fn refresh_volumes(&mut self, pod: &Pod) {
        let due = self
            .volumes_refreshed
            .is_none_or(|at| at.elapsed() >= VOLUME_REFRESH);
        if !due {
            return;
        }
        if let Some(volumes) = &self.volumes {
            if let Err(e) = self.ctx.volumes.refresh(pod, volumes).await {
                tracing::debug!(error = %e, "refreshing volumes");
            }
            self.volumes_refreshed = Some(Instant::now());
        }
    }

    /// Pulls (per policy), creates and starts one container; failures
    /// leave a waiting reason in the status, as upstream.
    async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        init: bool,
        attempt: u32,
        sandbox_id: &str,
        sandbox_config: &PodSandboxConfig,
    ) {
        let field = field_path(pod, &c.name);
        let image = match self.ensure_image(pod, c).await {
            Ok(image) => image,
            Err(w) => {
                self.waiting.insert(c.name.clone(), w);
                return;
            }
        };
        let host_ip = self.ctx.node_ip.clone();
        let pod_ip = self
            .pod_ip
            .as_ref()
            .map(|(_, ip)| ip.clone())
            .unwrap_or_default();
        let env = match env::resolve(&self.ctx.client, pod, c, &host_ip, &pod_ip).await {
            Ok(env) => env,
            Err(e) => {
                self.config_error(pod, c, e.to_string()).await;
                return;
            }
        };
        let mounts = match &self.volumes {
            Some(v) => match self.ctx.volumes.mounts(pod, c, v) {
                Ok(m) => m,
                Err(e) => {
                    self.config_error(pod, c, e.to_string()).await;
                    return;
                }
            },
            None => Vec::new(),
        };
        let config = container_config(ContainerInputs {
            pod,
            container: c,
            init,
            restart_count: attempt,
            image_ref: image,
            env,
            mounts,
            node_memory: self.ctx.node_memory,
        });
        let mut cri = self.ctx.cri.clone();
        let id = match cri
            .runtime
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox_id.to_owned(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            })
            .await
        {
            Ok(resp) => resp.into_inner().container_id,
            Err(e) => {
                self.runtime_error(pod, c, field, "CreateContainerError", &e)
                    .await;
                return;
            }
        };
        self.ctx
            .recorder
            .normal(
                pod,
                field.clone(),
                "Created",
                format!("Created container: {}", c.name),
            )
            .await;
        if let Err(e) = cri
            .runtime
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            self.runtime_error(pod, c, field, "RunContainerError", &e)
                .await;
            return;
        }
        self.ctx
            .recorder
            .normal(
                pod,
                field.clone(),
                "Started",
                format!("Started container {}", c.name),
            )
            .await;
        self.waiting.remove(&c.name);
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let grace = grace_seconds(pod);
            if let Err(message) = self.run_hook(hook, c, &id, grace).await {
                self.ctx
                    .recorder
                    .warning(pod, field, "FailedPostStartHook", message)
                    .await;
                let _ = cri
                    .runtime
                    .stop_container(StopContainerRequest {
                        container_id: id.clone(),
                        timeout: grace,
                    })
                    .await;
            }
        }
        // Keep the newest dead instance (for `logs --previous`), drop older ones.
        let stale: Vec<String> = self
            .instances
            .iter()
            .filter(|i| i.name == c.name && i.init == init && i.exited() && i.attempt + 1 < attempt)
            .map(|i| i.id.clone())
            .collect();
        for container_id in stale {
            let _ = cri
                .runtime
                .remove_container(RemoveContainerRequest { container_id })
                .await;
        }
        if let Err(e) = self.refresh_runtime().await {
            tracing::debug!(error = %e.message(), "listing after a start");
        }
    }

    /// A failed create/start: a `Failed` event and the waiting reason.
    async fn runtime_error(
        &mut self,
        pod: &Pod,
        c: &Container,
        field: Option<String>,
        reason: &str,
        e: &tonic::Status,
    ) {
        let message = format!("Error: {}", e.message());
        self.ctx
            .recorder
            .warning(pod, field, "Failed", message)
            .await;
        self.waiting.insert(
            c.name.clone(),
            Waiting {
                reason: reason.into(),
                message: e.message().to_owned(),
            },
        );
    }

    async fn config_error(&mut self, pod: &Pod, c: &Container, message: String) {
        self.announce(
            pod,
            field_path(pod, &c.name),
            "Failed",
            &format!("Error: {message}"),
            true,
        )
        .await;
        self.waiting.insert(
            c.name.clone(),
            Waiting {
                reason: "CreateContainerConfigError".into(),
                message,
            },
        );
    }

    /// Records an event once per distinct message for this pod.
    async fn announce(
        &mut self,
        pod: &Pod,
        field: Option<String>,
        reason: &str,
        message: &str,
        warning: bool,
    ) {
        let key = format!("{reason}:{}", field.clone().unwrap_or_default());
        if self.announced.get(&key).map(String::as_str) == Some(message) {
            return;
        }
        self.announced.insert(key, message.to_owned());
        if warning {
            self.ctx
                .recorder
                .warning(pod, field, reason, message.to_owned())
                .await;
        } else {
            self.ctx
                .recorder
                .normal(pod, field, reason, message.to_owned())
                .await;
        }
    }

    /// The image reference to run, pulled as `imagePullPolicy` says.
    async fn ensure_image(&mut self, pod: &Pod, c: &Container) -> Result<String, Waiting> {
        let image = c.image.clone().unwrap_or_default();
        let field = field_path(pod, &c.name);
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image));
        let mut cri = self.ctx.cri.clone();
        let present = cri
            .images
            .image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: image.clone(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().image)
            .is_some();
        // skiff.local/ images are built and imported locally: there is no
        // registry to pull them from.
        let local_only = image.starts_with("skiff.local/");
        if present && (policy != "Always" || local_only) {
            let message = format!("Container image \"{image}\" already present on machine");
            self.announce(pod, field, "Pulled", &message, false).await;
            return Ok(image);
        }
        if policy == "Never" || (local_only && !present) {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of {policy}");
            self.announce(pod, field, "ErrImageNeverPull", &message, true)
                .await;
            return Err(Waiting {
                reason: "ErrImageNeverPull".into(),
                message,
            });
        }
        let key = format!("pull:{}", c.name);
        let now = Instant::now();
        if let Some(since) = self.exit_seen.get(&key).copied()
            && self.backoff.remaining(&key, since, now).is_some()
        {
            return Err(Waiting {
                reason: "ImagePullBackOff".into(),
                message: format!("Back-off pulling image \"{image}\""),
            });
        }
        self.ctx
            .recorder
            .normal(
                pod,
                field.clone(),
                "Pulling",
                format!("Pulling image \"{image}\""),
            )
            .await;
        let started = std::time::Instant::now();
        let auth = pull_secrets::credentials(&self.ctx.client, pod, &image).await;
        match cri
            .images
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: image.clone(),
                    ..Default::default()
                }),
                auth,
                sandbox_config: None,
            })
            .await
        {
            Ok(_) => {
                let message = format!(
                    "Successfully pulled image \"{image}\" in {:.3}s",
                    started.elapsed().as_secs_f64()
                );
                self.ctx
                    .recorder
                    .normal(pod, field, "Pulled", message)
                    .await;
                Ok(image)
            }
            Err(e) => {
                let message = format!("Failed to pull image \"{image}\": {}", e.message());
                self.ctx
                    .recorder
                    .warning(pod, field, "Failed", message.clone())
                    .await;
                self.exit_seen.insert(key.clone(), now);
                self.backoff.next(&key, now);
                Err(Waiting {
                    reason: "ErrImagePull".into(),
                    message,
                })
            }
        }
    }

    async fn run_probes(&mut self, pod: &Pod, c: &Container, current: &Instance) {
        let now = Instant::now();
        let since = *self.running_since.entry(current.id.clone()).or_insert(now);
        let pod_ip = self
            .pod_ip
            .as_ref()
            .map(|(_, ip)| ip.clone())
            .unwrap_or_default();
        let has_startup = c.startup_probe.is_some();
        let probes = [
            (Kind::Startup, c.startup_probe.as_ref()),
            (Kind::Liveness, c.liveness_probe.as_ref()),
            (Kind::Readiness, c.readiness_probe.as_ref()),
        ];
        for (kind, probe) in probes {
            let Some(probe) = probe else { continue };
            if kind != Kind::Startup
                && has_startup
                && !self.started.get(&current.id).copied().unwrap_or(false)
            {
                continue;
            }
            let key = (current.id.clone(), kind);
            let state = self
                .probes
                .entry(key.clone())
                .or_insert_with(|| probe::State::new(kind, probe, since));
            match kind {
                Kind::Readiness => {
                    self.ready.insert(current.id.clone(), state.success);
                }
                Kind::Startup => {
                    self.started.insert(current.id.clone(), state.success);
                }
                Kind::Liveness => {}
            }
            if !state.due(now) {
                continue;
            }
            let result = probe::run(&self.ctx.cri, probe, c, &current.id, &pod_ip).await;
            let now = Instant::now();
            let Some(state) = self.probes.get_mut(&key) else {
                continue;
            };
            state.record(probe, result.is_ok(), now);
            let success = state.success;
            if let Err(output) = &result {
                let message = format!("{} probe failed: {output}", kind.name());
                self.ctx
                    .recorder
                    .warning(pod, field_path(pod, &c.name), "Unhealthy", message)
                    .await;
            }
            match kind {
                Kind::Readiness => {
                    self.ready.insert(current.id.clone(), success);
                }
                Kind::Startup => {
                    self.started.insert(current.id.clone(), success);
                    if !success && result.is_err() && self.probe_failed_out(&key, probe) {
                        let message = format!(
                            "Container {} failed startup probe, will be restarted",
                            c.name
                        );
                        self.kill(pod, current, &message).await;
                        return;
                    }
                }
                Kind::Liveness => {
                    if !success {
                        let message = format!(
                            "Container {} failed liveness probe, will be restarted",
                            c.name
                        );
                        self.kill(pod, current, &message).await;
                        return;
                    }
                }
            }
        }
    }

    /// A startup probe has failed `failureThreshold` times in a row.
    fn probe_failed_out(
        &self,
        key: &(String, Kind),
        probe: &k8s_openapi::api::core::v1::Probe,
    ) -> bool {
        self.probes
            .get(key)
            .is_some_and(|s| s.failures() >= probe.failure_threshold.unwrap_or(3).max(1))
    }

    fn next_probe_wake(&self) -> Option<Duration> {
        let now = Instant::now();
        self.probes
            .iter()
            .filter(|((id, _), _)| self.instances.iter().any(|i| &i.id == id && i.running()))
            .map(|(_, s)| s.next_run().saturating_duration_since(now))
            .min()
            .map(|d| d.max(Duration::from_millis(50)))
    }

    /// Stops one container: preStop hook, then SIGTERM with the remaining
    /// grace, then SIGKILL (by the runtime).
    async fn kill(&mut self, pod: &Pod, instance: &Instance, message: &str) {
        let grace = grace_seconds(pod);
        let field = field_path(pod, &instance.name);
        self.ctx
            .recorder
            .normal(pod, field.clone(), "Killing", message.to_owned())
            .await;
        let spec_container = pod.spec.as_ref().and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == instance.name)
                .cloned()
        });
        let started = std::time::Instant::now();
        if let Some(c) = &spec_container
            && let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
            && let Err(e) = self.run_hook(hook, c, &instance.id, grace).await
        {
            self.ctx
                .recorder
                .warning(pod, field, "FailedPreStopHook", e)
                .await;
        }
        let remaining = (grace - started.elapsed().as_secs() as i64).max(MIN_GRACE);
        let mut cri = self.ctx.cri.clone();
        if let Err(e) = cri
            .runtime
            .stop_container(StopContainerRequest {
                container_id: instance.id.clone(),
                timeout: remaining,
            })
            .await
        {
            tracing::warn!(error = %e.message(), container = %instance.id, "stopping a container");
        }
        let _ = self.refresh_runtime().await;
    }

    async fn run_hook(
        &self,
        hook: &LifecycleHandler,
        c: &Container,
        container_id: &str,
        grace: i64,
    ) -> Result<(), String> {
        if let Some(exec) = &hook.exec {
            let mut cri = self.ctx.cri.clone();
            let resp = cri
                .runtime
                .exec_sync(ExecSyncRequest {
                    container_id: container_id.to_owned(),
                    cmd: exec.command.clone().unwrap_or_default(),
                    timeout: grace.max(1),
                })
                .await
                .map_err(|e| e.message().to_owned())?
                .into_inner();
            if resp.exit_code != 0 {
                return Err(format!(
                    "command {:?} exited with {}: {}",
                    exec.command.clone().unwrap_or_default(),
                    resp.exit_code,
                    String::from_utf8_lossy(&resp.stderr)
                ));
            }
            return Ok(());
        }
        if let Some(sleep) = &hook.sleep {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
            return Ok(());
        }
        if let Some(http) = &hook.http_get {
            let probe = k8s_openapi::api::core::v1::Probe {
                http_get: Some(http.clone()),
                timeout_seconds: Some(grace.clamp(1, i64::from(i32::MAX)) as i32),
                ..Default::default()
            };
            let pod_ip = self
                .pod_ip
                .as_ref()
                .map(|(_, ip)| ip.clone())
                .unwrap_or_default();
            return probe::run(&self.ctx.cri, &probe, c, container_id, &pod_ip).await;
        }
        Ok(())
    }

    async fn stop_sandboxes(&mut self) {
        let mut cri = self.ctx.cri.clone();
        for s in &self.sandboxes {
            if s.state == PodSandboxState::SandboxReady as i32 {
                let _ = cri
                    .runtime
                    .stop_pod_sandbox(StopPodSandboxRequest {
                        pod_sandbox_id: s.id.clone(),
                    })
                    .await;
            }
        }
    }

    /// The pod is being deleted (or is gone): stop everything within its
    /// grace period, remove it from the runtime, then let the API forget it.
    async fn terminate(&mut self) {
        let pod = self.pod.clone().or_else(|| self.last_known.clone());
        if let Some(pod) = &pod {
            let running: Vec<Instance> = self
                .instances
                .iter()
                .filter(|i| i.running())
                .cloned()
                .collect();
            let mut kills = Vec::new();
            for instance in running {
                let message = format!("Stopping container {}", instance.name);
                let mut worker = self.shallow();
                let pod = pod.clone();
                kills.push(async move { worker.kill(&pod, &instance, &message).await });
            }
            futures::future::join_all(kills).await;
        } else {
            let mut cri = self.ctx.cri.clone();
            for i in self.instances.iter().filter(|i| i.running()) {
                let _ = cri
                    .runtime
                    .stop_container(StopContainerRequest {
                        container_id: i.id.clone(),
                        timeout: 30,
                    })
                    .await;
            }
        }
        let _ = self.refresh_runtime().await;
        self.stop_sandboxes().await;
        if let Some(p) = self.pod.clone() {
            self.write_status(&p).await;
        }
        let mut cri = self.ctx.cri.clone();
        for s in &self.sandboxes {
            if let Err(e) = cri
                .runtime
                .remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await
            {
                tracing::warn!(error = %e.message(), "removing a sandbox");
            }
        }
        if let Err(e) = self.ctx.volumes.teardown(&self.uid).await {
            tracing::warn!(error = %e, "tearing down volumes");
        }
        if let Some(p) = &self.pod {
            let ns = p
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api
                .delete(p.metadata.name.as_deref().unwrap_or_default(), &params)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => {
                    tracing::warn!(error = %e, "deleting the terminated pod");
                    return;
                }
            }
        }
        self.done = true;
    }

    /// A copy that shares the context but none of the per-sync state, for
    /// stopping containers concurrently.
    fn shallow(&self) -> Worker {
        let mut w = Worker::new(self.ctx.clone(), self.uid.clone(), None);
        w.pod_ip = self.pod_ip.clone();
        w
    }

    async fn refresh_runtime(&mut self) -> Result<(), tonic::Status> {
        let selector = HashMap::from([(labels::POD_UID.to_owned(), self.uid.clone())]);
        let mut cri = self.ctx.cri.clone();
        self.sandboxes = cri
            .runtime
            .list_pod_sandbox(ListPodSandboxRequest {
                filter: Some(PodSandboxFilter {
                    label_selector: selector.clone(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .items;
        let listed = cri
            .runtime
            .list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    label_selector: selector,
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .containers;
        let mut instances = Vec::with_capacity(listed.len());
        for c in listed {
            let cached = self
                .cache
                .get(&c.id)
                .filter(|i| i.state as i32 == c.state)
                .cloned();
            let instance = match cached {
                Some(i) => i,
                None => {
                    let status = match cri
                        .runtime
                        .container_status(ContainerStatusRequest {
                            container_id: c.id.clone(),
                            verbose: false,
                        })
                        .await
                    {
                        Ok(resp) => resp.into_inner().status,
                        Err(e) if e.code() == tonic::Code::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    let Some(status) = status else { continue };
                    let mut i = Instance::from_status(status);
                    i.sandbox_id = c.pod_sandbox_id.clone();
                    self.cache.insert(i.id.clone(), i.clone());
                    i
                }
            };
            if instance.exited() {
                self.exit_seen
                    .entry(instance.id.clone())
                    .or_insert_with(Instant::now);
            }
            instances.push(instance);
        }
        let live: std::collections::HashSet<&String> = instances.iter().map(|i| &i.id).collect();
        self.cache.retain(|id, _| live.contains(id));
        self.probes.retain(|(id, _), _| live.contains(id));
        self.instances = instances;
        Ok(())
    }

    async fn write_status(&mut self, pod: &Pod) {
        let sandbox_ready = self.ready_sandbox().is_some();
        let mut base = pod.clone();
        if let Some(last) = &self.last_status {
            base.status = Some(last.clone());
        }
        let running_ids: Vec<&String> = self
            .instances
            .iter()
            .filter(|i| i.running())
            .map(|i| &i.id)
            .collect();
        let ready: HashMap<String, bool> = self
            .ready
            .iter()
            .filter(|(id, _)| running_ids.contains(id))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let status = pod_status(&View {
            pod: &base,
            instances: &self.instances,
            waiting: &self.waiting,
            ready: &ready,
            started: &self.started,
            sandbox_ready,
            pod_ip: self
                .pod_ip
                .as_ref()
                .map(|(_, ip)| ip.as_str())
                .filter(|ip| !ip.is_empty()),
            host_ip: &self.ctx.node_ip,
            runtime_name: &self.ctx.runtime_name,
        });
        let mut status = status;
        if let Some(message) = &self.evicted {
            status.phase = Some("Failed".into());
            status.reason = Some("Evicted".into());
            status.message = Some(message.clone());
        }
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
        let patch = serde_json::json!({ "status": status });
        match api
            .patch_status(
                pod.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => self.last_status = Some(status),
            Err(e) => tracing::debug!(error = %e, "writing the pod status"),
        }
    }
}

fn default_pull_policy(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = if image.contains('@') {
        Some("digest")
    } else {
        last.split_once(':').map(|(_, t)| t)
    };
    match tag {
        None | Some("latest") => "Always".into(),
        _ => "IfNotPresent".into(),
    }
}

fn grace_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
}

fn field_path(pod: &Pod, name: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if spec.containers.iter().any(|c| c.name == name) {
        return Some(format!("spec.containers{{{name}}}"));
    }
    spec.init_containers
        .iter()
        .flatten()
        .any(|c| c.name == name)
        .then(|| format!("spec.initContainers{{{name}}}"))
}

fn pod_ref(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// Go's `time.Duration` text for whole seconds/minutes (`10s`, `5m0s`).
fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

//! The scheduling loop: watch events into the cache and queue, one
//! scheduling cycle at a time, bindings and status writes in the
//! background with their outcomes coming back on a channel.

mod api;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::framework::node_info::{pod_key, pod_priority};
use crate::framework::{ClusterEvent, CycleState, Framework, ScheduleError};
use crate::metrics::AttemptResult;
use crate::plugins::default_preemption::carry_out;
use crate::queue::Queue;
use crate::{Config, Error, is_unscheduled};

/// What a background binding reports back.
struct BindOutcome {
    key: String,
    node: String,
    pod: Arc<Pod>,
    profile: Arc<Framework>,
    state: CycleState,
    result: Result<(), BindError>,
}

/// Why a pod was not bound after its scheduling cycle.
enum BindError {
    /// A PreBind plugin refused.
    PreBind(crate::framework::Status),
    /// The `pods/binding` call failed.
    Api(kube::Error),
}

struct Scheduler {
    config: Config,
    cache: Cache,
    queue: Queue,
    /// Pending pods of our profiles by key.
    pending: HashMap<String, Arc<Pod>>,
    /// Plugin name → the cluster events it registered.
    interest: HashMap<&'static str, HashSet<ClusterEvent>>,
    /// The last FailedScheduling message recorded per pod.
    reported: HashMap<String, String>,
    bound_tx: mpsc::UnboundedSender<BindOutcome>,
    /// Keys seen during a relist (pods, nodes), to drop the rest after.
    relist_pods: Option<HashSet<String>>,
    relist_nodes: Option<HashSet<String>>,
}

/// Hash of what scheduling reads from a pod (not its status).
fn fingerprint(pod: &Pod) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&pod.spec)
        .unwrap_or_default()
        .hash(&mut h);
    pod.metadata.labels.hash(&mut h);
    h.finish()
}

fn watch<K>(
    client: &kube::Client,
) -> futures::stream::BoxStream<'static, watcher::Result<watcher::Event<K>>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .boxed()
}

/// Schedules pods until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let names: Vec<&str> = config
        .profiles
        .iter()
        .map(|p| p.profile_name.as_str())
        .collect();
    tracing::info!(profiles = ?names, "scheduler starting");
    let mut pod_events = watch::<Pod>(&config.client);
    let mut node_events = watch::<Node>(&config.client);
    let mut namespace_events = watch::<Namespace>(&config.client);
    let (pdbs, pdb_writer) = reflector::store::<PodDisruptionBudget>();
    let mut pdb_events = reflector::reflector(
        pdb_writer,
        watcher(
            Api::<PodDisruptionBudget>::all(config.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .boxed();
    let (bound_tx, mut bound_rx) = mpsc::unbounded_channel();
    let mut interest: HashMap<&'static str, HashSet<ClusterEvent>> = HashMap::new();
    for profile in &config.profiles {
        for p in profile.plugins() {
            interest
                .entry(p.name())
                .or_default()
                .extend(p.events().iter().copied());
        }
    }
    let mut s = Scheduler {
        queue: Queue::new(config.initial_backoff, config.max_backoff),
        config,
        cache: Cache::default(),
        pending: HashMap::new(),
        interest,
        reported: HashMap::new(),
        bound_tx,
        relist_pods: None,
        relist_nodes: None,
    };
    let mut synced = [false; 4];
    let mut gauges = tokio::time::interval(Duration::from_secs(1));
    loop {
        let ready = synced.iter().all(|&x| x);
        let wake = s
            .queue
            .next_ready()
            .filter(|_| ready)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            event = pod_events.try_next() => match event {
                Ok(Some(e)) => synced[0] |= s.on_pod_event(e),
                Ok(None) => return Err(Error::WatchEnded("pods")),
                Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            },
            event = node_events.try_next() => match event {
                Ok(Some(e)) => synced[1] |= s.on_node_event(e),
                Ok(None) => return Err(Error::WatchEnded("nodes")),
                Err(e) => tracing::warn!(error = %e, "node watch failed; retrying"),
            },
            event = namespace_events.try_next() => match event {
                Ok(Some(e)) => synced[2] |= s.on_namespace_event(e),
                Ok(None) => return Err(Error::WatchEnded("namespaces")),
                Err(e) => tracing::warn!(error = %e, "namespace watch failed; retrying"),
            },
            event = pdb_events.try_next() => match event {
                Ok(Some(e)) => synced[3] |= s.on_pdb_event(e, &pdbs),
                Ok(None) => return Err(Error::WatchEnded("poddisruptionbudgets")),
                Err(e) => tracing::warn!(error = %e, "PodDisruptionBudget watch failed; retrying"),
            },
            Some(outcome) = bound_rx.recv() => s.on_bound(outcome),
            _ = gauges.tick() => s.report_pending(),
            () = tokio::time::sleep_until(wake.into()), if ready => {
                if let Some(key) = s.queue.pop(Instant::now()) {
                    s.schedule_one(&key);
                }
            }
        }
    }
}

impl Scheduler {
    /// `scheduler_pending_pods` by sub-queue.
    fn report_pending(&self) {
        let p = self.queue.pending();
        let m = &self.config.metrics;
        for (queue, n) in [
            ("active", p.active),
            ("backoff", p.backoff),
            ("unschedulable", p.unschedulable),
            ("gated", p.gated),
        ] {
            m.pending(queue, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn cluster_event(&mut self, event: ClusterEvent) {
        let interest = &self.interest;
        self.queue.on_event(Instant::now(), |plugin| {
            interest.get(plugin).is_some_and(|e| e.contains(&event))
        });
    }

    /// True on `InitDone`.
    fn on_pod_event(&mut self, event: watcher::Event<Pod>) -> bool {
        match event {
            watcher::Event::Init => {
                self.relist_pods = Some(HashSet::new());
                false
            }
            watcher::Event::InitApply(pod) => {
                if let Some(seen) = self.relist_pods.as_mut() {
                    seen.insert(pod_key(&pod));
                }
                self.on_pod(pod);
                false
            }
            watcher::Event::Apply(pod) => {
                self.on_pod(pod);
                false
            }
            watcher::Event::Delete(pod) => {
                let key = pod_key(&pod);
                self.drop_pending(&key);
                if let Some(e) = self.cache.remove_pod(&key) {
                    self.cluster_event(e);
                }
                false
            }
            watcher::Event::InitDone => {
                let seen = self.relist_pods.take().unwrap_or_default();
                for key in self.cache.pod_keys() {
                    if !seen.contains(&key) && !self.cache.is_assumed(&key) {
                        self.cache.remove_pod(&key);
                    }
                }
                let gone: Vec<String> = self
                    .pending
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    self.drop_pending(&key);
                }
                self.cluster_event(ClusterEvent::AssignedPodDelete);
                true
            }
        }
    }

    fn drop_pending(&mut self, key: &str) {
        self.pending.remove(key);
        self.queue.remove(key);
        self.reported.remove(key);
    }

    fn on_pod(&mut self, pod: Pod) {
        let pod = Arc::new(pod);
        let key = pod_key(&pod);
        if let Some(e) = self.cache.update_pod(pod.clone()) {
            self.cluster_event(e);
        }
        let profile = self.config.profile_for(&pod).cloned();
        match profile {
            Some(profile) if is_unscheduled(&pod) => {
                if self.cache.is_assumed(&key) {
                    // Being bound by us; the watch will catch up.
                    return;
                }
                let gated = !profile.pre_enqueue(&pod).is_success();
                if !self.queue.contains(&key) {
                    let queue = if gated { "gated" } else { "active" };
                    self.config.metrics.incoming(queue, "PodAdd");
                }
                self.queue.add(
                    &key,
                    pod_priority(&pod),
                    gated,
                    fingerprint(&pod),
                    Instant::now(),
                );
                self.pending.insert(key, pod);
            }
            // Bound while our binding call is in flight: its outcome
            // finishes the queue entry (and counts the latency).
            _ if self.queue.in_flight(&key) => {
                self.pending.remove(&key);
            }
            _ => self.drop_pending(&key),
        }
    }

    fn on_node_event(&mut self, event: watcher::Event<Node>) -> bool {
        match event {
            watcher::Event::Init => {
                self.relist_nodes = Some(HashSet::new());
                false
            }
            watcher::Event::InitApply(node) | watcher::Event::Apply(node) => {
                if let Some(seen) = self.relist_nodes.as_mut() {
                    seen.insert(node.name_any());
                }
                if let Some(e) = self.cache.set_node(Arc::new(node)) {
                    self.cluster_event(e);
                }
                false
            }
            watcher::Event::Delete(node) => {
                if let Some(e) = self.cache.remove_node(&node.name_any()) {
                    self.cluster_event(e);
                }
                false
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relist_nodes.take() {
                    self.cache.retain_nodes(&seen);
                }
                self.cluster_event(ClusterEvent::NodeAdd);
                true
            }
        }
    }

    fn on_namespace_event(&mut self, event: watcher::Event<Namespace>) -> bool {
        match event {
            watcher::Event::InitApply(ns) | watcher::Event::Apply(ns) => {
                let labels = ns.metadata.labels.clone().unwrap_or_default();
                if self.cache.set_namespace(ns.name_any(), labels) {
                    self.cluster_event(ClusterEvent::NamespaceChange);
                }
                false
            }
            watcher::Event::Delete(ns) => {
                self.cache.remove_namespace(&ns.name_any());
                false
            }
            watcher::Event::Init => false,
            watcher::Event::InitDone => true,
        }
    }

    fn on_pdb_event(
        &mut self,
        event: watcher::Event<PodDisruptionBudget>,
        store: &Store<PodDisruptionBudget>,
    ) -> bool {
        let done = matches!(event, watcher::Event::InitDone);
        if !matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
            self.cache.set_pdbs(store.state());
            self.cluster_event(ClusterEvent::PodDisruptionBudgetChange);
        }
        done
    }

    /// One scheduling cycle for `key`.
    fn schedule_one(&mut self, key: &str) {
        let Some(pod) = self.pending.get(key).cloned() else {
            self.queue.remove(key);
            return;
        };
        let Some(profile) = self.config.profile_for(&pod).cloned() else {
            self.drop_pending(key);
            return;
        };
        let started = Instant::now();
        let mut state = CycleState::default();
        let result = profile.schedule(&mut state, &pod, self.cache.snapshot());
        let outcome = match &result {
            Ok(_) => AttemptResult::Scheduled,
            Err(ScheduleError::Unschedulable(_)) => AttemptResult::Unschedulable,
            Err(ScheduleError::Internal(_)) => AttemptResult::Error,
        };
        self.config.metrics.attempt(
            outcome,
            &profile.profile_name,
            started.elapsed().as_secs_f64(),
        );
        match result {
            Ok(node) => self.assume_and_bind(key, pod, profile, state, node),
            Err(ScheduleError::Unschedulable(fit)) => {
                let message = fit.to_string();
                tracing::debug!(pod = key, message, "unschedulable");
                if let Some(result) = fit.post_filter.clone() {
                    self.config.metrics.preemption(result.victims.len());
                    if let Some(nominated) = result.nominated_node.as_deref() {
                        self.cache.nominate(pod.clone(), nominated);
                        // Evict the victims and record the nomination in
                        // the background (upstream's asynchronous
                        // preemption).
                        let (client, preemptor) = (self.config.client.clone(), pod.clone());
                        tokio::spawn(async move {
                            let r = carry_out(client, &preemptor, &result).await;
                            if let Err(e) = r {
                                tracing::warn!(pod = %pod_key(&preemptor), error = %e, "preemption failed");
                            }
                        });
                    }
                }
                self.queue
                    .failed(key, Some(fit.plugins.clone()), Instant::now());
                let client = self.config.client.clone();
                let name = profile.profile_name.clone();
                let report = self.reported.get(key) != Some(&message);
                if report {
                    self.reported.insert(key.to_owned(), message.clone());
                }
                tokio::spawn(async move {
                    if let Err(e) = api::mark_unschedulable(client.clone(), &pod, &message).await {
                        tracing::debug!(error = %e, "setting PodScheduled=False failed");
                    }
                    if report {
                        api::event(
                            client,
                            &name,
                            &pod,
                            "Warning",
                            "FailedScheduling",
                            "Scheduling",
                            message,
                        )
                        .await;
                    }
                });
            }
            Err(ScheduleError::Internal(status)) => {
                tracing::warn!(pod = key, plugin = status.plugin, reasons = ?status.reasons, "scheduling failed");
                self.queue.failed(key, None, Instant::now());
            }
        }
    }

    fn assume_and_bind(
        &mut self,
        key: &str,
        pod: Arc<Pod>,
        profile: Arc<Framework>,
        mut state: CycleState,
        node: String,
    ) {
        let reserved = profile.reserve(&mut state, &pod, &node);
        if !reserved.is_success() {
            tracing::debug!(pod = key, reasons = ?reserved.reasons, "reserve failed");
            self.queue.failed(key, None, Instant::now());
            return;
        }
        let permitted = profile.permit(&state, &pod, &node);
        if !permitted.is_success() {
            profile.unreserve(&mut state, &pod, &node);
            tracing::debug!(pod = key, reasons = ?permitted.reasons, "permit rejected");
            self.queue.failed(key, None, Instant::now());
            return;
        }
        self.cache.assume(pod.clone(), &node);
        let tx = self.bound_tx.clone();
        let client = self.config.client.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            let pre = profile.pre_bind(&state, &pod, &node);
            let result = if !pre.is_success() {
                Err(BindError::PreBind(pre))
            } else if profile.binds {
                api::bind(client, &pod, &node).await.map_err(BindError::Api)
            } else {
                Ok(())
            };
            let _ = tx.send(BindOutcome {
                key,
                node,
                pod,
                profile,
                state,
                result,
            });
        });
    }

    fn on_bound(&mut self, outcome: BindOutcome) {
        let BindOutcome {
            key,
            node,
            pod,
            profile,
            mut state,
            result,
        } = outcome;
        match result {
            Ok(()) => {
                tracing::debug!(pod = key, node, "bound");
                profile.post_bind(&state, &pod, &node);
                if let Some((waited, attempts)) = self.queue.done(&key) {
                    self.config
                        .metrics
                        .pod_scheduled(attempts, waited.as_secs_f64());
                }
                self.pending.remove(&key);
                self.reported.remove(&key);
                let client = self.config.client.clone();
                tokio::spawn(async move {
                    api::event(
                        client,
                        &profile.profile_name,
                        &pod,
                        "Normal",
                        "Scheduled",
                        "Binding",
                        format!("Successfully assigned {key} to {node}"),
                    )
                    .await;
                });
            }
            Err(e) => {
                self.cache.forget(&key);
                profile.unreserve(&mut state, &pod, &node);
                self.cluster_event(ClusterEvent::AssignedPodDelete);
                let gone = match &e {
                    BindError::Api(e) => {
                        tracing::warn!(pod = key, node, error = %e, "binding failed");
                        matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 404)
                    }
                    BindError::PreBind(s) => {
                        tracing::warn!(pod = key, node, plugin = s.plugin, reasons = ?s.reasons, "PreBind failed");
                        false
                    }
                };
                if gone {
                    self.drop_pending(&key);
                } else {
                    self.queue.failed(&key, None, Instant::now());
                }
            }
        }
    }
}

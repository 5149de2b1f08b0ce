//! Leader election over a `coordination.k8s.io/v1` Lease, as upstream's
//! client-go `leaderelection` with a LeaseLock: a candidate takes the lease
//! when it is free or its holder has not renewed it for a lease duration
//! (measured on the candidate's own clock from when it last saw the record
//! change, so clock skew between hosts does not matter), renews it every
//! retry period, and gives up leading when no renewal succeeded within the
//! renew deadline. At most one instance acts at a time.
//!
//! Its own crate so that the controller manager and the scheduler (each
//! with its own Lease) share one implementation.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

/// Lease timings.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a lease holds without renewal (upstream: 15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops (10 s).
    pub renew_deadline: Duration,
    /// How often candidates try and the leader renews (2 s).
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// `<hostname>_<uuid>`, as upstream names lease holders: the host says
/// where the leader runs, the uuid keeps two instances on one host apart.
pub fn default_identity() -> String {
    stable_identity(&uuid::Uuid::new_v4().to_string())
}

/// `<hostname>_<instance>`: an instance that keeps its id across
/// restarts finds its own name on the lease after a crash and leads again
/// at once, instead of waiting for its old lease to expire.
pub fn stable_identity(instance: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "skiff".to_owned());
    format!("{host}_{instance}")
}

/// The record as last seen, and when (our clock) it last changed.
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    at: Instant,
}

/// One candidate for one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Mutex<Option<Observed>>,
}

impl LeaderElector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: Mutex::new(None),
        }
    }

    /// Tries every retry period until the lease is ours (true) or
    /// `shutdown` (false).
    pub async fn acquire(&self, shutdown: &CancellationToken) -> bool {
        let mut logged = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "acquired lease");
                    return true;
                }
                Ok(false) => {
                    if !logged {
                        tracing::info!(lease = %self.name, "lease held by another instance; waiting");
                        logged = true;
                    }
                }
                Err(e) => tracing::debug!(error = %e, lease = %self.name, "cannot take the lease"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(self.timing.retry_period) => {}
            }
        }
    }

    /// Renews the lease every retry period; returns when a renewal has not
    /// succeeded within the renew deadline (leadership lost) or on
    /// `shutdown`.
    pub async fn keep(&self, shutdown: &CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.timing.retry_period) => {}
            }
            let deadline = Instant::now() + self.timing.renew_deadline;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let attempt = tokio::time::timeout(left, self.try_acquire_or_renew());
                let renewed = tokio::select! {
                    () = shutdown.cancelled() => return,
                    r = attempt => matches!(r, Ok(Ok(true))),
                };
                if renewed {
                    break;
                }
                if Instant::now() >= deadline {
                    tracing::warn!(lease = %self.name, identity = %self.identity, "failed to renew lease within the renew deadline");
                    return;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.timing.retry_period.min(left)) => {}
                }
            }
        }
    }

    /// Gives the lease up (upstream's ReleaseOnCancel): empty holder, a
    /// one-second duration, so a successor need not wait. Best effort.
    pub async fn release(&self) {
        let attempt = async {
            let mut lease = self.api.get(&self.name).await?;
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok::<_, kube::Error>(());
            }
            let now = MicroTime(Timestamp::now());
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now.clone());
            spec.acquire_time = Some(now);
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await?;
            tracing::info!(lease = %self.name, "released lease");
            Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot release the lease"),
            Err(_) => tracing::debug!("releasing the lease timed out"),
        }
    }

    /// One round: create the lease, take it over, or renew it. `Ok(false)`
    /// when another holder's lease is still valid or a write raced.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        // Whole seconds, rounded up: a sub-second lease (tests) must not
        // be written as 0, which would mean "always expired".
        let secs = self
            .timing
            .lease_duration
            .as_secs()
            .saturating_add(u64::from(self.timing.lease_duration.subsec_nanos() > 0))
            .max(1);
        let duration = i32::try_from(secs).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observe(Some(&self.identity), None);
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let held_for = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timing.lease_duration, Duration::from_secs);
        let changed_at = self.observe(holder.as_deref(), spec.renew_time.clone());
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if !mine && holder.is_some() && changed_at.elapsed() < held_for {
            return Ok(false);
        }
        if !mine {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(duration);
        spec.renew_time = Some(now.clone());
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observe(Some(&self.identity), Some(now));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records the lease record; returns when (our clock) it last changed.
    fn observe(&self, holder: Option<&str>, renew_time: Option<MicroTime>) -> Instant {
        let mut observed = self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match observed.as_ref() {
            Some(o) if o.holder.as_deref() == holder && o.renew_time == renew_time => o.at,
            _ => {
                let at = Instant::now();
                *observed = Some(Observed {
                    holder: holder.map(str::to_owned),
                    renew_time,
                    at,
                });
                at
            }
        }
    }
}

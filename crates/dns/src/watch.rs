//! Keeps the record index in step with the cluster: reflectors of
//! Services and EndpointSlices, and a whole-index rebuild (at most every
//! [`MIN_REBUILD_INTERVAL`]) after any change, swapped into the
//! [`SharedIndex`] the handler reads.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};

use crate::Error;
use crate::handler::SharedIndex;
use crate::index::{Index, SERVICE_NAME_LABEL};
use crate::metrics::Metrics;

/// Bursts of events (a rollout) cost one rebuild per interval.
pub const MIN_REBUILD_INTERVAL: Duration = Duration::from_millis(100);

type Events<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// The watches and the state of the rebuild.
pub struct Watch {
    domain: Name,
    index: SharedIndex,
    metrics: Arc<Metrics>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    service_events: Events<Service>,
    slice_events: Events<EndpointSlice>,
    synced: [bool; 2],
    dirty: bool,
    last_build: Option<Instant>,
}

fn events<K>(api: Api<K>, config: watcher::Config, writer: reflector::store::Writer<K>) -> Events<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    reflector::reflector(writer, watcher(api, config).default_backoff()).boxed()
}

fn serial() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl Watch {
    /// Starts watching (lazily: nothing happens until [`Watch::step`]).
    pub fn new(
        client: kube::Client,
        domain: Name,
        index: SharedIndex,
        metrics: Arc<Metrics>,
    ) -> Watch {
        let (services, sw) = reflector::store::<Service>();
        let (slices, ew) = reflector::store::<EndpointSlice>();
        Watch {
            domain,
            index,
            metrics,
            services,
            slices,
            service_events: events(Api::all(client.clone()), watcher::Config::default(), sw),
            slice_events: events(
                Api::all(client),
                watcher::Config::default().labels(SERVICE_NAME_LABEL),
                ew,
            ),
            synced: [false; 2],
            dirty: true,
            last_build: None,
        }
    }

    /// Both initial lists are in and the index reflects them.
    pub fn ready(&self) -> bool {
        self.synced.iter().all(|s| *s) && self.last_build.is_some()
    }

    /// Handles the next watch event or due rebuild. Cancel-safe.
    pub async fn step(&mut self) -> Result<(), Error> {
        let wake = self.next_rebuild();
        tokio::select! {
            e = self.service_events.try_next() => {
                let changed = on_event(e, &mut self.synced[0], "services")?;
                self.dirty |= changed;
            }
            e = self.slice_events.try_next() => {
                let changed = on_event(e, &mut self.synced[1], "endpointslices")?;
                self.dirty |= changed;
            }
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now).into()), if wake.is_some() => {
                self.rebuild();
            }
        }
        Ok(())
    }

    fn next_rebuild(&self) -> Option<Instant> {
        if !self.dirty || !self.synced.iter().all(|s| *s) {
            return None;
        }
        Some(
            self.last_build
                .map_or_else(Instant::now, |t| t + MIN_REBUILD_INTERVAL),
        )
    }

    fn rebuild(&mut self) {
        self.dirty = false;
        self.last_build = Some(Instant::now());
        let services = self.services.state();
        let slices = self.slices.state();
        let index = Index::build(
            &self.domain,
            serial(),
            services.iter().map(|s| &**s),
            slices.iter().map(|s| &**s),
        );
        tracing::info!(
            services = services.len(),
            endpointslices = slices.len(),
            names = index.len(),
            "dns index rebuilt"
        );
        self.metrics.index_built(index.len());
        let index = Arc::new(index);
        match self.index.write() {
            Ok(mut current) => *current = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
    }
}

/// Whether the event changed the cache (once the initial list is done).
fn on_event<K>(
    event: Result<Option<watcher::Event<K>>, watcher::Error>,
    synced: &mut bool,
    what: &'static str,
) -> Result<bool, Error> {
    match event {
        Ok(Some(watcher::Event::InitDone)) => {
            *synced = true;
            Ok(true)
        }
        Ok(Some(watcher::Event::Init | watcher::Event::InitApply(_))) => Ok(false),
        Ok(Some(watcher::Event::Apply(_) | watcher::Event::Delete(_))) => Ok(true),
        Ok(None) => Err(Error::WatchEnded(what)),
        Err(e) => {
            tracing::warn!(error = %e, "dns: {what} watch failed; retrying");
            Ok(false)
        }
    }
}

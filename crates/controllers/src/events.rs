//! Events about the objects controllers act on (`kubectl describe` and
//! `kubectl get events` show them): core/v1 Events, written in the
//! background so a slow or refusing API never holds up a reconcile.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};

/// Whether an Event reports something normal or something a user should
/// look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Records Events as one controller (`source.component`, e.g.
/// `deployment-controller`, as upstream names them).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: &'static str,
}

impl Recorder {
    pub fn new(client: kube::Client, component: &'static str) -> Self {
        Recorder { client, component }
    }

    /// Records an Event about `object` in the background.
    pub fn record<K>(&self, object: &K, type_: EventType, reason: &str, message: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let reference = ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: Some(object.name_any()),
            namespace: object.namespace(),
            uid: object.meta().uid.clone(),
            resource_version: object.meta().resource_version.clone(),
            ..ObjectReference::default()
        };
        self.record_about(reference, type_, reason, message);
    }

    /// Records an Event about the object `reference` names.
    pub fn record_about(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        let namespace = reference
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let object_name = reference.name.clone().unwrap_or_default();
        let now = Time(Timestamp::now());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{object_name}.{}", &suffix[..16])),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: reference,
            reason: Some(reason.to_owned()),
            message: Some(message),
            type_: Some(type_.as_str().to_owned()),
            source: Some(EventSource {
                component: Some(self.component.to_owned()),
                host: None,
            }),
            reporting_component: Some(self.component.to_owned()),
            reporting_instance: Some(self.component.to_owned()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(error = %e, "recording an event failed");
            }
        });
    }
}

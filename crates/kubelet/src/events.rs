//! Events about pods (`kubectl describe pod` shows them), written as
//! upstream's kubelet does: source component `kubelet`, host = node.
//! Failures to record are logged, never fatal.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::PostParams;

#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node_name: String,
}

impl Recorder {
    pub fn new(client: kube::Client, node_name: &str) -> Recorder {
        Recorder {
            client,
            node_name: node_name.to_owned(),
        }
    }

    pub async fn normal(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        reason: &str,
        message: String,
    ) {
        self.record(pod, field_path, "Normal", reason, message)
            .await;
    }

    pub async fn warning(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        reason: &str,
        message: String,
    ) {
        self.record(pod, field_path, "Warning", reason, message)
            .await;
    }

    async fn record(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        kind: &str,
        reason: &str,
        message: String,
    ) {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                // Upstream's naming: `<object>.<unix nanos in hex>`.
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                field_path,
            },
            reason: Some(reason.to_owned()),
            message: Some(message),
            type_: Some(kind.to_owned()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node_name.clone()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node_name.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(error = %e, reason, "recording an event");
        }
    }
}

//! What the runtime says about one container instance, in the shape the
//! pod worker reasons with.

use k8s_cri::v1::{ContainerState, ContainerStatus};

use super::labels;

#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub attempt: u32,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
    pub hash: String,
    pub init: bool,
    /// Set from the runtime's container list (status does not carry it).
    pub sandbox_id: String,
}

impl Instance {
    pub fn from_status(status: ContainerStatus) -> Instance {
        let state =
            ContainerState::try_from(status.state).unwrap_or(ContainerState::ContainerUnknown);
        Instance {
            name: status
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .or_else(|| status.labels.get(labels::CONTAINER_NAME).cloned())
                .unwrap_or_default(),
            attempt: status.metadata.as_ref().map_or(0, |m| m.attempt),
            state,
            created_at: status.created_at,
            started_at: status.started_at,
            finished_at: status.finished_at,
            exit_code: status.exit_code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            image: status
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            image_ref: status.image_ref.clone(),
            hash: status
                .annotations
                .get(labels::CONTAINER_HASH)
                .cloned()
                .unwrap_or_default(),
            init: status
                .labels
                .get(labels::CONTAINER_TYPE)
                .map(String::as_str)
                == Some("init"),
            id: status.id,
            sandbox_id: String::new(),
        }
    }

    pub fn running(&self) -> bool {
        self.state == ContainerState::ContainerRunning
    }

    pub fn exited(&self) -> bool {
        self.state == ContainerState::ContainerExited
    }

    /// `containerd://<id>`, as pod status reports it.
    pub fn container_id(&self, runtime: &str) -> String {
        format!("{runtime}://{}", self.id)
    }
}

/// RFC 3339 from the runtime's nanoseconds since the epoch.
pub fn time_from_ns(ns: i64) -> Option<jiff::Timestamp> {
    if ns <= 0 {
        return None;
    }
    jiff::Timestamp::from_nanosecond(i128::from(ns)).ok()
}

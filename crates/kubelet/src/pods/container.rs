//! The CRI config of one container, as upstream's
//! `generateContainerConfig`: command, env, mounts, security context and
//! resources.

use std::collections::HashMap;

use k8s_cri::v1::{
    Capability, ContainerConfig, ContainerMetadata, ImageSpec, Int64Value, KeyValue,
    LinuxContainerConfig, LinuxContainerSecurityContext, Mount, NamespaceMode, NamespaceOption,
};
use k8s_openapi::api::core::v1::{Container, Pod};

use super::env::{Env, expand};
use super::{labels, qos};

pub struct ContainerInputs<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub init: bool,
    pub restart_count: u32,
    pub image_ref: String,
    pub env: Env,
    pub mounts: Vec<Mount>,
    pub node_memory: u64,
}

/// A stable hash of the container's spec: a change (e.g. `kubectl set
/// image`) makes the kubelet restart the container, as upstream.
pub fn spec_hash(container: &Container) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(container)
        .unwrap_or_default()
        .hash(&mut hasher);
    format!("{:x}", hasher.finish())
}

pub fn container_config(inputs: ContainerInputs) -> ContainerConfig {
    let ContainerInputs {
        pod,
        container,
        init,
        restart_count,
        image_ref,
        env,
        mounts,
        node_memory,
    } = inputs;
    let mut labels = labels::pod_labels(pod);
    labels.insert(labels::CONTAINER_NAME.to_owned(), container.name.clone());
    if init {
        labels.insert(labels::CONTAINER_TYPE.to_owned(), "init".to_owned());
    }
    let annotations = HashMap::from([
        (labels::CONTAINER_HASH.to_owned(), spec_hash(container)),
        (labels::RESTART_COUNT.to_owned(), restart_count.to_string()),
        (
            labels::TERMINATION_MESSAGE_PATH.to_owned(),
            container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".to_owned()),
        ),
    ]);
    let expand_all = |items: &Option<Vec<String>>| -> Vec<String> {
        items.iter().flatten().map(|s| expand(s, &env)).collect()
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_security = spec.security_context.clone().unwrap_or_default();
    let security = container.security_context.clone().unwrap_or_default();
    let privileged = security.privileged.unwrap_or(false);
    let run_as_user = security.run_as_user.or(pod_security.run_as_user);
    let run_as_group = security.run_as_group.or(pod_security.run_as_group);
    let capabilities = security.capabilities.clone().unwrap_or_default();
    let ns_mode = |host: Option<bool>| {
        if host.unwrap_or(false) {
            NamespaceMode::Node as i32
        } else {
            NamespaceMode::Pod as i32
        }
    };
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: container.name.clone(),
            attempt: restart_count,
        }),
        image: Some(ImageSpec {
            image: image_ref,
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: expand_all(&container.command),
        args: expand_all(&container.args),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: env
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts,
        labels,
        annotations,
        log_path: format!("{}/{restart_count}.log", container.name),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(LinuxContainerConfig {
            resources: Some(qos::linux_resources(pod, container, node_memory)),
            security_context: Some(LinuxContainerSecurityContext {
                capabilities: Some(Capability {
                    add_capabilities: capabilities.add.clone().unwrap_or_default(),
                    drop_capabilities: capabilities.drop.clone().unwrap_or_default(),
                    ..Default::default()
                }),
                privileged,
                namespace_options: Some(NamespaceOption {
                    network: ns_mode(spec.host_network),
                    pid: if spec.host_pid.unwrap_or(false) {
                        NamespaceMode::Node as i32
                    } else if spec.share_process_namespace.unwrap_or(false) {
                        NamespaceMode::Pod as i32
                    } else {
                        NamespaceMode::Container as i32
                    },
                    ipc: ns_mode(spec.host_ipc),
                    ..Default::default()
                }),
                run_as_user: run_as_user.map(|value| Int64Value { value }),
                run_as_group: run_as_group.map(|value| Int64Value { value }),
                readonly_rootfs: security.read_only_root_filesystem.unwrap_or(false),
                supplemental_groups: pod_security.supplemental_groups.clone().unwrap_or_default(),
                no_new_privs: !security.allow_privilege_escalation.unwrap_or(true) && !privileged,
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

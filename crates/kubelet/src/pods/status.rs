//! The pod status the kubelet reports, computed from the runtime's view
//! with upstream's rules (`getPhase`, `generateAPIPodStatus`).

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::instance::{Instance, time_from_ns};
use super::qos;

/// A container that is not running and why (`CrashLoopBackOff`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

pub struct View<'a> {
    pub pod: &'a Pod,
    pub instances: &'a [Instance],
    pub waiting: &'a HashMap<String, Waiting>,
    /// Readiness verdicts by container id (absent: no readiness probe).
    pub ready: &'a HashMap<String, bool>,
    /// Startup verdicts by container id (absent: no startup probe).
    pub started: &'a HashMap<String, bool>,
    pub sandbox_ready: bool,
    pub pod_ip: Option<&'a str>,
    pub host_ip: &'a str,
    pub runtime_name: &'a str,
}

/// The newest instance of `name`, then the one before it.
pub fn current_and_previous<'a>(
    instances: &'a [Instance],
    name: &str,
    init: bool,
) -> (Option<&'a Instance>, Option<&'a Instance>) {
    let mut mine: Vec<&Instance> = instances
        .iter()
        .filter(|i| i.name == name && i.init == init)
        .collect();
    mine.sort_by_key(|i| std::cmp::Reverse((i.attempt, i.created_at)));
    (mine.first().copied(), mine.get(1).copied())
}

fn terminated(i: &Instance, runtime: &str) -> ContainerState {
    let reason = if !i.reason.is_empty() {
        i.reason.clone()
    } else if i.exit_code == 0 {
        "Completed".to_owned()
    } else {
        "Error".to_owned()
    };
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: i.exit_code,
            reason: Some(reason),
            message: (!i.message.is_empty()).then(|| i.message.clone()),
            started_at: time_from_ns(i.started_at).map(Time),
            finished_at: time_from_ns(i.finished_at).map(Time),
            container_id: Some(i.container_id(runtime)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_status(
    view: &View,
    c: &Container,
    init: bool,
    default_waiting: &str,
) -> ContainerStatus {
    let (current, previous) = current_and_previous(view.instances, &c.name, init);
    let waiting = view.waiting.get(&c.name);
    let runtime = view.runtime_name;
    let mut status = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        ..Default::default()
    };
    match current {
        Some(i) if i.running() => {
            let started = *view.started.get(&i.id).unwrap_or(&true);
            status.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time_from_ns(i.started_at).map(Time),
                }),
                ..Default::default()
            });
            status.last_state = previous
                .filter(|p| p.exited())
                .map(|p| terminated(p, runtime));
            status.ready = started && *view.ready.get(&i.id).unwrap_or(&true);
            status.started = Some(started);
            status.restart_count = i.attempt as i32;
            status.container_id = Some(i.container_id(runtime));
            status.image_id = i.image_ref.clone();
        }
        Some(i) if i.exited() => {
            if let Some(w) = waiting {
                status.state = Some(waiting_state(w));
                status.last_state = Some(terminated(i, runtime));
            } else {
                status.state = Some(terminated(i, runtime));
                status.last_state = previous
                    .filter(|p| p.exited())
                    .map(|p| terminated(p, runtime));
            }
            status.restart_count = i.attempt as i32;
            status.started = Some(false);
            status.container_id = Some(i.container_id(runtime));
            status.image_id = i.image_ref.clone();
        }
        other => {
            let w = waiting.cloned().unwrap_or(Waiting {
                reason: default_waiting.to_owned(),
                message: String::new(),
            });
            status.state = Some(waiting_state(&w));
            if let Some(i) = other {
                status.restart_count = i.attempt as i32;
            }
            status.last_state = previous
                .filter(|p| p.exited())
                .map(|p| terminated(p, runtime));
            status.started = Some(false);
        }
    }
    if status.last_state.is_none() {
        status.last_state = Some(ContainerState::default());
    }
    status
}

fn waiting_state(w: &Waiting) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(w.reason.clone()),
            message: (!w.message.is_empty()).then(|| w.message.clone()),
        }),
        ..Default::default()
    }
}

/// Whether every init container has completed successfully.
pub fn initialized(pod: &Pod, instances: &[Instance]) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_none_or(|inits| {
            inits.iter().all(|c| {
                matches!(current_and_previous(instances, &c.name, true).0,
                    Some(i) if i.exited() && i.exit_code == 0)
            })
        })
}

pub fn pod_status(view: &View) -> PodStatus {
    let pod = view.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let initialized = initialized(pod, view.instances);
    let init_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(view, c, true, "PodInitializing"))
        .collect();
    let default_waiting = if initialized {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(view, c, false, default_waiting))
        .collect();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let phase = phase(&statuses, &init_statuses, initialized, restart_policy);
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let incomplete: Vec<&str> = init_statuses
        .iter()
        .filter(|s| {
            !matches!(s.state.as_ref().and_then(|st| st.terminated.as_ref()), Some(t) if t.exit_code == 0)
        })
        .map(|s| s.name.as_str())
        .collect();
    let now = Timestamp::now();
    let condition = |kind: &str, ok: bool, reason: Option<String>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let previous = old.conditions.iter().flatten().find(|c| c.type_ == kind);
        let transition = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(Time(now)),
        };
        PodCondition {
            type_: kind.to_owned(),
            status: status.to_owned(),
            reason: if ok { None } else { reason },
            message: if ok { None } else { message },
            last_transition_time: transition,
            last_probe_time: None,
            ..Default::default()
        }
    };
    let completed = phase == "Succeeded" || phase == "Failed";
    let not_ready_reason = if completed {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let not_ready_message = if completed {
        None
    } else {
        Some(format!(
            "containers with unready status: [{}]",
            unready.join(" ")
        ))
    };
    let containers_ready = unready.is_empty() && !completed;
    let mut conditions = vec![
        condition("PodReadyToStartContainers", view.sandbox_ready, None, None),
        condition(
            "Initialized",
            initialized || completed && incomplete.is_empty(),
            Some(if completed {
                "PodCompleted".into()
            } else {
                "ContainersNotInitialized".into()
            }),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        ),
        condition(
            "Ready",
            containers_ready,
            Some(not_ready_reason.into()),
            not_ready_message.clone(),
        ),
        condition(
            "ContainersReady",
            containers_ready,
            Some(not_ready_reason.into()),
            not_ready_message,
        ),
    ];
    if let Some(scheduled) = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled")
    {
        conditions.push(scheduled.clone());
    }
    let pod_ips = view.pod_ip.map(|ip| vec![PodIP { ip: ip.to_owned() }]);
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(view.host_ip.to_owned()),
        host_ips: Some(vec![HostIP {
            ip: view.host_ip.to_owned(),
        }]),
        pod_ip: view.pod_ip.map(str::to_owned),
        pod_ips,
        start_time: old.start_time.clone().or(Some(Time(now))),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        qos_class: Some(qos::pod_qos(pod).as_str().to_owned()),
        nominated_node_name: old.nominated_node_name.clone(),
        ..Default::default()
    }
}

/// Upstream's `getPhase`.
fn phase(
    statuses: &[ContainerStatus],
    init_statuses: &[ContainerStatus],
    initialized: bool,
    restart_policy: &str,
) -> &'static str {
    if !initialized {
        let failed_init = init_statuses.iter().any(|s| {
            matches!(s.state.as_ref().and_then(|st| st.terminated.as_ref()), Some(t) if t.exit_code != 0)
        });
        return if failed_init && restart_policy == "Never" {
            "Failed"
        } else {
            "Pending"
        };
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            let last_terminated = s.last_state.as_ref().and_then(|l| l.terminated.as_ref());
            if last_terminated.is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match restart_policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        }
    } else {
        "Pending"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> ContainerStatus {
        ContainerStatus {
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn phases_follow_upstream() {
        assert_eq!(phase(&[exited(0)], &[], true, "Never"), "Succeeded");
        assert_eq!(phase(&[exited(1)], &[], true, "Never"), "Failed");
        assert_eq!(phase(&[exited(1)], &[], true, "Always"), "Running");
        assert_eq!(phase(&[exited(1)], &[], true, "OnFailure"), "Running");
        assert_eq!(phase(&[exited(0)], &[exited(1)], false, "Never"), "Failed");
        assert_eq!(
            phase(&[ContainerStatus::default()], &[], true, "Always"),
            "Pending"
        );
    }
}

//! Workload controllers: deployments, replica sets, replication
//! controllers, stateful sets, daemon sets, jobs, cron jobs and controller
//! revisions.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use crate::column::{AGE, CONTAINERS, Column, IMAGES, NAME};
use crate::duration::{age, human_duration, since};
use crate::format::{bool_ptr, containers, label_selector, labels, selector_string};
use crate::value::{
    arr_at, at, count_at, int_at, is_deleting, name, obj_at, opt_int, str_at, time_at,
};

const SELECTOR: Column = Column::string(
    "Selector",
    "Label selector of the pods this controller manages.",
)
.wide();

/// `spec.replicas`, defaulted to 1 as the API defaults it.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int(obj, &["spec", "replicas"]).unwrap_or(1)
}

fn template_spec(obj: &Value) -> Option<&Value> {
    at(obj, &["spec", "template", "spec"])
}

pub(crate) const DEPLOYMENT: Printer = Printer::new(
    &[
        NAME,
        Column::string("Ready", "Ready pods out of the desired replicas."),
        Column::string("Up-to-date", "Pods running the latest pod template."),
        Column::string(
            "Available",
            "Pods available to serve (ready for minReadySeconds).",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    deployment,
);

fn deployment(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(template_spec(obj));
    let selector =
        selector_string(at(obj, &["spec", "selector"])).unwrap_or_else(|_| "<invalid>".to_owned());
    vec![
        name(obj).into(),
        format!(
            "{}/{}",
            int_at(obj, &["status", "readyReplicas"]),
            desired_replicas(obj)
        )
        .into(),
        int_at(obj, &["status", "updatedReplicas"]).into(),
        int_at(obj, &["status", "availableReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        selector.into(),
    ]
}

const REPLICA_COLUMNS: &[Column] = &[
    NAME,
    Column::integer("Desired", "Number of replicas wanted."),
    Column::integer("Current", "Number of replicas that exist."),
    Column::integer("Ready", "Number of replicas that are ready."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(crate) const REPLICA_SET: Printer = Printer::new(REPLICA_COLUMNS, replica_set);

fn replica_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(template_spec(obj));
    vec![
        name(obj).into(),
        desired_replicas(obj).into(),
        int_at(obj, &["status", "replicas"]).into(),
        int_at(obj, &["status", "readyReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        label_selector(at(obj, &["spec", "selector"])).into(),
    ]
}

pub(crate) const REPLICATION_CONTROLLER: Printer =
    Printer::new(REPLICA_COLUMNS, replication_controller);

fn replication_controller(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(template_spec(obj));
    vec![
        name(obj).into(),
        desired_replicas(obj).into(),
        int_at(obj, &["status", "replicas"]).into(),
        int_at(obj, &["status", "readyReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        labels(obj_at(obj, &["spec", "selector"])).into(),
    ]
}

pub(crate) const STATEFUL_SET: Printer = Printer::new(
    &[
        NAME,
        Column::string("Ready", "Ready pods out of the desired replicas."),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    stateful_set,
);

fn stateful_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(template_spec(obj));
    vec![
        name(obj).into(),
        format!(
            "{}/{}",
            int_at(obj, &["status", "readyReplicas"]),
            desired_replicas(obj)
        )
        .into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
    ]
}

pub(crate) const DAEMON_SET: Printer = Printer::new(
    &[
        NAME,
        Column::integer("Desired", "Nodes that should run the daemon pod."),
        Column::integer("Current", "Nodes running at least one daemon pod."),
        Column::integer("Ready", "Nodes whose daemon pod is ready."),
        Column::integer(
            "Up-to-date",
            "Nodes running the latest daemon pod template.",
        ),
        Column::integer("Available", "Nodes whose daemon pod is available."),
        Column::string("Node Selector", "Node selector of the pod template."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    daemon_set,
);

fn daemon_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(template_spec(obj));
    vec![
        name(obj).into(),
        int_at(obj, &["status", "desiredNumberScheduled"]).into(),
        int_at(obj, &["status", "currentNumberScheduled"]).into(),
        int_at(obj, &["status", "numberReady"]).into(),
        int_at(obj, &["status", "updatedNumberScheduled"]).into(),
        int_at(obj, &["status", "numberAvailable"]).into(),
        labels(obj_at(obj, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        label_selector(at(obj, &["spec", "selector"])).into(),
    ]
}

pub(crate) const JOB: Printer = Printer::new(
    &[
        NAME,
        Column::string(
            "Status",
            "Whether the job is running, complete, failed or suspended.",
        ),
        Column::string(
            "Completions",
            "Succeeded pods out of the completions wanted.",
        ),
        Column::string("Duration", "How long the job ran (or has been running)."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    job,
);

/// Whether the job has a condition of this type with status `True` (the
/// first condition of the type decides).
fn job_condition(job: &Value, kind: &str) -> bool {
    arr_at(job, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == kind)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

fn job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(obj, &["status", "succeeded"]);
    let completions = match opt_int(obj, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int(obj, &["spec", "parallelism"]).unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = time_at(obj, &["status", "startTime"]);
    let duration = match (start, time_at(obj, &["status", "completionTime"])) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(done)) => human_duration(done.duration_since(start)),
    };
    let status = if job_condition(obj, "Complete") {
        "Complete"
    } else if job_condition(obj, "Failed") {
        "Failed"
    } else if is_deleting(obj) {
        "Terminating"
    } else if job_condition(obj, "Suspended") {
        "Suspended"
    } else if job_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers(template_spec(obj));
    vec![
        name(obj).into(),
        status.into(),
        completions.into(),
        duration.into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        label_selector(at(obj, &["spec", "selector"])).into(),
    ]
}

pub(crate) const CRON_JOB: Printer = Printer::new(
    &[
        NAME,
        Column::string("Schedule", "The cron schedule."),
        Column::string("Timezone", "Time zone the schedule is interpreted in."),
        Column::boolean("Suspend", "Whether new runs are suspended."),
        Column::integer("Active", "Number of jobs currently running."),
        Column::string("Last Schedule", "When a job was last scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cron_job,
);

fn cron_job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last = match time_at(obj, &["status", "lastScheduleTime"]) {
        Some(t) => since(Some(t), now),
        None => "<none>".to_owned(),
    };
    let job_spec = at(obj, &["spec", "jobTemplate", "spec"]);
    let (names, images) = containers(job_spec.and_then(|s| at(s, &["template", "spec"])));
    let selector = label_selector(job_spec.and_then(|s| at(s, &["selector"])));
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "schedule"]).into(),
        crate::value::opt_str(obj, &["spec", "timeZone"])
            .unwrap_or("<none>")
            .into(),
        bool_ptr(crate::value::opt_bool(obj, &["spec", "suspend"])).into(),
        count_at(obj, &["status", "active"]).into(),
        last.into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        selector.into(),
    ]
}

pub(crate) const CONTROLLER_REVISION: Printer = Printer::new(
    &[
        NAME,
        Column::string("Controller", "The object that owns this revision."),
        Column::string("Revision", "Revision number of the stored state."),
        AGE,
    ],
    controller_revision,
);

fn controller_revision(obj: &Value, now: Timestamp) -> Vec<Value> {
    let owner = arr_at(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| crate::value::bool_at(r, &["controller"]));
    let controller = match owner {
        None => "<none>".to_owned(),
        Some(r) => {
            let api_version = str_at(r, &["apiVersion"]);
            let group = match api_version.split_once('/') {
                Some((g, _)) => g,
                None => "",
            };
            let kind = str_at(r, &["kind"]);
            let owner_name = str_at(r, &["name"]);
            match (group, kind) {
                ("", "") => owner_name.to_owned(),
                ("", k) => format!("{}/{owner_name}", k.to_lowercase()),
                (g, k) => format!("{}/{owner_name}", format!("{k}.{g}").to_lowercase()),
            }
        }
    };
    vec![
        name(obj).into(),
        controller.into(),
        int_at(obj, &["revision"]).into(),
        age(obj, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-06-01T12:00:00Z".parse().unwrap()
    }

    const CREATED: &str = "2024-06-01T11:57:00Z";

    #[test]
    fn deployment_row() {
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": CREATED},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "nginx", "image": "nginx:1.27"},
                    {"name": "side", "image": "busybox"}
                ]}}
            },
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        assert_eq!(
            deployment(&d, now()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("3m"),
                json!("nginx,side"),
                json!("nginx:1.27,busybox"),
                json!("app=web")
            ]
        );
    }

    #[test]
    fn fresh_deployment_without_status() {
        let d = json!({"metadata": {"name": "x"}, "spec": {"replicas": 2}});
        let r = deployment(&d, now());
        assert_eq!(r[1], json!("0/2"));
        assert_eq!(r[2], json!(0));
        assert_eq!(r[4], json!("<unknown>"));
        assert_eq!(r[7], json!(""));
    }

    #[test]
    fn replica_set_row() {
        let rs = json!({
            "metadata": {"name": "web-5d8f", "creationTimestamp": CREATED},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f"}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"replicas": 3, "readyReplicas": 3}
        });
        assert_eq!(
            replica_set(&rs, now()),
            vec![
                json!("web-5d8f"),
                json!(3),
                json!(3),
                json!(3),
                json!("3m"),
                json!("nginx"),
                json!("nginx"),
                json!("app=web,pod-template-hash=5d8f")
            ]
        );
    }

    #[test]
    fn stateful_and_daemon_sets() {
        let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3},
            "status": {"readyReplicas": 1}});
        assert_eq!(stateful_set(&sts, now())[1], json!("1/3"));
        let ds = json!({
            "metadata": {"name": "proxy", "creationTimestamp": CREATED},
            "spec": {"selector": {"matchLabels": {"k8s-app": "proxy"}},
                "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "p", "image": "proxy:1"}]}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                "updatedNumberScheduled": 2, "numberAvailable": 1}
        });
        assert_eq!(
            daemon_set(&ds, now()),
            vec![
                json!("proxy"),
                json!(2),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("kubernetes.io/os=linux"),
                json!("3m"),
                json!("p"),
                json!("proxy:1"),
                json!("k8s-app=proxy")
            ]
        );
    }

    #[test]
    fn completed_job() {
        let j = json!({
            "metadata": {"name": "pi", "creationTimestamp": "2024-06-01T11:00:00Z"},
            "spec": {"completions": 1, "parallelism": 1,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"succeeded": 1, "startTime": "2024-06-01T11:00:00Z",
                "completionTime": "2024-06-01T11:00:42Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"}]}
        });
        assert_eq!(
            job(&j, now()),
            vec![
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("42s"),
                json!("60m"),
                json!("pi"),
                json!("perl"),
                json!("batch.kubernetes.io/controller-uid=abc")
            ]
        );
    }

    #[test]
    fn running_parallel_job() {
        let j = json!({
            "metadata": {"name": "work"},
            "spec": {"parallelism": 3},
            "status": {"succeeded": 1, "startTime": "2024-06-01T11:58:30Z"}
        });
        let r = job(&j, now());
        assert_eq!(r[1], json!("Running"));
        assert_eq!(r[2], json!("1/1 of 3"));
        assert_eq!(r[3], json!("90s"));
        let unstarted = json!({"metadata": {"name": "w"}, "spec": {"suspend": true},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        let r = job(&unstarted, now());
        assert_eq!(r[1], json!("Suspended"));
        assert_eq!(r[2], json!("0/1"));
        assert_eq!(r[3], json!(""));
    }

    #[test]
    fn cron_job_row() {
        let cj = json!({
            "metadata": {"name": "hello", "creationTimestamp": CREATED},
            "spec": {"schedule": "*/1 * * * *", "suspend": false,
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [
                    {"name": "hello", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2024-06-01T11:59:00Z"}
        });
        assert_eq!(
            cron_job(&cj, now()),
            vec![
                json!("hello"),
                json!("*/1 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("60s"),
                json!("3m"),
                json!("hello"),
                json!("busybox"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn controller_revision_owner() {
        let cr = json!({
            "metadata": {"name": "web-7c9", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]},
            "revision": 2
        });
        let r = controller_revision(&cr, now());
        assert_eq!(r[1], json!("statefulset.apps/web"));
        assert_eq!(r[2], json!(2));
    }
}

//! Printers must never panic, whatever the object holds: storage may hold
//! anything a client managed to write. We throw arbitrary JSON at every
//! printer, both fully random documents and realistic objects with random
//! parts replaced (which reaches the deep paths printers read).

#![recursion_limit = "512"]

use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};
use skiff_printers::{IncludeObject, TableMeta, columns, printed_kinds, row, table};

/// Every printer, plus a built-in kind and a custom resource without one.
fn all_kinds() -> Vec<(&'static str, &'static str)> {
    let mut kinds: Vec<_> = printed_kinds().collect();
    kinds.push(("rbac.authorization.k8s.io", "Role"));
    kinds.push(("example.com", "Widget"));
    kinds
}

/// One object holding the fields of many kinds at once.
fn kitchen_sink() -> Value {
    let container_status = json!({
        "name": "app", "ready": true, "started": true, "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}, "running": {"startedAt": "2024-01-01T00:00:00Z"},
            "terminated": {"exitCode": 1, "signal": 9, "reason": "Error", "finishedAt": "2024-01-01T00:00:00Z"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:00:00Z"}}
    });
    let selector = json!({"matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]});
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {
        "containers": [{"name": "app", "image": "nginx"}], "nodeSelector": {"os": "linux"}}});
    json!({
        "apiVersion": "v1", "kind": "Thing",
        "metadata": {"name": "x", "namespace": "default", "resourceVersion": "7",
            "creationTimestamp": "2024-01-01T00:00:00Z", "deletionTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"},
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true",
                "volume.beta.kubernetes.io/storage-class": "fast"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "w", "controller": true}]},
        "spec": {
            "replicas": 3, "completions": 2, "parallelism": 4, "selector": selector,
            "template": template, "schedule": "* * * * *", "timeZone": "UTC", "suspend": false,
            "jobTemplate": {"spec": {"selector": selector, "template": template}},
            "initContainers": [{"name": "init", "restartPolicy": "Always"}],
            "containers": [{"name": "app", "image": "nginx"}],
            "readinessGates": [{"conditionType": "x"}], "nodeName": "n1", "unschedulable": true,
            "type": "LoadBalancer", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
            "externalIPs": ["1.2.3.4"], "externalName": "e.example.com",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
            "rules": [{"host": "a"}], "tls": [{}], "ingressClassName": "nginx",
            "podSelector": selector, "controller": "c",
            "parameters": {"kind": "K", "apiGroup": "g", "name": "n"},
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete", "claimRef": {"namespace": "d", "name": "c"},
            "storageClassName": "s", "volumeName": "v", "volumeMode": "Block",
            "volumeAttributesClassName": "vac",
            "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"averageUtilization": 50}}},
                {"type": "External", "external": {"target": {"value": "1"}}},
                {"type": "Object", "object": {"target": {"averageValue": "1"}}},
                {"type": "Pods", "pods": {"target": {"averageValue": "1"}}},
                {"type": "ContainerResource", "containerResource": {"name": "cpu", "target": {}}}],
            "targetCPUUtilizationPercentage": 50,
            "minAvailable": "50%", "maxUnavailable": 1, "holderIdentity": "me",
            "signerName": "s", "username": "u", "expirationSeconds": 3600,
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}, "validations": [{}],
            "paramRef": {"selector": selector}, "policyName": "p",
            "priorityLevelConfiguration": {"name": "global"}, "matchingPrecedence": 100,
            "distinguisherMethod": {"type": "ByUser"},
            "limited": {"nominalConcurrencyShares": 30, "limitResponse": {"queuing": {"queues": 64}}},
            "service": {"namespace": "kube-system", "name": "m"},
            "attacher": "a", "source": {"persistentVolumeName": "pv"}, "drivers": [{}],
            "attachRequired": false, "tokenRequests": [{"audience": "a"}], "volumeLifecycleModes": ["Persistent"],
            "cidrs": ["10.96.0.0/12"], "parentRef": {"group": "", "resource": "services", "namespace": "d", "name": "s"}
        },
        "status": {
            "phase": "Running", "reason": "NodeLost", "podIP": "10.1.1.1", "podIPs": [{"ip": "10.1.1.1"}],
            "nominatedNodeName": "n2",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"},
                {"type": "Complete", "status": "True"}, {"type": "Available", "status": "False", "reason": "R"},
                {"type": "Approved"}, {"type": "Dangling", "status": "False"}],
            "initContainerStatuses": [container_status.clone()],
            "containerStatuses": [container_status],
            "replicas": 3, "readyReplicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
            "desiredNumberScheduled": 1, "currentNumberScheduled": 1, "numberReady": 1,
            "updatedNumberScheduled": 1, "numberAvailable": 1,
            "succeeded": 1, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:01:00Z",
            "active": [{}], "lastScheduleTime": "2024-01-01T00:00:00Z",
            "loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb"}]},
            "addresses": [{"type": "InternalIP", "address": "192.168.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian"},
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
            "hard": {"pods": "10", "limits.cpu": "2"}, "used": {"pods": "1"},
            "currentReplicas": 2, "currentMetrics": [{"resource": {"current": {"averageUtilization": 10}}}],
            "currentCPUUtilizationPercentage": 10, "disruptionsAllowed": 1, "certificate": "x",
            "attached": true
        },
        "subsets": [{"addresses": [{"ip": "10.1.1.1"}, {"ip": "fd00::1"}], "ports": [{"port": 80}]}],
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.1.1"]}],
        "data": {"a": "b"}, "binaryData": {"c": "ZA=="}, "type": "Opaque", "secrets": [{}],
        "template": template, "revision": 4,
        "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec"}, "regarding": {"kind": "Pod"},
        "reason": "Started", "message": " hi ", "note": "n", "count": 2,
        "source": {"component": "kubelet", "host": "h"}, "reportingComponent": "k",
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z",
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "series": {"count": 3, "lastObservedTime": "2024-01-01T00:00:00.000000Z"},
        "roleRef": {"kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "User", "name": "u"}, {"kind": "Group", "name": "g"},
            {"kind": "ServiceAccount", "name": "s", "namespace": "n"}],
        "webhooks": [{}], "value": 1000, "globalDefault": true, "preemptionPolicy": "Never", "handler": "runc",
        "provisioner": "p", "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": true, "driverName": "d", "storageClassName": "s", "capacity": "1Gi"
    })
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("2024-01-01T00:00:00Z"),
            Just("0001-01-01T00:00:00Z"),
            Just("-009999-01-01T00:00:00Z"),
            Just("9999-12-31T23:59:59.999999999Z"),
            Just("True"),
            Just("Always"),
            Just("Ready"),
            Just("Completed"),
            Just("LoadBalancer"),
            Just("In"),
            Just(""),
            Just("::1"),
        ]
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_owned()),
                    Just("spec".to_owned()),
                    Just("status".to_owned()),
                    Just("name".to_owned()),
                    Just("containers".to_owned()),
                    "[a-zA-Z]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer inside `v`.
fn pointers(v: &Value, prefix: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{prefix}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

fn any_now() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        Just(Timestamp::constant(1_704_067_500, 0)),
        Just(Timestamp::MIN),
        Just(Timestamp::MAX),
        (-100_000_000_000i64..100_000_000_000i64)
            .prop_map(|s| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)),
    ]
}

fn check_all_printers(object: &Value, now: Timestamp) {
    for (group, kind) in all_kinds() {
        let cells = row(group, kind, object, now);
        assert!(cells.len() >= columns(group, kind).len(), "{group}/{kind}");
        let t = table(
            group,
            kind,
            std::slice::from_ref(object),
            IncludeObject::Metadata,
            &TableMeta::for_object(object),
            now,
            true,
        );
        assert_eq!(t["rows"].as_array().map(Vec::len), Some(1));
    }
}

#[test]
fn kitchen_sink_prints_everywhere() {
    let now: Timestamp = "2024-01-01T00:05:00Z".parse().unwrap();
    check_all_printers(&kitchen_sink(), now);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_documents_never_panic(object in arbitrary_json(), now in any_now()) {
        check_all_printers(&object, now);
    }

    #[test]
    fn mutated_objects_never_panic(
        picks in prop::collection::vec((any::<prop::sample::Index>(), arbitrary_json()), 1..5),
        now in any_now(),
    ) {
        let mut object = kitchen_sink();
        for (index, replacement) in picks {
            let mut paths = Vec::new();
            pointers(&object, String::new(), &mut paths);
            if paths.is_empty() {
                break;
            }
            let path = &paths[index.index(paths.len())];
            if let Some(slot) = object.pointer_mut(path) {
                *slot = replacement;
            }
        }
        check_all_printers(&object, now);
    }
}

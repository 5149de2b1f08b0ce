#![allow(clippy::unwrap_used)]
//! What `kubectl get` prints: the header line of every common resource
//! matches upstream's printers (the server's Table columns) for kubectl 1.27
//! and 1.33; `get -w` prints the same header; `kubectl explain` works from
//! the server's OpenAPI.

mod common;

use std::time::Duration;

use common::{Ctl, KUBECTLS};

/// The first line of `out`, whitespace-normalised.
fn header(out: &str) -> String {
    out.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// One object of every kind the test prints, in `ns`.
fn namespaced_objects(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: {ns}
spec:
  containers:
  - name: c
    image: busybox:1.36
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  namespace: {ns}
spec:
  replicas: 0
  selector:
    matchLabels:
      app: d
  template:
    metadata:
      labels:
        app: d
    spec:
      containers:
      - name: c
        image: busybox:1.36
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: rs
  namespace: {ns}
spec:
  replicas: 0
  selector:
    matchLabels:
      app: rs
  template:
    metadata:
      labels:
        app: rs
    spec:
      containers:
      - name: c
        image: busybox:1.36
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: sts
  namespace: {ns}
spec:
  serviceName: sts
  replicas: 0
  selector:
    matchLabels:
      app: sts
  template:
    metadata:
      labels:
        app: sts
    spec:
      containers:
      - name: c
        image: busybox:1.36
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ds
  namespace: {ns}
spec:
  selector:
    matchLabels:
      app: ds
  template:
    metadata:
      labels:
        app: ds
    spec:
      containers:
      - name: c
        image: busybox:1.36
---
apiVersion: batch/v1
kind: Job
metadata:
  name: job
  namespace: {ns}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox:1.36
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: cj
  namespace: {ns}
spec:
  schedule: "*/5 * * * *"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: c
            image: busybox:1.36
---
apiVersion: v1
kind: Service
metadata:
  name: svc
  namespace: {ns}
spec:
  selector:
    app: d
  ports:
  - port: 80
---
apiVersion: v1
kind: Endpoints
metadata:
  name: ep
  namespace: {ns}
subsets:
- addresses:
  - ip: 10.0.0.1
  ports:
  - port: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm
  namespace: {ns}
data:
  a: "1"
---
apiVersion: v1
kind: Secret
metadata:
  name: s
  namespace: {ns}
type: Opaque
data:
  a: MQ==
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
  namespace: {ns}
---
apiVersion: v1
kind: Event
metadata:
  name: ev
  namespace: {ns}
involvedObject:
  apiVersion: v1
  kind: Pod
  name: p
  namespace: {ns}
reason: Testing
message: hello from the test
type: Normal
source:
  component: e2e
count: 1
firstTimestamp: "2025-01-01T00:00:00Z"
lastTimestamp: "2025-01-01T00:00:00Z"
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ing
  namespace: {ns}
spec:
  rules:
  - host: example.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: svc
            port:
              number: 80
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: pvc
  namespace: {ns}
spec:
  accessModes:
  - ReadWriteOnce
  resources:
    requests:
      storage: 1Gi
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: lease
  namespace: {ns}
spec:
  holderIdentity: someone
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: role
  namespace: {ns}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: rb
  namespace: {ns}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: role
subjects:
- kind: ServiceAccount
  name: sa
  namespace: {ns}
"#
    )
}

/// Cluster-scoped objects whose names end in `-<minor>`.
fn cluster_objects(minor: u32) -> String {
    format!(
        r#"apiVersion: v1
kind: Node
metadata:
  name: node-{minor}
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-{minor}
spec:
  capacity:
    storage: 1Gi
  accessModes:
  - ReadWriteOnce
  hostPath:
    path: /tmp/pv-{minor}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cr-{minor}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get"]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.p{minor}.example.com
spec:
  group: p{minor}.example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#
    )
}

#[test]
fn get_headers_match_upstream_printers() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("print-{minor}");
        k.create_namespace(&ns);
        k.create(&ns, &namespaced_objects(&ns));
        k.ok_with_input(
            &["create", "--validate=false", "-f", "-"],
            &cluster_objects(minor),
        );
        let node = format!("node-{minor}");
        let pv = format!("pv-{minor}");
        let cr = format!("cr-{minor}");
        let crd = format!("widgets.p{minor}.example.com");

        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["pods", "p"], "NAME READY STATUS RESTARTS AGE"),
            (
                vec!["pods", "p", "-o", "wide"],
                "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES",
            ),
            (
                vec!["deployments", "d"],
                "NAME READY UP-TO-DATE AVAILABLE AGE",
            ),
            (
                vec!["deployments", "d", "-o", "wide"],
                "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
            ),
            (vec!["replicasets", "rs"], "NAME DESIRED CURRENT READY AGE"),
            (
                vec!["replicasets", "rs", "-o", "wide"],
                "NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR",
            ),
            (vec!["statefulsets", "sts"], "NAME READY AGE"),
            (
                vec!["statefulsets", "sts", "-o", "wide"],
                "NAME READY AGE CONTAINERS IMAGES",
            ),
            (
                vec!["daemonsets", "ds"],
                "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE",
            ),
            (vec!["jobs", "job"], "NAME STATUS COMPLETIONS DURATION AGE"),
            (
                vec!["cronjobs", "cj"],
                "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE",
            ),
            (
                vec!["services", "svc"],
                "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
            ),
            (vec!["endpoints", "ep"], "NAME ENDPOINTS AGE"),
            (vec!["configmaps", "cm"], "NAME DATA AGE"),
            (vec!["secrets", "s"], "NAME TYPE DATA AGE"),
            (vec!["serviceaccounts", "sa"], "NAME SECRETS AGE"),
            (vec!["namespaces", &ns], "NAME STATUS AGE"),
            (vec!["nodes", &node], "NAME STATUS ROLES AGE VERSION"),
            (
                vec!["nodes", &node, "-o", "wide"],
                "NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME",
            ),
            (vec!["events", "ev"], "LAST SEEN TYPE REASON OBJECT MESSAGE"),
            (
                vec!["ingresses", "ing"],
                "NAME CLASS HOSTS ADDRESS PORTS AGE",
            ),
            (
                vec!["persistentvolumes", &pv],
                "NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS VOLUMEATTRIBUTESCLASS REASON AGE",
            ),
            (
                vec!["persistentvolumeclaims", "pvc"],
                "NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE",
            ),
            (vec!["leases", "lease"], "NAME HOLDER AGE"),
            (vec!["roles", "role"], "NAME CREATED AT"),
            (vec!["rolebindings", "rb"], "NAME ROLE AGE"),
            (
                vec!["rolebindings", "rb", "-o", "wide"],
                "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS",
            ),
            (vec!["clusterroles", &cr], "NAME CREATED AT"),
            (vec!["customresourcedefinitions", &crd], "NAME CREATED AT"),
        ];

        let mut wrong = Vec::new();
        for (args, want) in &cases {
            let mut all = vec!["get", "-n", &ns];
            all.extend_from_slice(args);
            let out = k.output(&all);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let got = header(&stdout);
            if !out.status.success() || got != *want {
                wrong.push(format!(
                    "kubectl 1.{minor} {}\n  want: {want}\n  got:  {got}\n  exit: {}\n  stdout: {}\n  stderr: {}",
                    all.join(" "),
                    out.status,
                    stdout.trim_end(),
                    String::from_utf8_lossy(&out.stderr).trim_end()
                ));
                continue;
            }
            // One row for the object, starting with its name (events
            // start with LAST SEEN instead).
            let rows: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
            let name = args[1];
            if rows.len() != 2
                || (args[0] != "events" && rows[1].split_whitespace().next() != Some(name))
            {
                wrong.push(format!(
                    "kubectl 1.{minor} {}: expected one row for {name}:\n{stdout}",
                    all.join(" ")
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} headers differ from upstream:\n\n{}",
            wrong.len(),
            cases.len(),
            wrong.join("\n\n")
        );

        // The event's row shows its reason, object and message.
        let row = k.ok(&["get", "-n", &ns, "events", "ev", "--no-headers"]);
        let words = row.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.contains("Normal Testing pod/p hello from the test"),
            "kubectl 1.{minor} get events: {row}"
        );

        // get -w prints the same header first.
        let mut w = k.follow(&["get", "-n", &ns, "pods", "-w"]);
        let first = w.next_line(Duration::from_secs(20)).unwrap_or_default();
        assert_eq!(
            header(&first),
            "NAME READY STATUS RESTARTS AGE",
            "kubectl 1.{minor} get pods -w: {:?}\n{}",
            w.seen,
            w.stderr()
        );
    }
}

#[test]
fn explain_reads_the_servers_openapi() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let out = k.ok(&["explain", "deployment.spec.strategy"]);
        for needle in ["KIND:", "Deployment", "FIELD:", "strategy", "DESCRIPTION:"] {
            assert!(
                out.contains(needle),
                "kubectl 1.{minor} explain deployment.spec.strategy lacks {needle:?}:\n{out}"
            );
        }
        let fields: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for field in ["type", "rollingUpdate"] {
            assert!(
                fields.contains(&field),
                "kubectl 1.{minor} explain deployment.spec.strategy lacks field {field}:\n{out}"
            );
        }

        let out = k.ok(&["explain", "pods", "--recursive"]);
        let fields: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for field in ["containers", "image", "metadata", "spec", "status"] {
            assert!(
                fields.contains(&field),
                "kubectl 1.{minor} explain pods --recursive lacks {field}:\n{out}"
            );
        }
    }
}

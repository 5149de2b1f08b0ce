#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;

use super::*;

const HEADER: &str =
    "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n";

fn parse(body: &str) -> Result<SchedulerConfig, ConfigError> {
    SchedulerConfig::from_str(&format!("{HEADER}{body}"))
}

fn names(profile: &ProfileConfig, point: &str) -> Vec<String> {
    profile
        .plugins(point)
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

fn weighted(profile: &ProfileConfig, point: &str) -> Vec<(String, i64)> {
    profile
        .plugins(point)
        .iter()
        .map(|p| (p.name.clone(), p.weight))
        .collect()
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

const DEFAULT_FILTER: &[&str] = &[
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "PodTopologySpread",
    "InterPodAffinity",
];

#[test]
fn default_profile_is_upstreams() {
    let config = SchedulerConfig::default();
    assert_eq!(config.parallelism, 16);
    assert_eq!(config.pod_initial_backoff, Duration::from_secs(1));
    assert_eq!(config.pod_max_backoff, Duration::from_secs(10));
    assert_eq!(config.percentage_of_nodes_to_score, None);
    assert_eq!(config.leader_election, LeaderElectionConfig::default());
    assert_eq!(config.profiles.len(), 1);
    let p = &config.profiles[0];
    assert_eq!(p.scheduler_name, "default-scheduler");
    assert_eq!(p.points.len(), 12, "every extension point is present");
    let cases: &[(&str, &[&str])] = &[
        ("preEnqueue", &["SchedulingGates"]),
        ("queueSort", &["PrioritySort"]),
        (
            "preFilter",
            &[
                "NodeAffinity",
                "NodePorts",
                "NodeResourcesFit",
                "PodTopologySpread",
                "InterPodAffinity",
            ],
        ),
        ("filter", DEFAULT_FILTER),
        ("postFilter", &["DefaultPreemption"]),
        (
            "preScore",
            &[
                "TaintToleration",
                "NodeAffinity",
                "NodeResourcesFit",
                "PodTopologySpread",
                "InterPodAffinity",
                "NodeResourcesBalancedAllocation",
                "ImageLocality",
            ],
        ),
        ("reserve", &[]),
        ("permit", &[]),
        ("preBind", &[]),
        ("bind", &["DefaultBinder"]),
        ("postBind", &[]),
    ];
    for (point, want) in cases {
        assert_eq!(names(p, point), strs(want), "{point}");
    }
    assert_eq!(
        weighted(p, "score"),
        vec![
            ("TaintToleration".to_owned(), 3),
            ("NodeAffinity".to_owned(), 2),
            ("NodeResourcesFit".to_owned(), 1),
            ("PodTopologySpread".to_owned(), 2),
            ("InterPodAffinity".to_owned(), 2),
            ("NodeResourcesBalancedAllocation".to_owned(), 1),
            ("ImageLocality".to_owned(), 1),
        ]
    );
    assert!(p.plugins("filter").iter().all(|r| r.weight == 0));
    assert_eq!(
        p.plugin_args["NodeResourcesFit"],
        json!({"scoringStrategy": {"type": "LeastAllocated",
            "resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]}})
    );
    assert_eq!(
        p.plugin_args["PodTopologySpread"],
        json!({"defaultingType": "System"})
    );
    assert_eq!(
        p.plugin_args["DefaultPreemption"],
        json!({"minCandidateNodesPercentage": 10, "minCandidateNodesAbsolute": 100})
    );
    assert_eq!(
        p.plugin_args["InterPodAffinity"]["hardPodAffinityWeight"],
        1
    );
    assert_eq!(
        p.plugin_args["NodeResourcesBalancedAllocation"],
        json!({"resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]})
    );
}

#[test]
fn an_empty_file_is_the_default() {
    assert_eq!(parse("").unwrap(), SchedulerConfig::default());
    assert_eq!(
        parse("profiles:\n- schedulerName: default-scheduler\n").unwrap(),
        SchedulerConfig::default()
    );
}

/// (what, plugins YAML of one profile, point, expected names with weights).
type MergeCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, i64)],
);

#[test]
fn plugin_merging_follows_upstream() {
    let cases: &[MergeCase] = &[
        (
            "score: only the enabled one after disabling all",
            "score:\n  disabled: [{name: '*'}]\n  enabled: [{name: ImageLocality, weight: 5}]",
            "score",
            &[("ImageLocality", 5)],
        ),
        (
            "score: a re-configured default moves first with its weight",
            "score:\n  enabled: [{name: NodeResourcesFit, weight: 5}]",
            "score",
            &[
                ("NodeResourcesFit", 5),
                ("TaintToleration", 3),
                ("NodeAffinity", 2),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 1),
            ],
        ),
        (
            "score: weight 0 means 1",
            "score:\n  disabled: [{name: '*'}]\n  enabled: [{name: ImageLocality, weight: 0}]",
            "score",
            &[("ImageLocality", 1)],
        ),
        (
            "multiPoint: a disabled default is gone everywhere",
            "multiPoint:\n  disabled: [{name: TaintToleration}]",
            "score",
            &[
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 1),
            ],
        ),
        (
            "multiPoint: re-enabled without weight loses the default weight",
            "multiPoint:\n  enabled: [{name: TaintToleration}]",
            "score",
            &[
                ("TaintToleration", 1),
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 1),
            ],
        ),
        (
            "multiPoint: re-enabled with a weight",
            "multiPoint:\n  enabled: [{name: ImageLocality, weight: 7}]",
            "score",
            &[
                ("TaintToleration", 3),
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 7),
            ],
        ),
        (
            "score: disabling at one point keeps the others",
            "score:\n  disabled: [{name: NodeAffinity}]",
            "filter",
            &[
                ("NodeUnschedulable", 0),
                ("NodeName", 0),
                ("TaintToleration", 0),
                ("NodeAffinity", 0),
                ("NodePorts", 0),
                ("NodeResourcesFit", 0),
                ("PodTopologySpread", 0),
                ("InterPodAffinity", 0),
            ],
        ),
        (
            "filter: an explicitly enabled default comes first",
            "filter:\n  enabled: [{name: NodeResourcesFit}]",
            "filter",
            &[
                ("NodeResourcesFit", 0),
                ("NodeUnschedulable", 0),
                ("NodeName", 0),
                ("TaintToleration", 0),
                ("NodeAffinity", 0),
                ("NodePorts", 0),
                ("PodTopologySpread", 0),
                ("InterPodAffinity", 0),
            ],
        ),
        (
            "filter: '*' skips multiPoint expansion at that point",
            "filter:\n  disabled: [{name: '*'}]\n  enabled: [{name: NodeName}, {name: TaintToleration}]",
            "filter",
            &[("NodeName", 0), ("TaintToleration", 0)],
        ),
        (
            "multiPoint: '*' then a minimal set",
            "multiPoint:\n  disabled: [{name: '*'}]\n  enabled: [{name: PrioritySort}, {name: NodeName}, {name: ImageLocality, weight: 2}, {name: DefaultBinder}]",
            "score",
            &[("ImageLocality", 2)],
        ),
        (
            "volume plugins may be disabled",
            "multiPoint:\n  disabled: [{name: VolumeBinding}, {name: VolumeZone}]\nfilter:\n  disabled: [{name: NodeVolumeLimits}]",
            "postFilter",
            &[("DefaultPreemption", 0)],
        ),
    ];
    for (what, plugins, point, want) in cases {
        let indented: String = plugins.lines().map(|l| format!("    {l}\n")).collect();
        let config = parse(&format!(
            "profiles:\n- schedulerName: s\n  plugins:\n{indented}"
        ))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        let want: Vec<(String, i64)> = want.iter().map(|(n, w)| ((*n).to_owned(), *w)).collect();
        assert_eq!(weighted(&config.profiles[0], point), want, "{what}");
    }
}

#[test]
fn a_minimal_multipoint_profile_has_nothing_else() {
    let config = parse(
        "profiles:\n- plugins:\n    multiPoint:\n      disabled: [{name: '*'}]\n      enabled: [{name: PrioritySort}, {name: NodeName}, {name: DefaultBinder}]\n",
    )
    .unwrap();
    let p = &config.profiles[0];
    assert_eq!(p.scheduler_name, "default-scheduler");
    assert_eq!(names(p, "filter"), strs(&["NodeName"]));
    assert!(p.plugins("score").is_empty());
    assert!(p.plugins("preFilter").is_empty());
    assert!(p.enabled("DefaultBinder"));
    assert!(!p.enabled("TaintToleration"));
}

/// (file body, a fragment the error must contain).
#[test]
fn invalid_files_are_rejected_with_clear_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "profiles:\n- plugins:\n    filter:\n      enabled: [{name: Foo}]",
            "profiles[0].plugins.filter.enabled[0]: unknown plugin \"Foo\"",
        ),
        (
            "profiles:\n- plugins:\n    multiPoint:\n      enabled: [{name: Bar}]",
            "unknown plugin \"Bar\"",
        ),
        (
            "profiles:\n- plugins:\n    multiPoint:\n      enabled: [{name: VolumeBinding}]",
            "plugin \"VolumeBinding\" is not supported",
        ),
        (
            "profiles:\n- plugins:\n    filter:\n      enabled: [{name: ImageLocality}]",
            "plugin \"ImageLocality\" does not extend filter",
        ),
        (
            "profiles:\n- plugins:\n    score:\n      enabled: [{name: ImageLocality, weight: -1}]",
            "profiles[0].plugins.score.enabled[0].weight: Invalid value: -1",
        ),
        (
            "profiles:\n- plugins:\n    filter:\n      enabled: [{name: NodeName}, {name: NodeName}]",
            "plugin \"NodeName\" already registered as filter",
        ),
        (
            "profiles:\n- plugins:\n    queueSort:\n      disabled: [{name: '*'}]",
            "no queue sort plugin is enabled",
        ),
        (
            "profiles:\n- plugins:\n    bind:\n      disabled: [{name: DefaultBinder}]",
            "at least one bind plugin is needed",
        ),
        (
            "profiles:\n- schedulerName: a\n- schedulerName: a",
            "profiles[1].schedulerName: Duplicate value: \"a\"",
        ),
        (
            "profiles:\n- schedulerName: a\n- percentageOfNodesToScore: 5",
            "profiles[1].schedulerName: Required value",
        ),
        (
            "percentageOfNodesToScore: 101",
            "percentageOfNodesToScore: Invalid value: 101: not in valid range [0-100]",
        ),
        (
            "profiles:\n- percentageOfNodesToScore: -1",
            "profiles[0].percentageOfNodesToScore: Invalid value: -1",
        ),
        (
            "parallelism: 0",
            "parallelism: Invalid value: 0: should be an integer value greater than zero",
        ),
        (
            "podInitialBackoffSeconds: 0",
            "podInitialBackoffSeconds: Invalid value: 0: must be greater than 0",
        ),
        (
            "podInitialBackoffSeconds: 5\npodMaxBackoffSeconds: 2",
            "podMaxBackoffSeconds: Invalid value: 2: must be greater than or equal to PodInitialBackoffSeconds",
        ),
        (
            "leaderElection:\n  leaseDuration: 10s\n  renewDeadline: 10s",
            "LeaseDuration must be greater than RenewDeadline",
        ),
        (
            "leaderElection:\n  leaseDuration: \"15\"",
            "leaderElection.leaseDuration: Invalid value: invalid duration \"15\": missing unit",
        ),
        (
            "leaderElection:\n  leaseDuration: 15",
            "invalid type: integer `15`, expected a string",
        ),
        (
            "leaderElection:\n  resourceLock: endpoints",
            "leaderElection.resourceLock: Unsupported value: \"endpoints\"",
        ),
        (
            "profiles:\n- schedulerNme: x",
            "unknown field `schedulerNme`",
        ),
        ("bogus: 1", "unknown field `bogus`"),
        (
            "profiles:\n- pluginConfig:\n  - name: DefaultPreemption\n  - name: DefaultPreemption",
            "profiles[0].pluginConfig[1].name: Duplicate value: \"DefaultPreemption\"",
        ),
        (
            "profiles:\n- pluginConfig:\n  - name: Nope\n    args: {}",
            "profiles[0].pluginConfig[0].name: Invalid value: \"Nope\": unknown plugin",
        ),
        (
            "profiles:\n- pluginConfig:\n  - name: InterPodAffinity\n    args: {kind: NodeAffinityArgs}",
            "expected \"InterPodAffinityArgs\"",
        ),
        (
            "profiles:\n- pluginConfig:\n  - name: InterPodAffinity\n    args: {hardPodAffinityWeight: 101}",
            "profiles[0].pluginConfig[0].args.hardPodAffinityWeight: Invalid value: 101: not in valid range [0, 100]",
        ),
        (
            "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args: {scoringStrategy: {type: Random}}",
            "scoringStrategy.type: Unsupported value: \"Random\"",
        ),
        (
            "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args: {scoringStrategy: {resources: [{name: cpu, weight: 101}]}}",
            "resource weight of cpu not in valid range [1, 100]",
        ),
        (
            "profiles:\n- pluginConfig:\n  - name: DefaultPreemption\n    args: {minCandidateNodesPercentage: 0, minCandidateNodesAbsolute: 0}",
            "both minCandidateNodesPercentage and minCandidateNodesAbsolute cannot be zero",
        ),
        (
            "profiles:\n- pluginConfig:\n  - name: PodTopologySpread\n    args: {defaultConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}], defaultingType: System}",
            "when .defaultingType is \"System\", .defaultConstraints must be empty",
        ),
        (
            "extenders:\n- urlPrefix: http://x",
            "extenders are not supported",
        ),
    ];
    for (body, want) in cases {
        let err = match parse(body) {
            Ok(_) => panic!("accepted: {body}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{body}\n  got: {err}\n  want: {want}");
    }
}

#[test]
fn api_version_and_kind_are_checked() {
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: kubescheduler.config.k8s.io/v1beta3\nkind: KubeSchedulerConfiguration\n",
            "unsupported apiVersion \"kubescheduler.config.k8s.io/v1beta3\"",
        ),
        (
            "kind: KubeSchedulerConfiguration\n",
            "unsupported apiVersion \"\"",
        ),
        (
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: Pod\n",
            "unsupported kind \"Pod\"",
        ),
        (
            "apiVersion: kubescheduler.config.k8s.io/v1\n",
            "unsupported kind \"\"",
        ),
        ("- a\n- b\n", "not a KubeSchedulerConfiguration"),
        ("a: [\n", "decoding the scheduler configuration"),
    ];
    for (text, want) in cases {
        let err = SchedulerConfig::from_str(text).unwrap_err().to_string();
        assert!(err.contains(want), "{text}\n  got: {err}");
    }
}

#[test]
fn top_level_fields_and_leader_election() {
    let config = parse(
        "parallelism: 4\npercentageOfNodesToScore: 50\npodInitialBackoffSeconds: 2\npodMaxBackoffSeconds: 30\n\
         leaderElection:\n  leaderElect: false\n  leaseDuration: 1m30s\n  renewDeadline: 1m\n  retryPeriod: 500ms\n  \
         resourceLock: leases\n  resourceNamespace: sched\n  resourceName: mine\n\
         clientConnection: {kubeconfig: /x, qps: 50}\nenableProfiling: true\n\
         profiles:\n- schedulerName: a\n  percentageOfNodesToScore: 20\n- schedulerName: b\n",
    )
    .unwrap();
    assert_eq!(config.parallelism, 4);
    assert_eq!(config.percentage_of_nodes_to_score, Some(50));
    assert_eq!(config.pod_initial_backoff, Duration::from_secs(2));
    assert_eq!(config.pod_max_backoff, Duration::from_secs(30));
    assert_eq!(
        config.leader_election,
        LeaderElectionConfig {
            leader_elect: false,
            lease_duration: Duration::from_secs(90),
            renew_deadline: Duration::from_secs(60),
            retry_period: Duration::from_millis(500),
            resource_namespace: "sched".to_owned(),
            resource_name: "mine".to_owned(),
        }
    );
    let timing = config.leader_election.timing();
    assert_eq!(timing.lease_duration, Duration::from_secs(90));
    assert_eq!(config.profiles.len(), 2);
    assert_eq!(
        config.profile("a").unwrap().percentage_of_nodes_to_score,
        Some(20)
    );
    assert_eq!(
        config.profile("b").unwrap().percentage_of_nodes_to_score,
        None
    );
    assert!(config.profile("c").is_none());
}

#[test]
fn plugin_args_merge_over_defaults() {
    let config = parse(
        "profiles:\n- pluginConfig:\n\
         \x20 - name: NodeResourcesFit\n\
         \x20   args:\n\
         \x20     apiVersion: kubescheduler.config.k8s.io/v1\n\
         \x20     kind: NodeResourcesFitArgs\n\
         \x20     scoringStrategy:\n\
         \x20       type: MostAllocated\n\
         \x20 - name: NodeResourcesBalancedAllocation\n\
         \x20   args:\n\
         \x20     resources: [{name: cpu}, {name: nvidia.com/gpu, weight: 0}]\n\
         \x20 - name: DefaultPreemption\n\
         \x20   args: {minCandidateNodesAbsolute: 5}\n\
         \x20 - name: VolumeBinding\n\
         \x20   args: {bindTimeoutSeconds: 600}\n\
         \x20 - name: PodTopologySpread\n\
         \x20   args:\n\
         \x20     defaultConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}]\n",
    )
    .unwrap();
    let args = &config.profiles[0].plugin_args;
    assert_eq!(
        args["NodeResourcesFit"],
        json!({"scoringStrategy": {"type": "MostAllocated",
            "resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]}})
    );
    assert_eq!(
        args["NodeResourcesBalancedAllocation"],
        json!({"resources": [{"name": "cpu", "weight": 1}, {"name": "nvidia.com/gpu", "weight": 1}]})
    );
    assert_eq!(
        args["DefaultPreemption"],
        json!({"minCandidateNodesPercentage": 10, "minCandidateNodesAbsolute": 5})
    );
    assert_eq!(args["PodTopologySpread"]["defaultingType"], "List");
    assert!(!args.contains_key("VolumeBinding"));
}

#[test]
fn json_files_are_read() {
    let config = SchedulerConfig::from_str(
        "{\n\t\"apiVersion\": \"kubescheduler.config.k8s.io/v1\",\n\t\"kind\": \"KubeSchedulerConfiguration\",\n\t\"profiles\": [{\"schedulerName\": \"json\", \"plugins\": {\"score\": {\"disabled\": [{\"name\": \"*\"}]}}}]\n}",
    )
    .unwrap();
    assert_eq!(config.profiles[0].scheduler_name, "json");
    assert!(config.profiles[0].plugins("score").is_empty());
}

#[test]
fn files_are_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        format!("{HEADER}profiles:\n- schedulerName: from-disk\n"),
    )
    .unwrap();
    let config = SchedulerConfig::from_file(&path).unwrap();
    assert_eq!(config.profiles[0].scheduler_name, "from-disk");
    let err = SchedulerConfig::from_file(dir.path().join("missing.yaml")).unwrap_err();
    assert!(err.to_string().contains("missing.yaml"), "{err}");
}

#[test]
fn system_default_constraints_are_upstreams() {
    let c = args::system_default_constraints();
    assert_eq!(c[0]["maxSkew"], 3);
    assert_eq!(c[1]["topologyKey"], "topology.kubernetes.io/zone");
}

#[test]
fn every_registered_plugin_has_known_points() {
    for name in crate::plugins::NAMES {
        let points = plugins::points_of(name).unwrap_or_default();
        assert!(!points.is_empty(), "{name}");
        for p in &points {
            assert!(EXTENSION_POINTS.contains(p), "{name}: {p}");
        }
    }
}

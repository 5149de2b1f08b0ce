//! Configuration files as users write them for upstream's kube-scheduler
//! (the shapes of the Kubernetes documentation's examples), read from
//! disk through the public API.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use skiff_scheduler::config::{ConfigError, SchedulerConfig};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn names(config: &SchedulerConfig, profile: &str, point: &str) -> Vec<String> {
    config
        .profile(profile)
        .unwrap()
        .plugins(point)
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

#[test]
fn the_documented_multi_profile_example() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "sched.yaml",
        r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: /etc/kubernetes/scheduler.conf
leaderElection:
  leaderElect: true
  leaseDuration: 30s
  renewDeadline: 20s
  retryPeriod: 5s
  resourceLock: leases
  resourceName: kube-scheduler
  resourceNamespace: kube-system
profiles:
  - schedulerName: default-scheduler
  - schedulerName: no-scoring-scheduler
    plugins:
      preScore:
        disabled:
        - name: '*'
      score:
        disabled:
        - name: '*'
  - schedulerName: bin-packing
    percentageOfNodesToScore: 30
    pluginConfig:
    - name: NodeResourcesFit
      args:
        apiVersion: kubescheduler.config.k8s.io/v1
        kind: NodeResourcesFitArgs
        scoringStrategy:
          type: MostAllocated
          resources:
          - name: cpu
            weight: 1
          - name: memory
            weight: 1
"#,
    );
    let config = SchedulerConfig::from_file(&path).unwrap();
    assert_eq!(config.profiles.len(), 3);
    assert_eq!(
        config.leader_election.lease_duration,
        Duration::from_secs(30)
    );
    assert_eq!(config.leader_election.retry_period, Duration::from_secs(5));
    assert_eq!(names(&config, "default-scheduler", "score").len(), 7);
    assert!(names(&config, "no-scoring-scheduler", "score").is_empty());
    assert!(names(&config, "no-scoring-scheduler", "preScore").is_empty());
    assert_eq!(
        names(&config, "no-scoring-scheduler", "filter"),
        names(&config, "default-scheduler", "filter")
    );
    let bin_packing = config.profile("bin-packing").unwrap();
    assert_eq!(bin_packing.percentage_of_nodes_to_score, Some(30));
    assert_eq!(
        bin_packing.plugin_args["NodeResourcesFit"]["scoringStrategy"]["type"],
        "MostAllocated"
    );
    assert_eq!(
        config.profile("default-scheduler").unwrap().plugin_args["NodeResourcesFit"]["scoringStrategy"]
            ["type"],
        "LeastAllocated"
    );
}

#[test]
fn a_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "sched.json",
        r#"{
	"apiVersion": "kubescheduler.config.k8s.io/v1",
	"kind": "KubeSchedulerConfiguration",
	"parallelism": 8,
	"profiles": [{
		"schedulerName": "custom",
		"plugins": {"score": {"enabled": [{"name": "ImageLocality", "weight": 10}]}}
	}]
}"#,
    );
    let config = SchedulerConfig::from_file(&path).unwrap();
    assert_eq!(config.parallelism, 8);
    let score = config.profile("custom").unwrap().plugins("score");
    assert_eq!(score[0].name, "ImageLocality");
    assert_eq!(score[0].weight, 10);
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: kubescheduler.config.k8s.io/v1beta2\nkind: KubeSchedulerConfiguration\n",
            "only \"kubescheduler.config.k8s.io/v1\" is supported",
        ),
        (
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- plugins:\n    multiPoint:\n      enabled: [{name: CoschedulingX}]\n",
            "unknown plugin \"CoschedulingX\"",
        ),
        (
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- plugins:\n    filter:\n      enabled: [{name: VolumeZone}]\n",
            "\"VolumeZone\" is not supported",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = write(&dir, &format!("bad-{i}.yaml"), text);
        let err = SchedulerConfig::from_file(&path).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    assert!(matches!(
        SchedulerConfig::from_file(dir.path().join("absent.yaml")),
        Err(ConfigError::Read { .. })
    ));
}

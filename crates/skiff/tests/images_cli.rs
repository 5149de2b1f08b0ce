//! `skiff images build` and `skiff images import` as a user runs them. The
//! import test needs root and containerd (CI runs as root); without root it
//! fails unless `SKIFF_SKIP_ROOT_TESTS=1` is set.

use std::process::Command;

use tokio_util::sync::CancellationToken;

fn skiff() -> Command {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn build_writes_both_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = skiff()
        .args(["images", "build", "--out"])
        .arg(dir.path())
        .output()
        .expect("skiff images build");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(dir.path().join("pause.tar").is_file());
    assert!(dir.path().join("busybox.tar").is_file());
    assert!(stdout.contains("skiff.local/pause:latest"), "{stdout}");
    assert!(stdout.contains("skiff.local/busybox:latest"), "{stdout}");
}

#[test]
fn import_without_containerd_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = skiff()
        .args(["images", "import", "x.tar", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("skiff images import");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    let socket = dir.path().join("agent/containerd/containerd.sock");
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_into_a_running_containerd() {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var("SKIFF_SKIP_ROOT_TESTS").as_deref() == Ok("1"),
            "this test needs root (CI runs it as root); set SKIFF_SKIP_ROOT_TESTS=1 to skip it"
        );
        return;
    }
    // Short: the socket path must fit in 108 bytes.
    let tmp = tempfile::Builder::new()
        .prefix("ski")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let archives = tmp.path().join("out");
    let built = skiff()
        .args(["images", "build", "--out"])
        .arg(&archives)
        .output()
        .expect("skiff images build");
    assert!(built.status.success(), "{:?}", text(&built));

    let config = skiff_containerd::ContainerdConfig::new(&tmp.path().join("agent"));
    let shutdown = CancellationToken::new();
    let managed = skiff_containerd::start(config, shutdown.clone())
        .await
        .expect("containerd starts");
    let out = skiff()
        .args(["images", "import"])
        .arg(archives.join("busybox.tar"))
        .arg("--data-dir")
        .arg(tmp.path())
        .output()
        .expect("skiff images import");
    let listed = skiff_containerd::images::list_images(&managed.socket()).await;
    shutdown.cancel();
    managed.wait().await;

    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "imported skiff.local/busybox:latest");
    assert!(
        stderr.contains("unpacking skiff.local/busybox:latest"),
        "{stderr}"
    );
    assert!(
        listed
            .expect("list images")
            .contains(skiff_containerd::BUSYBOX_IMAGE)
    );
}

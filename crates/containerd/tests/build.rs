//! The offline image builder and the config renderer, without containerd.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use skiff_containerd::ContainerdConfig;
use skiff_containerd::config::snapshotter_of;
use skiff_containerd::images::{
    BUSYBOX_IMAGE, DEFAULT_BUSYBOX, ImageError, PAUSE_IMAGE, build_busybox, build_pause,
};

/// The entries of a tar: path → (type, mode, data or link target).
fn read_tar(bytes: &[u8]) -> BTreeMap<String, (tar::EntryType, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let header = entry.header().clone();
        assert_eq!(header.mtime().expect("mtime"), 0, "{path}: mtime");
        assert_eq!(header.uid().expect("uid"), 0, "{path}: uid");
        let mut data = Vec::new();
        if header.entry_type() == tar::EntryType::Symlink {
            let target = entry.link_name().expect("link").expect("target");
            data = target.to_string_lossy().into_owned().into_bytes();
        } else {
            entry.read_to_end(&mut data).expect("read");
        }
        out.insert(
            path,
            (header.entry_type(), header.mode().expect("mode"), data),
        );
    }
    out
}

fn sha256(data: &[u8]) -> String {
    skiff_containerd::images::sha256_digest(data)
}

struct Image {
    repo_tags: Vec<String>,
    config: serde_json::Value,
    layer: BTreeMap<String, (tar::EntryType, u32, Vec<u8>)>,
}

/// Parses a docker-archive and checks its digests.
fn open_archive(path: &Path) -> Image {
    let bytes = std::fs::read(path).expect("archive");
    let files = read_tar(&bytes);
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"].2).expect("manifest.json");
    let manifest = &manifest.as_array().expect("manifest array")[0];
    let config_name = manifest["Config"].as_str().expect("Config");
    let config_bytes = &files[config_name].2;
    assert_eq!(
        format!(
            "{}.json",
            sha256(config_bytes).trim_start_matches("sha256:")
        ),
        config_name,
        "the config's file name is its digest"
    );
    let config: serde_json::Value = serde_json::from_slice(config_bytes).expect("config");
    let layers = manifest["Layers"].as_array().expect("Layers");
    assert_eq!(layers.len(), 1);
    let layer_bytes = &files[layers[0].as_str().expect("layer")].2;
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str(),
        Some(sha256(layer_bytes).as_str()),
        "diff_id is the layer's sha256"
    );
    Image {
        repo_tags: manifest["RepoTags"]
            .as_array()
            .expect("RepoTags")
            .iter()
            .map(|t| t.as_str().expect("tag").to_string())
            .collect(),
        config,
        layer: read_tar(layer_bytes),
    }
}

fn busybox() -> PathBuf {
    let path = PathBuf::from(DEFAULT_BUSYBOX);
    assert!(
        path.exists(),
        "{DEFAULT_BUSYBOX} is missing: apt-get install busybox-static"
    );
    path
}

#[test]
fn busybox_image_has_every_applet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("busybox.tar");
    build_busybox(&busybox(), &out).expect("build busybox");
    let image = open_archive(&out);
    assert_eq!(image.repo_tags, [BUSYBOX_IMAGE]);
    assert_eq!(image.config["os"], "linux");
    assert_eq!(image.config["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(image.config["config"]["WorkingDir"], "/");
    assert_eq!(
        image.config["config"]["Env"],
        serde_json::json!(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    let (kind, mode, data) = &image.layer["bin/busybox"];
    assert_eq!(*kind, tar::EntryType::Regular);
    assert_eq!(*mode, 0o755);
    assert_eq!(data, &std::fs::read(busybox()).expect("busybox"));
    let applets = [
        "bin/sh",
        "bin/sleep",
        "bin/cat",
        "bin/echo",
        "bin/ls",
        "bin/ps",
        "bin/hostname",
        "bin/mkdir",
        "bin/rm",
        "bin/kill",
        "bin/true",
        "bin/false",
        "bin/dd",
        "bin/grep",
        "bin/sed",
        "bin/vi",
        "usr/bin/env",
        "usr/bin/id",
        "usr/bin/head",
        "usr/bin/tail",
        "usr/bin/wget",
        "usr/bin/nc",
        "usr/bin/nslookup",
        "usr/sbin/httpd",
    ];
    for applet in applets {
        let Some((kind, _, target)) = image.layer.get(applet) else {
            panic!("{applet} missing from the busybox image");
        };
        assert_eq!(*kind, tar::EntryType::Symlink, "{applet}");
        assert_eq!(target, b"/bin/busybox", "{applet}");
    }
    let tmp = &image.layer["tmp/"];
    assert_eq!((tmp.0, tmp.1), (tar::EntryType::Directory, 0o1777));
    let passwd = String::from_utf8_lossy(&image.layer["etc/passwd"].2).into_owned();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    assert!(passwd.contains("nobody:x:65534:65534:"), "{passwd}");
    let group = String::from_utf8_lossy(&image.layer["etc/group"].2).into_owned();
    assert!(group.contains("root:x:0:") && group.contains("nobody:x:65534:"));
}

#[test]
fn pause_image_runs_the_reaping_shell() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("pause.tar");
    build_pause(&busybox(), &out).expect("build pause");
    let image = open_archive(&out);
    assert_eq!(image.repo_tags, [PAUSE_IMAGE]);
    let entrypoint = &image.config["config"]["Entrypoint"];
    assert_eq!(entrypoint[0], "/bin/sh");
    assert!(
        entrypoint[2]
            .as_str()
            .is_some_and(|s| s.contains("trap 'exit 0' TERM INT")),
        "{entrypoint}"
    );
    for path in ["bin/busybox", "bin/sh", "bin/sleep"] {
        assert!(image.layer.contains_key(path), "{path} missing");
    }
}

#[test]
fn archives_are_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    build_pause(&busybox(), &a).expect("build a");
    build_pause(&busybox(), &b).expect("build b");
    assert_eq!(std::fs::read(a).expect("a"), std::fs::read(b).expect("b"));
}

#[test]
fn refuses_missing_or_dynamic_busybox() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("x.tar");
    let err = build_pause(&dir.path().join("nope"), &out).expect_err("missing busybox");
    assert!(matches!(err, ImageError::BusyboxMissing { .. }), "{err}");
    assert!(err.to_string().contains("busybox-static"), "{err}");
    // Any dynamically linked program of the host will do.
    let err = build_busybox(Path::new("/bin/ls"), &out).expect_err("dynamic busybox");
    assert!(matches!(err, ImageError::BusyboxNotStatic { .. }), "{err}");
    assert!(err.to_string().contains("busybox-static"), "{err}");
    assert!(!out.exists());
}

#[test]
fn config_keeps_everything_under_the_dir() {
    let config = ContainerdConfig::new(Path::new("/var/lib/skiff/agent"));
    assert_eq!(config.dir, Path::new("/var/lib/skiff/agent/containerd"));
    assert_eq!(
        config.cni_conf_dir,
        Path::new("/var/lib/skiff/agent/etc/cni/net.d")
    );
    assert_eq!(config.sandbox_image, PAUSE_IMAGE);
    assert_eq!(
        config.socket(),
        Path::new("/var/lib/skiff/agent/containerd/containerd.sock")
    );
    let toml = config.render(Path::new("/usr/lib/cni"), "overlayfs");
    for line in [
        "version = 2",
        "root = \"/var/lib/skiff/agent/containerd/root\"",
        "state = \"/var/lib/skiff/agent/containerd/state\"",
        "address = \"/var/lib/skiff/agent/containerd/containerd.sock\"",
        "sandbox_image = \"skiff.local/pause:latest\"",
        "snapshotter = \"overlayfs\"",
        "runtime_type = \"io.containerd.runc.v2\"",
        "SystemdCgroup = false",
        "bin_dir = \"/usr/lib/cni\"",
        "conf_dir = \"/var/lib/skiff/agent/etc/cni/net.d\"",
        "max_container_log_line_size = 16384",
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]",
    ] {
        assert!(
            toml.lines().any(|l| l.trim() == line),
            "missing {line:?} in\n{toml}"
        );
    }
    assert!(toml.contains("io.containerd.snapshotter.v1.btrfs"));
    assert_eq!(snapshotter_of(&toml).as_deref(), Some("overlayfs"));
    let native = config.render(Path::new("/usr/lib/cni"), "native");
    assert_eq!(snapshotter_of(&native).as_deref(), Some("native"));
}

#[test]
fn config_quotes_paths() {
    let mut config = ContainerdConfig::new(Path::new("/tmp/a \"b\"\\c"));
    config.sandbox_image = "reg/pause:3".into();
    let toml = config.render(Path::new("/cni"), "native");
    assert!(
        toml.contains("root = \"/tmp/a \\\"b\\\"\\\\c/containerd/root\""),
        "{toml}"
    );
    assert!(toml.contains("sandbox_image = \"reg/pause:3\""));
}

#[tokio::test]
async fn import_refuses_what_is_not_an_image_archive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("none.sock");
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar file at all").expect("write");
    let err = skiff_containerd::images::import(&socket, &junk, |_| {})
        .await
        .expect_err("junk");
    assert!(matches!(err, ImageError::BadArchive { .. }), "{err}");

    // A valid tar without manifest.json or index.json.
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(2);
    header.set_mode(0o644);
    tar.append_data(&mut header, "hello.txt", &b"hi"[..])
        .expect("append");
    std::fs::write(&junk, tar.into_inner().expect("tar")).expect("write");
    let err = skiff_containerd::images::import(&socket, &junk, |_| {})
        .await
        .expect_err("no manifest");
    assert!(err.to_string().contains("manifest.json"), "{err}");

    let err = skiff_containerd::images::import(&socket, &dir.path().join("missing.tar"), |_| {})
        .await
        .expect_err("missing");
    assert!(matches!(err, ImageError::Io { .. }), "{err}");
}

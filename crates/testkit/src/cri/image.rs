//! Image references as containerd sees them: normalized names, stable fake
//! ids and digests.

/// A pulled (or pre-loaded) image.
#[derive(Clone, Debug)]
pub(crate) struct ImageRec {
    /// `sha256:<64 hex>`, derived from the normalized name.
    pub id: String,
    /// Normalized, e.g. `docker.io/library/busybox:latest`.
    pub tag: String,
    /// `docker.io/library/busybox@sha256:<64 hex>`.
    pub digest: String,
    pub size: u64,
}

impl ImageRec {
    pub fn new(reference: &str) -> ImageRec {
        let tag = normalize(reference);
        let hex = fake_sha256(&tag);
        let repo = repository(&tag);
        ImageRec {
            id: format!("sha256:{hex}"),
            digest: format!("{repo}@sha256:{}", fake_sha256(&format!("digest {tag}"))),
            size: 1_000_000 + u64::from_str_radix(&hex[..4], 16).unwrap_or(0) * 100,
            tag,
        }
    }

    /// Whether `reference` (any spelling of the name, the id with or without
    /// `sha256:`, or the repo digest) names this image.
    pub fn matches(&self, reference: &str) -> bool {
        if reference.is_empty() {
            return false;
        }
        if reference == self.id || self.id.strip_prefix("sha256:") == Some(reference) {
            return true;
        }
        let normalized = normalize(reference);
        normalized == self.tag || normalized == self.digest
    }

    pub fn to_cri(&self) -> k8s_cri::v1::Image {
        k8s_cri::v1::Image {
            id: self.id.clone(),
            repo_tags: vec![self.tag.clone()],
            repo_digests: vec![self.digest.clone()],
            size: self.size,
            uid: None,
            username: String::new(),
            spec: Some(k8s_cri::v1::ImageSpec {
                image: self.id.clone(),
                ..Default::default()
            }),
            pinned: false,
        }
    }
}

/// Docker-style normalization: `busybox` → `docker.io/library/busybox:latest`,
/// `quay.io/x/y` → `quay.io/x/y:latest`; ids (`sha256:…`) are kept.
pub(crate) fn normalize(reference: &str) -> String {
    if reference.starts_with("sha256:") {
        return reference.to_owned();
    }
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_owned())
        }
        _ => ("docker.io", name.to_owned()),
    };
    let rest = if domain == "docker.io" && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest
    };
    match digest {
        Some(d) => format!("{domain}/{}@{d}", strip_tag(&rest)),
        None if has_tag(&rest) => format!("{domain}/{rest}"),
        None => format!("{domain}/{rest}:latest"),
    }
}

fn has_tag(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
}

fn strip_tag(path: &str) -> &str {
    if has_tag(path) {
        path.rsplit_once(':').map_or(path, |(p, _)| p)
    } else {
        path
    }
}

/// The repository of a normalized tagged name.
fn repository(tag: &str) -> &str {
    strip_tag(tag)
}

/// 64 hex digits that depend only on `input` (FNV-1a, four lanes).
fn fake_sha256(input: &str) -> String {
    let mut out = String::with_capacity(64);
    for lane in 0u64..4 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ lane.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in input.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(normalize("me/app"), "docker.io/me/app:latest");
        assert_eq!(normalize("quay.io/x/y:v1"), "quay.io/x/y:v1");
        assert_eq!(normalize("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(
            normalize("busybox@sha256:abc"),
            "docker.io/library/busybox@sha256:abc"
        );
    }

    #[test]
    fn an_image_matches_every_spelling() {
        let img = ImageRec::new("busybox");
        assert!(img.matches("busybox"));
        assert!(img.matches("docker.io/library/busybox:latest"));
        assert!(img.matches(&img.id));
        assert!(img.matches(&img.digest));
        assert!(!img.matches("busybox:1.36"));
        assert_eq!(img.id.len(), 7 + 64);
        assert!(img.digest.starts_with("docker.io/library/busybox@sha256:"));
    }
}

//! Image garbage collection, as upstream's image GC manager: when the image
//! filesystem is more than 85% full, images no container uses are removed,
//! least recently used first, until it is under 80%. Pinned images (the
//! sandbox image) and images first seen less than 2 minutes ago are kept.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_cri::v1::{
    ImageFsInfoRequest, ImageSpec, ListContainersRequest, ListImagesRequest, RemoveImageRequest,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cri::Cri;

#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub high_percent: u64,
    pub low_percent: u64,
    pub min_age: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            high_percent: 85,
            low_percent: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

const PERIOD: Duration = Duration::from_secs(300);

/// When each image was first seen and last seen in use.
#[derive(Default)]
pub struct Usage {
    images: HashMap<String, (Instant, Instant)>,
}

pub async fn run(mut cri: Cri, shutdown: CancellationToken) {
    let mut usage = Usage::default();
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match collect(&mut cri, Policy::default(), &mut usage).await {
            Ok(0) => {}
            Ok(freed) => tracing::info!(freed_bytes = freed, "image garbage collection"),
            Err(e) => tracing::debug!(error = %e.message(), "image garbage collection"),
        }
    }
}

/// One pass; returns the bytes freed.
pub async fn collect(
    cri: &mut Cri,
    policy: Policy,
    usage: &mut Usage,
) -> Result<u64, tonic::Status> {
    let now = Instant::now();
    let images = cri
        .images
        .list_images(ListImagesRequest::default())
        .await?
        .into_inner()
        .images;
    let containers = cri
        .runtime
        .list_containers(ListContainersRequest::default())
        .await?
        .into_inner()
        .containers;
    let in_use: HashSet<&str> = containers
        .iter()
        .flat_map(|c| {
            [
                c.image_ref.as_str(),
                c.image.as_ref().map_or("", |i| i.image.as_str()),
            ]
        })
        .collect();
    let live: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    usage.images.retain(|id, _| live.contains(id.as_str()));
    for image in &images {
        let used = in_use.contains(image.id.as_str())
            || image.repo_tags.iter().any(|t| in_use.contains(t.as_str()));
        let entry = usage.images.entry(image.id.clone()).or_insert((now, now));
        if used {
            entry.1 = now;
        }
    }
    let fs = cri
        .images
        .image_fs_info(ImageFsInfoRequest::default())
        .await?
        .into_inner();
    let Some(mountpoint) = fs
        .image_filesystems
        .first()
        .and_then(|f| f.fs_id.as_ref())
        .map(|id| id.mountpoint.clone())
    else {
        return Ok(0);
    };
    let Ok(stat) = rustix::fs::statvfs(mountpoint.as_str()) else {
        return Ok(0);
    };
    let total = stat.f_blocks * stat.f_frsize;
    let available = stat.f_bavail * stat.f_frsize;
    if total == 0 {
        return Ok(0);
    }
    let used = total - available.min(total);
    if used * 100 / total < policy.high_percent {
        return Ok(0);
    }
    let target = used.saturating_sub(total * policy.low_percent / 100);
    let mut candidates: Vec<_> = images
        .iter()
        .filter(|i| !i.pinned)
        .filter(|i| {
            !in_use.contains(i.id.as_str())
                && !i.repo_tags.iter().any(|t| in_use.contains(t.as_str()))
        })
        .filter_map(|i| {
            let (first, last) = usage.images.get(&i.id)?;
            (now.duration_since(*first) >= policy.min_age).then_some((*last, i))
        })
        .collect();
    candidates.sort_by_key(|(last, _)| *last);
    let mut freed = 0;
    for (_, image) in candidates {
        if freed >= target {
            break;
        }
        cri.images
            .remove_image(RemoveImageRequest {
                image: Some(ImageSpec {
                    image: image.id.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        tracing::info!(image = %image.id, size = image.size, "removed an unused image");
        freed += image.size;
    }
    Ok(freed)
}

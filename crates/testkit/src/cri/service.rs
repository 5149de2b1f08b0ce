//! The CRI v1 gRPC services (RuntimeService + ImageService) over [`State`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::{ContainerState, ImageFsInfoResponse};
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::script::OnSigterm;
use super::state::{Started, cri_log_line};
use super::{Call, Shared};

/// The gRPC face of a [`super::FakeRuntime`].
#[derive(Clone)]
pub(crate) struct FakeCri {
    pub shared: Arc<Shared>,
}

type Reply<T> = Result<Response<T>, Status>;

impl FakeCri {
    fn record(&self, call: Call) {
        self.shared.lock().record(call);
    }

    /// Plays a start outside the lock: the log file, then one task (only if
    /// needed) for the timed lines and the scripted exit.
    fn after_start(&self, id: &str, started: Started) {
        if let Some((path, lines)) = &started.log {
            write_log(path, lines);
        }
        if started.timed.is_empty() && started.exit.is_none() {
            return;
        }
        let shared = self.shared.clone();
        let id = id.to_owned();
        let start = Instant::now();
        let Started {
            generation,
            exit,
            timed,
            ..
        } = started;
        tokio::spawn(async move {
            for line in timed {
                if exit.is_some_and(|(after, _)| line.after > after) {
                    break;
                }
                tokio::time::sleep_until(start + line.after).await;
                let due = {
                    let state = shared.lock();
                    state.live_log_path(&id, generation).map(|path| {
                        let text = cri_log_line(state.clock.now_ns(), line.stream, &line.text);
                        (path, text)
                    })
                };
                match due {
                    Some((path, text)) => write_log(&path, &[text]),
                    None => return,
                }
            }
            if let Some((after, code)) = exit {
                tokio::time::sleep_until(start + after).await;
                shared.lock().scripted_exit(&id, generation, code);
            }
        });
    }
}

/// Appends CRI-format lines to `path`, creating it and its directories.
fn write_log(path: &std::path::Path, lines: &[String]) {
    use std::io::Write;
    let result = (|| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for line in lines {
            file.write_all(line.as_bytes())?;
        }
        Ok::<_, std::io::Error>(())
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "fake CRI: writing container log");
    }
}

fn image_name(spec: Option<&cri::ImageSpec>) -> String {
    spec.map(|s| s.image.clone()).unwrap_or_default()
}

#[tonic::async_trait]
impl RuntimeService for FakeCri {
    async fn version(&self, _: Request<cri::VersionRequest>) -> Reply<cri::VersionResponse> {
        self.record(Call::new("Version", "", ""));
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".to_owned(),
            runtime_name: "fake".to_owned(),
            runtime_version: "0.1.0".to_owned(),
            runtime_api_version: "v1".to_owned(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<cri::RunPodSandboxRequest>,
    ) -> Reply<cri::RunPodSandboxResponse> {
        let req = request.into_inner();
        let name = req
            .config
            .as_ref()
            .and_then(|c| c.metadata.as_ref())
            .map(|m| format!("{}/{}", m.namespace, m.name))
            .unwrap_or_default();
        let mut state = self.shared.lock();
        let result = state.run_sandbox(req);
        let id = result.clone().unwrap_or_default();
        state.record(Call::new("RunPodSandbox", &id, &name));
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: result?,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<cri::StopPodSandboxRequest>,
    ) -> Reply<cri::StopPodSandboxResponse> {
        let id = request.into_inner().pod_sandbox_id;
        let mut state = self.shared.lock();
        let call = state.record_sandbox("StopPodSandbox", &id);
        state.record(call);
        state.stop_sandbox(&id)?;
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<cri::RemovePodSandboxRequest>,
    ) -> Reply<cri::RemovePodSandboxResponse> {
        let id = request.into_inner().pod_sandbox_id;
        let mut state = self.shared.lock();
        let call = state.record_sandbox("RemovePodSandbox", &id);
        state.record(call);
        state.remove_sandbox(&id);
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<cri::PodSandboxStatusRequest>,
    ) -> Reply<cri::PodSandboxStatusResponse> {
        let id = request.into_inner().pod_sandbox_id;
        let mut state = self.shared.lock();
        let call = state.record_sandbox("PodSandboxStatus", &id);
        state.record(call);
        let status = state.sandbox_status(&id)?;
        Ok(Response::new(cri::PodSandboxStatusResponse {
            status: Some(status),
            info: Default::default(),
            containers_statuses: Vec::new(),
            timestamp: state.clock.now_ns(),
        }))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<cri::ListPodSandboxRequest>,
    ) -> Reply<cri::ListPodSandboxResponse> {
        let req = request.into_inner();
        let mut state = self.shared.lock();
        state.record(Call::new("ListPodSandbox", "", ""));
        Ok(Response::new(cri::ListPodSandboxResponse {
            items: state.list_sandboxes(req.filter.as_ref()),
        }))
    }

    async fn create_container(
        &self,
        request: Request<cri::CreateContainerRequest>,
    ) -> Reply<cri::CreateContainerResponse> {
        let req = request.into_inner();
        let name = req
            .config
            .as_ref()
            .and_then(|c| c.metadata.as_ref())
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let mut state = self.shared.lock();
        let result = state.create_container(req);
        let id = result.clone().unwrap_or_default();
        state.record(Call::new("CreateContainer", &id, &name));
        Ok(Response::new(cri::CreateContainerResponse {
            container_id: result?,
        }))
    }

    async fn start_container(
        &self,
        request: Request<cri::StartContainerRequest>,
    ) -> Reply<cri::StartContainerResponse> {
        let id = request.into_inner().container_id;
        let started = {
            let mut state = self.shared.lock();
            let call = state.record_container("StartContainer", &id);
            state.record(call);
            state.start_container(&id)?
        };
        self.after_start(&id, started);
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        request: Request<cri::StopContainerRequest>,
    ) -> Reply<cri::StopContainerResponse> {
        let req = request.into_inner();
        let id = req.container_id;
        let (generation, deadline, code, mut exits) = {
            let mut state = self.shared.lock();
            let mut call = state.record_container("StopContainer", &id);
            call.timeout = Some(req.timeout);
            state.record(call);
            let c = state.containers.get(&id).ok_or_else(|| {
                Status::not_found(format!(
                    "an error occurred when try to find container {id:?}: not found"
                ))
            })?;
            if c.state != ContainerState::ContainerRunning {
                return Ok(Response::new(cri::StopContainerResponse {}));
            }
            let timeout = Duration::from_secs(u64::try_from(req.timeout).unwrap_or(0));
            let (after, code) = match c.run.on_sigterm {
                _ if timeout.is_zero() => (Duration::ZERO, 137),
                OnSigterm::Exit { after, code } if after < timeout => (after, code),
                _ => (timeout, 137),
            };
            if after.is_zero() {
                state.exit(&id, code, None, None);
                return Ok(Response::new(cri::StopContainerResponse {}));
            }
            (
                c.generation,
                Instant::now() + after,
                code,
                state.exits.subscribe(),
            )
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    let mut state = self.shared.lock();
                    if state.containers.get(&id).is_some_and(|c| c.generation == generation) {
                        state.exit(&id, code, None, None);
                    }
                    break;
                }
                changed = exits.changed() => {
                    let state = self.shared.lock();
                    let still = state.containers.get(&id).is_some_and(|c| c.generation == generation);
                    if changed.is_err() || !still {
                        break;
                    }
                }
            }
        }
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        request: Request<cri::RemoveContainerRequest>,
    ) -> Reply<cri::RemoveContainerResponse> {
        let id = request.into_inner().container_id;
        let mut state = self.shared.lock();
        let call = state.record_container("RemoveContainer", &id);
        state.record(call);
        state.remove_container(&id);
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        request: Request<cri::ListContainersRequest>,
    ) -> Reply<cri::ListContainersResponse> {
        let req = request.into_inner();
        let mut state = self.shared.lock();
        state.record(Call::new("ListContainers", "", ""));
        Ok(Response::new(cri::ListContainersResponse {
            containers: state.list_containers(req.filter.as_ref()),
        }))
    }

    async fn container_status(
        &self,
        request: Request<cri::ContainerStatusRequest>,
    ) -> Reply<cri::ContainerStatusResponse> {
        let id = request.into_inner().container_id;
        let mut state = self.shared.lock();
        let call = state.record_container("ContainerStatus", &id);
        state.record(call);
        Ok(Response::new(cri::ContainerStatusResponse {
            status: Some(state.container_status(&id)?),
            info: Default::default(),
        }))
    }

    async fn update_container_resources(
        &self,
        _: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Reply<cri::UpdateContainerResourcesResponse> {
        Err(Status::unimplemented("UpdateContainerResources"))
    }

    async fn reopen_container_log(
        &self,
        request: Request<cri::ReopenContainerLogRequest>,
    ) -> Reply<cri::ReopenContainerLogResponse> {
        let id = request.into_inner().container_id;
        let path = {
            let mut state = self.shared.lock();
            let call = state.record_container("ReopenContainerLog", &id);
            state.record(call);
            match state.containers.get(&id) {
                None => {
                    return Err(Status::not_found(format!(
                        "an error occurred when try to find container {id:?}: not found"
                    )));
                }
                Some(c) if c.state != ContainerState::ContainerRunning => {
                    return Err(Status::failed_precondition("container is not running"));
                }
                Some(c) => c.log_path.clone(),
            }
        };
        if !path.is_empty() {
            write_log(std::path::Path::new(&path), &[]);
        }
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(
        &self,
        request: Request<cri::ExecSyncRequest>,
    ) -> Reply<cri::ExecSyncResponse> {
        let req = request.into_inner();
        let result = {
            let mut state = self.shared.lock();
            let mut call = state.record_container("ExecSync", &req.container_id);
            call.timeout = Some(req.timeout);
            call.cmd = req.cmd.clone();
            state.record(call);
            state.exec_for(&req.container_id, &req.cmd)?
        };
        let timeout = Duration::from_secs(u64::try_from(req.timeout).unwrap_or(0));
        if !timeout.is_zero() && result.delay > timeout {
            tokio::time::sleep(timeout).await;
            return Err(Status::deadline_exceeded(format!(
                "command {:?} timed out after {}s",
                req.cmd.join(" "),
                req.timeout
            )));
        }
        if !result.delay.is_zero() {
            tokio::time::sleep(result.delay).await;
        }
        Ok(Response::new(cri::ExecSyncResponse {
            stdout: result.stdout,
            stderr: result.stderr,
            exit_code: result.exit_code,
        }))
    }

    async fn exec(&self, _: Request<cri::ExecRequest>) -> Reply<cri::ExecResponse> {
        Err(Status::unimplemented("Exec"))
    }

    async fn attach(&self, _: Request<cri::AttachRequest>) -> Reply<cri::AttachResponse> {
        Err(Status::unimplemented("Attach"))
    }

    async fn port_forward(
        &self,
        _: Request<cri::PortForwardRequest>,
    ) -> Reply<cri::PortForwardResponse> {
        Err(Status::unimplemented("PortForward"))
    }

    async fn container_stats(
        &self,
        request: Request<cri::ContainerStatsRequest>,
    ) -> Reply<cri::ContainerStatsResponse> {
        let id = request.into_inner().container_id;
        let mut state = self.shared.lock();
        let call = state.record_container("ContainerStats", &id);
        state.record(call);
        Ok(Response::new(cri::ContainerStatsResponse {
            stats: Some(state.container_stats(&id)?),
        }))
    }

    async fn list_container_stats(
        &self,
        request: Request<cri::ListContainerStatsRequest>,
    ) -> Reply<cri::ListContainerStatsResponse> {
        let filter = request.into_inner().filter;
        let mut state = self.shared.lock();
        state.record(Call::new("ListContainerStats", "", ""));
        Ok(Response::new(cri::ListContainerStatsResponse {
            stats: state.list_container_stats(filter.as_ref()),
        }))
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<cri::PodSandboxStatsRequest>,
    ) -> Reply<cri::PodSandboxStatsResponse> {
        let id = request.into_inner().pod_sandbox_id;
        let mut state = self.shared.lock();
        let call = state.record_sandbox("PodSandboxStats", &id);
        state.record(call);
        Ok(Response::new(cri::PodSandboxStatsResponse {
            stats: Some(state.sandbox_stats(&id)?),
        }))
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Reply<cri::ListPodSandboxStatsResponse> {
        let filter = request.into_inner().filter;
        let mut state = self.shared.lock();
        state.record(Call::new("ListPodSandboxStats", "", ""));
        Ok(Response::new(cri::ListPodSandboxStatsResponse {
            stats: state.list_sandbox_stats(filter.as_ref()),
        }))
    }

    async fn update_runtime_config(
        &self,
        request: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Reply<cri::UpdateRuntimeConfigResponse> {
        let cidr = request
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        let mut state = self.shared.lock();
        state.record(Call::new("UpdateRuntimeConfig", "", &cidr));
        state.set_pod_cidr(&cidr)?;
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, _: Request<cri::StatusRequest>) -> Reply<cri::StatusResponse> {
        let mut state = self.shared.lock();
        state.record(Call::new("Status", "", ""));
        let condition = |kind: &str, ok: bool, reason: &str, message: &str| cri::RuntimeCondition {
            r#type: kind.to_owned(),
            status: ok,
            reason: if ok { String::new() } else { reason.to_owned() },
            message: if ok {
                String::new()
            } else {
                message.to_owned()
            },
        };
        Ok(Response::new(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![
                    condition(
                        "RuntimeReady",
                        state.runtime_ready,
                        "FakeRuntimeNotReady",
                        "the fake runtime was set not ready",
                    ),
                    condition(
                        "NetworkReady",
                        state.network_ready,
                        "NetworkPluginNotReady",
                        "Network plugin returns error: cni plugin not initialized",
                    ),
                ],
            }),
            info: Default::default(),
            runtime_handlers: Vec::new(),
            features: None,
        }))
    }

    async fn checkpoint_container(
        &self,
        _: Request<cri::CheckpointContainerRequest>,
    ) -> Reply<cri::CheckpointContainerResponse> {
        Err(Status::unimplemented("CheckpointContainer"))
    }

    type GetContainerEventsStream =
        Pin<Box<dyn Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;

    async fn get_container_events(
        &self,
        _: Request<cri::GetEventsRequest>,
    ) -> Reply<Self::GetContainerEventsStream> {
        let rx = {
            let mut state = self.shared.lock();
            state.record(Call::new("GetContainerEvents", "", ""));
            state.events.subscribe()
        };
        // A lagging receiver skips what it missed, as a slow PLEG would
        // (the kubelet relists periodically anyway).
        let stream =
            tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|e| e.ok().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Reply<cri::ListMetricDescriptorsResponse> {
        Err(Status::unimplemented("ListMetricDescriptors"))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Reply<cri::ListPodSandboxMetricsResponse> {
        Err(Status::unimplemented("ListPodSandboxMetrics"))
    }

    async fn runtime_config(
        &self,
        _: Request<cri::RuntimeConfigRequest>,
    ) -> Reply<cri::RuntimeConfigResponse> {
        self.record(Call::new("RuntimeConfig", "", ""));
        Ok(Response::new(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: cri::CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }
}

#[tonic::async_trait]
impl ImageService for FakeCri {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Reply<cri::ListImagesResponse> {
        let filter = request
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .filter(|s| !s.is_empty());
        let mut state = self.shared.lock();
        state.record(Call::new("ListImages", "", filter.as_deref().unwrap_or("")));
        let images = state
            .images()
            .iter()
            .filter(|i| filter.as_deref().is_none_or(|f| i.matches(f)))
            .map(|i| i.to_cri())
            .collect();
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Reply<cri::ImageStatusResponse> {
        let name = image_name(request.get_ref().image.as_ref());
        let mut state = self.shared.lock();
        state.record(Call::new("ImageStatus", "", &name));
        Ok(Response::new(cri::ImageStatusResponse {
            image: state.image(&name).map(|i| i.to_cri()),
            info: Default::default(),
        }))
    }

    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Reply<cri::PullImageResponse> {
        let name = image_name(request.get_ref().image.as_ref());
        if name.is_empty() {
            return Err(Status::invalid_argument("image spec is required"));
        }
        let delay = {
            let mut state = self.shared.lock();
            state.record(Call::new("PullImage", "", &name));
            state.pull_plan(&name)?
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let image = self.shared.lock().add_image(&name);
        Ok(Response::new(cri::PullImageResponse {
            image_ref: image.id,
        }))
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Reply<cri::RemoveImageResponse> {
        let name = image_name(request.get_ref().image.as_ref());
        let mut state = self.shared.lock();
        state.record(Call::new("RemoveImage", "", &name));
        state.remove_image(&name);
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _: Request<cri::ImageFsInfoRequest>,
    ) -> Reply<ImageFsInfoResponse> {
        let mut state = self.shared.lock();
        state.record(Call::new("ImageFsInfo", "", ""));
        let used: u64 = state.images().iter().map(|i| i.size).sum();
        let count = state.images().len() as u64;
        let now = state.clock.now_ns();
        let usage = |mountpoint: &str, bytes: u64, inodes: u64| cri::FilesystemUsage {
            timestamp: now,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: mountpoint.to_owned(),
            }),
            used_bytes: Some(cri::UInt64Value { value: bytes }),
            inodes_used: Some(cri::UInt64Value { value: inodes }),
        };
        let containers = state.containers.len() as u64;
        Ok(Response::new(ImageFsInfoResponse {
            image_filesystems: vec![usage("/var/lib/fake-cri/images", used, count * 100)],
            container_filesystems: vec![usage(
                "/var/lib/fake-cri/containers",
                containers * 4096,
                containers * 10,
            )],
        }))
    }
}

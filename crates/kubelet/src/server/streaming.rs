//! `/exec`, `/attach` and `/portForward`: what the API server's
//! `pods/exec`, `pods/attach` and `pods/portforward` reach.
//!
//! The kubelet asks the CRI runtime for a streaming URL first (so a missing
//! container is a plain HTTP error), dials it, then accepts kubectl's
//! upgrade in whichever protocol it chose and relays between the two
//! ([`skiff_streaming::relay`]). Upstream kubelet instead proxies the raw
//! connection to the runtime; terminating here lets kubectl 1.30+'s
//! WebSocket v5 work with runtimes that only speak SPDY.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Request, State};
use axum::response::{IntoResponse, Response};
use k8s_cri::v1::{
    AttachRequest, ContainerFilter, ContainerState, ContainerStateValue, ExecRequest,
    ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter, PodSandboxState,
    PodSandboxStateValue, PortForwardRequest,
};
use skiff_streaming::remotecommand::{self, ExecOptions};
use skiff_streaming::runtime::{RuntimeCommand, RuntimePortForward, Streams};
use skiff_streaming::upgrade::{self, Operation, Upgrade};
use skiff_streaming::{idle, portforward, relay};

use super::{App, Peer, text};
use crate::cri::Cri;
use crate::pods::labels;

/// Which pod (and container) a streaming request names.
struct Target {
    namespace: String,
    pod: String,
    uid: Option<String>,
    container: Option<String>,
}

impl Target {
    fn labels(&self) -> HashMap<String, String> {
        let mut l = HashMap::from([
            (labels::POD_NAMESPACE.to_owned(), self.namespace.clone()),
            (labels::POD_NAME.to_owned(), self.pod.clone()),
        ]);
        if let Some(uid) = &self.uid {
            l.insert(labels::POD_UID.to_owned(), uid.clone());
        }
        if let Some(c) = &self.container {
            l.insert(labels::CONTAINER_NAME.to_owned(), c.clone());
        }
        l
    }
}

/// The reasons a request cannot be streamed, as HTTP answers.
struct Refusal(u16, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        text(self.0, self.1)
    }
}

fn forbidden(peer: &Peer, subresource: &str) -> Refusal {
    Refusal(
        403,
        format!(
            "Forbidden (user={}, verb=create, resource=nodes, subresource={subresource})",
            peer.user
        ),
    )
}

fn cri_of(app: &App) -> Result<Cri, Refusal> {
    app.cri
        .clone()
        .ok_or_else(|| Refusal(503, "no container runtime is connected".into()))
}

fn cri_error(what: &str, e: tonic::Status) -> Refusal {
    Refusal(500, format!("{what}: {}", e.message()))
}

/// The running container's id.
async fn container_id(cri: &mut Cri, target: &Target) -> Result<String, Refusal> {
    let request = ListContainersRequest {
        filter: Some(ContainerFilter {
            state: Some(ContainerStateValue {
                state: ContainerState::ContainerRunning as i32,
            }),
            label_selector: target.labels(),
            ..Default::default()
        }),
    };
    let containers = cri
        .runtime
        .list_containers(request)
        .await
        .map_err(|e| cri_error("listing containers", e))?
        .into_inner()
        .containers;
    // The newest attempt, should an old one still run.
    containers
        .into_iter()
        .max_by_key(|c| c.created_at)
        .map(|c| c.id)
        .ok_or_else(|| {
            Refusal(
                404,
                format!(
                    "container not found ({:?})",
                    target.container.as_deref().unwrap_or("")
                ),
            )
        })
}

/// The pod's ready sandbox (port-forward enters its network namespace).
async fn sandbox_id(cri: &mut Cri, target: &Target) -> Result<String, Refusal> {
    let request = ListPodSandboxRequest {
        filter: Some(PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxReady as i32,
            }),
            label_selector: target.labels(),
            ..Default::default()
        }),
    };
    let sandboxes = cri
        .runtime
        .list_pod_sandbox(request)
        .await
        .map_err(|e| cri_error("listing pod sandboxes", e))?
        .into_inner()
        .items;
    sandboxes
        .into_iter()
        .max_by_key(|s| s.created_at)
        .map(|s| s.id)
        .ok_or_else(|| {
            Refusal(
                404,
                format!("pod does not exist ({}/{})", target.namespace, target.pod),
            )
        })
}

fn negotiate(op: Operation, request: &Request) -> Result<Upgrade, Refusal> {
    upgrade::negotiate(op, request.headers()).map_err(|e| Refusal(e.status.as_u16(), e.message))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    Exec,
    Attach,
}

async fn remote_command(
    app: Arc<App>,
    peer: Peer,
    target: Target,
    command: Command,
    mut request: Request,
) -> Result<Response, Refusal> {
    let subresource = match command {
        Command::Exec => "exec",
        Command::Attach => "attach",
    };
    if !peer.may_stream() {
        return Err(forbidden(&peer, subresource));
    }
    let up = negotiate(Operation::RemoteCommand, &request)?;
    let opts = ExecOptions::from_query(request.uri().query().unwrap_or(""));
    if command == Command::Exec && opts.command.is_empty() {
        return Err(Refusal(400, "you must specify at least 1 command".into()));
    }
    if !(opts.stdin || opts.stdout || opts.stderr) {
        return Err(Refusal(
            400,
            "you must specify at least 1 of stdin, stdout, stderr".into(),
        ));
    }
    let mut cri = cri_of(&app)?;
    let id = container_id(&mut cri, &target).await?;
    let streams = Streams {
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
        tty: opts.tty,
    };
    let url = match command {
        Command::Exec => {
            cri.runtime
                .exec(ExecRequest {
                    container_id: id,
                    cmd: opts.command.clone(),
                    tty: opts.tty,
                    stdin: opts.stdin,
                    stdout: opts.stdout,
                    stderr: opts.stderr && !opts.tty,
                })
                .await
                .map_err(|e| cri_error("exec", e))?
                .into_inner()
                .url
        }
        Command::Attach => {
            cri.runtime
                .attach(AttachRequest {
                    container_id: id,
                    stdin: opts.stdin,
                    tty: opts.tty,
                    stdout: opts.stdout,
                    stderr: opts.stderr && !opts.tty,
                })
                .await
                .map_err(|e| cri_error("attach", e))?
                .into_inner()
                .url
        }
    };
    let runtime = RuntimeCommand::connect(&url, streams)
        .await
        .map_err(|e| Refusal(500, e.to_string()))?;
    let on_upgrade = hyper::upgrade::on(&mut request);
    let response = up.response();
    let idle_timeout = app.streaming_idle_timeout;
    tracing::debug!(pod = %target.pod, container = ?target.container, user = %peer.user, subresource, "streaming session");
    tokio::spawn(async move {
        let io = match upgrade::upgraded(on_upgrade).await {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(error = %e, "the client did not complete the upgrade");
                return;
            }
        };
        let (io, activity) = idle::track(io);
        match remotecommand::accept(&up, io, &opts).await {
            Ok(cmd) => {
                tokio::select! {
                    () = relay::remote_command(cmd, runtime) => {}
                    () = activity.idle_for(idle_timeout) => {
                        tracing::info!(?idle_timeout, "closing an idle exec/attach session");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "accepting the client's streams"),
        }
    });
    Ok(response)
}

async fn port_forward(
    app: Arc<App>,
    peer: Peer,
    target: Target,
    mut request: Request,
) -> Result<Response, Refusal> {
    if !peer.may_stream() {
        return Err(forbidden(&peer, "portforward"));
    }
    let up = negotiate(Operation::PortForward, &request)?;
    let query = request.uri().query().unwrap_or("").to_owned();
    let mut cri = cri_of(&app)?;
    let id = sandbox_id(&mut cri, &target).await?;
    let url = cri
        .runtime
        .port_forward(PortForwardRequest {
            pod_sandbox_id: id,
            port: Vec::new(),
        })
        .await
        .map_err(|e| cri_error("port-forward", e))?
        .into_inner()
        .url;
    let runtime = RuntimePortForward::connect(&url)
        .await
        .map_err(|e| Refusal(500, e.to_string()))?;
    let on_upgrade = hyper::upgrade::on(&mut request);
    let response = up.response();
    let idle_timeout = app.streaming_idle_timeout;
    tokio::spawn(async move {
        let io = match upgrade::upgraded(on_upgrade).await {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(error = %e, "the client did not complete the upgrade");
                return;
            }
        };
        let (io, activity) = idle::track(io);
        match portforward::accept(&up, io, &query).await {
            Ok(pf) => {
                tokio::select! {
                    () = relay::port_forward(pf, runtime) => {}
                    () = activity.idle_for(idle_timeout) => {
                        tracing::info!(?idle_timeout, "closing an idle port-forward session");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "accepting the port-forward session"),
        }
    });
    Ok(response)
}

fn answer(result: Result<Response, Refusal>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The path's parts: `namespace`, `pod`, and `uid`/`container` where the
/// route has them.
fn target(mut params: HashMap<String, String>) -> Target {
    Target {
        namespace: params.remove("namespace").unwrap_or_default(),
        pod: params.remove("pod").unwrap_or_default(),
        uid: params.remove("uid"),
        container: params.remove("container"),
    }
}

/// `/exec/{namespace}/{pod}[/{uid}]/{container}`.
pub(super) async fn exec(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    answer(remote_command(app, peer, target(params), Command::Exec, request).await)
}

/// `/attach/{namespace}/{pod}[/{uid}]/{container}`.
pub(super) async fn attach(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    answer(remote_command(app, peer, target(params), Command::Attach, request).await)
}

/// `/portForward/{namespace}/{pod}[/{uid}]`.
pub(super) async fn port_forward_pod(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    answer(port_forward(app, peer, target(params), request).await)
}

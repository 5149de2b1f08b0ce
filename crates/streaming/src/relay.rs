//! Joins a client's session (whatever protocol kubectl chose) to a session
//! at the runtime's streaming server: the kubelet's half of exec, attach
//! and port-forward.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::portforward::{ForwardedConnection, PortForward};
use crate::remotecommand::{ExitStatus, RemoteCommand};
use crate::runtime::{RuntimeCommand, RuntimePortForward};

/// Copies until EOF on `from`, then half-closes `to`.
async fn pump<R, W>(mut from: R, mut to: W) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let n = tokio::io::copy(&mut from, &mut to).await?;
    to.shutdown().await?;
    Ok(n)
}

/// Relays an exec/attach: stdin and terminal resizes to the runtime, its
/// stdout and stderr back, then the runtime's exit status to the client.
/// If the client goes away, the runtime session is closed.
pub async fn remote_command(client: RemoteCommand, mut runtime: RuntimeCommand) {
    let RemoteCommand {
        stdin,
        stdout,
        stderr,
        resize,
        completion,
        ..
    } = client;
    let stdin_task = match (stdin, runtime.stdin.take()) {
        (Some(from), Some(to)) => Some(tokio::spawn(pump(from, to))),
        _ => None,
    };
    let resize_task = match (resize, runtime.resize.take()) {
        (Some(mut events), Some(mut to)) => Some(tokio::spawn(async move {
            while let Some(size) = events.next().await {
                let mut line = serde_json::to_vec(&size).unwrap_or_default();
                line.push(b'\n');
                if to.write_all(&line).await.is_err() {
                    break;
                }
            }
        })),
        _ => None,
    };
    let out = async {
        match (runtime.stdout.take(), stdout) {
            (Some(from), Some(to)) => pump(from, to).await.map(drop),
            _ => Ok(()),
        }
    };
    let err = async {
        match (runtime.stderr.take(), stderr) {
            (Some(from), Some(to)) => pump(from, to).await.map(drop),
            _ => Ok(()),
        }
    };
    let (out, err) = tokio::join!(out, err);
    let exit = match out.and(err) {
        Ok(()) => runtime.exit_status().await,
        Err(e) => {
            tracing::debug!(error = %e, "exec client went away");
            drop(runtime);
            ExitStatus::Error(format!("writing to the client: {e}"))
        }
    };
    // The process is gone: stdin and resizes have nowhere to go.
    if let Some(t) = stdin_task {
        t.abort();
    }
    if let Some(t) = resize_task {
        t.abort();
    }
    if let Err(e) = completion.finish(exit).await {
        tracing::debug!(error = %e, "sending the exit status");
    }
}

/// Relays one forwarded connection: bytes both ways, and any error the
/// runtime reports (e.g. nothing listens on the port) to the client.
async fn forward_one(conn: ForwardedConnection, runtime: &RuntimePortForward) {
    let ForwardedConnection {
        port,
        request_id,
        mut data,
        error,
    } = conn;
    let (mut remote, mut remote_error) = match runtime.open(port, &request_id).await {
        Ok(pair) => pair,
        Err(e) => {
            let _ = error
                .send(&format!(
                    "error forwarding port {port} to the pod's runtime: {e}"
                ))
                .await;
            return;
        }
    };
    // The runtime's verdict goes to the client as soon as it is known,
    // while the data keeps flowing the other way.
    let errors = async {
        let mut buf = Vec::new();
        let _ = remote_error.read_to_end(&mut buf).await;
        if buf.is_empty() {
            let _ = error.close().await;
        } else {
            let _ = error.send(&String::from_utf8_lossy(&buf)).await;
        }
    };
    let copy = tokio::io::copy_bidirectional(&mut data, &mut remote);
    let (copied, ()) = tokio::join!(copy, errors);
    if let Err(e) = copied {
        tracing::debug!(port, error = %e, "port-forward connection ended");
    }
}

/// Relays a port-forward session until the client closes it.
pub async fn port_forward(mut client: PortForward, runtime: RuntimePortForward) {
    let runtime = std::sync::Arc::new(runtime);
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(conn) = client.accept().await {
        let runtime = runtime.clone();
        tasks.spawn(async move { forward_one(conn, &runtime).await });
        while tasks.try_join_next().is_some() {}
    }
    runtime.close();
    tasks.abort_all();
}

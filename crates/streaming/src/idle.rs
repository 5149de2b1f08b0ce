//! The streaming idle timeout (upstream kubelet's
//! `--streaming-connection-idle-timeout`, 4 h by default): a session in
//! which no byte moved either way for that long is closed, so forgotten
//! `kubectl exec` or `port-forward` sessions do not live forever.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Upstream's default idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);

/// When bytes last moved through a [`Tracked`] connection.
#[derive(Clone)]
pub struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last read or write.
    last: Arc<AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Completes once nothing moved for `timeout`.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let deadline = self.last() + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A connection whose reads and writes are recorded in an [`Activity`].
pub struct Tracked<S> {
    inner: S,
    activity: Activity,
}

/// Wraps `io`; the returned [`Activity`] tells when it was last used.
pub fn track<S>(io: S) -> (Tracked<S>, Activity) {
    let activity = Activity {
        start: Instant::now(),
        last: Arc::new(AtomicU64::new(0)),
    };
    (
        Tracked {
            inner: io,
            activity: activity.clone(),
        },
        activity,
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_no_traffic_for_the_timeout() {
        let (a, mut b) = tokio::io::duplex(1024);
        let (mut tracked, activity) = track(a);
        let timeout = Duration::from_secs(60);
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(timeout).await }
        });
        // Traffic every 40 s keeps it alive.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(40)).await;
            b.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            tracked.read_exact(&mut byte).await.unwrap();
            tokio::task::yield_now().await;
            assert!(!idle.is_finished());
        }
        tokio::time::sleep(Duration::from_secs(61)).await;
        tokio::task::yield_now().await;
        assert!(idle.is_finished());
    }
}

//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's log
//! read from the CRI log files containerd writes under
//! `<pod_log_dir>/<namespace>_<pod>_<uid>/<container>/<restartCount>.log`,
//! with upstream's options (`follow`, `previous`, `timestamps`,
//! `tailLines`, `sinceSeconds`, `sinceTime`, `limitBytes`).

use std::collections::{HashMap, VecDeque};
use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cri_log::{Entry, Joiner, rfc3339_nano};
use crate::cri::Cri;

/// How often a followed file is polled for new lines.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often a followed container is checked to be still running.
const RUNNING_CHECK_INTERVAL: Duration = Duration::from_secs(1);
const READ_CHUNK: usize = 64 * 1024;

/// Why the logs cannot be served: an HTTP status and upstream-like text.
#[derive(Debug, PartialEq, Eq)]
pub struct LogError {
    pub status: u16,
    pub message: String,
}

impl LogError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        LogError {
            status,
            message: message.into(),
        }
    }
}

/// Upstream's `PodLogOptions`, as the kubelet reads them from the query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    /// From `sinceSeconds` (relative to now) or `sinceTime`.
    pub since: Option<Timestamp>,
    pub limit_bytes: Option<u64>,
}

fn parse_bool(query: &HashMap<String, String>, key: &str) -> Result<bool, LogError> {
    match query.get(key).map(String::as_str) {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(LogError::new(
            400,
            format!("invalid value {other:?} for {key}: not a boolean"),
        )),
    }
}

fn parse_int(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, LogError> {
    match query.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            LogError::new(
                400,
                format!("invalid value {v:?} for {key}: not an integer"),
            )
        }),
    }
}

impl LogOptions {
    /// Parses and validates the query (upstream's `ValidatePodLogOptions`);
    /// `now` anchors `sinceSeconds`.
    pub fn from_query(query: &HashMap<String, String>, now: Timestamp) -> Result<Self, LogError> {
        let invalid = |m: String| LogError::new(422, m);
        // `tail` is the old name of `tailLines`; -1 means all.
        let mut tail_lines = parse_int(query, "tailLines")?;
        if tail_lines.is_none() {
            tail_lines = parse_int(query, "tail")?.filter(|n| *n != -1);
        }
        let since_seconds = parse_int(query, "sinceSeconds")?;
        let since_time = match query.get("sinceTime").map(String::as_str) {
            None | Some("") => None,
            Some(v) => Some(v.parse::<Timestamp>().map_err(|e| {
                LogError::new(400, format!("invalid value {v:?} for sinceTime: {e}"))
            })?),
        };
        let limit_bytes = parse_int(query, "limitBytes")?;
        if let Some(n) = tail_lines.filter(|n| *n < 0) {
            return Err(invalid(format!(
                "tailLines: Invalid value: {n}: must be greater than or equal to 0"
            )));
        }
        if let Some(n) = limit_bytes.filter(|n| *n < 1) {
            return Err(invalid(format!(
                "limitBytes: Invalid value: {n}: must be greater than 0"
            )));
        }
        if since_seconds.is_some() && since_time.is_some() {
            return Err(invalid(
                "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
            ));
        }
        let since = match since_seconds {
            Some(n) if n < 1 => {
                return Err(invalid(format!(
                    "sinceSeconds: Invalid value: {n}: must be greater than 0"
                )));
            }
            Some(n) => Some(
                now.checked_sub(jiff::SignedDuration::from_secs(n))
                    .unwrap_or(Timestamp::MIN),
            ),
            None => since_time,
        };
        Ok(LogOptions {
            follow: parse_bool(query, "follow")?,
            previous: parse_bool(query, "previous")?,
            timestamps: parse_bool(query, "timestamps")?,
            tail_lines: tail_lines.map(|n| n as u64),
            since,
            limit_bytes: limit_bytes.map(|n| n as u64),
        })
    }
}

/// Which container attempt a log file belongs to (its CRI labels and
/// `metadata.attempt`), for the "still running" check of `follow`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerKey {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub attempt: u32,
}

/// A located log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
    pub key: ContainerKey,
}

/// `<restartCount>.log` files of a container directory, ascending.
fn attempts(dir: &Path) -> Vec<u32> {
    let mut found: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse::<u32>()
                .ok()
        })
        .collect();
    found.sort_unstable();
    found
}

/// Finds the log file of a container: the highest restart count, or the
/// one before with `previous`. Of several directories for the same pod
/// name (a recreated pod whose old logs are not cleaned yet), the newest.
pub fn locate(
    pod_log_dir: &Path,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<LogFile, LogError> {
    let prefix = format!("{namespace}_{pod}_");
    let pod_dir = std::fs::read_dir(pod_log_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let uid = name.strip_prefix(&prefix)?.to_owned();
            let modified = e.metadata().ok()?.modified().ok()?;
            (!uid.is_empty() && !uid.contains('_')).then_some((modified, uid, e.path()))
        })
        .max_by(|a, b| a.0.cmp(&b.0));
    let Some((_, pod_uid, pod_dir)) = pod_dir else {
        return Err(LogError::new(
            404,
            format!("pod \"{pod}\" in namespace \"{namespace}\" does not exist on this node"),
        ));
    };
    let dir = pod_dir.join(container);
    if !dir.is_dir() {
        return Err(LogError::new(
            404,
            format!("container \"{container}\" not found in pod \"{pod}\""),
        ));
    }
    let found = attempts(&dir);
    let attempt = if previous {
        match found.len().checked_sub(2).map(|i| found[i]) {
            Some(a) => a,
            None => {
                return Err(LogError::new(
                    400,
                    format!(
                        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                    ),
                ));
            }
        }
    } else {
        match found.last() {
            Some(a) => *a,
            None => {
                return Err(LogError::new(
                    400,
                    format!("container \"{container}\" in pod \"{pod}\" is waiting to start"),
                ));
            }
        }
    };
    Ok(LogFile {
        path: dir.join(format!("{attempt}.log")),
        key: ContainerKey {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            pod_uid,
            container: container.to_owned(),
            attempt,
        },
    })
}

/// Whether a container is still running (then `follow` waits for more).
#[derive(Clone)]
pub enum RunningCheck {
    /// Asks the CRI runtime: a container with the key's labels and attempt
    /// in state CONTAINER_RUNNING.
    Cri(Box<Cri>),
    /// No runtime: nothing is running (`follow` ends once drained).
    Never,
    /// Any other answer (tests).
    Custom(Arc<dyn Fn(&ContainerKey) -> bool + Send + Sync>),
}

impl RunningCheck {
    pub async fn is_running(&self, key: &ContainerKey) -> bool {
        match self {
            RunningCheck::Never => false,
            RunningCheck::Custom(f) => f(key),
            RunningCheck::Cri(cri) => {
                use k8s_cri::v1::{
                    ContainerFilter, ContainerState, ContainerStateValue, ListContainersRequest,
                };
                let labels: HashMap<String, String> = [
                    ("io.kubernetes.pod.namespace", &key.namespace),
                    ("io.kubernetes.pod.name", &key.pod),
                    ("io.kubernetes.pod.uid", &key.pod_uid),
                    ("io.kubernetes.container.name", &key.container),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect();
                let request = ListContainersRequest {
                    filter: Some(ContainerFilter {
                        state: Some(ContainerStateValue {
                            state: ContainerState::ContainerRunning as i32,
                        }),
                        label_selector: labels,
                        ..Default::default()
                    }),
                };
                match cri.runtime.clone().list_containers(request).await {
                    Ok(answer) => answer.into_inner().containers.iter().any(|c| {
                        c.state == ContainerState::ContainerRunning as i32
                            && c.metadata.as_ref().map(|m| m.attempt) == Some(key.attempt)
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, container = %key.container, pod = %key.pod, "asking the CRI runtime whether a container runs failed; ending the log stream");
                        false
                    }
                }
            }
        }
    }
}

/// Applies `sinceTime`, `timestamps` and `limitBytes` to entries.
struct Writer {
    since: Option<Timestamp>,
    timestamps: bool,
    remaining: Option<u64>,
}

impl Writer {
    fn new(options: &LogOptions) -> Self {
        Writer {
            since: options.since,
            timestamps: options.timestamps,
            remaining: options.limit_bytes,
        }
    }

    fn done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Appends an entry to `out`; false once `limitBytes` is used up.
    fn write(&mut self, entry: &Entry, out: &mut Vec<u8>) -> bool {
        if self.done() {
            return false;
        }
        if self.since.is_some_and(|since| entry.timestamp < since) {
            return true;
        }
        let mut line = Vec::with_capacity(entry.content.len() + 32);
        if self.timestamps {
            line.extend_from_slice(rfc3339_nano(entry.timestamp).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&entry.content);
        if let Some(remaining) = &mut self.remaining {
            let take = (*remaining).min(line.len() as u64) as usize;
            line.truncate(take);
            *remaining -= take as u64;
        }
        out.extend_from_slice(&line);
        !self.done()
    }
}

/// Reads a log file as lines (complete ones only: a line being written is
/// kept until its `\n` arrives), following renames and truncation.
struct Reader {
    path: PathBuf,
    file: tokio::fs::File,
    inode: u64,
    offset: u64,
    pending: Vec<u8>,
}

impl Reader {
    async fn open(path: &Path) -> std::io::Result<Reader> {
        let file = tokio::fs::File::open(path).await?;
        let inode = file.metadata().await?.ino();
        Ok(Reader {
            path: path.to_owned(),
            file,
            inode,
            offset: 0,
            pending: Vec::new(),
        })
    }

    /// Reads one chunk (at most [`READ_CHUNK`] bytes; 0 at the end) and
    /// calls `line` for each line it completes.
    async fn read_chunk(&mut self, mut line: impl FnMut(&[u8])) -> std::io::Result<usize> {
        let mut chunk = vec![0u8; READ_CHUNK];
        let n = self.file.read(&mut chunk).await?;
        self.offset += n as u64;
        let mut data = &chunk[..n];
        while let Some(at) = data.iter().position(|b| *b == b'\n') {
            if self.pending.is_empty() {
                line(&data[..at]);
            } else {
                self.pending.extend_from_slice(&data[..at]);
                line(&self.pending);
                self.pending.clear();
            }
            data = &data[at + 1..];
        }
        self.pending.extend_from_slice(data);
        Ok(n)
    }

    /// After a rename (log rotation) or truncation, starts over on the
    /// file now at the path. True when it switched.
    async fn reopen_if_rotated(&mut self) -> bool {
        let Ok(meta) = tokio::fs::metadata(&self.path).await else {
            return false;
        };
        if meta.ino() != self.inode {
            if let Ok(next) = Reader::open(&self.path).await {
                *self = next;
                return true;
            }
        } else if meta.len() < self.offset && self.file.seek(SeekFrom::Start(0)).await.is_ok() {
            self.offset = 0;
            self.pending.clear();
            return true;
        }
        false
    }
}

/// Streams a container's log into `tx` as `options` ask; ends when done,
/// when the receiver is gone, or at `shutdown`.
pub async fn stream(
    file: LogFile,
    options: LogOptions,
    running: RunningCheck,
    tx: mpsc::Sender<Bytes>,
    shutdown: CancellationToken,
) {
    let mut reader = match Reader::open(&file.path).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(path = %file.path.display(), error = %e, "opening a container log failed");
            return;
        }
    };
    let mut writer = Writer::new(&options);
    let mut joiner = Joiner::default();
    let failed = |e: std::io::Error| {
        tracing::warn!(path = %file.path.display(), error = %e, "reading a container log failed");
    };
    // What is there now. With tailLines, only the last lines are kept.
    if let Some(tail) = options.tail_lines {
        let tail = usize::try_from(tail).unwrap_or(usize::MAX);
        let mut last: VecDeque<Entry> = VecDeque::new();
        let mut keep = |entry: Entry| {
            if tail == 0 {
                return;
            }
            if last.len() == tail {
                last.pop_front();
            }
            last.push_back(entry);
        };
        loop {
            match reader
                .read_chunk(|line| joiner.push(line).into_iter().for_each(&mut keep))
                .await
            {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return failed(e),
            }
        }
        if !options.follow {
            joiner.flush().into_iter().for_each(&mut keep);
        }
        let mut out = Vec::new();
        for entry in last {
            if !writer.write(&entry, &mut out) {
                break;
            }
            if out.len() >= READ_CHUNK && !send(&tx, &mut out).await {
                return;
            }
        }
        if !send(&tx, &mut out).await {
            return;
        }
    } else {
        loop {
            let mut out = Vec::new();
            let read = reader
                .read_chunk(|line| {
                    if let Some(entry) = joiner.push(line) {
                        writer.write(&entry, &mut out);
                    }
                })
                .await;
            if !send(&tx, &mut out).await || writer.done() {
                return;
            }
            match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return failed(e),
            }
        }
        if !options.follow {
            let mut out = Vec::new();
            for entry in joiner.flush() {
                writer.write(&entry, &mut out);
            }
            send(&tx, &mut out).await;
        }
    }
    if !options.follow || writer.done() {
        return;
    }
    // Follow: poll for appended lines until the container stops.
    let mut last_check = Instant::now();
    loop {
        let mut out = Vec::new();
        let read = reader
            .read_chunk(|line| {
                if let Some(entry) = joiner.push(line) {
                    writer.write(&entry, &mut out);
                }
            })
            .await;
        if !send(&tx, &mut out).await || writer.done() {
            return;
        }
        match read {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => return failed(e),
        }
        if reader.reopen_if_rotated().await {
            continue;
        }
        if last_check.elapsed() >= RUNNING_CHECK_INTERVAL {
            last_check = Instant::now();
            if !running.is_running(&file.key).await {
                // Drain what was written before it stopped.
                let mut out = Vec::new();
                while let Ok(n) = reader
                    .read_chunk(|line| {
                        if let Some(entry) = joiner.push(line) {
                            writer.write(&entry, &mut out);
                        }
                    })
                    .await
                {
                    if n == 0 {
                        break;
                    }
                    if !send(&tx, &mut out).await {
                        return;
                    }
                }
                for entry in joiner.flush() {
                    writer.write(&entry, &mut out);
                }
                send(&tx, &mut out).await;
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = tx.closed() => return,
            () = shutdown.cancelled() => return,
        }
    }
}

/// Sends what `out` holds (if anything); false when the client is gone.
async fn send(tx: &mpsc::Sender<Bytes>, out: &mut Vec<u8>) -> bool {
    if out.is_empty() {
        return !tx.is_closed();
    }
    tx.send(Bytes::from(std::mem::take(out))).await.is_ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn now() -> Timestamp {
        "2024-01-01T00:01:00Z".parse().unwrap()
    }

    /// A pod log dir with one container's attempts, each `(attempt, lines)`.
    fn pod_logs(attempts: &[(u32, &str)]) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("default_web_1234-uid").join("app");
        std::fs::create_dir_all(&dir).unwrap();
        for (attempt, lines) in attempts {
            std::fs::write(dir.join(format!("{attempt}.log")), lines).unwrap();
        }
        (root, dir)
    }

    const LOG: &str = "\
2024-01-01T00:00:01.100Z stdout F one
2024-01-01T00:00:02Z stderr F two
this line is garbage
2024-01-01T00:00:03Z stdout P thr
2024-01-01T00:00:04Z stdout F ee
2024-01-01T00:00:05.000000005Z stdout F four
";

    async fn read(root: &Path, q: &[(&str, &str)]) -> Result<String, LogError> {
        let options = LogOptions::from_query(&query(q), now())?;
        let file = locate(root, "default", "web", "app", options.previous)?;
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(stream(
            file,
            options,
            RunningCheck::Never,
            tx,
            CancellationToken::new(),
        ));
        let mut got = Vec::new();
        while let Some(chunk) = rx.recv().await {
            got.extend_from_slice(&chunk);
        }
        task.await.unwrap();
        Ok(String::from_utf8(got).unwrap())
    }

    #[tokio::test]
    async fn whole_log_with_partial_lines_joined() {
        let (root, _) = pod_logs(&[(0, LOG)]);
        assert_eq!(
            read(root.path(), &[]).await.unwrap(),
            "one\ntwo\nthree\nfour\n"
        );
    }

    #[tokio::test]
    async fn timestamps_tail_since_and_limit() {
        let (root, _) = pod_logs(&[(0, LOG)]);
        assert_eq!(
            read(root.path(), &[("timestamps", "true"), ("tailLines", "2")])
                .await
                .unwrap(),
            "2024-01-01T00:00:03Z three\n2024-01-01T00:00:05.000000005Z four\n"
        );
        assert_eq!(read(root.path(), &[("tailLines", "0")]).await.unwrap(), "");
        assert_eq!(
            read(root.path(), &[("sinceTime", "2024-01-01T00:00:02Z")])
                .await
                .unwrap(),
            "two\nthree\nfour\n"
        );
        // now() is 00:01:00: the last 57 seconds start at 00:00:03.
        assert_eq!(
            read(root.path(), &[("sinceSeconds", "57")]).await.unwrap(),
            "three\nfour\n"
        );
        assert_eq!(
            read(root.path(), &[("limitBytes", "6")]).await.unwrap(),
            "one\ntw"
        );
    }

    #[tokio::test]
    async fn big_files_are_read_in_chunks() {
        let mut log = String::new();
        let mut expected = String::new();
        for i in 0..20_000 {
            log.push_str(&format!("2024-01-01T00:00:01Z stdout P line {i} \n"));
            log.push_str("2024-01-01T00:00:01Z stdout F of text\n");
            expected.push_str(&format!("line {i} of text\n"));
        }
        let (root, _) = pod_logs(&[(0, &log)]);
        assert_eq!(read(root.path(), &[]).await.unwrap(), expected);
        assert_eq!(
            read(root.path(), &[("tailLines", "2")]).await.unwrap(),
            "line 19998 of text\nline 19999 of text\n"
        );
    }

    #[tokio::test]
    async fn previous_reads_the_attempt_before() {
        let (root, _) = pod_logs(&[
            (0, "2024-01-01T00:00:01Z stdout F first run\n"),
            (1, "2024-01-01T00:00:02Z stdout F second run\n"),
        ]);
        assert_eq!(read(root.path(), &[]).await.unwrap(), "second run\n");
        assert_eq!(
            read(root.path(), &[("previous", "true")]).await.unwrap(),
            "first run\n"
        );
        let (root, _) = pod_logs(&[(0, LOG)]);
        let e = read(root.path(), &[("previous", "true")])
            .await
            .unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.message,
            "previous terminated container \"app\" in pod \"web\" not found"
        );
    }

    #[test]
    fn missing_pods_and_containers_are_404() {
        let (root, _) = pod_logs(&[(0, LOG)]);
        let e = locate(root.path(), "default", "nope", "app", false).unwrap_err();
        assert_eq!(e.status, 404);
        let e = locate(root.path(), "default", "web", "nope", false).unwrap_err();
        assert_eq!(e.status, 404);
        assert_eq!(e.message, "container \"nope\" not found in pod \"web\"");
        let file = locate(root.path(), "default", "web", "app", false).unwrap();
        assert_eq!(file.key.pod_uid, "1234-uid");
        assert_eq!(file.key.attempt, 0);
    }

    #[test]
    fn options_are_validated() {
        let e = LogOptions::from_query(&query(&[("tailLines", "-2")]), now()).unwrap_err();
        assert_eq!(e.status, 422);
        let e = LogOptions::from_query(&query(&[("limitBytes", "0")]), now()).unwrap_err();
        assert_eq!(e.status, 422);
        let e = LogOptions::from_query(
            &query(&[("sinceSeconds", "1"), ("sinceTime", "2024-01-01T00:00:00Z")]),
            now(),
        )
        .unwrap_err();
        assert_eq!(e.status, 422);
        let e = LogOptions::from_query(&query(&[("follow", "maybe")]), now()).unwrap_err();
        assert_eq!(e.status, 400);
        let o = LogOptions::from_query(&query(&[("tail", "-1")]), now()).unwrap();
        assert_eq!(o.tail_lines, None);
    }

    #[tokio::test]
    async fn follow_streams_appended_lines_until_the_container_stops() {
        let (root, dir) = pod_logs(&[(0, "2024-01-01T00:00:01Z stdout F before\n")]);
        let running = Arc::new(AtomicBool::new(true));
        let check = {
            let running = running.clone();
            RunningCheck::Custom(Arc::new(move |key: &ContainerKey| {
                assert_eq!(key.container, "app");
                running.load(Ordering::SeqCst)
            }))
        };
        let options = LogOptions::from_query(&query(&[("follow", "true")]), now()).unwrap();
        let file = locate(root.path(), "default", "web", "app", false).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(stream(file, options, check, tx, CancellationToken::new()));
        assert_eq!(&rx.recv().await.unwrap()[..], b"before\n");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("0.log"))
            .unwrap();
        // A record written in two pieces, the first without its newline.
        f.write_all(b"2024-01-01T00:00:02Z stdout P hal").unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.write_all(b"f\n2024-01-01T00:00:03Z stdout F way\n")
            .unwrap();
        f.flush().unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"halfway\n");
        // Still running: the stream stays open.
        assert!(
            tokio::time::timeout(Duration::from_millis(1500), rx.recv())
                .await
                .is_err()
        );
        f.write_all(b"2024-01-01T00:00:04Z stderr F last words\n")
            .unwrap();
        running.store(false, Ordering::SeqCst);
        let mut rest = Vec::new();
        while let Some(chunk) = rx.recv().await {
            rest.extend_from_slice(&chunk);
        }
        assert_eq!(rest, b"last words\n");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn follow_reopens_a_rotated_file() {
        let (root, dir) = pod_logs(&[(0, "2024-01-01T00:00:01Z stdout F old\n")]);
        let running = Arc::new(AtomicBool::new(true));
        let check = {
            let running = running.clone();
            RunningCheck::Custom(Arc::new(move |_: &ContainerKey| {
                running.load(Ordering::SeqCst)
            }))
        };
        let options = LogOptions::from_query(&query(&[("follow", "true")]), now()).unwrap();
        let file = locate(root.path(), "default", "web", "app", false).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(stream(file, options, check, tx, CancellationToken::new()));
        assert_eq!(&rx.recv().await.unwrap()[..], b"old\n");
        std::fs::rename(dir.join("0.log"), dir.join("0.log.20240101-000001")).unwrap();
        std::fs::write(dir.join("0.log"), "2024-01-01T00:00:02Z stdout F new\n").unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"new\n");
        running.store(false, Ordering::SeqCst);
        assert!(rx.recv().await.is_none());
        task.await.unwrap();
    }
}

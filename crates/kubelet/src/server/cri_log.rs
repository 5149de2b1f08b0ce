//! The CRI log format containerd writes for each container:
//! `2016-10-06T00:17:09.669794202Z stdout F some text`, one record a line;
//! tag `P` marks a partial line that the next record of the same stream
//! continues, `F` a full (last) piece.

use jiff::Timestamp;

/// Which output of the container a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One record of a CRI log file (one line of the file).
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: Timestamp,
    pub stream: Stream,
    /// Tag `P`: the line continues in the next record of this stream.
    pub partial: bool,
    pub content: &'a [u8],
}

/// Parses one line of a CRI log file (without its `\n`); `None` when it is
/// malformed (such lines are skipped, as upstream does).
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (timestamp, rest) = split_space(line)?;
    let timestamp: Timestamp = std::str::from_utf8(timestamp).ok()?.parse().ok()?;
    let (stream, rest) = split_space(rest)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    // The tag field may carry more tags after ':' (forward compatibility);
    // the content after it may be empty (`... stdout F` with or without the
    // separating space).
    let (tags, content) = match split_space(rest) {
        Some(split) => split,
        None => (rest, &b""[..]),
    };
    let partial = match tags.split(|b| *b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record {
        timestamp,
        stream,
        partial,
        content,
    })
}

fn split_space(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = s.iter().position(|b| *b == b' ')?;
    Some((&s[..at], &s[at + 1..]))
}

/// One logical line of a container's output: partial records joined, with
/// the timestamp of its first piece; `content` ends with `\n` unless the
/// line was never completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub timestamp: Timestamp,
    pub stream: Stream,
    pub content: Vec<u8>,
}

/// Joins records into entries, per stream (stdout and stderr pieces may
/// interleave).
#[derive(Default)]
pub struct Joiner {
    stdout: Option<Entry>,
    stderr: Option<Entry>,
}

impl Joiner {
    /// Feeds one line of the file; returns the entry it completes, if any.
    pub fn push(&mut self, line: &[u8]) -> Option<Entry> {
        let record = parse(line)?;
        let pending = match record.stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let entry = pending.get_or_insert_with(|| Entry {
            timestamp: record.timestamp,
            stream: record.stream,
            content: Vec::new(),
        });
        entry.content.extend_from_slice(record.content);
        if record.partial {
            return None;
        }
        entry.content.push(b'\n');
        pending.take()
    }

    /// Lines never completed (the container stopped mid-line), oldest first.
    pub fn flush(&mut self) -> Vec<Entry> {
        let mut rest: Vec<Entry> = [self.stdout.take(), self.stderr.take()]
            .into_iter()
            .flatten()
            .collect();
        rest.sort_by_key(|e| e.timestamp);
        rest
    }
}

/// Go's `time.RFC3339Nano` (trailing zeros of the fraction dropped), how
/// the kubelet prefixes lines with `timestamps=true`.
pub fn rfc3339_nano(t: Timestamp) -> String {
    let seconds = t.as_second();
    let nanos = t.subsec_nanosecond();
    let whole = Timestamp::from_second(seconds).unwrap_or(t);
    let base = whole.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let fraction = format!("{:09}", nanos.unsigned_abs());
    format!("{base}.{}Z", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_parsed() {
        let r = parse(b"2016-10-06T00:17:09.669794202Z stdout F some text").unwrap();
        assert_eq!(r.stream, Stream::Stdout);
        assert!(!r.partial);
        assert_eq!(r.content, b"some text");
        assert_eq!(
            r.timestamp,
            "2016-10-06T00:17:09.669794202Z"
                .parse::<Timestamp>()
                .unwrap()
        );
        let r = parse(b"2016-10-06T00:17:09Z stderr P  two  spaces ").unwrap();
        assert_eq!(r.stream, Stream::Stderr);
        assert!(r.partial);
        assert_eq!(r.content, b" two  spaces ");
        assert_eq!(
            parse(b"2016-10-06T00:17:09Z stdout F").unwrap().content,
            b""
        );
        assert_eq!(
            parse(b"2016-10-06T00:17:09Z stdout F ").unwrap().content,
            b""
        );
        assert!(parse(b"2016-10-06T00:17:09Z stdout F:x y").is_some());
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for bad in [
            &b""[..],
            b"garbage",
            b"not-a-time stdout F x",
            b"2016-10-06T00:17:09Z stdin F x",
            b"2016-10-06T00:17:09Z stdout X x",
            b"2016-10-06T00:17:09Z stdout",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn partial_records_are_joined_per_stream() {
        let mut j = Joiner::default();
        assert_eq!(j.push(b"2024-01-01T00:00:01Z stdout P hel"), None);
        let err = j.push(b"2024-01-01T00:00:02Z stderr F oops").unwrap();
        assert_eq!(err.stream, Stream::Stderr);
        assert_eq!(err.content, b"oops\n");
        assert_eq!(j.push(b"junk"), None);
        let out = j.push(b"2024-01-01T00:00:03Z stdout F lo").unwrap();
        assert_eq!(out.content, b"hello\n");
        assert_eq!(out.timestamp.as_second(), 1_704_067_201);
        assert_eq!(j.push(b"2024-01-01T00:00:04Z stdout P unfinished"), None);
        let rest = j.flush();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].content, b"unfinished");
    }

    #[test]
    fn timestamps_print_like_go_rfc3339_nano() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            rfc3339_nano(t("2016-10-06T00:17:09.669794202Z")),
            "2016-10-06T00:17:09.669794202Z"
        );
        assert_eq!(
            rfc3339_nano(t("2016-10-06T00:17:09.5Z")),
            "2016-10-06T00:17:09.5Z"
        );
        assert_eq!(
            rfc3339_nano(t("2016-10-06T00:17:09Z")),
            "2016-10-06T00:17:09Z"
        );
    }
}

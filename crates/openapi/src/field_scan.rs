//! One pass over a JSON request body that finds duplicate keys and, given a
//! compiled schema, unknown fields, in document order, as upstream's strict
//! decoder (sigs.k8s.io/json) reports them.
//!
//! serde_json silently keeps the last of duplicate keys, so duplicates can
//! only be seen in the bytes. The scanner does not build values; it only
//! tracks the path (`spec.template.spec.containers[0].image`).
//! Malformed JSON ends the scan early: the caller's own parse reports it.

use crate::field_validation::FieldProblem;
use crate::schema_tree::{NodeId, SchemaTree};
use std::borrow::Cow;
use std::collections::HashSet;

/// Upstream keeps at most this many strict decoding errors.
const MAX_PROBLEMS: usize = 100;
/// Deeper documents are not scanned further (serde_json refuses them
/// anyway).
const MAX_DEPTH: usize = 512;

/// What the value being scanned is checked against.
#[derive(Clone, Copy)]
enum Target {
    /// A compiled schema node.
    Node(NodeId),
    /// Free-form: only duplicates are looked for.
    Free,
    /// Inside an unknown field of a built-in kind: upstream's typed decoder
    /// skips it, reporting nothing inside.
    Skip,
}

/// Problems found so far: deduplicated by message and capped, like
/// upstream.
#[derive(Default)]
pub(crate) struct Problems {
    pub list: Vec<FieldProblem>,
}

impl Problems {
    fn push(&mut self, problem: FieldProblem) {
        if self.list.len() < MAX_PROBLEMS && !self.list.contains(&problem) {
            self.list.push(problem);
        }
    }
}

pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    tree: Option<&'a SchemaTree>,
    /// Custom resources: every duplicate counts, also inside unknown
    /// fields (upstream finds them before pruning).
    custom: bool,
    path: String,
    pub problems: Problems,
}

/// Malformed JSON or too deep: stop scanning.
struct Stop;

impl<'a> Scanner<'a> {
    /// A scanner for `bytes`, checking against `root` of `tree` if given.
    pub(crate) fn new(bytes: &'a [u8], tree: Option<&'a SchemaTree>, custom: bool) -> Self {
        Scanner {
            bytes,
            pos: 0,
            tree,
            custom,
            path: String::new(),
            problems: Problems::default(),
        }
    }

    /// Scans the document; `root` is the kind's node (`None`: duplicates
    /// only).
    pub(crate) fn scan(&mut self, root: Option<NodeId>) {
        let target = match (root, self.tree) {
            (Some(id), Some(_)) => Target::Node(id),
            _ => Target::Free,
        };
        let _ = self.value(target, 0);
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Stop> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Stop)
        }
    }

    fn value(&mut self, target: Target, depth: usize) -> Result<(), Stop> {
        if depth > MAX_DEPTH {
            return Err(Stop);
        }
        self.skip_ws();
        match self.peek().ok_or(Stop)? {
            b'{' => self.object(target, depth),
            b'[' => self.array(target, depth),
            b'"' => self.string().map(drop),
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.pos += 1;
                }
                Ok(())
            }
        }
    }

    fn array(&mut self, target: Target, depth: usize) -> Result<(), Stop> {
        self.pos += 1;
        let item = match target {
            Target::Node(id) => match self.tree.map(|t| t.node(id)) {
                Some(crate::schema_tree::Node::Array(item)) => Target::Node(*item),
                _ => Target::Free,
            },
            other => other,
        };
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        let mut index = 0usize;
        loop {
            let len = self.path.len();
            push_index(&mut self.path, index);
            let result = self.value(item, depth + 1);
            self.path.truncate(len);
            result?;
            self.skip_ws();
            match self.peek().ok_or(Stop)? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Stop),
            }
            index += 1;
        }
    }

    fn object(&mut self, target: Target, depth: usize) -> Result<(), Stop> {
        self.pos += 1;
        let mut seen = Seen::default();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(Stop);
            }
            let key = self.string()?;
            self.expect(b':')?;
            let len = self.path.len();
            push_key(&mut self.path, &key);
            let (child, unknown) = match target {
                Target::Node(id) => match self.tree.map(|t| t.node(id).field(&key)) {
                    Some(Ok(Some(child))) => (Target::Node(child), false),
                    Some(Err(())) => (
                        if self.custom {
                            Target::Free
                        } else {
                            Target::Skip
                        },
                        true,
                    ),
                    _ => (Target::Free, false),
                },
                other => (other, false),
            };
            let check_duplicates = match target {
                Target::Skip => false,
                // Upstream's typed decoder only notices repeated known
                // fields; the unstructured one (custom resources) all.
                _ => self.custom || !unknown,
            };
            if check_duplicates && !seen.insert(key) {
                self.problems
                    .push(FieldProblem::Duplicate(self.path.clone()));
            }
            if unknown {
                self.problems.push(FieldProblem::Unknown(self.path.clone()));
            }
            let result = self.value(child, depth + 1);
            self.path.truncate(len);
            result?;
            self.skip_ws();
            match self.peek().ok_or(Stop)? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Stop),
            }
        }
    }

    /// Reads a string starting at its opening quote; borrowed unless it
    /// has escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, Stop> {
        let bytes = self.bytes;
        self.pos += 1;
        let start = self.pos;
        loop {
            match bytes.get(self.pos).ok_or(Stop)? {
                b'"' => {
                    let raw = &bytes[start..self.pos];
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(raw));
                }
                b'\\' => break,
                _ => self.pos += 1,
            }
        }
        // Has escapes: decode from the start.
        let mut out: Vec<u8> = bytes[start..self.pos].to_vec();
        loop {
            match *bytes.get(self.pos).ok_or(Stop)? {
                b'"' => {
                    self.pos += 1;
                    return Ok(Cow::Owned(String::from_utf8_lossy(&out).into_owned()));
                }
                b'\\' => {
                    let esc = *bytes.get(self.pos + 1).ok_or(Stop)?;
                    self.pos += 2;
                    let decoded = match esc {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(Stop),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(decoded.encode_utf8(&mut buf).as_bytes());
                }
                b => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// The character of a `\uXXXX` escape (the `\u` already read),
    /// combining surrogate pairs; lone surrogates become U+FFFD as in Go.
    fn unicode_escape(&mut self) -> Result<char, Stop> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first)
            && self.bytes.get(self.pos) == Some(&b'\\')
            && self.bytes.get(self.pos + 1) == Some(&b'u')
        {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xDC00..0xE000).contains(&second) {
                let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.pos = save;
        }
        Ok(char::from_u32(first).unwrap_or('\u{FFFD}'))
    }

    fn hex4(&mut self) -> Result<u32, Stop> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(Stop)?;
        let text = std::str::from_utf8(digits).map_err(|_| Stop)?;
        let value = u32::from_str_radix(text, 16).map_err(|_| Stop)?;
        self.pos += 4;
        Ok(value)
    }
}

/// Keys seen in one object: a short list, a set once it grows (large
/// maps such as ConfigMap data).
#[derive(Default)]
struct Seen<'a> {
    few: Vec<Cow<'a, str>>,
    many: HashSet<Cow<'a, str>>,
}

impl<'a> Seen<'a> {
    /// Adds the key; false if it was there already.
    fn insert(&mut self, key: Cow<'a, str>) -> bool {
        if !self.many.is_empty() {
            return self.many.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() > 16 {
            self.many.extend(self.few.drain(..));
        }
        true
    }
}

/// Appends `.key` (or `key` at the top) to a field path.
pub(crate) fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// Appends `[index]` to a field path.
pub(crate) fn push_index(path: &mut String, index: usize) {
    use std::fmt::Write;
    let _ = write!(path, "[{index}]");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicates(json: &str) -> Vec<FieldProblem> {
        let mut scanner = Scanner::new(json.as_bytes(), None, false);
        scanner.scan(None);
        scanner.problems.list
    }

    #[test]
    fn escaped_keys_are_decoded() {
        assert_eq!(
            duplicates(r#"{"a\u0062":1,"ab":2,"\ud83d\ude00":1,"😀":2}"#),
            [
                FieldProblem::Duplicate("ab".into()),
                FieldProblem::Duplicate("😀".into())
            ]
        );
    }

    #[test]
    fn large_objects_switch_to_a_set() {
        let keys: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let json = format!("{{{},\"k3\":0,\"k39\":1}}", keys.join(","));
        assert_eq!(
            duplicates(&json),
            [
                FieldProblem::Duplicate("k3".into()),
                FieldProblem::Duplicate("k39".into())
            ]
        );
    }

    #[test]
    fn malformed_json_stops_quietly() {
        assert_eq!(
            duplicates(r#"{"a":1,"a":2,"b":"#),
            [FieldProblem::Duplicate("a".into())]
        );
        assert!(duplicates("").is_empty());
        assert!(duplicates(&"[".repeat(10_000)).is_empty());
    }
}

//! `pattern`: a compiled regular expression that remembers its source.
//!
//! Upstream uses Go's RE2 engine; the `regex` crate speaks nearly the same
//! dialect and, like RE2, guarantees linear-time matching, so a hostile
//! pattern cannot stall the server. A size limit bounds compile memory too.

use std::fmt;

/// Compiled-program size limit for one pattern (upstream has none, but a
/// CRD is user input and this keeps memory bounded).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// A schema's `pattern`, matched unanchored like Go's `MatchString`.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source`; the error is the compiler's message.
    pub fn new(source: &str) -> Result<Pattern, String> {
        regex::RegexBuilder::new(source)
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map(|regex| Pattern {
                source: source.to_string(),
                regex,
            })
            .map_err(|e| e.to_string())
    }

    /// The pattern as written in the schema (upstream prints it in errors).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `s` contains a match.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unanchored_like_go() {
        let p = Pattern::new(r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$").unwrap();
        assert!(p.is_match("* * * * */5"));
        assert!(!p.is_match("abc"));
        assert!(Pattern::new("b").unwrap().is_match("abc"));
        assert!(Pattern::new("(").is_err());
    }
}

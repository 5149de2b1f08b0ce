//! Label selectors: upstream's string syntax (`a=b,c in (x,y),!d`) and
//! `metav1.LabelSelector` objects, compiled to one matcher.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use super::SelectorError;
use crate::names;

/// How a requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `a=b`, `a==b`, `a in (b,c)`: present with one of the values.
    In,
    /// `a!=b`, `a notin (b,c)`: absent, or present with none of the values.
    NotIn,
    /// `a`: present.
    Exists,
    /// `!a`: absent.
    DoesNotExist,
    /// `a>5`: present, integer, greater.
    GreaterThan,
    /// `a<5`: present, integer, smaller.
    LessThan,
}

/// One condition on one label key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The comparison.
    pub operator: Operator,
    /// The values compared against (sorted, deduplicated).
    pub values: BTreeSet<String>,
    /// Whether the requirement was written with `=`/`==`/`!=` (kept only for
    /// printing it back the way it was written).
    exact: Option<&'static str>,
}

impl Requirement {
    /// Whether the labels satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.operator {
            Operator::In => v.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => v.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => v.is_some(),
            Operator::DoesNotExist => v.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = v.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(want) = self
                    .values
                    .iter()
                    .next()
                    .and_then(|s| s.parse::<i64>().ok())
                else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }

    fn new(
        key: &str,
        operator: Operator,
        values: BTreeSet<String>,
        exact: Option<&'static str>,
    ) -> Result<Self, String> {
        let msgs = names::qualified_name(key);
        if !msgs.is_empty() {
            return Err(format!("key: Invalid value: {key:?}: {}", msgs.join("; ")));
        }
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    return Err(
                        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
                            .to_string(),
                    );
                }
                if exact.is_some() && values.len() != 1 {
                    return Err("values: Invalid value: exact-match compatible operators must have exactly one value".to_string());
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    return Err("values: Invalid value: values set must be empty for exists and does not exist".to_string());
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err("values: Invalid value: for 'Gt', 'Lt' operators, exactly one value is required".to_string());
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        return Err(format!(
                            "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                        ));
                    }
                }
                return Ok(Requirement {
                    key: key.to_string(),
                    operator,
                    values,
                    exact,
                });
            }
        }
        for (i, v) in values.iter().enumerate() {
            let msgs = names::label_value(v);
            if !msgs.is_empty() {
                return Err(format!(
                    "values[{i}]: Invalid value: {v:?}: {}",
                    msgs.join("; ")
                ));
            }
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
            exact,
        })
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals: Vec<&str> = self.values.iter().map(String::as_str).collect();
        match self.operator {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, vals.join("")),
            Operator::LessThan => write!(f, "{}<{}", self.key, vals.join("")),
            Operator::In | Operator::NotIn => match self.exact {
                Some(op) => write!(f, "{}{}{}", self.key, op, vals.join("")),
                None => {
                    let word = if self.operator == Operator::In {
                        "in"
                    } else {
                        "notin"
                    };
                    write!(f, "{} {} ({})", self.key, word, vals.join(","))
                }
            },
        }
    }
}

/// A compiled label selector: all requirements must hold. Also represents
/// "matches nothing" (a null `metav1.LabelSelector`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// The selector that matches no object (what a null selector means).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the `labelSelector=` query string syntax. Errors carry
    /// upstream's messages (`unable to parse requirement: ...`,
    /// `found 'x', expected: ...`).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let tokens = lex(s).map_err(SelectorError::Parse)?;
        let mut p = Parser { tokens, pos: 0 };
        let mut reqs = p.parse().map_err(SelectorError::Parse)?;
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// Compiles a `metav1.LabelSelector` object (`matchLabels`,
    /// `matchExpressions`). `null` matches nothing; `{}` matches everything
    /// (upstream's `LabelSelectorAsSelector`).
    pub fn from_json(v: &Value) -> Result<Self, SelectorError> {
        let obj = match v {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(o) => o,
            _ => {
                return Err(SelectorError::Parse(
                    "label selector must be an object".to_string(),
                ));
            }
        };
        let mut reqs = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let Some(v) = v.as_str() else {
                        return Err(SelectorError::Parse(format!(
                            "matchLabels[{k}]: value must be a string"
                        )));
                    };
                    let vals = BTreeSet::from([v.to_string()]);
                    reqs.push(
                        Requirement::new(k, Operator::In, vals, Some("="))
                            .map_err(SelectorError::Parse)?,
                    );
                }
            }
            Some(_) => {
                return Err(SelectorError::Parse(
                    "matchLabels must be an object".to_string(),
                ));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for e in exprs {
                    reqs.push(expression(e)?);
                }
            }
            Some(_) => {
                return Err(SelectorError::Parse(
                    "matchExpressions must be a list".to_string(),
                ));
            }
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector selects everything (no requirements).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

fn expression(e: &Value) -> Result<Requirement, SelectorError> {
    let err = |m: &str| SelectorError::Parse(m.to_string());
    let key = e
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| err("matchExpressions: key must be a string"))?;
    let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
    let mut values = BTreeSet::new();
    match e.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::Array(vs)) => {
            for v in vs {
                let s = v
                    .as_str()
                    .ok_or_else(|| err("matchExpressions: values must be strings"))?;
                values.insert(s.to_string());
            }
        }
        Some(_) => return Err(err("matchExpressions: values must be a list")),
    }
    let operator = match op {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(SelectorError::Parse(format!(
                "{other:?} is not a valid label selector operator"
            )));
        }
    };
    Requirement::new(key, operator, values, None).map_err(SelectorError::Parse)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    In,
    NotIn,
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
}

impl Tok {
    fn literal(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::In => "in".into(),
            Tok::NotIn => "notin".into(),
            Tok::Bang => "!".into(),
            Tok::Eq => "=".into(),
            Tok::DoubleEq => "==".into(),
            Tok::NotEq => "!=".into(),
            Tok::Gt => ">".into(),
            Tok::Lt => "<".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::Comma => ",".into(),
            Tok::End => String::new(),
        }
    }

    /// In value positions the keywords are plain identifiers.
    fn as_value(&self) -> Tok {
        match self {
            Tok::In | Tok::NotIn => Tok::Ident(self.literal()),
            t => t.clone(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (tok, n) = match (c, next) {
                ('!', Some('=')) => (Tok::NotEq, 2),
                ('=', Some('=')) => (Tok::DoubleEq, 2),
                ('!', _) => (Tok::Bang, 1),
                ('=', _) => (Tok::Eq, 1),
                ('(', _) => (Tok::Open, 1),
                (')', _) => (Tok::Close, 1),
                (',', _) => (Tok::Comma, 1),
                ('>', _) => (Tok::Gt, 1),
                ('<', _) => (Tok::Lt, 1),
                _ => return Err(format!("error expected: keyword found '{c}'")),
            };
            out.push(tok);
            i += n;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident(word),
            });
        }
    }
    out.push(Tok::End);
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Tok {
        self.tokens.get(self.pos).cloned().unwrap_or(Tok::End)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            match self.peek().as_value() {
                Tok::Ident(_) | Tok::Bang => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    match self.next().as_value() {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let t = self.peek().as_value();
                            if !matches!(t, Tok::Ident(_) | Tok::Bang) {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.literal()
                                ));
                            }
                        }
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.literal()
                            ));
                        }
                    }
                }
                Tok::End => return Ok(reqs),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut tok = self.next().as_value();
        let negated = tok == Tok::Bang;
        if negated {
            tok = self.next().as_value();
        }
        let Tok::Ident(key) = tok else {
            return Err(format!("found '{}', expected: identifier", tok.literal()));
        };
        // upstream validates the key here with an empty field path, which
        // Go prints as `<nil>`; clients see exactly that text
        let msgs = names::qualified_name(&key);
        if !msgs.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {key:?}: {}",
                msgs.join("; ")
            ));
        }
        let after = self.peek().as_value();
        if negated || matches!(after, Tok::End | Tok::Comma) {
            let op = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Requirement::new(&key, op, BTreeSet::new(), None);
        }
        let op_tok = self.next();
        let (op, exact) = match op_tok {
            Tok::Eq => (Operator::In, Some("=")),
            Tok::DoubleEq => (Operator::In, Some("==")),
            Tok::NotEq => (Operator::NotIn, Some("!=")),
            Tok::In => (Operator::In, None),
            Tok::NotIn => (Operator::NotIn, None),
            Tok::Gt => (Operator::GreaterThan, None),
            Tok::Lt => (Operator::LessThan, None),
            t => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.literal()
                ));
            }
        };
        let values = if exact.is_none() && matches!(op, Operator::In | Operator::NotIn) {
            self.set_values()?
        } else {
            self.exact_value()?
        };
        Requirement::new(&key, op, values, exact)
    }

    fn exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        match self.peek().as_value() {
            Tok::End | Tok::Comma => Ok(BTreeSet::from([String::new()])),
            _ => match self.next().as_value() {
                Tok::Ident(v) => Ok(BTreeSet::from([v])),
                t => Err(format!("found '{}', expected: identifier", t.literal())),
            },
        }
    }

    fn set_values(&mut self) -> Result<BTreeSet<String>, String> {
        let t = self.next().as_value();
        if t != Tok::Open {
            return Err(format!("found '{}' expected: '('", t.literal()));
        }
        match self.peek().as_value() {
            Tok::Ident(_) | Tok::Comma => {
                let s = self.identifier_list()?;
                let t = self.next().as_value();
                if t != Tok::Close {
                    return Err(format!("found '{}', expected: ')'", t.literal()));
                }
                Ok(s)
            }
            Tok::Close => {
                self.next();
                Ok(BTreeSet::from([String::new()]))
            }
            t => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                t.literal()
            )),
        }
    }

    fn identifier_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut s = BTreeSet::new();
        loop {
            match self.next().as_value() {
                Tok::Ident(v) => {
                    s.insert(v);
                    match self.peek().as_value() {
                        Tok::Comma => continue,
                        Tok::Close => return Ok(s),
                        t => {
                            return Err(format!("found '{}', expected: ',' or ')'", t.literal()));
                        }
                    }
                }
                Tok::Comma => {
                    if s.is_empty() {
                        s.insert(String::new());
                    }
                    match self.peek().as_value() {
                        Tok::Close => {
                            s.insert(String::new());
                            return Ok(s);
                        }
                        Tok::Comma => {
                            self.next();
                            s.insert(String::new());
                        }
                        _ => {}
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        t.literal()
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        match LabelSelector::parse(s) {
            Ok(x) => x,
            Err(e) => panic!("parse {s:?}: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(x) => panic!("{s:?} parsed as {x}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn equality_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web").matches(&l));
        assert!(!sel("app!=web").matches(&l));
        assert!(sel("app!=db").matches(&l));
        assert!(sel("missing!=x").matches(&l));
        assert!(!sel("missing=x").matches(&l));
        assert!(sel("app=web,tier=front").matches(&l));
        assert!(!sel("app=web,tier=back").matches(&l));
    }

    #[test]
    fn set_operators_and_existence() {
        let l = labels(&[("env", "prod")]);
        assert!(sel("env in (prod, dev)").matches(&l));
        assert!(!sel("env in (dev)").matches(&l));
        assert!(sel("env notin (dev,qa)").matches(&l));
        assert!(!sel("env notin (prod)").matches(&l));
        assert!(sel("other notin (prod)").matches(&l));
        assert!(sel("env").matches(&l));
        assert!(!sel("other").matches(&l));
        assert!(sel("!other").matches(&l));
        assert!(!sel("!env").matches(&l));
        assert!(sel("  env  =  prod ,  ! other ").matches(&l));
        // keywords are ordinary values in value position
        assert!(sel("x in (in,notin)").matches(&labels(&[("x", "in")])));
    }

    #[test]
    fn empty_values() {
        assert!(sel("a=").matches(&labels(&[("a", "")])));
        assert!(!sel("a=").matches(&labels(&[("a", "x")])));
        assert!(sel("a in ()").matches(&labels(&[("a", "")])));
        assert!(sel("").is_empty());
        assert!(sel("").matches(&labels(&[])));
    }

    #[test]
    fn numeric_comparisons() {
        let l = labels(&[("n", "5")]);
        assert!(sel("n>3").matches(&l));
        assert!(!sel("n<3").matches(&l));
        assert!(!sel("m>3").matches(&l));
        assert!(err("n>x").contains("the value must be an integer"));
    }

    #[test]
    fn syntax_errors_use_upstream_messages() {
        assert_eq!(
            err("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(
            err(",a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert!(err("-a=b").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of"
        ));
        assert!(err("app.kubernetes_io/name=x").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"app.kubernetes_io/name\": prefix part a lowercase RFC 1123 subdomain"
        ));
        assert!(err("a=-b").starts_with(
            "unable to parse requirement: values[0]: Invalid value: \"-b\": a valid label must be"
        ));
        assert!(err("!a=b").contains("found '=', expected: ',' or 'end of string'"));
    }

    #[test]
    fn display_round_trips() {
        let s = sel("b in (y,x),a!=1,!c,d");
        assert_eq!(s.to_string(), "a!=1,b in (x,y),!c,d");
        assert_eq!(sel(&s.to_string()), s);
    }

    #[test]
    fn from_json_label_selector() {
        let s = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "qa"]},
                {"key": "tmp", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["z1"]}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.matches(&labels(&[("app", "web"), ("env", "qa"), ("tier", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "qa")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "qa"),
            ("tier", "x"),
            ("tmp", "1")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "qa"),
            ("tier", "x"),
            ("zone", "z1")
        ])));
        assert!(!s.is_empty());
    }

    #[test]
    fn from_json_null_empty_and_errors() {
        let l = labels(&[("a", "b")]);
        assert!(!LabelSelector::from_json(&Value::Null).is_ok_and(|s| s.matches(&l)));
        assert!(LabelSelector::from_json(&json!({})).is_ok_and(|s| s.matches(&l) && s.is_empty()));
        let e = LabelSelector::from_json(
            &json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}),
        );
        assert_eq!(
            e,
            Err(SelectorError::Parse(
                "\"Foo\" is not a valid label selector operator".into()
            ))
        );
        assert!(
            LabelSelector::from_json(
                &json!({"matchExpressions": [{"key": "a", "operator": "In"}]})
            )
            .is_err()
        );
        assert!(
            LabelSelector::from_json(
                &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
            )
            .is_err()
        );
        assert!(LabelSelector::from_json(&json!({"matchLabels": {"a": 1}})).is_err());
        assert!(LabelSelector::from_json(&json!("x")).is_err());
    }
}

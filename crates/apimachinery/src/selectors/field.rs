//! Field selectors: `fieldSelector=a=b,c!=d`, with upstream's per-kind list
//! of selectable fields and how each is read from an object.

use std::fmt;

use serde_json::Value;

use super::SelectorError;

/// One `field=value` (or `field!=value`) term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// The field path, e.g. `spec.nodeName`.
    pub field: String,
    /// The (unescaped) value compared against.
    pub value: String,
    /// `true` for `!=`.
    pub negated: bool,
}

/// A parsed field selector: every term must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// Kind-specific selectable fields (beyond `metadata.name` and
/// `metadata.namespace`), as upstream's registries define them. `None`
/// means the kind has only the two metadata fields.
pub fn supported_fields(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    let fields: &'static [&'static str] = match (group, kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Secret") => &["type"],
        ("", "Namespace") => &["status.phase"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Service") => &["spec.clusterIP", "spec.type"],
        ("", "ReplicationController") | ("apps", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        ("certificates.k8s.io", "CertificateSigningRequest") => &["spec.signerName"],
        _ => return None,
    };
    Some(fields)
}

/// The value of a selectable field of `obj`, rendered as upstream does
/// (numbers and booleans as text, missing fields as their Go zero value).
/// `None` if the field is not selectable for the kind.
pub fn field_value(group: &str, kind: &str, field: &str, obj: &Value) -> Option<String> {
    if field != "metadata.name"
        && field != "metadata.namespace"
        && !supported_fields(group, kind).is_some_and(|f| f.contains(&field))
    {
        return None;
    }
    let value = match (kind, field) {
        ("Event", "source") => lookup(obj, "source.component"),
        ("Pod", "status.podIP") => lookup(obj, "status.podIP").or_else(|| {
            obj.pointer("/status/podIPs/0/ip")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        // upstream maps the selector name onto `status.succeeded`
        ("Job", "status.successful") => lookup(obj, "status.succeeded"),
        // upstream accepts the label but never fills it in
        ("Pod", "status.podIPs") => None,
        _ => lookup(obj, field),
    };
    let zero = match field {
        "spec.hostNetwork" | "spec.unschedulable" => "false",
        "status.replicas" | "status.successful" => "0",
        _ => "",
    };
    Some(value.unwrap_or_else(|| zero.to_string()))
}

fn lookup(obj: &Value, dotted: &str) -> Option<String> {
    let mut cur = obj;
    for part in dotted.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl FieldSelector {
    /// Parses the `fieldSelector=` syntax: comma-separated `f=v`, `f==v`,
    /// `f!=v`; `\,`, `\=` and `\\` escape inside values.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(&part) else {
                return Err(SelectorError::Parse(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            terms.push(FieldTerm {
                field: lhs.to_string(),
                value: unescape(rhs)?,
                negated: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Checks every field is selectable for the kind; the error text is
    /// what upstream returns in the 400 response.
    pub fn validate_for(&self, group: &str, kind: &str) -> Result<(), SelectorError> {
        for t in &self.terms {
            let f = t.field.as_str();
            if f == "metadata.name" || f == "metadata.namespace" {
                continue;
            }
            match supported_fields(group, kind) {
                Some(list) if list.contains(&f) => {}
                Some(_) => {
                    return Err(SelectorError::UnsupportedField(format!(
                        "field label not supported: {f}"
                    )));
                }
                None => {
                    return Err(SelectorError::UnsupportedField(format!(
                        "{f:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether the object is selected. Fields the kind does not support
    /// read as empty (call [`validate_for`](Self::validate_for) first).
    pub fn matches(&self, group: &str, kind: &str, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let have = field_value(group, kind, &t.field, obj).unwrap_or_default();
            (have == t.value) != t.negated
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, sorted as written.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// The value `field` must equal, if the selector pins it with `=`
    /// (lets the server turn `metadata.name=x` into a single get).
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                let op = if t.negated { "!=" } else { "=" };
                format!("{}{}{}", t.field, op, escape(&t.value))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

/// Splits on commas not escaped by a backslash.
fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Finds the first operator (`!=`, `==`, `=`) in a term.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

fn unescape(v: &str) -> Result<String, SelectorError> {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                Some(n) => {
                    return Err(SelectorError::Parse(format!(
                        "invalid field selector: invalid escape sequence: \\{n}"
                    )));
                }
                None => {
                    return Err(SelectorError::Parse(
                        "invalid field selector: invalid escape sequence: \\".to_string(),
                    ));
                }
            },
            ',' | '=' => {
                return Err(SelectorError::Parse(format!(
                    "invalid field selector: unescaped character in value: {}",
                    u32::from(c)
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fs(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler", "serviceAccountName": "default"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.42.0.5"}], "nominatedNodeName": "n2"}
        })
    }

    #[test]
    fn operators_and_conjunction() {
        let p = pod();
        assert!(fs("metadata.name=web").matches("", "Pod", &p));
        assert!(fs("metadata.name==web").matches("", "Pod", &p));
        assert!(!fs("metadata.name!=web").matches("", "Pod", &p));
        assert!(fs("metadata.namespace!=kube-system,status.phase=Running").matches("", "Pod", &p));
        assert!(!fs("metadata.namespace=default,status.phase=Pending").matches("", "Pod", &p));
        assert!(fs("").matches("", "Pod", &p));
        assert!(fs("").is_empty());
    }

    #[test]
    fn pod_fields_and_zero_values() {
        let p = pod();
        for (sel, want) in [
            ("spec.nodeName=n1", true),
            ("spec.restartPolicy=Always", true),
            ("spec.schedulerName=default-scheduler", true),
            ("spec.serviceAccountName=default", true),
            ("spec.hostNetwork=false", true),
            ("status.podIP=10.42.0.5", true),
            ("status.nominatedNodeName=n2", true),
            ("spec.nodeName=", false),
        ] {
            assert_eq!(fs(sel).matches("", "Pod", &p), want, "{sel}");
        }
        let unscheduled = json!({"metadata": {"name": "x"}, "spec": {}});
        assert!(fs("spec.nodeName=").matches("", "Pod", &unscheduled));
        assert!(fs("spec.hostNetwork=true").matches(
            "",
            "Pod",
            &json!({"spec": {"hostNetwork": true}})
        ));
    }

    #[test]
    fn other_kinds() {
        let ev = json!({"involvedObject": {"kind": "Pod", "name": "web", "uid": "u1"}, "reason": "Started", "source": {"component": "kubelet"}, "reportingComponent": "kubelet", "type": "Normal"});
        assert!(fs("involvedObject.kind=Pod,involvedObject.name=web,involvedObject.uid=u1,reason=Started,source=kubelet,type=Normal,reportingComponent=kubelet").matches("", "Event", &ev));
        assert!(fs("type=kubernetes.io/tls").matches(
            "",
            "Secret",
            &json!({"type": "kubernetes.io/tls"})
        ));
        assert!(fs("status.phase=Active").matches(
            "",
            "Namespace",
            &json!({"status": {"phase": "Active"}})
        ));
        assert!(fs("spec.unschedulable=false").matches("", "Node", &json!({"spec": {}})));
        assert!(fs("spec.unschedulable=true").matches(
            "",
            "Node",
            &json!({"spec": {"unschedulable": true}})
        ));
        assert!(fs("status.replicas=3").matches(
            "apps",
            "ReplicaSet",
            &json!({"status": {"replicas": 3}})
        ));
        assert!(fs("status.replicas=0").matches("", "ReplicationController", &json!({})));
        assert!(fs("status.successful=1").matches(
            "batch",
            "Job",
            &json!({"status": {"succeeded": 1}})
        ));
        assert!(fs("spec.signerName=x/y").matches(
            "certificates.k8s.io",
            "CertificateSigningRequest",
            &json!({"spec": {"signerName": "x/y"}})
        ));
        assert!(fs("spec.clusterIP!=None").matches(
            "",
            "Service",
            &json!({"spec": {"clusterIP": "10.43.0.1"}})
        ));
        assert!(!fs("spec.clusterIP!=None").matches(
            "",
            "Service",
            &json!({"spec": {"clusterIP": "None"}})
        ));
    }

    #[test]
    fn unsupported_fields_give_upstream_errors() {
        assert_eq!(
            fs("status.hostIP=1.2.3.4").validate_for("", "Pod"),
            Err(SelectorError::UnsupportedField(
                "field label not supported: status.hostIP".into()
            ))
        );
        assert_eq!(
            fs("foo.bar=baz").validate_for("networking.k8s.io", "Ingress"),
            Err(SelectorError::UnsupportedField(
                "\"foo.bar\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"".into()
            ))
        );
        assert!(
            fs("metadata.name=a,spec.nodeName=b")
                .validate_for("", "Pod")
                .is_ok()
        );
        assert!(
            fs("metadata.namespace=a")
                .validate_for("apps", "Deployment")
                .is_ok()
        );
        assert!(
            fs("spec.nodeName=a")
                .validate_for("apps", "Deployment")
                .is_err()
        );
        assert!(
            fs("status.replicas=1")
                .validate_for("apps", "ReplicaSet")
                .is_ok()
        );
    }

    #[test]
    fn syntax_errors_and_escapes() {
        assert_eq!(
            FieldSelector::parse("abc"),
            Err(SelectorError::Parse(
                "invalid selector: 'abc'; can't understand 'abc'".into()
            ))
        );
        assert!(FieldSelector::parse("a=b\\x").is_err());
        assert_eq!(
            FieldSelector::parse("a=b=c"),
            Err(SelectorError::Parse(
                "invalid field selector: unescaped character in value: 61".into()
            ))
        );
        let s = fs("metadata.name=a\\,b");
        assert_eq!(s.terms().len(), 1);
        assert_eq!(s.exact_value("metadata.name"), Some("a,b"));
        assert!(s.matches("", "Pod", &json!({"metadata": {"name": "a,b"}})));
        assert_eq!(s.to_string(), "metadata.name=a\\,b");
        assert_eq!(fs("b!=1,a=2").to_string(), "a=2,b!=1");
    }
}

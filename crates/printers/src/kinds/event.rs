//! Events (`core/v1` and `events.k8s.io/v1`): `LAST SEEN`, `TYPE`,
//! `REASON`, `OBJECT`, `MESSAGE`, and the wide subobject, source, first
//! seen, count and name.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::Printer;
use crate::column::{Column, NAME};
use crate::duration::since;
use crate::value::{at, int_at, name, non_empty, opt_int, str_at, time_at};

const COLUMNS: &[Column] = &[
    Column::string("Last Seen", "How long ago the event was last observed."),
    Column::string("Type", "Normal or Warning."),
    Column::string("Reason", "Short machine-readable reason for the event."),
    Column::string("Object", "The object the event is about."),
    Column::string("Subobject", "The part of the object the event is about.").wide(),
    Column::string("Source", "The component that reported the event.").wide(),
    Column::string("Message", "Human-readable description of the event."),
    Column::string("First Seen", "How long ago the event was first observed.").wide(),
    Column::string("Count", "How many times the event occurred.").wide(),
    NAME.wide(),
];

pub(crate) const CORE: Printer = Printer::new(COLUMNS, core_cells);
pub(crate) const EVENTS_V1: Printer = Printer::new(COLUMNS, events_v1_cells);

fn core_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    cells(ev, now)
}

/// `events.k8s.io/v1` renames most fields; map them back to the core shape
/// upstream prints from.
fn events_v1_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let renames = [
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("reportingController", "reportingComponent"),
    ];
    let mut core: Map<String, Value> = ev.as_object().cloned().unwrap_or_default();
    for (from, to) in renames {
        let value = core.remove(from);
        core.remove(to);
        if let Some(v) = value {
            core.insert(to.to_owned(), v);
        }
    }
    cells(&Value::Object(core), now)
}

fn cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let first_seen = match time_at(ev, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(ev, &["eventTime"]), now),
    };
    let mut last_seen = match time_at(ev, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let count = match at(ev, &["series"]) {
        Some(series) => {
            last_seen = since(time_at(series, &["lastObservedTime"]), now);
            int_at(series, &["count"])
        }
        None => match opt_int(ev, &["count"]).unwrap_or(0) {
            0 => 1,
            n => n,
        },
    };
    let kind = str_at(ev, &["involvedObject", "kind"]).to_lowercase();
    let target = match non_empty(ev, &["involvedObject", "name"]) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let component = non_empty(ev, &["source", "component"])
        .unwrap_or_else(|| str_at(ev, &["reportingComponent"]));
    let instance =
        non_empty(ev, &["source", "host"]).unwrap_or_else(|| str_at(ev, &["reportingInstance"]));
    let source = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last_seen.into(),
        str_at(ev, &["type"]).into(),
        str_at(ev, &["reason"]).into(),
        target.into(),
        str_at(ev, &["involvedObject", "fieldPath"]).into(),
        source.into(),
        str_at(ev, &["message"]).trim().into(),
        first_seen.into(),
        count.into(),
        name(ev).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-06-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn core_event() {
        let ev = json!({
            "metadata": {"name": "web-0.17d"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "type": "Warning",
            "message": "Back-off restarting failed container\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-06-01T11:00:00Z", "lastTimestamp": "2024-06-01T11:58:00Z",
            "count": 12
        });
        assert_eq!(
            core_cells(&ev, now()),
            vec![
                json!("2m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-0"),
                json!("spec.containers{app}"),
                json!("kubelet, node-1"),
                json!("Back-off restarting failed container"),
                json!("60m"),
                json!(12),
                json!("web-0.17d")
            ]
        );
    }

    #[test]
    fn new_style_event_with_series() {
        let ev = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node"},
            "reportingComponent": "scheduler",
            "eventTime": "2024-06-01T11:00:00.123456Z",
            "series": {"count": 4, "lastObservedTime": "2024-06-01T11:59:30.000000Z"}
        });
        let r = core_cells(&ev, now());
        assert_eq!(r[0], json!("30s"));
        assert_eq!(r[3], json!("node"));
        assert_eq!(r[5], json!("scheduler"));
        // 59m59.88s: truncated, as upstream does.
        assert_eq!(r[7], json!("59m"));
        assert_eq!(r[8], json!(4));
    }

    #[test]
    fn events_k8s_io_shape() {
        let ev = json!({
            "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"},
            "note": "Pulled image", "reason": "Pulled", "type": "Normal",
            "eventTime": "2024-06-01T11:59:00.000000Z",
            "reportingController": "kubelet", "reportingInstance": "node-1"
        });
        let r = events_v1_cells(&ev, now());
        assert_eq!(r[0], json!("60s"));
        assert_eq!(r[3], json!("pod/p"));
        assert_eq!(r[6], json!("Pulled image"));
        assert_eq!(r[5], json!("kubelet, node-1"));
        assert_eq!(r[8], json!(1));
    }
}

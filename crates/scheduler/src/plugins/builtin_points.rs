//! Plugins that only mark a point as served by the runtime itself:
//! PrioritySort (the queue orders by priority, then arrival) and
//! DefaultBinder (`POST pods/<name>/binding`).

use crate::framework::{ClusterEvent, ExtensionPoint, Plugin};

pub struct PrioritySort;

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        "PrioritySort"
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        &[ExtensionPoint::QueueSort]
    }

    fn events(&self) -> &'static [ClusterEvent] {
        &[]
    }
}

pub struct DefaultBinder;

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        "DefaultBinder"
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        &[ExtensionPoint::Bind]
    }

    fn events(&self) -> &'static [ClusterEvent] {
        &[]
    }
}

//! Column definitions (`metav1.TableColumnDefinition`).

use serde_json::{Value, json};

/// One column of a Table. `priority` 1 columns are shown only by
/// `kubectl get -o wide`; the server always sends their cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) format: &'static str,
    pub(crate) description: &'static str,
    pub(crate) priority: i32,
}

impl Column {
    const fn new(name: &'static str, kind: &'static str, description: &'static str) -> Self {
        Column {
            name,
            kind,
            format: "",
            description,
            priority: 0,
        }
    }

    /// A column whose cells are strings.
    pub(crate) const fn string(name: &'static str, description: &'static str) -> Self {
        Self::new(name, "string", description)
    }

    /// A column whose cells are JSON integers.
    pub(crate) const fn integer(name: &'static str, description: &'static str) -> Self {
        Self::new(name, "integer", description)
    }

    /// A column whose cells are JSON booleans.
    pub(crate) const fn boolean(name: &'static str, description: &'static str) -> Self {
        Self::new(name, "boolean", description)
    }

    /// A column whose cells are RFC 3339 timestamps.
    pub(crate) const fn date(name: &'static str, description: &'static str) -> Self {
        Self::new(name, "date", description)
    }

    /// Only shown with `-o wide`.
    pub(crate) const fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }

    /// Marks the column holding the object's name (`format: name`).
    pub(crate) const fn named(mut self) -> Self {
        self.format = "name";
        self
    }

    /// The wire form; every field is always present, as upstream sends it.
    pub(crate) fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const NAME_DESCRIPTION: &str =
    "The object's name, unique within its namespace (or cluster, for cluster-scoped kinds).";
const CREATED_DESCRIPTION: &str =
    "When the server created the object (metadata.creationTimestamp, RFC 3339, UTC).";

/// The `NAME` column every printer starts with.
pub(crate) const NAME: Column = Column::string("Name", NAME_DESCRIPTION).named();
/// The `AGE` column: time since creation.
pub(crate) const AGE: Column = Column::string("Age", CREATED_DESCRIPTION);
/// `AGE` as custom resources print it (type `date`).
pub(crate) const AGE_DATE: Column = Column::date("Age", CREATED_DESCRIPTION);
/// `CREATED AT` of the generic default table.
pub(crate) const CREATED_AT: Column = Column::date("Created At", CREATED_DESCRIPTION);
/// Wide `CONTAINERS` of workload kinds.
pub(crate) const CONTAINERS: Column =
    Column::string("Containers", "Names of the containers in the pod template.").wide();
/// Wide `IMAGES` of workload kinds.
pub(crate) const IMAGES: Column =
    Column::string("Images", "Images of the containers in the pod template.").wide();

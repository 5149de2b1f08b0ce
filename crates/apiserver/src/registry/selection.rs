//! Which objects a list or watch selects: namespace, name, label and field
//! selectors.

use serde_json::Value;
use skiff_apimachinery::selectors::{FieldSelector, LabelSelector};

use super::Query;
use crate::object;
use crate::resources::{Name, ResourceInfo};
use crate::status::ApiError;

pub struct Selection {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
    /// A watch of one object (`fieldSelector=metadata.name=x` or a name path).
    name: Option<String>,
    group: Name,
    kind: Name,
}

impl Selection {
    pub fn from_query(
        r: &ResourceInfo,
        query: &Query,
        name: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels =
            match query.get("labelSelector").filter(|s| !s.trim().is_empty()) {
                Some(s) => Some(LabelSelector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
                None => None,
            };
        let fields = match query.get("fieldSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let f =
                    FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                f.validate_for(&r.group, &r.kind)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(f)
            }
            None => None,
        };
        Ok(Selection {
            labels,
            fields,
            name: name.map(str::to_owned),
            group: r.group.clone(),
            kind: r.kind.clone(),
        })
    }

    /// Whether anything narrows the list (then remainingItemCount is unknown).
    pub fn is_filtering(&self) -> bool {
        self.labels.is_some() || self.fields.is_some() || self.name.is_some()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(name) = &self.name
            && object::name(obj) != Some(name.as_str())
        {
            return false;
        }
        if let Some(labels) = &self.labels
            && !labels.matches(&object::labels(obj))
        {
            return false;
        }
        if let Some(fields) = &self.fields
            && !fields.matches(&self.group, &self.kind, obj)
        {
            return false;
        }
        true
    }
}

//! What the documents describe: one [`ResourceSpec`] per served resource.

use std::fmt;

/// A subresource that gets its own paths in the documents.
///
/// Only the two subresources clients address with whole objects are
/// modelled; the others (`log`, `exec`, `binding`, ...) carry no schema that
/// kubectl validates against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subresource {
    /// `/status`: the same kind, written by controllers.
    Status,
    /// `/scale`: an `autoscaling/v1` `Scale` view of a replicated resource.
    Scale,
}

impl Subresource {
    /// The path segment, as in `.../deployments/{name}/scale`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
        }
    }
}

impl fmt::Display for Subresource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One resource the API server serves, as the documents describe it.
///
/// Kept deliberately plain (no k8s-openapi types) so that custom resources
/// can be described from a CustomResourceDefinition at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceSpec {
    /// API group, `""` for the core group.
    pub group: String,
    /// API version within the group, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Plural resource name used in paths, e.g. `configmaps`.
    pub plural: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Subresources with paths of their own.
    pub subresources: Vec<Subresource>,
}

impl ResourceSpec {
    /// The group-version path the v3 index is keyed by: `api/v1` for the
    /// core group, `apis/<group>/<version>` otherwise.
    pub fn gv_path(&self) -> String {
        gv_path(&self.group, &self.version)
    }

    /// The URL prefix of the group-version, e.g. `/apis/apps/v1`.
    pub(crate) fn url_prefix(&self) -> String {
        format!("/{}", self.gv_path())
    }

    /// `apiVersion` as written in objects: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// See [`ResourceSpec::gv_path`].
pub(crate) fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

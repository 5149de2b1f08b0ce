//! What a request asks to do, as the authorizer sees it.

use crate::user::UserInfo;

/// A request to authorize, mirroring upstream's `authorizer.Attributes`.
/// Empty strings mean "not set" (cluster scope, no name, core group), as
/// upstream does, so the forbidden messages come out the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    /// Kubernetes verb for resource requests (get, list, watch, create, ...);
    /// lowercase HTTP method for non-resource requests.
    pub verb: String,
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// False for non-resource URLs such as `/healthz` or `/api`.
    pub resource_request: bool,
    pub path: String,
}

impl Attributes {
    /// A cluster-scoped, unnamed resource request; refine with the builders.
    pub fn resource(user: UserInfo, verb: &str, api_group: &str, resource: &str) -> Self {
        Self {
            user,
            verb: verb.to_string(),
            api_group: api_group.to_string(),
            resource: resource.to_string(),
            resource_request: true,
            ..Self::default()
        }
    }

    /// A request for a non-resource URL such as `/healthz`.
    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Self {
        Self {
            user,
            verb: verb.to_string(),
            path: path.to_string(),
            ..Self::default()
        }
    }

    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_string();
        self
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.to_string();
        self
    }

    pub fn with_version(mut self, version: &str) -> Self {
        self.api_version = version.to_string();
        self
    }

    /// `resource/subresource`, the form rules name subresources in.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

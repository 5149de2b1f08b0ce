//! The REST operations of a resource, in a form independent of the OpenAPI
//! version; [`crate::v2`] and [`crate::v3`] render them.
//!
//! Paths and operation ids follow upstream
//! (`/api/v1/namespaces/{namespace}/configmaps`, `createCoreV1NamespacedConfigMap`),
//! and every write operation lists `fieldValidation`: kubectl looks for it
//! on the PATCH operation of a kind to decide that the server validates.

use crate::definitions::{DELETE_OPTIONS, PATCH, SCALE, STATUS, WATCH_EVENT};
use crate::resource::{ResourceSpec, Subresource};
use serde_json::Value;

/// HTTP method of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Put,
    Post,
    Delete,
    Patch,
}

impl Method {
    pub(crate) fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Patch => "patch",
        }
    }
}

/// Where a parameter goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum In {
    Path,
    Query,
}

/// JSON type of a (non-body) parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamType {
    String,
    Integer,
    Boolean,
}

impl ParamType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
        }
    }
}

/// A path or query parameter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Param {
    pub name: &'static str,
    pub location: In,
    pub ty: ParamType,
    pub description: &'static str,
}

impl Param {
    pub(crate) fn required(&self) -> bool {
        self.location == In::Path
    }
}

const fn query(name: &'static str, ty: ParamType, description: &'static str) -> Param {
    Param {
        name,
        location: In::Query,
        ty,
        description,
    }
}

const PRETTY: Param = query(
    "pretty",
    ParamType::String,
    "If 'true', the output is pretty printed.",
);
const NAME: Param = Param {
    name: "name",
    location: In::Path,
    ty: ParamType::String,
    description: "name of the object",
};
const NAMESPACE: Param = Param {
    name: "namespace",
    location: In::Path,
    ty: ParamType::String,
    description: "object name and auth scope, such as for teams and projects",
};

const DRY_RUN: Param = query(
    "dryRun",
    ParamType::String,
    "When present, modifications are not persisted. The only valid value is All.",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    ParamType::String,
    "Name of the actor making the change, recorded in managedFields.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    ParamType::String,
    "How the server treats unknown or duplicate fields: Ignore, Warn or Strict.",
);
const FORCE: Param = query(
    "force",
    ParamType::Boolean,
    "Apply requests only: take over fields owned by other managers.",
);

const WRITE: [Param; 3] = [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
const PATCH_PARAMS: [Param; 4] = [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];

const DELETE: [Param; 5] = [
    DRY_RUN,
    query(
        "gracePeriodSeconds",
        ParamType::Integer,
        "Seconds before the object is deleted; zero deletes immediately.",
    ),
    query(
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        ParamType::Boolean,
        "Delete objects that cannot be read from storage (dangerous).",
    ),
    query(
        "orphanDependents",
        ParamType::Boolean,
        "Deprecated: use propagationPolicy.",
    ),
    query(
        "propagationPolicy",
        ParamType::String,
        "Garbage collection of dependents: Orphan, Background or Foreground.",
    ),
];

const LIST: [Param; 10] = [
    query(
        "allowWatchBookmarks",
        ParamType::Boolean,
        "Ask for BOOKMARK watch events.",
    ),
    query(
        "continue",
        ParamType::String,
        "Continue token of a previous paged list.",
    ),
    query(
        "fieldSelector",
        ParamType::String,
        "Select objects by fields.",
    ),
    query(
        "labelSelector",
        ParamType::String,
        "Select objects by labels.",
    ),
    query(
        "limit",
        ParamType::Integer,
        "Maximum number of objects in one page.",
    ),
    query(
        "resourceVersion",
        ParamType::String,
        "Which version of the collection to serve or watch from.",
    ),
    query(
        "resourceVersionMatch",
        ParamType::String,
        "How resourceVersion is applied: Exact or NotOlderThan.",
    ),
    query(
        "sendInitialEvents",
        ParamType::Boolean,
        "Start a watch with synthetic ADDED events for the current state.",
    ),
    query(
        "timeoutSeconds",
        ParamType::Integer,
        "Time limit of the list or watch call.",
    ),
    query(
        "watch",
        ParamType::Boolean,
        "Watch for changes instead of listing.",
    ),
];

/// The request body of an operation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Body {
    /// A whole object of the given definition (create, replace).
    Object(String),
    /// A patch document in one of the patch content types.
    Patch,
    /// Optional `DeleteOptions`.
    DeleteOptions,
}

/// One response of an operation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Response {
    pub code: &'static str,
    pub description: &'static str,
    /// Definition name of the body, if any.
    pub schema: Option<String>,
}

/// What the response bodies are encoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Produces {
    Object,
    List,
    Watch,
}

impl Produces {
    pub(crate) fn media_types(self) -> &'static [&'static str] {
        match self {
            Produces::Object => &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ],
            Produces::List | Produces::Watch => &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
                "application/json;stream=watch",
                "application/vnd.kubernetes.protobuf;stream=watch",
            ],
        }
    }
}

/// One operation of a path.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Operation {
    pub method: Method,
    pub id: String,
    pub description: String,
    pub tag: String,
    /// `x-kubernetes-action`: get, list, post, put, patch, delete,
    /// deletecollection, watch, watchlist.
    pub action: &'static str,
    /// `x-kubernetes-group-version-kind` of the operation.
    pub gvk: Value,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    pub responses: Vec<Response>,
    pub produces: Produces,
    /// Content types a PATCH accepts.
    pub patch_types: &'static [&'static str],
}

/// One path with its operations.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PathSpec {
    pub path: String,
    pub params: Vec<Param>,
    pub operations: Vec<Operation>,
}

const PATCH_TYPES_BUILTIN: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
/// Custom resources have no Go struct to drive a strategic merge.
const PATCH_TYPES_CUSTOM: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
];

/// A resource as the path generator needs it.
pub(crate) struct Target<'a> {
    pub spec: &'a ResourceSpec,
    /// Definition name of the kind.
    pub definition: &'a str,
    /// Definition name of the kind's list.
    pub list_definition: &'a str,
    /// Whether strategic merge patch is accepted (built-in kinds only).
    pub strategic_merge: bool,
}

/// `CoreV1`, `AppsV1`, `RbacAuthorizationV1`, `ComExampleStableV1` ...:
/// the group-version part of upstream's operation ids.
fn id_infix(group: &str, version: &str) -> String {
    let group = if group.is_empty() {
        "core"
    } else {
        group.strip_suffix(".k8s.io").unwrap_or(group)
    };
    let mut out = String::new();
    for part in group.split(['.', '-']).chain(std::iter::once(version)) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// `core_v1`, `apps_v1`, `rbacAuthorization_v1`: upstream's tags.
fn tag(group: &str, version: &str) -> String {
    let infix = id_infix(group, version);
    let without_version = &infix[..infix.len().saturating_sub(version.len())];
    let mut chars = without_version.chars();
    let mut out = String::new();
    if let Some(first) = chars.next() {
        out.extend(first.to_lowercase());
        out.push_str(chars.as_str());
    }
    format!("{out}_{version}")
}

fn responses(ok: &str, created: bool, accepted: bool) -> Vec<Response> {
    let mut out = vec![Response {
        code: "200",
        description: "OK",
        schema: Some(ok.to_owned()),
    }];
    if created {
        out.push(Response {
            code: "201",
            description: "Created",
            schema: Some(ok.to_owned()),
        });
    }
    if accepted {
        out.push(Response {
            code: "202",
            description: "Accepted",
            schema: Some(ok.to_owned()),
        });
    }
    out.push(Response {
        code: "401",
        description: "Unauthorized",
        schema: None,
    });
    out
}

/// Every path of the resource, with its subresources.
pub(crate) fn paths(target: &Target<'_>) -> Vec<PathSpec> {
    let spec = target.spec;
    let kind = &spec.kind;
    let infix = id_infix(&spec.group, &spec.version);
    let tag = tag(&spec.group, &spec.version);
    let gvk = crate::definitions::gvk(&spec.group, &spec.version, kind);
    let prefix = spec.url_prefix();
    let (scope_path, scoped, scope_params): (String, &str, Vec<Param>) = if spec.namespaced {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", spec.plural),
            "Namespaced",
            vec![NAMESPACE],
        )
    } else {
        (format!("{prefix}/{}", spec.plural), "", vec![])
    };
    let patch_types = if target.strategic_merge {
        PATCH_TYPES_BUILTIN
    } else {
        PATCH_TYPES_CUSTOM
    };
    let op = |method, id: String, description: String, action, gvk: &Value| Operation {
        method,
        id,
        description,
        tag: tag.clone(),
        action,
        gvk: gvk.clone(),
        params: vec![],
        body: None,
        responses: vec![],
        produces: Produces::Object,
        patch_types,
    };
    let with_path_params = |mut extra: Vec<Param>| {
        let mut p = scope_params.clone();
        p.append(&mut extra);
        p.push(PRETTY);
        p
    };

    let mut out = Vec::new();

    // The collection: list, create, deletecollection.
    let list = Operation {
        params: LIST.to_vec(),
        responses: responses(target.list_definition, false, false),
        produces: Produces::List,
        ..op(
            Method::Get,
            format!("list{infix}{scoped}{kind}"),
            format!("list or watch objects of kind {kind}"),
            "list",
            &gvk,
        )
    };
    let create = Operation {
        params: WRITE.to_vec(),
        body: Some(Body::Object(target.definition.to_owned())),
        responses: responses(target.definition, true, true),
        ..op(
            Method::Post,
            format!("create{infix}{scoped}{kind}"),
            format!("create a {kind}"),
            "post",
            &gvk,
        )
    };
    let mut collection_delete_params = DELETE.to_vec();
    collection_delete_params.extend(LIST.iter().filter(|p| p.name != "watch").cloned());
    let delete_collection = Operation {
        params: collection_delete_params,
        body: Some(Body::DeleteOptions),
        responses: responses(STATUS, false, false),
        ..op(
            Method::Delete,
            format!("delete{infix}Collection{scoped}{kind}"),
            format!("delete collection of {kind}"),
            "deletecollection",
            &gvk,
        )
    };
    out.push(PathSpec {
        path: scope_path.clone(),
        params: with_path_params(vec![]),
        operations: vec![list, create, delete_collection],
    });

    // One object: read, replace, patch, delete.
    let object_path = format!("{scope_path}/{{name}}");
    out.push(PathSpec {
        path: object_path.clone(),
        params: with_path_params(vec![NAME]),
        operations: vec![
            Operation {
                responses: responses(target.definition, false, false),
                ..op(
                    Method::Get,
                    format!("read{infix}{scoped}{kind}"),
                    format!("read the specified {kind}"),
                    "get",
                    &gvk,
                )
            },
            Operation {
                params: WRITE.to_vec(),
                body: Some(Body::Object(target.definition.to_owned())),
                responses: responses(target.definition, true, false),
                ..op(
                    Method::Put,
                    format!("replace{infix}{scoped}{kind}"),
                    format!("replace the specified {kind}"),
                    "put",
                    &gvk,
                )
            },
            Operation {
                params: PATCH_PARAMS.to_vec(),
                body: Some(Body::Patch),
                responses: responses(target.definition, true, false),
                ..op(
                    Method::Patch,
                    format!("patch{infix}{scoped}{kind}"),
                    format!("partially update the specified {kind}"),
                    "patch",
                    &gvk,
                )
            },
            Operation {
                params: DELETE.to_vec(),
                body: Some(Body::DeleteOptions),
                responses: responses(STATUS, false, true),
                ..op(
                    Method::Delete,
                    format!("delete{infix}{scoped}{kind}"),
                    format!("delete a {kind}"),
                    "delete",
                    &gvk,
                )
            },
        ],
    });

    // Subresources: read, replace, patch.
    for sub in &spec.subresources {
        let (schema, sub_gvk) = match sub {
            Subresource::Status => (target.definition.to_owned(), gvk.clone()),
            Subresource::Scale => (
                SCALE.to_owned(),
                crate::definitions::gvk("autoscaling", "v1", "Scale"),
            ),
        };
        let suffix = match sub {
            Subresource::Status => "Status",
            Subresource::Scale => "Scale",
        };
        let name = sub.as_str();
        out.push(PathSpec {
            path: format!("{object_path}/{name}"),
            params: with_path_params(vec![NAME]),
            operations: vec![
                Operation {
                    responses: responses(&schema, false, false),
                    ..op(
                        Method::Get,
                        format!("read{infix}{scoped}{kind}{suffix}"),
                        format!("read {name} of the specified {kind}"),
                        "get",
                        &sub_gvk,
                    )
                },
                Operation {
                    params: WRITE.to_vec(),
                    body: Some(Body::Object(schema.clone())),
                    responses: responses(&schema, true, false),
                    ..op(
                        Method::Put,
                        format!("replace{infix}{scoped}{kind}{suffix}"),
                        format!("replace {name} of the specified {kind}"),
                        "put",
                        &sub_gvk,
                    )
                },
                Operation {
                    params: PATCH_PARAMS.to_vec(),
                    body: Some(Body::Patch),
                    responses: responses(&schema, true, false),
                    ..op(
                        Method::Patch,
                        format!("patch{infix}{scoped}{kind}{suffix}"),
                        format!("partially update {name} of the specified {kind}"),
                        "patch",
                        &sub_gvk,
                    )
                },
            ],
        });
    }

    // Deprecated watch paths, still listed by upstream.
    let watch_prefix = if spec.namespaced {
        format!("{prefix}/watch/namespaces/{{namespace}}/{}", spec.plural)
    } else {
        format!("{prefix}/watch/{}", spec.plural)
    };
    let watch = |id: String, action, path: String, params: Vec<Param>| PathSpec {
        path,
        params,
        operations: vec![Operation {
            params: vec![],
            responses: responses(WATCH_EVENT, false, false),
            produces: Produces::Watch,
            ..op(
                Method::Get,
                id,
                format!("watch changes to {kind} objects"),
                action,
                &gvk,
            )
        }],
    };
    let mut list_params_path = LIST.to_vec();
    let mut watch_list_params = with_path_params(vec![]);
    watch_list_params.append(&mut list_params_path);
    out.push(watch(
        format!("watch{infix}{scoped}{kind}List"),
        "watchlist",
        watch_prefix.clone(),
        watch_list_params,
    ));
    let mut watch_params = with_path_params(vec![NAME]);
    watch_params.extend(LIST.iter().cloned());
    out.push(watch(
        format!("watch{infix}{scoped}{kind}"),
        "watch",
        format!("{watch_prefix}/{{name}}"),
        watch_params,
    ));

    // Namespaced kinds can also be listed and watched across namespaces.
    if spec.namespaced {
        let mut all_params = LIST.to_vec();
        all_params.push(PRETTY);
        out.push(PathSpec {
            path: format!("{prefix}/{}", spec.plural),
            params: all_params.clone(),
            operations: vec![Operation {
                params: vec![],
                responses: responses(target.list_definition, false, false),
                produces: Produces::List,
                ..op(
                    Method::Get,
                    format!("list{infix}{kind}ForAllNamespaces"),
                    format!("list or watch objects of kind {kind}"),
                    "list",
                    &gvk,
                )
            }],
        });
        out.push(watch(
            format!("watch{infix}{kind}ListForAllNamespaces"),
            "watchlist",
            format!("{prefix}/watch/{}", spec.plural),
            all_params,
        ));
    }
    out
}

/// Definition names every path document refers to besides the kinds.
pub(crate) const PATH_DEFINITIONS: [&str; 4] = [STATUS, DELETE_OPTIONS, WATCH_EVENT, PATCH];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tags_follow_upstream() {
        assert_eq!(id_infix("", "v1"), "CoreV1");
        assert_eq!(
            id_infix("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
        assert_eq!(id_infix("stable.example.com", "v1"), "StableExampleComV1");
        assert_eq!(tag("", "v1"), "core_v1");
        assert_eq!(
            tag("rbac.authorization.k8s.io", "v1"),
            "rbacAuthorization_v1"
        );
        assert_eq!(tag("apps", "v1"), "apps_v1");
    }

    #[test]
    fn configmap_paths() {
        let spec = ResourceSpec {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
            namespaced: true,
            subresources: vec![],
        };
        let target = Target {
            spec: &spec,
            definition: "io.k8s.api.core.v1.ConfigMap",
            list_definition: "io.k8s.api.core.v1.ConfigMapList",
            strategic_merge: true,
        };
        let paths = paths(&target);
        let names: Vec<&str> = paths.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "/api/v1/namespaces/{namespace}/configmaps",
                "/api/v1/namespaces/{namespace}/configmaps/{name}",
                "/api/v1/watch/namespaces/{namespace}/configmaps",
                "/api/v1/watch/namespaces/{namespace}/configmaps/{name}",
                "/api/v1/configmaps",
                "/api/v1/watch/configmaps",
            ]
        );
        let patch = &paths[1].operations[2];
        assert_eq!(patch.id, "patchCoreV1NamespacedConfigMap");
        assert!(patch.params.iter().any(|p| p.name == "fieldValidation"));
    }
}

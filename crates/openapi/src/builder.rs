//! [`OpenApiBuilder`] collects resources and their schemas; [`OpenApi`] holds
//! the finished documents as bytes, ready to serve.

use crate::definitions::{self, SCALE};
use crate::error::Error;
use crate::operations::{self, PATH_DEFINITIONS, PathSpec, Target};
use crate::resource::{ResourceSpec, Subresource, gv_path};
use crate::schema_tree::{RootSpec, SchemaTree};
use crate::shapes::{self, ShapeRoot};
use crate::{extensions, hash, v2, v2_proto, v3};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Patch, Status, WatchEvent};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use prost::Message;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};
use skiff_apimachinery::shape::Shapes;
use std::collections::{BTreeMap, HashSet};

/// Maps a k8s-openapi scope marker type to "is it namespaced".
pub trait Scope {
    /// Whether objects of this scope live in a namespace.
    const NAMESPACED: bool;
}

impl Scope for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scope for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

#[derive(Clone)]
struct Entry {
    spec: ResourceSpec,
    definition: String,
    strategic_merge: bool,
}

/// Collects the resources to describe; [`OpenApiBuilder::build`] renders
/// every document once.
///
/// Cloneable so a server can keep the built-in set and rebuild with the
/// current custom resources whenever a CustomResourceDefinition changes.
#[derive(Clone)]
pub struct OpenApiBuilder {
    generator: SchemaGenerator,
    entries: Vec<Entry>,
    custom: Map<String, Value>,
}

impl Default for OpenApiBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenApiBuilder {
    /// An empty builder (no resources). See [`crate::builtin`] for one that
    /// holds every built-in kind.
    pub fn new() -> Self {
        OpenApiBuilder {
            generator: definitions::generator(),
            entries: Vec::new(),
            custom: Map::new(),
        }
    }

    /// Adds a built-in kind, its schema taken from k8s-openapi's type.
    pub fn add<T>(&mut self, subresources: &[Subresource]) -> &mut Self
    where
        T: k8s_openapi::Resource + JsonSchema,
        T::Scope: Scope,
    {
        let reference = self.generator.subschema_for::<T>();
        let definition = reference
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(definitions::REF_PREFIX))
            .map(str::to_owned)
            .unwrap_or_else(|| T::schema_name().into_owned());
        self.entries.push(Entry {
            spec: ResourceSpec {
                group: T::GROUP.to_owned(),
                version: T::VERSION.to_owned(),
                kind: T::KIND.to_owned(),
                plural: T::URL_PATH_SEGMENT.to_owned(),
                namespaced: <T::Scope as Scope>::NAMESPACED,
                subresources: subresources.to_vec(),
            },
            definition,
            strategic_merge: true,
        });
        self
    }

    /// Adds a custom resource: `schema` is the version's
    /// `openAPIV3Schema` from its CustomResourceDefinition. `apiVersion`,
    /// `kind` and standard `metadata` are filled in.
    pub fn add_custom(&mut self, spec: ResourceSpec, schema: Value) -> Result<&mut Self, Error> {
        let Value::Object(mut schema) = schema else {
            return Err(Error::InvalidCustomSchema {
                api_version: spec.api_version(),
                kind: spec.kind,
            });
        };
        definitions::complete_custom_schema(&mut schema);
        let definition =
            definitions::custom_definition_name(&spec.group, &spec.version, &spec.kind);
        self.custom
            .insert(definition.clone(), Value::Object(schema));
        self.entries.push(Entry {
            spec,
            definition,
            strategic_merge: false,
        });
        Ok(self)
    }

    /// Renders every document.
    pub fn build(mut self) -> Result<OpenApi, Error> {
        self.check_duplicates()?;
        // Types the paths refer to besides the kinds.
        self.generator.subschema_for::<Status>();
        self.generator.subschema_for::<DeleteOptions>();
        self.generator.subschema_for::<WatchEvent<RawExtension>>();
        self.generator.subschema_for::<Patch>();
        if self
            .entries
            .iter()
            .any(|e| e.spec.subresources.contains(&Subresource::Scale))
        {
            self.generator.subschema_for::<Scale>();
        }
        let mut defs = self.generator.take_definitions(false);
        let custom_names: HashSet<String> = self.custom.keys().cloned().collect();
        defs.extend(self.custom);

        let mut list_names = Vec::with_capacity(self.entries.len());
        let mut group_versions: BTreeMap<String, (String, String)> = BTreeMap::new();
        for entry in &self.entries {
            let s = &entry.spec;
            definitions::add_gvk(
                &mut defs,
                &entry.definition,
                definitions::gvk(&s.group, &s.version, &s.kind),
            );
            let list = format!("{}List", entry.definition);
            defs.entry(list.clone())
                .or_insert_with(|| definitions::list_schema(&entry.definition, &s.kind));
            definitions::add_gvk(
                &mut defs,
                &list,
                definitions::gvk(&s.group, &s.version, &format!("{}List", s.kind)),
            );
            list_names.push(list);
            group_versions.insert(s.gv_path(), (s.group.clone(), s.version.clone()));
        }
        // Like upstream, the meta types belong to every group-version.
        definitions::add_gvk(
            &mut defs,
            definitions::STATUS,
            definitions::gvk("", "v1", "Status"),
        );
        if defs.contains_key(SCALE) {
            definitions::add_gvk(
                &mut defs,
                SCALE,
                definitions::gvk("autoscaling", "v1", "Scale"),
            );
        }
        for (group, version) in group_versions.values() {
            for (name, kind) in [
                (definitions::DELETE_OPTIONS, "DeleteOptions"),
                (definitions::WATCH_EVENT, "WatchEvent"),
            ] {
                definitions::add_gvk(&mut defs, name, definitions::gvk(group, version, kind));
            }
        }
        extensions::apply(&mut defs);
        debug_assert!(PATH_DEFINITIONS.iter().all(|d| defs.contains_key(*d)));
        let fields = SchemaTree::compile(
            &defs,
            &custom_names,
            self.entries.iter().map(|e| RootSpec {
                group: &e.spec.group,
                version: &e.spec.version,
                kind: &e.spec.kind,
                definition: &e.definition,
            }),
        );

        let shapes = shapes::compile(
            &defs,
            &custom_names,
            self.entries.iter().map(|e| ShapeRoot {
                group: &e.spec.group,
                version: &e.spec.version,
                kind: &e.spec.kind,
                definition: &e.definition,
            }),
        );

        let mut paths_by_gv: BTreeMap<String, Vec<PathSpec>> = BTreeMap::new();
        for (entry, list) in self.entries.iter().zip(&list_names) {
            let target = Target {
                spec: &entry.spec,
                definition: &entry.definition,
                list_definition: list,
                strategic_merge: entry.strategic_merge,
            };
            paths_by_gv
                .entry(entry.spec.gv_path())
                .or_default()
                .extend(operations::paths(&target));
        }

        let all_paths: Vec<PathSpec> = paths_by_gv.values().flatten().cloned().collect();
        let v2_doc = v2::document(&all_paths, &defs);
        let v2_json = serde_json::to_vec(&v2_doc)?;
        let v2_protobuf = v2_proto::document(&v2_doc).encode_to_vec();
        let v2_etag = hash::content_hash(&v2_json);

        let mut v3_documents = BTreeMap::new();
        let mut index = Map::new();
        for (gv, paths) in &paths_by_gv {
            let refs: Vec<&PathSpec> = paths.iter().collect();
            let bytes = serde_json::to_vec(&v3::document(&refs, &defs))?;
            let hash = hash::content_hash(&bytes);
            index.insert(
                gv.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash}") }),
            );
            v3_documents.insert(gv.clone(), V3Document { bytes, hash });
        }
        let v3_index = serde_json::to_vec(&json!({ "paths": index }))?;

        Ok(OpenApi {
            resources: self.entries.into_iter().map(|e| e.spec).collect(),
            v2_json,
            v2_protobuf,
            v2_etag,
            v3_index,
            v3_documents,
            fields,
            shapes,
        })
    }

    fn check_duplicates(&self) -> Result<(), Error> {
        let mut seen = std::collections::HashSet::new();
        for e in &self.entries {
            let gv = gv_path(&e.spec.group, &e.spec.version);
            for (what, name) in [("kind", &e.spec.kind), ("resource", &e.spec.plural)] {
                if !seen.insert((gv.clone(), what, name.clone())) {
                    return Err(Error::Duplicate {
                        api_version: e.spec.api_version(),
                        what,
                        name: name.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The `Accept` media type kubectl 1.27/1.28 ask `/openapi/v2` for.
pub const V2_PROTOBUF_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The `Content-Type` upstream answers [`V2_PROTOBUF_ACCEPT`] with (`@`
/// becomes `.`).
pub const V2_PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

struct V3Document {
    bytes: Vec<u8>,
    hash: String,
}

/// The rendered documents. Built once at startup; every accessor returns
/// bytes to send as they are.
pub struct OpenApi {
    resources: Vec<ResourceSpec>,
    v2_json: Vec<u8>,
    v2_protobuf: Vec<u8>,
    /// One tag for both v2 encodings (they render the same document), as
    /// upstream's handler does.
    v2_etag: String,
    v3_index: Vec<u8>,
    v3_documents: BTreeMap<String, V3Document>,
    /// Every kind's schema compiled for field validation
    /// ([`crate::field_validation`]).
    fields: SchemaTree,
    /// Every kind's list/map topology and patch metadata.
    shapes: Shapes,
}

impl OpenApi {
    /// `GET /openapi/v3`: `{"paths": {"<gv path>": {"serverRelativeURL": ...}}}`.
    pub fn v3_index(&self) -> &[u8] {
        &self.v3_index
    }

    /// `GET /openapi/v3/<gv path>` (`api/v1`, `apis/apps/v1`), JSON.
    /// A leading `/` is ignored.
    pub fn v3_document(&self, gv_path: &str) -> Option<&[u8]> {
        self.v3_documents
            .get(gv_path.trim_start_matches('/'))
            .map(|d| d.bytes.as_slice())
    }

    /// The hash in the index's URL for `gv_path`; a request whose `hash`
    /// query matches may be cached forever (upstream answers it with
    /// `Cache-Control: public, immutable`).
    pub fn v3_hash(&self, gv_path: &str) -> Option<&str> {
        self.v3_documents
            .get(gv_path.trim_start_matches('/'))
            .map(|d| d.hash.as_str())
    }

    /// The group-version paths that have a v3 document.
    pub fn v3_paths(&self) -> impl Iterator<Item = &str> {
        self.v3_documents.keys().map(String::as_str)
    }

    /// `GET /openapi/v2` with `Accept: application/json`.
    pub fn v2_json(&self) -> &[u8] {
        &self.v2_json
    }

    /// `GET /openapi/v2` with
    /// `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
    /// (and `GET /swagger-2.0.0.pb-v1`): gnostic's `openapi.v2.Document`,
    /// served as [`V2_PROTOBUF_CONTENT_TYPE`].
    pub fn v2_protobuf(&self) -> &[u8] {
        &self.v2_protobuf
    }

    /// The content hash of the v2 document, for `ETag` / `If-None-Match`.
    pub fn v2_etag(&self) -> &str {
        &self.v2_etag
    }

    /// Every resource described, in the order added.
    pub fn resources(&self) -> &[ResourceSpec] {
        &self.resources
    }

    /// What strategic merge patch and server-side apply need to know about
    /// every kind's fields.
    pub fn shapes(&self) -> &Shapes {
        &self.shapes
    }

    /// The compiled schemas field validation walks.
    pub(crate) fn fields(&self) -> &SchemaTree {
        &self.fields
    }
}

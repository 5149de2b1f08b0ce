//! The schemas of every kind compiled into an arena of [`Node`]s, for
//! server-side field validation.
//!
//! The API server checks every written object for fields its schema does
//! not declare. Walking the JSON schemas for that (string lookups of
//! `$ref`s, `properties`, extensions) on every request would be slow, so
//! [`SchemaTree::compile`] resolves them once, when the documents are built:
//! each node only says which fields an object has (sorted, for binary
//! search), what its map values or array items are, and whether anything
//! goes.

use crate::definitions::{OBJECT_META, REF_PREFIX};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Index of a node in [`SchemaTree::nodes`].
pub(crate) type NodeId = u32;

/// What a JSON object may hold besides its declared fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Other {
    /// Nothing: any other field is unknown.
    Unknown,
    /// Anything (`x-kubernetes-preserve-unknown-fields`,
    /// `additionalProperties: true`).
    Any,
    /// Any key, the values of this schema (`additionalProperties`).
    Schema(NodeId),
}

/// One compiled schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// Not checked further: scalars, int-or-string, quantities, free-form
    /// JSON (`RawExtension`, `JSON`, `FieldsV1`), preserved subtrees.
    Leaf,
    /// An object with named fields, sorted by name.
    Object {
        fields: Box<[(Box<str>, NodeId)]>,
        other: Other,
    },
    /// An array whose items follow the node.
    Array(NodeId),
}

impl Node {
    /// The schema of field `name` of an object: `Ok(None)` when the field
    /// is free-form, `Err(())` when it is unknown. Non-objects accept
    /// anything (a type mismatch is not this check's business).
    pub(crate) fn field(&self, name: &str) -> Result<Option<NodeId>, ()> {
        let Node::Object { fields, other } = self else {
            return Ok(None);
        };
        if let Ok(i) = fields.binary_search_by(|(k, _)| k.as_ref().cmp(name)) {
            return Ok(Some(fields[i].1));
        }
        match other {
            Other::Unknown => Err(()),
            Other::Any => Ok(None),
            Other::Schema(id) => Ok(Some(*id)),
        }
    }
}

/// One resource's root node, looked up by kind first (no allocation per
/// request).
#[derive(Debug)]
struct Root {
    group: String,
    version: String,
    node: NodeId,
    custom: bool,
}

/// Every kind's compiled schema.
#[derive(Debug, Default)]
pub(crate) struct SchemaTree {
    nodes: Vec<Node>,
    roots: HashMap<String, Vec<Root>>,
}

/// A kind to compile: its definition name and whether it is a custom
/// resource (whose schema is structural: `type: object` without
/// `properties` holds nothing, as upstream prunes it).
pub(crate) struct RootSpec<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub definition: &'a str,
}

impl SchemaTree {
    /// Compiles the roots' definitions (and all they refer to) from the
    /// shared v2-form `definitions`; `custom` names the custom resources'
    /// definitions.
    pub(crate) fn compile<'a>(
        definitions: &Map<String, Value>,
        custom: &HashSet<String>,
        roots: impl IntoIterator<Item = RootSpec<'a>>,
    ) -> SchemaTree {
        let mut compiler = Compiler {
            definitions,
            custom,
            nodes: Vec::new(),
            resolved: HashMap::new(),
        };
        let mut tree_roots: HashMap<String, Vec<Root>> = HashMap::new();
        for root in roots {
            let node = compiler.definition(root.definition);
            compiler.allow_type_meta(node);
            tree_roots
                .entry(root.kind.to_owned())
                .or_default()
                .push(Root {
                    group: root.group.to_owned(),
                    version: root.version.to_owned(),
                    node,
                    custom: custom.contains(root.definition),
                });
        }
        SchemaTree {
            nodes: compiler.nodes,
            roots: tree_roots,
        }
    }

    /// The root node of a kind, and whether it is a custom resource.
    pub(crate) fn root(&self, group: &str, version: &str, kind: &str) -> Option<(NodeId, bool)> {
        self.roots
            .get(kind)?
            .iter()
            .find(|r| r.group == group && r.version == version)
            .map(|r| (r.node, r.custom))
    }

    /// The node with the id (ids come from this tree; a foreign id reads as
    /// [`Node::Leaf`]).
    pub(crate) fn node(&self, id: NodeId) -> &Node {
        self.nodes.get(id as usize).unwrap_or(&Node::Leaf)
    }
}

struct Compiler<'a> {
    definitions: &'a Map<String, Value>,
    custom: &'a HashSet<String>,
    nodes: Vec<Node>,
    resolved: HashMap<&'a str, NodeId>,
}

impl<'a> Compiler<'a> {
    fn push(&mut self, node: Node) -> NodeId {
        let id = NodeId::try_from(self.nodes.len()).unwrap_or(NodeId::MAX);
        self.nodes.push(node);
        id
    }

    /// The node of a named definition, compiled once (recursive types such
    /// as `JSONSchemaProps` refer to themselves).
    fn definition(&mut self, name: &str) -> NodeId {
        let definitions = self.definitions;
        let Some((name, schema)) = definitions.get_key_value(name) else {
            return self.push(Node::Leaf);
        };
        if let Some(id) = self.resolved.get(name.as_str()) {
            return *id;
        }
        let id = self.push(Node::Leaf);
        self.resolved.insert(name.as_str(), id);
        let structural = self.custom.contains(name.as_str());
        let node = self.node(schema, structural);
        if let Some(slot) = self.nodes.get_mut(id as usize) {
            *slot = node;
        }
        id
    }

    /// The id of an inline schema (or of the definition it refers to).
    fn id(&mut self, schema: &'a Value, structural: bool) -> NodeId {
        match reference(schema) {
            Some(name) => self.definition(name),
            None => {
                let node = self.node(schema, structural);
                self.push(node)
            }
        }
    }

    fn node(&mut self, schema: &'a Value, structural: bool) -> Node {
        let Value::Object(s) = schema else {
            return Node::Leaf;
        };
        if let Some(name) = reference(schema) {
            let id = self.definition(name);
            return self.nodes.get(id as usize).cloned().unwrap_or(Node::Leaf);
        }
        let flag = |key: &str| s.get(key).and_then(Value::as_bool).unwrap_or(false);
        if flag("x-kubernetes-int-or-string") {
            return Node::Leaf;
        }
        let preserve = flag("x-kubernetes-preserve-unknown-fields");
        let embedded = flag("x-kubernetes-embedded-resource");
        let properties = s.get("properties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        if properties.is_none() && additional.is_none() && !embedded {
            if let Some(items) = s.get("items").filter(|i| i.is_object()) {
                return Node::Array(self.id(items, structural));
            }
            let is_object = s.get("type").and_then(Value::as_str) == Some("object");
            // Built-in free-form types (`RawExtension`, `JSON`, `FieldsV1`)
            // are `type: object` without properties; in a structural
            // (custom) schema that shape holds nothing.
            if !is_object || preserve || !structural {
                return Node::Leaf;
            }
        }
        let mut fields: Vec<(Box<str>, NodeId)> = Vec::new();
        for (name, field) in properties.into_iter().flatten() {
            fields.push((name.as_str().into(), self.id(field, structural)));
        }
        if embedded {
            // An embedded object is a whole resource: upstream checks its
            // metadata as ObjectMeta whatever the schema says.
            let meta = self.definition(OBJECT_META);
            fields.retain(|(name, _)| name.as_ref() != "metadata");
            fields.push(("metadata".into(), meta));
            for name in ["apiVersion", "kind"] {
                if !fields.iter().any(|(n, _)| n.as_ref() == name) {
                    let leaf = self.push(Node::Leaf);
                    fields.push((name.into(), leaf));
                }
            }
        }
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        let other = match additional {
            _ if preserve => Other::Any,
            Some(Value::Bool(true)) => Other::Any,
            Some(schema @ Value::Object(_)) => Other::Schema(self.id(schema, structural)),
            _ => Other::Unknown,
        };
        Node::Object {
            fields: fields.into_boxed_slice(),
            other,
        }
    }

    /// Objects always may say what they are.
    fn allow_type_meta(&mut self, root: NodeId) {
        let Some(Node::Object { fields, .. }) = self.nodes.get(root as usize) else {
            return;
        };
        let missing: Vec<&str> = ["apiVersion", "kind"]
            .into_iter()
            .filter(|name| !fields.iter().any(|(n, _)| n.as_ref() == *name))
            .collect();
        if missing.is_empty() {
            return;
        }
        let leaf = self.push(Node::Leaf);
        if let Some(Node::Object { fields, .. }) = self.nodes.get_mut(root as usize) {
            let mut all = fields.to_vec();
            all.extend(missing.into_iter().map(|n| (Box::from(n), leaf)));
            all.sort_by(|a, b| a.0.cmp(&b.0));
            *fields = all.into_boxed_slice();
        }
    }
}

/// The definition a schema's `$ref` names, if it has one.
fn reference(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix(REF_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile_one(defs: Value, custom: &[&str], root: &str) -> (SchemaTree, NodeId) {
        let Value::Object(defs) = defs else {
            panic!("definitions must be an object")
        };
        let custom = custom.iter().map(|s| s.to_string()).collect();
        let tree = SchemaTree::compile(
            &defs,
            &custom,
            [RootSpec {
                group: "g",
                version: "v1",
                kind: "K",
                definition: root,
            }],
        );
        let (id, _) = tree.root("g", "v1", "K").expect("root");
        (tree, id)
    }

    #[test]
    fn recursive_definitions_compile_once() {
        let (tree, root) = compile_one(
            json!({"T": {"type": "object", "properties": {"child": {"$ref": "#/definitions/T"}}}}),
            &[],
            "T",
        );
        let child = tree
            .node(root)
            .field("child")
            .expect("known")
            .expect("typed");
        assert_eq!(child, root);
        assert!(tree.node(root).field("apiVersion").is_ok());
        assert!(tree.node(root).field("nope").is_err());
    }

    #[test]
    fn bare_objects_are_free_form_only_in_builtin_schemas() {
        let defs = json!({"T": {"type": "object"}});
        let (tree, root) = compile_one(defs.clone(), &[], "T");
        assert_eq!(tree.node(root), &Node::Leaf);
        let (tree, root) = compile_one(defs, &["T"], "T");
        assert!(tree.node(root).field("spec").is_err());
    }
}

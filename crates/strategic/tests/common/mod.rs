//! A hand-built schema resembling a Pod/Deployment, with the patch metadata
//! upstream declares for these fields.

#![allow(dead_code)]

use skiff_apimachinery::shape::{Field, ListType, PatchStrategy, Shape, ShapeId, Shapes};

pub fn merged(shape: ShapeId, key: Option<&str>) -> Field {
    Field {
        shape,
        patch_strategy: PatchStrategy::parse("merge"),
        patch_merge_key: key.map(str::to_owned),
    }
}

pub fn map(fields: Vec<(&str, Field)>) -> Shape {
    Shape::Map {
        fields: fields.into_iter().map(|(k, f)| (k.to_owned(), f)).collect(),
        values: None,
        atomic: false,
    }
}

/// Pod-like object. Returns the arena and the root.
///
/// - `metadata.finalizers`: scalars, merge; `metadata.labels`: string map
/// - `spec.containers` merged by `name`; in a container `ports` by
///   `containerPort`, `env` by `name`, `volumeMounts` by `mountPath`,
///   `args` atomic
/// - `spec.volumes` merged by `name` (strategy `merge,retainKeys`)
/// - `spec.strategy`: retainKeys (Deployment's `spec.strategy`)
/// - `spec.tolerations`: atomic list of objects (no strategy)
/// - `spec.args`: atomic scalars; `spec.extra`: untyped; `spec.replaced`: a map with strategy `replace`
pub fn pod_shapes() -> (Shapes, ShapeId) {
    let mut s = Shapes::new();
    let scalar = s.push(Shape::Scalar);
    let untyped = s.push(Shape::Untyped);
    let scalars = s.push(Shape::List {
        items: scalar,
        list_type: ListType::Set,
    });
    let atomic_scalars = s.push(Shape::List {
        items: scalar,
        list_type: ListType::Atomic,
    });
    let string_map = s.push(Shape::Map {
        fields: vec![],
        values: Some(scalar),
        atomic: false,
    });
    let port = s.push(map(vec![
        ("containerPort", Field::plain(scalar)),
        ("name", Field::plain(scalar)),
        ("protocol", Field::plain(scalar)),
    ]));
    let ports = s.push(Shape::List {
        items: port,
        list_type: ListType::Map(vec!["containerPort".into(), "protocol".into()]),
    });
    let env_var = s.push(map(vec![
        ("name", Field::plain(scalar)),
        ("value", Field::plain(scalar)),
    ]));
    let env = s.push(Shape::List {
        items: env_var,
        list_type: ListType::Map(vec!["name".into()]),
    });
    let mount = s.push(map(vec![
        ("name", Field::plain(scalar)),
        ("mountPath", Field::plain(scalar)),
        ("readOnly", Field::plain(scalar)),
    ]));
    let mounts = s.push(Shape::List {
        items: mount,
        list_type: ListType::Map(vec!["mountPath".into()]),
    });
    let container = s.push(map(vec![
        ("name", Field::plain(scalar)),
        ("image", Field::plain(scalar)),
        ("args", Field::plain(atomic_scalars)),
        ("ports", merged(ports, Some("containerPort"))),
        ("env", merged(env, Some("name"))),
        ("volumeMounts", merged(mounts, Some("mountPath"))),
    ]));
    let containers = s.push(Shape::List {
        items: container,
        list_type: ListType::Map(vec!["name".into()]),
    });
    let volume = s.push(map(vec![
        ("name", Field::plain(scalar)),
        ("emptyDir", Field::plain(untyped)),
        ("configMap", Field::plain(untyped)),
        ("hostPath", Field::plain(untyped)),
    ]));
    let volumes = s.push(Shape::List {
        items: volume,
        list_type: ListType::Map(vec!["name".into()]),
    });
    let rolling = s.push(map(vec![
        ("maxSurge", Field::plain(scalar)),
        ("maxUnavailable", Field::plain(scalar)),
    ]));
    let strategy = s.push(map(vec![
        ("type", Field::plain(scalar)),
        ("rollingUpdate", Field::plain(rolling)),
    ]));
    let toleration = s.push(map(vec![
        ("key", Field::plain(scalar)),
        ("operator", Field::plain(scalar)),
        ("effect", Field::plain(scalar)),
    ]));
    let tolerations = s.push(Shape::List {
        items: toleration,
        list_type: ListType::Atomic,
    });
    let spec = s.push(map(vec![
        ("containers", merged(containers, Some("name"))),
        ("initContainers", merged(containers, Some("name"))),
        (
            "volumes",
            Field {
                shape: volumes,
                patch_strategy: PatchStrategy::parse("merge,retainKeys"),
                patch_merge_key: Some("name".into()),
            },
        ),
        (
            "strategy",
            Field {
                shape: strategy,
                patch_strategy: PatchStrategy::parse("retainKeys"),
                patch_merge_key: None,
            },
        ),
        ("tolerations", Field::plain(tolerations)),
        ("nodeSelector", Field::plain(string_map)),
        ("extra", Field::plain(untyped)),
        (
            "replaced",
            Field {
                shape: string_map,
                patch_strategy: PatchStrategy::parse("replace"),
                patch_merge_key: None,
            },
        ),
        ("replicas", Field::plain(scalar)),
        ("args", Field::plain(atomic_scalars)),
    ]));
    let meta = s.push(map(vec![
        ("name", Field::plain(scalar)),
        ("labels", Field::plain(string_map)),
        ("annotations", Field::plain(string_map)),
        ("finalizers", merged(scalars, None)),
    ]));
    let root = s.push(map(vec![
        ("apiVersion", Field::plain(scalar)),
        ("kind", Field::plain(scalar)),
        ("metadata", Field::plain(meta)),
        ("spec", Field::plain(spec)),
    ]));
    (s, root)
}

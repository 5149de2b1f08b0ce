//! Small hand-built shapes for unit tests (a Deployment and a Pod cut
//! down to the fields the tests touch).

use skiff_apimachinery::shape::{Field, ListType, Shape, ShapeId, Shapes};

fn map(shapes: &mut Shapes, fields: Vec<(&str, ShapeId)>) -> ShapeId {
    shapes.push(Shape::Map {
        fields: fields
            .into_iter()
            .map(|(n, s)| (n.to_owned(), Field::plain(s)))
            .collect(),
        values: None,
        atomic: false,
    })
}

fn list(shapes: &mut Shapes, items: ShapeId, list_type: ListType) -> ShapeId {
    shapes.push(Shape::List { items, list_type })
}

/// Returns (scalar, metadata, podspec) ids.
fn common(shapes: &mut Shapes) -> (ShapeId, ShapeId, ShapeId) {
    let scalar = shapes.push(Shape::Scalar);
    let string_map = shapes.push(Shape::Map {
        fields: vec![],
        values: Some(scalar),
        atomic: false,
    });
    let finalizers = list(shapes, scalar, ListType::Set);
    let untyped = shapes.push(Shape::Untyped);
    let managed = list(shapes, untyped, ListType::Atomic);
    let meta = map(
        shapes,
        vec![
            ("name", scalar),
            ("namespace", scalar),
            ("labels", string_map),
            ("annotations", string_map),
            ("finalizers", finalizers),
            ("managedFields", managed),
            ("resourceVersion", scalar),
            ("uid", scalar),
            ("generation", scalar),
            ("creationTimestamp", scalar),
        ],
    );
    let port = map(
        shapes,
        vec![
            ("containerPort", scalar),
            ("protocol", scalar),
            ("name", scalar),
        ],
    );
    let ports = list(
        shapes,
        port,
        ListType::Map(vec!["containerPort".into(), "protocol".into()]),
    );
    let env_var = map(shapes, vec![("name", scalar), ("value", scalar)]);
    let env = list(shapes, env_var, ListType::Map(vec!["name".into()]));
    let args = list(shapes, scalar, ListType::Atomic);
    let container = map(
        shapes,
        vec![
            ("name", scalar),
            ("image", scalar),
            ("args", args),
            ("ports", ports),
            ("env", env),
        ],
    );
    let containers = list(shapes, container, ListType::Map(vec!["name".into()]));
    let extra = map(shapes, vec![("a", scalar), ("b", scalar)]);
    let tolerations = list(shapes, string_map, ListType::Atomic);
    let podspec = map(
        shapes,
        vec![
            ("containers", containers),
            ("nodeName", scalar),
            ("extra", extra),
            ("tolerations", tolerations),
        ],
    );
    (scalar, meta, podspec)
}

/// apps/v1 Deployment, reduced.
pub fn deployment_shapes() -> (Shapes, ShapeId) {
    let mut shapes = Shapes::new();
    let (scalar, meta, podspec) = common(&mut shapes);
    let string_map = shapes.push(Shape::Map {
        fields: vec![],
        values: Some(scalar),
        atomic: false,
    });
    let selector = shapes.push(Shape::Map {
        fields: vec![("matchLabels".into(), Field::plain(string_map))],
        values: None,
        atomic: true,
    });
    let template = map(&mut shapes, vec![("metadata", meta), ("spec", podspec)]);
    let spec = map(
        &mut shapes,
        vec![
            ("replicas", scalar),
            ("paused", scalar),
            ("selector", selector),
            ("template", template),
        ],
    );
    let condition = map(&mut shapes, vec![("type", scalar), ("status", scalar)]);
    let conditions = list(&mut shapes, condition, ListType::Map(vec!["type".into()]));
    let status = map(
        &mut shapes,
        vec![("replicas", scalar), ("conditions", conditions)],
    );
    let root = map(
        &mut shapes,
        vec![
            ("apiVersion", scalar),
            ("kind", scalar),
            ("metadata", meta),
            ("spec", spec),
            ("status", status),
        ],
    );
    (shapes, root)
}

/// v1 Pod, reduced.
pub fn pod_like() -> (Shapes, ShapeId) {
    let mut shapes = Shapes::new();
    let (scalar, meta, podspec) = common(&mut shapes);
    let root = map(
        &mut shapes,
        vec![
            ("apiVersion", scalar),
            ("kind", scalar),
            ("metadata", meta),
            ("spec", podspec),
        ],
    );
    (shapes, root)
}

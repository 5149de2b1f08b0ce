//! Kubernetes API machinery for skiff, as pure functions on JSON objects:
//! label and field selectors, name/label validation, per-kind defaulting and
//! validation with field-path errors. No I/O; the API server calls in.

//! CustomResourceDefinition schemas (work in progress).

//! OpenAPI documents of the API skiff serves, generated from the types.

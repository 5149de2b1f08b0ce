//! skiff's Kubernetes API server.

//! Server-side apply field management (work in progress).

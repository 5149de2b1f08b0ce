//! Server-side printing: the columns `kubectl get` shows for each kind.

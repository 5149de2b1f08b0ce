//! The opaque `continue` token of paged lists: the revision the first page
//! was read at and the last key returned, so later pages read the same
//! snapshot.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::status::ApiError;

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct ContinueToken {
    /// Version of the token format (as upstream: "meta.k8s.io/v1").
    pub v: String,
    pub rv: i64,
    /// The last key returned, relative to the listed prefix.
    pub start: String,
}

impl ContinueToken {
    pub fn encode(rv: i64, start: &str) -> String {
        let token = ContinueToken {
            v: "meta.k8s.io/v1".into(),
            rv,
            start: start.to_owned(),
        };
        let json = serde_json::to_vec(&token).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }

    pub fn decode(token: &str) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            )
        };
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(token)
            .map_err(|_| invalid())?;
        let token: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if token.v != "meta.k8s.io/v1" || token.rv <= 0 || token.start.contains("..") {
            return Err(invalid());
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let t = ContinueToken::decode(&ContinueToken::encode(42, "default/b")).unwrap();
        assert_eq!((t.rv, t.start.as_str()), (42, "default/b"));
        assert!(ContinueToken::decode("not-base64!").is_err());
        assert!(ContinueToken::decode("e30=").is_err());
    }
}

//! The streaming server's request cache, as the kubelet's `streaming/request_cache.go` keeps
//! it: an Exec, Attach or PortForward call stores its request under a random single-use token
//! that the client redeems with the URL within a minute; at most 1000 wait at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use super::Request;

/// How long a token stays valid (the kubelet's `cacheTTL`).
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Requests waiting to be redeemed at most (the kubelet's `maxInFlight`).
pub const MAX_IN_FLIGHT: usize = 1000;
/// Random bytes in a token (the kubelet's `tokenLen`), URL-safe base64 without padding.
const TOKEN_BYTES: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// The kubelet's words for a full cache (gRPC ResourceExhausted).
    #[error("maximum number of in-flight requests exceeded")]
    TooManyInFlight,
}

#[derive(Debug, Default)]
pub struct RequestCache {
    entries: Mutex<HashMap<String, (Instant, Request)>>,
}

impl RequestCache {
    /// Stores `request` and returns its token; expired entries are dropped first.
    pub fn insert(&self, request: Request) -> Result<String, CacheError> {
        self.insert_at(request, Instant::now())
    }

    fn insert_at(&self, request: Request, now: Instant) -> Result<String, CacheError> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (expires, _)| *expires > now);
        if entries.len() >= MAX_IN_FLIGHT {
            return Err(CacheError::TooManyInFlight);
        }
        let token = loop {
            let bytes = uuid::Uuid::new_v4().into_bytes();
            let token =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..TOKEN_BYTES]);
            if !entries.contains_key(&token) {
                break token;
            }
        };
        entries.insert(token.clone(), (now + TOKEN_TTL, request));
        Ok(token)
    }

    /// The request stored under `token`, once: the token is spent whether or not it expired.
    pub fn consume(&self, token: &str) -> Option<Request> {
        self.consume_at(token, Instant::now())
    }

    fn consume_at(&self, token: &str, now: Instant) -> Option<Request> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (expires, request) = entries.remove(token)?;
        (expires > now).then_some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(uid: &str) -> Request {
        Request::PortForward {
            sandbox_id: uid.to_string(),
            pod_uid: uid.to_string(),
        }
    }

    #[test]
    fn a_token_is_spent_once_and_expires_after_a_minute() {
        let cache = RequestCache::default();
        let now = Instant::now();
        let token = cache.insert_at(forward("a"), now).unwrap();
        assert_eq!(token.len(), 11, "8 bytes in unpadded base64: {token}");
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(cache.consume_at(&token, now), Some(forward("a")));
        assert_eq!(cache.consume_at(&token, now), None);
        let late = cache.insert_at(forward("b"), now).unwrap();
        assert_eq!(cache.consume_at(&late, now + TOKEN_TTL), None);
        assert_eq!(cache.consume_at("nonsense", now), None);
    }

    #[test]
    fn at_most_a_thousand_wait_and_expired_ones_make_room() {
        let cache = RequestCache::default();
        let now = Instant::now();
        let tokens: Vec<String> = (0..MAX_IN_FLIGHT)
            .map(|i| cache.insert_at(forward(&i.to_string()), now).unwrap())
            .collect();
        assert_eq!(
            cache.insert_at(forward("x"), now),
            Err(CacheError::TooManyInFlight)
        );
        assert!(cache.consume_at(&tokens[0], now).is_some());
        assert!(cache.insert_at(forward("x"), now).is_ok());
        assert!(cache.insert_at(forward("y"), now + TOKEN_TTL).is_ok());
    }
}

//! Retrying transient registry failures: up to [`MAX_ATTEMPTS`] attempts with back-off 0.5s,
//! 1s, 2s (plus up to 25% jitter, so that parallel layer downloads do not hammer a recovering
//! registry in lockstep). Permanent failures (401, 403, 404, digest mismatch) return at once.

use std::future::Future;
use std::time::Duration;

use super::PullEvent;
use crate::image::error::ImageError;

pub const MAX_ATTEMPTS: u32 = 4;
const FIRST_DELAY: Duration = Duration::from_millis(500);

/// The delay before attempt `attempt + 1` (attempt counts from 1), without jitter.
#[cfg(test)]
pub fn backoff(attempt: u32) -> Duration {
    scaled_backoff(FIRST_DELAY, attempt)
}

fn scaled_backoff(first: Duration, attempt: u32) -> Duration {
    first * 2u32.saturating_pow(attempt.saturating_sub(1))
}

/// Up to a quarter of `d`, from the clock's nanoseconds (good enough to spread retries).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// Runs `op` until it succeeds, fails permanently, or [`MAX_ATTEMPTS`] are used. A connection
/// failure still there after the last attempt becomes [`ImageError::Unreachable`].
pub async fn with_retry<T, F, Fut>(
    what: &str,
    progress: &(dyn Fn(PullEvent) + Send + Sync),
    op: F,
) -> Result<T, ImageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ImageError>>,
{
    with_retry_limit(MAX_ATTEMPTS, what, progress, op).await
}

/// [`with_retry`] with at most `max_attempts` attempts (mirrors get fewer: the registry
/// itself is the fallback).
pub async fn with_retry_limit<T, F, Fut>(
    max_attempts: u32,
    what: &str,
    progress: &(dyn Fn(PullEvent) + Send + Sync),
    op: F,
) -> Result<T, ImageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ImageError>>,
{
    retry_from(FIRST_DELAY, max_attempts, what, progress, op).await
}

async fn retry_from<T, F, Fut>(
    first: Duration,
    max_attempts: u32,
    what: &str,
    progress: &(dyn Fn(PullEvent) + Send + Sync),
    mut op: F,
) -> Result<T, ImageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ImageError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < max_attempts => {
                let base = scaled_backoff(first, attempt);
                let delay = base + jitter(base);
                tracing::debug!(what, attempt, error = %e, ?delay, "retrying");
                progress(PullEvent::Retrying {
                    what: what.to_string(),
                    attempt,
                    error: e.to_string(),
                    delay,
                });
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(ImageError::Network { endpoint, cause }) => {
                return Err(ImageError::Unreachable {
                    endpoint,
                    attempts: attempt,
                    cause,
                })
            }
            Err(ImageError::Registry {
                endpoint,
                status,
                message,
                transient: true,
            }) if attempt > 1 => {
                return Err(ImageError::Registry {
                    endpoint,
                    status,
                    message: format!("{message} (after {attempt} attempts)"),
                    transient: true,
                })
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_from_half_a_second() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert!(jitter(Duration::from_secs(2)) <= Duration::from_millis(500));
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn transient_errors_are_retried_then_reported_as_unreachable() {
        let calls = AtomicU32::new(0);
        let events = std::sync::Mutex::new(Vec::new());
        let r: Result<(), _> = run(retry_from(
            Duration::from_millis(1),
            MAX_ATTEMPTS,
            "manifest",
            &|e| events.lock().unwrap().push(e),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ImageError::Network {
                    endpoint: "http://127.0.0.1:1".into(),
                    cause: "connection refused".into(),
                })
            },
        ));
        assert_eq!(calls.load(Ordering::SeqCst), MAX_ATTEMPTS);
        assert_eq!(events.lock().unwrap().len(), 3);
        let e = r.unwrap_err();
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "cannot reach http://127.0.0.1:1 after 4 attempts: connection refused"
        );
    }

    #[test]
    fn permanent_errors_fail_fast() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = run(retry_from(
            Duration::from_millis(1),
            MAX_ATTEMPTS,
            "manifest",
            &|_| {},
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ImageError::ManifestUnknown {
                    endpoint: "h".into(),
                    repository: "r".into(),
                    what: "tag \"x\"".into(),
                })
            },
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(!r.unwrap_err().is_transient());
    }

    #[test]
    fn success_after_a_transient_failure() {
        let calls = AtomicU32::new(0);
        let r = run(retry_from(
            Duration::from_millis(1),
            MAX_ATTEMPTS,
            "blob",
            &|_| {},
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(ImageError::Registry {
                        endpoint: "h".into(),
                        status: Some(503),
                        message: "503".into(),
                        transient: true,
                    })
                } else {
                    Ok(7)
                }
            },
        ));
        assert_eq!(r.unwrap(), 7);
    }
}

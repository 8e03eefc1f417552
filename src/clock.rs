//! berth's one clock for time-boxed things (GPU leases, idle stops): seconds since the epoch.
//!
//! `BERTH_NOW` (seconds since the epoch) replaces it in debug builds only, so the integration
//! tests can move time forward; a release build never lets a caller move time (to see another
//! user's lease as ended, or an environment as idle for hours).

/// Seconds since the epoch now, or `BERTH_NOW` in a debug build.
pub fn now() -> u64 {
    if cfg!(debug_assertions)
        && let Some(t) = std::env::var("BERTH_NOW").ok().and_then(|v| v.trim().parse().ok())
    {
        return t;
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// RFC 3339 (UTC, seconds) of seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    crate::jobs::store::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

//! Moving environments between machines: `pack`/`unpack` (one verified archive for offline
//! servers), `ship` (engine to engine over SSH, only the layers the other side lacks) and
//! `push` (to a registry).
//!
//! Invariants: bytes stream (never a whole image in memory); what the engine is asked to keep
//! has been verified first, or the transfer is aborted so that it keeps nothing; a file appears
//! at its target path only complete; no secret from `[env]` travels.

pub mod bridge;
pub mod digest;
pub mod image_check;
pub mod layout;
pub mod manifest;
pub mod pack;
pub mod pinned;
pub mod progress;
pub mod push;
pub mod remote;
pub mod save;
pub mod ship;
#[cfg(test)]
mod tests;
pub mod unpack;

/// zstd level for packs and transfers: level 3 is as fast as the engine can save on two cores
/// and smaller than gzip -6 (level 1 is no faster there and larger than gzip).
pub const ZSTD_LEVEL: i32 = 3;

/// Worker threads for zstd: every core; the engine's save is the other half of the work.
pub fn zstd_threads() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2)
}

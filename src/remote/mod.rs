//! Working on a server from the laptop (`berth --on NAME …`).

pub mod sync;

//! Lianxin server library: storage first; auth and the HTTP API build on it.

pub mod clock;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;

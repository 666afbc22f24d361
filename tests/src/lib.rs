//! Shared helpers for Lianxin integration tests and the sync benchmark.

pub use lianxin_testkit::{browser, linksim, stock};
pub mod phone;
pub mod scenario;
pub mod tiers;

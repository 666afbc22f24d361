//! Shared helpers for Lianxin integration tests and the sync benchmark.

pub mod browser;
pub mod linksim;
pub mod phone;
pub mod scenario;
pub mod stock;

//! Shared helpers for Lianxin integration tests.

pub mod linksim;

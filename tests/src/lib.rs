//! Shared helpers for Lianxin integration tests.

//! Lianxin server library.

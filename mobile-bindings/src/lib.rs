//! Lianxin mobile bindings.

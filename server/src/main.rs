//! The `lianxin` binary.

fn main() {}

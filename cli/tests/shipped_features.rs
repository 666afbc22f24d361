//! The shipped `lianxin` binary is not built with the server's `testing` feature (test-only
//! doors such as minting sessions without a login): `cargo tree` over the binary's normal
//! dependencies, as `cargo build --bin lianxin` resolves them, names no such feature.

use std::process::Command;

#[test]
fn the_shipped_binary_does_not_enable_the_servers_testing_feature() -> anyhow::Result<()> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--manifest-path", manifest, "-p", "lianxin"])
        .args(["-e", "normal,features", "-i", "lianxin-server"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout)?;
    anyhow::ensure!(tree.contains("lianxin-server feature \"default\""), "{tree}");
    anyhow::ensure!(
        !tree.contains("feature \"testing\""),
        "the binary's dependencies enable the server's testing feature:\n{tree}"
    );
    Ok(())
}

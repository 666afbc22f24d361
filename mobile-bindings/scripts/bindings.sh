#!/usr/bin/env bash
# Builds the release library and generates the Kotlin, Swift and Python bindings.
#
#   mobile-bindings/scripts/bindings.sh [OUT_DIR]      (default: target/bindings)
#
# OUT_DIR/python holds lianxin_mobile.py beside the library (import it with
# OUT_DIR/python on sys.path); OUT_DIR/kotlin the Kotlin package
# uniffi.lianxin_mobile (load the library with JNA); OUT_DIR/swift the Swift
# source, the C header and the module map. Extra cargo flags come from
# CARGO_FLAGS, e.g. CARGO_FLAGS="--features tls".
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
out="${1:-$target/bindings}"
cd "$root"

# shellcheck disable=SC2086
cargo build --release -p lianxin-mobile --lib ${CARGO_FLAGS:-}
case "$(uname -s)" in
  Darwin) lib="$target/release/liblianxin_mobile.dylib" ;;
  *) lib="$target/release/liblianxin_mobile.so" ;;
esac

for language in python kotlin swift; do
  rm -rf "${out:?}/$language"
  cargo run -q -p lianxin-mobile --bin uniffi-bindgen -- \
    generate --no-format --library "$lib" --language "$language" --out-dir "$out/$language"
done
cp "$lib" "$out/python/"
echo "bindings in $out (library: $lib)"

//! Generates the Kotlin, Swift and Python sources for the built library:
//! `uniffi-bindgen generate --library <liblianxin_mobile.so> --language python --out-dir <dir>`.

fn main() {
    uniffi::uniffi_bindgen_main()
}

//! Build script: embeds the browser assets of `assets/` (the console's and, later, the resident
//! app's CSS, JavaScript and icons) with content-hashed names and their gzip and brotli forms.
//!
//! Compressing here rather than at start-up or per request keeps brotli out of the server
//! binary and costs each build a few tens of milliseconds. The generated table is included by
//! `src/web/assets.rs`; nothing is fetched and no node tool runs.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// File kinds served, with their content type. Anything else under `assets/` (licences,
/// notes) is kept beside the files but not served.
const TYPES: &[(&str, &str)] = &[
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("ico", "image/x-icon"),
    ("webmanifest", "application/manifest+json"),
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("assets");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir"));
    println!("cargo:rerun-if-changed=assets");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .strip_prefix(&root)
            .expect("under assets")
            .to_str()
            .expect("utf-8 asset path")
            .replace('\\', "/");
        let Some((stem, ext)) = name.rsplit_once('.') else {
            continue;
        };
        let Some((_, content_type)) = TYPES.iter().find(|(e, _)| *e == ext) else {
            continue;
        };
        let raw = std::fs::read(&path).expect("read asset");
        let hash = hex(&Sha256::digest(&raw))[..12].to_owned();
        let flat = name.replace('/', "__");
        let compressible = !matches!(ext, "png" | "ico");
        let gzip = compressible.then(|| gzip(&raw)).filter(|z| z.len() < raw.len());
        let br = compressible.then(|| brotli(&raw)).filter(|z| z.len() < raw.len());
        let variant = |bytes: &Option<Vec<u8>>, suffix: &str| match bytes {
            Some(bytes) => {
                let file = out.join(format!("{flat}.{suffix}"));
                std::fs::write(&file, bytes).expect("write compressed asset");
                format!("Some(include_bytes!({:?}))", file.display().to_string())
            }
            None => "None".to_owned(),
        };
        let gzip = variant(&gzip, "gz");
        let br = variant(&br, "br");
        writeln!(
            table,
            "    Asset {{ name: {name:?}, path: {path:?}, content_type: {content_type:?}, etag: {etag:?}, \
             raw: include_bytes!({src:?}), gzip: {gzip}, br: {br} }},",
            path = format!("/assets/{stem}.{hash}.{ext}"),
            etag = format!("\"{hash}\""),
            src = path.display().to_string(),
        )
        .expect("write to string");
    }
    table.push(']');
    std::fs::write(out.join("assets.rs"), table).expect("write asset table");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read assets dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(raw).expect("gzip");
    z.finish().expect("gzip")
}

fn brotli(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &raw[..], &mut out, &params).expect("brotli");
    out
}

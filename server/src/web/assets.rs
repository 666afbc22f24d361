//! The browser assets embedded in the binary (from `server/assets/`, by `build.rs`): served
//! under content-hashed names, precompressed, cacheable for a year.
//!
//! A hashed name changes whenever the file does, so a page never mixes an old script with a new
//! one and browsers need not revalidate (`immutable`). The ETag is the same hash, for clients
//! that revalidate anyway.

use axum::body::Body;
use axum::extract::Path;
use axum::http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file and its compressed forms (absent when compression would not shrink it).
#[derive(Debug)]
pub struct Asset {
    /// The path under `assets/`, e.g. `console.css`.
    pub name: &'static str,
    /// The URL it is served at, e.g. `/assets/console.1f2e3d4c5b6a.css`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub etag: &'static str,
    pub raw: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub br: Option<&'static [u8]>,
}

/// Every embedded asset.
pub static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset named `name` (its path under `assets/`).
pub fn get(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The URL of an embedded asset, for templates. Panics on an unknown name, which every
/// template render in the tests would hit.
pub fn url(name: &str) -> &'static str {
    get(name).unwrap_or_else(|| panic!("no embedded asset {name:?}")).path
}

/// The encodings a request accepts, best first: brotli, then gzip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    /// The best encoding `Accept-Encoding` allows (a `q=0` entry refuses one).
    pub fn negotiate(headers: &HeaderMap) -> Encoding {
        let accept = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
        let allows = |name: &str| {
            accept.split(',').any(|part| {
                let mut bits = part.split(';').map(str::trim);
                let coding = bits.next().unwrap_or("");
                let refused = bits
                    .filter_map(|p| p.strip_prefix("q="))
                    .any(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0));
                (coding.eq_ignore_ascii_case(name) || coding == "*") && !refused
            })
        };
        if allows("br") {
            Encoding::Brotli
        } else if allows("gzip") {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

impl Asset {
    /// The bytes to send for `encoding`, with the encoding actually used.
    pub fn body(&self, encoding: Encoding) -> (&'static [u8], Option<&'static str>) {
        match (encoding, self.br, self.gzip) {
            (Encoding::Brotli, Some(br), _) => (br, Some("br")),
            (Encoding::Brotli | Encoding::Gzip, _, Some(gz)) => (gz, Some("gzip")),
            _ => (self.raw, None),
        }
    }
}

/// `GET /assets/{*file}`: a hashed asset path. Unknown names and stale hashes are 404s, so a
/// page from an older build asks again rather than getting a different file under its name.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("/assets/{file}");
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let (bytes, coding) = asset.body(Encoding::negotiate(&headers));
        let mut r = Response::new(Body::from(bytes));
        if let Some(coding) = coding {
            r.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        r
    };
    let h = response.headers_mut();
    h.insert(ETAG, HeaderValue::from_static(asset.etag));
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// The vendored htmx is the file `npm pack htmx.org@2.0.11` ships as `dist/htmx.min.js`.
    const HTMX_SHA256: &str = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717";

    #[test]
    fn vendored_htmx_is_the_pinned_release() {
        let htmx = get("vendor/htmx-2.0.11.min.js").expect("htmx is embedded");
        let digest: String = Sha256::digest(htmx.raw).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, HTMX_SHA256, "vendored htmx differs from the pinned release");
    }

    #[test]
    fn compressed_forms_decode_to_the_file() {
        use std::io::Read;
        for asset in ASSETS {
            if let Some(gz) = asset.gzip {
                let mut out = Vec::new();
                flate2_read(gz, &mut out);
                assert_eq!(out, asset.raw, "{}", asset.name);
            }
            if let Some(br) = asset.br {
                let mut out = Vec::new();
                brotli::Decompressor::new(br, 4096)
                    .read_to_end(&mut out)
                    .expect("brotli");
                assert_eq!(out, asset.raw, "{}", asset.name);
            }
            assert!(asset.path.starts_with("/assets/"), "{}", asset.path);
        }
    }

    fn flate2_read(gz: &[u8], out: &mut Vec<u8>) {
        use std::io::Read;
        flate2::read::GzDecoder::new(gz).read_to_end(out).expect("gzip");
    }

    #[test]
    fn negotiation_prefers_brotli_and_honours_refusals() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            Encoding::negotiate(&h)
        };
        assert_eq!(with("gzip, deflate, br, zstd"), Encoding::Brotli);
        assert_eq!(with("gzip"), Encoding::Gzip);
        assert_eq!(with("br;q=0, gzip"), Encoding::Gzip);
        assert_eq!(with("identity"), Encoding::Identity);
        assert_eq!(Encoding::negotiate(&HeaderMap::new()), Encoding::Identity);
    }
}

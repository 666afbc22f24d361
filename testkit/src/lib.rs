//! What the tests and the benchmarks share, without the server: the link
//! simulator (`linksim`), a stock automerge-repo v1 client (`stock`, the
//! baseline the batched extension is measured against) and a small WebDriver
//! client for headless Chromium (`browser`).

pub mod browser;
pub mod linksim;
pub mod stock;

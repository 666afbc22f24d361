//! What the browser tests and `lianxin bench app` share, without the server: the link
//! simulator (`linksim`) and a small WebDriver client for headless Chromium (`browser`).

pub mod browser;
pub mod linksim;

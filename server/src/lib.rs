//! Lianxin server library: configuration, storage, auth, the HTTP API and the staff console.
//!
//! The `lianxin` binary is a thin wrapper over [`run`] and the [`admin`]
//! commands; tests build an [`AppState`] and [`serve`] [`app`] on port 0.

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod check;
pub mod clock;
pub mod config;
pub mod console;
pub mod docs;
pub mod error;
pub mod housekeeping;
pub mod http;
pub mod notify;
pub mod server;
pub mod state;
pub mod station;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod web;
pub mod write;

pub use config::Config;
pub use error::ApiError;
pub use http::app;
pub use server::{ServerError, run, serve};
pub use state::AppState;

//! HTTP contract tests: every route and error case of the v2.3.0 API, driven through
//! the real router on a loopback port with an in-memory WhatsApp session.

mod app;
mod dashboard;
mod errors;
mod helpers;
mod media;
#[path = "../common/samples.rs"]
mod samples;
mod send;
mod user;

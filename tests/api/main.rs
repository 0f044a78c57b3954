//! HTTP contract tests: every route and error case of the v2.3.0 API, driven through
//! the real router on a loopback port with an in-memory WhatsApp session.

mod app;
mod chat;
#[path = "../common/mod.rs"]
mod common;
mod dashboard;
mod devices;
mod dialect;
mod errors;
mod group;
mod helpers;
mod hostile_media;
mod later_sends;
mod lenient;
mod mcp;
mod media;
mod message;
mod security;
mod send;
mod spec;
mod user;
mod ws;

//! End-to-end tests: the real server binary, with the real whatsapp-rust client, against
//! the fake WhatsApp server (`tests/fake-whatsapp`). Built only with `--features e2e`.

mod accounts;
mod actions;
mod behaviour;
mod chats;
mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod faults;
mod go_switch;
mod groups;
mod harness;
mod history;
mod incoming;
mod later_sends;
mod lifecycle;
mod mcp;
mod postgres;
mod sandbox;
mod send;
mod session;
mod startup;
mod store;
mod user;
mod webhook;
mod ws;

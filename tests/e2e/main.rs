//! End-to-end tests: the real server binary, with the real whatsapp-rust client, against
//! the fake WhatsApp server (`tests/fake-whatsapp`). Built only with `--features e2e`.

mod faults;
mod harness;
#[path = "../common/samples.rs"]
mod samples;
mod sandbox;
mod send;
mod session;
mod user;

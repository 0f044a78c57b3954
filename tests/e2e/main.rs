//! End-to-end tests: the real server binary, with the real whatsapp-rust client, against
//! the fake WhatsApp server (`tests/fake-whatsapp`). Built only with `--features e2e`.

/// Runs each named test (a plain `async fn` of the calling module) twice: as
/// `on_files::<name>` on the default SQLite files, and as `on_postgres::<name>`
/// with every server it starts keeping everything in a fresh PostgreSQL
/// database (`--db-uri`, see [`harness::on_postgres`]).
#[macro_export]
macro_rules! on_both_stores {
    ($($test:ident),+ $(,)?) => {
        mod on_files {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test().await
                }
            )+
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    $crate::harness::on_postgres(super::$test()).await
                }
            )+
        }
    };
}

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

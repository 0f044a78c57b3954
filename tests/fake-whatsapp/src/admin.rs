//! The admin API of the fake, for tests and for trying the API by hand:
//!
//! | route | what it does |
//! |---|---|
//! | `POST /admin/phones` `{"user", "lid", "name"}` | another phone (account) with keys of its own, see [`crate::FakeWhatsApp::add_phone`] |
//! | `GET /admin/phones` | every phone's number, the default one first |
//! | `POST /admin/scan` `{"qr": "<QR text>", "phone"}` | the phone (`phone`, a number; the default phone without it) scans a QR code; returns the new device |
//! | `GET /admin/pair-codes` | companions waiting for their pairing code to be typed (see [`crate::PendingCode`]) |
//! | `POST /admin/enter-code` `{"code": "ABCD-1234"}` | the phone's user types a pairing code; the companion is linked with the phone it asked the code for; returns the new device |
//! | `GET /admin/devices` | linked devices of every phone (and whether they logged out) |
//! | `GET /admin/logins` | every connection: handshake pattern and device |
//! | `GET /admin/messages` | every message a recipient decrypted (text, media hash, ack time) |
//! | `GET /admin/problems` | what the fake refused, and why |
//! | `POST /admin/contacts` `{"user", "status", "picture_id", "business_name"}` | add an account |
//! | `POST /admin/groups` `{"id", "subject", "admin", "members"}` | add a group |
//! | `GET /admin/groups` | every group with its state (see [`crate::Group`]) |
//! | `POST /admin/deliver` `{"from", "text", "to"}` | a contact sends a text to the account of phone `to` (the default phone without it): to its latest logged-in companion |
//! | `POST /admin/drop[?phone=N]` | drop every open connection (or phone `N`'s), as a network failure would |
//! | `POST /admin/unlink[?phone=N]` | the phones (or phone `N`) unlink their companions: devices marked removed, each logged-in one gets `<stream:error code="401"><conflict type="device_removed"/>` and is closed; returns `{"told": n}` |
//! | `POST /admin/replace[?phone=N]` | another client takes over: each logged-in connection (of phone `N`'s devices) gets `<stream:error><conflict type="replaced"/>` and is closed (devices stay linked); returns `{"told": n}` |
//! | `POST /admin/faults` | faults for what comes next (see [`Faults`]): `{"refuse_connections", "withhold_acks", "ack_delay_ms", "iq_errors": {xmlns: code}, "flood_per_message", "qr_refs", "ack_batch"}`, each optional |
//! | `GET /admin/flood` | what the flood fault sent and the client acknowledged: `{"sent", "acked"}` |
//! | `GET /admin/read-receipts` | read and played receipts the companion sent (see [`crate::ReadReceipt`]) |
//! | `POST /admin/history` `{"phone", "chats", "messages", "per_chunk", "start"}` | the phone (default one without `phone`) pushes a generated history of `chats` × `messages` texts ([`crate::generated_history`], `start` its first time) to its companions, `per_chunk` messages a chunk (one chunk without it); returns what was pushed ([`crate::PushedHistory`]) |
//! | `GET /admin/history` | every history chunk pushed, how often its blob was downloaded, and the `hist_sync` receipts |
//! | `GET /admin/app-state` | app state: each collection's version, whether the companion acknowledged the phone's key share, every verified mutation (see [`crate::AppStateMutation`]) |

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::{Faults, Shared};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/admin/phones", post(add_phone).get(phones))
        .route("/admin/scan", post(scan))
        .route("/admin/pair-codes", get(pair_codes))
        .route("/admin/enter-code", post(enter_code))
        .route("/admin/devices", get(devices))
        .route("/admin/logins", get(logins))
        .route("/admin/drop", post(drop_all))
        .route("/admin/unlink", post(unlink))
        .route("/admin/replace", post(replace))
        .route("/admin/flood", get(flood))
        .route("/admin/faults", post(faults))
        .route("/admin/messages", get(messages))
        .route("/admin/deliver", post(deliver))
        .route("/admin/problems", get(problems))
        .route("/admin/contacts", post(add_contact))
        .route("/admin/groups", post(add_group).get(list_groups))
        .route("/admin/history", post(push_history).get(history))
}

#[derive(Deserialize)]
struct GeneratedHistory {
    phone: Option<String>,
    chats: usize,
    messages: usize,
    per_chunk: Option<usize>,
    start: Option<u64>,
}

async fn push_history(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<GeneratedHistory>,
) -> Response {
    let phone = body.phone.as_deref().unwrap_or(crate::PHONE_USER);
    let start = body.start.unwrap_or(1_700_000_000);
    let chats = crate::generated_history(body.chats, body.messages, start);
    let options = crate::HistoryOptions {
        messages_per_chunk: body.per_chunk.unwrap_or(usize::MAX),
        ..crate::HistoryOptions::default()
    };
    match crate::history::push(&shared, phone, &chats, options).await {
        Ok(pushed) => Json(pushed).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

async fn history(State(shared): State<Arc<Shared>>) -> Response {
    let chunks = crate::history::chunks(&shared);
    let world = shared.world();
    let chunks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let token = chunk.direct_path.rsplit('/').next().unwrap_or_default();
            let downloads = world.downloads.get(token).copied().unwrap_or(0);
            json!({ "chunk": chunk, "downloads": downloads })
        })
        .collect();
    drop(world);
    Json(json!({
        "chunks": chunks,
        "receipts": crate::history::receipts(&shared),
    }))
    .into_response()
}

async fn messages(State(shared): State<Arc<Shared>>) -> Response {
    let world = shared.world();
    Json(
        world
            .received
            .iter()
            .map(|r| r.summary())
            .collect::<Vec<_>>(),
    )
    .into_response()
}

#[derive(Deserialize)]
struct Deliver {
    from: String,
    text: String,
    /// The phone whose account gets it; the default phone when absent.
    to: Option<String>,
}

async fn deliver(State(shared): State<Arc<Shared>>, Json(body): Json<Deliver>) -> Response {
    let to = body.to.as_deref().unwrap_or(crate::PHONE_USER);
    match crate::deliver(&shared, to, &body.from, crate::text_message(&body.text)).await {
        Ok(id) => Json(json!({ "id": id })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

async fn problems(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.world().problems.clone()).into_response()
}

#[derive(Deserialize)]
struct NewContact {
    user: String,
    #[serde(flatten)]
    info: crate::ContactInfo,
}

async fn add_contact(State(shared): State<Arc<Shared>>, Json(body): Json<NewContact>) -> Response {
    match crate::add_contact(&shared, &body.user, body.info) {
        Ok(()) => Json(json!({ "user": body.user })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

#[derive(Deserialize)]
struct NewGroup {
    id: String,
    #[serde(flatten)]
    group: crate::FakeGroup,
}

async fn add_group(State(shared): State<Arc<Shared>>, Json(body): Json<NewGroup>) -> Response {
    if body.id.is_empty() || !body.id.bytes().all(|b| b.is_ascii_digit()) {
        return error(
            StatusCode::BAD_REQUEST,
            "a group id is digits only".to_owned(),
        );
    }
    let group = crate::groups::from_setup(&body.id, body.group, &shared.phone.user);
    shared.world().groups.insert(body.id.clone(), group);
    Json(json!({ "id": format!("{}@g.us", body.id) })).into_response()
}

async fn list_groups(State(shared): State<Arc<Shared>>) -> Response {
    let world = shared.world();
    let mut groups: Vec<&crate::Group> = world.groups.values().collect();
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    Json(groups).into_response()
}

#[derive(Deserialize)]
struct NewPhone {
    user: String,
    lid: String,
    name: String,
}

async fn add_phone(State(shared): State<Arc<Shared>>, Json(body): Json<NewPhone>) -> Response {
    match crate::add_phone(&shared, &body.user, &body.lid, &body.name) {
        Ok(()) => Json(json!({ "user": body.user, "lid": body.lid })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

async fn phones(State(shared): State<Arc<Shared>>) -> Response {
    let world = shared.world();
    let users: Vec<&str> = world
        .accounts
        .iter()
        .map(|a| a.phone.user.as_str())
        .collect();
    Json(users).into_response()
}

#[derive(Deserialize)]
struct Scan {
    qr: String,
    /// The phone that scans; the default phone when absent.
    phone: Option<String>,
}

/// `?phone=N`: the phone an admin action is limited to.
#[derive(Deserialize)]
struct OfPhone {
    phone: Option<String>,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn scan(State(shared): State<Arc<Shared>>, Json(body): Json<Scan>) -> Response {
    let phone = body.phone.as_deref().unwrap_or(crate::PHONE_USER);
    match crate::scan(&shared, phone, &body.qr).await {
        Ok(device) => Json(device).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

async fn pair_codes(State(shared): State<Arc<Shared>>) -> Response {
    Json(crate::pair_codes(&shared)).into_response()
}

#[derive(Deserialize)]
struct EnterCode {
    code: String,
}

async fn enter_code(State(shared): State<Arc<Shared>>, Json(body): Json<EnterCode>) -> Response {
    match crate::enter_code(&shared, &body.code).await {
        Ok(device) => Json(device).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

async fn devices(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.world().devices.clone()).into_response()
}

async fn logins(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.world().logins.clone()).into_response()
}

async fn drop_all(State(shared): State<Arc<Shared>>, Query(of): Query<OfPhone>) -> Response {
    let dropped = crate::drop_connections(&shared, of.phone.as_deref());
    Json(json!({ "dropped": dropped })).into_response()
}

async fn unlink(State(shared): State<Arc<Shared>>, Query(of): Query<OfPhone>) -> Response {
    Json(json!({ "told": crate::unlink_device(&shared, of.phone.as_deref()) })).into_response()
}

async fn replace(State(shared): State<Arc<Shared>>, Query(of): Query<OfPhone>) -> Response {
    Json(json!({ "told": crate::replace_session(&shared, of.phone.as_deref()) })).into_response()
}

async fn flood(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.world().flood).into_response()
}

async fn faults(State(shared): State<Arc<Shared>>, Json(faults): Json<Faults>) -> Response {
    shared.world().faults = faults.clone();
    Json(faults).into_response()
}

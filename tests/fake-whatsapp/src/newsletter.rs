//! Channels (newsletters) the fake's account follows, answered through WhatsApp's
//! GraphQL endpoint (`w:mex`): a `<query query_id=…>` carrying JSON variables, and a
//! `<result>` carrying JSON data. Only the queries modelled here are answered; any
//! other document id is an error, as a stale persisted query is at WhatsApp.

use serde::{Deserialize, Serialize};
use serde_json::json;
use whatsapp_rust::NodeBuilder;
use whatsapp_rust::wacore_binary::node::Node;

use crate::Shared;
use crate::node::{bytes, child, iq_error, iq_result};

/// The persisted query "fetch all newsletters metadata" (WhatsApp Web's document id).
const LIST_SUBSCRIBED: &str = "25399611239711790";

/// A channel the account follows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FakeNewsletter {
    /// Digits, without `@newsletter`.
    pub id: String,
    pub name: String,
    pub description: String,
    pub subscribers: u64,
    pub verified: bool,
    /// `subscriber`, `admin` or `owner`.
    pub role: String,
    pub invite: String,
    /// Unix seconds.
    pub created_at: u64,
}

pub fn answer(shared: &Shared, node: &Node) -> Node {
    let Some(query) = child(node, "query") else {
        let problem = "a w:mex request without <query>".to_owned();
        shared.world().problems.push(problem);
        return iq_error(node, 400, "bad-request");
    };
    let doc = crate::node::attr(query, "query_id").unwrap_or_default();
    // The variables are a JSON object, whatever the document.
    let variables = bytes(query)
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .filter(|v| v["variables"].is_object());
    if variables.is_none() {
        let problem = format!("w:mex query {doc} does not carry JSON {{\"variables\": {{…}}}}");
        shared.world().problems.push(problem);
        return iq_error(node, 400, "bad-request");
    }
    if doc != LIST_SUBSCRIBED {
        return iq_error(node, 404, "item-not-found");
    }
    let list: Vec<_> = shared
        .world()
        .newsletters
        .iter()
        .map(|n| {
            json!({
                "id": format!("{}@newsletter", n.id),
                "state": { "type": "active" },
                "thread_metadata": {
                    "creation_time": n.created_at.to_string(),
                    "invite": n.invite,
                    "name": { "text": n.name },
                    "description": { "text": n.description },
                    "subscribers_count": n.subscribers.to_string(),
                    "verification": if n.verified { "VERIFIED" } else { "UNVERIFIED" },
                    "picture": { "direct_path": format!("/v/t61/{}-picture", n.id) },
                    "preview": { "direct_path": format!("/v/t61/{}-preview", n.id) },
                },
                "viewer_metadata": { "role": n.role },
            })
        })
        .collect();
    let data = json!({ "data": { "xwa2_newsletter_subscribed": list } });
    iq_result(
        node,
        vec![
            NodeBuilder::new("result")
                .bytes(data.to_string().into_bytes())
                .build(),
        ],
    )
}

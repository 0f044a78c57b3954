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
/// The persisted mutation "leave newsletter".
const LEAVE: &str = "9767147403369991";

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
    /// What the channel posted, oldest first: texts, with server ids 100, 101…
    #[serde(default)]
    pub posts: Vec<String>,
}

impl FakeNewsletter {
    pub fn jid(&self) -> String {
        format!("{}@newsletter", self.id)
    }
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
    if doc == LEAVE
        && let Some(variables) = &variables
    {
        return leave(shared, node, &variables["variables"]);
    }
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

/// `leave_newsletter`: unfollows a channel the account follows; another is an error
/// as GraphQL reports one (no data, an error with a code).
fn leave(shared: &Shared, node: &Node, variables: &serde_json::Value) -> Node {
    let id = variables["newsletter_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let data = {
        let mut world = shared.world();
        let before = world.newsletters.len();
        world.newsletters.retain(|n| n.jid() != id);
        if world.newsletters.len() < before {
            json!({ "data": { "xwa2_newsletter_leave_v2": { "id": id } } })
        } else {
            json!({
                "data": { "xwa2_newsletter_leave_v2": null },
                "errors": [{ "message": "not a follower", "extensions": { "error_code": 404, "severity": "CRITICAL" } }],
            })
        }
    };
    result(node, &data)
}

fn result(node: &Node, data: &serde_json::Value) -> Node {
    iq_result(
        node,
        vec![
            NodeBuilder::new("result")
                .bytes(data.to_string().into_bytes())
                .build(),
        ],
    )
}

/// `<iq xmlns="newsletter" type="get" to="ID@newsletter"><messages count before?/>`:
/// the channel's posts before `before` (a server id), the latest `count` of them,
/// oldest first, as plaintext messages.
pub fn messages(shared: &Shared, node: &Node) -> Node {
    use whatsapp_rust::buffa::Message as _;
    let to = crate::node::attr(node, "to").unwrap_or_default();
    let Some(request) = child(node, "messages") else {
        let problem = format!("a newsletter query to {to} without <messages>");
        shared.world().problems.push(problem);
        return iq_error(node, 400, "bad-request");
    };
    let count = crate::node::attr(request, "count")
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| (1..=100).contains(c));
    let Some(count) = count else {
        let problem = format!("a newsletter query to {to} with a bad count");
        shared.world().problems.push(problem);
        return iq_error(node, 400, "bad-request");
    };
    let before = crate::node::attr(request, "before").and_then(|b| b.parse::<u64>().ok());
    let Some(channel) = shared
        .world()
        .newsletters
        .iter()
        .find(|n| n.jid() == to)
        .cloned()
    else {
        return iq_error(node, 404, "item-not-found");
    };
    let posts: Vec<(u64, &String)> = channel
        .posts
        .iter()
        .enumerate()
        .map(|(i, text)| (100 + i as u64, text))
        .filter(|(id, _)| before.is_none_or(|b| *id < b))
        .collect();
    let start = posts.len().saturating_sub(count);
    let children: Vec<Node> = posts[start..]
        .iter()
        .map(|(server_id, text)| {
            let message = whatsapp_rust::waproto::whatsapp::Message {
                conversation: Some((*text).clone()),
                ..Default::default()
            };
            NodeBuilder::new("message")
                .attr("id", format!("NL{server_id}"))
                .attr("server_id", server_id.to_string())
                .attr("t", (channel.created_at + server_id * 60).to_string())
                .attr("type", "text")
                .children([
                    NodeBuilder::new("plaintext")
                        .bytes(message.encode_to_vec())
                        .build(),
                    NodeBuilder::new("reactions")
                        .children([NodeBuilder::new("reaction")
                            .attr("code", "👍")
                            .attr("count", (server_id % 7).to_string())
                            .build()])
                        .build(),
                ])
                .build()
        })
        .collect();
    iq_result(
        node,
        vec![NodeBuilder::new("messages").children(children).build()],
    )
}

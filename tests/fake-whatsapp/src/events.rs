//! Stanzas that tell the companion about things happening around it: group
//! membership changes and incoming calls.

use whatsapp_rust::NodeBuilder;
use whatsapp_rust::wacore_binary::node::Node;

use crate::flood::Owed;

/// `<notification type="w:gp2">` from group `gid@g.us`: `by` (a phone number)
/// `action`s (`add`, `remove`, `promote`, `demote`) `members` (phone numbers).
pub fn group_participants(
    gid: &str,
    action: &str,
    members: &[String],
    by: &str,
    now: u64,
) -> anyhow::Result<(Node, Owed)> {
    let tag = match action {
        "add" => "add",
        "remove" => "remove",
        "promote" => "promote",
        "demote" => "demote",
        other => anyhow::bail!("unknown group action {other:?}"),
    };
    let id = format!("{}", rand::random::<u32>());
    let group = format!("{gid}@g.us");
    let by = format!("{by}@s.whatsapp.net");
    let participants = members.iter().map(|m| {
        NodeBuilder::new("participant")
            .attr("jid", format!("{m}@s.whatsapp.net"))
            .build()
    });
    let node = NodeBuilder::new("notification")
        .attr("type", "w:gp2")
        .attr("from", group.clone())
        .attr("id", id.clone())
        .attr("participant", by.clone())
        .attr("t", now.to_string())
        .children([NodeBuilder::new(tag).children(participants).build()])
        .build();
    Ok((node, Owed::notification("w:gp2", &id, &group, Some(&by))))
}

/// `<call><offer>` from the contact `from` (a phone number): a voice call rings.
pub fn call_offer(from: &str, call_id: &str, now: u64) -> Node {
    let from = format!("{from}@s.whatsapp.net");
    NodeBuilder::new("call")
        .attr("from", from.clone())
        .attr("id", format!("{}", rand::random::<u32>()))
        .attr("t", now.to_string())
        .attr("platform", "android")
        .attr("version", "2.25.1.1")
        .children([NodeBuilder::new("offer")
            .attr("call-id", call_id.to_owned())
            .attr("call-creator", from)
            .build()])
        .build()
}

//! Answers to a logged-in client's queries: usync (devices, status, picture, business),
//! prekey bundles, privacy settings, profile pictures, groups and media hosts, from
//! the data the fake holds. `None` means "not modelled here".

use whatsapp_rust::NodeBuilder;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::wacore_binary::node::Node;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::node::{attr, child, iq_result};
use crate::{Shared, World};

/// `15550001234:2@s.whatsapp.net` or `…@lid` → the account's phone number, if the fake
/// knows the account: one of its phones (a phone's LID counts as that phone) or a
/// contact.
pub fn account_of(world: &World, jid: &str) -> Option<String> {
    let (user, server) = jid.split_once('@')?;
    let user = user.split(':').next().unwrap_or(user);
    if server == "lid" {
        let phone = world.accounts.iter().find(|a| a.phone.lid == user)?;
        return Some(phone.phone.user.clone());
    }
    (world.account(user).is_some() || world.contacts.contains_key(user)).then(|| user.to_owned())
}

pub fn answer(shared: &Shared, node: &Node, xmlns: &str) -> Option<Node> {
    match xmlns {
        "usync" => Some(usync(shared, node)),
        "privacy" if child(node, "privacy").is_some() => {
            let world = shared.world();
            let categories = world
                .privacy
                .iter()
                .map(|(name, value)| {
                    NodeBuilder::new("category")
                        .attr("name", name.clone())
                        .attr("value", value.clone())
                        .build()
                })
                .collect::<Vec<_>>();
            Some(iq_result(
                node,
                vec![NodeBuilder::new("privacy").children(categories).build()],
            ))
        }
        "w:profile:picture" => Some(picture(shared, node)),
        "w:biz" => Some(business_profile(shared, node)),
        "w:g2" => crate::groups::answer(shared, node),
        "w:mex" => Some(crate::newsletter::answer(shared, node)),
        "newsletter" => Some(crate::newsletter::messages(shared, node)),
        "w:m" if child(node, "media_conn").is_some() => Some(iq_result(
            node,
            vec![
                NodeBuilder::new("media_conn")
                    .attr("auth", "fake-media-auth")
                    .attr("ttl", "3600")
                    .children([NodeBuilder::new("host")
                        .attr("hostname", shared.host.clone())
                        .build()])
                    .build(),
            ],
        )),
        _ => None,
    }
}

fn devices_node() -> Node {
    NodeBuilder::new("devices")
        .children([NodeBuilder::new("device-list")
            .children([NodeBuilder::new("device").attr("id", "0").build()])
            .build()])
        .build()
}

/// Device lists, and for `mode="full"` queries (user info) status, picture and business.
fn usync(shared: &Shared, node: &Node) -> Node {
    let world = shared.world();
    let Some(usync) = child(node, "usync") else {
        return crate::node::iq_error(node, 400, "bad-request");
    };
    let wanted: Vec<String> = child(usync, "query")
        .and_then(|q| q.children())
        .unwrap_or_default()
        .iter()
        .map(|c| c.tag.to_string())
        .collect();
    // Users by JID, or (the is-on-WhatsApp check) by phone number: `<contact>+1…`.
    let users: Vec<(String, bool)> = child(usync, "list")
        .map(|list| {
            list.get_children_by_tag("user")
                .filter_map(|u| match attr(u, "jid") {
                    Some(jid) => Some((jid, false)),
                    None => {
                        let number = child(u, "contact")?.content_as_string()?;
                        let digits = number.trim_start_matches('+');
                        Some((format!("{digits}@s.whatsapp.net"), true))
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for (jid, by_number) in users {
        let known = account_of(&world, &jid);
        if by_number {
            // WhatsApp answers every number asked for: `in` or `out`.
            let kind = if known.is_some() { "in" } else { "out" };
            out.push(
                NodeBuilder::new("user")
                    .attr("jid", jid)
                    .children([NodeBuilder::new("contact").attr("type", kind).build()])
                    .build(),
            );
            continue;
        }
        let Some(user) = known else {
            continue; // not on WhatsApp
        };
        let contact = world.contacts.get(&user);
        let mut parts = Vec::new();
        for protocol in &wanted {
            match protocol.as_str() {
                "devices" => parts.push(devices_node()),
                "status" => {
                    if let Some(text) = contact.and_then(|c| c.status.clone()) {
                        parts.push(
                            NodeBuilder::new("status")
                                .attr("t", "1700000000")
                                .string_content(text)
                                .build(),
                        );
                    }
                }
                "picture" => {
                    if let Some(id) = contact.and_then(|c| c.picture_id) {
                        parts.push(
                            NodeBuilder::new("picture")
                                .attr("id", id.to_string())
                                .build(),
                        );
                    }
                }
                "business" => {
                    if let Some(name) = contact.and_then(|c| c.business_name.clone()) {
                        let details = wa::verified_name_certificate::Details {
                            serial: Some(1),
                            issuer: Some("smb:wa".to_owned()),
                            verified_name: Some(name),
                            ..Default::default()
                        }
                        .encode_to_vec();
                        let certificate = wa::VerifiedNameCertificate {
                            details: Some(details),
                            ..Default::default()
                        }
                        .encode_to_vec();
                        parts.push(
                            NodeBuilder::new("business")
                                .children([NodeBuilder::new("verified_name")
                                    .bytes(certificate)
                                    .build()])
                                .build(),
                        );
                    }
                }
                _ => {}
            }
        }
        out.push(
            NodeBuilder::new("user")
                .attr("jid", jid)
                .children(parts)
                .build(),
        );
    }
    let reply = NodeBuilder::new("usync")
        .attr("sid", attr(usync, "sid").unwrap_or_default())
        .attr("mode", attr(usync, "mode").unwrap_or_default())
        .attr("context", attr(usync, "context").unwrap_or_default())
        .attr("index", "0")
        .attr("last", "true")
        .children([NodeBuilder::new("list").children(out).build()])
        .build();
    iq_result(node, vec![reply])
}

fn picture(shared: &Shared, node: &Node) -> Node {
    let target = attr(node, "target").unwrap_or_default();
    let set = attr(node, "type").as_deref() == Some("set");
    match (target.ends_with("@g.us"), set) {
        (true, true) => return crate::groups::set_picture(shared, node),
        (true, false) => return crate::groups::picture(shared, node),
        (false, true) => return set_own_picture(shared, node),
        (false, false) => {}
    }
    let world = shared.world();
    let user = target.split(['@', ':']).next().unwrap_or_default();
    let found = world
        .contacts
        .get(user)
        .and_then(|c| c.picture_id.map(|id| (id, c.picture_url.clone())));
    match found {
        Some((id, url)) => iq_result(
            node,
            vec![
                NodeBuilder::new("picture")
                    .attr("id", id.to_string())
                    .attr("type", "image")
                    .attr("url", url)
                    .attr("direct_path", format!("/v/t61.24694-24/{id}.jpg"))
                    .build(),
            ],
        ),
        None => iq_result(
            node,
            vec![
                NodeBuilder::new("picture")
                    .children([NodeBuilder::new("error")
                        .attr("code", "404")
                        .attr("text", "item-not-found")
                        .build()])
                    .build(),
            ],
        ),
    }
}

/// A contact's business profile: every contact with a business name has one.
fn business_profile(shared: &Shared, node: &Node) -> Node {
    let asked = child(node, "business_profile")
        .and_then(|b| child(b, "profile"))
        .and_then(|p| attr(p, "jid"))
        .unwrap_or_default();
    let user = asked
        .split(['@', ':'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let name = shared
        .world()
        .contacts
        .get(&user)
        .and_then(|c| c.business_name.clone());
    let Some(name) = name else {
        return iq_result(node, vec![NodeBuilder::new("business_profile").build()]);
    };
    let text =
        |tag: &'static str, value: String| NodeBuilder::new(tag).string_content(value).build();
    let profile = NodeBuilder::new("profile")
        .attr("jid", format!("{user}@s.whatsapp.net"))
        .children([
            text("description", format!("{name}: the fake business")),
            // No e-mail: this binary encoder writes any `a@b` text as a JID, which
            // the client then cannot read.
            text("website", format!("https://{user}.example")),
            text("address", "Jl. Fake 1, Jakarta".to_owned()),
            NodeBuilder::new("categories")
                .children([NodeBuilder::new("category")
                    .attr("id", "133436743388217")
                    .string_content("Shopping & retail")
                    .build()])
                .build(),
            NodeBuilder::new("business_hours")
                .attr("timezone", "Asia/Jakarta")
                .children([
                    NodeBuilder::new("business_hours_config")
                        .attr("day_of_week", "mon")
                        .attr("mode", "open_24h")
                        .build(),
                    NodeBuilder::new("business_hours_config")
                        .attr("day_of_week", "tue")
                        .attr("mode", "specific_hours")
                        .attr("open_time", "480")
                        .attr("close_time", "1080")
                        .build(),
                ])
                .build(),
        ])
        .build();
    iq_result(
        node,
        vec![
            NodeBuilder::new("business_profile")
                .children([profile])
                .build(),
        ],
    )
}

/// The companion sets the account's own picture: a JPEG, kept as the phone's.
fn set_own_picture(shared: &Shared, node: &Node) -> Node {
    let bytes = child(node, "picture")
        .and_then(crate::node::bytes)
        .map(<[u8]>::to_vec);
    let mut world = shared.world();
    match bytes {
        Some(jpeg) if jpeg.starts_with(&[0xff, 0xd8, 0xff]) => {
            world.own_pictures.push(jpeg);
            let id = 1_700_000_000 + world.own_pictures.len() as u64;
            iq_result(
                node,
                vec![
                    NodeBuilder::new("picture")
                        .attr("id", id.to_string())
                        .build(),
                ],
            )
        }
        other => {
            let problem = format!(
                "a profile picture that is not a JPEG ({} bytes)",
                other.map_or(0, |b| b.len())
            );
            world.problems.push(problem);
            crate::node::iq_error(node, 406, "not-acceptable")
        }
    }
}

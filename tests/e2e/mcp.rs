//! `/mcp` through a real MCP client (the official TypeScript SDK): the tool list
//! against Go v9.2's, and calls that reach the fake WhatsApp (which decrypts what
//! was sent) or read back from the store; bad arguments are tool errors, never sends.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::mcp_client;
use crate::send::{FRIEND, paired};

/// A tool's properties, required fields and values of `type`/`action`.
type Schema = (Vec<&'static str>, Vec<&'static str>, Vec<&'static str>);

/// Go v9.2's tools (`src/ui/mcp/schemas.go`).
fn go_tools() -> BTreeMap<&'static str, Schema> {
    BTreeMap::from([
        (
            "whatsapp_send",
            (
                vec![
                    "type",
                    "phone",
                    "device_id",
                    "is_forwarded",
                    "message",
                    "reply_message_id",
                    "mentions",
                    "image_url",
                    "caption",
                    "view_once",
                    "compress",
                    "video_url",
                    "gif_playback",
                    "audio_url",
                    "ptt",
                    "file_url",
                    "sticker_url",
                    "latitude",
                    "longitude",
                    "contact_name",
                    "contact_phone",
                    "question",
                    "options",
                    "max_answer",
                    "link",
                    "message_id",
                    "duration",
                    "force_reupload",
                ],
                vec!["type", "phone"],
                vec![
                    "text", "image", "video", "audio", "document", "sticker", "location",
                    "contact", "poll", "link", "forward",
                ],
            ),
        ),
        (
            "whatsapp_message",
            (
                vec![
                    "action",
                    "phone",
                    "message_id",
                    "device_id",
                    "emoji",
                    "message",
                ],
                vec!["action", "phone", "message_id"],
                vec![
                    "react",
                    "edit",
                    "revoke",
                    "delete",
                    "mark_read",
                    "star",
                    "unstar",
                    "download_media",
                ],
            ),
        ),
        (
            "whatsapp_chat",
            (
                vec![
                    "action",
                    "device_id",
                    "chat_jid",
                    "limit",
                    "offset",
                    "search",
                    "has_media",
                    "start_time",
                    "end_time",
                    "media_only",
                    "is_from_me",
                    "archived",
                ],
                vec!["action"],
                vec!["list_chats", "list_contacts", "get_messages", "archive"],
            ),
        ),
        (
            "whatsapp_group",
            (
                vec![
                    "action",
                    "device_id",
                    "group_id",
                    "title",
                    "participants",
                    "invite_link",
                    "reset",
                    "name",
                    "topic",
                    "announce",
                    "locked",
                    "request_action",
                ],
                vec!["action"],
                vec![
                    "create",
                    "join_with_link",
                    "leave",
                    "info",
                    "participants",
                    "add_participants",
                    "remove_participants",
                    "promote",
                    "demote",
                    "invite_link",
                    "set_name",
                    "set_topic",
                    "set_settings",
                    "join_requests",
                    "manage_join_requests",
                ],
            ),
        ),
        (
            "whatsapp_app",
            (
                vec!["action", "device_id", "phone"],
                vec!["action"],
                vec!["status", "login_qr", "login_code", "logout", "reconnect"],
            ),
        ),
    ])
}

fn strings(v: &Value) -> Vec<String> {
    let mut list: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    list.sort();
    list
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    list.sort();
    list
}

/// The text of a tool result (its first content block).
fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn an_mcp_client_lists_go_s_tools_and_its_calls_reach_whatsapp() {
    let (fake, server, _dir) = paired().await;
    let url = format!("{}/mcp", server.base);
    let calls = json!([
        {"name": "whatsapp_app", "arguments": {"action": "status"}},
        {"name": "whatsapp_send", "arguments": {"type": "text", "phone": FRIEND, "message": "hello from an agent"}},
        {"name": "whatsapp_send", "arguments": {"type": "location", "phone": FRIEND, "latitude": "-6.175392", "longitude": "106.827153"}},
        // Bad input: a tool error with the reason, and nothing sent.
        {"name": "whatsapp_send", "arguments": {"type": "text", "phone": FRIEND}},
        {"name": "whatsapp_send", "arguments": {"type": "fax", "phone": FRIEND}},
        {"name": "whatsapp_send", "arguments": {"type": "location", "phone": FRIEND, "latitude": "north", "longitude": "1"}},
        {"name": "whatsapp_send", "arguments": {"type": "text", "phone": FRIEND, "message": "x", "device_id": "nobody"}},
        {"name": "whatsapp_teleport", "arguments": {}},
    ]);
    let sent_ids = |fake: &fake_whatsapp::FakeWhatsApp| {
        let mut ids: Vec<String> = fake.received().into_iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        ids.len()
    };
    let before = sent_ids(&fake);
    let out = mcp_client(&url, None, None, &calls).await;

    // The tool list, diffed against Go's.
    let tools = out["tools"].as_array().unwrap();
    let go = go_tools();
    assert_eq!(
        tools
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "whatsapp_send",
            "whatsapp_message",
            "whatsapp_chat",
            "whatsapp_group",
            "whatsapp_app",
            "whatsapp_search_messages",
            "whatsapp_unread_chats",
        ]
    );
    // Ours, after Go's: read-only, reading the store only.
    for tool in &tools[5..] {
        let hints = &tool["annotations"];
        assert_eq!(hints["readOnlyHint"], true, "{tool}");
        assert_eq!(hints["destructiveHint"], false, "{tool}");
        assert_eq!(hints["openWorldHint"], false, "{tool}");
    }
    for tool in &tools[..5] {
        let name = tool["name"].as_str().unwrap();
        let (properties, required, kinds) = &go[name];
        let schema = &tool["inputSchema"];
        let ours: Vec<String> = {
            let mut keys: Vec<String> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(ours, sorted(properties), "{name}: properties");
        assert_eq!(
            strings(&schema["required"]),
            sorted(required),
            "{name}: required"
        );
        let selector = if name == "whatsapp_send" {
            "type"
        } else {
            "action"
        };
        assert_eq!(
            strings(&schema["properties"][selector]["enum"]),
            sorted(kinds),
            "{name}: {selector}"
        );
        assert!(
            tool["description"].as_str().unwrap().len() > 100,
            "{name}: a description a model can choose by"
        );
        assert_eq!(tool["annotations"]["readOnlyHint"], false, "{name}");
    }
    assert_eq!(
        out["server"]["name"], "WhatsApp Web Multidevice MCP Server",
        "{}",
        out["server"]
    );

    let results = out["results"].as_array().unwrap();
    assert_eq!(
        text_of(&results[0]),
        "connected=true logged_in=true",
        "{}",
        results[0]
    );

    // The text, decrypted by the fake from this account.
    let sent = text_of(&results[1]);
    let id = sent
        .strip_prefix("text sent successfully with ID ")
        .unwrap_or_else(|| panic!("{}", results[1]));
    let received = fake.received();
    let copy = received
        .iter()
        .find(|r| r.id == id)
        .expect("the text reached WhatsApp");
    assert_eq!(copy.recipient, FRIEND);
    assert_eq!(
        copy.message.conversation.as_deref(),
        Some("hello from an agent")
    );

    let location_id = text_of(&results[2])
        .strip_prefix("location sent successfully with ID ")
        .unwrap_or_else(|| panic!("{}", results[2]));
    let location = received
        .iter()
        .find(|r| r.id == location_id)
        .and_then(|r| r.message.location_message.as_option().cloned())
        .expect("the location reached WhatsApp");
    assert_eq!(location.degrees_latitude, Some(-6.175392));

    for (i, why) in [
        (3, "\"message\" is a required property"),
        (4, "\"fax\" is not one of"),
        (5, "latitude"),
        (6, "device not found"),
    ] {
        assert_eq!(results[i]["isError"], true, "call {i}: {}", results[i]);
        assert!(
            text_of(&results[i]).contains(why),
            "call {i}: {}",
            results[i]
        );
    }
    assert!(
        results[7]["protocolError"]
            .as_str()
            .unwrap_or_default()
            .contains("whatsapp_teleport"),
        "{}",
        results[7]
    );
    assert_eq!(
        sent_ids(&fake),
        before + 2,
        "only the two good sends went out"
    );

    // Reads come back from the store; a reaction goes to WhatsApp.
    let chat = format!("{FRIEND}@s.whatsapp.net");
    let path = format!("/chat/{chat}/messages");
    server
        .wait_reply(&path, None, "the text in the store", |r| {
            r.to_string().contains("hello from an agent")
        })
        .await;
    let calls = json!([
        {"name": "whatsapp_chat", "arguments": {"action": "get_messages", "chat_jid": chat, "search": "agent"}},
        {"name": "whatsapp_chat", "arguments": {"action": "list_chats"}},
        {"name": "whatsapp_message", "arguments": {"action": "react", "phone": FRIEND, "message_id": id, "emoji": "👍"}},
        {"name": "whatsapp_chat", "arguments": {"action": "get_messages"}},
        {"name": "whatsapp_group", "arguments": {"action": "set_settings", "group_id": "120363000000000001@g.us"}},
        {"name": "whatsapp_group", "arguments": {"action": "create", "title": "Agents", "participants": [FRIEND]}},
    ]);
    let out = mcp_client(&url, None, None, &calls).await;
    let results = out["results"].as_array().unwrap();
    assert_eq!(
        text_of(&results[0]),
        format!("Retrieved 1 messages from {chat}"),
        "{}",
        results[0]
    );
    assert!(
        results[0]["structuredContent"]
            .to_string()
            .contains("hello from an agent"),
        "{}",
        results[0]
    );
    assert!(
        text_of(&results[1]).starts_with("Retrieved 1 chats (offset 0, limit 25)"),
        "{}",
        results[1]
    );
    assert_eq!(
        text_of(&results[2]),
        format!(
            "Reaction sent (message ID: {})",
            results[2]["structuredContent"]["message_id"]
                .as_str()
                .unwrap_or("?")
        ),
        "{}",
        results[2]
    );
    let reaction = fake
        .received()
        .into_iter()
        .find(|r| r.reaction().is_some())
        .expect("the reaction reached WhatsApp");
    let (key, emoji) = reaction.reaction().unwrap();
    assert_eq!((key.id.as_deref(), emoji), (Some(id), "👍"));
    assert_eq!(results[3]["isError"], true, "{}", results[3]);
    assert!(text_of(&results[3]).contains("chat_jid"), "{}", results[3]);
    assert_eq!(results[4]["isError"], true, "{}", results[4]);
    // A group made through the tool exists at WhatsApp with its member.
    let gid = results[5]["structuredContent"]["group_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", results[5]));
    assert_eq!(
        text_of(&results[5]),
        format!("Created group {gid} with 1 members")
    );
    let group = fake.group(gid).expect("the fake knows the group");
    assert_eq!(group.subject, "Agents");
    assert!(group.members.contains(&FRIEND.to_owned()));
}

#[tokio::test]
async fn read_only_tools_search_the_store_and_list_unread_chats() {
    let (fake, server, _dir) = paired().await;
    let chat = format!("{FRIEND}@s.whatsapp.net");
    fake.deliver(FRIEND, "Is order #12 shipped?").await.unwrap();
    fake.deliver(FRIEND, "Please call me").await.unwrap();
    server
        .wait_reply("/chats", None, "the two messages, unread", |r| {
            r["results"]["data"][0]["unread_count"] == 2
        })
        .await;
    let url = format!("{}/mcp", server.base);
    let received = fake.received().len();
    let calls = json!([
        {"name": "whatsapp_search_messages", "arguments": {"query": "ORDER #12"}},
        {"name": "whatsapp_search_messages", "arguments": {"query": "order", "is_from_me": true}},
        {"name": "whatsapp_unread_chats", "arguments": {}},
        {"name": "whatsapp_search_messages", "arguments": {"query": ""}},
    ]);
    let out = mcp_client(&url, None, None, &calls).await;
    let results = out["results"].as_array().unwrap();
    assert_eq!(
        text_of(&results[0]),
        "Found 1 messages with \"ORDER #12\"; showing 1",
        "{}",
        results[0]
    );
    let found = &results[0]["structuredContent"]["data"][0];
    assert_eq!(found["content"], "Is order #12 shipped?");
    assert_eq!(found["chat_jid"], chat.as_str());
    assert_eq!(found["is_from_me"], false);
    assert!(
        text_of(&results[1]).starts_with("Found 0 messages"),
        "{}",
        results[1]
    );
    assert_eq!(
        text_of(&results[2]),
        "1 chats have unread messages; 2 unread in the 1 shown",
        "{}",
        results[2]
    );
    assert_eq!(
        results[2]["structuredContent"]["data"][0]["jid"],
        chat.as_str()
    );
    assert_eq!(results[3]["isError"], true, "{}", results[3]);
    assert_eq!(fake.received().len(), received, "nothing was sent");

    // The newer message read through the API: the chat has nothing unread any
    // more (it is read up to that message's time).
    let latest = server
        .get(&format!("/chat/{chat}/messages?search=call"))
        .await
        .body["results"]["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = server
        .post_form(&format!("/message/{latest}/read"), &[("phone", FRIEND)])
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    let out = mcp_client(
        &url,
        None,
        None,
        &json!([{"name": "whatsapp_unread_chats", "arguments": {}}]),
    )
    .await;
    assert!(
        text_of(&out["results"][0]).starts_with("0 chats have unread messages"),
        "{}",
        out["results"][0]
    );
}

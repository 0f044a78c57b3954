//! Small helpers to read and build binary nodes.

use whatsapp_rust::NodeBuilder;
use whatsapp_rust::wacore_binary::node::{Node, NodeContent};

/// The server's JID, as the `from` of everything it sends.
pub const SERVER: &str = "s.whatsapp.net";

pub fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs().optional_string(key).map(|v| v.into_owned())
}

pub fn bytes(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(b)) => Some(b),
        Some(NodeContent::String(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

/// `<iq type="result" id=…>` with `children`.
pub fn iq_result(request: &Node, children: Vec<Node>) -> Node {
    let mut b = NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", "result")
        .attr("id", attr(request, "id").unwrap_or_default());
    if !children.is_empty() {
        b = b.children(children);
    }
    b.build()
}

/// `<iq type="error" id=…><error code text/></iq>`.
pub fn iq_error(request: &Node, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", "error")
        .attr("id", attr(request, "id").unwrap_or_default())
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

pub fn child<'a>(node: &'a Node, tag: &str) -> Option<&'a Node> {
    node.get_optional_child(tag)
}

//! `/mcp`: the Model Context Protocol endpoint through which AI agents use an
//! account (Go v9.1+'s streamable HTTP endpoint, built on the official SDK, rmcp).
//!
//! Stateless, with JSON answers, as Go serves it: no session id, no event stream.
//! Each tool call becomes one request to this server's own REST routes, made inside
//! the process as the caller (the same account selection, account key scope,
//! validation and errors as a REST client gets), and its answer becomes the tool's
//! result. A call that fails, or whose arguments do not fit the tool's schema, is a
//! result with `isError` and the reason, never a protocol error or a send.

mod calls;
mod tools;

use std::sync::Arc;

use axum::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

/// The `/mcp` service: tool calls answered through `api` (the REST routes, with
/// their state, without the edge that already checked the `/mcp` request).
pub fn service(
    api: Router,
    statics_dir: std::path::PathBuf,
) -> StreamableHttpService<Mcp, NeverSessionManager> {
    let mcp = Mcp {
        api,
        statics_dir: Arc::new(statics_dir),
        tools: Arc::new(tools::catalog()),
    };
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        // The edge already checked the caller and the browser rules (Origin); the
        // server answers under whatever host name it is reached by, as Go does.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(MAX_CALL_BYTES);
    StreamableHttpService::new(
        move || Ok(mcp.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// A tool call's JSON-RPC message at most (arguments are text and URLs).
const MAX_CALL_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct Mcp {
    api: Router,
    statics_dir: Arc<std::path::PathBuf>,
    tools: Arc<Vec<tools::Entry>>,
}

impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "WhatsApp Web Multidevice MCP Server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Each call acts as one WhatsApp account of this server: the one named by \
                 `device_id`, else by the X-Device-Id header; with a single account either \
                 may be left out. Phone numbers are in international format without '+'. \
                 whatsapp_chat reads the stored history; whatsapp_send and \
                 whatsapp_message act on WhatsApp for real.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.tools.iter().map(|e| e.tool.clone()).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(entry) = self.tools.iter().find(|e| e.tool.name == request.name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {}", request.name),
                None,
            ));
        };
        let args = serde_json::Value::Object(request.arguments.unwrap_or_default());
        if let Some(reason) = entry.invalid(&args) {
            return Ok(failed(reason).into());
        }
        let Some(parts) = context.extensions.get::<axum::http::request::Parts>() else {
            return Err(ErrorData::internal_error("no HTTP request", None));
        };
        let caller = calls::Caller::new(self.api.clone(), parts, &args, &self.statics_dir);
        let result = match calls::call(&caller, &request.name, &args).await {
            Ok(result) => result,
            Err(reason) => failed(reason),
        };
        Ok(result.into())
    }
}

/// A tool result saying why the call did nothing.
fn failed(reason: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(reason)])
}

//! MCP: sqlmatic's sandboxed tools and its agent for any MCP client, with the official Rust SDK
//! (`rmcp`). One handler, two transports: stdio (`sqlmatic mcp`, acting as one user) and
//! Streamable HTTP (`/mcp` on the running server, the user of the request's bearer token).
//!
//! The tools are the agent's own (`list_tables`, `get_schema`, `get_metadata`,
//! `execute_query`, `find_values`) run through the core with the caller's grants, masking, limits, query log
//! and metrics, plus `list_databases` and `ask` (a question answered by sqlmatic's agent in a
//! thread the user can open in the web app). Each database's structure is a resource,
//! `sqlmatic://<database>/schema`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use sqlmatic_core_logic::{ChatRequest, Sqlmatic};
use sqlmatic_models::{Code, Principal};
use sqlmatic_tools::{ModelBounds, Toolset};

/// The tools that only read, with the agent's names and arguments.
const READ_TOOLS: &[&str] =
    &["list_tables", "get_schema", "get_metadata", "execute_query", "find_values"];

/// The MCP server of one connection: stdio has a fixed user, HTTP takes each request's.
#[derive(Clone)]
pub struct McpServer {
    core: Arc<Sqlmatic>,
    user: Option<Principal>,
    /// The reading tools that are enabled (`tools.enabled`).
    tools: Arc<Toolset>,
    /// `execute_write`, when enabled.
    write_tool: Arc<Toolset>,
    /// Resource subscriptions of this session: URI → the task forwarding schema changes.
    watches: Arc<std::sync::Mutex<std::collections::HashMap<String, tokio::task::JoinHandle<()>>>>,
}

impl Drop for McpServer {
    fn drop(&mut self) {
        // the last clone of a session's handler ends its subscriptions
        if Arc::strong_count(&self.watches) == 1 {
            let watches = self.watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for task in watches.values() {
                task.abort();
            }
        }
    }
}

/// A failed call as MCP returns it: `isError`, and the code of the one registry.
fn tool_error(code: Code, message: impl Into<String>) -> CallToolResponse {
    let message = message.into();
    let code = code.as_str();
    let mut result = CallToolResult::structured_error(json!({"code": code, "message": message}));
    result.content = vec![ContentBlock::text(format!("{code}: {message}"))];
    result.into()
}

impl McpServer {
    /// A server acting as `user` (stdio).
    pub fn for_user(core: Arc<Sqlmatic>, user: Principal) -> Self {
        Self::with_user(core, Some(user))
    }

    /// A server acting as each request's authenticated user (HTTP).
    pub fn per_request(core: Arc<Sqlmatic>) -> Self {
        Self::with_user(core, None)
    }

    fn with_user(core: Arc<Sqlmatic>, user: Option<Principal>) -> Self {
        let enabled = |names: &[&str]| -> Arc<Toolset> {
            let on = &core.config().tools.enabled;
            let names: Vec<String> = names
                .iter()
                .filter(|n| on.iter().any(|e| e == *n))
                .map(|n| (*n).to_owned())
                .collect();
            // built-in names only, so this cannot fail; no tools is the safe fallback
            Arc::new(core.tools().toolset(&names).unwrap_or_default())
        };
        Self {
            tools: enabled(READ_TOOLS),
            write_tool: enabled(&["execute_write"]),
            core,
            user,
            watches: Arc::default(),
        }
    }

    fn principal(&self, ctx: &RequestContext<RoleServer>) -> Result<Principal, McpError> {
        if let Some(p) = &self.user {
            return Ok(p.clone());
        }
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .cloned()
            .ok_or_else(|| McpError::invalid_request("authentication required", None))
    }

    /// What every reading tool's description says about its limits.
    fn limits_note(&self) -> String {
        let t = &self.core.config().tools;
        format!(
            " Limits: read-only (enforced by the database engine); at most {} rows and about {} KB \
             per result, {} ms per query; a cut result says `truncated: true` (and `total_rows` \
             when it could be counted). `database` picks one of list_databases (default: yours).",
            t.max_rows,
            t.max_result_bytes / 1024,
            t.query_timeout_ms
        )
    }

    fn tools_for(&self, user: &Principal) -> Vec<Value> {
        let databases = self.core.databases(user);
        let names: Vec<String> = databases.iter().map(|d| d.name.clone()).collect();
        let database = json!({"type": "string", "enum": names, "description": "The database (default: your default database)."});
        let mut tools = vec![json!({
            "name": "list_databases",
            "description": "The databases you may query, with their engine (sqlite or postgresql), description and whether one is the default.",
            "inputSchema": {"type": "object", "properties": {}},
            "outputSchema": {"type": "object", "properties": {"databases": {"type": "array"}}, "required": ["databases"]},
            "annotations": {"title": "List databases", "readOnlyHint": true, "destructiveHint": false, "openWorldHint": false},
        })];
        for def in self.tools.definitions().iter() {
            let mut schema = def.parameters.clone();
            if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert("database".into(), database.clone());
            }
            tools.push(json!({
                "name": def.name,
                "description": format!("{}{}", def.description, self.limits_note()),
                "inputSchema": schema,
                "outputSchema": {"type": "object"},
                "annotations": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false},
            }));
        }
        let writable: Vec<String> =
            databases.iter().filter(|d| !d.read_only).map(|d| d.name.clone()).collect();
        if !writable.is_empty() && self.write_tool.contains("execute_write") {
            tools.push(json!({
                "name": "execute_write",
                "description": format!(
                    "Propose one write (INSERT, UPDATE, DELETE, CREATE, ALTER, DROP) on a writable \
                     database ({}). Nothing runs until the user approves this exact statement: in \
                     sqlmatic's web app or with POST /api/approvals/<digest> (the digest is in the \
                     progress notifications). The call waits, reporting progress, until it is \
                     approved (then it runs in its own transaction and returns rows_affected), \
                     rejected, or expires after {} s.",
                    writable.join(", "),
                    self.core.config().agent.approval_timeout_ms / 1000
                ),
                "inputSchema": {"type": "object", "properties": {
                    "sql": {"type": "string", "description": "One write statement."},
                    "params": {"type": "array", "description": "Values for ? / $1 placeholders."},
                    "database": {"type": "string", "enum": writable},
                }, "required": ["sql"]},
                "outputSchema": {"type": "object", "properties": {
                    "rows_affected": {"type": "integer"}, "sql": {"type": "string"}}},
                "annotations": {"title": "Propose a write", "readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": false},
            }));
        }
        let writable = !writable.is_empty();
        tools.push(json!({
            "name": "ask",
            "description": "Ask a question about the data in plain language: sqlmatic's own agent reads the schema, runs read-only SQL and answers with the SQL it ran and the rows, in a thread you can open in sqlmatic's web app (thread_id). Progress notifications follow its steps; cancelling the request stops the answer.",
            "inputSchema": {"type": "object", "properties": {
                "question": {"type": "string", "description": "The question."},
                "database": database,
                "thread_id": {"type": "string", "description": "Continue this thread (default: a new one)."}
            }, "required": ["question"]},
            "outputSchema": {"type": "object", "properties": {
                "thread_id": {"type": "string"}, "answer": {"type": "string"}, "status": {"type": "string"},
                "queries": {"type": "array"}}, "required": ["thread_id", "answer"]},
            "annotations": {"title": "Ask sqlmatic's agent", "readOnlyHint": !writable, "destructiveHint": false, "openWorldHint": false},
        }));
        tools
    }

    /// The target `args` name (removing `database`) and a tool context for it, as `user`.
    fn context_for(
        &self,
        user: &Principal,
        args: &mut Map<String, Value>,
    ) -> Result<sqlmatic_tools::ToolContext, Box<CallToolResponse>> {
        let refuse = |e: sqlmatic_core_logic::Error| Box::new(tool_error(e.code(), e.to_string()));
        let database = args.remove("database").and_then(|v| v.as_str().map(str::to_owned));
        let target = self.core.target_for(user, database.as_deref()).map_err(refuse)?;
        self.core.tool_context(&user.name, Some(target.name()), None, "mcp").map_err(refuse)
    }

    /// A tool's outcome as MCP returns it: the text its model sees, and structured JSON.
    fn success(outcome: &sqlmatic_tools::ToolOutcome, database: &str) -> CallToolResponse {
        let bounds = ModelBounds { max_rows: 200, max_bytes: 64 * 1024 };
        let mut structured = outcome.to_json();
        if let Some(o) = structured.as_object_mut() {
            o.insert("database".into(), database.into());
        }
        let mut result = CallToolResult::structured(structured);
        result.content = vec![ContentBlock::text(outcome.for_model(bounds))];
        result.into()
    }

    async fn call_read_tool(
        &self,
        user: &Principal,
        name: &str,
        mut args: Map<String, Value>,
    ) -> CallToolResponse {
        let ctx = match self.context_for(user, &mut args) {
            Ok(c) => c,
            Err(refused) => return *refused,
        };
        let arguments = Value::Object(args);
        let started = std::time::Instant::now();
        let result = self.tools.call(name, &ctx, arguments.clone()).await;
        // queries are logged by the database with their SQL; other calls here
        if !result.as_ref().is_ok_and(|o| o.is_logged_by_database()) && name != "execute_query" {
            self.core.log_tool_call(
                &user.name,
                ctx.database.name(),
                None,
                "mcp",
                name,
                &arguments.to_string(),
                result.is_ok(),
                started.elapsed().as_secs_f64() * 1000.0,
            );
        }
        match result {
            Ok(outcome) => Self::success(&outcome, ctx.database.name()),
            Err(e) => tool_error(e.code, e.model_message),
        }
    }

    /// `execute_write`: the agent's write tool with the approval gate; while it waits, progress
    /// notifications say what to approve and how.
    async fn write(
        &self,
        user: &Principal,
        mut args: Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let mut tool_ctx = match self.context_for(user, &mut args) {
            Ok(c) => c,
            Err(refused) => return *refused,
        };
        let target = tool_ctx.database.clone();
        tool_ctx.approvals = Some(self.core.approval_gate());
        let sql = args.get("sql").and_then(Value::as_str).unwrap_or("").trim().to_owned();
        let digest = sqlmatic_core_logic::approvals::write_digest(None, target.name(), &sql);
        let call = self.write_tool.call("execute_write", &tool_ctx, Value::Object(args));
        tokio::pin!(call);
        let token = ctx.meta.get_progress_token();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut waited = 0u32;
        let outcome = loop {
            tokio::select! {
                outcome = &mut call => break outcome,
                _ = tick.tick() => {
                    let Some(token) = &token else { continue };
                    waited += 1;
                    let message = format!(
                        "waiting for approval of `{sql}` on `{}`: approve or reject it in \
                         sqlmatic's web app or with POST /api/approvals/{digest}",
                        target.name()
                    );
                    let _ = ctx.peer.notify_progress(
                        ProgressNotificationParam::new(token.clone(), f64::from(waited)).with_message(message),
                    ).await;
                }
                _ = ctx.ct.cancelled() => return tool_error(Code::RequestCancelled, "the request was cancelled; nothing ran"),
            }
        };
        match outcome {
            Ok(outcome) => Self::success(&outcome, target.name()),
            Err(e) => tool_error(e.code, e.model_message),
        }
    }

    async fn ask(
        &self,
        user: &Principal,
        mut args: Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let text = |k: &str, args: &mut Map<String, Value>| {
            args.remove(k).and_then(|v| v.as_str().map(str::to_owned))
        };
        let Some(question) = text("question", &mut args) else {
            return tool_error(Code::InvalidArgs, "`question` is required");
        };
        let thread_id = match text("thread_id", &mut args).map(|t| t.parse()) {
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => return tool_error(Code::ThreadNotFound, "thread not found"),
            None => None,
        };
        let request = ChatRequest {
            thread_id,
            message: question,
            database: text("database", &mut args),
            stream: false,
            business_context: true,
        };
        let turn = match self.core.start_chat(user, request).await {
            Ok(t) => t,
            Err(e) => return tool_error(e.code(), e.to_string()),
        };
        let thread_id = turn.thread_id;
        let mut events = self.core.bus().subscribe(256);
        self.core.bus().add_topics(events.id, [sqlmatic_events::Topic::Thread(thread_id)]);
        let handle = self.core.spawn_turn(turn);
        tokio::pin!(handle);
        let token = ctx.meta.get_progress_token();
        let mut step = 0u32;
        let reply = loop {
            tokio::select! {
                done = &mut handle => break done,
                Some(event) = events.receiver.recv() => {
                    let Some(token) = &token else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(&event) else { continue };
                    let part = &v["payload"];
                    let message = match part["type"].as_str() {
                        Some("tool_call") => format!("calling {}", part["name"].as_str().unwrap_or("a tool")),
                        Some("tool_result") => match part["row_count"].as_u64() {
                            Some(n) => format!("the query returned {n} rows"),
                            None if part["ok"] == false => "a tool call failed; the agent tries again".to_owned(),
                            None => "a tool answered".to_owned(),
                        },
                        _ => continue,
                    };
                    step += 1;
                    let _ = ctx.peer.notify_progress(
                        ProgressNotificationParam::new(token.clone(), f64::from(step)).with_message(message),
                    ).await;
                }
                _ = ctx.ct.cancelled() => {
                    let _ = self.core.cancel(user, thread_id).await;
                    // the turn stores its partial answer as `cancelled`; wait for it briefly
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut handle).await;
                    return tool_error(Code::RequestCancelled, format!("stopped; the partial answer is in thread {thread_id}"));
                }
            }
        };
        match reply {
            Ok(Ok(reply)) => {
                let structured = serde_json::to_value(&reply).unwrap_or(Value::Null);
                let mut text = reply.answer.clone();
                for q in &reply.queries {
                    text.push_str(&format!("\n\nSQL: {}", q.sql));
                }
                text.push_str(&format!("\n\n(thread {thread_id})"));
                let mut result = CallToolResult::structured(structured);
                result.content = vec![ContentBlock::text(text)];
                result.into()
            }
            Ok(Err(e)) => tool_error(e.code(), format!("{e} (thread {thread_id})")),
            Err(e) => tool_error(Code::Internal, e.to_string()),
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new("sqlmatic", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "sqlmatic answers questions about SQL databases. Use list_databases, then \
                 get_schema before writing SQL for execute_query (read-only, capped), or ask \
                 sqlmatic's own agent with `ask`. Each database's schema is also the resource \
                 sqlmatic://<database>/schema.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let user = self.principal(&ctx)?;
        serde_json::from_value(json!({"tools": self.tools_for(&user)}))
            .map_err(|e| McpError::internal_error(e.to_string(), None))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let user = self.principal(&ctx)?;
        let args = request.arguments.clone().unwrap_or_default();
        let name = request.name.as_ref();
        match name {
            "list_databases" => {
                let databases = self.core.databases(&user);
                let mut result = CallToolResult::structured(json!({"databases": databases}));
                let lines: Vec<String> = databases
                    .iter()
                    .map(|d| {
                        format!(
                            "{} ({}{}{})",
                            d.name,
                            d.engine,
                            if d.is_default { ", default" } else { "" },
                            d.description.as_ref().map(|t| format!(": {t}")).unwrap_or_default()
                        )
                    })
                    .collect();
                result.content = vec![ContentBlock::text(lines.join("\n"))];
                Ok(result.into())
            }
            "ask" => Ok(self.ask(&user, args, &ctx).await),
            "execute_write" if self.write_tool.contains(name) => {
                Ok(self.write(&user, args, &ctx).await)
            }
            n if self.tools.contains(n) => Ok(self.call_read_tool(&user, n, args).await),
            other => Err(McpError::invalid_params(format!("unknown tool `{other}`"), None)),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let user = self.principal(&ctx)?;
        let resources: Vec<Value> = self
            .core
            .databases(&user)
            .iter()
            .map(|d| {
                json!({
                    "uri": format!("sqlmatic://{}/schema", d.name),
                    "name": format!("{} schema", d.name),
                    "description": format!("Tables, columns, keys and row counts of `{}` ({})", d.name, d.engine),
                    "mimeType": "application/json",
                })
            })
            .collect();
        serde_json::from_value(json!({"resources": resources}))
            .map_err(|e| McpError::internal_error(e.to_string(), None))
    }

    /// `resources/subscribe`: schema changes of the database (the live schema push) become
    /// `notifications/resources/updated` for its URI.
    #[allow(deprecated)] // the request of the revisions before 2026-07-28, which clients speak
    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let user = self.principal(&ctx)?;
        let uri = request.uri;
        let database = uri
            .strip_prefix("sqlmatic://")
            .and_then(|rest| rest.strip_suffix("/schema"))
            .ok_or_else(|| McpError::resource_not_found(format!("no resource `{uri}`"), None))?;
        let target = self
            .core
            .target_for(&user, Some(database))
            .map_err(|e| McpError::resource_not_found(e.to_string(), None))?;
        let mut events = self.core.bus().subscribe(16);
        self.core.bus().add_topics(
            events.id,
            [sqlmatic_events::Topic::Database(Some(target.name().to_owned()))],
        );
        let peer = ctx.peer.clone();
        let updated = uri.clone();
        let task = tokio::spawn(async move {
            while events.receiver.recv().await.is_some() {
                let param = rmcp::model::ResourceUpdatedNotificationParam::new(updated.clone());
                if peer.notify_resource_updated(param).await.is_err() {
                    break;
                }
            }
        });
        let mut watches = self.watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = watches.insert(uri, task) {
            old.abort();
        }
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: rmcp::model::UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let mut watches = self.watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(task) = watches.remove(&request.uri) {
            task.abort();
        }
        Ok(())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let user = self.principal(&ctx)?;
        let uri = request.uri.as_str();
        let database = uri
            .strip_prefix("sqlmatic://")
            .and_then(|rest| rest.strip_suffix("/schema"))
            .ok_or_else(|| McpError::resource_not_found(format!("no resource `{uri}`"), None))?;
        let schema = self
            .core
            .structure(&user, Some(database))
            .await
            .map_err(|e| McpError::resource_not_found(e.to_string(), None))?;
        let text = serde_json::to_string(&*schema).unwrap_or_default();
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri)]).into())
    }
}

/// The Streamable HTTP service behind `/mcp`.
pub type HttpService = StreamableHttpService<McpServer, LocalSessionManager>;

/// The service, one handler per session, each request acting as its token's user.
pub fn http_service(core: Arc<Sqlmatic>) -> HttpService {
    // bearer tokens guard every request, and `endpoint` checks `Origin` against
    // api.allowed_origins; the Host allow-list (loopback names only) would refuse a server
    // deployed under its own name
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(McpServer::per_request(core.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// The code for an rmcp transport error: a 4xx without a Content-Type (a bare text reason).
/// JSON-RPC errors carry their own JSON body and pass through as they are; a 405 is shaped by
/// the server's handler for every 405.
fn transport_error_code(parts: &http::response::Parts) -> Option<Code> {
    if parts.headers.contains_key(http::header::CONTENT_TYPE) {
        return None;
    }
    match parts.status.as_u16() {
        400 => Some(Code::MalformedRequest),
        404 => Some(Code::NotFound),
        415 => Some(Code::UnsupportedMediaType),
        _ => None,
    }
}

/// `/mcp`: authenticated by the middleware (bearer token, rate limits); `Origin` checked
/// against `api.allowed_origins` (DNS-rebinding protection); then handed to rmcp.
pub async fn endpoint(
    state: web::Data<crate::State>,
    service: web::Data<HttpService>,
    user: crate::CurrentUser,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, crate::error::ApiError> {
    if let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let allowed = state.api.allowed_origins.iter().any(|o| o == origin || o == "*");
        if !allowed {
            return Err(crate::error::ApiError::new(
                sqlmatic_models::Code::Forbidden,
                format!("origin `{origin}` is not in api.allowed_origins"),
            ));
        }
    }
    let mut builder =
        http::Request::builder().method(req.method().as_str()).uri(req.uri().to_string());
    for (name, value) in req.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let mut request =
        // actix's `Bytes` is the `bytes` crate's: the body moves over without a copy
        builder.body(http_body_util::Full::new(body)).map_err(|e| {
            crate::error::ApiError::new(sqlmatic_models::Code::InvalidBody, e.to_string())
        })?;
    request.extensions_mut().insert(user.0);
    let mut service = service.get_ref().clone();
    let response = match tower_service::Service::call(&mut service, request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    if let Some(code) = transport_error_code(&parts) {
        // rmcp answers transport mistakes (no session id, an unknown session, a wrong
        // Content-Type) with a bare text body; they get the error shape every other route has
        let text = http_body_util::BodyExt::collect(body)
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        return Err(crate::error::ApiError::new(code, format!("MCP: {}", text.trim())));
    }
    let mut status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    // rmcp ends a session (DELETE) with 202; the official Python SDK counts only 200 and 204 as
    // success and logs "Session termination failed: 202" on every clean disconnect
    if req.method() == actix_web::http::Method::DELETE
        && status == actix_web::http::StatusCode::ACCEPTED
    {
        status = actix_web::http::StatusCode::NO_CONTENT;
    }
    let mut out = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        out.append_header((name.as_str(), value.as_bytes()));
    }
    let stream = http_body_util::BodyStream::new(body).filter_map(|frame| async move {
        match frame {
            Ok(frame) => frame.into_data().ok().map(Ok::<_, actix_web::Error>),
            Err(e) => Some(Err(actix_web::error::ErrorInternalServerError(e.to_string()))),
        }
    });
    Ok(out.streaming(stream))
}

//! Owns `/api/v1/openapi.json`: the `OpenAPI` 3.1 document of the API, its
//! schemas generated from the very types the handlers serialise (schemars,
//! as the workflow format's schema is), its paths from the table below,
//! which a test holds to the router's routes (docs/api.md).

use std::sync::OnceLock;

use axum::Json;
use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Value, json};

use super::act::{Post, Start};
use super::read::{InstanceDetail, Overview, ServerInfo};
use super::summary::ApplyDetail;
use crate::bus::Message;
use crate::view::workflows::Workflow;

/// What a path answers.
enum Body {
    Json(Value),
    Text,
    Events(&'static [&'static str]),
}

/// One operation: method, path, summary, request body, answer.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    request: Option<Value>,
    answer: Body,
    status: &'static str,
}

fn ops(schema: &mut dyn FnMut(Kind) -> Value) -> Vec<Op> {
    let obj = |fields: Value| json!({"type": "object", "properties": fields});
    let op = |method, path, summary, answer, status| Op {
        method,
        path,
        summary,
        request: None,
        answer,
        status,
    };
    vec![
        op(
            "get",
            "/api/v1/health",
            "Liveness (no token needed).",
            Body::Json(obj(json!({"status": {"type": "string"}}))),
            "200",
        ),
        op(
            "get",
            "/api/v1/server",
            "The server: version, root, read-only.",
            Body::Json(schema(Kind::Server)),
            "200",
        ),
        op(
            "get",
            "/api/v1/openapi.json",
            "This document.",
            Body::Json(json!({"type": "object"})),
            "200",
        ),
        op(
            "get",
            "/api/v1/overview",
            "Every project under the root with its applies and other task folders.",
            Body::Json(schema(Kind::Overview)),
            "200",
        ),
        op(
            "get",
            "/api/v1/overview/stream",
            "The overview, live.",
            Body::Events(&["overview"]),
            "200",
        ),
        op(
            "get",
            "/api/v1/workflows",
            "The workflow files under --workflows, with their params.",
            Body::Json(obj(
                json!({"workflows": {"type": "array", "items": schema(Kind::Workflow)}}),
            )),
            "200",
        ),
        Op {
            request: Some(schema(Kind::Start)),
            ..op(
                "post",
                "/api/v1/workflows/start",
                "Start `conductor apply` on a workflow under --workflows.",
                Body::Json(obj(
                    json!({"pid": {"type": "integer"}, "workflow": {"type": "string"}}),
                )),
                "202",
            )
        },
        op(
            "get",
            "/api/v1/projects/{p}/messages",
            "A bus: the project's, or a task's with task_id; filtered by type and text.",
            Body::Json(obj(
                json!({"messages": {"type": "array", "items": schema(Kind::Message)}}),
            )),
            "200",
        ),
        Op {
            request: Some(schema(Kind::Post)),
            ..op(
                "post",
                "/api/v1/projects/{p}/messages",
                "Post to a bus.",
                Body::Json(obj(json!({"msg_id": {"type": "string"}}))),
                "201",
            )
        },
        op(
            "get",
            "/api/v1/projects/{p}/messages/stream",
            "A bus, live; resumes from Last-Event-ID.",
            Body::Events(&["message"]),
            "200",
        ),
        op(
            "get",
            "/api/v1/projects/{p}/applies/{a}",
            "One apply: its instances, counts, cost, attention.",
            Body::Json(schema(Kind::Apply)),
            "200",
        ),
        op(
            "get",
            "/api/v1/projects/{p}/applies/{a}/stream",
            "One apply, live.",
            Body::Events(&["apply"]),
            "200",
        ),
        op(
            "post",
            "/api/v1/projects/{p}/applies/{a}/stop",
            "Stop a running apply as on Ctrl-C.",
            Body::Json(obj(json!({"stopping": {"type": "boolean"}}))),
            "202",
        ),
        op(
            "get",
            "/api/v1/projects/{p}/applies/{a}/instances/{k}",
            "One instance with its iterations.",
            Body::Json(schema(Kind::Instance)),
            "200",
        ),
        op(
            "post",
            "/api/v1/projects/{p}/applies/{a}/instances/{k}/stop",
            "Stop one running instance's loop (stop reason `stopped`); the rest of the apply goes on.",
            Body::Json(obj(json!({"stopping": {"type": "boolean"}}))),
            "202",
        ),
        op(
            "post",
            "/api/v1/projects/{p}/applies/{a}/instances/{k}/rerun",
            "Apply the workflow again with --force for this instance.",
            Body::Json(obj(
                json!({"pid": {"type": "integer"}, "workflow": {"type": "string"}}),
            )),
            "202",
        ),
        op(
            "get",
            "/api/v1/projects/{p}/tasks/{t}/runs/{r}/{f}",
            "A run's prompt, output, stdout, stderr or transcript, as text.",
            Body::Text,
            "200",
        ),
        op(
            "get",
            "/api/v1/projects/{p}/tasks/{t}/runs/{r}/{f}/stream",
            "A run's file as it is written; resumes from Last-Event-ID (a byte offset).",
            Body::Events(&["chunk", "end"]),
            "200",
        ),
        op(
            "get",
            "/metrics",
            "Prometheus metrics (no token needed).",
            Body::Text,
            "200",
        ),
    ]
}

/// The schemas the document names.
#[derive(Clone, Copy)]
enum Kind {
    Server,
    Overview,
    Workflow,
    Start,
    Message,
    Post,
    Apply,
    Instance,
}

fn parameters(path: &str) -> Vec<Value> {
    let what = |name: &str| match name {
        "p" => "the project",
        "a" => "the apply id",
        "k" => "the instance key (URL-encoded: work%5Bparser%5D)",
        "t" => "the task id",
        "r" => "the run id",
        _ => "prompt, output, stdout, stderr or transcript",
    };
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                   "description": what(name), "schema": {"type": "string"}})
        })
        .collect()
}

fn build() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.contract = Contract::Serialize;
    let mut generator = settings.into_generator();
    let mut schema = |k: Kind| -> Value {
        let s = match k {
            Kind::Server => generator.subschema_for::<ServerInfo>(),
            Kind::Overview => generator.subschema_for::<Overview>(),
            Kind::Workflow => generator.subschema_for::<Workflow>(),
            Kind::Start => generator.subschema_for::<Start>(),
            Kind::Message => generator.subschema_for::<Message>(),
            Kind::Post => generator.subschema_for::<Post>(),
            Kind::Apply => generator.subschema_for::<ApplyDetail>(),
            Kind::Instance => generator.subschema_for::<InstanceDetail>(),
        };
        s.to_value()
    };
    let table = ops(&mut schema);
    let error = json!({"type": "object", "properties": {"error": {"type": "object",
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}});
    let mut paths = serde_json::Map::new();
    for op in table {
        let content = match op.answer {
            Body::Json(s) => json!({"application/json": {"schema": s}}),
            Body::Text => json!({"text/plain": {"schema": {"type": "string"}}}),
            Body::Events(names) => json!({"text/event-stream": {
                "schema": {"type": "string", "description": format!("server-sent events: {}", names.join(", "))}}}),
        };
        let mut operation = json!({
            "summary": op.summary,
            "parameters": parameters(op.path),
            "responses": {
                op.status: {"description": "ok", "content": content},
                "default": {"description": "an error",
                            "content": {"application/json": {"schema": error.clone()}}},
            },
        });
        if let Some(body) = op.request {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body}}});
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "conductor serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The web page's API over the run store (docs/api.md).",
        },
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"token": []}],
        "paths": paths,
    })
}

pub(super) async fn document() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(build).clone())
}

//! The OpenAPI description of the HTTP API.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::AppState;

/// `/openapi.json`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "charter",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Privacy policy enforcement: the policy in force, health and metrics."
        },
        "paths": {
            "/": { "get": {
                "summary": "The privacy notice rendered from the policy in force",
                "operationId": "notice",
                "responses": { "200": { "description": "HTML page", "content": { "text/html": {} } } }
            }},
            "/healthz": { "get": {
                "summary": "Liveness",
                "operationId": "healthz",
                "responses": { "200": { "description": "The process is up", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Status" } } } } }
            }},
            "/readyz": { "get": {
                "summary": "Readiness: the database answers and its migrations are applied",
                "operationId": "readyz",
                "responses": {
                    "200": { "description": "Ready", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Status" } } } },
                    "503": error_response("Not ready")
                }
            }},
            "/metrics": { "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": { "200": { "description": "Prometheus text format", "content": { "text/plain": {} } } }
            }},
            "/openapi.json": { "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": { "200": { "description": "OpenAPI document", "content": { "application/json": {} } } }
            }}
        },
        "components": { "schemas": {
            "Status": { "type": "object", "required": ["status"], "properties": {
                "status": { "type": "string" }, "policy_version": { "type": "string" } } },
            "Error": { "type": "object", "required": ["error"], "properties": { "error": {
                "type": "object", "required": ["code", "message"],
                "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } }
        }}
    })
}

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
            "description": "Privacy policy enforcement: the policy in force, health and metrics, collection into the personal-data vault, and purpose-bound reads."
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
            }},
            "/v1/collect/{point}": { "post": {
                "summary": "Collect personal data at a collection point of the policy: only the fields it declares, of their type and size; a refused request stores nothing",
                "operationId": "collect",
                "security": [{ "apiKey": [] }],
                "parameters": [path_param("point", "A collection point of the policy")],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Collection" } } } },
                "responses": {
                    "201": { "description": "Stored, sealed with the subject's key", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/SubjectId" } } } },
                    "400": error_response("The body is not JSON of this shape, or the point is not UTF-8 once percent-decoded"),
                    "401": error_response("No API key, or an unknown or revoked one"),
                    "403": error_response("The key may not collect at this point (`point_not_granted_to_key`)"),
                    "404": error_response("No such collection point, or (by `id`) no such subject"),
                    "408": error_response("The body stopped arriving for 30 s (`body_timeout`); the connection is closed and nothing is stored"),
                    "413": error_response("The body is over 1 MiB"),
                    "429": error_response("Too many failed password checks for the name given (`too_many_attempts`): no password is checked until the time in `Retry-After` has passed"),
                    "500": error_response("An internal failure (the database, the audit chain, the key file); nothing is stored without its audit entry"),
                    "422": error_response("Refused by the policy: `undeclared_field`, `wrong_type`, `too_large`, `missing_required`, `file_field`, `consent_not_asked`, `consent_not_boolean`, `under_minimum_age`, `bad_subject`, `verification_failed`, `password_already_set`; `details` lists every refusal")
                }
            }},
            "/v1/collect/{point}/upload": { "post": {
                "summary": "Stream a file into object storage, sealed in chunks with the subject's key; the point's size limit and content types are enforced as it streams",
                "operationId": "upload",
                "security": [{ "apiKey": [] }],
                "parameters": [
                    path_param("point", "A collection point of the policy"),
                    query_param("field", "The point's file field", true),
                    query_param("id", "The subject's opaque id (or one of email, phone, external_id)", false),
                    query_param("email", "The subject's email address", false),
                    query_param("phone", "The subject's phone number", false),
                    query_param("external_id", "The subject's id in the calling system", false)
                ],
                "requestBody": { "required": true, "content": { "*/*": { "schema": { "type": "string", "format": "binary" } } } },
                "responses": {
                    "201": { "description": "Stored", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Upload" } } } },
                    "400": error_response("No field named, a malformed query or path, or the upload stopped before its end"),
                    "401": error_response("No API key, or an unknown or revoked one"),
                    "403": error_response("The key may not collect at this point"),
                    "404": error_response("No such collection point or subject"),
                    "408": error_response("The body stopped arriving for 30 s (`body_timeout`); the connection is closed and nothing is stored"),
                    "413": error_response("Larger than the field's limit"),
                    "415": error_response("A content type the field does not accept"),
                    "422": error_response("`undeclared_field`, `wrong_type` (not a file field), `bad_subject`, or `personal_data_found` at a point that rejects it"),
                    "500": error_response("An internal failure (the database, the audit chain, object storage); nothing is recorded")
                }
            }},
            "/v1/subjects/{id}/data": { "get": {
                "summary": "Read a subject's fields for a purpose; every field is decided by the policy and any refusal returns no data",
                "operationId": "read",
                "security": [{ "apiKey": [] }],
                "parameters": [
                    path_param("id", "The subject's opaque id"),
                    query_param("purpose", "A purpose of the policy that the key holds", true),
                    query_param("fields", "Comma-separated field names; default: every field of the purpose's categories", false)
                ],
                "responses": read_responses(false)
            }},
            "/v1/subjects/lookup": { "get": {
                "summary": "Find a subject by an identifier (through its keyed blind index) and read it for a purpose",
                "operationId": "lookup",
                "security": [{ "apiKey": [] }],
                "parameters": [
                    query_param("purpose", "A purpose of the policy that the key holds", true),
                    query_param("email", "Exactly one of email, phone, external_id", false),
                    query_param("phone", "Exactly one of email, phone, external_id", false),
                    query_param("external_id", "Exactly one of email, phone, external_id", false),
                    query_param("fields", "Comma-separated field names", false)
                ],
                "responses": read_responses(true)
            }},
            "/v1/subjects/{id}/objects/{object}": { "get": {
                "summary": "Download an uploaded file for a purpose, through the same decision as fields",
                "operationId": "download",
                "security": [{ "apiKey": [] }],
                "parameters": [
                    path_param("id", "The subject's opaque id"),
                    path_param("object", "The object's id, as the upload answered"),
                    query_param("purpose", "A purpose of the policy that the key holds", true)
                ],
                "responses": {
                    "200": { "description": "The file as uploaded", "content": { "*/*": { "schema": { "type": "string", "format": "binary" } } } },
                    "400": error_response("No purpose, one not in the policy, or a malformed query or path"),
                    "401": error_response("No API key, or an unknown or revoked one"),
                    "403": error_response("The key does not hold the purpose (checked before anything is looked up), or the decision refuses the file"),
                    "404": error_response("No such subject or object"),
                    "500": error_response("An internal failure (the database, the audit chain, object storage)")
                }
            }}
        },
        "components": {
          "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer", "description": "A token from `charter apikey create`" } },
          "schemas": {
            "Collection": { "type": "object", "required": ["subject"], "additionalProperties": false, "properties": {
                "subject": { "type": "object", "description": "Exactly one of email, phone, external_id or id", "additionalProperties": false, "properties": {
                    "email": { "type": "string" }, "phone": { "type": "string" }, "external_id": { "type": "string" }, "id": { "type": "string", "format": "uuid" } } },
                "fields": { "type": "object", "description": "Values of the point's declared fields", "additionalProperties": true },
                "consents": { "type": "object", "description": "Answers to the consents the point asks", "additionalProperties": { "type": "boolean" } } } },
            "SubjectId": { "type": "object", "required": ["subject_id"], "properties": { "subject_id": { "type": "string", "format": "uuid" } } },
            "Upload": { "type": "object", "required": ["subject_id", "object_id", "size"], "properties": {
                "subject_id": { "type": "string", "format": "uuid" }, "object_id": { "type": "string", "format": "uuid" },
                "size": { "type": "integer", "description": "Bytes stored (after anonymisation, at a point that anonymises)" },
                "received": { "type": "integer", "description": "Bytes received" } } },
            "ReadAnswer": { "type": "object", "required": ["subject_id", "purpose", "fields", "hashed", "missing"], "properties": {
                "subject_id": { "type": "string", "format": "uuid" }, "purpose": { "type": "string" },
                "fields": { "type": "object", "additionalProperties": true },
                "hashed": { "type": "array", "items": { "type": "string" }, "description": "Password fields: kept only as a salted hash, never returned" },
                "missing": { "type": "array", "items": { "type": "string" }, "description": "Fields asked for that the policy declares and the subject does not have" },
                "undeclared": { "type": "integer", "description": "How many names asked for in `fields` the policy does not declare (present when any; the names are not echoed)" } } },
            "Denied": { "type": "object", "required": ["error"], "properties": { "error": {
                "type": "object", "required": ["code", "message", "fields"],
                "properties": { "code": { "type": "string" }, "message": { "type": "string" },
                    "fields": { "type": "object", "description": "The reason per field: category_not_in_purpose, consent_missing, objected, restricted, retention_expired, erased", "additionalProperties": { "type": "string" } } } } } },
            "Status": { "type": "object", "required": ["status"], "properties": {
                "status": { "type": "string" }, "policy_version": { "type": "string" } } },
            "Error": { "type": "object", "required": ["error"], "properties": { "error": {
                "type": "object", "required": ["code", "message"],
                "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } }
          }
        }
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn query_param(name: &str, description: &str, required: bool) -> Value {
    json!({ "name": name, "in": "query", "required": required, "description": description, "schema": { "type": "string" } })
}

/// The answers of a purpose-bound read; a lookup also refuses a query that does not name
/// exactly one identifier.
fn read_responses(lookup: bool) -> Value {
    let mut responses = json!({
        "200": { "description": "The fields the purpose may see", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReadAnswer" } } } },
        "400": error_response("No purpose, one not in the policy, or a malformed query or path"),
        "401": error_response("No API key, or an unknown or revoked one"),
        "403": { "description": "The key does not hold the purpose (`purpose_not_granted_to_key`, checked before the subject is looked up, so it says nothing of whether the subject exists), or the decision refuses a field: no data at all", "content": { "application/json": { "schema": { "anyOf": [ { "$ref": "#/components/schemas/Error" }, { "$ref": "#/components/schemas/Denied" } ] } } } },
        "404": error_response("No such subject"),
        "500": error_response("An internal failure (the database, the audit chain); no data leaves")
    });
    if lookup {
        responses["422"] = error_response("Not exactly one identifier (`bad_subject`)");
    }
    responses
}

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
                "requestBody": { "required": true, "content": {
                    "application/json": { "schema": { "$ref": "#/components/schemas/Collection" } },
                    "multipart/form-data": { "schema": { "type": "object", "required": ["body"], "description": "A part `body` first (the JSON collection), then one part per file field of the point, named after it; the whole submission is stored or nothing is", "properties": {
                        "body": { "$ref": "#/components/schemas/Collection" } }, "additionalProperties": { "type": "string", "format": "binary" } } }
                } },
                "responses": {
                    "201": { "description": "Stored: at a record point as a new record, at a profile point in the person's profile", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Collected" } } } },
                    "400": error_response("The body is not JSON of this shape (`malformed_json`), a multipart body without its `body` part first (`missing_body_part`) or not well formed (`malformed_multipart`), or the point is not UTF-8 once percent-decoded"),
                    "401": error_response("No API key, or an unknown or revoked one"),
                    "403": error_response("The key may not collect at this point (`point_not_granted_to_key`)"),
                    "404": error_response("No such collection point, or (by `id`) no such subject"),
                    "408": error_response("The body stopped arriving for 30 s (`body_timeout`); the connection is closed and nothing is stored"),
                    "409": error_response("An email or phone the point updates names another subject (`identifier_in_use`)"),
                    "413": error_response("The body (or the `body` part) is over 1 MiB, or a file is over its field's limit"),
                    "415": error_response("A file part of a content type its field does not accept"),
                    "429": error_response("Too many failed password checks for the name given (`too_many_attempts`): no password is checked until the time in `Retry-After` has passed"),
                    "500": error_response("An internal failure (the database, the audit chain, the key file); nothing is stored without its audit entry"),
                    "422": error_response("Refused by the policy: `undeclared_field`, `wrong_type`, `too_large`, `missing_required`, `file_field`, `consent_not_asked`, `consent_not_boolean`, `under_minimum_age`, `bad_subject`, `verification_failed`, `password_already_set`, `selector_mismatch` (an email or phone field disagrees with the identifier naming the subject at a point that does not update it); in a multipart body `duplicate_file`, a missing required file, or `personal_data_found`; `details` lists every refusal")
                }
            }},
            "/v1/collect/{point}/upload": { "post": {
                "summary": "Stream a file into object storage, sealed in chunks under a key of its own; the point's size limit and content types are enforced as it streams. At a record point it makes a record, or joins one (`record`); a person not known yet is created",
                "operationId": "upload",
                "security": [{ "apiKey": [] }],
                "parameters": [
                    path_param("point", "A collection point of the policy"),
                    query_param("field", "The point's file field", true),
                    query_param("id", "The subject's opaque id (or one of email, phone, external_id)", false),
                    query_param("email", "The subject's email address", false),
                    query_param("phone", "The subject's phone number", false),
                    query_param("external_id", "The subject's id in the calling system", false),
                    query_param("record", "A record of the subject at this point that the file joins", false)
                ],
                "requestBody": { "required": true, "content": { "*/*": { "schema": { "type": "string", "format": "binary" } } } },
                "responses": {
                    "201": { "description": "Stored", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Upload" } } } },
                    "400": error_response("No field named, a malformed query or path, or the upload stopped before its end"),
                    "401": error_response("No API key, or an unknown or revoked one"),
                    "403": error_response("The key may not collect at this point"),
                    "404": error_response("No such collection point, subject (by `id`) or record (`unknown_record`)"),
                    "408": error_response("The body stopped arriving for 30 s (`body_timeout`); the connection is closed and nothing is stored"),
                    "413": error_response("Larger than the field's limit"),
                    "415": error_response("A content type the field does not accept"),
                    "422": error_response("`undeclared_field`, `wrong_type` (not a file field), `bad_subject`, or `personal_data_found` at a point that rejects it"),
                    "500": error_response("An internal failure (the database, the audit chain, object storage); nothing is recorded")
                }
            }},
            "/v1/subjects/{id}/data": { "get": {
                "summary": "Read a subject's profile and a page of its records for a purpose; every value is decided by the policy: a refused profile field returns no data, a refused record is withheld and counted",
                "operationId": "read",
                "security": [{ "apiKey": [] }],
                "parameters": [
                    path_param("id", "The subject's opaque id"),
                    query_param("purpose", "A purpose of the policy that the key holds", true),
                    query_param("fields", "Comma-separated field names; default: every field of the purpose's categories", false),
                    query_param("limit", "Records per page, 1 to 200 (default 50)", false),
                    query_param("cursor", "The `next_cursor` of the previous page", false),
                    query_param("point", "Only records of this collection point", false)
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
                    query_param("fields", "Comma-separated field names", false),
                    query_param("limit", "Records per page, 1 to 200 (default 50)", false),
                    query_param("cursor", "The `next_cursor` of the previous page", false),
                    query_param("point", "Only records of this collection point", false)
                ],
                "responses": read_responses(true)
            }},
            "/v1/subjects/{id}/records/{record}": { "get": {
                "summary": "Read one record for a purpose: every value decided by the policy, 403 with the reason and no data when refused",
                "operationId": "record",
                "security": [{ "apiKey": [] }],
                "parameters": [
                    path_param("id", "The subject's opaque id"),
                    path_param("record", "The record's id"),
                    query_param("purpose", "A purpose of the policy that the key holds", true)
                ],
                "responses": {
                    "200": { "description": "The record", "content": { "application/json": { "schema": { "type": "object", "required": ["subject_id", "purpose", "record"], "properties": {
                        "subject_id": { "type": "string", "format": "uuid" }, "purpose": { "type": "string" }, "record": { "$ref": "#/components/schemas/Record" } } } } } },
                    "400": error_response("No purpose, one not in the policy, or a malformed query or path"),
                    "401": error_response("No API key, or an unknown or revoked one"),
                    "403": error_response("The key does not hold the purpose, or the decision refuses the record (`error.fields.record` is the reason)"),
                    "404": error_response("No such subject or record"),
                    "500": error_response("An internal failure (the database, the audit chain); no data leaves")
                }
            }},
            "/v1/subjects/{id}/close": { "post": {
                "summary": "Record that the account a profile point opened is closed: `account+N` retention runs from then",
                "operationId": "close",
                "security": [{ "apiKey": [] }],
                "parameters": [path_param("id", "The subject's opaque id")],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["point"], "additionalProperties": false, "properties": {
                    "point": { "type": "string", "description": "The profile point that opened the account; the key must hold every purpose of it" } } } } } },
                "responses": {
                    "201": { "description": "Closed now", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Closed" } } } },
                    "200": { "description": "Already closed: when it was", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Closed" } } } },
                    "400": error_response("A body of another shape, or no such point (`unknown_point`)"),
                    "401": error_response("No API key, or an unknown or revoked one"),
                    "403": error_response("The key does not hold every purpose of the point"),
                    "404": error_response("No such subject"),
                    "422": error_response("Not a profile point (`not_an_account_point`)"),
                    "500": error_response("An internal failure (the database, the audit chain)")
                }
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
                "consents": { "type": "object", "description": "Answers to the consents the point asks", "additionalProperties": { "type": "boolean" } },
                "visitor": { "type": "string", "pattern": "^[0-9a-f]{32}$", "description": "The cookie banner's visitor id: the visitor's answers join the subject's" } } },
            "Collected": { "type": "object", "required": ["subject_id"], "properties": {
                "subject_id": { "type": "string", "format": "uuid" },
                "record_id": { "type": "string", "format": "uuid", "description": "The new record, at a record point" },
                "kept": { "type": "array", "items": { "type": "string" }, "description": "Profile fields that already held a value the point may not change, left as they were" } } },
            "Record": { "type": "object", "required": ["record_id", "point", "collected_at", "fields", "files"], "properties": {
                "record_id": { "type": "string", "format": "uuid" }, "point": { "type": "string" },
                "collected_at": { "type": "string", "format": "date-time" },
                "fields": { "type": "object", "additionalProperties": true },
                "files": { "type": "array", "items": { "type": "object", "properties": {
                    "object_id": { "type": "string", "format": "uuid" }, "field": { "type": "string" },
                    "content_type": { "type": "string" }, "size": { "type": "integer" } } } } } },
            "Closed": { "type": "object", "required": ["subject_id", "closed_at", "already_closed"], "properties": {
                "subject_id": { "type": "string", "format": "uuid" }, "closed_at": { "type": "string", "format": "date-time" },
                "already_closed": { "type": "boolean" } } },
            "Upload": { "type": "object", "required": ["subject_id", "object_id", "size"], "properties": {
                "subject_id": { "type": "string", "format": "uuid" }, "object_id": { "type": "string", "format": "uuid" },
                "record_id": { "type": ["string", "null"], "description": "The record the file is in, at a record point" },
                "size": { "type": "integer", "description": "Bytes stored (after anonymisation, at a point that anonymises)" },
                "received": { "type": "integer", "description": "Bytes received" } } },
            "ReadAnswer": { "type": "object", "required": ["subject_id", "purpose", "fields", "hashed", "missing"], "properties": {
                "subject_id": { "type": "string", "format": "uuid" }, "purpose": { "type": "string" },
                "fields": { "type": "object", "additionalProperties": true },
                "hashed": { "type": "array", "items": { "type": "string" }, "description": "Password fields: kept only as a salted hash, never returned" },
                "missing": { "type": "array", "items": { "type": "string" }, "description": "Fields asked for that the policy declares and the subject does not have" },
                "undeclared": { "type": "integer", "description": "How many names asked for in `fields` the policy does not declare (present when any; the names are not echoed)" },
                "records": { "type": "array", "items": { "$ref": "#/components/schemas/Record" }, "description": "The page's records the purpose may read, newest first" },
                "withheld": { "type": "object", "additionalProperties": { "type": "integer" }, "description": "Records of the page the purpose may not read, counted by reason" },
                "next_cursor": { "type": "string", "description": "The cursor of the next page, when there is one" } } },
            "Denied": { "type": "object", "required": ["error"], "properties": { "error": {
                "type": "object", "required": ["code", "message", "fields"],
                "properties": { "code": { "type": "string" }, "message": { "type": "string" },
                    "fields": { "type": "object", "description": "The reason per field (`*` when the purpose may not run for the subject at all): category_not_in_purpose, consent_missing, objected, restricted, retention_expired, erased", "additionalProperties": { "type": "string" } } } } } },
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

//! Rights requests as a person files them: filed, verified with the code from the
//! outbox, and followed until the worker has done them.

use std::time::Duration;

use serde_json::{json, Value};

use super::TestApp;

/// The six-digit code in the first message carrying one that is not among `seen`.
pub async fn code_after(app: &TestApp, seen: &[String]) -> String {
    let message = app.new_message(seen, "Your code").await;
    let at = message.find(" is ").unwrap() + 4;
    message[at..at + 6].to_owned()
}

pub async fn file(app: &TestApp, body: Value) -> (u16, Value) {
    let got = app.raw("POST", "/v1/requests", None, Some(&body.to_string())).await;
    (got.status, got.body)
}

/// Files a request for `EMAIL` and verifies it with the code it sent; returns its id and
/// status token.
pub async fn filed_and_verified(app: &TestApp, body: Value) -> (String, String, String) {
    let seen = app.outbox_now().await;
    let (status, filed) = file(app, body).await;
    assert_eq!(status, 202, "{filed}");
    let id = filed["request_id"].as_str().unwrap().to_owned();
    let code = code_after(app, &seen).await;
    let verified =
        app.raw("POST", &format!("/v1/requests/{id}/verify"), None, Some(&json!({ "code": code }).to_string())).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    let token = verified.body["token"].as_str().unwrap().to_owned();
    (id, token, verified.body["status"].as_str().unwrap().to_owned())
}

/// Polls the request's status until it is `want` (the worker runs in the background).
pub async fn until_status(app: &TestApp, id: &str, token: &str, want: &str) -> Value {
    for _ in 0..100 {
        let got = app.raw("GET", &format!("/v1/requests/{id}?token={token}"), None, None).await;
        if got.body["status"] == want {
            return got.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("request {id} never reached {want}");
}

/// Approves request `id` as the privacy team would.
pub async fn approve(app: &TestApp, id: &str) {
    let mut r = app.state.store.request(id).await.unwrap().unwrap();
    let moved = charter_server::rights::move_request(
        &app.state,
        &mut r,
        charter_core::requests::Move::Approve,
        "admin-test",
        None,
    )
    .await
    .unwrap();
    assert!(moved);
}

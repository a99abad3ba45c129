//! Every route and every error case of [`handle`], against [`MemoryStorage`].

use std::fmt;

use serde_json::{json, Value};

use super::*;
use crate::reply::JSON;
use crate::storage::MemoryStorage;

fn call(storage: &mut MemoryStorage, method: &str, path: &str, body: &str) -> Reply {
    handle(method, path, body.as_bytes(), storage)
}

fn body_json(reply: &Reply) -> Value {
    assert_eq!(reply.content_type, Some(JSON), "{reply:?}");
    serde_json::from_slice(&reply.body).expect("reply body is JSON")
}

/// Asserts an error reply: its status, and that its message mentions `hint`.
fn assert_error(reply: &Reply, status: u16, hint: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    let message = body_json(reply)["error"].as_str().map(str::to_owned);
    let message = message.expect("error replies have an `error` string");
    assert!(
        message.contains(hint),
        "{message:?} should mention {hint:?}"
    );
}

/// A store with todos "a" (id 1) and "b" (id 2).
fn two_todos() -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    for title in ["a", "b"] {
        let reply = call(
            &mut storage,
            "POST",
            "/todos",
            &format!(r#"{{"title":"{title}"}}"#),
        );
        assert_eq!(reply.status, 201);
    }
    storage
}

#[test]
fn health_answers_ok_as_plain_text() {
    let reply = call(&mut MemoryStorage::new(), "GET", "/healthz", "");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, Some("text/plain; charset=utf-8"));
    assert_eq!(reply.body, b"ok");
}

#[test]
fn the_list_starts_empty() {
    let reply = call(&mut MemoryStorage::new(), "GET", "/todos", "");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"[]");
    assert_eq!(reply.content_type, Some(JSON));
}

#[test]
fn create_answers_201_with_the_todo_and_ids_count_from_1() {
    let mut storage = MemoryStorage::new();
    let first = call(&mut storage, "POST", "/todos", r#"{"title":"milk"}"#);
    assert_eq!(first.status, 201);
    assert_eq!(first.body, br#"{"id":1,"title":"milk","done":false}"#);
    let second = call(
        &mut storage,
        "POST",
        "/todos",
        r#"{"title":"eggs","done":true}"#,
    );
    assert_eq!(second.status, 201);
    assert_eq!(
        body_json(&second),
        json!({"id": 2, "title": "eggs", "done": true})
    );
}

#[test]
fn create_ignores_fields_it_does_not_know_including_id() {
    let mut storage = MemoryStorage::new();
    let reply = call(
        &mut storage,
        "POST",
        "/todos",
        r#"{"id":99,"title":"x","colour":"red"}"#,
    );
    assert_eq!(
        body_json(&reply),
        json!({"id": 1, "title": "x", "done": false})
    );
}

#[test]
fn serialisation_is_compact_with_keys_in_a_fixed_order() {
    // Both forms must send these exact bytes; pin them.
    let mut storage = two_todos();
    let reply = call(&mut storage, "GET", "/todos", "");
    let want = r#"[{"id":1,"title":"a","done":false},{"id":2,"title":"b","done":false}]"#;
    assert_eq!(String::from_utf8_lossy(&reply.body), want);
    let error = call(&mut storage, "GET", "/todos/9", "");
    assert_eq!(
        String::from_utf8_lossy(&error.body),
        r#"{"error":"there is no todo with id 9"}"#
    );
}

#[test]
fn titles_are_escaped_as_json() {
    let mut storage = MemoryStorage::new();
    let title = "say \"hi\"\n\\ \u{1F600}";
    let body = json!({ "title": title }).to_string();
    let reply = call(&mut storage, "POST", "/todos", &body);
    assert_eq!(body_json(&reply)["title"], title);
}

#[test]
fn the_list_is_sorted_by_id_as_numbers_not_text() {
    let mut storage = MemoryStorage::new();
    for n in 1..=11 {
        call(
            &mut storage,
            "POST",
            "/todos",
            &format!(r#"{{"title":"t{n}"}}"#),
        );
    }
    let list = body_json(&call(&mut storage, "GET", "/todos", ""));
    let ids: Vec<u64> = list
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|todo| todo["id"].as_u64())
        .collect();
    assert_eq!(ids, (1..=11).collect::<Vec<u64>>());
}

#[test]
fn get_answers_the_todo() {
    let reply = call(&mut two_todos(), "GET", "/todos/2", "");
    assert_eq!(reply.status, 200);
    assert_eq!(
        body_json(&reply),
        json!({"id": 2, "title": "b", "done": false})
    );
}

#[test]
fn get_of_a_missing_id_is_404() {
    assert_error(
        &call(&mut two_todos(), "GET", "/todos/3", ""),
        404,
        "no todo with id 3",
    );
    assert_error(&call(&mut two_todos(), "GET", "/todos/0", ""), 404, "id 0");
}

#[test]
fn update_changes_only_the_fields_given() {
    let mut storage = two_todos();
    let reply = call(&mut storage, "PUT", "/todos/1", r#"{"done":true}"#);
    assert_eq!(reply.status, 200);
    assert_eq!(
        body_json(&reply),
        json!({"id": 1, "title": "a", "done": true})
    );
    let reply = call(&mut storage, "PUT", "/todos/1", r#"{"title":"A"}"#);
    assert_eq!(
        body_json(&reply),
        json!({"id": 1, "title": "A", "done": true})
    );
    let stored = call(&mut storage, "GET", "/todos/1", "");
    assert_eq!(stored.body, reply.body);
}

#[test]
fn update_accepts_a_whole_todo_sent_back() {
    let mut storage = two_todos();
    let body = r#"{"id":1,"title":"a2","done":true}"#;
    let reply = call(&mut storage, "PUT", "/todos/1", body);
    assert_eq!(reply.body, body.as_bytes());
}

#[test]
fn update_of_a_missing_id_is_404() {
    let reply = call(&mut two_todos(), "PUT", "/todos/7", r#"{"done":true}"#);
    assert_error(&reply, 404, "no todo with id 7");
}

#[test]
fn update_with_nothing_to_change_is_400() {
    assert_error(
        &call(&mut two_todos(), "PUT", "/todos/1", "{}"),
        400,
        "nothing to change",
    );
    let nulls = r#"{"title":null,"done":null}"#;
    assert_error(
        &call(&mut two_todos(), "PUT", "/todos/1", nulls),
        400,
        "nothing to change",
    );
}

#[test]
fn update_to_an_empty_title_is_400_and_changes_nothing() {
    let mut storage = two_todos();
    let reply = call(
        &mut storage,
        "PUT",
        "/todos/1",
        r#"{"title":" ","done":true}"#,
    );
    assert_error(&reply, 400, "must not be empty");
    let stored = body_json(&call(&mut storage, "GET", "/todos/1", ""));
    assert_eq!(stored, json!({"id": 1, "title": "a", "done": false}));
}

#[test]
fn update_with_bad_json_is_400() {
    assert_error(
        &call(&mut two_todos(), "PUT", "/todos/1", "{"),
        400,
        "not a JSON todo",
    );
    let wrong_type = r#"{"done":"yes"}"#;
    assert_error(
        &call(&mut two_todos(), "PUT", "/todos/1", wrong_type),
        400,
        "not a JSON todo",
    );
}

#[test]
fn delete_answers_204_with_no_body_and_the_todo_is_gone() {
    let mut storage = two_todos();
    let reply = call(&mut storage, "DELETE", "/todos/1", "");
    assert_eq!(
        reply,
        Reply {
            status: 204,
            content_type: None,
            allow: None,
            body: vec![]
        }
    );
    assert_error(&call(&mut storage, "GET", "/todos/1", ""), 404, "id 1");
    let list = body_json(&call(&mut storage, "GET", "/todos", ""));
    assert_eq!(list, json!([{"id": 2, "title": "b", "done": false}]));
}

#[test]
fn delete_of_a_missing_id_is_404() {
    let mut storage = two_todos();
    call(&mut storage, "DELETE", "/todos/1", "");
    assert_error(&call(&mut storage, "DELETE", "/todos/1", ""), 404, "id 1");
}

#[test]
fn ids_of_deleted_todos_are_not_reused() {
    let mut storage = two_todos();
    call(&mut storage, "DELETE", "/todos/2", "");
    let reply = call(&mut storage, "POST", "/todos", r#"{"title":"c"}"#);
    assert_eq!(body_json(&reply)["id"], 3);
}

#[test]
fn create_with_bad_json_is_400() {
    for body in [
        "",
        "{",
        "[]",
        "\"milk\"",
        r#"{"title":5}"#,
        r#"{"title":"x","done":1}"#,
    ] {
        let reply = call(&mut MemoryStorage::new(), "POST", "/todos", body);
        assert_error(&reply, 400, "not a JSON todo");
    }
}

#[test]
fn create_without_a_title_is_400() {
    for body in ["{}", r#"{"done":true}"#, r#"{"title":null}"#] {
        let reply = call(&mut MemoryStorage::new(), "POST", "/todos", body);
        assert_error(&reply, 400, "`title` is required");
    }
}

#[test]
fn create_with_an_empty_or_blank_title_is_400() {
    for body in [r#"{"title":""}"#, r#"{"title":"  \t"}"#] {
        let reply = call(&mut MemoryStorage::new(), "POST", "/todos", body);
        assert_error(&reply, 400, "must not be empty");
    }
}

#[test]
fn a_rejected_create_uses_up_no_id() {
    let mut storage = MemoryStorage::new();
    call(&mut storage, "POST", "/todos", "{}");
    let reply = call(&mut storage, "POST", "/todos", r#"{"title":"x"}"#);
    assert_eq!(body_json(&reply)["id"], 1);
}

#[test]
fn an_id_that_is_not_a_plain_number_is_400_for_every_method() {
    let bad_ids = ["abc", "-1", "+1", "1.0", "1e3", "18446744073709551616"];
    for method in ["GET", "PUT", "DELETE"] {
        for id in bad_ids {
            let reply = call(
                &mut two_todos(),
                method,
                &format!("/todos/{id}"),
                r#"{"done":true}"#,
            );
            assert_error(&reply, 400, &format!("`{id}` is not a todo id"));
        }
    }
}

#[test]
fn an_id_with_leading_zeros_names_the_same_todo() {
    let reply = call(&mut two_todos(), "GET", "/todos/002", "");
    assert_eq!(body_json(&reply)["id"], 2);
}

#[test]
fn an_unknown_path_is_404_in_json() {
    for path in ["/", "/todo", "/todos/", "/todos/1/done", "/healthz/x"] {
        assert_error(&call(&mut two_todos(), "GET", path, ""), 404, "no route");
    }
}

#[test]
fn a_wrong_method_is_405_with_an_allow_header() {
    let cases = [
        ("POST", "/healthz", "GET"),
        ("DELETE", "/todos", "GET, POST"),
        ("PATCH", "/todos/1", "GET, PUT, DELETE"),
        ("POST", "/todos/abc", "GET, PUT, DELETE"),
    ];
    for (method, path, allow) in cases {
        let reply = call(&mut two_todos(), method, path, "");
        assert_error(&reply, 405, &format!("`{method}` is not allowed"));
        assert_eq!(reply.allow, Some(allow), "{method} {path}");
    }
}

#[test]
fn only_405_replies_carry_an_allow_header() {
    let mut storage = two_todos();
    for (method, path) in [("GET", "/todos"), ("GET", "/nope"), ("GET", "/todos/x")] {
        assert_eq!(
            call(&mut storage, method, path, "").allow,
            None,
            "{method} {path}"
        );
    }
}

#[test]
fn a_body_over_64_kib_is_413_and_one_at_the_limit_is_accepted() {
    let mut storage = MemoryStorage::new();
    let over = vec![b' '; MAX_BODY_BYTES + 1];
    assert_error(
        &handle("POST", "/todos", &over, &mut storage),
        413,
        "65536 bytes",
    );

    let frame = r#"{"title":""}"#;
    let title = "x".repeat(MAX_BODY_BYTES - frame.len());
    let at_limit = format!(r#"{{"title":"{title}"}}"#);
    assert_eq!(at_limit.len(), MAX_BODY_BYTES);
    assert_eq!(call(&mut storage, "POST", "/todos", &at_limit).status, 201);
}

#[test]
fn the_unreadable_body_reply_is_a_json_400() {
    assert_error(&Reply::unreadable_body(), 400, "could not be read");
}

/// A store whose every call fails, with a message that must not reach
/// clients.
struct BrokenStorage;

struct Secret;

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("/secret/path: disk on fire")
    }
}

impl Storage for BrokenStorage {
    type Error = Secret;
    fn get(&self, _: &str) -> Result<Option<Vec<u8>>, Secret> {
        Err(Secret)
    }
    fn set(&mut self, _: &str, _: &[u8]) -> Result<(), Secret> {
        Err(Secret)
    }
    fn create(&mut self, _: &str, _: &[u8]) -> Result<bool, Secret> {
        Err(Secret)
    }
    fn delete(&mut self, _: &str) -> Result<(), Secret> {
        Err(Secret)
    }
    fn keys(&self) -> Result<Vec<String>, Secret> {
        Err(Secret)
    }
}

#[test]
fn a_storage_failure_is_500_without_its_details() {
    let requests = [
        ("GET", "/todos", ""),
        ("POST", "/todos", r#"{"title":"x"}"#),
        ("GET", "/todos/1", ""),
        ("PUT", "/todos/1", r#"{"done":true}"#),
        ("DELETE", "/todos/1", ""),
    ];
    for (method, path, body) in requests {
        let reply = handle(method, path, body.as_bytes(), &mut BrokenStorage);
        assert_error(&reply, 500, "storage failed");
        assert!(!String::from_utf8_lossy(&reply.body).contains("secret"));
    }
}

#[test]
fn the_health_check_does_not_touch_storage() {
    assert_eq!(
        handle("GET", "/healthz", b"", &mut BrokenStorage).status,
        200
    );
}

#[test]
fn a_corrupt_stored_todo_is_500() {
    let mut storage = two_todos();
    storage
        .set("todo:1", b"not json")
        .expect("memory storage cannot fail");
    assert_error(
        &call(&mut storage, "GET", "/todos/1", ""),
        500,
        "storage failed",
    );
    assert_error(
        &call(&mut storage, "GET", "/todos", ""),
        500,
        "storage failed",
    );
}

#[test]
fn a_corrupt_counter_is_500_rather_than_a_reused_id() {
    let mut storage = two_todos();
    storage
        .set("next_id", b"two")
        .expect("memory storage cannot fail");
    assert_error(
        &call(&mut storage, "POST", "/todos", r#"{"title":"c"}"#),
        500,
        "storage failed",
    );
}

#[test]
fn keys_that_are_not_todos_are_left_out_of_the_list() {
    let mut storage = two_todos();
    storage
        .set("todo:x", b"{}")
        .expect("memory storage cannot fail");
    storage
        .set("other", b"{}")
        .expect("memory storage cannot fail");
    assert_eq!(
        body_json(&call(&mut storage, "GET", "/todos", ""))
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[test]
fn into_response_carries_status_content_type_and_allow() {
    let reply = call(&mut MemoryStorage::new(), "DELETE", "/todos", "");
    let body = reply.body.clone();
    let response = reply.into_response(|bytes| bytes);
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["allow"], "GET, POST");
    assert_eq!(response.headers().len(), 2);
    assert_eq!(response.into_body(), body);
}

#[test]
fn into_response_of_a_204_has_no_content_type() {
    let mut storage = two_todos();
    let response = call(&mut storage, "DELETE", "/todos/1", "").into_response(|bytes| bytes);
    assert_eq!(response.status(), 204);
    assert!(response.headers().is_empty());
    assert!(response.into_body().is_empty());
}

#[test]
fn a_counter_left_behind_by_a_racing_writer_skips_the_ids_taken() {
    // Another process created todo 3 and set the counter to 4, then a
    // slower one set it back to 3.
    let mut storage = two_todos();
    storage
        .set("todo:3", br#"{"id":3,"title":"c","done":false}"#)
        .unwrap();
    storage.set("next_id", b"3").unwrap();
    let reply = call(&mut storage, "POST", "/todos", r#"{"title":"d"}"#);
    assert_eq!(reply.status, 201);
    assert_eq!(body_json(&reply)["id"], 4);
    assert_eq!(storage.get("next_id").unwrap(), Some(b"5".to_vec()));
}

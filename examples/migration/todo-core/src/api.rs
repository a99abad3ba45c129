//! [`handle`]: one request in, one [`Reply`] out, whatever the transport.
//!
//! Storage layout: each todo is the JSON of [`Todo`] under `todo:<id>`, and
//! `next_id` holds the next id to hand out as decimal text.

use std::fmt::Display;

use crate::reply::{to_json, Reply};
use crate::route::{route, Action, Routed};
use crate::storage::Storage;
use crate::todo::{Changes, InputError, NewTodo, Todo};

/// Largest request body accepted. A todo is a title and a flag, so 64 KiB is
/// far more than any real one needs, and small enough that neither form
/// worries about memory (a Wasm instance's is capped by the host). Transports
/// read at most one byte more than this, so that [`handle`] can tell "too
/// large" from "exactly the limit" without either of them buffering more.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Key of the id counter. Kept apart from the todos so that a deleted id is
/// never handed out again.
const NEXT_ID_KEY: &str = "next_id";

/// Prefix of every todo's key. `:` rather than `/` so that a key is also a
/// valid file name.
const TODO_KEY_PREFIX: &str = "todo:";

/// Answers one request. `path` excludes the query string; `body` is what the
/// transport read, at most [`MAX_BODY_BYTES`] + 1 bytes of it.
pub fn handle<S: Storage>(method: &str, path: &str, body: &[u8], storage: &mut S) -> Reply {
    if body.len() > MAX_BODY_BYTES {
        let message = format!("the body is larger than the limit of {MAX_BODY_BYTES} bytes");
        return Reply::error(413, &message);
    }
    match route(method, path) {
        Routed::Action(action) => {
            perform(action, body, storage).unwrap_or_else(ApiError::into_reply)
        }
        Routed::NotFound => Reply::error(404, &format!("no route for `{path}`; try `/todos`")),
        Routed::MethodNotAllowed { allow } => Reply {
            allow: Some(allow),
            ..Reply::error(
                405,
                &format!("`{method}` is not allowed on `{path}`; use {allow}"),
            )
        },
    }
}

/// Why a routed request failed.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("`{0}` is not a todo id; ids are whole numbers such as `1`")]
    BadId(String),
    #[error("there is no todo with id {0}")]
    NotFound(u64),
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("the value stored under `{key}` is unusable: {reason}")]
    Corrupt { key: String, reason: String },
}

impl ApiError {
    fn storage(error: impl Display) -> Self {
        ApiError::Storage(error.to_string())
    }

    fn corrupt(key: &str, reason: impl Display) -> Self {
        ApiError::Corrupt {
            key: key.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// Client mistakes are explained to the client. Server faults are logged
    /// (stderr reaches the container log and the host's log alike) and
    /// answered without detail, since their messages can name files.
    fn into_reply(self) -> Reply {
        match self {
            ApiError::Input(_) | ApiError::BadId(_) => Reply::error(400, &self.to_string()),
            ApiError::NotFound(_) => Reply::error(404, &self.to_string()),
            ApiError::Storage(_) | ApiError::Corrupt { .. } => {
                eprintln!("todo: {self}");
                Reply::error(500, "storage failed; the server log says why")
            }
        }
    }
}

fn perform<S: Storage>(
    action: Action<'_>,
    body: &[u8],
    storage: &mut S,
) -> Result<Reply, ApiError> {
    Ok(match action {
        Action::Health => Reply::text(200, "ok"),
        Action::List => Reply::json(200, &list(storage)?),
        Action::Create => Reply::json(201, &create(storage, NewTodo::parse(body)?)?),
        Action::Get(id) => Reply::json(200, &load(storage, parse_id(id)?)?),
        Action::Update(id) => {
            let id = parse_id(id)?;
            let changes = Changes::parse(body)?;
            Reply::json(200, &update(storage, id, changes)?)
        }
        Action::Delete(id) => {
            delete(storage, parse_id(id)?)?;
            Reply::no_content()
        }
    })
}

/// Digits only: `str::parse` would also take `+1`, making two paths name
/// one todo.
fn parse_id(segment: &str) -> Result<u64, ApiError> {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    let id = digits.then(|| segment.parse().ok()).flatten();
    id.ok_or_else(|| ApiError::BadId(segment.to_owned()))
}

fn todo_key(id: u64) -> String {
    format!("{TODO_KEY_PREFIX}{id}")
}

fn list<S: Storage>(storage: &S) -> Result<Vec<Todo>, ApiError> {
    let keys = storage.keys().map_err(ApiError::storage)?;
    let mut ids: Vec<u64> = keys
        .iter()
        .filter_map(|key| key.strip_prefix(TODO_KEY_PREFIX)?.parse().ok())
        .collect();
    ids.sort_unstable();
    let mut todos = Vec::with_capacity(ids.len());
    for id in ids {
        // A todo deleted between `keys` and `get` (possible where instances
        // share a store) is simply no longer listed.
        if let Some(todo) = find(storage, id)? {
            todos.push(todo);
        }
    }
    Ok(todos)
}

fn find<S: Storage>(storage: &S, id: u64) -> Result<Option<Todo>, ApiError> {
    let key = todo_key(id);
    let Some(bytes) = storage.get(&key).map_err(ApiError::storage)? else {
        return Ok(None);
    };
    let todo = serde_json::from_slice(&bytes).map_err(|e| ApiError::corrupt(&key, e))?;
    Ok(Some(todo))
}

fn load<S: Storage>(storage: &S, id: u64) -> Result<Todo, ApiError> {
    find(storage, id)?.ok_or(ApiError::NotFound(id))
}

fn save<S: Storage>(storage: &mut S, todo: &Todo) -> Result<(), ApiError> {
    storage
        .set(&todo_key(todo.id), &to_json(todo))
        .map_err(ApiError::storage)
}

/// Claims the first free id from the counter on with [`Storage::create`],
/// which only one writer can win, so concurrent creators (threads, Wasm
/// instances, the two forms on one directory) never share an id; the
/// counter then moves past it. With one writer ids are never reused after a
/// delete; racing writers can at worst set the counter back, and the next
/// create skips the ids still taken.
fn create<S: Storage>(storage: &mut S, new: NewTodo) -> Result<Todo, ApiError> {
    let mut id = next_id(storage)?;
    loop {
        let todo = new.clone().with_id(id);
        if storage
            .create(&todo_key(id), &to_json(&todo))
            .map_err(ApiError::storage)?
        {
            let next = id
                .checked_add(1)
                .ok_or_else(|| ApiError::corrupt(NEXT_ID_KEY, "no ids left"))?;
            storage
                .set(NEXT_ID_KEY, next.to_string().as_bytes())
                .map_err(ApiError::storage)?;
            return Ok(todo);
        }
        id = id
            .checked_add(1)
            .ok_or_else(|| ApiError::corrupt(NEXT_ID_KEY, "no ids left"))?;
    }
}

/// The counter: the next id to try, starting at 1.
fn next_id<S: Storage>(storage: &S) -> Result<u64, ApiError> {
    Ok(match storage.get(NEXT_ID_KEY).map_err(ApiError::storage)? {
        None => 1,
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or_else(|| ApiError::corrupt(NEXT_ID_KEY, "not a decimal number"))?,
    })
}

fn update<S: Storage>(storage: &mut S, id: u64, changes: Changes) -> Result<Todo, ApiError> {
    let mut todo = load(storage, id)?;
    changes.apply(&mut todo);
    save(storage, &todo)?;
    Ok(todo)
}

fn delete<S: Storage>(storage: &mut S, id: u64) -> Result<(), ApiError> {
    let key = todo_key(id);
    if storage.get(&key).map_err(ApiError::storage)?.is_none() {
        return Err(ApiError::NotFound(id));
    }
    storage.delete(&key).map_err(ApiError::storage)
}

#[cfg(test)]
mod tests;

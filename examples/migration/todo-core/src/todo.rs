//! The todo record, and the request bodies that create or change one.

use serde::{Deserialize, Serialize};

/// One todo, as stored and as sent to clients. Field order is the JSON key
/// order, which both forms must agree on byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    /// Assigned by the server, never reused.
    pub id: u64,
    /// What to do; never empty.
    pub title: String,
    /// Whether it is done.
    pub done: bool,
}

/// A body that cannot create or change a todo; the client's mistake, a `400`.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not JSON, or JSON of the wrong shape (`{"title": 5}`).
    #[error("the body is not a JSON todo such as {{\"title\":\"buy milk\"}}: {0}")]
    Json(#[from] serde_json::Error),
    /// `POST` without `title`.
    #[error("`title` is required, for example {{\"title\":\"buy milk\"}}")]
    MissingTitle,
    /// A title that is empty or only whitespace.
    #[error("`title` must not be empty")]
    EmptyTitle,
    /// `PUT` with neither `title` nor `done`.
    #[error("nothing to change: give `title` and/or `done`")]
    NoChanges,
}

/// The fields a client may send. Both are optional so that one shape serves
/// `POST` and `PUT`, and so that a missing title gets this API's message
/// rather than serde's. Unknown fields (such as `id` in a todo sent back
/// whole) are ignored.
#[derive(Debug, Deserialize)]
struct Fields {
    title: Option<String>,
    done: Option<bool>,
}

impl Fields {
    fn parse(body: &[u8]) -> Result<Self, InputError> {
        let fields: Fields = serde_json::from_slice(body)?;
        if fields.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(InputError::EmptyTitle);
        }
        Ok(fields)
    }
}

/// A checked `POST /todos` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTodo {
    /// Not empty.
    pub title: String,
    /// `false` unless given.
    pub done: bool,
}

impl NewTodo {
    /// Parses and checks a `POST` body.
    pub fn parse(body: &[u8]) -> Result<Self, InputError> {
        let fields = Fields::parse(body)?;
        Ok(NewTodo {
            title: fields.title.ok_or(InputError::MissingTitle)?,
            done: fields.done.unwrap_or(false),
        })
    }

    /// The todo this becomes once it has an id.
    pub fn with_id(self, id: u64) -> Todo {
        Todo {
            id,
            title: self.title,
            done: self.done,
        }
    }
}

/// A checked `PUT /todos/:id` body: at least one field, title not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    title: Option<String>,
    done: Option<bool>,
}

impl Changes {
    /// Parses and checks a `PUT` body.
    pub fn parse(body: &[u8]) -> Result<Self, InputError> {
        let Fields { title, done } = Fields::parse(body)?;
        if title.is_none() && done.is_none() {
            return Err(InputError::NoChanges);
        }
        Ok(Changes { title, done })
    }

    /// Applies the fields that were given and leaves the others.
    pub fn apply(self, todo: &mut Todo) {
        if let Some(title) = self.title {
            todo.title = title;
        }
        if let Some(done) = self.done {
            todo.done = done;
        }
    }
}

//! Routing: which [`Action`] a method and path ask for. Pure, so the whole
//! table is tested without storage or a server.

/// What the client asked to do. Ids are still the raw path segment: turning
/// one into a number is the handler's job, so that `/todos/abc` is a `400`
/// (a bad id) rather than a `404` (no such route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// `GET /healthz`
    Health,
    /// `GET /todos`
    List,
    /// `POST /todos`
    Create,
    /// `GET /todos/:id`
    Get(&'a str),
    /// `PUT /todos/:id`
    Update(&'a str),
    /// `DELETE /todos/:id`
    Delete(&'a str),
}

/// The outcome of routing one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed<'a> {
    /// A known path and a method it accepts.
    Action(Action<'a>),
    /// No such path.
    NotFound,
    /// A known path, but not with this method; `allow` is the value of the
    /// `allow` header that a `405` must carry (RFC 9110, section 15.5.6).
    MethodNotAllowed {
        /// The methods the path accepts, comma-separated.
        allow: &'static str,
    },
}

/// A path the API knows, before the method is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource<'a> {
    Health,
    Todos,
    Todo(&'a str),
}

impl<'a> Resource<'a> {
    /// Exact segments only: a trailing slash or an empty segment is another
    /// path, as it would be to a file server.
    fn parse(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix('/')?;
        let mut segments = rest.split('/');
        let resource = match (segments.next(), segments.next()) {
            (Some("healthz"), None) => Resource::Health,
            (Some("todos"), None) => Resource::Todos,
            (Some("todos"), Some(id)) if !id.is_empty() => Resource::Todo(id),
            _ => return None,
        };
        segments.next().is_none().then_some(resource)
    }

    fn allow(self) -> &'static str {
        match self {
            Resource::Health => "GET",
            Resource::Todos => "GET, POST",
            Resource::Todo(_) => "GET, PUT, DELETE",
        }
    }

    fn action(self, method: &str) -> Option<Action<'a>> {
        Some(match (self, method) {
            (Resource::Health, "GET") => Action::Health,
            (Resource::Todos, "GET") => Action::List,
            (Resource::Todos, "POST") => Action::Create,
            (Resource::Todo(id), "GET") => Action::Get(id),
            (Resource::Todo(id), "PUT") => Action::Update(id),
            (Resource::Todo(id), "DELETE") => Action::Delete(id),
            _ => return None,
        })
    }
}

/// Routes `method` (case-sensitive, as HTTP methods are) and `path` (without
/// the query string).
pub fn route<'a>(method: &str, path: &'a str) -> Routed<'a> {
    let Some(resource) = Resource::parse(path) else {
        return Routed::NotFound;
    };
    match resource.action(method) {
        Some(action) => Routed::Action(action),
        None => Routed::MethodNotAllowed {
            allow: resource.allow(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(allow: &'static str) -> Routed<'static> {
        Routed::MethodNotAllowed { allow }
    }

    #[test]
    fn every_route_and_method_maps_to_its_action() {
        let cases = [
            ("GET", "/healthz", Routed::Action(Action::Health)),
            ("GET", "/todos", Routed::Action(Action::List)),
            ("POST", "/todos", Routed::Action(Action::Create)),
            ("GET", "/todos/7", Routed::Action(Action::Get("7"))),
            ("PUT", "/todos/7", Routed::Action(Action::Update("7"))),
            ("DELETE", "/todos/7", Routed::Action(Action::Delete("7"))),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn a_non_numeric_id_is_still_routed_so_the_handler_can_say_400() {
        assert_eq!(
            route("GET", "/todos/abc"),
            Routed::Action(Action::Get("abc"))
        );
    }

    #[test]
    fn a_wrong_method_on_a_known_path_names_the_allowed_ones() {
        let cases = [
            ("POST", "/healthz", allow("GET")),
            ("DELETE", "/todos", allow("GET, POST")),
            ("PUT", "/todos", allow("GET, POST")),
            ("POST", "/todos/1", allow("GET, PUT, DELETE")),
            ("PATCH", "/todos/1", allow("GET, PUT, DELETE")),
            ("get", "/todos", allow("GET, POST")),
            ("HEAD", "/healthz", allow("GET")),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn paths_that_only_resemble_a_route_are_not_found() {
        let paths = [
            "",
            "/",
            "/todo",
            "/todos/",
            "/todos//",
            "//todos",
            "/todos/1/",
            "/todos/1/done",
            "/healthz/",
            "/TODOS",
            "todos",
        ];
        for path in paths {
            assert_eq!(route("GET", path), Routed::NotFound, "{path:?}");
        }
    }
}

//! Spin's `wagi` executor: CGI for WebAssembly. A command (a wasip1
//! module with `_start`, wrapped at load with the command adapter, or a
//! component exporting `wasi:cli/run`) runs once per request with the
//! request's metadata in CGI environment variables, its body on stdin and
//! argv from the trigger's `argv` template; what it prints is a CGI
//! response (header lines, a blank line, the body).
//!
//! Behaviour follows Spin's (crates/trigger-http/src/wagi.rs and
//! crates/http/src/wagi/): `${SCRIPT_NAME}` in argv is the request path and
//! `${ARGS}` the query string with `&` turned into spaces; `Status:` sets
//! the status, `Location:` without `Status:` makes a 302, and output with
//! none of `Content-Type`, `Status` or `Location` is a 500. One deliberate
//! difference: `CONTENT_TYPE` carries the request's content type (Spin
//! always sets it empty, a bug).

use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use wasmtime::Engine;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::I32Exit;

use super::admission::Admission;
use super::cache::Origin;
use super::engine::Runtime;
use super::guest_log::CurrentRequest;
use super::load::HandlerKind;
use super::state::{store_for, GuestState, InstancePolicy};
use super::ComponentOptions;
use crate::backend::{
    text_response, Backend, BodyError, BoxFuture, RequestBody, RequestContext, ResponseBody,
};
use crate::router;

/// Spin's default `argv`.
pub const DEFAULT_ARGV: &str = "${SCRIPT_NAME} ${ARGS}";

/// Most a program may print per request; past it the request fails (500)
/// instead of growing host memory without bound.
pub const MAX_OUTPUT_BYTES: usize = 64 << 20;

/// A WAGI program, ready to serve.
pub struct WagiBackend {
    inner: Arc<Inner>,
}

struct Inner {
    id: Arc<str>,
    engine: Engine,
    pre: CommandPre<GuestState>,
    policy: InstancePolicy,
    argv: String,
    admission: Admission,
}

impl WagiBackend {
    /// Compiles (or loads from the cache) and links the command in
    /// `bytes` (already a component) on `runtime`. Returns where the code
    /// came from, for the start-up log.
    pub fn on(
        runtime: &Runtime,
        id: &str,
        bytes: &[u8],
        options: &ComponentOptions,
        argv: Option<&str>,
    ) -> Result<(Self, Origin)> {
        let (component, origin) = options.cache.load(&runtime.engine, bytes)?;
        let linker = super::component::linker(&runtime.engine, HandlerKind::P2)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("it needs an import wasmhost does not provide: {e:#}"))?;
        let pre = CommandPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("it does not export a usable `wasi:cli/run`")?;
        let inner = Inner {
            id: Arc::from(id),
            engine: runtime.engine.clone(),
            pre,
            policy: options.instance.clone(),
            argv: argv.unwrap_or(DEFAULT_ARGV).to_owned(),
            admission: runtime.admission.clone(),
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            origin,
        ))
    }
}

impl Backend for WagiBackend {
    fn handle(
        &self,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> BoxFuture<http::Response<ResponseBody>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.serve(req, ctx).await })
    }
}

impl Inner {
    async fn serve(
        self: Arc<Self>,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> http::Response<ResponseBody> {
        let deadline = tokio::time::Instant::from_std(ctx.deadline);
        let _permit = match self.admission.enter(deadline).await {
            Ok(permit) => permit,
            Err(refused) => return refused.answer(&ctx, &self.id),
        };
        let (parts, body) = req.into_parts();
        let body = match tokio::time::timeout_at(deadline, body.collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(BodyError::TooLarge { limit })) => {
                return text_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body exceeds the {limit}-byte limit"),
                )
            }
            Ok(Err(e)) => {
                return text_response(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}"),
                )
            }
            Err(_) => return text_response(StatusCode::GATEWAY_TIMEOUT, "request timed out"),
        };
        let env = cgi_environment(&parts, body.len(), &ctx);
        let argv = expand_argv(&self.argv, &parts.uri);
        let stdout = MemoryOutputPipe::new(MAX_OUTPUT_BYTES);
        let request = CurrentRequest::default();
        request.set(ctx.id);
        let state = GuestState::with_wasi(self.id.clone(), request, &self.policy, |wasi| {
            wasi.args(&argv)
                .envs(&env)
                .stdin(MemoryInputPipe::new(body))
                .stdout(stdout.clone());
        });
        let mut store = store_for(&self.engine, state);
        let run = async {
            let command = self.pre.instantiate_async(&mut store).await?;
            command.wasi_cli_run().call_run(&mut store).await
        };
        let failure = match tokio::time::timeout_at(deadline, run).await {
            Err(_) => {
                tracing::warn!(request = %ctx.id, component = %self.id, "WAGI program stopped at the deadline");
                return text_response(StatusCode::GATEWAY_TIMEOUT, "request timed out");
            }
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(()))) => {
                // As in Spin: logged, and the output is still used.
                tracing::warn!(request = %ctx.id, component = %self.id, "WAGI program's `run` returned an error");
                None
            }
            Ok(Err(e)) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(0)) => None,
                Some(I32Exit(code)) => Some(format!("exited with status {code}")),
                None => Some(format!("{e:?}")),
            },
        };
        if let Some(reason) = failure {
            tracing::error!(request = %ctx.id, component = %self.id, "WAGI program failed: {reason}");
            return text_response(StatusCode::INTERNAL_SERVER_ERROR, "");
        }
        drop(store);
        match parse_output(&stdout.contents()) {
            Ok(response) => response,
            Err(reason) => {
                tracing::error!(request = %ctx.id, component = %self.id, "WAGI output refused: {reason}");
                text_response(StatusCode::INTERNAL_SERVER_ERROR, reason)
            }
        }
    }
}

/// argv from the template: `${SCRIPT_NAME}` is the request path,
/// `${ARGS}` the query with `&` as spaces; then split on spaces.
pub fn expand_argv(template: &str, uri: &http::Uri) -> Vec<String> {
    let args = uri.query().unwrap_or_default().replace('&', " ");
    template
        .replace("${SCRIPT_NAME}", uri.path())
        .replace("${ARGS}", &args)
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// The CGI 1.1 variables Spin sets, from the request and the `spin-*`
/// headers the router added.
pub fn cgi_environment(
    parts: &http::request::Parts,
    body_len: usize,
    ctx: &RequestContext,
) -> Vec<(String, String)> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let host = header("host");
    let (server_name, server_port) = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            (name.to_owned(), port.to_owned())
        }
        _ => (
            host.clone(),
            parts
                .uri
                .port_u16()
                .map_or_else(|| "80".to_owned(), |p| p.to_string()),
        ),
    };
    let path_info = header(router::PATH_INFO);
    let client_ip = ctx.client_addr.ip().to_string();
    let mut env = vec![
        ("AUTH_TYPE".into(), String::new()),
        ("REMOTE_USER".into(), String::new()),
        ("CONTENT_LENGTH".into(), body_len.to_string()),
        ("CONTENT_TYPE".into(), header("content-type")),
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("SERVER_SOFTWARE".into(), "WAGI/1".into()),
        ("SERVER_PROTOCOL".into(), format!("{:?}", parts.version)),
        (
            "QUERY_STRING".into(),
            parts.uri.query().unwrap_or_default().to_owned(),
        ),
        ("REMOTE_ADDR".into(), client_ip.clone()),
        ("REMOTE_HOST".into(), client_ip),
        ("X_CLIENT_ADDR".into(), ctx.client_addr.to_string()),
        ("REQUEST_METHOD".into(), parts.method.to_string()),
        ("SERVER_NAME".into(), server_name),
        ("SERVER_PORT".into(), server_port),
        ("SCRIPT_NAME".into(), header(router::COMPONENT_ROUTE)),
        ("PATH_TRANSLATED".into(), percent_decode(&path_info)),
        ("X_RAW_PATH_INFO".into(), path_info.clone()),
        ("PATH_INFO".into(), path_info),
        ("X_FULL_URL".into(), header(router::FULL_URL)),
        ("X_MATCHED_ROUTE".into(), header(router::MATCHED_ROUTE)),
        (
            "X_RAW_COMPONENT_ROUTE".into(),
            header(router::RAW_COMPONENT_ROUTE),
        ),
        ("X_COMPONENT_ROUTE".into(), header(router::COMPONENT_ROUTE)),
        ("X_BASE_PATH".into(), header(router::BASE_PATH)),
    ];
    for (name, value) in &parts.headers {
        let name = name.as_str();
        if let Some(param) = name.strip_prefix(router::PATH_MATCH_PREFIX) {
            env.push((
                format!(
                    "X_PATH_MATCH_{}",
                    param.to_ascii_uppercase().replace('-', "_")
                ),
                value.to_str().unwrap_or("CORRUPT VALUE").to_owned(),
            ));
        }
        if name == "authorization" || name == "connection" {
            continue;
        }
        let value = value
            .to_str()
            .ok()
            .filter(|v| v.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
            .unwrap_or("CORRUPT VALUE");
        env.push((
            format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
            value.to_owned(),
        ));
    }
    env
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Turns a program's stdout into a response, as Spin does: headers end at
/// the first blank line (carriage returns ignored there), `Status:` sets the
/// status, `Location:` alone makes a 302.
pub fn parse_output(output: &[u8]) -> Result<http::Response<ResponseBody>, String> {
    if output.is_empty() {
        return Err("the program wrote nothing to stdout; check the component's `executor`".into());
    }
    let mut head = Vec::new();
    let mut body_start = None;
    let mut last_was_newline = false;
    for (i, &b) in output.iter().enumerate() {
        match b {
            b'\r' => continue,
            b'\n' if last_was_newline => {
                body_start = Some(i + 1);
                break;
            }
            b'\n' => last_was_newline = true,
            _ => last_was_newline = false,
        }
        head.push(b);
    }
    let (head, body) = match body_start {
        Some(start) => (head, &output[start..]),
        None => (Vec::new(), output),
    };
    let head =
        String::from_utf8(head).map_err(|_| "the response headers are not UTF-8".to_owned())?;
    let mut headers = HeaderMap::new();
    let mut status = None;
    let mut location = false;
    let mut content_type = false;
    for line in head.trim().lines() {
        let Some((name, value)) = line.split_once(':') else {
            tracing::warn!("WAGI output: ignoring header line without a colon: {line:?}");
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        match name.to_ascii_lowercase().as_str() {
            "status" => {
                let code = value.split(' ').next().unwrap_or_default();
                let parsed = code
                    .parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok());
                status = Some(parsed.unwrap_or(StatusCode::BAD_GATEWAY));
                continue;
            }
            "location" => location = true,
            "content-type" => content_type = true,
            _ => {}
        }
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        headers.insert(name, value);
    }
    if status.is_none() && !location && !content_type {
        return Err("Exactly one of 'location' or 'content-type' must be specified".into());
    }
    let status = status.unwrap_or(if location {
        StatusCode::FOUND
    } else {
        StatusCode::OK
    });
    let mut response = http::Response::new(
        Full::new(Bytes::copy_from_slice(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// A WAGI program read from disk, as a component.
pub fn read_command(path: &std::path::Path) -> Result<(Vec<u8>, bool)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    if !bytes.starts_with(b"\0asm") {
        bail!("`{}` is not a WebAssembly file", path.display());
    }
    if wasmparser::Parser::is_core_wasm(&bytes) {
        let component = super::load::componentize_command(&bytes).with_context(|| {
            format!(
                "cannot turn the wasip1 module `{}` into a command component",
                path.display()
            )
        })?;
        return Ok((component, true));
    }
    Ok((bytes, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parsed(output: &str) -> (u16, Vec<(String, String)>, String) {
        let response = parse_output(output.as_bytes()).unwrap();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn cgi_output_is_parsed_as_spin_does() {
        let (status, headers, body) = parsed("Content-Type: text/plain\n\nhello\r\n").await;
        assert_eq!((status, body.as_str()), (200, "hello\r\n"));
        assert_eq!(headers, vec![("content-type".into(), "text/plain".into())]);
        let (status, _, body) =
            parsed("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope").await;
        assert_eq!((status, body.as_str()), (404, "nope"));
        let (status, headers, _) = parsed("Location: /x\n\n").await;
        assert_eq!(status, 302);
        assert_eq!(headers[0].1, "/x");
        let (status, _, _) = parsed("Status: 201\nLocation: /x\n\n").await;
        assert_eq!(status, 201, "an explicit status wins over Location");
        let (status, _, _) = parsed("Status: teapot\nContent-Type: a/b\n\n").await;
        assert_eq!(status, 502);
        let err = parse_output(b"no headers at all").err().unwrap();
        assert_eq!(
            err,
            "Exactly one of 'location' or 'content-type' must be specified"
        );
        assert!(parse_output(b"").is_err());
    }

    #[test]
    fn argv_follows_spins_template() {
        let uri: http::Uri = "/assert-args?x=y&z=1".parse().unwrap();
        assert_eq!(
            expand_argv(DEFAULT_ARGV, &uri),
            ["/assert-args", "x=y", "z=1"]
        );
        let uri: http::Uri = "/plain".parse().unwrap();
        assert_eq!(expand_argv(DEFAULT_ARGV, &uri), ["/plain", ""]);
        assert_eq!(
            expand_argv("prog -v ${ARGS}", &"/p?a".parse().unwrap()),
            ["prog", "-v", "a"]
        );
    }

    #[test]
    fn percent_decoding_of_path_translated() {
        assert_eq!(percent_decode("/a%20b/%zz"), "/a b/%zz");
    }
}

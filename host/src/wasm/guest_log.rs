//! Guest stdout and stderr, line by line into the host log, each line
//! prefixed with the component id and the request id so interleaved output
//! of concurrent requests can be told apart.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept before it is logged anyway, so a guest writing
/// without newlines cannot grow host memory.
const MAX_LINE: usize = 16 << 10;

/// Which request an instance is serving now. Shared with the instance's
/// stdio so a reused instance logs under the current request's id.
#[derive(Clone, Default)]
pub struct CurrentRequest(Arc<AtomicU64>);

impl CurrentRequest {
    /// Records the request now being served.
    pub fn set(&self, id: crate::backend::RequestId) {
        self.0.store(id.as_u64(), Ordering::Relaxed);
    }

    fn get(&self) -> crate::backend::RequestId {
        crate::backend::RequestId::from_u64(self.0.load(Ordering::Relaxed))
    }
}

/// One of a guest's two output streams.
#[derive(Clone)]
pub struct GuestLog {
    component: Arc<str>,
    request: CurrentRequest,
    stream: &'static str,
}

impl GuestLog {
    /// The guest's stdout.
    pub fn stdout(component: Arc<str>, request: CurrentRequest) -> Self {
        Self {
            component,
            request,
            stream: "stdout",
        }
    }

    /// The guest's stderr.
    pub fn stderr(component: Arc<str>, request: CurrentRequest) -> Self {
        Self {
            component,
            request,
            stream: "stderr",
        }
    }

    fn writer(&self) -> LineWriter {
        LineWriter {
            log: self.clone(),
            pending: Vec::new(),
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }
}

/// Buffers a partial line until its newline arrives.
struct LineWriter {
    log: GuestLog,
    pending: Vec<u8>,
}

impl LineWriter {
    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.pending.len();
            let take = bytes.len().min(room);
            match bytes[..take].iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    self.pending.extend_from_slice(&bytes[..pos]);
                    self.emit();
                    bytes = &bytes[pos + 1..];
                }
                None => {
                    self.pending.extend_from_slice(&bytes[..take]);
                    if self.pending.len() >= MAX_LINE {
                        self.emit();
                    }
                    bytes = &bytes[take..];
                }
            }
        }
    }

    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.pending);
        let line = line.trim_end_matches('\r');
        tracing::info!(
            target: "wasmhost::guest",
            "[{} req={} {}] {}",
            self.log.component,
            self.log.request.get(),
            self.log.stream,
            line
        );
        self.pending.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.emit();
        }
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

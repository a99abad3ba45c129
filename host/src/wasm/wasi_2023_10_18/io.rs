//! `wasi:io@0.2.0-rc-2023-10-18` (poll, streams) over the 0.2 host's
//! implementation on the resource table. Differences from 0.2:
//! `poll-list` and `poll-one` instead of `poll` and `pollable.block`;
//! stream errors are a resource of `wasi:io/streams` (the same one 0.2
//! moved to `wasi:io/error`); `splice` and `forward` take the input stream
//! by value, so the host drops it once done with it; `forward` (gone in
//! 0.2) copies until the input ends.

use wasmtime::component::{Resource, ResourceTable};

use super::latest::io as latest;
use super::snapshot::io::{poll, streams};
use streams::{Error, InputStream, OutputStream, StreamError};

type Pollable = super::latest::io::poll::Pollable;

/// The most `forward` asks of the input stream at once: the largest chunk
/// the 0.2 streams hand out in one read.
const FORWARD_CHUNK: usize = 64 * 1024;

/// A 0.2 stream call's result for the snapshot: `closed` and
/// `last-operation-failed` (its error pushed as a resource) as values, a
/// trap left a trap.
fn returned<T>(
    table: &mut ResourceTable,
    result: wasmtime_wasi::p2::StreamResult<T>,
) -> wasmtime::Result<Result<T, StreamError>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) => Ok(Err(
            match latest::streams::Host::convert_stream_error(table, error)? {
                latest::streams::StreamError::Closed => StreamError::Closed,
                latest::streams::StreamError::LastOperationFailed(error) => {
                    StreamError::LastOperationFailed(error)
                }
            },
        )),
    }
}

impl poll::Host for ResourceTable {
    async fn poll_list(
        &mut self,
        pollables: Vec<Resource<Pollable>>,
    ) -> wasmtime::Result<Vec<u32>> {
        latest::poll::Host::poll(self, pollables).await
    }

    async fn poll_one(&mut self, pollable: Resource<Pollable>) -> wasmtime::Result<()> {
        latest::poll::HostPollable::block(self, pollable).await
    }
}

impl poll::HostPollable for ResourceTable {
    fn drop(&mut self, pollable: Resource<Pollable>) -> wasmtime::Result<()> {
        latest::poll::HostPollable::drop(self, pollable)
    }
}

impl streams::Host for ResourceTable {}

impl streams::HostError for ResourceTable {
    fn to_debug_string(&mut self, error: Resource<Error>) -> wasmtime::Result<String> {
        latest::error::HostError::to_debug_string(self, error)
    }

    fn drop(&mut self, error: Resource<Error>) -> wasmtime::Result<()> {
        latest::error::HostError::drop(self, error)
    }
}

impl streams::HostInputStream for ResourceTable {
    fn read(
        &mut self,
        stream: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        let result = latest::streams::HostInputStream::read(self, stream, len);
        returned(self, result)
    }

    async fn blocking_read(
        &mut self,
        stream: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        let result = latest::streams::HostInputStream::blocking_read(self, stream, len).await;
        returned(self, result)
    }

    fn skip(
        &mut self,
        stream: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        let result = latest::streams::HostInputStream::skip(self, stream, len);
        returned(self, result)
    }

    async fn blocking_skip(
        &mut self,
        stream: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        let result = latest::streams::HostInputStream::blocking_skip(self, stream, len).await;
        returned(self, result)
    }

    fn subscribe(&mut self, stream: Resource<InputStream>) -> wasmtime::Result<Resource<Pollable>> {
        latest::streams::HostInputStream::subscribe(self, stream)
    }

    async fn drop(&mut self, stream: Resource<InputStream>) -> wasmtime::Result<()> {
        latest::streams::HostInputStream::drop(self, stream).await
    }
}

impl streams::HostOutputStream for ResourceTable {
    fn check_write(
        &mut self,
        stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        let result = latest::streams::HostOutputStream::check_write(self, stream);
        returned(self, result)
    }

    fn write(
        &mut self,
        stream: Resource<OutputStream>,
        contents: Vec<u8>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        let result = latest::streams::HostOutputStream::write(self, stream, contents);
        returned(self, result)
    }

    async fn blocking_write_and_flush(
        &mut self,
        stream: Resource<OutputStream>,
        contents: Vec<u8>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        let result =
            latest::streams::HostOutputStream::blocking_write_and_flush(self, stream, contents)
                .await;
        returned(self, result)
    }

    fn flush(
        &mut self,
        stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        let result = latest::streams::HostOutputStream::flush(self, stream);
        returned(self, result)
    }

    async fn blocking_flush(
        &mut self,
        stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        let result = latest::streams::HostOutputStream::blocking_flush(self, stream).await;
        returned(self, result)
    }

    fn subscribe(
        &mut self,
        stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        latest::streams::HostOutputStream::subscribe(self, stream)
    }

    fn write_zeroes(
        &mut self,
        stream: Resource<OutputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        let result = latest::streams::HostOutputStream::write_zeroes(self, stream, len);
        returned(self, result)
    }

    async fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<OutputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        let result =
            latest::streams::HostOutputStream::blocking_write_zeroes_and_flush(self, stream, len)
                .await;
        returned(self, result)
    }

    async fn splice(
        &mut self,
        stream: Resource<OutputStream>,
        src: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        let borrowed = Resource::new_borrow(src.rep());
        let result = latest::streams::HostOutputStream::splice(self, stream, borrowed, len);
        latest::streams::HostInputStream::drop(self, src).await?;
        returned(self, result)
    }

    async fn blocking_splice(
        &mut self,
        stream: Resource<OutputStream>,
        src: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        let borrowed = Resource::new_borrow(src.rep());
        let result =
            latest::streams::HostOutputStream::blocking_splice(self, stream, borrowed, len).await;
        latest::streams::HostInputStream::drop(self, src).await?;
        returned(self, result)
    }

    async fn forward(
        &mut self,
        stream: Resource<OutputStream>,
        src: Resource<InputStream>,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        let mut forwarded = 0u64;
        let result = loop {
            let ready = match self.get_mut(&stream)?.write_ready().await {
                Ok(ready) => ready,
                Err(e) => break Err(e),
            };
            let chunk = match self
                .get_mut(&src)?
                .blocking_read(ready.clamp(1, FORWARD_CHUNK))
                .await
            {
                Ok(chunk) => chunk,
                // The end of the input: everything is forwarded once it
                // is flushed.
                Err(wasmtime_wasi::p2::StreamError::Closed) => {
                    let output = self.get_mut(&stream)?;
                    break match output.flush() {
                        Ok(()) => output.write_ready().await.map(|_| ()),
                        Err(e) => Err(e),
                    };
                }
                Err(e) => break Err(e),
            };
            forwarded += chunk.len() as u64;
            if let Err(e) = self.get_mut(&stream)?.write(chunk) {
                break Err(e);
            }
        };
        latest::streams::HostInputStream::drop(self, src).await?;
        returned(self, result.map(|()| forwarded))
    }

    async fn drop(&mut self, stream: Resource<OutputStream>) -> wasmtime::Result<()> {
        latest::streams::HostOutputStream::drop(self, stream).await
    }
}

//! Whole-object reads that survive a broken connection. The manifest (and an inventory report's files) is read
//! once, as one stream, while chunks are recorded from it; an answer cut in the middle of its body (a reset, a
//! proxy or load balancer closing the connection) must not fail the job. The read goes on with a ranged GET from
//! the first byte not yet read, which must answer with the ETag of the first read: otherwise the object changed
//! and the bytes would not belong together.
//!
//! Breaks that bring no new byte are bounded: after `engine.max_attempts` of them in a row (each resumption
//! itself retried like any storage call) the read fails with the last error.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use s3batch_storage::{GetResult, ObjectRef, ObjectStore, StorageError};

use crate::prepare::unquote_etag;
use crate::{EngineConfig, retry};

/// `obj` read whole from `store` (GET retried like any storage call), its body resumed across breaks.
pub async fn get_whole(
    config: &EngineConfig,
    store: Arc<dyn ObjectStore>,
    obj: &ObjectRef,
) -> Result<GetResult, StorageError> {
    let got = retry::storage_call(config, || false, || store.get_object(obj, None)).await?;
    Ok(resumed(config.clone(), store, obj.clone(), got))
}

/// `got`, the answer to a GET of the whole of `obj`, with a body that goes on after a break.
pub fn resumed(config: EngineConfig, store: Arc<dyn ObjectStore>, obj: ObjectRef, got: GetResult) -> GetResult {
    let GetResult { info, body } = got;
    let state = Reading { body, read: 0, size: info.size, etag: info.etag.clone(), breaks: 0, store, obj, config };
    let body = futures::stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        match s.next().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(s))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    });
    GetResult { info, body: body.boxed() }
}

struct Reading {
    body: BoxStream<'static, Result<Bytes, StorageError>>,
    /// Bytes handed out so far.
    read: u64,
    size: u64,
    etag: String,
    /// Breaks since the last byte came.
    breaks: u32,
    store: Arc<dyn ObjectStore>,
    obj: ObjectRef,
    config: EngineConfig,
}

impl Reading {
    /// The next bytes; `None` at the end of the object.
    async fn next(&mut self) -> Result<Option<Bytes>, StorageError> {
        loop {
            let broke = match self.body.next().await {
                Some(Ok(bytes)) if bytes.is_empty() => continue,
                Some(Ok(bytes)) => {
                    self.read += bytes.len() as u64;
                    self.breaks = 0;
                    return Ok(Some(bytes));
                }
                None if self.read >= self.size => return Ok(None),
                // The body ended before the length the store announced: as if the connection broke.
                None => StorageError::connection(format!(
                    "the body of s3://{}/{} ended after {} of {} bytes",
                    self.obj.bucket, self.obj.key, self.read, self.size
                )),
                Some(Err(e)) if e.transient && self.read < self.size => e,
                Some(Err(e)) => return Err(e),
            };
            self.breaks += 1;
            if self.breaks >= self.config.max_attempts {
                return Err(broke);
            }
            tracing::debug!(bucket = %self.obj.bucket, key = %self.obj.key, at = self.read, error = %broke, "read broke; resuming");
            tokio::time::sleep(retry::backoff(self.breaks, self.config.backoff_base_ms, self.config.backoff_max_ms))
                .await;
            self.body = self.reopen().await?;
        }
    }

    /// The rest of the object, from the first byte not read, if it is still the object first read.
    async fn reopen(&mut self) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        let range = self.read..self.size;
        let got = retry::storage_call(&self.config, || false, || self.store.get_object(&self.obj, Some(range.clone())))
            .await?;
        if unquote_etag(&got.info.etag) != unquote_etag(&self.etag) {
            return Err(StorageError::new(
                "PreconditionFailed",
                412,
                format!(
                    "s3://{}/{} changed while it was read (ETag {} is now {})",
                    self.obj.bucket, self.obj.key, self.etag, got.info.etag
                ),
            ));
        }
        Ok(got.body)
    }
}

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
        let got =
            retry::storage_call(&self.config, || false, || self.store.get_object(&self.obj, Some(range.clone()))).await;
        match got {
            Ok(got) if unquote_etag(&got.info.etag) == unquote_etag(&self.etag) => Ok(got.body),
            Ok(got) => Err(self.changed(&format!("ETag {} is now {}", self.etag, got.info.etag))),
            // Bytes that were there are not any more: the object is shorter now.
            Err(e) if e.http_status == 416 => Err(self.changed(&format!("it no longer has {} bytes", self.size))),
            Err(e) => Err(e),
        }
    }

    fn changed(&self, how: &str) -> StorageError {
        let what = format!("s3://{}/{} changed while it was read ({how})", self.obj.bucket, self.obj.key);
        StorageError::new("PreconditionFailed", 412, what)
    }
}

#[cfg(test)]
mod tests {
    use s3batch_storage::memory::MemoryStore;
    use s3batch_storage::{PutBody, PutOptions};

    use super::*;

    const BODY: &[u8] = b"bucket,key-0001\nbucket,key-0002\nbucket,key-0003\nbucket,key-0004\n";

    async fn store() -> Arc<MemoryStore> {
        let m = MemoryStore::new();
        m.create_bucket("b").await.unwrap();
        m.put_object("b", "m.csv", PutBody::Bytes(Bytes::from_static(BODY)), &PutOptions::default()).await.unwrap();
        Arc::new(m)
    }

    /// The store's answer to a whole GET, its body giving `first` bytes and then `end`.
    async fn broken(store: &MemoryStore, first: usize, end: Option<StorageError>) -> GetResult {
        let got = store.get_object(&ObjectRef::new("b", "m.csv"), None).await.unwrap();
        let head = futures::stream::iter([Ok(Bytes::from_static(&BODY[..first]))]);
        let body = head.chain(futures::stream::iter(end.map(Err)));
        GetResult { info: got.info, body: body.boxed() }
    }

    fn config() -> EngineConfig {
        EngineConfig { backoff_base_ms: 1, backoff_max_ms: 2, ..Default::default() }
    }

    #[tokio::test]
    async fn a_body_cut_or_short_goes_on_from_where_it_stopped() {
        let m = store().await;
        let obj = ObjectRef::new("b", "m.csv");
        for end in [Some(StorageError::connection("reset")), None] {
            let got = broken(&m, 20, end).await;
            let read = resumed(config(), m.clone(), obj.clone(), got).bytes().await.unwrap();
            assert_eq!(&read[..], BODY);
        }
    }

    #[tokio::test]
    async fn an_object_changed_before_the_rest_is_read_fails_the_read() {
        // Longer now (another ETag), or shorter (the rest's range is not there any more).
        for other in [[BODY, BODY].concat(), b"bucket,other\n".to_vec()] {
            let m = store().await;
            let got = broken(&m, 20, Some(StorageError::connection("reset"))).await;
            m.put_object("b", "m.csv", PutBody::Bytes(other.into()), &PutOptions::default()).await.unwrap();
            let e = resumed(config(), m.clone(), ObjectRef::new("b", "m.csv"), got).bytes().await.unwrap_err();
            assert_eq!((e.code.as_str(), e.transient), ("PreconditionFailed", false), "{e:?}");
            assert!(e.message.contains("changed while it was read"), "{e:?}");
        }
    }

    #[tokio::test]
    async fn a_permanent_error_is_not_resumed() {
        let m = store().await;
        let got = broken(&m, 20, Some(StorageError::new("AccessDenied", 403, "no"))).await;
        let e = resumed(config(), m.clone(), ObjectRef::new("b", "m.csv"), got).bytes().await.unwrap_err();
        assert_eq!(e.code, "AccessDenied");
    }
}

//! `S3ComputeObjectChecksum`: stream each object once through the requested algorithm (memory bounded by the
//! storage's body chunks) and report the value, base64 of the big-endian digest as S3 writes checksums.

use futures::StreamExt;
use s3batch_core::spec::ComputeObjectChecksum;
use s3batch_storage::{ObjectRef, ObjectStore, StorageError};
use serde_json::json;

enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Xxh64(xxhash_rust::xxh64::Xxh64),
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
    Xxh128(Box<xxhash_rust::xxh3::Xxh3>),
}

impl Hasher {
    fn new(algorithm: &str) -> Option<Hasher> {
        use sha2::Digest;
        Some(match algorithm {
            "CRC32" => Hasher::Crc32(crc32fast::Hasher::new()),
            "CRC32C" => Hasher::Crc32c(0),
            "CRC64NVME" => Hasher::Crc64Nvme(crc64fast_nvme::Digest::new()),
            "MD5" => Hasher::Md5(md5::Md5::new()),
            "SHA1" => Hasher::Sha1(sha1::Sha1::new()),
            "SHA256" => Hasher::Sha256(sha2::Sha256::new()),
            "SHA512" => Hasher::Sha512(sha2::Sha512::new()),
            "XXHASH64" => Hasher::Xxh64(xxhash_rust::xxh64::Xxh64::new(0)),
            "XXHASH3" => Hasher::Xxh3(Box::default()),
            "XXHASH128" => Hasher::Xxh128(Box::default()),
            _ => return None,
        })
    }

    fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Hasher::Crc64Nvme(h) => h.write(data),
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
            Hasher::Xxh64(h) => h.update(data),
            Hasher::Xxh3(h) | Hasher::Xxh128(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Crc32c(c) => c.to_be_bytes().to_vec(),
            Hasher::Crc64Nvme(h) => h.sum64().to_be_bytes().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::Xxh64(h) => h.digest().to_be_bytes().to_vec(),
            Hasher::Xxh3(h) => h.digest().to_be_bytes().to_vec(),
            Hasher::Xxh128(h) => h.digest128().to_be_bytes().to_vec(),
        }
    }
}

/// The digest of `data` (tests and small inputs).
pub fn digest(algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
    let mut h = Hasher::new(algorithm)?;
    h.update(data);
    Some(h.finish())
}

/// Compute the checksum of one object. The report's ResultMessage is AWS's JSON object, keys in AWS's order —
/// `checksum_base64` (the digest in base64, as S3 writes checksums), `etag` (unquoted), `checksumAlgorithm`,
/// `checksumType`, `checksum_hex` (upper-case hex) — followed by s3batch's own `size`.
pub async fn compute(
    store: &dyn ObjectStore,
    obj: &ObjectRef,
    op: &ComputeObjectChecksum,
) -> Result<String, StorageError> {
    let algorithm = op.checksum_algorithm.as_deref().unwrap_or("CRC64NVME");
    let kind = op.checksum_type.as_deref().unwrap_or("FULL_OBJECT");
    let mut hasher = Hasher::new(algorithm)
        .ok_or_else(|| StorageError::invalid_request(format!("unknown checksum algorithm {algorithm}")))?;
    if kind == "COMPOSITE" && algorithm == "CRC64NVME" {
        return Err(StorageError::invalid_request("CRC64NVME checksums are FULL_OBJECT only"));
    }
    let got = store.get_object(obj, None).await?;
    if kind == "COMPOSITE" && got.info.etag.contains('-') {
        // A composite checksum is a checksum of the parts' checksums; the part layout of a multipart object is not
        // something this engine reads yet.
        return Err(StorageError::not_implemented("a COMPOSITE checksum of a multipart object", "s3batch engine"));
    }
    let size = got.info.size;
    let etag = got.info.etag.trim_matches('"').to_string();
    let mut body = got.body;
    let mut read = 0u64;
    while let Some(part) = body.next().await {
        let part = part?;
        read += part.len() as u64;
        hasher.update(&part);
    }
    if read != size {
        return Err(StorageError::connection(format!("the object ended after {read} of {size} bytes")));
    }
    let value = hasher.finish();
    use base64::Engine as _;
    Ok(json!({
        "checksum_base64": base64::engine::general_purpose::STANDARD.encode(&value),
        "etag": etag,
        "checksumAlgorithm": algorithm,
        "checksumType": kind,
        "checksum_hex": hex::encode_upper(&value),
        "size": size,
    })
    .to_string())
}

/// The report row of a compute-checksum task that failed for good, in AWS's shape: HTTP status 200, error code
/// `PermanentFailure`, and the storage's error in the ResultMessage as
/// `error details: {"failureMessage":"…", "errorCode": "404"}` (`errorCode` is the storage's HTTP status; the
/// storage's own error code leads the message).
pub fn permanent_failure(e: StorageError) -> StorageError {
    let http = e.report_status();
    let message = serde_json::Value::String(format!("{}: {}", e.code, e.message));
    StorageError::task_result(
        "PermanentFailure",
        format!("error details: {{\"failureMessage\":{message}, \"errorCode\": \"{http}\"}}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers for "123456789" (the CRC check value) and "abc".
    #[test]
    fn known_answers() {
        let h = |a: &str, d: &[u8]| hex::encode(digest(a, d).unwrap());
        assert_eq!(h("CRC32", b"123456789"), "cbf43926");
        assert_eq!(h("CRC32C", b"123456789"), "e3069283");
        assert_eq!(h("CRC64NVME", b"123456789"), "ae8b14860a799888");
        assert_eq!(h("MD5", b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(h("SHA1", b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(h("SHA256", b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(h("XXHASH64", b""), "ef46db3751d8e999");
        assert_eq!(h("XXHASH3", b""), "2d06800538d394c2");
        assert_eq!(h("XXHASH128", b""), "99aa06d3014798d86001c324468d497f");
        assert!(digest("SHA512", b"abc").unwrap().len() == 64);
        assert!(digest("CRC16", b"").is_none());
    }

    #[tokio::test]
    async fn streams_an_object() {
        let store = s3batch_storage::memory::MemoryStore::new();
        store.create_bucket("b").await.unwrap();
        let data = bytes::Bytes::from(vec![7u8; 100_000]);
        store.put_object("b", "k", s3batch_storage::PutBody::Bytes(data.clone()), &Default::default()).await.unwrap();
        let op = ComputeObjectChecksum { checksum_algorithm: Some("SHA256".into()), checksum_type: None };
        let msg = compute(&store, &ObjectRef::new("b", "k"), &op).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&msg).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["checksum_base64", "etag", "checksumAlgorithm", "checksumType", "checksum_hex", "size"]);
        assert_eq!(v["checksum_hex"], hex::encode_upper(digest("SHA256", &data).unwrap()));
        assert_eq!(v["checksumType"], "FULL_OBJECT");
        assert_eq!(v["etag"], s3batch_storage::md5_hex(&data));
        let missing = compute(&store, &ObjectRef::new("b", "nope"), &op).await.unwrap_err();
        assert_eq!(missing.code, "NoSuchKey");
        let row = permanent_failure(missing);
        assert_eq!((row.code.as_str(), row.http_status), ("PermanentFailure", 200));
        assert_eq!(
            row.message,
            r#"error details: {"failureMessage":"NoSuchKey: The specified key does not exist.", "errorCode": "404"}"#
        );
    }
}

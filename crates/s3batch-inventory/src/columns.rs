//! Which CSV column holds what, from a CSV `fileSchema` such as `"Bucket, Key, VersionId, IsLatest,
//! IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"` (S3) or `"Appid, Bucket, Key, Size, …"` (COS).

use crate::InventoryError;

/// How the Key column is URL-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// Form encoding: `+` is a space, `%XX` a byte (S3 Inventory CSV writes keys this way: a space becomes `+`,
    /// a `+` becomes `%2B`).
    Form,
    /// Percent encoding only: `+` stays `+`.
    Percent,
}

/// Column positions of a CSV inventory, from `fileSchema`. Column names are matched without regard to case;
/// columns a reader does not use are counted and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// How many columns every line must have.
    pub count: usize,
    pub bucket: usize,
    pub key: usize,
    /// COS: the account APPID, appended to a bucket name that does not already end in `-<appid>`.
    pub appid: Option<usize>,
    pub version_id: Option<usize>,
    pub is_latest: Option<usize>,
    pub is_delete_marker: Option<usize>,
    pub size: Option<usize>,
    pub last_modified: Option<usize>,
    pub etag: Option<usize>,
    pub storage_class: Option<usize>,
    /// How keys are decoded; [`KeyEncoding::Form`] unless changed.
    pub key_encoding: KeyEncoding,
}

impl Columns {
    /// Read a CSV `fileSchema`: names separated by commas (spaces around them ignored). Bucket and Key are
    /// required; a name may not be empty or appear twice.
    pub fn from_schema(schema: &str) -> Result<Columns, InventoryError> {
        let fail = |message: String| InventoryError::Schema { schema: schema.to_string(), message };
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        if let Some(i) = names.iter().position(|n| n.is_empty()) {
            return Err(fail(format!("has an empty column name at position {}", i + 1)));
        }
        let find = |wanted: &str| -> Result<Option<usize>, InventoryError> {
            let mut at = names.iter().enumerate().filter(|(_, n)| n.eq_ignore_ascii_case(wanted)).map(|(i, _)| i);
            let first = at.next();
            if at.next().is_some() {
                return Err(fail(format!("names {wanted} more than once")));
            }
            Ok(first)
        };
        let bucket = find("Bucket")?.ok_or_else(|| fail("has no Bucket column".into()))?;
        let key = find("Key")?.ok_or_else(|| fail("has no Key column".into()))?;
        Ok(Columns {
            count: names.len(),
            bucket,
            key,
            appid: find("Appid")?,
            version_id: find("VersionId")?,
            is_latest: find("IsLatest")?,
            is_delete_marker: find("IsDeleteMarker")?,
            size: find("Size")?,
            last_modified: find("LastModifiedDate")?,
            etag: find("ETag")?,
            storage_class: find("StorageClass")?,
            key_encoding: KeyEncoding::Form,
        })
    }

    /// The same layout with another key encoding.
    pub fn with_key_encoding(mut self, key_encoding: KeyEncoding) -> Columns {
        self.key_encoding = key_encoding;
        self
    }

    /// The same layout reading only what a task needs (Bucket, Key, Appid, VersionId, IsDeleteMarker): the other
    /// columns are still counted but not parsed or checked, which saves time per row.
    pub fn task_fields_only(mut self) -> Columns {
        self.is_latest = None;
        self.size = None;
        self.last_modified = None;
        self.etag = None;
        self.storage_class = None;
        self
    }

    /// Whether the inventory lists versions (has a VersionId column).
    pub fn has_versions(&self) -> bool {
        self.version_id.is_some()
    }
}

/// Decode a URL-encoded key into `out` (cleared first). `%` must start a two-hex-digit escape; with
/// [`KeyEncoding::Form`] a `+` is a space.
pub(crate) fn decode_into(raw: &[u8], encoding: KeyEncoding, out: &mut Vec<u8>) -> Result<(), &'static str> {
    out.clear();
    out.reserve(raw.len());
    let mut rest = raw;
    while let Some(at) = find_special(rest, encoding) {
        out.extend_from_slice(&rest[..at]);
        if rest[at] == b'+' {
            out.push(b' ');
            rest = &rest[at + 1..];
            continue;
        }
        let hex = |c: u8| (c as char).to_digit(16);
        match (rest.get(at + 1).copied().and_then(hex), rest.get(at + 2).copied().and_then(hex)) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => return Err("the key has a '%' that does not start a %XX escape"),
        }
        rest = &rest[at + 3..];
    }
    out.extend_from_slice(rest);
    Ok(())
}

/// The first byte that decoding changes: `%`, and `+` in form encoding.
fn find_special(raw: &[u8], encoding: KeyEncoding) -> Option<usize> {
    match encoding {
        KeyEncoding::Form => memchr::memchr2(b'%', b'+', raw),
        KeyEncoding::Percent => memchr::memchr(b'%', raw),
    }
}

/// Whether a raw key needs decoding at all.
pub(crate) fn needs_decoding(raw: &[u8], encoding: KeyEncoding) -> bool {
    find_special(raw, encoding).is_some()
}

/// Form-encode a key the way S3 Inventory CSV does: unreserved characters and `/` stay, a space becomes `+`,
/// everything else `%XX` (upper-case hex).
pub fn form_encode_into(key: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_schema() {
        let c = Columns::from_schema("Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag")
            .unwrap();
        assert_eq!((c.count, c.bucket, c.key, c.version_id, c.size, c.etag), (8, 0, 1, Some(2), Some(5), Some(7)));
        assert!(c.has_versions());
        assert_eq!(c.appid, None);
        let t = c.clone().task_fields_only();
        assert_eq!((t.count, t.bucket, t.key, t.version_id, t.is_delete_marker), (8, 0, 1, Some(2), Some(4)));
        assert_eq!((t.size, t.etag, t.is_latest, t.last_modified, t.storage_class), (None, None, None, None, None));
    }

    #[test]
    fn cos_schema_and_case() {
        let c = Columns::from_schema("Appid, Bucket, Key, Size, LastModifiedDate, ETag, StorageClass").unwrap();
        assert_eq!((c.appid, c.bucket, c.key, c.storage_class), (Some(0), 1, 2, Some(6)));
        let c = Columns::from_schema("bucket,KEY").unwrap();
        assert_eq!((c.bucket, c.key, c.count), (0, 1, 2));
    }

    #[test]
    fn bad_schemas() {
        let msg = |s: &str| Columns::from_schema(s).unwrap_err().to_string();
        assert_eq!(msg("Key, Size"), "manifest.json fileSchema 'Key, Size' has no Bucket column");
        assert_eq!(msg("Bucket, Size"), "manifest.json fileSchema 'Bucket, Size' has no Key column");
        assert_eq!(msg("Bucket, Key, Key"), "manifest.json fileSchema 'Bucket, Key, Key' names Key more than once");
        assert_eq!(msg("Bucket,,Key"), "manifest.json fileSchema 'Bucket,,Key' has an empty column name at position 2");
        assert_eq!(msg(""), "manifest.json fileSchema '' has an empty column name at position 1");
    }

    #[test]
    fn form_decoding() {
        let mut out = Vec::new();
        decode_into(b"a+b%2Bc%20d", KeyEncoding::Form, &mut out).unwrap();
        assert_eq!(out, b"a b+c d");
        decode_into(b"a+b%2Bc", KeyEncoding::Percent, &mut out).unwrap();
        assert_eq!(out, b"a+b+c");
        assert!(decode_into(b"x%2", KeyEncoding::Form, &mut out).is_err());
        assert!(decode_into(b"x%zz", KeyEncoding::Form, &mut out).is_err());
    }

    #[test]
    fn form_encoding_is_core_encoding_with_plus_for_space() {
        for k in ["a b", "x+y", "100%", "#?&=", "dir/sub/ü ñ", "quote\"comma,", "new\nline", "~._-"] {
            let mut mine = String::new();
            form_encode_into(k, &mut mine);
            assert_eq!(mine, s3batch_core::manifest::encode_key(k).replace("%20", "+"), "{k}");
            let mut back = Vec::new();
            decode_into(mine.as_bytes(), KeyEncoding::Form, &mut back).unwrap();
            assert_eq!(back, k.as_bytes());
        }
    }
}

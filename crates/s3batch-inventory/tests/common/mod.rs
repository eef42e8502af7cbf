//! Fixture helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

/// Keys that break naive readers: spaces, '+', '%', commas, quotes, unicode, newlines, escapes.
pub const TRICKY_KEYS: &[&str] = &[
    "plain.txt",
    "dir/sub/file with spaces.txt",
    "a+b+c",
    "100% done",
    "comma,separated,key",
    "quote\"inside\"key",
    "it's",
    "unicode/ü ñ 日本語 🎉",
    "new\nline\r\nkey",
    "tab\there",
    "%2B literally",
    "trailing space ",
    " leading",
    "~tilde_under-dash.dot",
    "#?&=;:@$!*()[]{}",
    "back\\slash",
];

/// Form-encode as S3 Inventory CSV does (space '+', everything else outside unreserved and '/' as %XX).
pub fn form_encode(key: &str) -> String {
    let mut s = String::new();
    s3batch_inventory::form_encode_into(key, &mut s);
    s
}

/// A CSV line with every field quoted.
pub fn quoted_line(fields: &[&str]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.replace('"', "\"\""))).collect();
    format!("{}\n", quoted.join(","))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn md5_hex(data: &[u8]) -> String {
    s3batch_inventory::md5_hex(data)
}

//! A check of an ORC file's type tree before orc-rust reads it. orc-rust builds the schema from the footer's flat
//! list of types recursively, following each type's `subtypes` without checking them: a type that lists itself
//! (or an earlier type) as a child recursed until the stack overflowed, which aborts the whole process (no
//! `catch_unwind` helps), and a type listed as the child of many parents is read once per path. A well-formed
//! footer lists its types in pre-order: each type is the child of exactly one earlier type. That is what is
//! checked, and the depth is bounded. The stripe footers are decompressed with a bound first, too.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use orc_rust::proto::{CompressionKind, Footer, PostScript};
use prost::Message;

/// The largest footer read (decompressed or not); an inventory's footer holds a schema and a few statistics.
const MAX_FOOTER_BYTES: u64 = 16 << 20;
/// The deepest type nesting accepted (an S3 Inventory schema is two levels deep).
const MAX_DEPTH: usize = 64;

/// `Ok` when the footer's types form a tree orc-rust can walk, or when the tail is malformed in a way orc-rust
/// reports itself (a too short file, an undecodable postscript).
pub(crate) fn check_types(f: &mut File) -> Result<(), String> {
    let io = |e: std::io::Error| format!("reading failed: {e}");
    let len = f.metadata().map_err(io)?.len();
    let Some(ps_len) = tail(f, len, 1, 1).map_err(io)?.map(|b| u64::from(b[0])) else { return Ok(()) };
    let Some(ps) = tail(f, len, 1 + ps_len, ps_len).map_err(io)? else { return Ok(()) };
    let Ok(ps) = PostScript::decode(&ps[..]) else { return Ok(()) };
    let footer_len = ps.footer_length.unwrap_or(0);
    if footer_len > MAX_FOOTER_BYTES {
        return Err(format!("its footer is {footer_len} bytes; at most {MAX_FOOTER_BYTES} are read"));
    }
    let Some(raw) = tail(f, len, 1 + ps_len + footer_len, footer_len).map_err(io)? else { return Ok(()) };
    let footer = decompress(ps.compression(), &raw)?;
    let footer = Footer::decode(&footer[..]).map_err(|e| format!("its footer cannot be decoded: {e}"))?;
    check_tree(&footer.types.iter().map(|t| t.subtypes.as_slice()).collect::<Vec<_>>())?;
    check_stripe_footers(f, len, ps.compression(), &footer)
}

/// Every stripe's footer decompresses (chunk by chunk, as orc-rust reads it) to at most [`MAX_FOOTER_BYTES`]:
/// orc-rust allocates what a Snappy chunk claims to hold, and a 500-byte file claimed 2 GB. (The data streams are
/// read the same way and are not checked here.)
fn check_stripe_footers(f: &mut File, len: u64, kind: CompressionKind, footer: &Footer) -> Result<(), String> {
    for (i, s) in footer.stripes.iter().enumerate() {
        let (offset, n) = (s.offset(), s.footer_length());
        let start = offset.checked_add(s.index_length()).and_then(|o| o.checked_add(s.data_length()));
        let Some(end) = start.and_then(|o| o.checked_add(n)).filter(|&e| e <= len) else { continue };
        if n > MAX_FOOTER_BYTES {
            return Err(format!("its stripe {i} footer is {n} bytes; at most {MAX_FOOTER_BYTES} are read"));
        }
        let raw = tail(f, len, len - end + n, n).map_err(|e| format!("reading failed: {e}"))?.unwrap_or_default();
        decompress(kind, &raw).map_err(|m| format!("stripe {i}: {m}"))?;
    }
    Ok(())
}

/// `n` bytes ending `from_end` bytes before the end of the file; None where the file is too short.
fn tail(f: &mut File, len: u64, from_end: u64, n: u64) -> std::io::Result<Option<Vec<u8>>> {
    if from_end > len || n > from_end {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(len - from_end))?;
    let mut buf = vec![0; n as usize];
    f.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// The footer's bytes: ORC chunks (a 3-byte header: length × 2, + 1 when the chunk is stored as it is).
fn decompress(kind: CompressionKind, raw: &[u8]) -> Result<Vec<u8>, String> {
    if kind == CompressionKind::None {
        return Ok(raw.to_vec());
    }
    let bad = |m: &str| format!("its footer's {} compression is corrupt: {m}", kind.as_str_name());
    let (mut out, mut rest) = (Vec::new(), raw);
    while !rest.is_empty() {
        let h = rest.get(..3).ok_or_else(|| bad("a chunk header is cut short"))?;
        let h = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
        let n = (h >> 1) as usize;
        let chunk = rest.get(3..3 + n).ok_or_else(|| bad("a chunk is cut short"))?;
        rest = &rest[3 + n..];
        let room = MAX_FOOTER_BYTES + 1 - out.len() as u64;
        let got = match kind {
            _ if h & 1 == 1 => Ok(chunk.to_vec()),
            CompressionKind::Zlib => read_up_to(flate2::read::DeflateDecoder::new(chunk), room),
            CompressionKind::Snappy => snappy(chunk, room),
            CompressionKind::Zstd => zstd::stream::Decoder::new(chunk).and_then(|d| read_up_to(d, room)),
            _ => return Err(format!("its {} compression is not read (ZLIB, SNAPPY, ZSTD are)", kind.as_str_name())),
        };
        out.extend(got.map_err(|e| bad(&e.to_string()))?);
        if out.len() as u64 > MAX_FOOTER_BYTES {
            return Err(format!("its footer decompresses to more than {MAX_FOOTER_BYTES} bytes"));
        }
    }
    Ok(out)
}

/// A raw Snappy block, refused before it is decompressed if it says it is larger than `limit`.
fn snappy(chunk: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let n = snap::raw::decompress_len(chunk).map_err(std::io::Error::other)?;
    if n as u64 > limit {
        return Err(std::io::Error::other(format!("a chunk says it holds {n} bytes")));
    }
    snap::raw::Decoder::new().decompress_vec(chunk).map_err(std::io::Error::other)
}

fn read_up_to(r: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// Every type but the root is the child of exactly one type listed before it, and no deeper than [`MAX_DEPTH`].
fn check_tree(subtypes: &[&[u32]]) -> Result<(), String> {
    let mut depth: Vec<Option<usize>> = vec![None; subtypes.len()];
    if let Some(root) = depth.first_mut() {
        *root = Some(0);
    }
    for (parent, children) in subtypes.iter().enumerate() {
        let d = depth[parent].ok_or_else(|| format!("its type {parent} is the child of no type"))?;
        for &child in children.iter() {
            let c = child as usize;
            if c <= parent || c >= subtypes.len() || depth[c].is_some() {
                return Err(format!("its type {parent} lists type {child} as a child: the types are not a tree"));
            }
            if d + 1 > MAX_DEPTH {
                return Err(format!("its types nest deeper than {MAX_DEPTH} levels"));
            }
            depth[c] = Some(d + 1);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(name: &str) -> Result<(), String> {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/artifacts/inventory_orc").join(name);
        check_types(&mut File::open(path).expect("the fuzz input"))
    }

    /// The fuzz inputs: a list type of itself (a stack overflow in orc-rust), and Snappy stripe footers that claim
    /// 2 GB (orc-rust allocated it).
    #[test]
    fn hostile_footers_are_refused_before_orc_rust_reads_them() {
        assert!(artifact("by-hand-list-type-of-itself").unwrap_err().contains("not a tree"));
        for oom in ["oom-9a8dbe91804cdaa2dad68f9241c9904fd265d734", "oom-6873205448c9a6bf8f1ee9e5045bea9b83e62dba"] {
            let e = artifact(oom).unwrap_err();
            assert!(e.contains("stripe 0") && e.contains("SNAPPY"), "{oom}: {e}");
        }
    }

    #[test]
    fn a_tree_passes_and_cycles_shared_children_and_depth_do_not() {
        assert!(check_tree(&[&[1, 2], &[], &[3], &[]]).is_ok());
        assert!(check_tree(&[]).is_ok());
        assert!(check_tree(&[&[1], &[1]]).unwrap_err().contains("not a tree"), "a list of itself");
        assert!(check_tree(&[&[1], &[0]]).is_err(), "a cycle back to the root");
        assert!(check_tree(&[&[1, 1], &[]]).is_err(), "one child twice");
        assert!(check_tree(&[&[1, 2], &[2], &[]]).is_err(), "a shared child");
        assert!(check_tree(&[&[5]]).is_err(), "out of range");
        assert!(check_tree(&[&[], &[]]).unwrap_err().contains("child of no type"));
        let chain: Vec<Vec<u32>> = (1..=100).map(|i| if i < 100 { vec![i] } else { vec![] }).collect();
        let chain: Vec<&[u32]> = chain.iter().map(Vec::as_slice).collect();
        assert!(check_tree(&chain).unwrap_err().contains("deeper"));
    }
}

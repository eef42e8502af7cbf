//! A check of an ORC file's type tree before orc-rust reads it. orc-rust builds the schema from the footer's flat
//! list of types recursively, following each type's `subtypes` without checking them: a type that lists itself
//! (or an earlier type) as a child recursed until the stack overflowed, which aborts the whole process (no
//! `catch_unwind` helps), and a type listed as the child of many parents is read once per path. A well-formed
//! footer lists its types in pre-order: each type is the child of exactly one earlier type. That is what is
//! checked, and the depth is bounded. The footer, metadata and stripe footers are decompressed with a bound first,
//! and every chunk of every data stream is checked to decompress to at most the file's compression block size:
//! orc-rust decompresses each chunk whole into memory, allocating what a Snappy chunk claims to hold.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use orc_rust::proto::{CompressionKind, Footer, PostScript, StripeFooter};
use prost::Message;

/// The largest footer read (decompressed or not); an inventory's footer holds a schema and a few statistics.
const MAX_FOOTER_BYTES: u64 = 16 << 20;
/// The deepest type nesting accepted (an S3 Inventory schema is two levels deep).
const MAX_DEPTH: usize = 64;
/// The largest compression block size accepted (writers use 256 KiB, the default, or a few MiB at most).
const MAX_BLOCK_BYTES: u64 = 16 << 20;
/// The largest ZSTD window accepted (16 MiB, as [`MAX_BLOCK_BYTES`]; zstd's default limit is 128 MiB, which is
/// what a frame that states no size may make orc-rust allocate).
const MAX_ZSTD_WINDOW_LOG: u32 = 24;
/// The block size of a postscript that names none (the ORC default).
const DEFAULT_BLOCK_BYTES: u64 = 256 << 10;

/// `Ok` when the footer's types form a tree orc-rust can walk and every compressed chunk stays within the block
/// size, or when the tail is malformed in a way orc-rust reports itself (a too short file, an undecodable
/// postscript).
pub(crate) fn check_types(f: &mut File) -> Result<(), String> {
    let io = |e: std::io::Error| format!("reading failed: {e}");
    let len = f.metadata().map_err(io)?.len();
    let Some(ps_len) = tail(f, len, 1, 1).map_err(io)?.map(|b| u64::from(b[0])) else { return Ok(()) };
    let Some(ps) = tail(f, len, 1 + ps_len, ps_len).map_err(io)? else { return Ok(()) };
    let Ok(ps) = PostScript::decode(&ps[..]) else { return Ok(()) };
    let (footer_len, meta_len) = (ps.footer_length.unwrap_or(0), ps.metadata_length.unwrap_or(0));
    if footer_len.max(meta_len) > MAX_FOOTER_BYTES {
        return Err(format!("its footer or metadata is over {MAX_FOOTER_BYTES} bytes; at most that is read"));
    }
    let codec = Codec { kind: ps.compression(), block: ps.compression_block_size.unwrap_or(DEFAULT_BLOCK_BYTES) };
    if codec.kind != CompressionKind::None && codec.block > MAX_BLOCK_BYTES {
        return Err(format!("its compression block size is {} bytes; at most {MAX_BLOCK_BYTES} is read", codec.block));
    }
    let Some(raw) = tail(f, len, 1 + ps_len + footer_len, footer_len).map_err(io)? else { return Ok(()) };
    let footer = decompress(codec.kind, &raw).map_err(|m| format!("its footer: {m}"))?;
    let footer = Footer::decode(&footer[..]).map_err(|e| format!("its footer cannot be decoded: {e}"))?;
    check_tree(&footer.types.iter().map(|t| t.subtypes.as_slice()).collect::<Vec<_>>())?;
    if let Some(raw) = tail(f, len, 1 + ps_len + footer_len + meta_len, meta_len).map_err(io)? {
        decompress(codec.kind, &raw).map_err(|m| format!("its metadata: {m}"))?;
    }
    check_stripes(f, len, codec, &footer)
}

/// The file's compression and its block size (the most a chunk may decompress to).
#[derive(Clone, Copy)]
struct Codec {
    kind: CompressionKind,
    block: u64,
}

/// Every stripe's footer decompresses (chunk by chunk, as orc-rust reads it) to at most [`MAX_FOOTER_BYTES`]
/// (a 500-byte file claimed 2 GB), and its streams lie in the stripe, each chunk within the block size.
fn check_stripes(f: &mut File, len: u64, codec: Codec, footer: &Footer) -> Result<(), String> {
    for (i, s) in footer.stripes.iter().enumerate() {
        let (offset, n) = (s.offset(), s.footer_length());
        let start = offset.checked_add(s.index_length()).and_then(|o| o.checked_add(s.data_length()));
        let Some(end) = start.and_then(|o| o.checked_add(n)).filter(|&e| e <= len) else { continue };
        if n > MAX_FOOTER_BYTES {
            return Err(format!("its stripe {i} footer is {n} bytes; at most {MAX_FOOTER_BYTES} are read"));
        }
        let raw = tail(f, len, len - end + n, n).map_err(|e| format!("reading failed: {e}"))?.unwrap_or_default();
        let raw = decompress(codec.kind, &raw).map_err(|m| format!("stripe {i}: {m}"))?;
        let Ok(sf) = StripeFooter::decode(&raw[..]) else { continue };
        check_streams(f, offset, end - n, codec, &sf).map_err(|m| format!("stripe {i}: {m}"))?;
    }
    Ok(())
}

/// The streams follow one another from the stripe's start (as orc-rust reads them) and end before its footer;
/// each compressed chunk of each decompresses to at most the block size.
fn check_streams(f: &mut File, start: u64, end: u64, codec: Codec, sf: &StripeFooter) -> Result<(), String> {
    let mut at = start;
    for (j, s) in sf.streams.iter().enumerate() {
        let next = at.checked_add(s.length()).filter(|&e| e <= end);
        let next = next.ok_or_else(|| format!("its stream {j} ends past the stripe's data"))?;
        if codec.kind != CompressionKind::None {
            let what = format!("the {} stream of column {}", s.kind().as_str_name(), s.column());
            check_chunks(f, at, s.length(), codec).map_err(|m| format!("{what}: {m}"))?;
        }
        at = next;
    }
    Ok(())
}

/// The `n` bytes at `at` are ORC chunks, each decompressing to at most the block size. Read a chunk at a time
/// (at most 8 MiB, the 23-bit length); the size is the one Snappy states up front, else what a decompression
/// capped at the block size yields, so memory stays bounded whatever a chunk claims.
fn check_chunks(f: &mut File, at: u64, n: u64, codec: Codec) -> Result<(), String> {
    let io = |e: std::io::Error| format!("reading failed: {e}");
    f.seek(SeekFrom::Start(at)).map_err(io)?;
    let mut r = BufReader::new(f.take(n));
    let (mut left, mut chunk) = (n, Vec::new());
    while left > 0 {
        let mut h = [0; 3];
        r.read_exact(&mut h).map_err(|_| "a chunk header is cut short".to_string())?;
        let h = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
        let m = u64::from(h >> 1);
        left = left.checked_sub(3 + m).ok_or("a chunk is cut short")?;
        chunk.resize(m as usize, 0);
        r.read_exact(&mut chunk).map_err(io)?;
        if h & 1 == 1 {
            continue;
        }
        let size = chunk_size(codec, &chunk)
            .map_err(|e| format!("its {} compression is corrupt: {e}", codec.kind.as_str_name()))?;
        if size > codec.block {
            return Err(format!("a chunk decompresses to more than the block size, {} bytes", codec.block));
        }
    }
    Ok(())
}

/// What a compressed chunk decompresses to, or `block + 1` where that is more than the block size.
fn chunk_size(codec: Codec, chunk: &[u8]) -> Result<u64, String> {
    let cap = codec.block + 1;
    let capped = |r: &mut dyn Read| std::io::copy(&mut r.take(cap), &mut std::io::sink()).map_err(|e| e.to_string());
    match codec.kind {
        CompressionKind::Snappy => snap::raw::decompress_len(chunk).map(|n| n as u64).map_err(|e| e.to_string()),
        CompressionKind::Zlib => capped(&mut flate2::read::DeflateDecoder::new(chunk)),
        // The first frame's stated size refuses it cheaply; below that, the streaming decoder orc-rust uses checks the
        // size only at the frame's end (and reads concatenated frames), so it is decompressed, capped, with a window
        // of at most 16 MiB.
        CompressionKind::Zstd => match zstd::zstd_safe::get_frame_content_size(chunk) {
            Ok(Some(n)) if n > codec.block => Ok(n),
            _ => {
                let mut d = zstd::stream::Decoder::new(chunk).map_err(|e| e.to_string())?;
                d.window_log_max(MAX_ZSTD_WINDOW_LOG).map_err(|e| e.to_string())?;
                capped(&mut d)
            }
        },
        k => Err(format!("{} is not read (ZLIB, SNAPPY, ZSTD are)", k.as_str_name())),
    }
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

/// A footer's (or the metadata's) bytes: ORC chunks (a 3-byte header: length × 2, + 1 when the chunk is stored as it is).
fn decompress(kind: CompressionKind, raw: &[u8]) -> Result<Vec<u8>, String> {
    if kind == CompressionKind::None {
        return Ok(raw.to_vec());
    }
    let bad = |m: &str| format!("its {} compression is corrupt: {m}", kind.as_str_name());
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
            return Err(format!("it decompresses to more than {MAX_FOOTER_BYTES} bytes"));
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
    use std::path::Path;

    fn artifact(name: &str) -> Result<(), String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/artifacts/inventory_orc").join(name);
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

    /// An ORC chunk stored as it is (the header's low bit set).
    fn original(bytes: &[u8]) -> Vec<u8> {
        let h = (bytes.len() as u32) << 1 | 1;
        [&h.to_le_bytes()[..3], bytes].concat()
    }

    /// A one-stripe, one-row ORC file of a `struct<bucket:string,key:string>`, built by hand: the bucket's DATA
    /// stream is `chunk` (a compressed chunk, as it is) holding a `bucket_len`-byte name; every other part is stored
    /// uncompressed.
    fn hand_built(kind: CompressionKind, chunk: &[u8], bucket_len: u8) -> Vec<u8> {
        use orc_rust::proto::{ColumnEncoding, Stream, StripeInformation, Type, column_encoding, stream, r#type};
        let data = [&((chunk.len() as u32) << 1).to_le_bytes()[..3], chunk].concat();
        let (length, key) = (original(&[0xff, 1]), original(b"k"));
        let bucket_length = original(&[0xff, bucket_len]);
        let s = |k: stream::Kind, column: u32, n: &[u8]| Stream {
            kind: Some(k as i32),
            column: Some(column),
            length: Some(n.len() as u64),
        };
        let streams = vec![
            s(stream::Kind::Length, 1, &bucket_length),
            s(stream::Kind::Data, 1, &data),
            s(stream::Kind::Length, 2, &length),
            s(stream::Kind::Data, 2, &key),
        ];
        let direct = ColumnEncoding { kind: Some(column_encoding::Kind::Direct as i32), ..Default::default() };
        let sf = original(&StripeFooter { streams, columns: vec![direct; 3], ..Default::default() }.encode_to_vec());
        let body = [&bucket_length[..], &data, &length, &key].concat();
        let ty = |k: r#type::Kind| Type { kind: Some(k as i32), ..Default::default() };
        let mut root = ty(r#type::Kind::Struct);
        (root.subtypes, root.field_names) = (vec![1, 2], vec!["bucket".into(), "key".into()]);
        let stripe = StripeInformation {
            offset: Some(3),
            index_length: Some(0),
            data_length: Some(body.len() as u64),
            footer_length: Some(sf.len() as u64),
            number_of_rows: Some(1),
            ..Default::default()
        };
        let footer = Footer {
            header_length: Some(3),
            content_length: Some((body.len() + sf.len()) as u64),
            stripes: vec![stripe],
            types: vec![root, ty(r#type::Kind::String), ty(r#type::Kind::String)],
            number_of_rows: Some(1),
            ..Default::default()
        };
        let footer = original(&footer.encode_to_vec());
        let ps = PostScript {
            footer_length: Some(footer.len() as u64),
            compression: Some(kind as i32),
            compression_block_size: Some(256 << 10),
            version: vec![0, 12],
            metadata_length: Some(0),
            magic: Some("ORC".into()),
            ..Default::default()
        };
        let ps = ps.encode_to_vec();
        [&b"ORC"[..], &body, &sf, &footer, &ps, &[ps.len() as u8]].concat()
    }

    const SNAPPY_BOMB: &str = "by-hand-snappy-chunk-claims-1-gib";
    const ZLIB_BOMB: &str = "by-hand-zlib-chunk-inflates-to-16-mib";

    fn compress(kind: CompressionKind, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        match kind {
            CompressionKind::Snappy => snap::raw::Encoder::new().compress_vec(data).unwrap(),
            CompressionKind::Zlib => {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            _ => unreachable!("only Snappy and ZLIB are written here"),
        }
    }

    /// The two hand-built fuzz inputs: a Snappy chunk that says it holds 1 GiB (a few bytes long), and a ZLIB chunk
    /// of 16 MiB of zeros (16 KiB long); the block size is 256 KiB.
    fn bombs() -> [(&'static str, Vec<u8>); 2] {
        let snappy = [0x80, 0x80, 0x80, 0x80, 0x04, 0x00, b'b'];
        [
            (SNAPPY_BOMB, hand_built(CompressionKind::Snappy, &snappy, 1)),
            (ZLIB_BOMB, hand_built(CompressionKind::Zlib, &compress(CompressionKind::Zlib, &vec![0; 16 << 20]), 1)),
        ]
    }

    fn check_bytes(bytes: &[u8]) -> Result<(), String> {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        check_types(&mut f)
    }

    /// The hand-built file is one orc-rust reads, with a chunk within the block size under each codec; with a
    /// chunk over it (the committed fuzz inputs, and ZSTD frames with and without their size) it is refused.
    #[test]
    fn data_chunks_over_the_block_size_are_refused_before_orc_rust_reads_them() {
        use std::io::{Seek, Write};
        for kind in [CompressionKind::Snappy, CompressionKind::Zlib] {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(&hand_built(kind, &compress(kind, b"bkt"), 3)).unwrap();
            f.rewind().unwrap();
            let rows: Vec<_> = crate::orc_rows("f", f, None).unwrap().map(Result::unwrap).collect();
            assert_eq!((rows.len(), &*rows[0].bucket, &*rows[0].key), (1, "bkt", "k"), "{kind:?}");
        }
        for (name, bytes) in bombs() {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/artifacts/inventory_orc").join(name);
            assert!(std::fs::read(&path).unwrap() == bytes, "{name} is what bombs() builds");
            let e = artifact(name).unwrap_err();
            assert!(e.contains("stripe 0: the DATA stream of column 1") && e.contains("block size"), "{name}: {e}");
            let f = File::open(path).unwrap();
            match crate::orc_rows("data/f.orc", f, None).err().expect("refused when opened") {
                crate::InventoryError::DataFile { file, message } => {
                    assert!(file == "data/f.orc" && message.contains("block size"), "{name}: {message}")
                }
                other => panic!("{name}: {other}"),
            }
        }
        let zeros = vec![0; (256 << 10) + 1];
        for (zstd, sized) in
            [(zstd::bulk::compress(&zeros, 3).unwrap(), true), (zstd::encode_all(&zeros[..], 3).unwrap(), false)]
        {
            assert_eq!(zstd::zstd_safe::get_frame_content_size(&zstd).unwrap().is_some(), sized);
            let e = check_bytes(&hand_built(CompressionKind::Zstd, &zstd, 1)).unwrap_err();
            assert!(e.contains("block size"), "{e}");
            let within = hand_built(CompressionKind::Zstd, &zstd::bulk::compress(&zeros[1..], 3).unwrap(), 1);
            assert_eq!(check_bytes(&within), Ok(()));
        }
        let mut e = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        e.window_log(25).unwrap();
        e.include_contentsize(false).unwrap();
        e.write_all(b"bkt").unwrap();
        let wide = hand_built(CompressionKind::Zstd, &e.finish().unwrap(), 3);
        assert!(check_bytes(&wide).unwrap_err().contains("ZSTD compression is corrupt"), "a 32 MiB window");
    }

    /// Writes the hand-built fuzz inputs. Run by hand: `cargo test --workspace --locked --lib -- --ignored orc_check`.
    #[test]
    #[ignore = "writes fuzz inputs"]
    fn write_bombs() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/artifacts/inventory_orc");
        for (name, bytes) in bombs() {
            std::fs::write(dir.join(name), bytes).unwrap();
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

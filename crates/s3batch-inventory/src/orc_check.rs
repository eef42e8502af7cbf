//! A check of an ORC file's type tree before orc-rust reads it. orc-rust builds the schema from the footer's flat
//! list of types recursively, following each type's `subtypes` without checking them: a type that lists itself
//! (or an earlier type) as a child recursed until the stack overflowed, which aborts the whole process (no
//! `catch_unwind` helps), and a type listed as the child of many parents is read once per path. A well-formed
//! footer lists its types in pre-order: each type is the child of exactly one earlier type. That is what is
//! checked, and the depth is bounded. The footer, metadata and stripe footers are decompressed with a bound first,
//! and every chunk of every data stream is checked to decompress to at most the file's compression block size:
//! orc-rust decompresses each chunk whole into memory, allocating what a Snappy chunk claims to hold.
//!
//! The string columns read are checked too: orc-rust sums a batch's string lengths (from the column's LENGTH
//! stream) into an `i64` unchecked, then allocates that sum. A 510-byte file the fuzzer found held lengths near
//! 2^62: the sum overflowed (a panic with overflow checks; in a release build it wraps, and the allocation or
//! arrow's offset check then panics), and a dictionary size of up to 2^32 was allocated as a `Vec<i64>` before
//! anything was read. So each LENGTH stream is decoded here (RLE v1 and v2, as orc-rust decodes them): every
//! length is at most [`MAX_VALUE_BYTES`], the lengths of any [`crate::BATCH_ROWS`] consecutive values add up to at
//! most [`MAX_BATCH_BYTES`] (so one batch of one column stays within that, dictionary entries repeated included),
//! all of them to at most what the DATA (or DICTIONARY_DATA) stream decompresses to, and a dictionary has at most
//! as many entries as its stripe has rows and as its LENGTH stream holds. A file claims at most
//! [`crate::parquet_check::MAX_ROWS_PER_BYTE`] rows per byte, which bounds the work of all this.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use std::collections::HashMap;

use orc_rust::proto::column_encoding::Kind as Encoding;
use orc_rust::proto::stream::Kind as StreamKind;
use orc_rust::proto::r#type::Kind as TypeKind;
use orc_rust::proto::{CompressionKind, Footer, PostScript, StripeFooter};
use prost::Message;

use crate::parquet_check::{MAX_ROWS_PER_BYTE, io, read_at, read_up_to};

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
/// The longest string value read (an S3 key is at most 1 KiB; a bucket name, version id, ETag or storage class
/// far less).
pub(crate) const MAX_VALUE_BYTES: u64 = 64 << 10;
/// The most bytes the values of one string column may take in one batch of [`crate::BATCH_ROWS`] rows (8,192 keys
/// of 1 KiB take 8 MiB).
pub(crate) const MAX_BATCH_BYTES: u64 = 32 << 20;

/// `Ok` when the footer's types form a tree orc-rust can walk, every compressed chunk stays within the block
/// size and the string columns among the root's fields named `wanted` (the columns read) hold lengths within the
/// bounds above, or when the tail is malformed in a way orc-rust reports itself (a too short file, an
/// undecodable postscript).
pub(crate) fn check(f: &mut File, wanted: &[&str]) -> Result<(), String> {
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
    let rows = footer.stripes.iter().fold(0u64, |n, s| n.saturating_add(s.number_of_rows()));
    if rows > len.saturating_mul(MAX_ROWS_PER_BYTE) {
        return Err(format!(
            "its stripes claim {rows} rows in {len} bytes; at most {MAX_ROWS_PER_BYTE} rows per byte are read"
        ));
    }
    check_stripes(f, len, codec, &footer, &string_columns(&footer, wanted))
}

/// A string column read: its column id (its type's index) and its name.
struct StringColumn {
    id: u32,
    name: String,
    /// BINARY: orc-rust reads its LENGTH and DATA streams whatever the encoding says.
    binary: bool,
}

/// The STRING, VARCHAR, CHAR and BINARY columns in the subtrees of the root's fields named in `wanted` (the
/// columns orc-rust's projection reads). The type tree has been checked.
fn string_columns(footer: &Footer, wanted: &[&str]) -> Vec<StringColumn> {
    let Some(root) = footer.types.first() else { return Vec::new() };
    let mut out = Vec::new();
    for (&child, name) in root.subtypes.iter().zip(&root.field_names) {
        if !wanted.contains(&name.as_str()) {
            continue;
        }
        let mut stack = vec![child];
        while let Some(id) = stack.pop() {
            let Some(t) = footer.types.get(id as usize) else { continue };
            stack.extend(&t.subtypes);
            let kind = t.kind();
            if matches!(kind, TypeKind::String | TypeKind::Varchar | TypeKind::Char | TypeKind::Binary) {
                out.push(StringColumn { id, name: name.clone(), binary: kind == TypeKind::Binary });
            }
        }
    }
    out
}

/// The file's compression and its block size (the most a chunk may decompress to).
#[derive(Clone, Copy)]
struct Codec {
    kind: CompressionKind,
    block: u64,
}

/// Every stripe's footer decompresses (chunk by chunk, as orc-rust reads it) to at most [`MAX_FOOTER_BYTES`]
/// (a 500-byte file claimed 2 GB), its streams lie in the stripe, each chunk within the block size, and its
/// string columns' lengths are within bounds.
fn check_stripes(
    f: &mut File,
    len: u64,
    codec: Codec,
    footer: &Footer,
    strings: &[StringColumn],
) -> Result<(), String> {
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
        let streams = check_streams(f, offset, end - n, codec, &sf).map_err(|m| format!("stripe {i}: {m}"))?;
        for c in strings {
            let stripe = StripeStrings { f: &mut *f, codec, streams: &streams, footer: &sf, rows: s.number_of_rows() };
            stripe.check(c).map_err(|m| format!("stripe {i}: its {} column: {m}", c.name))?;
        }
    }
    Ok(())
}

/// A stream as orc-rust finds it: where it lies in the file, and how many bytes it decompresses to.
#[derive(Clone, Copy)]
struct StreamAt {
    at: u64,
    len: u64,
    size: u64,
}

/// One stripe's streams, by column and kind (the last one listed, as orc-rust keeps it).
type Streams = HashMap<(u32, i32), StreamAt>;

struct StripeStrings<'a> {
    f: &'a mut File,
    codec: Codec,
    streams: &'a Streams,
    footer: &'a StripeFooter,
    rows: u64,
}

impl StripeStrings<'_> {
    fn check(self, c: &StringColumn) -> Result<(), String> {
        // orc-rust panics where a column has no encoding (caught, like its other panics).
        let Some(encoding) = self.footer.columns.get(c.id as usize) else { return Ok(()) };
        let kind = encoding.kind();
        let v2 = matches!(kind, Encoding::DirectV2 | Encoding::DictionaryV2);
        let dictionary = !c.binary && matches!(kind, Encoding::Dictionary | Encoding::DictionaryV2);
        let stream = |k: StreamKind| self.streams.get(&(c.id, k as i32)).copied();
        let (data, count) = if dictionary {
            let n = u64::from(encoding.dictionary_size());
            if n > self.rows {
                return Err(format!("its dictionary claims {n} entries in a stripe of {} rows", self.rows));
            }
            (stream(StreamKind::DictionaryData), n)
        } else {
            (stream(StreamKind::Data), self.rows)
        };
        let bytes = match stream(StreamKind::Length) {
            Some(s) => read_stream(self.f, s)?,
            None => Vec::new(),
        };
        let mut rle = Rle::new(Inflate::new(self.codec, &bytes), v2);
        let mut window = Window { batches: !dictionary, ..Window::default() };
        let mut got = 0;
        while got < count {
            let Some(n) = rle.next().map_err(|m| format!("its LENGTH stream {m}"))? else { break };
            if n > MAX_VALUE_BYTES {
                return Err(format!(
                    "its LENGTH stream holds a value of {} bytes; at most {MAX_VALUE_BYTES} are read",
                    n as i64
                ));
            }
            got += 1;
            window.push(n).map_err(|m| format!("its LENGTH stream gives {m}"))?;
        }
        if dictionary && got < count {
            return Err(format!("its dictionary claims {count} entries, its LENGTH stream holds {got}"));
        }
        if dictionary && window.most.saturating_mul(self.rows.min(crate::BATCH_ROWS as u64)) > MAX_BATCH_BYTES {
            return Err(format!(
                "a dictionary entry of {} bytes repeated over a batch would take more than {MAX_BATCH_BYTES} bytes",
                window.most
            ));
        }
        let stored = data.map_or(0, |d| d.size);
        if window.total > stored {
            let what = if dictionary { "DICTIONARY_DATA" } else { "DATA" };
            return Err(format!(
                "its LENGTH stream adds up to {} bytes, its {what} stream holds {stored}",
                window.total
            ));
        }
        Ok(())
    }
}

/// The lengths of the last [`crate::BATCH_ROWS`] values (any batch's values of one column are at most that many
/// consecutive values of its LENGTH stream, or of a Parquet column's pages), their sum, the sum of all and the
/// largest.
#[derive(Default)]
pub(crate) struct Window {
    /// Whether the values are a batch's (direct), not a dictionary's.
    batches: bool,
    last: std::collections::VecDeque<u64>,
    sum: u64,
    /// The bytes of all values.
    pub(crate) total: u64,
    most: u64,
}

impl Window {
    /// A window of a batch's values (their sum bounded).
    pub(crate) fn of_batches() -> Window {
        Window { batches: true, ..Window::default() }
    }

    /// Adds a value of `n` bytes; an error (`N consecutive values S bytes; …`) where the last
    /// [`crate::BATCH_ROWS`] take more than [`MAX_BATCH_BYTES`] and the values are a batch's.
    pub(crate) fn push(&mut self, n: u64) -> Result<(), String> {
        if self.last.len() == crate::BATCH_ROWS {
            self.sum -= self.last.pop_front().unwrap_or(0);
        }
        self.last.push_back(n);
        self.sum += n;
        self.total += n;
        self.most = self.most.max(n);
        if self.batches && self.sum > MAX_BATCH_BYTES {
            return Err(format!(
                "{} consecutive values {} bytes; at most {MAX_BATCH_BYTES} are read per batch",
                self.last.len(),
                self.sum
            ));
        }
        Ok(())
    }
}

/// A stream's bytes as they are in the file (orc-rust reads each stream whole too).
fn read_stream(f: &mut File, s: StreamAt) -> Result<Vec<u8>, String> {
    read_at(f, s.at, s.len)
}

/// A stream's decompressed bytes, a chunk at a time (each at most the block size: checked before).
struct Inflate<'a> {
    codec: Codec,
    rest: &'a [u8],
    chunk: Vec<u8>,
    at: usize,
}

impl<'a> Inflate<'a> {
    fn new(codec: Codec, rest: &'a [u8]) -> Inflate<'a> {
        Inflate { codec, rest, chunk: Vec::new(), at: 0 }
    }

    fn byte(&mut self) -> Result<Option<u8>, String> {
        while self.at == self.chunk.len() {
            if self.rest.is_empty() {
                return Ok(None);
            }
            self.at = 0;
            if self.codec.kind == CompressionKind::None {
                self.chunk = std::mem::take(&mut self.rest).to_vec();
                continue;
            }
            let bad = |m: &str| format!("is corrupt: {m}");
            let cap = self.codec.block + 1;
            self.chunk =
                next_chunk(self.codec.kind, &mut self.rest, cap, Some(MAX_ZSTD_WINDOW_LOG)).map_err(|e| match e {
                    ChunkError::Corrupt(m) => bad(&m),
                    ChunkError::NotRead => bad(&format!("{} is not read", self.codec.kind.as_str_name())),
                })?;
            if self.chunk.len() as u64 >= cap {
                return Err(bad("a chunk decompresses to more than the block size"));
            }
        }
        self.at += 1;
        Ok(Some(self.chunk[self.at - 1]))
    }
}

/// ORC's unsigned integer run-length encodings (v1 and v2), decoded as orc-rust decodes them into `i64` (the
/// values are that `i64`'s bits): a varint's bits past the 64th are dropped, a run's arithmetic that overflows is
/// an error. Where orc-rust panics on a malformed run (a patched run without patches, a delta run of one value
/// with a bit width), this is an error too.
struct Rle<'a> {
    src: Inflate<'a>,
    v2: bool,
    run: Vec<u64>,
    at: usize,
}

impl<'a> Rle<'a> {
    fn new(src: Inflate<'a>, v2: bool) -> Rle<'a> {
        Rle { src, v2, run: Vec::new(), at: 0 }
    }

    /// The next value; None where the stream ends between runs.
    fn next(&mut self) -> Result<Option<u64>, String> {
        while self.at == self.run.len() {
            let Some(h) = self.src.byte()? else { return Ok(None) };
            self.run.clear();
            self.at = 0;
            if self.v2 { self.run_v2(h)? } else { self.run_v1(h)? }
        }
        self.at += 1;
        Ok(Some(self.run[self.at - 1]))
    }

    fn byte(&mut self) -> Result<u8, String> {
        self.src.byte()?.ok_or_else(|| "ends in the middle of a run".to_string())
    }

    fn varint(&mut self) -> Result<u64, String> {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            let b = self.byte()?;
            if shift >= 64 {
                return Err("holds a varint of more than 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    fn run_v1(&mut self, h: u8) -> Result<(), String> {
        let h = h as i8;
        if h < 0 {
            for _ in 0..h.unsigned_abs() {
                let v = self.varint()?;
                self.run.push(v);
            }
            return Ok(());
        }
        let delta = i64::from(self.byte()? as i8);
        let mut v = self.varint()? as i64;
        self.run.push(v as u64);
        for _ in 1..usize::from(h as u8) + 3 {
            v = v.checked_add(delta).ok_or(OVERFLOW)?;
            self.run.push(v as u64);
        }
        Ok(())
    }

    /// `n` bit-packed values of `width` bits, most significant bit first.
    fn packed(&mut self, n: usize, width: usize, out: &mut Vec<u64>) -> Result<(), String> {
        let (mut bits, mut left) = (0u64, 0usize);
        for _ in 0..n {
            let mut v = 0u64;
            let mut need = width;
            while need > 0 {
                if left == 0 {
                    bits = u64::from(self.byte()?);
                    left = 8;
                }
                let take = need.min(left);
                left -= take;
                v = v << take | (bits >> left) & ((1 << take) - 1);
                need -= take;
            }
            out.push(v);
        }
        Ok(())
    }

    fn big_endian(&mut self, n: usize) -> Result<u64, String> {
        let mut v = 0u64;
        for _ in 0..n {
            v = v.checked_shl(8).unwrap_or(0) | u64::from(self.byte()?);
        }
        Ok(v)
    }

    fn run_v2(&mut self, h: u8) -> Result<(), String> {
        match h >> 6 {
            // Short repeat: 1-8 bytes, 3-10 times.
            0 => {
                let v = self.big_endian(usize::from(h >> 3 & 7) + 1)?;
                self.run.extend(std::iter::repeat_n(v, usize::from(h & 7) + 3));
            }
            // Direct: bit-packed.
            1 => {
                let n = (usize::from(h & 1) << 8 | usize::from(self.byte()?)) + 1;
                let mut run = std::mem::take(&mut self.run);
                self.packed(n, bit_width(h >> 1 & 0x1f), &mut run)?;
                self.run = run;
            }
            2 => self.patched_base(h)?,
            _ => self.delta(h)?,
        }
        Ok(())
    }

    fn delta(&mut self, h: u8) -> Result<(), String> {
        let width = match h >> 1 & 0x1f {
            0 => 0,
            w => bit_width(w),
        };
        let n = (usize::from(h & 1) << 8 | usize::from(self.byte()?)) + 1;
        let base = self.varint()? as i64;
        let z = self.varint()?;
        let delta_base = (z >> 1) as i64 ^ -((z & 1) as i64);
        let add = delta_base > 0;
        let delta_base = delta_base.checked_abs().ok_or(OVERFLOW)?;
        let step = |acc: i64, d: i64| if add { acc.checked_add(d) } else { acc.checked_sub(d) };
        self.run.push(base as u64);
        if width == 0 {
            let mut acc = base;
            for _ in 1..n {
                acc = step(acc, delta_base).ok_or(OVERFLOW)?;
                self.run.push(acc as u64);
            }
            return Ok(());
        }
        if n < 2 {
            return Err("holds a delta run of one value with a bit width (orc-rust cannot read it)".into());
        }
        let mut acc = step(base, delta_base).ok_or(OVERFLOW)?;
        self.run.push(acc as u64);
        let mut deltas = Vec::with_capacity(n - 2);
        self.packed(n - 2, width, &mut deltas)?;
        for d in deltas {
            acc = step(acc, d as i64).ok_or(OVERFLOW)?;
            self.run.push(acc as u64);
        }
        Ok(())
    }

    fn patched_base(&mut self, h: u8) -> Result<(), String> {
        let width = bit_width(h >> 1 & 0x1f);
        let n = (usize::from(h & 1) << 8 | usize::from(self.byte()?)) + 1;
        let (third, fourth) = (self.byte()?, self.byte()?);
        let base_bytes = usize::from(third >> 5 & 7) + 1;
        let patch_width = bit_width(third & 0x1f);
        let gap_width = usize::from(fourth >> 5 & 7) + 1;
        if patch_width + gap_width > 64 {
            return Err("holds a patched run whose patch and gap are wider than 64 bits".into());
        }
        let patch_count = usize::from(fourth & 0x1f);
        let base = self.big_endian(base_bytes)? as i64;
        let mut values = Vec::with_capacity(n);
        self.packed(n, width, &mut values)?;
        let mut patches = Vec::with_capacity(patch_count);
        self.packed(patch_count, closest_fixed_bits(patch_width + gap_width), &mut patches)?;
        let no_patch = || "holds a patched run whose patches run out (orc-rust cannot read it)".to_string();
        let mask = (1u64 << patch_width).wrapping_sub(1);
        let mut index = 0;
        let next_gap = |index: &mut usize| -> Result<(u64, u64), String> {
            let mut gap = 0u64;
            loop {
                let p = *patches.get(*index).ok_or_else(no_patch)?;
                let (g, patch) = (p >> patch_width, p & mask);
                if g == 255 && patch == 0 {
                    gap += 255;
                    *index += 1;
                    continue;
                }
                return Ok((gap + g, patch));
            }
        };
        let (mut gap, mut patch) = next_gap(&mut index)?;
        for (i, v) in values.into_iter().enumerate() {
            let v = v as i64;
            if i as u64 == gap {
                let bits = if width >= 64 { return Err(OVERFLOW.into()) } else { (patch << width) as i64 };
                self.run.push((v | bits).wrapping_add(base) as u64);
                index += 1;
                if index < patches.len() {
                    let (g, p) = next_gap(&mut index)?;
                    (gap, patch) = (g + i as u64, p);
                }
            } else {
                self.run.push(v.checked_add(base).ok_or(OVERFLOW)? as u64);
            }
        }
        Ok(())
    }
}

const OVERFLOW: &str = "holds a run whose values overflow 64 bits";

/// RLE v2's 5-bit width code.
fn bit_width(code: u8) -> usize {
    match code {
        0..=23 => usize::from(code) + 1,
        24 => 26,
        25 => 28,
        26 => 30,
        27 => 32,
        28 => 40,
        29 => 48,
        30 => 56,
        _ => 64,
    }
}

/// The width patches are packed in: the next width of the table above.
fn closest_fixed_bits(n: usize) -> usize {
    match n {
        0 => 1,
        1..=24 => n,
        25..=26 => 26,
        27..=28 => 28,
        29..=30 => 30,
        31..=32 => 32,
        33..=40 => 40,
        41..=48 => 48,
        49..=56 => 56,
        _ => 64,
    }
}

/// The streams follow one another from the stripe's start (as orc-rust reads them) and end before its footer;
/// each compressed chunk of each decompresses to at most the block size. Returns where each stream lies.
fn check_streams(f: &mut File, start: u64, end: u64, codec: Codec, sf: &StripeFooter) -> Result<Streams, String> {
    let mut at = start;
    let mut streams = Streams::new();
    for (j, s) in sf.streams.iter().enumerate() {
        let next = at.checked_add(s.length()).filter(|&e| e <= end);
        let next = next.ok_or_else(|| format!("its stream {j} ends past the stripe's data"))?;
        let size = if codec.kind == CompressionKind::None {
            s.length()
        } else {
            let what = format!("the {} stream of column {}", s.kind().as_str_name(), s.column());
            check_chunks(f, at, s.length(), codec).map_err(|m| format!("{what}: {m}"))?
        };
        streams.insert((s.column(), s.kind() as i32), StreamAt { at, len: s.length(), size });
        at = next;
    }
    Ok(streams)
}

/// The `n` bytes at `at` are ORC chunks, each decompressing to at most the block size. Read a chunk at a time
/// (at most 8 MiB, the 23-bit length); the size is the one Snappy states up front, else what a decompression
/// capped at the block size yields, so memory stays bounded whatever a chunk claims. Returns the stream's
/// decompressed size.
fn check_chunks(f: &mut File, at: u64, n: u64, codec: Codec) -> Result<u64, String> {
    f.seek(SeekFrom::Start(at)).map_err(io)?;
    let mut r = BufReader::new(f.take(n));
    let (mut left, mut chunk, mut total) = (n, Vec::new(), 0u64);
    while left > 0 {
        let mut h = [0; 3];
        r.read_exact(&mut h).map_err(|_| "a chunk header is cut short".to_string())?;
        let h = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
        let m = u64::from(h >> 1);
        left = left.checked_sub(3 + m).ok_or("a chunk is cut short")?;
        chunk.resize(m as usize, 0);
        r.read_exact(&mut chunk).map_err(io)?;
        if h & 1 == 1 {
            total += m;
            continue;
        }
        let size = chunk_size(codec, &chunk)
            .map_err(|e| format!("its {} compression is corrupt: {e}", codec.kind.as_str_name()))?;
        if size > codec.block {
            return Err(format!("a chunk decompresses to more than the block size, {} bytes", codec.block));
        }
        total += size;
    }
    Ok(total)
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
    let (mut out, mut rest) = (Vec::new(), raw);
    while !rest.is_empty() {
        let room = MAX_FOOTER_BYTES + 1 - out.len() as u64;
        out.extend(next_chunk(kind, &mut rest, room, None).map_err(|e| match e {
            ChunkError::Corrupt(m) => format!("its {} compression is corrupt: {m}", kind.as_str_name()),
            ChunkError::NotRead => {
                format!("its {} compression is not read (ZLIB, SNAPPY, ZSTD are)", kind.as_str_name())
            }
        })?);
        if out.len() as u64 > MAX_FOOTER_BYTES {
            return Err(format!("it decompresses to more than {MAX_FOOTER_BYTES} bytes"));
        }
    }
    Ok(out)
}

/// Why an ORC chunk was not decompressed.
enum ChunkError {
    Corrupt(String),
    /// A compression kind that is not read.
    NotRead,
}

/// Splits the next ORC chunk off `rest` (a 3-byte header: length × 2, + 1 when the chunk is stored as it is) and
/// decompresses it, reading at most `cap` bytes; a ZSTD window is bounded by `zstd_window_log` where given.
fn next_chunk(
    kind: CompressionKind,
    rest: &mut &[u8],
    cap: u64,
    zstd_window_log: Option<u32>,
) -> Result<Vec<u8>, ChunkError> {
    let corrupt = |m: &str| ChunkError::Corrupt(m.to_string());
    let all: &[u8] = rest;
    let h = all.get(..3).ok_or_else(|| corrupt("a chunk header is cut short"))?;
    let h = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
    let n = (h >> 1) as usize;
    let chunk = all.get(3..3 + n).ok_or_else(|| corrupt("a chunk is cut short"))?;
    *rest = &all[3 + n..];
    let got = match kind {
        _ if h & 1 == 1 => Ok(chunk.to_vec()),
        CompressionKind::Zlib => read_up_to(flate2::read::DeflateDecoder::new(chunk), cap),
        CompressionKind::Snappy => snappy(chunk, cap),
        CompressionKind::Zstd => zstd::stream::Decoder::new(chunk).and_then(|mut d| {
            if let Some(log) = zstd_window_log {
                d.window_log_max(log)?;
            }
            read_up_to(d, cap)
        }),
        _ => return Err(ChunkError::NotRead),
    };
    got.map_err(|e| ChunkError::Corrupt(e.to_string()))
}

/// A raw Snappy block, refused before it is decompressed if it says it is larger than `limit`.
fn snappy(chunk: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let n = snap::raw::decompress_len(chunk).map_err(std::io::Error::other)?;
    if n as u64 > limit {
        return Err(std::io::Error::other(format!("a chunk says it holds {n} bytes")));
    }
    snap::raw::Decoder::new().decompress_vec(chunk).map_err(std::io::Error::other)
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
        check(&mut File::open(path).expect("the fuzz input"), &["bucket", "key"])
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
        use orc_rust::proto::{ColumnEncoding, column_encoding};
        let direct = ColumnEncoding { kind: Some(column_encoding::Kind::Direct as i32), ..Default::default() };
        hand_built_with(kind, chunk, &[0xff, bucket_len], direct)
    }

    /// The same, with the bucket column's LENGTH stream (RLE, stored as it is) and its encoding given.
    fn hand_built_with(
        kind: CompressionKind,
        chunk: &[u8],
        bucket_lengths: &[u8],
        bucket_encoding: orc_rust::proto::ColumnEncoding,
    ) -> Vec<u8> {
        use orc_rust::proto::{ColumnEncoding, Stream, StripeInformation, Type, column_encoding, stream, r#type};
        let data = [&((chunk.len() as u32) << 1).to_le_bytes()[..3], chunk].concat();
        let (length, key) = (original(&[0xff, 1]), original(b"k"));
        let bucket_length = original(bucket_lengths);
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
        let columns = vec![direct.clone(), bucket_encoding, direct];
        let sf = original(&StripeFooter { streams, columns, ..Default::default() }.encode_to_vec());
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
        check(&mut f, &["bucket", "key"])
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

    /// ORC's run-length encodings decode as the ORC specification's examples say.
    #[test]
    fn run_length_encodings_decode_as_the_specification_says() {
        let decode = |bytes: &[u8], v2: bool| -> Result<Vec<u64>, String> {
            let codec = Codec { kind: CompressionKind::None, block: DEFAULT_BLOCK_BYTES };
            let mut rle = Rle::new(Inflate::new(codec, bytes), v2);
            let mut out = Vec::new();
            while let Some(v) = rle.next()? {
                out.push(v);
            }
            Ok(out)
        };
        assert_eq!(decode(&[0x61, 0x00, 0x07], false).unwrap(), vec![7; 100]);
        assert_eq!(decode(&[0x61, 0xff, 0x64], false).unwrap(), (1..=100).rev().collect::<Vec<_>>());
        assert_eq!(decode(&[0xfb, 0x02, 0x03, 0x06, 0x07, 0x0b], false).unwrap(), [2, 3, 6, 7, 11]);
        assert_eq!(decode(&[0x0a, 0x27, 0x10], true).unwrap(), [10000; 5]);
        let direct = [0x5e, 0x03, 0x5c, 0xa1, 0xab, 0x1e, 0xde, 0xad, 0xbe, 0xef];
        assert_eq!(decode(&direct, true).unwrap(), [23713, 43806, 57005, 48879]);
        let patched = [
            0x8e, 0x13, 0x2b, 0x21, 0x07, 0xd0, 0x1e, 0x00, 0x14, 0x70, 0x28, 0x32, 0x3c, 0x46, 0x50, 0x5a, 0x64, 0x6e,
            0x78, 0x82, 0x8c, 0x96, 0xa0, 0xaa, 0xb4, 0xbe, 0xfc, 0xe8,
        ];
        let mut want: Vec<u64> = vec![2030, 2000, 2020, 1000000];
        want.extend((2040..=2190).step_by(10));
        assert_eq!(decode(&patched, true).unwrap(), want);
        let delta = [0xc6, 0x09, 0x02, 0x02, 0x22, 0x42, 0x42, 0x46];
        assert_eq!(decode(&delta, true).unwrap(), [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        // Cut short, a varint over 64 bits, a run that overflows, a patched run without patches.
        assert!(decode(&[0x5e, 0x03, 0x5c], true).unwrap_err().contains("middle of a run"));
        let too_long = [&[0xff][..], &[0xff; 10], &[0x01]].concat();
        assert!(decode(&too_long, false).unwrap_err().contains("more than 64 bits"));
        assert_eq!(decode(&too_long[..10], false).unwrap_err(), "ends in the middle of a run");
        assert!(decode(&[0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], false).is_err());
        assert!(decode(&[0x80, 0x00, 0x00, 0x20, 0x00, 0x00], true).unwrap_err().contains("patches run out"));
    }

    /// What orc-rust's writer writes (RLE v2 of every kind, for lengths that repeat, climb, vary and jump) decodes
    /// to the lengths written, and the file passes the check.
    #[test]
    fn lengths_written_by_orc_rust_decode_to_what_was_written() {
        use arrow_array::{RecordBatch, StringArray};
        let mut lengths: Vec<usize> = vec![5; 40];
        lengths.extend(1..300);
        lengths.extend((0..600).map(|i| 10 + (i * 7919) % 50));
        lengths.extend((0..600).map(|i| if i % 97 == 0 { 2000 } else { 20 + i % 3 }));
        let keys: Vec<String> = lengths.iter().map(|&n| "k".repeat(n)).collect();
        let buckets: Vec<&str> = vec!["bkt"; keys.len()];
        let batch = RecordBatch::try_from_iter([
            ("bucket", std::sync::Arc::new(StringArray::from(buckets)) as arrow_array::ArrayRef),
            ("key", std::sync::Arc::new(StringArray::from(keys)) as arrow_array::ArrayRef),
        ])
        .unwrap();
        let mut f = tempfile::tempfile().unwrap();
        let mut w = orc_rust::ArrowWriterBuilder::new(f.try_clone().unwrap(), batch.schema())
            .with_compression(orc_rust::compression::CompressionType::Zlib)
            .try_build()
            .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        assert_eq!(check(&mut f, &["bucket", "key"]), Ok(()));
        // Decode the key column's LENGTH stream of the one stripe by hand.
        let len = f.metadata().unwrap().len();
        let ps_len = u64::from(tail(&mut f, len, 1, 1).unwrap().unwrap()[0]);
        let ps = PostScript::decode(&tail(&mut f, len, 1 + ps_len, ps_len).unwrap().unwrap()[..]).unwrap();
        let codec = Codec { kind: ps.compression(), block: ps.compression_block_size.unwrap_or(DEFAULT_BLOCK_BYTES) };
        let footer_len = ps.footer_length();
        let raw = tail(&mut f, len, 1 + ps_len + footer_len, footer_len).unwrap().unwrap();
        let footer = Footer::decode(&decompress(codec.kind, &raw).unwrap()[..]).unwrap();
        let s = &footer.stripes[0];
        let end = s.offset() + s.index_length() + s.data_length();
        let raw = tail(&mut f, len, len - end, s.footer_length()).unwrap().unwrap();
        let sf = StripeFooter::decode(&decompress(codec.kind, &raw).unwrap()[..]).unwrap();
        assert_eq!(sf.columns[2].kind(), Encoding::DirectV2);
        let streams = check_streams(&mut f, s.offset(), end, codec, &sf).unwrap();
        let bytes = read_stream(&mut f, streams[&(2, StreamKind::Length as i32)]).unwrap();
        let mut rle = Rle::new(Inflate::new(codec, &bytes), true);
        let mut got = Vec::new();
        while let Some(v) = rle.next().unwrap() {
            got.push(v as usize);
        }
        assert_eq!(got, lengths);
    }

    fn refused(bytes: &[u8]) -> String {
        use std::io::{Seek, Write};
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.rewind().unwrap();
        match crate::orc_rows("inv/data/f.orc", f, None).err().expect("refused when opened") {
            crate::InventoryError::DataFile { file, message } => {
                assert_eq!(file, "inv/data/f.orc");
                message
            }
            other => panic!("{other}"),
        }
    }

    /// The fuzz input whose string lengths overflowed orc-rust's `i64` sum is refused before orc-rust reads it, with
    /// an error naming the file, in every build.
    #[test]
    fn string_lengths_that_overflow_are_refused() {
        let name = "overflow-f8a5f98c1c39e8e4892d012b52fdb666642ac09a";
        let e = artifact(name).unwrap_err();
        assert!(e.contains("LENGTH stream"), "{e}");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/artifacts/inventory_orc").join(name);
        let m = refused(&std::fs::read(path).unwrap());
        assert!(m.starts_with("is not a readable ORC file: stripe 0: its ") && m.contains("LENGTH stream"), "{m}");
    }

    /// A length over 64 KiB, lengths past the DATA stream's end, a dictionary larger than its stripe: refused, with
    /// the column named. Within bounds, the same file reads.
    #[test]
    fn string_lengths_out_of_bounds_are_refused() {
        use orc_rust::proto::{ColumnEncoding, column_encoding};
        let zlib = CompressionKind::Zlib;
        let bkt = compress(zlib, b"bkt");
        let direct = ColumnEncoding { kind: Some(column_encoding::Kind::Direct as i32), ..Default::default() };
        assert_eq!(check_bytes(&hand_built_with(zlib, &bkt, &[0xff, 3], direct.clone())), Ok(()));
        // 70,000 bytes (a varint); then 4 bytes where the DATA stream holds 3.
        let m = refused(&hand_built_with(zlib, &bkt, &[0xff, 0xf0, 0xa2, 0x04], direct.clone()));
        assert!(m.contains("its bucket column: its LENGTH stream holds a value of 70000 bytes; at most 65536"), "{m}");
        let m = refused(&hand_built_with(zlib, &bkt, &[0xff, 4], direct));
        assert!(m.contains("its LENGTH stream adds up to 4 bytes, its DATA stream holds 3"), "{m}");
        let dictionary = ColumnEncoding {
            kind: Some(column_encoding::Kind::DictionaryV2 as i32),
            dictionary_size: Some(u32::MAX),
            ..Default::default()
        };
        let m = refused(&hand_built_with(zlib, &bkt, &[0xff, 3], dictionary));
        assert!(m.contains("its bucket column: its dictionary claims 4294967295 entries in a stripe of 1 rows"), "{m}");
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

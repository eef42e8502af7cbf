//! A check of a Parquet file's pages before parquet reads them, as [`crate::orc_check`] does for ORC.
//!
//! parquet (59) reads each page header with a Thrift reader over the file and skips the fields it does not know.
//! Skipping a list or a map takes one step per element its header claims (up to 2^31), whatever the bytes that
//! follow: an element that is a boolean costs no byte at all, and one that lies past the end of the file costs a
//! `read` that returns nothing. A 2.7 KB file whose page header claimed a list of 88 million UUIDs kept the reader
//! busy ~30 s (`fuzz/artifacts/inventory_parquet/slow-unit-*`). The pages of the columns read are walked here
//! first, the way parquet's page reader walks them (header, then the page's bytes, to the end of the column chunk;
//! the page index is not read), decoding each header as parquet decodes it; every list and map must fit in the
//! header's bytes, and all of them together in the file's size. So parquet's own walk does at most a few steps
//! per byte of the file.
//!
//! Memory and rows are bounded too: parquet allocates the uncompressed size a page header claims (and inflates a
//! GZIP page whole, whatever its header says), so a page's sizes are capped at [`MAX_PAGE_BYTES`] and a GZIP page
//! must inflate to no more than its header says; a file claims at most [`MAX_ROWS_PER_BYTE`] rows per byte; and
//! the columns read are flat (a repeated column makes one row hold any number of values).
//!
//! So are the string values, as [`crate::orc_check`] bounds ORC's: a dictionary page's values are at most
//! [`MAX_DICTIONARY_VALUE_BYTES`] (arrow copies one into a batch once per row that refers to it), and every data
//! page of a BYTE_ARRAY column read, V1 or V2, is decompressed (capped, as above) and its values' lengths found as
//! parquet finds them: PLAIN by their 4-byte prefixes (after an optional column's definition levels),
//! DELTA_LENGTH_BYTE_ARRAY and DELTA_BYTE_ARRAY by decoding their DELTA_BINARY_PACKED lengths (a value is a prefix
//! of the previous one, at most its length, and a suffix). A value is at most [`crate::orc_check::MAX_VALUE_BYTES`]
//! (64 KiB) and any [`crate::BATCH_ROWS`] consecutive values of a column, across pages and row groups, at most
//! [`crate::orc_check::MAX_BATCH_BYTES`] (32 MiB) together: a Snappy or ZSTD page of a few hundred bytes
//! decompresses to a 16 MiB value, and a DELTA_BYTE_ARRAY page can repeat a long prefix in every value. A DELTA
//! stream holds at most as many values as its page (parquet decodes one whole into a `Vec<i32>` when it opens the
//! page, whatever count it claims) and [`MAX_DELTA_VALUES`], and a column chunk's pages at most its row group's
//! rows. Dictionary-encoded data pages hold indices, bounded by the dictionary's check (their values are not in
//! the window); pages of a codec parquet is not built with (LZ4, Brotli, LZO) are left for parquet to refuse.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use parquet::basic::{Compression, Type as PhysicalType};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};

use crate::orc_check::{MAX_VALUE_BYTES, Window};

/// The largest page read, compressed or not (writers cut pages at about 1 MiB; ORC chunks have the same cap).
pub(crate) const MAX_PAGE_BYTES: u64 = 16 << 20;
/// The most rows a file may claim per byte of its size. A real inventory row takes bytes for its distinct key;
/// gzip, at best about 1,000 to 1, and a 4-byte CSV line give a CSV data file about 250 rows per byte.
pub(crate) const MAX_ROWS_PER_BYTE: u64 = 1024;
/// parquet's depth limit when it skips a field (`DEFAULT_SKIP_DEPTH`).
const SKIP_DEPTH: u32 = 64;
/// Page types (`PageType`).
const DATA_PAGE: i32 = 0;
const INDEX_PAGE: i32 = 1;
const DICTIONARY_PAGE: i32 = 2;
const DATA_PAGE_V2: i32 = 3;
/// Encodings (`Encoding`): of levels, and of the byte array values whose lengths are checked.
const PLAIN: i32 = 0;
const RLE: i32 = 3;
const BIT_PACKED: i32 = 4;
const DELTA_LENGTH_BYTE_ARRAY: i32 = 6;
const DELTA_BYTE_ARRAY: i32 = 7;
const VALUE_ENCODINGS: [i32; 3] = [PLAIN, DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY];
/// The most values a DELTA_BINARY_PACKED stream of a page may hold: parquet decodes a DELTA_BYTE_ARRAY page's
/// prefix and suffix lengths whole into two `Vec<i32>` when it opens the page, 32 MiB at most (whatever the
/// page's size: a run of equal lengths takes no bits). Writers cut pages at 20,000 rows or about 1 MiB.
const MAX_DELTA_VALUES: u64 = 1 << 22;
/// The longest value of a BYTE_ARRAY dictionary page read: [`crate::BATCH_ROWS`] rows of it take 32 MiB (an S3
/// key is at most 1 KiB).
pub(crate) const MAX_DICTIONARY_VALUE_BYTES: u64 = 4 << 10;

/// `Ok` when every page of the columns `leaves` (leaf indices, the columns the reader projects) can be read by
/// parquet with bounded work and memory, and the file's row count is plausible for its size.
pub(crate) fn check(f: &File, meta: &ParquetMetaData, leaves: &[usize]) -> Result<(), String> {
    let len = f.metadata().map_err(|e| format!("reading failed: {e}"))?.len();
    check_rows(meta, len)?;
    let schema = meta.file_metadata().schema_descr();
    for &leaf in leaves {
        let c = schema.column(leaf);
        let name = c.path().string();
        if c.path().parts().len() > 1 || c.max_rep_level() > 0 {
            return Err(format!("its {name} column is nested (S3 Inventory columns are flat)"));
        }
        let t = c.physical_type();
        if !matches!(
            t,
            PhysicalType::BOOLEAN
                | PhysicalType::INT32
                | PhysicalType::INT64
                | PhysicalType::INT96
                | PhysicalType::BYTE_ARRAY
        ) {
            return Err(format!("its {name} column has physical type {t}, which no S3 Inventory column has"));
        }
    }
    pages(f, len, meta, leaves).map(drop)
}

/// The pages of the columns `leaves`, walked: each column's byte array values in a [`Window`] (a batch's values of
/// a column are consecutive values of its pages, across row groups too).
fn pages(f: &File, len: u64, meta: &ParquetMetaData, leaves: &[usize]) -> Result<Vec<Window>, String> {
    let mut walk = Walk { r: BufReader::new(f), len, chunk_bytes: 0, elements: len };
    let mut windows: Vec<Window> = leaves.iter().map(|_| Window::of_batches()).collect();
    for (g, rg) in meta.row_groups().iter().enumerate() {
        for (&leaf, window) in leaves.iter().zip(&mut windows) {
            let col = rg.column(leaf);
            walk.chunk(col, rg.num_rows(), window)
                .map_err(|m| format!("row group {g}, column {}: {m}", col.column_path().string()))?;
        }
    }
    Ok(windows)
}

/// Every row group's row count is at least 0 and they add up to at most [`MAX_ROWS_PER_BYTE`] per byte.
fn check_rows(meta: &ParquetMetaData, len: u64) -> Result<(), String> {
    let mut rows = 0u64;
    for (g, rg) in meta.row_groups().iter().enumerate() {
        let n = u64::try_from(rg.num_rows()).map_err(|_| format!("row group {g} claims {} rows", rg.num_rows()))?;
        rows = rows.saturating_add(n);
    }
    let most = len.saturating_mul(MAX_ROWS_PER_BYTE);
    if rows > most {
        return Err(format!(
            "it claims {rows} rows in {len} bytes; at most {MAX_ROWS_PER_BYTE} rows per byte are read"
        ));
    }
    Ok(())
}

struct Walk<'f> {
    r: BufReader<&'f File>,
    len: u64,
    /// The bytes of the column chunks walked so far: at most the file's size (chunks do not overlap).
    chunk_bytes: u64,
    /// The list and map elements the headers may still claim, all together: at most the file's size.
    elements: u64,
}

impl Walk<'_> {
    /// One column chunk's pages, from its first page (the dictionary page's offset, else the first data page's) for
    /// its compressed size, as parquet's `SerializedPageReader` reads them without a page index.
    /// The values of its BYTE_ARRAY data pages are checked too (see [`Walk::data_page`]), `window` holding the
    /// column's last values; `rows` is its row group's row count.
    fn chunk(&mut self, col: &ColumnChunkMetaData, rows: i64, window: &mut Window) -> Result<(), String> {
        let byte_array = col.column_type() == PhysicalType::BYTE_ARRAY;
        // The values the data pages claim: at most the row group's rows (a flat column has one value per row, a
        // null included).
        let mut values = 0u64;
        let start = col.dictionary_page_offset().unwrap_or(col.data_page_offset());
        let size = col.compressed_size();
        let (Ok(start), Ok(size)) = (u64::try_from(start), u64::try_from(size)) else {
            return Err(format!("its pages' offset {start} or size {size} is negative"));
        };
        if start.checked_add(size).is_none_or(|end| end > self.len) {
            return Err(format!("its pages ({size} bytes at {start}) end past the file's {} bytes", self.len));
        }
        self.chunk_bytes = self.chunk_bytes.saturating_add(size);
        if self.chunk_bytes > self.len {
            return Err("its column chunks add up to more than the file's size (they overlap)".into());
        }
        self.r.seek(SeekFrom::Start(start)).map_err(io)?;
        let (mut at, end) = (start, start + size);
        while at < end {
            let mut t =
                Thrift { r: &mut self.r, left: end - at, elements: &mut self.elements, what: HEADER, past: PAST_CHUNK };
            let h = t.page_header()?;
            at = end - t.left;
            let (Some(kind), Some(raw), Some(stored)) = (h.kind, h.uncompressed, h.compressed) else {
                return Err(format!("the page header at {at} lacks its type or a size"));
            };
            let (Ok(raw), Ok(stored)) = (u64::try_from(raw), u64::try_from(stored)) else {
                return Err(format!("the page at {at} has a negative size"));
            };
            if stored > end - at {
                return Err(format!("the page at {at} ({stored} bytes) ends past its column chunk"));
            }
            if raw.max(stored) > MAX_PAGE_BYTES {
                return Err(format!(
                    "the page at {at} is {raw} bytes ({stored} compressed); at most {MAX_PAGE_BYTES} are read"
                ));
            }
            if kind != INDEX_PAGE && matches!(col.compression(), Compression::GZIP(_)) {
                self.gzip_page(at, stored, raw, &h).map_err(|m| format!("the page at {at}: {m}"))?;
                self.r.seek(SeekFrom::Start(at + stored)).map_err(io)?;
            } else {
                self.r.seek_relative(stored as i64).map_err(io)?;
            }
            if kind == DICTIONARY_PAGE && byte_array {
                let values = h.dictionary_values.unwrap_or(0);
                self.dictionary_page(at, stored, raw, values, col.compression())
                    .map_err(|m| format!("the dictionary page at {at}: {m}"))?;
                self.r.seek(SeekFrom::Start(at + stored)).map_err(io)?;
            }
            if matches!(kind, DATA_PAGE | DATA_PAGE_V2) && byte_array {
                let n = match (kind, h.v1, h.v2) {
                    (DATA_PAGE, Some(v1), _) => v1.num_values,
                    (DATA_PAGE_V2, _, Some(v2)) => v2.num_values,
                    _ => None,
                };
                values = values.saturating_add(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0));
                if values > rows.max(0) as u64 {
                    return Err(format!(
                        "its pages claim {values} values by the page at {at}, its row group has {rows} rows"
                    ));
                }
                let max_def = col.column_descr().max_def_level();
                self.data_page(at, stored, raw, &h, max_def, col.compression(), window)
                    .map_err(|m| format!("the page at {at}: {m}"))?;
                self.r.seek(SeekFrom::Start(at + stored)).map_err(io)?;
            }
            at += stored;
        }
        Ok(())
    }

    /// Every value of a BYTE_ARRAY dictionary page (PLAIN: a 4-byte length, then the bytes) is at most
    /// [`MAX_DICTIONARY_VALUE_BYTES`]: arrow copies an entry into a batch once per row that refers to it, so a
    /// page-sized entry repeated over 8,192 rows made a batch of gigabytes. Pages of a codec parquet is not built
    /// with are left to parquet to refuse.
    fn dictionary_page(
        &mut self,
        at: u64,
        stored: u64,
        raw: u64,
        values: i32,
        codec: Compression,
    ) -> Result<(), String> {
        let page = read_at(&mut self.r, at, stored)?;
        let Some(plain) = decompress(page, raw, codec)? else { return Ok(()) };
        let mut rest = &plain[..];
        for _ in 0..values.max(0) {
            let Some((n, tail)) = rest.split_first_chunk::<4>() else { break };
            let n = u64::from(u32::from_le_bytes(*n));
            if n > MAX_DICTIONARY_VALUE_BYTES {
                return Err(format!("it holds a value of {n} bytes; at most {MAX_DICTIONARY_VALUE_BYTES} are read"));
            }
            rest = tail.get(n as usize..).unwrap_or_default();
        }
        Ok(())
    }

    /// The values of a BYTE_ARRAY data page (V1 or V2, stored at `at` in `stored` bytes, `raw` uncompressed), found
    /// as parquet's `decode_page`, its column reader and arrow's byte array decoders find them, are bounded: each at
    /// most [`MAX_VALUE_BYTES`], any [`crate::BATCH_ROWS`] consecutive values of the column (`window`) at most
    /// [`crate::orc_check::MAX_BATCH_BYTES`] together. A PLAIN page's values are walked by their 4-byte lengths;
    /// DELTA_LENGTH_BYTE_ARRAY and DELTA_BYTE_ARRAY lengths (prefix plus suffix) are decoded from their
    /// DELTA_BINARY_PACKED streams, which parquet decodes whole, into memory, when it opens the page: a stream holds
    /// at most [`MAX_DELTA_VALUES`] values, and no more than its page's header says. Dictionary-encoded pages are bounded by the dictionary
    /// check. A page parquet refuses before it decodes a value (a codec it is not built with, a size that does
    /// not match, levels past the page's end, an encoding it does not know) is left to parquet to refuse.
    #[allow(clippy::too_many_arguments)]
    fn data_page(
        &mut self,
        at: u64,
        stored: u64,
        raw: u64,
        h: &PageHeader,
        max_def: i16,
        codec: Compression,
        window: &mut Window,
    ) -> Result<(), String> {
        let (encoding, levels, count) = match (h.kind, h.v1, h.v2) {
            (Some(DATA_PAGE), Some(v1), _) => (v1.encoding, v1.num_values.map(i64::from), v1.num_values.map(i64::from)),
            (Some(DATA_PAGE_V2), _, Some(v2)) => (
                v2.encoding,
                v2.num_values.map(i64::from),
                v2.num_values.zip(v2.num_nulls).map(|(n, nulls)| i64::from(n) - i64::from(nulls)),
            ),
            _ => return Ok(()),
        };
        let (Some(encoding), Some(Ok(levels)), Some(Ok(count))) =
            (encoding, levels.map(u64::try_from), count.map(u64::try_from))
        else {
            return Ok(()); // parquet refuses a page without them, or with a negative count
        };
        if !VALUE_ENCODINGS.contains(&encoding) {
            return Ok(());
        }
        // `decode_page`: where the header has a V2 part, its levels come first, uncompressed, whatever the page's
        // type; the rest is decompressed unless the codec is none or the V2 part says it is stored as it is.
        let (skip, compressed) = match h.v2 {
            Some(v2) => match u64::try_from(i64::from(v2.def_bytes) + i64::from(v2.rep_bytes)) {
                Ok(n) if v2.def_bytes >= 0 && v2.rep_bytes >= 0 && n <= raw => (n, v2.is_compressed.unwrap_or(true)),
                _ => return Ok(()),
            },
            None => (0, true),
        };
        let mut page = read_at(&mut self.r, at, stored)?;
        if compressed && codec != Compression::UNCOMPRESSED {
            if skip > stored {
                return Ok(());
            }
            let rest = page.split_off(skip as usize);
            if raw > skip {
                match decompress(rest, raw - skip, codec)? {
                    Some(v) => page.extend_from_slice(&v),
                    None => return Ok(()),
                }
            }
        }
        // The column reader: a V1 page's definition levels (an optional column's) come before its values, a V2
        // page's levels are the V2 part's bytes.
        let start = match (h.kind, max_def, h.v1.and_then(|v1| v1.def_encoding)) {
            (Some(DATA_PAGE_V2), _, _) => skip,
            (_, 0, _) => 0,
            (_, _, Some(RLE)) => match page.first_chunk::<4>().map(|n| i32::from_le_bytes(*n)) {
                Some(n) if n >= 0 && 4 + n as u64 <= page.len() as u64 => 4 + n as u64,
                _ => return Ok(()),
            },
            (_, _, Some(BIT_PACKED)) => (levels * (16 - u64::from(max_def.leading_zeros()))).div_ceil(8),
            _ => return Ok(()),
        };
        let Some(data) = usize::try_from(start).ok().and_then(|start| page.get(start..)) else { return Ok(()) };
        values(encoding, data, levels, count, window)
    }

    /// A GZIP page inflates to no more than its header says: parquet inflates it whole (`read_to_end`) and only then
    /// compares. As parquet's `decode_page`: a V2 page's levels come first, uncompressed, and it may be stored as it
    /// is; a page that decompresses to nothing is not decompressed.
    fn gzip_page(&mut self, at: u64, stored: u64, raw: u64, h: &PageHeader) -> Result<(), String> {
        let (levels, compressed) = match h.v2 {
            Some(v2) => (i64::from(v2.def_bytes) + i64::from(v2.rep_bytes), v2.is_compressed.unwrap_or(true)),
            None => (0, true),
        };
        let Ok(levels) = u64::try_from(levels) else { return Ok(()) };
        if !compressed || levels > stored || levels >= raw {
            return Ok(()); // read as it is, or refused by parquet before it inflates anything
        }
        let want = raw - levels;
        self.r.seek(SeekFrom::Start(at + levels)).map_err(io)?;
        let mut d = flate2::read::MultiGzDecoder::new((&mut self.r).take(stored - levels));
        let got = std::io::copy(&mut (&mut d).take(want + 1), &mut std::io::sink())
            .map_err(|e| format!("its GZIP compression is corrupt: {e}"))?;
        if got > want {
            return Err(format!("it inflates to more than the {want} bytes its header says"));
        }
        Ok(())
    }
}

/// Checks the values of a byte array data page, `data` (the page's bytes after its levels) encoded as `encoding`,
/// against [`MAX_VALUE_BYTES`] and `window`. `levels` is the page's value count, nulls included; `count` the values
/// a PLAIN page is read for (a V1 page's levels, a V2 page's non-null values).
fn values(encoding: i32, data: &[u8], levels: u64, count: u64, window: &mut Window) -> Result<(), String> {
    let mut push = |n: i64| {
        if n < 0 {
            return Err(format!("it holds a value of {n} bytes"));
        }
        if n as u64 > MAX_VALUE_BYTES {
            return Err(format!("it holds a value of {n} bytes; at most {MAX_VALUE_BYTES} are read"));
        }
        window.push(n as u64).map_err(|m| format!("it gives {m}"))
    };
    match encoding {
        PLAIN => {
            // As many values as the page has (V1: levels, nulls included), or to the page's end.
            let mut rest = data;
            for _ in 0..count {
                let Some((n, tail)) = rest.split_first_chunk::<4>() else { break };
                let n = u32::from_le_bytes(*n);
                push(i64::from(n))?;
                let Some(tail) = tail.get(n as usize..) else { break };
                rest = tail;
            }
        }
        DELTA_LENGTH_BYTE_ARRAY => {
            let mut lengths = Delta::new(data, levels, "DELTA_LENGTH_BYTE_ARRAY lengths")?;
            while let Some(n) = lengths.next()? {
                push(i64::from(n))?;
            }
        }
        _ => {
            // DELTA_BYTE_ARRAY: the prefix lengths, then the suffix lengths, then the suffixes. A value is the
            // previous one's first `prefix` bytes, then its suffix.
            const PREFIXES: &str = "DELTA_BYTE_ARRAY prefix lengths";
            let mut prefixes = Delta::new(data, levels, PREFIXES)?;
            while prefixes.next()?.is_some() {}
            let Some(rest) = data.get(prefixes.end()..) else {
                return Err(format!("its {PREFIXES} run past its end"));
            };
            let mut suffixes = Delta::new(rest, levels, "DELTA_BYTE_ARRAY suffix lengths")?;
            if suffixes.total != prefixes.total {
                return Err(format!(
                    "it holds {} DELTA_BYTE_ARRAY prefix lengths and {} suffix lengths",
                    prefixes.total, suffixes.total
                ));
            }
            let mut prefixes = Delta::new(data, levels, PREFIXES)?;
            let mut last = 0i64;
            while let (Some(prefix), Some(suffix)) = (prefixes.next()?, suffixes.next()?) {
                let (prefix, suffix) = (i64::from(prefix), i64::from(suffix));
                if prefix < 0 || prefix > last {
                    return Err(format!(
                        "a DELTA_BYTE_ARRAY value takes a prefix of {prefix} bytes of a value of {last} bytes"
                    ));
                }
                if suffix < 0 {
                    return Err(format!("a DELTA_BYTE_ARRAY value has a suffix of {suffix} bytes"));
                }
                last = prefix + suffix;
                push(last)?;
            }
        }
    }
    Ok(())
}

/// A page's bytes as parquet decompresses them (`raw`: what its header says they decompress to, at most
/// [`MAX_PAGE_BYTES`]; decompression stops one byte past it, and a ZSTD window is at most 16 MiB). `None` where
/// parquet refuses the page without decoding it: a codec it is not built with, a GZIP or ZSTD page of another size.
/// A Snappy page that says it holds less is padded with zeros, as parquet pads it; one that says it holds more,
/// or any corrupt compression, is refused here.
fn decompress(page: Vec<u8>, raw: u64, codec: Compression) -> Result<Option<Vec<u8>>, String> {
    let cap = raw + 1;
    let plain = match codec {
        Compression::UNCOMPRESSED => return Ok(Some(page)),
        Compression::SNAPPY => {
            let mut plain = match snap::raw::decompress_len(&page) {
                Ok(n) if n as u64 <= raw => {
                    snap::raw::Decoder::new().decompress_vec(&page).map_err(|e| e.to_string())?
                }
                Ok(n) => return Err(format!("it says it holds {n} bytes, its header {raw}")),
                Err(e) => return Err(e.to_string()),
            };
            plain.resize(raw as usize, 0);
            plain
        }
        Compression::GZIP(_) => capped(flate2::read::MultiGzDecoder::new(&page[..]), cap)?,
        Compression::ZSTD(_) => {
            let mut d = zstd::stream::Decoder::new(&page[..]).map_err(|e| e.to_string())?;
            d.window_log_max(24).map_err(|e| e.to_string())?;
            capped(d, cap)?
        }
        _ => return Ok(None),
    };
    Ok((plain.len() as u64 == raw).then_some(plain))
}

/// A DELTA_BINARY_PACKED stream of `i32` (lengths), decoded value by value as parquet's `DeltaBitPackDecoder`
/// decodes it: a header (block size, miniblocks per block, value count, first value), then blocks of a minimum
/// delta and one bit width per miniblock, then the miniblocks' bit-packed deltas; values add up wrapping, as
/// parquet adds them. Where parquet fails to decode the stream (a count over `i32`, a bit width over 32, bits past
/// the end…), so does this: parquet decodes the whole stream when it opens the page.
struct Delta<'a> {
    data: &'a [u8],
    /// The next bit read.
    bit: u64,
    /// The values not yet read (the stream's count, less those read).
    left: u64,
    /// The stream's value count.
    total: u64,
    first: Option<i32>,
    last: i32,
    minis: u64,
    per_mini: u64,
    min_delta: i32,
    widths: &'a [u8],
    mini: usize,
    /// Values left in the current miniblock.
    in_mini: u64,
    block_end: u64,
    what: &'static str,
}

impl<'a> Delta<'a> {
    /// The stream at the start of `data`, holding at most `most` values (the page's) and [`MAX_DELTA_VALUES`].
    fn new(data: &'a [u8], most: u64, what: &'static str) -> Result<Delta<'a>, String> {
        let mut d = Delta {
            data,
            bit: 0,
            left: 0,
            total: 0,
            first: None,
            last: 0,
            minis: 0,
            per_mini: 0,
            min_delta: 0,
            widths: &[],
            mini: 0,
            in_mini: 0,
            block_end: 0,
            what,
        };
        let corrupt = |m: &str| format!("its {what} are corrupt: {m}");
        let block = d.vlq()?;
        let minis = d.vlq()?;
        let total = d.vlq()?;
        let first = d.zigzag()?;
        let (Ok(block), Ok(minis), Ok(total)) = (u64::try_from(block), u64::try_from(minis), u64::try_from(total))
        else {
            return Err(corrupt("a negative size"));
        };
        d.first = Some(i32::try_from(first).map_err(|_| corrupt("a first value over 32 bits"))?);
        if minis == 0 || block % 128 != 0 || block % minis != 0 || (block / minis) % 32 != 0 {
            return Err(corrupt(&format!("blocks of {block} values in {minis} miniblocks")));
        }
        if total > MAX_DELTA_VALUES {
            return Err(format!("its {what} claim {total} values; at most {MAX_DELTA_VALUES} are read per page"));
        }
        if total > most {
            return Err(format!("its {what} claim {total} values, its header {most}"));
        }
        (d.minis, d.per_mini, d.left, d.total) = (minis, block / minis, total, total);
        Ok(d)
    }

    /// ULEB128 at the next whole byte, as parquet's `get_vlq_int` reads it (at most 10 bytes; parquet panics past
    /// that).
    fn vlq(&mut self) -> Result<i64, String> {
        let mut at = self.bit.div_ceil(8) as usize;
        let (mut v, mut shift) = (0i64, 0u32);
        loop {
            let Some(&b) = self.data.get(at) else {
                return Err(format!("its {} end too early", self.what));
            };
            at += 1;
            v |= i64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                self.bit = at as u64 * 8;
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(format!("its {} are corrupt: a varint of more than 10 bytes", self.what));
            }
        }
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.vlq()? as u64;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// `next_block`: its minimum delta, its miniblocks' bit widths, where it ends.
    fn block(&mut self) -> Result<(), String> {
        let what = self.what;
        let corrupt = |m: &str| format!("its {what} are corrupt: {m}");
        let min_delta = self.zigzag()?;
        self.min_delta = i32::try_from(min_delta).map_err(|_| corrupt("a minimum delta over 32 bits"))?;
        let at = self.bit / 8;
        let minis = self.minis;
        let Some(widths) = self.data.get(at as usize..).and_then(|d| d.get(..minis as usize)) else {
            return Err(format!("its {} end too early", self.what));
        };
        self.widths = widths;
        self.bit = (at + minis) * 8;
        let (mut end, mut remaining) = (at + minis, self.left);
        for &w in widths {
            if remaining > 0 {
                end = (u64::from(w).checked_mul(self.per_mini).map(|b| b / 8))
                    .and_then(|b| end.checked_add(b))
                    .ok_or_else(|| corrupt("a block of more than 2^64 bytes"))?;
            }
            remaining = remaining.saturating_sub(self.per_mini);
        }
        self.block_end = end;
        self.mini = 0;
        self.in_mini = self.per_mini;
        Ok(())
    }

    /// The next value, or `None` after the last.
    fn next(&mut self) -> Result<Option<i32>, String> {
        if self.left == 0 {
            return Ok(None);
        }
        if let Some(v) = self.first.take() {
            self.last = v;
            self.left -= 1;
            return Ok(Some(v));
        }
        while self.in_mini == 0 {
            if self.mini + 1 < self.widths.len() {
                self.mini += 1;
                self.in_mini = self.per_mini;
            } else {
                if self.per_mini == 0 {
                    return Err(format!("its {} are corrupt: miniblocks of no values", self.what));
                }
                self.block()?;
            }
        }
        let w = u64::from(self.widths[self.mini]);
        if w > 32 {
            return Err(format!("its {} are corrupt: a bit width of {w}", self.what));
        }
        if self.bit + w > self.data.len() as u64 * 8 {
            return Err(format!("its {} end too early", self.what));
        }
        // The w bits from `bit` on, least significant first: within the 5 bytes from the one `bit` is in.
        let mut word = 0u64;
        for (i, &b) in self.data[(self.bit / 8) as usize..].iter().take(5).enumerate() {
            word |= u64::from(b) << (8 * i);
        }
        let delta = (word >> (self.bit % 8)) & ((1u64 << w) - 1);
        self.bit += w;
        self.in_mini -= 1;
        self.left -= 1;
        self.last = (delta as u32 as i32).wrapping_add(self.min_delta).wrapping_add(self.last);
        Ok(Some(self.last))
    }

    /// Where the stream ends, once read (`get_offset`: its last block's end, or the last byte read).
    fn end(&self) -> usize {
        self.bit.div_ceil(8).max(self.block_end) as usize
    }
}

/// What `r` decompresses to, read up to `cap` bytes.
fn capped(r: impl Read, cap: u64) -> Result<Vec<u8>, String> {
    read_up_to(r, cap).map_err(|e| format!("its compression is corrupt: {e}"))
}

/// What `r` gives, up to `limit` bytes.
pub(crate) fn read_up_to(r: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// The `n` bytes at `at` of `r` (the callers bound `n`: a page, a stream).
pub(crate) fn read_at(r: &mut (impl Read + Seek), at: u64, n: u64) -> Result<Vec<u8>, String> {
    r.seek(SeekFrom::Start(at)).map_err(io)?;
    let mut buf = vec![0; n as usize];
    r.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// A read error, as the checks word it.
pub(crate) fn io(e: std::io::Error) -> String {
    format!("reading failed: {e}")
}

/// What the walk needs of a page header.
#[derive(Default)]
struct PageHeader {
    kind: Option<i32>,
    uncompressed: Option<i32>,
    compressed: Option<i32>,
    /// A dictionary page's `num_values`.
    dictionary_values: Option<i32>,
    v1: Option<V1>,
    v2: Option<V2>,
}

/// A `DataPageHeader`'s fields.
#[derive(Clone, Copy, Default)]
struct V1 {
    num_values: Option<i32>,
    encoding: Option<i32>,
    def_encoding: Option<i32>,
}

/// A `DataPageHeaderV2`'s fields.
#[derive(Clone, Copy, Default)]
struct V2 {
    num_values: Option<i32>,
    num_nulls: Option<i32>,
    encoding: Option<i32>,
    def_bytes: i32,
    rep_bytes: i32,
    is_compressed: Option<bool>,
}

/// Thrift compact protocol, read the way parquet's `ThriftReadInputProtocol` and its page header readers
/// (`PageHeader::read_thrift_without_stats`) read it, so that a header takes the same bytes here as there. Unlike
/// parquet's, it reads at most `left` bytes (the rest of the column chunk: a longer header is refused by parquet
/// too, once read), and a list or map may claim no more elements than there are bytes left, nor more than
/// `elements` in all.
struct Thrift<'a, R> {
    r: &'a mut R,
    left: u64,
    elements: &'a mut u64,
    /// What is read, for errors: "a page header" or "the footer".
    what: &'static str,
    /// The error where it would run past its bytes.
    past: &'static str,
}

const PAST_CHUNK: &str = "a page header runs past the end of its column chunk";
const HEADER: &str = "a page header";

impl<R: Read> Thrift<'_, R> {
    fn byte(&mut self) -> Result<u8, String> {
        if self.left == 0 {
            return Err(self.past.into());
        }
        let mut b = [0];
        self.r.read_exact(&mut b).map_err(io)?;
        self.left -= 1;
        Ok(b[0])
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), String> {
        if n > self.left {
            return Err(self.past.into());
        }
        let got = std::io::copy(&mut (&mut *self.r).take(n), &mut std::io::sink()).map_err(io)?;
        if got < n {
            return Err(format!("the file ends in {}", self.what));
        }
        self.left -= n;
        Ok(())
    }

    /// ULEB128, as parquet reads it (bits shifted out are lost).
    fn vlq(&mut self) -> Result<u64, String> {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).wrapping_shl(shift);
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift = shift.wrapping_add(7);
        }
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.vlq()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(self.zigzag()? as i32)
    }

    /// A field's header: its type and id, or None at the end of a struct.
    fn field(&mut self, last: i16) -> Result<Option<(u8, i16)>, String> {
        let b = self.byte()?;
        let kind = b & 0x0f;
        if kind == 0 {
            return Ok(None);
        }
        if kind > 13 {
            return Err(format!("{} has a field of type {kind}", self.what));
        }
        let delta = i16::from(b >> 4);
        let id = if delta != 0 {
            last.checked_add(delta).ok_or_else(|| format!("{}'s field ids overflow", self.what))?
        } else {
            self.zigzag()? as i16
        };
        Ok(Some((kind, id)))
    }

    /// A list's or a map's element count: refused where its elements could not fit in the bytes left (every element
    /// takes at least a byte in a well-formed header, booleans too) or in what the file's headers may still claim.
    fn claim(&mut self, n: u64) -> Result<(), String> {
        if n > self.left || n > *self.elements {
            return Err(format!(
                "{} claims a list of {n} elements in the {} bytes left{}",
                self.what,
                self.left,
                if self.what == HEADER { " of its column chunk" } else { "" }
            ));
        }
        *self.elements -= n;
        Ok(())
    }

    /// A list's element type, or a map's key or value type, as a field type (1 and 2 both mean boolean).
    fn element(&self, nibble: u8) -> Result<u8, String> {
        match nibble {
            1 | 2 => Ok(1),
            3..=13 => Ok(nibble),
            _ => Err(format!("{} has a list of type {nibble}", self.what)),
        }
    }

    /// A list's or a set's header: its element type and its size, claimed against the bytes left (an empty list,
    /// one zero byte, has no element type: 0, size 0).
    fn list_header(&mut self) -> Result<(u8, u64), String> {
        let h = self.byte()?;
        if h == 0 {
            return Ok((0, 0));
        }
        let element = self.element(h & 0x0f)?;
        let n = match h >> 4 {
            15 => self.vlq().and_then(|n| i32_size(n, "list", self.what))?,
            n => u64::from(n),
        };
        self.claim(n)?;
        Ok((element, n))
    }

    /// parquet's `skip_till_depth`: booleans take no byte, a UUID 16, a double 8, a list or set or map one skip per
    /// element.
    fn skip(&mut self, kind: u8, depth: u32) -> Result<(), String> {
        if depth == 0 {
            return Err(format!("{} nests too deep", self.what));
        }
        match kind {
            1 | 2 => Ok(()),
            3 => self.byte().map(drop),
            4..=6 => self.vlq().map(drop),
            7 => self.skip_bytes(8),
            8 => {
                let n = self.vlq()?;
                self.skip_bytes(n)
            }
            9 | 10 => {
                let (element, n) = self.list_header()?;
                if element != 1 {
                    for _ in 0..n {
                        self.skip(element, depth - 1)?;
                    }
                }
                Ok(())
            }
            11 => {
                let n = self.vlq().and_then(|n| i32_size(n, "map", self.what))?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                let (k, v) = (self.element(kv >> 4)?, self.element(kv & 0x0f)?);
                self.claim(n)?;
                if (k, v) != (1, 1) {
                    for _ in 0..n {
                        self.skip(k, depth - 1)?;
                        self.skip(v, depth - 1)?;
                    }
                }
                Ok(())
            }
            12 => {
                while let Some((kind, _)) = self.field(0)? {
                    self.skip(kind, depth - 1)?;
                }
                Ok(())
            }
            13 => self.skip_bytes(16),
            _ => Err(format!("{} has a field of type {kind}", self.what)),
        }
    }

    /// A struct whose fields `read` reads by id (returning false for an id it does not know, which is skipped).
    fn fields(&mut self, mut read: impl FnMut(&mut Self, u8, i16) -> Result<bool, String>) -> Result<(), String> {
        let mut last = 0;
        while let Some((kind, id)) = self.field(last)? {
            if !read(self, kind, id)? {
                self.skip(kind, SKIP_DEPTH)?;
            }
            last = id;
        }
        Ok(())
    }

    /// `PageHeader`: 1 type, 2 uncompressed_page_size, 3 compressed_page_size, 4 crc, 5 data_page_header, 6
    /// index_page_header, 7 dictionary_page_header, 8 data_page_header_v2. A known field is read as its type
    /// whatever type the field's header names, as parquet does.
    fn page_header(&mut self) -> Result<PageHeader, String> {
        let mut h = PageHeader::default();
        self.fields(|t, _, id| {
            match id {
                1 => h.kind = Some(t.i32()?),
                2 => h.uncompressed = Some(t.i32()?),
                3 => h.compressed = Some(t.i32()?),
                4 => drop(t.i32()?),
                // DataPageHeader (its statistics, 5, are skipped): 1 num_values, 2-4 encodings.
                5 => {
                    let mut v1 = V1::default();
                    t.fields(|t, _, id| {
                        match id {
                            1 => v1.num_values = Some(t.i32()?),
                            2 => v1.encoding = Some(t.i32()?),
                            3 => v1.def_encoding = Some(t.i32()?),
                            4 => drop(t.i32()?),
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    h.v1 = Some(v1);
                }
                // IndexPageHeader: no fields.
                6 => t.fields(|_, _, _| Ok(false))?,
                // DictionaryPageHeader: 1 num_values, 2 encoding, 3 is_sorted.
                7 => t.fields(|t, kind, id| match id {
                    1 => t.i32().map(|n| h.dictionary_values = Some(n)).map(|()| true),
                    2 => t.i32().map(|_| true),
                    3 => bool_field(kind).map(|_| true),
                    _ => Ok(false),
                })?,
                // DataPageHeaderV2: 1-3 counts, 4 encoding, 5-6 level byte lengths, 7 is_compressed (8,
                // statistics, skipped).
                8 => {
                    let mut v2 = V2::default();
                    t.fields(|t, kind, id| {
                        match id {
                            1 => v2.num_values = Some(t.i32()?),
                            2 => v2.num_nulls = Some(t.i32()?),
                            3 => drop(t.i32()?),
                            4 => v2.encoding = Some(t.i32()?),
                            5 => v2.def_bytes = t.i32()?,
                            6 => v2.rep_bytes = t.i32()?,
                            7 => v2.is_compressed = Some(bool_field(kind)?),
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    h.v2 = Some(v2);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(h)
    }
}

/// How parquet reads a field of the footer it knows (whatever type the field's header names).
#[derive(Clone, Copy)]
enum Known {
    Bool,
    Byte,
    /// i16, i32, i64 and enums: a varint.
    Int,
    Double,
    /// binary and string: a length, then the bytes.
    Bytes,
    Struct(&'static [(i16, Known)]),
    List(&'static Known),
    /// One known field (the others skipped), then the end of the struct.
    Union(&'static [(i16, Known)]),
    /// An empty struct: its end.
    Empty,
}

use Known::{Bool, Byte, Bytes, Double, Empty, Int, List, Struct, Union};

/// parquet's `FileMetaData` (`parquet_metadata_from_bytes`; fields 8 and 9 are read only with its `encryption`
/// feature, which is off: they are skipped).
const FILE_METADATA: &[(i16, Known)] = &[
    (1, Int),
    (2, List(&Struct(SCHEMA_ELEMENT))),
    (3, Int),
    (4, List(&Struct(ROW_GROUP))),
    (5, List(&Struct(&[(1, Bytes), (2, Bytes)]))),
    (6, Bytes),
    (7, List(&Union(&[(1, Empty)]))),
];
const SCHEMA_ELEMENT: &[(i16, Known)] = &[
    (1, Int),
    (2, Int),
    (3, Int),
    (4, Bytes),
    (5, Int),
    (6, Int),
    (7, Int),
    (8, Int),
    (9, Int),
    (10, Union(LOGICAL_TYPE)),
];
const TIME: Known = Struct(&[(1, Bool), (2, Union(&[(1, Empty), (2, Empty), (3, Empty)]))]);
const LOGICAL_TYPE: &[(i16, Known)] = &[
    (1, Empty),
    (2, Empty),
    (3, Empty),
    (4, Empty),
    (5, Struct(&[(1, Int), (2, Int)])),
    (6, Empty),
    (7, TIME),
    (8, TIME),
    (10, Struct(&[(1, Byte), (2, Bool)])),
    (11, Empty),
    (12, Empty),
    (13, Empty),
    (14, Empty),
    (15, Empty),
    (16, Struct(&[(1, Byte)])),
    (17, Struct(&[(1, Bytes)])),
    (18, Struct(&[(1, Bytes), (2, Int)])),
];
/// `read_row_group` (6 is skipped).
const ROW_GROUP: &[(i16, Known)] = &[
    (1, List(&Struct(COLUMN_CHUNK))),
    (2, Int),
    (3, Int),
    (4, List(&Struct(&[(1, Int), (2, Bool), (3, Bool)]))),
    (5, Int),
    (7, Int),
];
/// `read_column_chunk` (8 and 9 need the `encryption` feature).
const COLUMN_CHUNK: &[(i16, Known)] =
    &[(1, Bytes), (2, Int), (3, Struct(COLUMN_METADATA)), (4, Int), (5, Int), (6, Int), (7, Int)];
/// `read_column_metadata` (3 and 8 are skipped; 12, 13 and 16 are read with parquet's default options).
const COLUMN_METADATA: &[(i16, Known)] = &[
    (1, Int),
    (2, List(&Int)),
    (4, Int),
    (5, Int),
    (6, Int),
    (7, Int),
    (9, Int),
    (10, Int),
    (11, Int),
    (12, Struct(&[(1, Bytes), (2, Bytes), (3, Int), (4, Int), (5, Bytes), (6, Bytes), (7, Bool), (8, Bool)])),
    (13, List(&Struct(&[(1, Int), (2, Int), (3, Int)]))),
    (14, Int),
    (15, Int),
    (16, Struct(&[(1, Int), (2, List(&Int)), (3, List(&Int))])),
    (
        17,
        Struct(&[
            (
                1,
                Struct(&[
                    (1, Double),
                    (2, Double),
                    (3, Double),
                    (4, Double),
                    (5, Double),
                    (6, Double),
                    (7, Double),
                    (8, Double),
                ]),
            ),
            (2, List(&Int)),
        ]),
    ),
];

/// The file's footer (thrift `FileMetaData`) can be read by parquet with bounded work and memory: it is walked as
/// parquet reads it, known fields as parquet reads them and unknown ones as it skips them, and every list, set and
/// map must fit in the footer's bytes left (parquet skips an unknown list of booleans one element at a time
/// without reading a byte, and reserves room for as many row groups as the footer claims: 2^31 - 1 of them in 20
/// bytes aborted the process). `Ok` too where the file is too short to hold a footer, which parquet reports
/// itself.
pub(crate) fn check_footer(f: &File) -> Result<(), String> {
    let len = f.metadata().map_err(io)?.len();
    let mut r = BufReader::new(f);
    if len < 8 {
        return Ok(());
    }
    r.seek(SeekFrom::Start(len - 8)).map_err(io)?;
    let mut tail = [0; 8];
    r.read_exact(&mut tail).map_err(io)?;
    let n = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if &tail[4..] != b"PAR1" || n > len - 8 {
        return Ok(());
    }
    r.seek(SeekFrom::Start(len - 8 - n)).map_err(io)?;
    let mut footer = vec![0; n as usize];
    r.read_exact(&mut footer).map_err(io)?;
    let mut elements = n;
    let mut bytes = &footer[..];
    let mut t =
        Thrift { r: &mut bytes, left: n, elements: &mut elements, what: FOOTER, past: "its footer is cut short" };
    t.known(Struct(FILE_METADATA), 12, SKIP_DEPTH).map_err(|m| m.replacen(FOOTER, "its footer", 1))
}

const FOOTER: &str = "the footer";

impl<R: Read> Thrift<'_, R> {
    /// A field parquet knows, read as `known` (`kind` is the type its header names, or a list's element type).
    fn known(&mut self, known: Known, kind: u8, depth: u32) -> Result<(), String> {
        if depth == 0 {
            return Err(format!("{} nests too deep", self.what));
        }
        match known {
            Bool if matches!(kind, 1 | 2) => Ok(()),
            Bool => Err(format!("{} has a boolean field of type {kind}", self.what)),
            Byte => self.byte().map(drop),
            Int => self.vlq().map(drop),
            Double => self.skip_bytes(8),
            Bytes => {
                let n = self.vlq()?;
                self.skip_bytes(n)
            }
            Struct(fields) => self.fields(|t, kind, id| match fields.iter().find(|(i, _)| *i == id) {
                Some(&(_, k)) => t.known(k, kind, depth - 1).map(|()| true),
                None => Ok(false),
            }),
            List(element) => {
                let (kind, n) = self.list_header()?;
                for _ in 0..n {
                    self.known(*element, kind, depth - 1)?;
                }
                Ok(())
            }
            Union(variants) => {
                let Some((kind, id)) = self.field(0)? else {
                    return Err(format!("{} has an empty union", self.what));
                };
                match variants.iter().find(|(i, _)| *i == id) {
                    Some(&(_, k)) => self.known(k, kind, depth - 1)?,
                    None => self.skip(kind, SKIP_DEPTH)?,
                }
                match self.field(id)? {
                    None => Ok(()),
                    Some(_) => Err(format!("{} has a union of more than one field", self.what)),
                }
            }
            Empty => match self.byte()? {
                0 => Ok(()),
                _ => Err(format!("{} has an empty struct with fields", self.what)),
            },
        }
    }
}

/// A list's or a map's size, which parquet refuses above `i32::MAX`.
fn i32_size(n: u64, kind: &str, what: &str) -> Result<u64, String> {
    if n > i32::MAX as u64 {
        return Err(format!("{what} has a {kind} of {n} elements"));
    }
    Ok(n)
}

/// A bool struct field's value, which its header's type carries (parquet refuses any other type there).
fn bool_field(kind: u8) -> Result<bool, String> {
    match kind {
        1 => Ok(true),
        2 => Ok(false),
        _ => Err(format!("a page header has a boolean field of type {kind}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    fn header(bytes: &[u8], elements: u64) -> Result<(PageHeader, u64), String> {
        let mut r = bytes;
        let mut elements = elements;
        let mut t =
            Thrift { r: &mut r, left: bytes.len() as u64, elements: &mut elements, what: HEADER, past: PAST_CHUNK };
        let h = t.page_header()?;
        Ok((h, bytes.len() as u64 - t.left))
    }

    /// A dictionary page header as parquet writes it: type 2, 30 bytes, 32 compressed, 2 values, PLAIN.
    const DICT: [u8; 14] = [0x15, 0x04, 0x15, 0x3c, 0x15, 0x40, 0x4c, 0x15, 0x04, 0x15, 0x00, 0x12, 0x00, 0x00];

    #[test]
    fn a_page_header_reads_as_parquet_reads_it() {
        let (h, n) = header(&DICT, 0).unwrap();
        assert_eq!((h.kind, h.uncompressed, h.compressed, n), (Some(2), Some(30), Some(32), 14));
        // The same with an unknown field 9 (a 3-element list of i32) before the end; a V2 header (field 8).
        let mut b = DICT[..13].to_vec();
        b.extend([0x29, 0x35, 0x02, 0x04, 0x06, 0x00]);
        let (h, n) = header(&b, 3).unwrap();
        assert_eq!((h.kind, n), (Some(2), 19));
        let v2 = [0x15, 0x06, 0x15, 0x08, 0x15, 0x08, 0x5c, 0x15, 0x02, 0x15, 0x00, 0x15, 0x02, 0x15, 0x00];
        let mut b = v2.to_vec();
        b.extend([0x15, 0x02, 0x15, 0x04, 0x12, 0x00, 0x00]);
        let (h, _) = header(&b, 0).unwrap();
        let v2 = h.v2.unwrap();
        assert_eq!((v2.def_bytes, v2.rep_bytes, v2.is_compressed), (1, 2, Some(false)));
    }

    #[test]
    fn lists_must_fit_in_the_header_and_the_file() {
        // Field 9: a list of 2^31 - 1 booleans, which parquet skips one by one without reading a byte.
        let mut b = DICT[..13].to_vec();
        b.extend([0x29, 0xf1, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00]);
        let e = header(&b, u64::MAX).err().unwrap();
        assert!(e.contains("claims a list of 2147483647 elements in the 1 bytes left"), "{e}");
        // A map of as many booleans, a list of UUIDs.
        let mut b = DICT[..13].to_vec();
        b.extend([0x2b, 0xff, 0xff, 0xff, 0xff, 0x07, 0x11, 0x00]);
        assert!(header(&b, u64::MAX).err().unwrap().contains("claims a list of 2147483647"));
        let mut b = DICT[..13].to_vec();
        b.extend([0x29, 0xfd, 0x80, 0x80, 0x80, 0x2a, 0x00]);
        assert!(header(&b, u64::MAX).err().unwrap().contains("claims a list of 88080384"));
        // Three booleans fit in the bytes left, but not in what the file's headers may still claim.
        let mut b = DICT[..13].to_vec();
        b.extend([0x29, 0x31, 0x00, 0x00, 0x00, 0x00]);
        assert!(header(&b, 3).is_ok());
        assert!(header(&b, 2).err().unwrap().contains("claims a list of 3"));
    }

    /// A Parquet file of `footer` (no pages).
    fn footer_file(footer: &[u8]) -> File {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[b"PAR1", footer, &(footer.len() as u32).to_le_bytes(), b"PAR1"].concat()).unwrap();
        f.rewind().unwrap();
        f
    }

    fn refused(footer: &[u8]) -> String {
        refused_file(footer_file(footer))
    }

    /// parquet (59.3.2, release build, run alone on a loaded machine) skipped an unknown footer field holding a list
    /// of 2^31 - 1 booleans one element at a time (20 s for these 8 bytes), and reserved room for as many row groups
    /// as the footer claims before reading one: the 20-byte footer below made it ask for 206,158,430,112 bytes and
    /// abort the process. Both are refused first, naming the file.
    #[test]
    fn footer_lists_must_fit_in_the_footer() {
        let unknown = [0xa9, 0xf1, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00];
        let m = refused(&unknown);
        assert_eq!(
            m,
            "is not a readable Parquet file: its footer claims a list of 2147483647 elements in the 1 bytes left"
        );
        // version 1, a schema of one group of no children, 0 rows, then the row groups.
        let row_groups = [
            0x15, 0x02, 0x19, 0x1c, 0x48, 0x01, b'a', 0x15, 0x00, 0x00, 0x16, 0x00, 0x19, 0xfc, 0xff, 0xff, 0xff, 0xff,
            0x07, 0x00,
        ];
        let m = refused(&row_groups);
        assert!(m.ends_with("its footer claims a list of 2147483647 elements in the 1 bytes left"), "{m}");
        // Known fields are read as parquet reads them, whatever type their header names: field 2 (the schema) said
        // to be an i32 is still a list.
        let mistyped = [0x15, 0x02, 0x15, 0xfc, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00];
        assert!(check_footer(&footer_file(&mistyped)).unwrap_err().contains("claims a list of 2147483647"));
        // Within bounds: an unknown list of 3 i32; a file too short for a footer is parquet's to refuse.
        let small = [0xa9, 0x35, 0x02, 0x04, 0x06, 0x00];
        assert_eq!(check_footer(&footer_file(&small)), Ok(()));
        assert_eq!(check_footer(&tempfile::tempfile().unwrap()), Ok(()));
    }

    /// A file of `rows` rows whose keys are all `key`, written by parquet's writer (dictionary-encoded unless not).
    fn one_key_file(key: &str, rows: usize, dictionary: bool, codec: Compression) -> File {
        use arrow_array::{ArrayRef, RecordBatch, StringArray};
        use parquet::file::properties::WriterProperties;
        let batch = RecordBatch::try_from_iter([
            ("bucket", std::sync::Arc::new(StringArray::from(vec!["bkt"; rows])) as ArrayRef),
            ("key", std::sync::Arc::new(StringArray::from(vec![key; rows])) as ArrayRef),
        ])
        .unwrap();
        let props = WriterProperties::builder().set_dictionary_enabled(dictionary).set_compression(codec).build();
        let f = tempfile::tempfile().unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f.try_clone().unwrap(), batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        f
    }

    /// A dictionary entry over 4 KiB is refused (a 1 MiB one repeated over a batch of 8,192 rows took 8 GiB); at
    /// 4 KiB, or stored as it is in every row (its bytes are then in the file), it is read.
    #[test]
    fn dictionary_values_are_bounded() {
        let zstd = Compression::ZSTD(Default::default());
        for codec in [Compression::UNCOMPRESSED, Compression::SNAPPY, Compression::GZIP(Default::default()), zstd] {
            let over = "k".repeat(4097);
            let e = crate::parquet_rows("inv/f.parquet", one_key_file(&over, 100, true, codec), None).err().unwrap();
            let e = e.to_string();
            assert!(e.starts_with("inv/f.parquet: is not a readable Parquet file: row group 0, column key: "), "{e}");
            assert!(e.ends_with("it holds a value of 4097 bytes; at most 4096 are read"), "{codec:?}: {e}");
            // Read: every row decoded, then refused as a row (an S3 key is at most 1 KiB).
            for (key, dictionary) in [("k".repeat(4096), true), (over, false)] {
                let rows = crate::parquet_rows("f", one_key_file(&key, 100, dictionary, codec), None).unwrap();
                let too_long = format!("the key is {} bytes long; at most 1024 are allowed", key.len());
                assert_eq!(rows.filter(|r| r.as_ref().unwrap_err().message == too_long).count(), 100, "{codec:?}");
            }
        }
    }

    /// A file of `keys` in bucket `bkt`, with a version id column that is null every third row (an optional
    /// column with nulls), written by parquet's writer with `props`.
    fn keys_file(keys: &[String], props: parquet::file::properties::WriterProperties) -> File {
        use arrow_array::{ArrayRef, RecordBatch, StringArray};
        use std::sync::Arc;
        let versions: Vec<Option<String>> = (0..keys.len()).map(|i| (i % 3 != 0).then(|| format!("v{i}"))).collect();
        let batch = RecordBatch::try_from_iter([
            ("bucket", Arc::new(StringArray::from(vec!["bkt"; keys.len()])) as ArrayRef),
            ("key", Arc::new(StringArray::from_iter_values(keys)) as ArrayRef),
            ("version_id", Arc::new(StringArray::from(versions)) as ArrayRef),
        ])
        .unwrap();
        let f = tempfile::tempfile().unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f.try_clone().unwrap(), batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        f
    }

    /// Writer properties: `encoding` without a dictionary (with one where `None`), pages of at most 4 KiB and 700
    /// rows, row groups of 2,000 rows.
    fn props(
        version: parquet::file::properties::WriterVersion,
        codec: Compression,
        encoding: Option<parquet::basic::Encoding>,
    ) -> parquet::file::properties::WriterProperties {
        let b = parquet::file::properties::WriterProperties::builder()
            .set_writer_version(version)
            .set_compression(codec)
            .set_data_page_size_limit(4096)
            .set_data_page_row_count_limit(700)
            .set_write_batch_size(100)
            .set_max_row_group_row_count(Some(2000))
            .set_dictionary_enabled(encoding.is_none());
        match encoding {
            Some(e) => b.set_encoding(e).build(),
            None => b.build(),
        }
    }

    fn codecs() -> [Compression; 4] {
        [Compression::UNCOMPRESSED, Compression::SNAPPY, Compression::GZIP(Default::default()), zstd()]
    }

    fn zstd() -> Compression {
        Compression::ZSTD(Default::default())
    }

    /// Files as parquet's writer writes them, with every encoding of string values (PLAIN, DELTA_LENGTH_BYTE_ARRAY,
    /// DELTA_BYTE_ARRAY, dictionary), every codec the reader is built with, V1 and V2 pages, an optional column
    /// with nulls, several pages and row groups: every row reads back, and the walk finds exactly the bytes of the
    /// values (so the DELTA streams decode as parquet encodes them).
    #[test]
    fn real_files_of_every_encoding_still_read() {
        use parquet::basic::Encoding;
        use parquet::file::properties::WriterVersion;
        let keys = sample_keys(5000, 1234, 4321);
        let totals = value_bytes(&keys);
        let encodings =
            [None, Some(Encoding::PLAIN), Some(Encoding::DELTA_LENGTH_BYTE_ARRAY), Some(Encoding::DELTA_BYTE_ARRAY)];
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            for codec in codecs() {
                for encoding in encodings {
                    let case = format!("{version:?} {codec:?} {encoding:?}");
                    let f = keys_file(&keys, props(version, codec, encoding));
                    let builder =
                        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f.try_clone().unwrap())
                            .unwrap();
                    let meta = builder.metadata();
                    assert!(meta.num_row_groups() >= 3, "{case}");
                    let key = meta.row_group(0).column(1);
                    if let Some(e) = encoding {
                        assert!(key.encodings().any(|x| x == e), "{case}: {:?}", key.encodings().collect::<Vec<_>>());
                    }
                    let len = f.metadata().unwrap().len();
                    let windows = pages(&f, len, meta, &[0, 1, 2]).unwrap_or_else(|e| panic!("{case}: {e}"));
                    if encoding.is_some() {
                        assert_eq!(windows.iter().map(|w| w.total).collect::<Vec<_>>(), totals, "{case}");
                    }
                    let rows: Vec<_> = crate::parquet_rows("f", f, None).unwrap().collect();
                    assert_eq!(rows.len(), keys.len(), "{case}");
                    for (i, row) in rows.into_iter().enumerate() {
                        let row = row.unwrap_or_else(|e| panic!("{case}: {}", e.message));
                        assert_eq!((row.bucket.as_str(), &row.key), ("bkt", &keys[i]), "{case}");
                        assert_eq!(row.version_id, (i % 3 != 0).then(|| format!("v{i}")), "{case}");
                    }
                }
            }
        }
    }

    /// `n` keys of 6 to 73 bytes, with one of 1,024 bytes at `long` and one of 512 two-byte characters at
    /// `accented` (as `tests/data/pyarrow/write.py` writes them).
    fn sample_keys(n: usize, long: usize, accented: usize) -> Vec<String> {
        let mut keys: Vec<String> =
            (0..n).map(|i| format!("dir/{:02}/obj-{i}{}", i % 37, "x".repeat(i * 7 % 61))).collect();
        keys[long] = "k".repeat(1024);
        keys[accented] = "é".repeat(512);
        keys
    }

    /// The bytes of the bucket, key and version id values of a file of `keys` (`keys_file`'s and write.py's
    /// columns: bucket `bkt`, version id `v<i>`, null every third row).
    fn value_bytes(keys: &[String]) -> Vec<u64> {
        let version_bytes = (0..keys.len()).filter(|i| i % 3 != 0).map(|i| format!("v{i}").len() as u64).sum();
        vec![3 * keys.len() as u64, keys.iter().map(|k| k.len() as u64).sum(), version_bytes]
    }

    /// The files Arrow C++ wrote (`tests/data/pyarrow`, read in `tests/columnar.rs`): the walk decodes their
    /// PLAIN and DELTA pages to exactly their values' bytes (none skipped as unreadable).
    #[test]
    fn arrow_cpp_pages_decode_to_their_values() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyarrow");
        let totals = value_bytes(&sample_keys(1500, 234, 1345));
        let mut checked = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".parquet") || name.contains("dictionary") {
                continue;
            }
            let f = File::open(&path).unwrap();
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f.try_clone().unwrap()).unwrap();
            let windows = pages(&f, f.metadata().unwrap().len(), builder.metadata(), &[0, 1, 2]).unwrap();
            assert_eq!(windows.iter().map(|w| w.total).collect::<Vec<_>>(), totals, "{name}");
            checked += 1;
        }
        assert_eq!(checked, 6);
    }

    fn refused_file(f: File) -> String {
        match crate::parquet_rows("inv/f.parquet", f, None).err().expect("refused") {
            crate::InventoryError::DataFile { file, message } => {
                assert_eq!(file, "inv/f.parquet");
                message
            }
            other => panic!("{other}"),
        }
    }

    /// A value over 64 KiB is refused in every encoding, from a compressed page of a few hundred bytes too (parquet
    /// inflated a page to 16 MiB for one value); a DELTA_BYTE_ARRAY page that repeats a 60,000-byte prefix in
    /// every value, and PLAIN values of 60,000 bytes, are refused once 8,192 consecutive values (a batch, across
    /// pages and row groups) take more than 32 MiB.
    #[test]
    fn byte_array_values_are_bounded() {
        use parquet::basic::Encoding;
        use parquet::file::properties::WriterVersion;
        let zstd = zstd();
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            for encoding in [Encoding::PLAIN, Encoding::DELTA_LENGTH_BYTE_ARRAY, Encoding::DELTA_BYTE_ARRAY] {
                for codec in codecs() {
                    let case = format!("{version:?} {codec:?} {encoding:?}");
                    let f = keys_file(&["k".repeat(65537)], props(version, codec, Some(encoding)));
                    if codec == zstd {
                        assert!(f.metadata().unwrap().len() < 1500, "{case}: {}", f.metadata().unwrap().len());
                    }
                    let m = refused_file(f);
                    assert!(
                        m.starts_with("is not a readable Parquet file: row group 0, column key: the page at "),
                        "{m}"
                    );
                    assert!(m.ends_with(": it holds a value of 65537 bytes; at most 65536 are read"), "{case}: {m}");
                }
                // At 64 KiB: read (and refused as a row: an S3 key is at most 1 KiB).
                let f = keys_file(&["k".repeat(65536)], props(version, zstd, Some(encoding)));
                let rows: Vec<_> = crate::parquet_rows("f", f, None).unwrap().collect();
                assert_eq!(
                    rows[0].as_ref().unwrap_err().message,
                    "the key is 65536 bytes long; at most 1024 are allowed"
                );
            }
        }
        for encoding in [Encoding::DELTA_BYTE_ARRAY, Encoding::PLAIN] {
            let keys = vec!["k".repeat(60_000); 600];
            let f = keys_file(&keys, props(WriterVersion::PARQUET_2_0, zstd, Some(encoding)));
            let m = refused_file(f);
            assert!(
                m.ends_with(": it gives 560 consecutive values 33600000 bytes; at most 33554432 are read per batch"),
                "{encoding:?}: {m}"
            );
            // 559 of them fit in a batch.
            let f = keys_file(&keys[..559], props(WriterVersion::PARQUET_2_0, zstd, Some(encoding)));
            assert_eq!(crate::parquet_rows("f", f, None).unwrap().count(), 559);
        }
    }

    /// A column's pages may claim no more values than their row group has rows (a flat column has one per row):
    /// the values a DELTA stream may claim are bounded by its page's, so this bounds the lengths decoded, by
    /// parquet and here, by the file's rows. The same file with its data pages claiming 101 values for 100 rows
    /// (patched in place: `0x2c 0x15 0xc8 0x01` is a data page header's num_values, 100) is refused.
    #[test]
    fn pages_claim_no_more_values_than_their_row_group_has_rows() {
        use std::io::{Read, Write};
        let mut f = one_key_file("k", 100, false, Compression::UNCOMPRESSED);
        let mut bytes = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut bytes).unwrap();
        let at: Vec<usize> =
            bytes.windows(4).enumerate().filter(|(_, w)| *w == [0x2c, 0x15, 0xc8, 0x01]).map(|(i, _)| i).collect();
        assert_eq!(at.len(), 2, "one data page per column");
        let mut patched = bytes.clone();
        for i in at {
            patched[i + 2] = 0xca;
        }
        let file = |b: &[u8]| {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(b).unwrap();
            f.rewind().unwrap();
            f
        };
        assert_eq!(crate::parquet_rows("f", file(&bytes), None).unwrap().count(), 100);
        let m = refused_file(file(&patched));
        assert!(
            m.ends_with(
                "row group 0, column bucket: its pages claim 101 values by the page at 24, its row group has 100 rows"
            ),
            "{m}"
        );
    }

    fn uleb(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                return out.push(b);
            }
            out.push(b | 0x80);
        }
    }

    /// A DELTA_BINARY_PACKED stream of blocks of 128 values in 4 miniblocks: `total` values, the first `first`,
    /// then blocks of (minimum delta, bit widths, packed deltas).
    fn delta_stream(total: u64, first: i64, blocks: &[(i64, [u8; 4], &[u8])]) -> Vec<u8> {
        let zigzag = |v: i64| ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        for v in [128, 4, total, zigzag(first)] {
            uleb(v, &mut out);
        }
        for (min, widths, bits) in blocks {
            uleb(zigzag(*min), &mut out);
            out.extend(widths);
            out.extend(*bits);
        }
        out
    }

    fn delta_values(data: &[u8]) -> Result<(Vec<i32>, usize), String> {
        let mut d = Delta::new(data, 1000, "lengths")?;
        let mut v = Vec::new();
        while let Some(n) = d.next()? {
            v.push(n);
        }
        Ok((v, d.end()))
    }

    #[test]
    fn delta_streams_decode_as_parquet_decodes_them() {
        // Bit width 0: the minimum delta each time.
        let s = delta_stream(5, 10, &[(2, [0; 4], &[])]);
        assert_eq!(delta_values(&s), Ok((vec![10, 12, 14, 16, 18], s.len())));
        // 8 bits in the first miniblock (32 bytes, 4 of them used; the stream ends at the block's end), none in
        // the others (not read: no values left).
        let mut bits = [0u8; 32];
        bits[..4].copy_from_slice(&[1, 0, 3, 255]);
        let s = delta_stream(5, 10, &[(-1, [8, 9, 9, 9], &bits)]);
        assert_eq!(delta_values(&s), Ok((vec![10, 10, 9, 11, 265], s.len())));
        // 32 bits wrap, as parquet adds them.
        let mut bits = [0u8; 128];
        bits[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let s = delta_stream(2, i64::from(i32::MIN), &[(0, [32, 0, 0, 0], &bits)]);
        assert_eq!(delta_values(&s), Ok((vec![i32::MIN, i32::MAX], s.len())));
        // One value: the header only.
        let s = delta_stream(1, 7, &[]);
        assert_eq!(delta_values(&s), Ok((vec![7], s.len())));
        // Refused as parquet refuses them: bits past the end, a width over 32, a value over 32 bits.
        let s = delta_stream(5, 10, &[(-1, [8, 0, 0, 0], &[1, 2])]);
        assert_eq!(delta_values(&s).unwrap_err(), "its lengths end too early");
        let s = delta_stream(5, 10, &[(-1, [33, 0, 0, 0], &[0; 200])]);
        assert_eq!(delta_values(&s).unwrap_err(), "its lengths are corrupt: a bit width of 33");
        let s = delta_stream(5, 1 << 40, &[]);
        assert_eq!(delta_values(&s).unwrap_err(), "its lengths are corrupt: a first value over 32 bits");
    }

    /// parquet decodes a DELTA page's lengths whole into a `Vec<i32>` when it opens the page: a few bytes claiming
    /// 2^31 - 1 lengths of bit width 0 made it allocate 8 GiB (2^33 of them, more than memory: an abort). A stream
    /// holds no more values than its page, and at most 2^22.
    #[test]
    fn delta_streams_hold_no_more_values_than_their_page() {
        let s = delta_stream(i32::MAX as u64, 0, &[(0, [0; 4], &[])]);
        let mut w = Window::of_batches();
        let e = values(DELTA_LENGTH_BYTE_ARRAY, &s, i32::MAX as u64, 0, &mut w).unwrap_err();
        assert_eq!(e, "its DELTA_LENGTH_BYTE_ARRAY lengths claim 2147483647 values; at most 4194304 are read per page");
        let s = delta_stream(3, 0, &[(0, [0; 4], &[])]);
        let e = values(DELTA_LENGTH_BYTE_ARRAY, &s, 2, 2, &mut w).unwrap_err();
        assert_eq!(e, "its DELTA_LENGTH_BYTE_ARRAY lengths claim 3 values, its header 2");
        assert_eq!(values(DELTA_LENGTH_BYTE_ARRAY, &s, 3, 3, &mut w), Ok(()));
    }

    /// DELTA_BYTE_ARRAY and DELTA_LENGTH_BYTE_ARRAY lengths: a prefix longer than the value before it (parquet
    /// would take the whole value before it), a negative suffix or length, a length over 64 KiB: refused.
    #[test]
    fn delta_lengths_are_bounded() {
        let check = |encoding: i32, data: &[u8]| {
            let mut w = Window::of_batches();
            values(encoding, data, 10, 10, &mut w).map(|()| w.total)
        };
        // Values "abc" then "abcdef" (a prefix of 3, a suffix of 3).
        let page = |second_prefix: i64, second_suffix: i64| {
            let mut p = delta_stream(2, 0, &[(second_prefix, [0; 4], &[])]);
            p.extend(delta_stream(2, 3, &[(second_suffix - 3, [0; 4], &[])]));
            p.extend(b"abcdef");
            p
        };
        assert_eq!(check(DELTA_BYTE_ARRAY, &page(3, 3)), Ok(9));
        assert_eq!(
            check(DELTA_BYTE_ARRAY, &page(4, 3)).unwrap_err(),
            "a DELTA_BYTE_ARRAY value takes a prefix of 4 bytes of a value of 3 bytes"
        );
        assert_eq!(
            check(DELTA_BYTE_ARRAY, &page(-1, 3)).unwrap_err(),
            "a DELTA_BYTE_ARRAY value takes a prefix of -1 bytes of a value of 3 bytes"
        );
        assert_eq!(
            check(DELTA_BYTE_ARRAY, &page(3, -2)).unwrap_err(),
            "a DELTA_BYTE_ARRAY value has a suffix of -2 bytes"
        );
        // Three prefixes, two suffixes.
        let mut p = delta_stream(3, 0, &[(0, [0; 4], &[])]);
        p.extend(delta_stream(2, 3, &[(0, [0; 4], &[])]));
        assert_eq!(
            check(DELTA_BYTE_ARRAY, &p).unwrap_err(),
            "it holds 3 DELTA_BYTE_ARRAY prefix lengths and 2 suffix lengths"
        );
        let mut p = delta_stream(2, 3, &[(65534, [0; 4], &[])]);
        p.extend([b'x'; 3]);
        assert_eq!(
            check(DELTA_LENGTH_BYTE_ARRAY, &p).unwrap_err(),
            "it holds a value of 65537 bytes; at most 65536 are read"
        );
        let p = delta_stream(2, 3, &[(-5, [0; 4], &[])]);
        assert_eq!(check(DELTA_LENGTH_BYTE_ARRAY, &p).unwrap_err(), "it holds a value of -2 bytes");
    }

    #[test]
    fn a_header_may_not_run_past_its_chunk() {
        assert_eq!(header(&DICT[..13], 0).err().unwrap(), PAST_CHUNK);
        // A binary field whose length is past the end.
        let mut b = DICT[..13].to_vec();
        b.extend([0x28, 0x7f, 0x00]);
        assert_eq!(header(&b, 0).err().unwrap(), PAST_CHUNK);
    }
}

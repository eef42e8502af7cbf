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

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use parquet::basic::{Compression, Type as PhysicalType};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};

/// The largest page read, compressed or not (writers cut pages at about 1 MiB; ORC chunks have the same cap).
pub(crate) const MAX_PAGE_BYTES: u64 = 16 << 20;
/// The most rows a file may claim per byte of its size. A real inventory row takes bytes for its distinct key;
/// gzip, at best about 1,000 to 1, and a 4-byte CSV line give a CSV data file about 250 rows per byte.
pub(crate) const MAX_ROWS_PER_BYTE: u64 = 1024;
/// parquet's depth limit when it skips a field (`DEFAULT_SKIP_DEPTH`).
const SKIP_DEPTH: u32 = 64;
/// Page types (`PageType`).
const INDEX_PAGE: i32 = 1;
const DICTIONARY_PAGE: i32 = 2;
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
    let mut walk = Walk { r: BufReader::new(f), len, chunk_bytes: 0, elements: len };
    for (g, rg) in meta.row_groups().iter().enumerate() {
        for &leaf in leaves {
            let col = rg.column(leaf);
            walk.chunk(col).map_err(|m| format!("row group {g}, column {}: {m}", col.column_path().string()))?;
        }
    }
    Ok(())
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
    fn chunk(&mut self, col: &ColumnChunkMetaData) -> Result<(), String> {
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
            if kind == DICTIONARY_PAGE && col.column_type() == PhysicalType::BYTE_ARRAY {
                let values = h.dictionary_values.unwrap_or(0);
                self.dictionary_page(at, stored, raw, values, col.compression())
                    .map_err(|m| format!("the dictionary page at {at}: {m}"))?;
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
        self.r.seek(SeekFrom::Start(at)).map_err(io)?;
        let mut page = vec![0; stored as usize];
        self.r.read_exact(&mut page).map_err(io)?;
        let cap = raw + 1;
        let plain = match codec {
            Compression::UNCOMPRESSED => page,
            Compression::SNAPPY => match snap::raw::decompress_len(&page) {
                Ok(n) if n as u64 <= raw => snap::raw::Decoder::new().decompress_vec(&page).map_err(|e| e.to_string()),
                Ok(n) => Err(format!("it says it holds {n} bytes, its header {raw}")),
                Err(e) => Err(e.to_string()),
            }?,
            Compression::GZIP(_) => capped(flate2::read::MultiGzDecoder::new(&page[..]), cap)?,
            Compression::ZSTD(_) => {
                let mut d = zstd::stream::Decoder::new(&page[..]).map_err(|e| e.to_string())?;
                d.window_log_max(24).map_err(|e| e.to_string())?;
                capped(d, cap)?
            }
            _ => return Ok(()),
        };
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

/// What `r` decompresses to, read up to `cap` bytes.
fn capped(r: impl Read, cap: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(cap).read_to_end(&mut out).map_err(|e| format!("its compression is corrupt: {e}"))?;
    Ok(out)
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
    v2: Option<V2>,
}

#[derive(Clone, Copy, Default)]
struct V2 {
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
                5 => t.fields(|t, _, id| {
                    if !(1..=4).contains(&id) {
                        return Ok(false);
                    }
                    t.i32()?;
                    Ok(true)
                })?,
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
                            1..=4 => drop(t.i32()?),
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
        match crate::parquet_rows("inv/data/f.parquet", footer_file(footer), None).err().expect("refused") {
            crate::InventoryError::DataFile { file, message } => {
                assert_eq!(file, "inv/data/f.parquet");
                message
            }
            other => panic!("{other}"),
        }
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

    #[test]
    fn a_header_may_not_run_past_its_chunk() {
        assert_eq!(header(&DICT[..13], 0).err().unwrap(), PAST_CHUNK);
        // A binary field whose length is past the end.
        let mut b = DICT[..13].to_vec();
        b.extend([0x28, 0x7f, 0x00]);
        assert_eq!(header(&b, 0).err().unwrap(), PAST_CHUNK);
    }
}

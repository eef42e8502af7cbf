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
            let mut t = Thrift { r: &mut self.r, left: end - at, elements: &mut self.elements };
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
            at += stored;
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

fn io(e: std::io::Error) -> String {
    format!("reading failed: {e}")
}

/// What the walk needs of a page header.
#[derive(Default)]
struct PageHeader {
    kind: Option<i32>,
    uncompressed: Option<i32>,
    compressed: Option<i32>,
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
}

const PAST_CHUNK: &str = "a page header runs past the end of its column chunk";

impl<R: Read> Thrift<'_, R> {
    fn byte(&mut self) -> Result<u8, String> {
        if self.left == 0 {
            return Err(PAST_CHUNK.into());
        }
        let mut b = [0];
        self.r.read_exact(&mut b).map_err(io)?;
        self.left -= 1;
        Ok(b[0])
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), String> {
        if n > self.left {
            return Err(PAST_CHUNK.into());
        }
        let got = std::io::copy(&mut (&mut *self.r).take(n), &mut std::io::sink()).map_err(io)?;
        if got < n {
            return Err("the file ends in a page header".into());
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
            return Err(format!("a page header has a field of type {kind}"));
        }
        let delta = i16::from(b >> 4);
        let id = if delta != 0 {
            last.checked_add(delta).ok_or("a page header's field ids overflow")?
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
                "a page header claims a list of {n} elements in the {} bytes left of its column chunk",
                self.left
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
            _ => Err(format!("a page header has a list of type {nibble}")),
        }
    }

    /// parquet's `skip_till_depth`: booleans take no byte, a UUID 16, a double 8, a list or set or map one skip per
    /// element.
    fn skip(&mut self, kind: u8, depth: u32) -> Result<(), String> {
        if depth == 0 {
            return Err("a page header nests too deep".into());
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
                let h = self.byte()?;
                if h == 0 {
                    return Ok(());
                }
                let element = self.element(h & 0x0f)?;
                let n = match h >> 4 {
                    15 => self.vlq().and_then(|n| i32_size(n, "list"))?,
                    n => u64::from(n),
                };
                self.claim(n)?;
                if element != 1 {
                    for _ in 0..n {
                        self.skip(element, depth - 1)?;
                    }
                }
                Ok(())
            }
            11 => {
                let n = self.vlq().and_then(|n| i32_size(n, "map"))?;
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
            _ => Err(format!("a page header has a field of type {kind}")),
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
                    1 | 2 => t.i32().map(|_| true),
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

/// A list's or a map's size, which parquet refuses above `i32::MAX`.
fn i32_size(n: u64, what: &str) -> Result<u64, String> {
    if n > i32::MAX as u64 {
        return Err(format!("a page header has a {what} of {n} elements"));
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

    fn header(bytes: &[u8], elements: u64) -> Result<(PageHeader, u64), String> {
        let mut r = bytes;
        let mut elements = elements;
        let mut t = Thrift { r: &mut r, left: bytes.len() as u64, elements: &mut elements };
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

    #[test]
    fn a_header_may_not_run_past_its_chunk() {
        assert_eq!(header(&DICT[..13], 0).err().unwrap(), PAST_CHUNK);
        // A binary field whose length is past the end.
        let mut b = DICT[..13].to_vec();
        b.extend([0x28, 0x7f, 0x00]);
        assert_eq!(header(&b, 0).err().unwrap(), PAST_CHUNK);
    }
}

//! Fuzz harness of the CSV manifest reader (`S3BatchOperations_CSV_20180820`), as Preparing reads a manifest into
//! chunks and a worker reads a chunk back. The `csv_manifest` target under `fuzz/` calls it, and so does
//! `crates/s3batch/tests/fuzz_replay.rs` on every committed corpus and crash input.

use s3batch_core::manifest::{CsvLayout, FieldName, csv_reader};
use tokio::sync::mpsc;

use crate::prepare::parse_into_chunks;

/// The `Spec.Fields` layouts tried (the first byte of an input picks one, and the chunk size).
const LAYOUTS: [&[FieldName]; 4] = [
    &[FieldName::Bucket, FieldName::Key],
    &[FieldName::Bucket, FieldName::Key, FieldName::VersionId],
    &[FieldName::Ignore, FieldName::Bucket, FieldName::Key],
    &[FieldName::Key, FieldName::Ignore, FieldName::VersionId, FieldName::Bucket],
];

/// A manifest: a first byte that picks the layout (low 2 bits, or the chunk payload layout with bit 2) and the
/// chunk size (1 + the high 3 bits), then the manifest's bytes. A manifest Preparing accepts must split into
/// chunks that cover it in order, each of which reads back, on its own byte range, as exactly its lines.
pub fn csv_manifest(data: &[u8]) {
    let Some((&pick, manifest)) = data.split_first() else { return };
    let layout = if pick & 4 != 0 {
        CsvLayout::payload()
    } else {
        CsvLayout::new(LAYOUTS[usize::from(pick & 3)]).expect("a valid layout")
    };
    let chunk_size = 1 + i64::from(pick >> 5);
    // Room for every batch at once: a send never waits.
    let (tx, mut rx) = mpsc::channel(manifest.len() / 100 + 2);
    let Ok(lines) = parse_into_chunks("the manifest", manifest, layout, chunk_size, &tx) else { return };
    drop(tx);
    let mut chunks = Vec::new();
    while let Ok(batch) = rx.try_recv() {
        chunks.extend(batch);
    }
    let (mut next_line, mut next_byte) = (1, None);
    for (seq, c) in chunks.iter().enumerate() {
        assert_eq!(c.seq, seq as i64, "chunks are numbered in order");
        assert_eq!(c.first_line, next_line, "chunk {seq} starts after the one before");
        assert!(next_byte.is_none_or(|b| b == c.start_offset), "chunk {seq} starts where the one before ended");
        assert!(0 <= c.start_offset && c.start_offset <= c.end_offset && c.end_offset as usize <= manifest.len());
        let range = &manifest[c.start_offset as usize..c.end_offset as usize];
        let mut rdr = csv_reader(range);
        let mut rec = csv::ByteRecord::new();
        let mut read = 0;
        while rdr.read_byte_record(&mut rec).expect("a chunk's range reads as CSV") {
            layout.parse(&rec, 0).expect("a chunk's line is a task");
            read += 1;
        }
        assert_eq!(read, c.line_count, "chunk {seq} reads back as its lines");
        (next_line, next_byte) = (c.first_line + c.line_count, Some(c.end_offset));
    }
    assert_eq!(next_line - 1, lines, "the chunks hold every line");
}

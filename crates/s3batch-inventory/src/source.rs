//! Where a gzip CSV reader's decompressed bytes come from: decompressed inline, or by a helper thread that feeds
//! bounded chunks through a channel (so decompressing and parsing use two cores).

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use flate2::read::MultiGzDecoder;

use crate::hashing::Md5Reader;

/// Bytes per chunk handed from the gunzip thread to the parser.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight: memory stays within `CHUNKS * CHUNK` whatever the file size.
const CHUNKS: usize = 4;

/// What the input turned out to be once it is read to its end (or failed).
struct Outcome {
    /// The MD5 of the compressed bytes, or the error that ended reading.
    md5: Result<String, io::Error>,
    compressed_bytes: u64,
}

pub(crate) enum Source<R: Read> {
    Inline(Box<MultiGzDecoder<Md5Reader<R>>>),
    Threaded(Pipe),
}

pub(crate) struct Pipe {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    thread: Option<JoinHandle<Outcome>>,
    outcome: Option<Outcome>,
}

impl<R: Read> Source<R> {
    pub(crate) fn inline(r: R) -> Source<R> {
        Source::Inline(Box::new(MultiGzDecoder::new(Md5Reader::new(r))))
    }

    /// Compressed bytes read so far (inline), or in all (threaded, once the thread has ended).
    pub(crate) fn compressed_bytes(&mut self) -> u64 {
        match self {
            Source::Inline(d) => d.get_ref().byte_count(),
            Source::Threaded(p) => p.outcome().compressed_bytes,
        }
    }

    /// Read to the end of the compressed input and give its MD5.
    pub(crate) fn finish(&mut self) -> io::Result<String> {
        match self {
            Source::Inline(d) => d.get_mut().finish(),
            Source::Threaded(p) => match &p.outcome().md5 {
                Ok(m) => Ok(m.clone()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            },
        }
    }
}

impl<R: Read + Send + 'static> Source<R> {
    pub(crate) fn threaded(r: R) -> io::Result<Source<R>> {
        let (tx, rx) = sync_channel(CHUNKS);
        let thread = std::thread::Builder::new().name("inventory-gunzip".into()).spawn(move || gunzip(r, tx))?;
        Ok(Source::Threaded(Pipe { rx, chunk: Vec::new(), pos: 0, thread: Some(thread), outcome: None }))
    }
}

fn gunzip<R: Read>(r: R, tx: SyncSender<io::Result<Vec<u8>>>) -> Outcome {
    let mut d = MultiGzDecoder::new(Md5Reader::new(r));
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        let read = loop {
            match d.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if filled > 0 {
            buf.truncate(filled);
            if tx.send(Ok(buf)).is_err() {
                // The reader was dropped: nobody wants the rest.
                let compressed_bytes = d.get_ref().byte_count();
                return Outcome { md5: Err(io::Error::other("the reader was dropped")), compressed_bytes };
            }
        }
        match read {
            Err(e) => {
                let compressed_bytes = d.get_ref().byte_count();
                let copy = io::Error::new(e.kind(), e.to_string());
                // The receiver may be gone already; the outcome carries the error too.
                let _ = tx.send(Err(e));
                return Outcome { md5: Err(copy), compressed_bytes };
            }
            Ok(()) if filled < CHUNK => {
                let md5 = d.get_mut().finish();
                return Outcome { md5, compressed_bytes: d.get_ref().byte_count() };
            }
            Ok(()) => {}
        }
    }
}

impl Pipe {
    fn outcome(&mut self) -> &Outcome {
        let thread = &mut self.thread;
        self.outcome.get_or_insert_with(|| match thread.take().map(JoinHandle::join) {
            Some(Ok(o)) => o,
            Some(Err(_)) => Outcome { md5: Err(io::Error::other("the gunzip thread panicked")), compressed_bytes: 0 },
            None => Outcome { md5: Err(io::Error::other("the gunzip thread is gone")), compressed_bytes: 0 },
        })
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The thread has ended after sending everything.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Inline(d) => d.read(buf),
            Source::Threaded(p) => p.read(buf),
        }
    }
}

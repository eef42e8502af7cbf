//! Readers and writers that hash (MD5) and count the bytes passing through.

use std::io::{self, Read, Write};

use md5::{Digest, Md5};

/// Hashes every byte read through it.
pub(crate) struct Md5Reader<R> {
    inner: R,
    hasher: Md5,
    bytes: u64,
}

impl<R: Read> Md5Reader<R> {
    pub(crate) fn new(inner: R) -> Md5Reader<R> {
        Md5Reader { inner, hasher: Md5::new(), bytes: 0 }
    }

    pub(crate) fn byte_count(&self) -> u64 {
        self.bytes
    }

    /// Read the rest of the input (so the hash covers every byte), then return the hex MD5.
    pub(crate) fn finish(&mut self) -> io::Result<String> {
        io::copy(self, &mut io::sink())?;
        Ok(hex::encode(std::mem::take(&mut self.hasher).finalize()))
    }
}

impl<R: Read> Read for Md5Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Hashes and counts every byte written through it.
pub(crate) struct Md5Writer<W> {
    inner: W,
    hasher: Md5,
    bytes: u64,
}

impl<W: Write> Md5Writer<W> {
    pub(crate) fn new(inner: W) -> Md5Writer<W> {
        Md5Writer { inner, hasher: Md5::new(), bytes: 0 }
    }

    /// The inner writer, the byte count and the hex MD5.
    pub(crate) fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for Md5Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hex MD5 of a whole file, read in bounded chunks; the file is left at its start.
pub(crate) fn md5_of_file(f: &mut std::fs::File) -> io::Result<String> {
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(0))?;
    let mut r = Md5Reader::new(&mut *f);
    let md5 = r.finish()?;
    f.seek(SeekFrom::Start(0))?;
    Ok(md5)
}

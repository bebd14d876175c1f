//! A ZIP archive written front to back into any `Write`, never seeking, so it can stream
//! to a client as it is made: each entry is deflated as it is written, and its CRC-32 and
//! sizes follow it in a data descriptor (APPNOTE 4.3.9) and in the central directory at
//! the end. Entries and the archive stay under 4 GiB (no ZIP64).

use std::io::{self, Write};

use flate2::write::DeflateEncoder;
use flate2::Compression;

/// What the central directory says of an entry.
struct Entry {
    name: String,
    crc: u32,
    compressed: u32,
    size: u32,
    offset: u32,
}

/// Counts what passes through to the archive.
struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The archive being written.
pub struct ZipStream<W: Write> {
    out: Counted<W>,
    entries: Vec<Entry>,
    open: Option<Open>,
}

/// The entry being written: one deflate stream, drained into the archive as it fills.
struct Open {
    name: String,
    offset: u32,
    crc: crc32fast::Hasher,
    size: u64,
    start: u64,
    deflate: DeflateEncoder<Vec<u8>>,
}

/// DOS time and date fields: 1 January 1980, 00:00 (the archive's entries carry no time
/// of their own; the export's JSON says when it was made).
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;
/// Bit 3: sizes and CRC follow the data. Bit 11: names are UTF-8.
const FLAGS: u16 = (1 << 3) | (1 << 11);
const DEFLATE: u16 = 8;

fn too_big() -> io::Error {
    io::Error::other("a ZIP entry or archive passed 4 GiB")
}

fn u32_of(n: u64) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| too_big())
}

impl<W: Write> ZipStream<W> {
    pub fn new(inner: W) -> Self {
        Self { out: Counted { inner, written: 0 }, entries: Vec::new(), open: None }
    }

    /// Starts entry `name`, ending the one before.
    pub fn start(&mut self, name: &str) -> io::Result<()> {
        self.end_entry()?;
        let offset = u32_of(self.out.written)?;
        let mut h = Vec::with_capacity(30 + name.len());
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&20u16.to_le_bytes());
        h.extend_from_slice(&FLAGS.to_le_bytes());
        h.extend_from_slice(&DEFLATE.to_le_bytes());
        h.extend_from_slice(&DOS_TIME.to_le_bytes());
        h.extend_from_slice(&DOS_DATE.to_le_bytes());
        h.extend_from_slice(&[0; 12]);
        h.extend_from_slice(&u16::try_from(name.len()).map_err(|_| too_big())?.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        self.out.write_all(&h)?;
        let start = self.out.written;
        let deflate = DeflateEncoder::new(Vec::new(), Compression::fast());
        self.open =
            Some(Open { name: name.to_owned(), offset, crc: crc32fast::Hasher::new(), size: 0, start, deflate });
        Ok(())
    }

    /// Writes `data` to the entry being written, deflated.
    pub fn write_entry(&mut self, data: &[u8]) -> io::Result<()> {
        let open = self.open.as_mut().ok_or_else(|| io::Error::other("no ZIP entry is open"))?;
        open.crc.update(data);
        open.size += data.len() as u64;
        open.deflate.write_all(data)?;
        let pending = open.deflate.get_mut();
        self.out.write_all(pending)?;
        pending.clear();
        Ok(())
    }

    /// Ends the entry being written with its data descriptor.
    fn end_entry(&mut self) -> io::Result<()> {
        let Some(open) = self.open.take() else { return Ok(()) };
        let rest = open.deflate.finish()?;
        self.out.write_all(&rest)?;
        let e = Entry {
            name: open.name,
            crc: open.crc.finalize(),
            compressed: u32_of(self.out.written - open.start)?,
            size: u32_of(open.size)?,
            offset: open.offset,
        };
        let mut d = Vec::with_capacity(16);
        d.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
        d.extend_from_slice(&e.crc.to_le_bytes());
        d.extend_from_slice(&e.compressed.to_le_bytes());
        d.extend_from_slice(&e.size.to_le_bytes());
        self.out.write_all(&d)?;
        self.entries.push(e);
        Ok(())
    }

    /// Ends the last entry and writes the central directory; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_entry()?;
        let start = u32_of(self.out.written)?;
        for e in &self.entries {
            let mut c = Vec::with_capacity(46 + e.name.len());
            c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            c.extend_from_slice(&20u16.to_le_bytes());
            c.extend_from_slice(&20u16.to_le_bytes());
            c.extend_from_slice(&FLAGS.to_le_bytes());
            c.extend_from_slice(&DEFLATE.to_le_bytes());
            c.extend_from_slice(&DOS_TIME.to_le_bytes());
            c.extend_from_slice(&DOS_DATE.to_le_bytes());
            c.extend_from_slice(&e.crc.to_le_bytes());
            c.extend_from_slice(&e.compressed.to_le_bytes());
            c.extend_from_slice(&e.size.to_le_bytes());
            c.extend_from_slice(&u16::try_from(e.name.len()).map_err(|_| too_big())?.to_le_bytes());
            c.extend_from_slice(&[0; 12]);
            c.extend_from_slice(&e.offset.to_le_bytes());
            c.extend_from_slice(e.name.as_bytes());
            self.out.write_all(&c)?;
        }
        let size = u32_of(self.out.written)? - start;
        let count = u16::try_from(self.entries.len()).map_err(|_| too_big())?;
        let mut end = Vec::with_capacity(22);
        end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        end.extend_from_slice(&[0; 4]);
        end.extend_from_slice(&count.to_le_bytes());
        end.extend_from_slice(&count.to_le_bytes());
        end.extend_from_slice(&size.to_le_bytes());
        end.extend_from_slice(&start.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        self.out.write_all(&end)?;
        self.out.flush()?;
        Ok(self.out.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_lists_its_entries_with_their_crc_and_sizes() {
        let mut z = ZipStream::new(Vec::new());
        z.start("a.txt").unwrap();
        z.write_entry(b"hello ").unwrap();
        z.write_entry(b"world").unwrap();
        z.start("empty.txt").unwrap();
        z.start("dir/\u{e9}.json").unwrap();
        z.write_entry(&vec![b'x'; 100_000]).unwrap();
        let bytes = z.finish().unwrap();
        let end = &bytes[bytes.len() - 22..];
        assert_eq!(&end[..4], &0x0605_4b50u32.to_le_bytes());
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 3, "three entries");
        let dir_at = u32::from_le_bytes(end[16..20].try_into().unwrap()) as usize;
        assert_eq!(&bytes[dir_at..dir_at + 4], &0x0201_4b50u32.to_le_bytes());
        let crc = u32::from_le_bytes(bytes[dir_at + 16..dir_at + 20].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(b"hello world"));
        let size = u32::from_le_bytes(bytes[dir_at + 24..dir_at + 28].try_into().unwrap());
        assert_eq!(size, 11);
        assert!(bytes.len() < 2_000, "100,000 repeated bytes deflate: {}", bytes.len());
        assert!(ZipStream::new(Vec::new()).write_entry(b"x").is_err(), "no entry open");
    }
}

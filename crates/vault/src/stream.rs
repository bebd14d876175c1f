//! Chunked sealing for uploads, so a file of any size is encrypted with bounded
//! memory and shredding its subject's key makes it unreadable too.
//!
//! The plaintext is cut into [`CHUNK`]-byte chunks, each sealed with
//! XChaCha20-Poly1305 under the subject's data key. The nonce of chunk `i` is a
//! random 19-byte prefix (stored in the header), `i` as 4 big-endian bytes, and
//! one byte that is 1 only for the last chunk, so chunks cannot be reordered,
//! dropped, or the stream cut short without detection. The object's identity
//! is bound as associated data: its id, and its subject's id when it is sealed under the
//! subject's key. An object sealed under a key of its own binds its id alone (pass an
//! empty subject): the key's wrapping under the subject's key binds it to its subject.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::crypto::CryptoError;
use crate::DataKey;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Sealed bytes per full chunk.
pub const SEALED_CHUNK: usize = CHUNK + 16;
/// Header length: format byte and nonce prefix.
pub const HEADER: usize = 1 + 19;

fn nonce(prefix: &[u8; 19], counter: u32, last: bool) -> XNonce {
    let mut n = [0u8; 24];
    n[..19].copy_from_slice(prefix);
    n[19..23].copy_from_slice(&counter.to_be_bytes());
    n[23] = u8::from(last);
    *XNonce::from_slice(&n)
}

fn aad(subject: &str, object: &str) -> Vec<u8> {
    let mut a = b"charter.stream.v1\0".to_vec();
    for p in [subject.as_bytes(), object.as_bytes()] {
        a.extend_from_slice(&(p.len() as u32).to_be_bytes());
        a.extend_from_slice(p);
    }
    a
}

/// Seals a stream chunk by chunk.
pub struct StreamSealer {
    cipher: XChaCha20Poly1305,
    prefix: [u8; 19],
    counter: u32,
    aad: Vec<u8>,
    done: bool,
}

impl StreamSealer {
    /// Starts sealing object `object` of `subject`; returns the sealer and the header to write first.
    pub fn new(key: &DataKey, subject: &str, object: &str) -> (Self, Vec<u8>) {
        let mut prefix = [0u8; 19];
        rand::rngs::OsRng.fill_bytes(&mut prefix);
        let mut header = vec![1u8];
        header.extend_from_slice(&prefix);
        (Self { cipher: key.cipher(), prefix, counter: 0, aad: aad(subject, object), done: false }, header)
    }

    /// Seals the next chunk (exactly [`CHUNK`] bytes unless `last`).
    pub fn seal(&mut self, chunk: &[u8], last: bool) -> Vec<u8> {
        assert!(!self.done, "a sealed stream takes no chunk after its last");
        assert!(chunk.len() == CHUNK || (last && chunk.len() <= CHUNK), "chunks are CHUNK bytes except the last");
        let n = nonce(&self.prefix, self.counter, last);
        self.counter = self.counter.checked_add(1).expect("a stream has at most 2^32 chunks (256 TiB)");
        self.done = last;
        self.cipher.encrypt(&n, Payload { msg: chunk, aad: &self.aad }).expect("encryption of a buffer does not fail")
    }
}

/// Opens a sealed stream chunk by chunk.
pub struct StreamOpener {
    cipher: XChaCha20Poly1305,
    prefix: [u8; 19],
    counter: u32,
    aad: Vec<u8>,
}

impl StreamOpener {
    /// Reads the header of object `object` of `subject`.
    pub fn new(key: &DataKey, subject: &str, object: &str, header: &[u8]) -> Result<Self, CryptoError> {
        if header.len() != HEADER || header[0] != 1 {
            return Err(CryptoError::Truncated);
        }
        let mut prefix = [0u8; 19];
        prefix.copy_from_slice(&header[1..]);
        Ok(Self { cipher: key.cipher(), prefix, counter: 0, aad: aad(subject, object) })
    }

    /// Opens the next sealed chunk; `last` says whether the stream ends after it.
    pub fn open(&mut self, sealed: &[u8], last: bool) -> Result<Vec<u8>, CryptoError> {
        let n = nonce(&self.prefix, self.counter, last);
        let plain = self.cipher.decrypt(&n, Payload { msg: sealed, aad: &self.aad }).map_err(|_| CryptoError::Open)?;
        self.counter += 1;
        Ok(plain)
    }
}

/// Seals a whole buffer (for tests and small objects).
pub fn seal_all(key: &DataKey, subject: &str, object: &str, data: &[u8]) -> Vec<u8> {
    let (mut s, mut out) = StreamSealer::new(key, subject, object);
    let mut chunks = data.chunks(CHUNK).peekable();
    if chunks.peek().is_none() {
        out.extend(s.seal(&[], true));
    }
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        if c.len() == CHUNK && last {
            out.extend(s.seal(c, false));
            out.extend(s.seal(&[], true));
        } else {
            out.extend(s.seal(c, last));
        }
    }
    out
}

/// Opens a whole sealed buffer.
pub fn open_all(key: &DataKey, subject: &str, object: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    // The shortest stream is a header and one empty final chunk (its tag alone).
    if sealed.len() < HEADER + SEALED_CHUNK - CHUNK {
        return Err(CryptoError::Truncated);
    }
    let mut o = StreamOpener::new(key, subject, object, &sealed[..HEADER])?;
    let mut rest = &sealed[HEADER..];
    let mut out = Vec::new();
    loop {
        // A full-size sealed chunk followed by more data is not the last one.
        let take = rest.len().min(SEALED_CHUNK);
        let last = rest.len() < SEALED_CHUNK;
        out.extend(o.open(&rest[..take], last)?);
        rest = &rest[take..];
        if last {
            return if rest.is_empty() { Ok(out) } else { Err(CryptoError::Open) };
        }
        if rest.is_empty() {
            return Err(CryptoError::Truncated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_chunk_boundaries() {
        let k = DataKey::generate();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal_all(&k, "s", "o", &data);
            assert_eq!(open_all(&k, "s", "o", &sealed).unwrap(), data, "len {len}");
        }
    }

    #[test]
    fn truncation_reordering_and_rebinding_fail() {
        let k = DataKey::generate();
        let data = vec![7u8; 3 * CHUNK + 100];
        let sealed = seal_all(&k, "s", "o", &data);
        assert!(open_all(&k, "s2", "o", &sealed).is_err(), "other subject");
        assert!(open_all(&k, "s", "o2", &sealed).is_err(), "other object");
        assert!(open_all(&DataKey::generate(), "s", "o", &sealed).is_err(), "other key");
        let cut = &sealed[..HEADER + 2 * SEALED_CHUNK];
        assert!(open_all(&k, "s", "o", cut).is_err(), "dropping the tail is detected");
        let mut swapped = sealed.clone();
        let (a, b) = (HEADER, HEADER + SEALED_CHUNK);
        let first: Vec<u8> = swapped[a..b].to_vec();
        let second: Vec<u8> = swapped[b..b + SEALED_CHUNK].to_vec();
        swapped[a..b].copy_from_slice(&second);
        swapped[b..b + SEALED_CHUNK].copy_from_slice(&first);
        assert!(open_all(&k, "s", "o", &swapped).is_err(), "reordering is detected");
        assert_eq!(open_all(&k, "s", "o", &sealed[..3]), Err(CryptoError::Truncated), "shorter than a header");
        assert_eq!(open_all(&k, "s", "o", &sealed[..HEADER]), Err(CryptoError::Truncated), "a header alone");
        assert_eq!(open_all(&k, "s", "o", &sealed[..HEADER + 15]), Err(CryptoError::Truncated), "less than a tag");
        // Exactly one chunk of data seals as a full chunk and an empty final one; without
        // the final one the stream is cut short, not forged.
        let one = seal_all(&k, "s", "o", &vec![1u8; CHUNK]);
        assert_eq!(one.len(), HEADER + SEALED_CHUNK + 16);
        assert_eq!(open_all(&k, "s", "o", &one[..HEADER + SEALED_CHUNK]), Err(CryptoError::Truncated));
        assert_eq!((CHUNK, SEALED_CHUNK), (65_536, 65_552), "the stored format's chunk sizes");
    }
}

//! Scanning any reader in fixed-size windows, so memory stays flat whatever the input's size.

use std::io::Read;

use crate::entity::Finding;

/// Bytes read per window.
pub const WINDOW: usize = 1 << 20;
/// Bytes carried over between windows, so a value cut by a window edge is still found whole.
pub const OVERLAP: usize = 4096;

/// Scans `input`, calling `on_finding` with offsets from the start of the input.
/// Returns the number of bytes read. Memory use is bounded by `WINDOW + OVERLAP`.
pub fn scan_reader<R: Read>(mut input: R, mut on_finding: impl FnMut(Finding)) -> std::io::Result<u64> {
    let mut buf = vec![0u8; WINDOW + OVERLAP];
    let mut carried = 0usize; // bytes at the front of buf that came from the previous window
    let mut base: u64 = 0; // input offset of buf[0]
    let mut reported_up_to: u64 = 0;
    loop {
        let mut filled = carried;
        while filled < buf.len() {
            let n = input.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        let at_end = filled < buf.len();
        let window = &buf[..filled];
        // Findings starting in the last OVERLAP bytes wait for the next window, which sees them whole.
        let limit = if at_end { filled } else { filled - OVERLAP };
        for f in crate::scan(window) {
            let start = base + f.start as u64;
            if f.start < limit && start >= reported_up_to {
                reported_up_to = base + f.end as u64;
                on_finding(Finding { start: start as usize, end: (base + f.end as u64) as usize, ..f });
            }
        }
        if at_end {
            return Ok(base + filled as u64);
        }
        buf.copy_within(limit..filled, 0);
        carried = filled - limit;
        base += limit as u64;
    }
}

/// Scans a stream fed in pieces (an upload), with the same windows as
/// [`scan_reader`], counting findings by type and, when anonymising, handing back
/// the bytes with each finding replaced. Memory is bounded by one window.
pub struct StreamScanner {
    buf: Vec<u8>,
    anonymiser: Option<crate::anonymise::Anonymiser>,
    counts: std::collections::BTreeMap<crate::EntityType, u64>,
    /// Whether the bytes are handed back; a counting scanner only counts.
    emit: bool,
}

impl StreamScanner {
    /// A scanner that hands the bytes back as they are (`None`) or anonymised.
    pub fn new(anonymiser: Option<crate::anonymise::Anonymiser>) -> Self {
        Self {
            buf: Vec::with_capacity(WINDOW + OVERLAP),
            anonymiser,
            counts: std::collections::BTreeMap::new(),
            emit: true,
        }
    }

    /// A scanner that only counts findings; [`StreamScanner::push`] and
    /// [`StreamScanner::finish`] hand back no bytes.
    pub fn counting() -> Self {
        Self { emit: false, ..Self::new(None) }
    }

    /// Feeds bytes; returns those that are final (anonymised when anonymising).
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while self.buf.len() >= WINDOW + OVERLAP {
            out.extend(self.process(self.buf.len() - OVERLAP));
        }
        out
    }

    /// Ends the stream; returns the last bytes and the findings counted by type.
    pub fn finish(mut self) -> (Vec<u8>, std::collections::BTreeMap<crate::EntityType, u64>) {
        let out = self.process(self.buf.len());
        (out, self.counts)
    }

    /// Findings counted so far.
    pub fn counts(&self) -> &std::collections::BTreeMap<crate::EntityType, u64> {
        &self.counts
    }

    /// Emits everything before `limit` (or further, when a finding crosses it) and keeps the rest.
    fn process(&mut self, limit: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(if self.emit { limit } else { 0 });
        let mut cursor = 0;
        for f in crate::scan(&self.buf) {
            if f.start >= limit || f.start < cursor {
                continue;
            }
            *self.counts.entry(f.kind).or_default() += 1;
            if self.emit {
                out.extend_from_slice(&self.buf[cursor..f.start]);
                match &self.anonymiser {
                    Some(a) => out.extend(a.replacement(f.kind, &self.buf[f.start..f.end])),
                    None => out.extend_from_slice(&self.buf[f.start..f.end]),
                }
            }
            cursor = f.end;
        }
        let upto = cursor.max(limit);
        if self.emit {
            out.extend_from_slice(&self.buf[cursor..upto]);
        }
        self.buf.drain(..upto);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_across_window_edges_are_found_once() {
        let mut text = vec![b'x'; WINDOW - 10];
        text.extend_from_slice(b" ada@example.com ");
        text.extend(std::iter::repeat_n(b'y', WINDOW));
        text.extend_from_slice(b" bob@example.org");
        let mut found = Vec::new();
        let n = scan_reader(&text[..], |f| found.push(f)).unwrap();
        assert_eq!(n, text.len() as u64);
        let values: Vec<&[u8]> = found.iter().map(|f| &text[f.start..f.end]).collect();
        assert_eq!(values, vec![&b"ada@example.com"[..], &b"bob@example.org"[..]]);
    }

    #[test]
    fn piecewise_scanning_matches_whole_scanning() {
        let mut text = Vec::new();
        for i in 0..40_000 {
            text.extend_from_slice(format!("line {i} mail p{i}@x.example card 4111 1111 1111 1111 end\n").as_bytes());
        }
        let a = crate::anonymise::Anonymiser::new(b"k");
        let mut s = StreamScanner::new(Some(a.clone()));
        let mut out = Vec::new();
        for piece in text.chunks(7919) {
            out.extend(s.push(piece));
        }
        let (rest, counts) = s.finish();
        out.extend(rest);
        assert_eq!(counts.get(&crate::EntityType::EmailAddress), Some(&40_000));
        assert_eq!(counts.get(&crate::EntityType::CreditCard), Some(&40_000));
        assert_eq!(out, a.apply(&text, &crate::scan(&text)), "the same as anonymising the whole text at once");
        let mut plain = StreamScanner::new(None);
        let mut same = Vec::new();
        for piece in text.chunks(65_536) {
            same.extend(plain.push(piece));
        }
        same.extend(plain.finish().0);
        assert_eq!(same, text, "without an anonymiser the bytes pass through");
        let mut counting = StreamScanner::counting();
        let mut handed_back = 0;
        for piece in text.chunks(65_536) {
            handed_back += counting.push(piece).len();
        }
        let (rest, only_counts) = counting.finish();
        assert_eq!(handed_back + rest.len(), 0, "a counting scanner hands back no bytes");
        assert_eq!(only_counts, counts, "and counts what the others count");
    }
}

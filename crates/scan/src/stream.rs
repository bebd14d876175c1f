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

/// Copies `input` to `output`, replacing each finding (sorted, non-overlapping,
/// offsets into the input) with the anonymiser's replacement; memory stays bounded.
pub fn anonymise_reader<R: Read, W: std::io::Write>(
    mut input: R,
    findings: &[Finding],
    anonymiser: &crate::anonymise::Anonymiser,
    mut output: W,
) -> std::io::Result<()> {
    let mut pos: usize = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut copy = |input: &mut R, output: &mut W, mut n: usize, pos: &mut usize| -> std::io::Result<()> {
        while n > 0 {
            let want = n.min(buf.len());
            input.read_exact(&mut buf[..want])?;
            output.write_all(&buf[..want])?;
            n -= want;
            *pos += want;
        }
        Ok(())
    };
    for f in findings {
        copy(&mut input, &mut output, f.start - pos, &mut pos)?;
        let mut value = vec![0u8; f.end - f.start];
        input.read_exact(&mut value)?;
        pos = f.end;
        output.write_all(&anonymiser.replacement(f.kind, &value))?;
    }
    std::io::copy(&mut input, &mut output)?;
    output.flush()
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
}

//! A 2 GiB stream scanned with flat memory: the process's peak resident set grows by
//! no more than a few windows while every byte is read, and the findings spread
//! through the stream are all reported. Runs in its own test binary, so nothing else
//! in the process moves the peak.

use std::io::Read;

/// 2 GiB of text made on the fly: a 64 KiB block of prose with one line of personal data.
struct Generated {
    block: Vec<u8>,
    left: u64,
    at: usize,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(self.block.len() - self.at).min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at = (self.at + n) % self.block.len();
        self.left -= n as u64;
        Ok(n)
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn two_gib_stream_scans_in_flat_memory() {
    const SIZE: u64 = 2 << 30;
    let pii = b"Write to Ada Lovelace at ada@example.com or call +44 20 7946 0018.\n";
    let mut block = Vec::with_capacity(64 << 10);
    block.extend_from_slice(pii);
    let prose = b"the federated round finished in forty minutes and every client reported its update on time\n";
    while block.len() + prose.len() <= 64 << 10 {
        block.extend_from_slice(prose);
    }
    while block.len() < 64 << 10 {
        block.push(b' ');
    }
    let Some(before) = peak_rss_kib() else {
        eprintln!("no /proc/self/status here: the memory check is skipped");
        return;
    };
    let mut findings = 0u64;
    let read = charter_scan::stream::scan_reader(Generated { block, left: SIZE, at: 0 }, |_| findings += 1)
        .expect("an in-memory stream reads");
    let after = peak_rss_kib().expect("read before");
    assert_eq!(read, SIZE);
    // Three findings per 64 KiB block: the name, the email, the phone number.
    assert_eq!(findings, 3 * (SIZE / (64 << 10)));
    let grew_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    assert!(grew_mib < 16.0, "peak RSS grew by {grew_mib:.1} MiB while scanning 2 GiB");
}

//! `charter scan`: find personal data in files and folders; optionally write anonymised copies.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use charter_scan::anonymise::Anonymiser;
use charter_scan::stream::{scan_reader, StreamScanner};
use charter_scan::Finding;
use serde_json::json;

use crate::args::{ScanArgs, ScanFormat};
use crate::Failure;

fn files(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for e in entries {
            files(&e, out)?;
        }
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

/// Counts bytes as they are read, for the progress line.
struct Progress<R> {
    inner: R,
    read: u64,
    total: u64,
    shown: std::time::Instant,
    name: String,
}

impl<R: std::io::Read> std::io::Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.shown.elapsed().as_millis() >= 500 {
            self.shown = std::time::Instant::now();
            eprint!(
                "\r{}: {:.0}% of {} MiB",
                self.name,
                self.read as f64 * 100.0 / self.total.max(1) as f64,
                self.total >> 20
            );
        }
        Ok(n)
    }
}

/// Writes an anonymised copy of `path` to `target` in one streaming pass.
fn anonymise_file(path: &Path, target: &Path, anonymiser: &Anonymiser) -> anyhow::Result<()> {
    use std::io::Read as _;
    let mut input = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut output = std::io::BufWriter::new(std::fs::File::create(target)?);
    let mut scanner = StreamScanner::new(Some(anonymiser.clone()));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        output.write_all(&scanner.push(&buf[..n]))?;
    }
    output.write_all(&scanner.finish().0)?;
    output.flush()?;
    Ok(())
}

/// Scans every file; exit 1 when personal data was found.
pub fn run(args: ScanArgs) -> Result<(), Failure> {
    let anonymiser = match &args.anonymise {
        Some(cfg) => {
            let text = std::fs::read_to_string(cfg).with_context(|| format!("cannot read {}", cfg.display()))?;
            let key = std::env::var("CHARTER_SCAN_KEY").unwrap_or_else(|_| "charter-scan".into());
            match Anonymiser::from_toml(&text, key.as_bytes()) {
                Ok(a) => Some(a),
                Err(e) => {
                    eprintln!("error: {}: {e}", cfg.display());
                    return Err(Failure::Refused);
                }
            }
        }
        None => None,
    };
    if anonymiser.is_some() && args.out.is_none() {
        eprintln!("error: --anonymise needs --out DIR for the anonymised copies");
        return Err(Failure::Refused);
    }
    let mut all = Vec::new();
    for p in &args.paths {
        files(p, &mut all).map_err(|e| {
            eprintln!("error: {e:#}");
            Failure::Refused
        })?;
    }
    let tty = std::io::stderr().is_terminal();
    let mut any = false;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut sarif_first = true;
    if matches!(args.format, ScanFormat::Sarif) {
        write!(
            out,
            "{{\"version\":\"2.1.0\",\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"runs\":[{{\"tool\":{{\"driver\":{{\"name\":\"charter-scan\",\"version\":\"{}\"}}}},\"results\":[",
            env!("CARGO_PKG_VERSION")
        )
        .context("stdout")?;
    }
    for path in &all {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let show = tty && total > 64 << 20;
        let mut reader = Progress {
            inner: std::io::BufReader::new(file),
            read: 0,
            total,
            shown: if show {
                std::time::Instant::now()
            } else {
                std::time::Instant::now() + std::time::Duration::from_secs(1 << 30)
            },
            name: path.display().to_string(),
        };
        let name = path.display().to_string();
        let name_json = serde_json::to_string(&name).context("path")?;
        // Findings are written as they are found: memory stays flat however many there are.
        let mut count = 0u64;
        let mut write_err = None;
        if matches!(args.format, ScanFormat::Json) {
            write!(out, "{{\"path\":{name_json},\"findings\":[").context("stdout")?;
        }
        scan_reader(&mut reader, |f: Finding| {
            let r = match args.format {
                ScanFormat::Json => write!(
                    out,
                    "{}{{\"type\":\"{}\",\"start\":{},\"end\":{},\"confidence\":{:.2}}}",
                    if count == 0 { "" } else { "," },
                    f.kind.name(),
                    f.start,
                    f.end,
                    f.confidence
                ),
                ScanFormat::Text => {
                    writeln!(out, "{name}:{}-{}: {} ({:.2})", f.start, f.end, f.kind.name(), f.confidence)
                }
                ScanFormat::Sarif => {
                    let r = json!({
                        "ruleId": f.kind.name(),
                        "level": "warning",
                        "message": { "text": format!("{} found", f.kind.name()) },
                        "locations": [{ "physicalLocation": {
                            "artifactLocation": { "uri": name },
                            "region": { "byteOffset": f.start, "byteLength": f.end - f.start }
                        }}]
                    });
                    let sep = if sarif_first { "" } else { "," };
                    sarif_first = false;
                    write!(out, "{sep}{r}")
                }
            };
            if let Err(e) = r {
                write_err.get_or_insert(e);
            }
            count += 1;
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
        if let Some(e) = write_err {
            return Err(Failure::Error(anyhow::Error::new(e).context("cannot write the findings")));
        }
        if matches!(args.format, ScanFormat::Json) {
            writeln!(out, "]}}").context("stdout")?;
        }
        if show {
            eprintln!();
        }
        any |= count > 0;
        if let (Some(a), Some(dir)) = (&anonymiser, &args.out) {
            let rel = path.strip_prefix("/").unwrap_or(path);
            let target = dir.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            }
            anonymise_file(path, &target, a).with_context(|| format!("cannot anonymise {}", path.display()))?;
        }
    }
    if matches!(args.format, ScanFormat::Sarif) {
        writeln!(out, "]}}]}}").context("stdout")?;
    }
    out.flush().context("stdout")?;
    if any {
        Err(Failure::Code(1))
    } else {
        Ok(())
    }
}

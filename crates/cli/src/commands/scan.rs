//! `charter scan`: find personal data in files and folders; optionally write anonymised copies.
//!
//! An anonymised copy never touches an input: each input maps to a path inside
//! `--out`, relative to the inputs' common root; a copy that would resolve to an
//! input is refused before anything is opened for writing; and each copy is
//! written to a temporary file in its folder, then renamed into place.

use std::collections::HashSet;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use charter_scan::anonymise::Anonymiser;
use charter_scan::stream::{scan_reader, StreamScanner};
use charter_scan::Finding;
use serde_json::json;

use crate::args::{ScanArgs, ScanFormat};
use crate::Failure;

/// A file to scan: the path as the user named it (for reports) and where it really is.
struct Input {
    shown: PathBuf,
    real: PathBuf,
}

/// Walks the paths given: every file once, each folder once (a symlink loop is
/// walked once), skipping `skip` (the folder the anonymised copies go to) unless
/// it was named itself.
struct Walk<'a> {
    seen_dirs: HashSet<PathBuf>,
    seen_files: HashSet<PathBuf>,
    skip: Option<&'a Path>,
    files: Vec<Input>,
}

impl Walk<'_> {
    fn visit(&mut self, shown: &Path, given: bool) -> anyhow::Result<()> {
        let real = std::fs::canonicalize(shown).with_context(|| format!("cannot read {}", shown.display()))?;
        let meta = std::fs::metadata(&real).with_context(|| format!("cannot read {}", shown.display()))?;
        if !meta.is_dir() {
            if self.seen_files.insert(real.clone()) {
                self.files.push(Input { shown: shown.to_owned(), real });
            }
            return Ok(());
        }
        if (!given && self.skip == Some(real.as_path())) || !self.seen_dirs.insert(real.clone()) {
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(shown)
            .with_context(|| format!("cannot read {}", shown.display()))?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        entries.iter().try_for_each(|e| self.visit(e, false))
    }
}

/// Every file under `paths`, each once, in order.
fn inputs(paths: &[PathBuf], skip: Option<&Path>) -> anyhow::Result<Vec<Input>> {
    let mut walk = Walk { seen_dirs: HashSet::new(), seen_files: HashSet::new(), skip, files: Vec::new() };
    paths.iter().try_for_each(|p| walk.visit(p, true))?;
    Ok(walk.files)
}

/// Where `path` is, following the symlinks of the part that exists and reading
/// `..` in the rest, without creating anything.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(existing).is_err() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = std::fs::canonicalize(existing)?;
    for name in rest.iter().rev() {
        match Path::new(name).components().next() {
            Some(Component::ParentDir) => {
                resolved.pop();
            }
            Some(Component::CurDir) | None => {}
            Some(_) => resolved.push(name),
        }
    }
    Ok(resolved)
}

/// The deepest folder holding every path given: a folder given is its own root,
/// a file given has its folder's.
fn common_root(paths: &[PathBuf]) -> anyhow::Result<PathBuf> {
    let mut root: Option<PathBuf> = None;
    for p in paths {
        let real = std::fs::canonicalize(p).with_context(|| format!("cannot read {}", p.display()))?;
        let folder = if real.is_dir() { real.clone() } else { real.parent().unwrap_or(&real).to_path_buf() };
        root = Some(match root {
            None => folder,
            Some(r) => r.ancestors().find(|a| folder.starts_with(a)).unwrap_or(Path::new("/")).to_path_buf(),
        });
    }
    root.context("no paths to scan")
}

/// Where each input's anonymised copy goes under `out` (already resolved); a copy that
/// would be an input is refused (exit 2).
fn targets(paths: &[PathBuf], files: &[Input], out: &Path) -> Result<Vec<PathBuf>, Failure> {
    let root = common_root(paths)?;
    let reals: HashSet<&Path> = files.iter().map(|f| f.real.as_path()).collect();
    let mut targets = Vec::with_capacity(files.len());
    for f in files {
        let rel = f.real.strip_prefix(&root).context("an input outside the common root")?;
        let target = out.join(rel);
        let resolved = resolve(&target).with_context(|| format!("cannot read {}", target.display()))?;
        if reals.contains(resolved.as_path()) {
            return Err(refuse(format_args!(
                "the anonymised copy of {} would be written over the input {}: choose an --out folder outside the inputs' folder",
                f.shown.display(),
                resolved.display()
            )));
        }
        targets.push(target);
    }
    Ok(targets)
}

/// Writes an anonymised copy of `path` to `target` in one streaming pass, through a
/// temporary file in the target's folder renamed into place when complete.
fn anonymise_file(path: &Path, target: &Path, anonymiser: &Anonymiser) -> anyhow::Result<()> {
    use std::io::Read as _;
    let folder = target.parent().context("a copy needs a folder")?;
    std::fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let mut input = std::io::BufReader::new(std::fs::File::open(path)?);
    let temp =
        tempfile::NamedTempFile::new_in(folder).with_context(|| format!("cannot write in {}", folder.display()))?;
    let mut output = std::io::BufWriter::new(temp);
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
    let temp = output.into_inner().map_err(|e| e.into_error())?;
    temp.persist(target).map_err(|e| e.error).with_context(|| format!("cannot write {}", target.display()))?;
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

/// The anonymiser a config file describes, keyed by `CHARTER_SCAN_KEY`.
fn anonymiser(config: &Path) -> Result<Anonymiser, Failure> {
    let text = std::fs::read_to_string(config).with_context(|| format!("cannot read {}", config.display()))?;
    let key = std::env::var("CHARTER_SCAN_KEY").unwrap_or_else(|_| "charter-scan".into());
    Anonymiser::from_toml(&text, key.as_bytes()).map_err(|e| {
        eprintln!("error: {}: {e}", config.display());
        Failure::Refused
    })
}

/// Prints an error and refuses (exit 2).
fn refuse(message: impl std::fmt::Display) -> Failure {
    eprintln!("error: {message}");
    Failure::Refused
}

/// Writes the findings of one file in the chosen format; returns how many there were.
struct Report<W: std::io::Write> {
    out: W,
    format: ScanFormat,
    sarif_first: bool,
}

impl<W: std::io::Write> Report<W> {
    fn start(&mut self) -> std::io::Result<()> {
        if matches!(self.format, ScanFormat::Sarif) {
            write!(
                self.out,
                "{{\"version\":\"2.1.0\",\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"runs\":[{{\"tool\":{{\"driver\":{{\"name\":\"charter-scan\",\"version\":\"{}\"}}}},\"results\":[",
                env!("CARGO_PKG_VERSION")
            )?;
        }
        Ok(())
    }

    fn finding(&mut self, name: &str, f: &Finding, first: bool) -> std::io::Result<()> {
        match self.format {
            ScanFormat::Json => write!(
                self.out,
                "{}{{\"type\":\"{}\",\"start\":{},\"end\":{},\"confidence\":{:.2}}}",
                if first { "" } else { "," },
                f.kind.name(),
                f.start,
                f.end,
                f.confidence
            ),
            ScanFormat::Text => {
                writeln!(self.out, "{name}:{}-{}: {} ({:.2})", f.start, f.end, f.kind.name(), f.confidence)
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
                let sep = if self.sarif_first { "" } else { "," };
                self.sarif_first = false;
                write!(self.out, "{sep}{r}")
            }
        }
    }

    /// Scans one file, writing its findings as they are found (memory stays flat
    /// however many there are); returns their number.
    fn file(&mut self, path: &Path, tty: bool) -> anyhow::Result<u64> {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let show = tty && total > 64 << 20;
        let now = std::time::Instant::now();
        let name = path.display().to_string();
        let mut reader = Progress {
            inner: std::io::BufReader::new(file),
            read: 0,
            total,
            shown: if show { now } else { now + std::time::Duration::from_secs(1 << 30) },
            name: name.clone(),
        };
        if matches!(self.format, ScanFormat::Json) {
            let name_json = serde_json::to_string(&name).context("path")?;
            write!(self.out, "{{\"path\":{name_json},\"findings\":[").context("stdout")?;
        }
        let mut count = 0u64;
        let mut write_err = None;
        scan_reader(&mut reader, |f: Finding| {
            if let Err(e) = self.finding(&name, &f, count == 0) {
                write_err.get_or_insert(e);
            }
            count += 1;
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
        if let Some(e) = write_err {
            return Err(anyhow::Error::new(e).context("cannot write the findings"));
        }
        if matches!(self.format, ScanFormat::Json) {
            writeln!(self.out, "]}}").context("stdout")?;
        }
        if show {
            eprintln!();
        }
        Ok(count)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if matches!(self.format, ScanFormat::Sarif) {
            writeln!(self.out, "]}}]}}")?;
        }
        self.out.flush()
    }
}

/// Scans every file; exit 1 when personal data was found.
pub fn run(args: ScanArgs) -> Result<(), Failure> {
    let anonymiser = args.anonymise.as_deref().map(anonymiser).transpose()?;
    if anonymiser.is_some() && args.out.is_none() {
        return Err(refuse("--anonymise needs --out DIR for the anonymised copies"));
    }
    let out_dir = match (&anonymiser, &args.out) {
        (Some(_), Some(out)) => {
            Some(resolve(out).map_err(|e| refuse(format_args!("cannot read {}: {e}", out.display())))?)
        }
        _ => None,
    };
    let files = inputs(&args.paths, out_dir.as_deref()).map_err(|e| refuse(format_args!("{e:#}")))?;
    let copies = match &out_dir {
        Some(out) => Some(targets(&args.paths, &files, out)?),
        None => None,
    };
    let tty = std::io::stderr().is_terminal();
    let stdout = std::io::stdout();
    let mut report = Report { out: std::io::BufWriter::new(stdout.lock()), format: args.format, sarif_first: true };
    report.start().context("stdout")?;
    let mut any = false;
    for (i, input) in files.iter().enumerate() {
        any |= report.file(&input.shown, tty)? > 0;
        if let (Some(a), Some(copies)) = (&anonymiser, &copies) {
            anonymise_file(&input.shown, &copies[i], a)
                .with_context(|| format!("cannot anonymise {}", input.shown.display()))?;
        }
    }
    report.finish().context("stdout")?;
    if any {
        Err(Failure::Code(1))
    } else {
        Ok(())
    }
}

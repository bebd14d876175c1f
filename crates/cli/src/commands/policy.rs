//! `charter policy ...`.

use std::path::Path;

use anyhow::Context as _;
use charter_policy::diff::{self, Outcome};
use charter_policy::render::{disclosures, notice, ropa};
use charter_policy::{LoadedPolicy, TENSOROPERA, TENSOROPERA_NAME};

use crate::args::{DiffFormat, DisclosureFormat, NoticeFormat, PolicyCommand, RopaFormat};
use crate::Failure;

/// Loads a policy file, printing every diagnostic to stderr when it is invalid.
pub fn load_file(path: &Path) -> Result<LoadedPolicy, Failure> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read policy file {}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

fn parse(name: &str, text: &str) -> Result<LoadedPolicy, Failure> {
    charter_policy::load(name, text).map_err(|errors| {
        eprintln!("{errors}");
        Failure::Refused
    })
}

/// Loads `path`, or the embedded TensorOpera policy when `None`.
pub fn load_or_default(path: Option<&Path>) -> Result<LoadedPolicy, Failure> {
    match path {
        Some(p) => load_file(p),
        None => parse(TENSOROPERA_NAME, TENSOROPERA),
    }
}

fn print(text: &str) {
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
}

/// Runs a policy command.
pub fn run(cmd: PolicyCommand) -> Result<(), Failure> {
    match cmd {
        PolicyCommand::Check { file } => {
            let loaded = load_or_default(file.as_deref())?;
            let p = &loaded.policy;
            println!(
                "valid: version {} ({} categories, {} purposes, {} collection points, {} recipients), sha256 {}",
                p.version,
                p.categories.len(),
                p.purposes.len(),
                p.collection_points.len(),
                p.recipients.len(),
                loaded.sha256
            );
        }
        PolicyCommand::Render { file, format } => {
            let p = load_or_default(file.as_deref())?.policy;
            print(&match format {
                NoticeFormat::Md => notice::markdown(&p),
                NoticeFormat::Html => notice::html(&p),
            });
        }
        PolicyCommand::Ropa { file, format } => {
            let p = load_or_default(file.as_deref())?.policy;
            print(&match format {
                RopaFormat::Csv => ropa::csv(&p),
                RopaFormat::Json => ropa::json(&p),
            });
        }
        PolicyCommand::Disclosures { file, format } => {
            let p = load_or_default(file.as_deref())?.policy;
            print(&match format {
                DisclosureFormat::Md => disclosures::markdown(&p),
                DisclosureFormat::Json => disclosures::json(&p),
            });
        }
        PolicyCommand::Diff { old, new, format } => {
            let (old_p, new_p) = (load_file(&old), load_file(&new));
            let (old_p, new_p) = (old_p?.policy, new_p?.policy);
            let d = diff::diff(&old_p, &new_p);
            match format {
                DiffFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&d).context("cannot serialise the diff")?)
                }
                DiffFormat::Text => {
                    for c in &d.changes {
                        println!("{c}");
                    }
                    let material = d.changes.iter().filter(|c| c.material.is_some()).count();
                    println!("{} change(s), {material} material", d.changes.len());
                }
            }
            return match d.outcome() {
                Outcome::Unchanged => Ok(()),
                Outcome::Immaterial => Err(Failure::Code(1)),
                Outcome::Material => Err(Failure::Code(3)),
            };
        }
        PolicyCommand::Publish { .. } => {
            unreachable!("commands::run runs `policy publish`, which needs the data directory")
        }
        PolicyCommand::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&charter_policy::json_schema()).context("cannot serialise the schema")?
            );
        }
    }
    Ok(())
}

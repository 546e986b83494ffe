//! `replay`: reads every file source once, in event-time order, and writes alerts as JSON
//! lines to `--out` or standard output; a summary goes to standard error.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

pub fn main(config: &Path, out: Option<&Path>) -> Result<i32> {
    let cfg = super::load_config(config, false)?;
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            // Alerts name patients: owner-only, whatever the umask.
            crate::durable::private()
                .write(true)
                .create(true)
                .truncate(true)
                .open(p)
                .with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let summary = crate::replay::replay(&cfg, |a| {
        writeln!(sink, "{}", a.to_json_line())?;
        Ok(())
    })?;
    sink.flush()?;
    eprint!("{}", summary.render());
    Ok(0)
}

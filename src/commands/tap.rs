//! `tap`: what phiwatch makes of a feed, like `vector tap`. Each file of the chosen `file`
//! sources is read start to end, in file order, through the same decoding as `replay`,
//! `run` and `agent` (`ingest::Decoder`), and each canonical event is printed as one JSON
//! object a line on standard output; with `--rejects`, so is each rejected line with its
//! reason. Nothing goes to the logs, the metrics or the dead-letter file: it is what the
//! person running it asked to see.

use crate::config::SourceType;
use crate::ingest::history::expand;
use crate::ingest::{Decoder, Item, Limits};
use crate::source::{self, TailOptions};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

pub fn main(config: &Path, only: Option<&str>, limit: Option<usize>, rejects: bool) -> Result<i32> {
    let cfg = super::load_config(config, false)?;
    let tz = cfg.timezone()?;
    let sources: Vec<_> = cfg
        .sources
        .iter()
        .filter(|s| s.kind == SourceType::File && only.is_none_or(|n| n == s.name))
        .collect();
    if sources.is_empty() {
        match only {
            Some(n) => bail!("{}: no `file` source is named {n:?}", config.display()),
            None => bail!("{}: the config has no `file` source", config.display()),
        }
    }
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut left = limit.unwrap_or(usize::MAX);
    for s in sources {
        for path in expand(&s.paths)? {
            if left == 0 {
                break;
            }
            let mut decoder = Decoder::new(s, tz, Limits::from_config(&cfg))
                .with_context(|| format!("source {:?}", s.name))?;
            let opts = TailOptions {
                header: decoder.wants_header(),
                ..TailOptions::default()
            };
            let lines = source::read_once(&path, &opts)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let mut items = Vec::new();
            let shown: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
            let mut lines = lines.into_iter();
            let mut done = false;
            while left > 0 && !done {
                match lines.next() {
                    Some(line) => decoder.decode(line?, &mut items),
                    None => {
                        // What multi-line parsers still hold comes out at the end.
                        decoder.finish(&shown, &mut items);
                        done = true;
                    }
                }
                for item in items.drain(..) {
                    if left == 0 {
                        break;
                    }
                    match item {
                        Item::Event(e) => writeln!(out, "{}", e.to_json_line())?,
                        Item::Rejected {
                            file,
                            offset,
                            line,
                            reject,
                        } if rejects => writeln!(
                            out,
                            "{}",
                            serde_json::json!({"rejected": {
                                "source": s.name,
                                "file": &*file,
                                "offset": offset,
                                "reason": reject.reason,
                                "detail": reject.detail,
                                "line": line,
                            }})
                        )?,
                        Item::Ignored(kind) if rejects => writeln!(
                            out,
                            "{}",
                            serde_json::json!({"ignored": {"source": s.name, "kind": kind, "file": &*shown}})
                        )?,
                        Item::Rejected { .. } | Item::Ignored(_) => continue,
                    }
                    left -= 1;
                }
            }
        }
    }
    out.flush()?;
    Ok(0)
}

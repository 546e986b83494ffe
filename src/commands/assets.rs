//! `package-assets` (hidden): the man pages and shell completions, generated from the clap
//! definition in `cli` so they never drift from the real command line. The packaging script
//! (`deploy/package.sh`) runs it before `cargo deb`, which installs what it writes.

use crate::cli::Cli;
use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::Path;

/// The sections of `phiwatch(1)` that clap does not know.
const EXTRA: &str = r#".SH FILES
.TP
\fI/etc/phiwatch/phiwatch.toml\fR
The configuration (without \-\-config, \fBrun\fR and \fBcheck\fR use ./config/phiwatch.toml if it exists, else this file).
.TP
\fI/var/lib/phiwatch\fR
State: checkpoints, disk queues, engine snapshots (patient identifiers inside; mode 0600).
.TP
\fI/var/log/phiwatch\fR
The alert archive written by the file sink: dated, compressed files kept for [[sinks]] retention_days. Never removed by the package, not even on purge.
.SH EXIT STATUS
0 on success; 1 when \fBcheck\fR finds problems; 2 when a command fails; 78 (EX_CONFIG) when \fBrun\fR, \fBagent\fR or \fBengine\fR cannot start because of the configuration (the systemd units do not restart on it).
.SH ENVIRONMENT
.TP
\fBPHIWATCH_LOG\fR
Log level or filter (e.g. debug); default info. Under systemd (JOURNAL_STREAM set) each line carries its syslog priority, so \fBjournalctl \-p warning\fR works.
.SH SEE ALSO
\fBsystemctl\fR(1), \fBjournalctl\fR(1), /usr/share/doc/phiwatch/README.md.gz
"#;

pub fn main(out: &Path) -> Result<i32> {
    let man = out.join("man");
    let completions = out.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    page.extend_from_slice(EXTRA.as_bytes());
    std::fs::write(man.join("phiwatch.1"), page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // clap names take `&'static str`; a dozen short strings, once per run.
        let name: &'static str = format!("phiwatch-{}", sub.get_name()).leak();
        let mut page = Vec::new();
        clap_mangen::Man::new(sub.clone().name(name).bin_name(name)).render(&mut page)?;
        std::fs::write(man.join(format!("{name}.1")), page)?;
    }
    for (shell, file) in [
        (Shell::Bash, "phiwatch"),
        (Shell::Zsh, "_phiwatch"),
        (Shell::Fish, "phiwatch.fish"),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "phiwatch", &mut text);
        std::fs::write(completions.join(file), text)?;
    }
    println!("man pages and completions written to {}", out.display());
    Ok(0)
}

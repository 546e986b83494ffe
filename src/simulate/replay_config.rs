//! The `phiwatch.toml` written next to the simulated data, so that
//! `phiwatch replay --config DIR/phiwatch.toml` reads it all. Paths are relative to the
//! config (the contract resolves them against its folder), so the folder can be moved.

use super::clock::TZ_NAME;
use super::writers::EPIC_METRICS;
use super::{SimOptions, System};
use std::fmt::Write as _;

pub fn render(opts: &SimOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by `phiwatch simulate --seed {} --staff {} --days {}` (from {}).\n# Replay: phiwatch replay --config phiwatch.toml --out alerts.ndjson\n",
        opts.seed, opts.staff, opts.days, opts.start
    );
    s.push_str(
        "[reference]\nstaff = \"staff.csv\"\npatients = \"patients.csv\"\ncare = \"care.csv\"\n\n",
    );
    let _ = writeln!(s, "[engine]\ntimezone = \"{TZ_NAME}\"\n");
    for sys in System::ALL {
        s.push_str(&source(sys));
        s.push('\n');
    }
    s.push_str("[[sinks]]\ntype = \"file\"\npath = \"alerts.ndjson\"\nformat = \"json\"\n\n[state]\ndir = \"state\"\n");
    s
}

/// One `[[sources]]` table. Public so the benchmark can write one config per format.
pub fn source(sys: System) -> String {
    let mut s = String::new();
    let comment = match sys {
        System::Fhir => {
            "# Clinical EHR (wards, ICU, ED, clinics): FHIR R4 AuditEvent, one per line."
        }
        System::Atna => {
            "# Radiology, laboratory and pharmacy: IHE ATNA audit messages over RFC 5424 syslog."
        }
        System::Epic => {
            "# Registration, HIM, billing, IT: Epic-like access export, local time, no offset."
        }
        System::Files => {
            "# Endpoint agent: canonical file events (USB, network shares, cloud folders)."
        }
    };
    let _ = writeln!(
        s,
        "[[sources]]\n{comment}\nname = \"{}\"\ntype = \"file\"\npaths = [\"{}/*.{}\"]\nformat = \"{}\"",
        sys.source_name(),
        sys.dir(),
        sys.ext(),
        sys.format()
    );
    if sys == System::Epic {
        let _ = writeln!(s, "delimiter = \"|\"\ntimezone = \"{TZ_NAME}\"");
        s.push_str("[sources.fields]\nts = \"ACCESS_TIME\"\nuser = \"USER_ID\"\npatient = \"PAT_MRN_ID\"\naction = \"METRIC_NAME\"\nhost = \"WORKSTATION_ID\"\nrecords = \"RECORD_COUNT\"\n[sources.actions]\n");
        for (metric, action) in EPIC_METRICS {
            let _ = writeln!(s, "\"{metric}\" = \"{action}\"");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_and_validates() {
        let text = render(&SimOptions::default());
        let mut cfg = crate::config::Config::from_toml(&text).unwrap();
        cfg.resolve(std::path::Path::new("/data/sim"));
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        assert_eq!(cfg.sources.len(), 4);
        let epic = &cfg.sources[2];
        assert_eq!(epic.actions.len(), EPIC_METRICS.len());
        assert_eq!(epic.fields["user"], "USER_ID");
        assert_eq!(cfg.engine.timezone, "America/Chicago");
    }
}

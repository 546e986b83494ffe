//! Presets for exports people really have: a `[[sources]]` entry with `preset = "..."` is
//! the same as writing its `format`, `delimiter`, `[sources.fields]` and
//! `[sources.actions]` by hand; keys written explicitly override the preset's.
//!
//! A column given as `"A|B"` is whichever of the two the file's header has (sites export
//! either the employee's login or the internal user id); one ending in `?` is optional:
//! a file without it gives events without that field.

use super::{Format, SourceConfig};

pub struct Preset {
    pub name: &'static str,
    delimiter: &'static str,
    fields: &'static [(&'static str, &'static str)],
    actions: &'static [(&'static str, &'static str)],
    no_patient: &'static [&'static str],
}

/// Epic Clarity `ACCESS_LOG` extracts with the columns the Clarity dictionary and the
/// Purview Epic connector publish (pipe-separated). The metric names mapped are the ones
/// seen in published material; add the rest of a site's in `[sources.actions]`.
const EPIC_CLARITY: Preset = Preset {
    name: "epic-clarity",
    delimiter: "|",
    fields: &[
        ("ts", "ACCESS_TIME"),
        ("action", "METRIC_NAME"),
        ("host", "WORKSTATION_ID"),
        ("patient", "PAT_MRN_ID"),
        ("user", "SYSTEM_LOGIN|USER_ID"),
        // The break-the-glass reason (`ZC_BTG_REASON.NAME`), empty unless the access
        // broke the glass; optional, since not every site's extract has it.
        ("purpose", "BTG_REASON?"),
    ],
    actions: &[
        (
            "AN EXISTING PATIENT IS SELECTED FROM PATIENT LOOKUP",
            "view",
        ),
        ("PATIENT DEMOGRAPHICS FORM ACCESSED", "view"),
        ("THE PROBLEM LIST IS VIEWED", "view"),
        ("PEND A NOTE", "update"),
        ("REPORT EXPORTED", "export"),
    ],
    no_patient: &[],
};

/// OpenEMR's `log` table exported as CSV (`date`, `event`, `user`, `patient_id`,
/// `success`, ...). Opening a chart is `event = view`; SQL-level events are
/// `<category>-<select|insert|update|delete|replace>`.
const OPENEMR_LOG: Preset = Preset {
    name: "openemr-log",
    delimiter: ",",
    fields: &[
        ("ts", "date"),
        ("action", "event"),
        ("user", "user"),
        ("patient", "patient_id"),
        ("outcome", "success"),
    ],
    actions: &[
        ("view", "view"),
        ("patient-record-select", "view"),
        ("patient-record-insert", "create"),
        ("patient-record-update", "update"),
        ("patient-record-replace", "update"),
        ("patient-record-delete", "delete"),
        ("login", "login"),
        ("logout", "logout"),
    ],
    // `patient_id` is 0 for events about no patient (logins, settings, reports).
    no_patient: &["0"],
};

pub const ALL: [Preset; 2] = [EPIC_CLARITY, OPENEMR_LOG];

/// Fills a source's unset keys from its preset. An unknown preset name is an error
/// naming the known ones.
pub fn apply(s: &mut SourceConfig) -> Result<(), String> {
    let Some(name) = s.preset.as_deref() else {
        return Ok(());
    };
    let Some(p) = ALL.iter().find(|p| p.name == name) else {
        let names: Vec<&str> = ALL.iter().map(|p| p.name).collect();
        let near = crate::table::nearest(name, names.iter().copied())
            .map(|n| format!("did you mean {n:?}? "))
            .unwrap_or_default();
        return Err(format!(
            "preset {name:?} is not known; {near}the presets are {}",
            names.join(", ")
        ));
    };
    s.format.get_or_insert(Format::Csv);
    s.delimiter.get_or_insert_with(|| p.delimiter.to_string());
    for (field, column) in p.fields {
        s.fields
            .entry(field.to_string())
            .or_insert_with(|| column.to_string());
    }
    for (raw, action) in p.actions {
        s.actions
            .entry(raw.to_string())
            .or_insert_with(|| action.to_string());
    }
    if s.no_patient.is_empty() {
        s.no_patient = p.no_patient.iter().map(|v| v.to_string()).collect();
    }
    Ok(())
}

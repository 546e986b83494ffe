//! `ecs`: an Elastic Common Schema 8.11 alert document (`event.kind: alert`, the kind for
//! detections made outside the Elastic Stack).
//!
//! | field | value |
//! |---|---|
//! | `@timestamp` | alert `ts` (RFC 3339, UTC, ms) |
//! | `event.kind` / `category` / `type` | `alert` / `["intrusion_detection"]` / `["info"]` |
//! | `event.severity` | 3, 5, 8, 10 (see [`crate::format`]) |
//! | `event.risk_score`, `event.risk_score_norm` | the score, 0-100, as floats |
//! | `event.id` | the alert id |
//! | `event.start`, `event.end` | `first_seen`, `last_seen` |
//! | `event.dataset`, `event.provider`, `event.module` | `phiwatch.alert`, `phiwatch`, `phiwatch` |
//! | `event.reason` | the reasons joined with `; ` |
//! | `rule.id`, `rule.name` | the detector |
//! | `rule.description` | the detector's `description` (its `title` when it has none; absent for a detector no longer loaded) |
//! | `user.id`, `user.name`, `related.user` | the staff account |
//! | `message` | the summary |
//! | `observer.vendor` / `product` / `version` | `phiwatch` / `phiwatch` / crate version |
//! | `ecs.version` | `8.11.0` |
//! | `phiwatch.*` | what ECS has no field for: `patients` (absent when omitted), `patient_ids` (the policy), `reasons`, `events`, `severity`, `score`, `follows` (a follow-up's: the `event.id` of the alert its finding raised at once; absent otherwise) |
//!
//! ECS has no patient field, hence the custom `phiwatch` namespace. Nor has it a field for
//! "this alert follows that one" (`event.reference` is a URL, `related.*` holds users,
//! hosts, IPs and hashes), so `follows` is custom too.

use super::{rfc3339, severity_0_10, PRODUCT, VENDOR, VERSION};
use crate::alert::Alert;
use crate::pseudonym::PatientPolicy;
use serde_json::{json, Value};

pub const ECS_VERSION: &str = "8.11.0";

pub fn render(alert: &Alert, policy: &PatientPolicy) -> String {
    let mut phiwatch = json!({
        "patient_ids": policy.name(),
        "reasons": alert.reasons,
        "events": alert.events,
        "severity": alert.severity.as_str(),
        "score": alert.score,
    });
    if !matches!(policy, PatientPolicy::Omitted) {
        phiwatch["patients"] = json!(alert.patients);
    }
    if let Some(first) = &alert.follows {
        phiwatch["follows"] = json!(first);
    }
    if let Some(case) = &alert.case {
        phiwatch["case"] = json!(case);
    }
    if let Some(n) = alert.case_alerts {
        phiwatch["case_alerts"] = json!(n);
    }
    if let Some(r) = alert.risk {
        phiwatch["risk"] = json!(r);
    }
    let score = f64::from(alert.score);
    let mut doc: Value = json!({
        "@timestamp": rfc3339(&alert.ts),
        "ecs": {"version": ECS_VERSION},
        "message": alert.summary,
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["info"],
            "severity": severity_0_10(alert.severity),
            "risk_score": score,
            "risk_score_norm": score,
            "id": alert.id,
            "start": rfc3339(&alert.first_seen),
            "end": rfc3339(&alert.last_seen),
            "dataset": "phiwatch.alert",
            "provider": "phiwatch",
            "module": "phiwatch",
            "reason": alert.reasons.join("; "),
        },
        "rule": {
            "id": alert.detector,
            "name": alert.detector,
        },
        "user": {"id": alert.user, "name": alert.user},
        "related": {"user": [alert.user]},
        "observer": {"vendor": VENDOR, "product": PRODUCT, "version": VERSION, "type": "ids"},
        "phiwatch": phiwatch,
    });
    // The rule's own words, not this alert's summary (which is `message`).
    if let Some((title, description)) = crate::detect::describe(&alert.detector) {
        let words = if description.is_empty() {
            title
        } else {
            description
        };
        doc["rule"]["description"] = json!(words);
    }
    doc.to_string()
}

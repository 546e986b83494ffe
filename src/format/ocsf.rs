//! `ocsf`: an OCSF 1.8.0 Detection Finding (`class_uid` 2004, category 2 Findings,
//! activity 1 Create, `type_uid` 200401).
//!
//! | attribute | value |
//! |---|---|
//! | `time` | alert `ts`, epoch ms (the finding's event time, so replays are identical) |
//! | `severity_id` / `severity` | 2 Low, 3 Medium, 4 High, 5 Critical |
//! | `start_time`, `end_time` | `first_seen`, `last_seen`, epoch ms |
//! | `count` | number of evidence events |
//! | `risk_score` | the score, 0-100 |
//! | `message` | the summary |
//! | `status_id` / `is_alert` | 1 New / true |
//! | `metadata` | `version` 1.8.0, `product` {name, vendor_name, version}, `uid` = alert id |
//! | `finding_info` | `uid` alert id, `title` summary, `desc` reasons joined with `; `, `analytic` {type_id 1 Rule, uid/name = detector}, `types` ["Insider Privacy", detector], `created_time` = `time` |
//! | `finding_info.related_events` | a follow-up only: one Related Event/Finding {`uid` = `follows`, the alert its finding raised at once, whose `metadata.uid` it is; `type_uid` 200401, `type_name`}; absent otherwise |
//! | `evidences` | one, `actor.user` {uid, name} = the staff account |
//! | `resources` | one per patient: {uid, type "Patient Record", role_id 1 Target}; absent when none or omitted |
//! | `unmapped.phiwatch` | `severity`, `patient_ids` (the policy), `reasons`, `follows` (a follow-up's, as above; absent otherwise) |
//!
//! `finding_info.related_events` (array of `related_event`, whose `uid` is required and
//! equals the related OCSF event's `metadata.uid`) is in OCSF 1.8.0 (`objects/finding_info.json`,
//! `objects/related_event.json` at tag v1.8.0).

use super::{epoch_ms, ocsf_severity, PRODUCT, VENDOR, VERSION};
use crate::alert::Alert;
use crate::pseudonym::PatientPolicy;
use serde_json::{json, Value};

pub const OCSF_VERSION: &str = "1.8.0";
pub const CLASS_UID: u32 = 2004;
pub const CATEGORY_UID: u32 = 2;
pub const ACTIVITY_CREATE: u32 = 1;
pub const TYPE_UID: u32 = CLASS_UID * 100 + ACTIVITY_CREATE;

pub fn render(alert: &Alert, policy: &PatientPolicy) -> String {
    let (severity_id, severity) = ocsf_severity(alert.severity);
    let time = epoch_ms(&alert.ts);
    let mut doc: Value = json!({
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": TYPE_UID,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity,
        "time": time,
        "start_time": epoch_ms(&alert.first_seen),
        "end_time": epoch_ms(&alert.last_seen),
        "count": alert.events,
        "risk_score": alert.score,
        "message": alert.summary,
        "status_id": 1,
        "status": "New",
        "is_alert": true,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": alert.id,
            "product": {"name": PRODUCT, "vendor_name": VENDOR, "version": VERSION},
        },
        "finding_info": {
            "uid": alert.id,
            "title": alert.summary,
            "desc": alert.reasons.join("; "),
            "analytic": {"type_id": 1, "type": "Rule", "uid": alert.detector, "name": alert.detector},
            "types": ["Insider Privacy", alert.detector],
            "created_time": time,
        },
        "evidences": [{"actor": {"user": {"uid": alert.user, "name": alert.user}}}],
        "unmapped": {"phiwatch": {
            "severity": alert.severity.as_str(),
            "patient_ids": policy.name(),
            "reasons": alert.reasons,
        }},
    });
    if let Some(first) = &alert.follows {
        doc["finding_info"]["related_events"] = json!([{
            "uid": first,
            "type_uid": TYPE_UID,
            "type_name": "Detection Finding: Create",
        }]);
        doc["unmapped"]["phiwatch"]["follows"] = json!(first);
    }
    if let Some(case) = &alert.case {
        doc["unmapped"]["phiwatch"]["case"] = json!(case);
    }
    if let Some(n) = alert.case_alerts {
        doc["unmapped"]["phiwatch"]["case_alerts"] = json!(n);
    }
    if let Some(r) = alert.risk {
        doc["unmapped"]["phiwatch"]["risk"] = json!(r);
    }
    if !alert.patients.is_empty() {
        doc["resources"] = alert
            .patients
            .iter()
            .map(|p| json!({"uid": p, "type": "Patient Record", "role_id": 1}))
            .collect();
    }
    doc.to_string()
}

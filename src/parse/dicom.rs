//! DICOM (DCM) audit codes shared by the FHIR AuditEvent and ATNA parsers, which use
//! the same code system for event types, login/logout, emergency override and media.
//!
//! Sources: DICOM PS3.16 CID 400 (audit event ids), CID 401/403 (event type codes,
//! checked against a FHIR rendering of the DICOM terminology) and CID 405 (media types).
//! Real senders write display texts instead of codes often enough (OpenEMR writes the
//! literal placeholder `code="eventIDcode"` with `displayName="Patient Record"`), so each
//! lookup also accepts the code meaning as text.

use crate::event::{Action, Media};

/// What kind of audit event a DCM event id (or its display text) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// 110110 Patient Record: the action comes from the C/R/U/D action code.
    PatientRecord,
    /// 110103 DICOM Instances Accessed: images read, made or changed; like a chart access.
    InstancesAccessed,
    /// 110106 Export (data leaving the system: media, disclosure).
    Export,
    /// 110107 Import: data brought in, which creates records.
    Import,
    /// 110112 Query.
    Query,
    /// 110114 User Authentication (login or logout, told apart by the type code).
    UserAuthentication,
    /// Senders that name the event type directly.
    Login,
    Logout,
    /// 110113 Security Alert: only emergency override (break-glass) is a staff action.
    SecurityAlert,
    /// 110104 DICOM Instances Transferred and 110102 Begin Transferring DICOM Instances:
    /// images of a patient moved between nodes (C received, R sent, U, D).
    InstancesTransferred,
    /// 110105 DICOM Study Deleted.
    StudyDeleted,
    /// 110109 Order Record and 110111 Procedure Record: like a chart, by action code.
    ClinicalRecord,
    /// Not a person's access to patient data; the label it is counted under as ignored.
    Ignored(&'static str),
    /// Anything else.
    Other,
}

/// Reads an event id from its code, falling back to the display text.
pub(crate) fn event_kind(code: Option<&str>, text: Option<&str>) -> EventKind {
    let by_code = match code.map(str::trim) {
        Some("110110") => Some(EventKind::PatientRecord),
        Some("110103") => Some(EventKind::InstancesAccessed),
        Some("110106") => Some(EventKind::Export),
        Some("110107") => Some(EventKind::Import),
        Some("110112") => Some(EventKind::Query),
        Some("110114") => Some(EventKind::UserAuthentication),
        Some("110122") => Some(EventKind::Login),
        Some("110123") => Some(EventKind::Logout),
        Some("110113") => Some(EventKind::SecurityAlert),
        Some("110102" | "110104") => Some(EventKind::InstancesTransferred),
        Some("110105") => Some(EventKind::StudyDeleted),
        Some("110109" | "110111") => Some(EventKind::ClinicalRecord),
        Some("110100") => Some(EventKind::Ignored(super::ignored::APPLICATION_ACTIVITY)),
        Some("110101") => Some(EventKind::Ignored(super::ignored::AUDIT_LOG_USED)),
        Some("110108") => Some(EventKind::Ignored(super::ignored::NETWORK_ENTRY)),
        _ => None,
    };
    if let Some(kind) = by_code {
        return kind;
    }
    let text = text.map(str::trim).unwrap_or("");
    let is = |s: &str| text.eq_ignore_ascii_case(s);
    if is("Patient Record") {
        EventKind::PatientRecord
    } else if is("DICOM Instances Accessed") {
        EventKind::InstancesAccessed
    } else if is("Export") || is("Data Export") {
        EventKind::Export
    } else if is("Import") || is("Data Import") {
        EventKind::Import
    } else if is("Query") {
        EventKind::Query
    } else if is("User Authentication") {
        EventKind::UserAuthentication
    } else if is("Login") {
        EventKind::Login
    } else if is("Logout") {
        EventKind::Logout
    } else if is("Security Alert") {
        EventKind::SecurityAlert
    } else if is("DICOM Instances Transferred") || is("Begin Transferring DICOM Instances") {
        EventKind::InstancesTransferred
    } else if is("DICOM Study Deleted") {
        EventKind::StudyDeleted
    } else if is("Order Record") || is("Procedure Record") {
        EventKind::ClinicalRecord
    } else if is("Application Activity") {
        EventKind::Ignored(super::ignored::APPLICATION_ACTIVITY)
    } else if is("Audit Log Used") {
        EventKind::Ignored(super::ignored::AUDIT_LOG_USED)
    } else if is("Network Entry") {
        EventKind::Ignored(super::ignored::NETWORK_ENTRY)
    } else {
        EventKind::Other
    }
}

/// The FHIR/ATNA action code C/R/U/D as a canonical action. `E` (execute) and anything
/// else is `None`: what it means depends on the event type.
pub(crate) fn crud(code: &str) -> Option<Action> {
    match code.trim() {
        "C" | "c" => Some(Action::Create),
        "R" | "r" => Some(Action::View),
        "U" | "u" => Some(Action::Update),
        "D" | "d" => Some(Action::Delete),
        _ => None,
    }
}

/// 110123 Logout among event type codes (by code or text).
pub(crate) fn is_logout(code: Option<&str>, text: Option<&str>) -> bool {
    code.map(str::trim) == Some("110123")
        || text.is_some_and(|t| t.trim().eq_ignore_ascii_case("Logout"))
}

/// 110127 Emergency Override Started, DICOM's name for break-the-glass.
pub(crate) fn is_emergency_override(code: Option<&str>, text: Option<&str>) -> bool {
    code.map(str::trim) == Some("110127")
        || text.is_some_and(|t| t.trim().eq_ignore_ascii_case("Emergency Override Started"))
}

/// Where exported data went, from a CID 405 media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaClass {
    Media(Media),
    /// 110038 Paper Document: an export to paper is a print.
    Paper,
}

pub(crate) fn media_class(code: Option<&str>, text: Option<&str>) -> Option<MediaClass> {
    let by_code = match code.map(str::trim) {
        // USB disk emulation, CD, DVD, Compact Flash, Multi-media Card, SD card.
        Some("110030" | "110032" | "110033" | "110034" | "110035" | "110036") => {
            Some(MediaClass::Media(Media::Removable))
        }
        // Email (110031 in older editions, 110157 now) and URI.
        Some("110031" | "110157" | "110037") => Some(MediaClass::Media(Media::Network)),
        Some("110038") => Some(MediaClass::Paper),
        _ => None,
    };
    if by_code.is_some() {
        return by_code;
    }
    let text = text?.trim().to_ascii_lowercase();
    if text.contains("paper") {
        Some(MediaClass::Paper)
    } else if ["usb", "cd", "dvd", "flash", "card", "removable"]
        .iter()
        .any(|k| {
            text.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == *k)
        })
    {
        Some(MediaClass::Media(Media::Removable))
    } else if text.contains("email") || text.contains("e-mail") || text == "uri" {
        Some(MediaClass::Media(Media::Network))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_texts() {
        assert_eq!(event_kind(Some("110110"), None), EventKind::PatientRecord);
        assert_eq!(
            event_kind(Some("eventIDcode"), Some("Patient Record")),
            EventKind::PatientRecord
        );
        assert_eq!(event_kind(None, Some("login")), EventKind::Login);
        assert_eq!(
            event_kind(Some("110100"), None),
            EventKind::Ignored(super::super::ignored::APPLICATION_ACTIVITY)
        );
        assert_eq!(event_kind(Some("110199"), None), EventKind::Other);
        assert_eq!(crud(" r "), Some(Action::View));
        assert_eq!(crud("E"), None);
    }

    #[test]
    fn media() {
        assert_eq!(
            media_class(Some("110030"), None),
            Some(MediaClass::Media(Media::Removable))
        );
        assert_eq!(
            media_class(Some("x"), Some("USB Disk Emulation")),
            Some(MediaClass::Media(Media::Removable))
        );
        assert_eq!(
            media_class(None, Some("Paper Document")),
            Some(MediaClass::Paper)
        );
        assert_eq!(media_class(None, Some("Film")), None);
    }
}

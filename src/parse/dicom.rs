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

/// What a DCM event type code says about the event it qualifies: CID 401 (the types of
/// Application Activity, User Authentication and Network Entry) and CID 403 (Security
/// Alert types), 110120-110142.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeKind {
    Login,
    Logout,
    /// 110127 Emergency Override Started: break-the-glass.
    EmergencyOverride,
    /// A type of an event that is not a person's access to patient data; the label it is
    /// counted under as ignored.
    Ignored(&'static str),
}

/// The event type codes 110120-110142 with their code meanings (PS3.16 CID 401/403).
const TYPE_CODES: [(&str, &str, TypeKind); 23] = {
    use super::ignored::{APPLICATION_ACTIVITY, NETWORK_ENTRY, SECURITY_ALERT};
    use TypeKind::*;
    [
        ("110120", "Application Start", Ignored(APPLICATION_ACTIVITY)),
        ("110121", "Application Stop", Ignored(APPLICATION_ACTIVITY)),
        ("110122", "Login", Login),
        ("110123", "Logout", Logout),
        ("110124", "Attach", Ignored(NETWORK_ENTRY)),
        ("110125", "Detach", Ignored(NETWORK_ENTRY)),
        ("110126", "Node Authentication", Ignored(SECURITY_ALERT)),
        ("110127", "Emergency Override Started", EmergencyOverride),
        ("110128", "Network Configuration", Ignored(SECURITY_ALERT)),
        ("110129", "Security Configuration", Ignored(SECURITY_ALERT)),
        ("110130", "Hardware Configuration", Ignored(SECURITY_ALERT)),
        ("110131", "Software Configuration", Ignored(SECURITY_ALERT)),
        (
            "110132",
            "Use of Restricted Function",
            Ignored(SECURITY_ALERT),
        ),
        ("110133", "Audit Recording Stopped", Ignored(SECURITY_ALERT)),
        ("110134", "Audit Recording Started", Ignored(SECURITY_ALERT)),
        (
            "110135",
            "Object Security Attributes Changed",
            Ignored(SECURITY_ALERT),
        ),
        ("110136", "Security Roles Changed", Ignored(SECURITY_ALERT)),
        (
            "110137",
            "User Security Attributes Changed",
            Ignored(SECURITY_ALERT),
        ),
        // The end of an override is not an access: the start was the break-glass.
        (
            "110138",
            "Emergency Override Stopped",
            Ignored(SECURITY_ALERT),
        ),
        (
            "110139",
            "Remote Service Operation Started",
            Ignored(SECURITY_ALERT),
        ),
        (
            "110140",
            "Remote Service Operation Stopped",
            Ignored(SECURITY_ALERT),
        ),
        (
            "110141",
            "Local Service Operation Started",
            Ignored(SECURITY_ALERT),
        ),
        (
            "110142",
            "Local Service Operation Stopped",
            Ignored(SECURITY_ALERT),
        ),
    ]
};

/// Reads an event type code from its code, falling back to the code meaning. `None` for
/// anything outside 110120-110142 (IHE transaction codes such as `ITI-47`, site codes).
pub(crate) fn type_kind(code: Option<&str>, text: Option<&str>) -> Option<TypeKind> {
    if let Some(code) = code.map(str::trim) {
        if let Some((_, _, kind)) = TYPE_CODES.iter().find(|(c, _, _)| *c == code) {
            return Some(*kind);
        }
    }
    let text = text?.trim();
    TYPE_CODES
        .iter()
        .find(|(_, name, _)| name.eq_ignore_ascii_case(text))
        .map(|(_, _, kind)| *kind)
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
    fn every_event_type_code() {
        use super::super::ignored::{APPLICATION_ACTIVITY, NETWORK_ENTRY, SECURITY_ALERT};
        let want = |n: u32| match n {
            110120 | 110121 => TypeKind::Ignored(APPLICATION_ACTIVITY),
            110122 => TypeKind::Login,
            110123 => TypeKind::Logout,
            110124 | 110125 => TypeKind::Ignored(NETWORK_ENTRY),
            110127 => TypeKind::EmergencyOverride,
            _ => TypeKind::Ignored(SECURITY_ALERT),
        };
        for n in 110120..=110142u32 {
            let code = n.to_string();
            assert_eq!(type_kind(Some(&code), None), Some(want(n)), "{n}");
            // The code meaning alone finds the same kind.
            let (_, name, _) = TYPE_CODES.iter().find(|(c, _, _)| *c == code).unwrap();
            assert_eq!(type_kind(Some("x"), Some(name)), Some(want(n)), "{name}");
        }
        assert_eq!(
            type_kind(None, Some(" emergency override started ")),
            Some(TypeKind::EmergencyOverride)
        );
        assert_eq!(type_kind(Some("110119"), None), None);
        assert_eq!(type_kind(Some("110143"), None), None);
        assert_eq!(type_kind(Some("ITI-47"), Some("PDQ Query")), None);
        assert_eq!(type_kind(None, None), None);
    }

    #[test]
    fn every_event_id_has_a_kind() {
        // 110100-110114: each event id in CID 400 is mapped or ignored, never Other.
        for n in 110100..=110114u32 {
            let kind = event_kind(Some(&n.to_string()), None);
            assert_ne!(kind, EventKind::Other, "{n}");
        }
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

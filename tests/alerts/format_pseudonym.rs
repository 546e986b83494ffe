//! Patient pseudonyms: stable, keyed, and the plain/omitted policies.

use crate::support::alert::{sample, KEY};
use phiwatch::pseudonym::{self, pseudonymise, PatientPolicy, PseudonymKey};

#[test]
fn stable_keyed_and_case_insensitive() {
    let k = PseudonymKey::new(KEY);
    let p = pseudonymise(&k, "MRN00012345");
    assert!(p.starts_with("pt-") && p.len() == 3 + 32, "{p}");
    assert!(p[3..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(p, pseudonymise(&k, " mrn00012345 "));
    assert_ne!(p, pseudonymise(&k, "MRN00012346"));
    assert_ne!(
        p,
        pseudonymise(&PseudonymKey::new(b"another-key-0123456789"), "MRN00012345")
    );
    // Known answer: HMAC-SHA256("test-key-0123456789abcdef", "mrn00012345")[..16].
    assert_eq!(p, "pt-".to_string() + &known_hmac());
}

fn known_hmac() -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(KEY).unwrap();
    mac.update(b"mrn00012345");
    hex::encode(&mac.finalize().into_bytes()[..16])
}

#[test]
fn policies_on_an_alert() {
    let a = sample();
    assert_eq!(*PatientPolicy::Plain.apply(&a), a);

    let k = PseudonymKey::new(KEY);
    let p = PatientPolicy::Pseudonymised(k.clone())
        .apply(&a)
        .into_owned();
    let (p1, p2) = (pseudonymise(&k, "MRN00012345"), pseudonymise(&k, "mrn-77"));
    assert_eq!(p.patients, [p1.clone(), p2.clone()]);
    assert_eq!(p.reasons[0], format!("opened {p1} three times"));
    assert_eq!(
        p.reasons[1],
        format!("shares surname with patient {p2} | flagged")
    );
    assert_eq!(p.reasons[2], a.reasons[2]);
    assert_eq!(
        (p.id, p.user, p.summary),
        (a.id.clone(), a.user.clone(), a.summary.clone())
    );

    let o = PatientPolicy::Omitted.apply(&a).into_owned();
    assert!(o.patients.is_empty());
    assert_eq!(o.reasons[0], "opened [patient] three times");
    assert_eq!(
        o.reasons[1],
        "shares surname with patient [patient] | flagged"
    );
}

#[test]
fn only_whole_ids_are_replaced() {
    let mut a = sample();
    a.patients = vec!["p1".into()];
    a.reasons = vec!["p1 and p10 and xp1 and P1.".into()];
    a.summary = "chart p1".into();
    let o = PatientPolicy::Omitted.apply(&a).into_owned();
    assert_eq!(o.reasons[0], "[patient] and p10 and xp1 and [patient].");
    assert_eq!(o.summary, "chart [patient]");
}

#[test]
fn key_file_is_created_once_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/pseudonym.key");
    let k1 = pseudonym::load_or_create_key(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64, "32 random bytes in hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let k2 = pseudonym::load_or_create_key(&path).unwrap();
    assert_eq!(k1, k2, "the same key on the next start");
    assert_eq!(pseudonymise(&k1, "x"), pseudonymise(&k2, "x"));

    let short = dir.path().join("short.key");
    std::fs::write(&short, "abc\n").unwrap();
    let err = format!("{:#}", pseudonym::load_key(&short).unwrap_err());
    assert!(err.contains("at least 16"), "{err}");
    let err = format!(
        "{:#}",
        pseudonym::load_key(&dir.path().join("none")).unwrap_err()
    );
    assert!(err.contains("openssl rand -hex 32"), "{err}");
    assert_eq!(format!("{k1:?}"), "PseudonymKey(64 bytes)");
}

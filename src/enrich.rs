//! Enrichment: joins a canonical event with the reference data into the facts detectors
//! ask about. Detectors never look at reference tables themselves; they see only the
//! named [`Field`]s of an [`Enriched`] event, which keeps rules declarative and lets
//! `check` reject a rule that names a fact that does not exist.

use crate::event::{key_cow, trim_id, Action, Event};
use crate::reference::care::CareFacts;
use crate::reference::symbols::Sym;
use crate::reference::{Patient, PatientRef, Reference, StaffMember, UserRef};
use chrono::{DateTime, Datelike, NaiveDate, Offset, Timelike, Utc};
use chrono_tz::Tz;
use std::borrow::Cow;

/// A value a rule can compare.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Str(&'a str),
}

macro_rules! fields {
    ($($variant:ident => $name:literal : $doc:literal),* $(,)?) => {
        /// Every fact a rule may name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Field { $($variant),* }

        impl Field {
            pub const ALL: &'static [Field] = &[$(Field::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(Field::$variant => $name),* }
            }

            /// One line saying what the field holds, for `check` and the README.
            pub fn doc(self) -> &'static str {
                match self { $(Field::$variant => $doc),* }
            }

            pub fn parse(name: &str) -> Option<Field> {
                match name { $($name => Some(Field::$variant),)* _ => None }
            }
        }
    };
}

fields! {
    Action => "action": "canonical action (view, search, export, print, file_write, ...)",
    Outcome => "outcome": "success or failure",
    Records => "records": "patient records an export, print or file holds",
    Bytes => "bytes": "file size of a file event",
    Media => "media": "removable, network, cloud or local (file events)",
    Host => "host": "workstation or host",
    Source => "source": "name of the source the event came from",
    Path => "path": "file path (file events)",
    Purpose => "purpose": "why the access happened as the source coded it, e.g. TREAT, or BTG / ETREAT for break-the-glass (FHIR purposeOfEvent / authorization)",
    Hour => "time.hour": "local hour of day 0-23 in engine.timezone",
    Weekday => "time.weekday": "local day of week: mon, tue, ... sun",
    Weekend => "time.weekend": "true on Saturday and Sunday",
    UserId => "user.id": "the staff account",
    UserKnown => "user.known": "the account is on the staff roster",
    UserRole => "user.role": "role from the roster",
    UserDepartment => "user.department": "department from the roster",
    UserTerminated => "user.terminated": "the event falls on or after the account's termination_date",
    UserDaysSinceTermination => "user.days_since_termination": "days since termination_date (0 on that day)",
    UserBeforeHire => "user.before_hire": "the event falls before the account's hire_date",
    UserUsualHours => "user.usual_hours": "the time is within the user's usual working hours (at least 2% of their past chart accesses within an hour of it), or their history is too short to tell",
    PatientId => "patient.id": "the patient concerned",
    PatientKnown => "patient.known": "the patient is in the patient directory",
    PatientVip => "patient.vip": "the patient is flagged VIP",
    PatientDeceased => "patient.deceased": "the patient died on or before the event's day",
    PatientDaysSinceDeath => "patient.days_since_death": "days since deceased_date",
    PatientEmployee => "patient.employee": "the patient is a member of staff",
    RelSelf => "rel.self": "the patient is the user",
    RelFamilyName => "rel.family_name": "patient and user share a family name",
    RelHousehold => "rel.household": "patient and user share a street address and postcode",
    RelNeighbour => "rel.neighbour": "same street and postcode, different house",
    RelCoworker => "rel.coworker": "the patient is on staff in the user's department",
    CareDepartment => "care.department": "the user's department had the patient under care at the time",
    CareUser => "care.user": "the user was named on a care row covering the time",
    CareAny => "care.any": "care.department or care.user",
    CarePatientAny => "care.patient_any": "the patient was under care of any department at the time",
    CareDaysSinceEnd => "care.days_since_end": "whole days since the patient's last care episode ended (any department)",
    CareEncounter => "care.encounter": "the user's department or the user had a care row in the same episode of care (the patient's stay: all overlapping care rows, with a day's margin either side), though perhaps not covering the time itself",
    CareDaysSinceStayEnd => "care.days_since_stay_end": "whole days since the patient's last stay ended (a stay: overlapping care rows of any department merged; a row ending inside a stay does not count)",
    CareDaysSinceEncounterEnd => "care.days_since_encounter_end": "whole days since the patient's last encounter ended: the last stay's end, or inside a stay a handoff from one department to another (the emergency visit handed to a ward); a registration row ending mid-stay does not count",
    CareDaysSinceHandoff => "care.days_since_handoff": "inside a stay, whole days since an encounter of that stay ended and the patient moved on (the emergency visit handed to a ward); absent outside a stay or before any handoff",
    CareNear => "care.near": "the user's department had a care row within 6 hours of the time, or the user was named on a care row of the same episode",
    PeerWorkflow => "peer.workflow": "the user's peer group (role and department) is learned to work outside care routinely (billing, release of information)",
    PeerConsulting => "peer.consulting": "the user's peer group is learned to be a consulting service (opens charts of patients in other departments' care)",
    CareKnown => "care.known": "care relationships are loaded",
    CareWorkflow => "care.workflow": "the user's peer group routinely opens charts outside care (billing, release of information) and the patient was under care now or in the last 60 days",
    CareWithinPeerHorizon => "care.within_peer_horizon": "for a workflow access (care.workflow) after a stay, the stay ended no longer ago than the user's peer group usually opens charts after one: the day by which 95% of the group's accesses after stays came, plus a quarter, learned (true until 50 such accesses are seen, and for other events)",
    CareConsult => "care.consult": "the user's peer group is a consulting service (radiology, laboratory, pharmacy) and the patient was under another department's care at the time",
    PhiKeywords => "phi.keywords": "PHI keyword hits in a file's first bytes",
    PhiPatterns => "phi.patterns": "PHI pattern hits in a file's first bytes",
    PhiRecords => "phi.records": "estimated patient rows in a file",
}

/// Relationship facts between the user and the patient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relations {
    pub is_self: bool,
    pub family_name: bool,
    pub household: bool,
    pub neighbour: bool,
    pub coworker: bool,
}

/// An event with everything detectors need to know about it.
pub struct Enriched<'a> {
    pub event: &'a Event,
    /// Comparison keys, borrowed from the event when it spells them in lower case
    /// already (nearly always): two allocations fewer for every event.
    pub user_key: Cow<'a, str>,
    pub patient_key: Option<Cow<'a, str>>,
    pub local_day: NaiveDate,
    pub hour: u8,
    pub weekday: u8,
    pub staff: Option<&'a StaffMember>,
    pub patient: Option<Patient<'a>>,
    pub relations: Relations,
    pub care: Option<CareFacts>,
    pub care_loaded: bool,
    /// Set by the engine from what it learned about the user's peer group.
    pub workflow: bool,
    pub consult: bool,
    /// The user's peer group habits, whatever the patient's care.
    pub peer_workflow: bool,
    pub peer_consulting: bool,
    /// For a workflow access after a stay: how many days after a stay the user's peer
    /// group usually works on a chart, once learned.
    pub peer_after_stay_days: Option<u32>,
    /// Set by the engine from the user's learned working hours; true until it knows them.
    pub usual_hours: bool,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The local calendar day of an instant.
pub fn local_day(ts: DateTime<Utc>, tz: Tz) -> NaiveDate {
    ts.with_timezone(&tz).date_naive()
}

/// An instant's local day, hour and weekday (from Monday) in one zone, as
/// `ts.with_timezone(&tz)` gives them, remembering the zone's offset for the UTC hour
/// last asked about and the date of the local day last seen.
///
/// Converting to local time searches the zone's transition table and works out a
/// calendar date for every event: about a twentieth of the engine's time. Events come in
/// time order, hundreds to thousands an hour, and an offset changes only at a transition,
/// so the engine keeps one of these and asks it instead. An hour is taken as one offset
/// only when its first and last seconds have the same one (no zone in the time-zone
/// database changes twice within an hour); an hour with a transition in it is converted
/// event by event.
#[derive(Debug, Clone)]
pub struct LocalClock {
    tz: Tz,
    /// A UTC hour (Unix seconds / 3600) without a transition, and its offset in seconds.
    hour: Option<(i64, i64)>,
    /// A local day (local seconds / 86,400) and its date.
    day: Option<(i64, NaiveDate)>,
}

/// `ts`'s local (day, hour, weekday from Monday) in `tz`, converted on its own.
fn local_parts(ts: DateTime<Utc>, tz: Tz) -> (NaiveDate, u8, u8) {
    let local = ts.with_timezone(&tz);
    (
        local.date_naive(),
        local.hour() as u8,
        local.weekday().num_days_from_monday() as u8,
    )
}

/// Days from 0001-01-01 (day 1 in chrono's count) to 1970-01-01.
const UNIX_EPOCH_DAY: i64 = 719_163;

impl LocalClock {
    pub fn new(tz: Tz) -> LocalClock {
        LocalClock {
            tz,
            hour: None,
            day: None,
        }
    }

    /// The zone's offset (local minus UTC, seconds) at `secs` Unix seconds.
    fn offset_at(&self, secs: i64) -> Option<i64> {
        let t = DateTime::from_timestamp(secs, 0)?;
        Some(t.with_timezone(&self.tz).offset().fix().local_minus_utc() as i64)
    }

    /// The local (day, hour, weekday from Monday) of `ts`.
    pub fn local(&mut self, ts: DateTime<Utc>) -> (NaiveDate, u8, u8) {
        self.cached(ts).unwrap_or_else(|| local_parts(ts, self.tz))
    }

    fn cached(&mut self, ts: DateTime<Utc>) -> Option<(NaiveDate, u8, u8)> {
        let secs = ts.timestamp();
        let hour = secs.div_euclid(3600);
        let offset = match self.hour {
            Some((h, off)) if h == hour => off,
            _ => {
                let start = hour * 3600;
                let (first, last) = (self.offset_at(start)?, self.offset_at(start + 3599)?);
                if first != last {
                    self.hour = None;
                    return None;
                }
                self.hour = Some((hour, first));
                first
            }
        };
        let local = secs + offset;
        let day = local.div_euclid(86_400);
        let date = match self.day {
            Some((d, date)) if d == day => date,
            _ => {
                let date = NaiveDate::from_num_days_from_ce_opt(
                    i32::try_from(day + UNIX_EPOCH_DAY).ok()?,
                )?;
                self.day = Some((day, date));
                date
            }
        };
        Some((
            date,
            (local.rem_euclid(86_400) / 3600) as u8,
            date.weekday().num_days_from_monday() as u8,
        ))
    }
}

impl<'a> Enriched<'a> {
    pub fn new(event: &'a Event, reference: &'a Reference, tz: Tz) -> Enriched<'a> {
        let user_key = key_cow(&event.user);
        let patient_key = event.patient.as_deref().map(key_cow);
        Enriched::at(
            event,
            reference,
            local_parts(event.ts, tz),
            user_key,
            patient_key,
        )
    }

    /// [`Enriched::new`] with the local time from the engine's [`LocalClock`], and ids
    /// that need folding folded into `keys` rather than into strings of their own.
    pub fn with_clock(
        event: &'a Event,
        reference: &'a Reference,
        clock: &mut LocalClock,
        keys: &'a mut Keys,
    ) -> Enriched<'a> {
        let local = clock.local(event.ts);
        let Keys { user, patient } = keys;
        let user_key = Cow::Borrowed(key_into(&event.user, user));
        let patient_key = event
            .patient
            .as_deref()
            .map(|p| Cow::Borrowed(key_into(p, patient)));
        Enriched::at(event, reference, local, user_key, patient_key)
    }

    fn at(
        event: &'a Event,
        reference: &'a Reference,
        (local_day, hour, weekday): (NaiveDate, u8, u8),
        user_key: Cow<'a, str>,
        patient_key: Option<Cow<'a, str>>,
    ) -> Enriched<'a> {
        // One lookup each for the user and the patient; the tables joined at load say
        // the rest (see `reference::links`).
        let user = reference.user(&user_key);
        let staff = user.staff;
        let found = patient_key
            .as_deref()
            .map_or_else(PatientRef::default, |k| reference.patient(k));
        let patient = found.patient;
        let relations = relations(&user_key, &user, patient, reference);
        let care = match (&patient_key, &reference.care) {
            (Some(_), Some(c)) => {
                Some(c.facts_of(found.care, user.care_user, user.care_department, event.ts))
            }
            _ => None,
        };
        Enriched {
            event,
            user_key,
            patient_key,
            local_day,
            hour,
            weekday,
            staff,
            patient,
            relations,
            care,
            care_loaded: reference.care.is_some(),
            workflow: false,
            consult: false,
            peer_workflow: false,
            peer_consulting: false,
            peer_after_stay_days: None,
            usual_hours: true,
        }
    }

    /// The user id as the roster spells it, else as the event did.
    pub fn user_display(&self) -> &str {
        self.staff.map_or(self.event.user.as_str(), |s| &s.user_id)
    }

    /// The patient id as the directory spells it, else as the event did.
    pub fn patient_display(&self) -> Option<&str> {
        self.patient
            .map(|p| p.patient_id())
            .or(self.event.patient.as_deref())
    }

    pub fn care_any(&self) -> bool {
        self.care.is_some_and(|c| c.by_department || c.by_user)
    }

    /// The user or their department was on the patient's stay (see `care.encounter`).
    pub fn care_encounter(&self) -> bool {
        self.care
            .is_some_and(|c| c.encounter_department || c.encounter_user)
    }

    /// See `care.within_peer_horizon`: false only for a workflow access made later after a
    /// stay than the user's peer group has learned to work.
    pub fn within_peer_horizon(&self) -> bool {
        match (
            self.care.and_then(|c| c.since_stay_end),
            self.peer_after_stay_days,
        ) {
            (Some(secs), Some(days)) => secs / 86_400 <= i64::from(days),
            _ => true,
        }
    }

    pub fn days_since_care_end(&self) -> Option<i64> {
        self.care.and_then(|c| c.since_last_end).map(|s| s / 86_400)
    }

    pub fn get(&self, f: Field) -> Value<'_> {
        use Value::*;
        let e = self.event;
        let opt_str = |s: Option<&'a str>| s.map_or(Null, Str);
        match f {
            Field::Action => Str(e.action.as_str()),
            Field::Outcome => Str(e.outcome.as_str()),
            Field::Records => Int(e.records as i64),
            Field::Bytes => e.bytes.map_or(Null, |b| Int(b as i64)),
            Field::Media => e.media.map_or(Null, |m| Str(m.as_str())),
            Field::Host => e.host.as_deref().map_or(Null, Str),
            Field::Source => Str(&e.source),
            Field::Path => e.path.as_deref().map_or(Null, Str),
            Field::Purpose => e.purpose.as_deref().map_or(Null, Str),
            Field::Hour => Int(self.hour as i64),
            Field::Weekday => Str(WEEKDAYS[self.weekday as usize]),
            Field::Weekend => Bool(self.weekday >= 5),
            Field::UserId => Str(&self.user_key),
            Field::UserKnown => Bool(self.staff.is_some()),
            Field::UserRole => opt_str(self.staff.and_then(|s| s.role.as_deref())),
            Field::UserDepartment => opt_str(self.staff.and_then(|s| s.department.as_deref())),
            Field::UserTerminated => Bool(self.days_since_termination().is_some()),
            Field::UserDaysSinceTermination => self.days_since_termination().map_or(Null, Int),
            Field::UserBeforeHire => Bool(
                self.staff
                    .and_then(|s| s.hire_date)
                    .is_some_and(|h| self.local_day < h),
            ),
            Field::PatientId => self.patient_key.as_deref().map_or(Null, Str),
            Field::PatientKnown => Bool(self.patient.is_some()),
            Field::PatientVip => Bool(self.patient.is_some_and(|p| p.vip())),
            Field::PatientDeceased => Bool(self.days_since_death().is_some()),
            Field::PatientDaysSinceDeath => self.days_since_death().map_or(Null, Int),
            Field::PatientEmployee => Bool(self.patient.is_some_and(|p| p.is_employee())),
            Field::RelSelf => Bool(self.relations.is_self),
            Field::RelFamilyName => Bool(self.relations.family_name),
            Field::RelHousehold => Bool(self.relations.household),
            Field::RelNeighbour => Bool(self.relations.neighbour),
            Field::RelCoworker => Bool(self.relations.coworker),
            Field::CareDepartment => Bool(self.care.is_some_and(|c| c.by_department)),
            Field::CareUser => Bool(self.care.is_some_and(|c| c.by_user)),
            Field::CareAny => Bool(self.care_any()),
            Field::CarePatientAny => Bool(self.care.is_some_and(|c| c.any_department)),
            Field::CareDaysSinceEnd => self.days_since_care_end().map_or(Null, Int),
            Field::CareEncounter => Bool(self.care_encounter()),
            Field::CareNear => Bool(
                self.care
                    .is_some_and(|c| c.near_department || c.encounter_user),
            ),
            Field::CareDaysSinceStayEnd => self
                .care
                .and_then(|c| c.since_stay_end)
                .map_or(Null, |s| Int(s / 86_400)),
            Field::CareDaysSinceEncounterEnd => self
                .care
                .and_then(|c| c.since_encounter_end)
                .map_or(Null, |s| Int(s / 86_400)),
            Field::CareDaysSinceHandoff => self
                .care
                .and_then(|c| c.since_handoff)
                .map_or(Null, |s| Int(s / 86_400)),
            Field::PeerWorkflow => Bool(self.peer_workflow),
            Field::PeerConsulting => Bool(self.peer_consulting),
            Field::UserUsualHours => Bool(self.usual_hours),
            Field::CareKnown => Bool(self.care_loaded),
            Field::CareWorkflow => Bool(self.workflow),
            Field::CareConsult => Bool(self.consult),
            Field::CareWithinPeerHorizon => Bool(self.within_peer_horizon()),
            Field::PhiKeywords => e.phi.as_ref().map_or(Null, |p| Int(p.keywords as i64)),
            Field::PhiPatterns => e.phi.as_ref().map_or(Null, |p| Int(p.patterns as i64)),
            Field::PhiRecords => e.phi.as_ref().map_or(Null, |p| Int(p.records as i64)),
        }
    }

    fn days_since_termination(&self) -> Option<i64> {
        let t = self.staff?.termination_date?;
        (self.local_day >= t).then(|| (self.local_day - t).num_days())
    }

    fn days_since_death(&self) -> Option<i64> {
        let d = self.patient?.deceased_date()?;
        (self.local_day >= d).then(|| (self.local_day - d).num_days())
    }

    /// True when the event opens a patient's chart (not a search, login or file event).
    pub fn is_chart_access(&self) -> bool {
        self.patient_key.is_some() && self.event.action.is_chart_access()
    }

    pub fn is_action(&self, a: Action) -> bool {
        self.event.action == a
    }
}

/// Room for an event's folded user and patient ids, kept by the engine from one event to
/// the next: most patient ids are spelled in capitals (`MRN00012345`), and folding each
/// into a string of its own was an allocation and a free for nearly every event.
#[derive(Debug, Default)]
pub struct Keys {
    user: String,
    patient: String,
}

/// `id`'s comparison key ([`key_cow`]), borrowed from `id` when it is one already, else
/// folded into `buf`.
fn key_into<'a>(id: &'a str, buf: &'a mut String) -> &'a str {
    let t = trim_id(id);
    if !t.bytes().any(|b| b.is_ascii_uppercase()) {
        return t;
    }
    buf.clear();
    buf.push_str(t);
    buf.make_ascii_lowercase();
    buf
}

/// Family names and addresses compare as directory symbols ([`UserRef::home`]): equal
/// symbols are equal folded strings, and a value the directory lacks is no patient's.
fn relations(
    user_key: &str,
    user: &UserRef,
    patient: Option<Patient>,
    reference: &Reference,
) -> Relations {
    let Some(p) = patient else {
        return Relations::default();
    };
    // Resolved only for the few patients on staff.
    let employee = if p.is_employee() {
        p.employee_user_key()
    } else {
        None
    };
    let is_self = employee == Some(user_key);
    let Some(s) = user.staff else {
        return Relations {
            is_self,
            ..Relations::default()
        };
    };
    let (mine, theirs) = (user.home, p.home());
    let eq = |a: Option<Sym>, b: Option<Sym>| a.is_some() && a == b;
    let same_postcode = eq(mine.postcode, theirs.postcode);
    let household = !is_self && same_postcode && eq(mine.address, theirs.address);
    let neighbour = !is_self && !household && same_postcode && eq(mine.street, theirs.street);
    let coworker = !is_self
        && employee
            .and_then(|k| reference.roster.as_ref()?.get(k))
            .is_some_and(|colleague| {
                colleague.department_key.is_some() && colleague.department_key == s.department_key
            });
    Relations {
        is_self,
        family_name: !is_self && eq(mine.family, theirs.family),
        household,
        neighbour,
        coworker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_what_key_cow_gives() {
        for id in [
            "",
            " ",
            "u1",
            "U1",
            " U1 ",
            "\tmrn7\n",
            "\u{a0}MRN7",
            "MRN7\u{3000}",
            "é",
            "\u{b}x",
            "x\u{1f}",
            "Ünï",
            "a b",
        ] {
            assert_eq!(key_cow(id), id.trim().to_ascii_lowercase(), "{id:?}");
            let mut buf = String::from("left over");
            assert_eq!(key_into(id, &mut buf), key_cow(id), "{id:?}");
        }
    }

    /// The clock's cached offsets give what converting each instant gives, across
    /// daylight-saving changes on the hour (Chicago), a zone half an hour off UTC
    /// (Kolkata), one whose change is half an hour at half past a UTC hour (Lord Howe),
    /// and instants before 1970, taken in order and out of it.
    #[test]
    fn the_clock_agrees_with_converting_each_instant() {
        let zones = [
            chrono_tz::America::Chicago,
            chrono_tz::Asia::Kolkata,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::UTC,
        ];
        let starts = [
            "2026-03-08T00:00:00Z",
            "2026-11-01T00:00:00Z",
            "2026-04-04T12:00:00Z",
            "2026-10-03T12:00:00Z",
            "1969-12-31T20:00:00Z",
        ];
        for tz in zones {
            let mut clock = LocalClock::new(tz);
            for start in starts {
                let start: DateTime<Utc> = start.parse().unwrap();
                // Every 7 minutes and 13.5 seconds for a day, then a step back.
                let mut instants: Vec<DateTime<Utc>> = (0..200)
                    .map(|i| start + chrono::Duration::milliseconds(i * 433_500))
                    .collect();
                instants.push(start);
                instants.push(start - chrono::Duration::seconds(1));
                for ts in instants {
                    let want = ts.with_timezone(&tz);
                    let want = (
                        want.date_naive(),
                        want.hour() as u8,
                        want.weekday().num_days_from_monday() as u8,
                    );
                    assert_eq!(clock.local(ts), want, "{tz} {ts}");
                }
            }
        }
    }
}

//! The contract's canonical event, one JSON object a line: what phiwatch's own agents
//! write and what any site can produce with a script.
//!
//! The line could go straight into `Event` with serde, but serde's errors do not say
//! which rule broke in a way a metric label can use. Reading it like a jsonl line with
//! the identity mapping gives each failure its own reason, and keeps the contract's
//! rules (required fields, action names, RFC 3339) in one place with csv and jsonl.
//! Only canonical action names are accepted here: no source table, no synonyms.
//! `source` is always the configured source's name; `phi` and `origin` pass through.

use super::fields::{self, Actions, Field, Record, Val};
use super::jsonl::object;
use super::{prepare, reason, Parser, Reject};
use crate::event::{Event, PhiMarkers, Provenance};
use chrono_tz::Tz;
use serde_json::Value;

pub(crate) struct CanonicalParser {
    source: String,
    tz: Tz,
    actions: Actions,
}

impl CanonicalParser {
    pub(crate) fn new(source: String, tz: Tz) -> CanonicalParser {
        CanonicalParser {
            source,
            tz,
            actions: Actions::canonical_only(),
        }
    }
}

struct Top<'a>(&'a Value);

impl Record for Top<'_> {
    fn get(&self, field: Field) -> Option<Val<'_>> {
        Val::from_json(self.0.get(field.name())?)
    }
}

impl Parser for CanonicalParser {
    fn parse(&mut self, line: &str) -> Result<Option<Event>, Reject> {
        let Some(line) = prepare(line)? else {
            return Ok(None);
        };
        let v = object(line)?;
        let mut event = fields::to_event(&Top(&v), self.tz, &self.actions, &self.source, &[])?;
        let extra = |key: &str| v.get(key).filter(|x| !x.is_null());
        if let Some(phi) = extra("phi") {
            event.phi = Some(pass_through::<PhiMarkers>(phi, "phi")?);
        }
        if let Some(origin) = extra("origin") {
            event.origin = Some(pass_through::<Provenance>(origin, "origin")?);
        }
        Ok(Some(event))
    }
}

/// Reads `phi` or `origin` with serde. serde's message is left out of the detail: it
/// quotes the offending value, and a file path may name a patient.
fn pass_through<T: serde::de::DeserializeOwned>(v: &Value, key: &str) -> Result<T, Reject> {
    T::deserialize(v).map_err(|_| {
        Reject::new(
            reason::BAD_FIELD,
            format!("`{key}` does not have the canonical shape"),
        )
    })
}

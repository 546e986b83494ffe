//! What the AuditEvent mapping reads of a record, as traits: the mapping in
//! [`super`] is written once against them, and two readers implement them.
//!
//! - The JSON tree ([`Json`]): any shape at all, each lookup liberal on its own (a wrong
//!   type costs that element, not the line). It is the reference reading.
//! - The typed record ([`super::typed`]): decoded straight from the line, keeping only
//!   these elements and skipping the rest without building anything, several times
//!   cheaper. It reads every element exactly as the tree does.
//!
//! Keeping the decisions (who acted, which action, which patient) in one place means the
//! two readers can only differ in the accessors below, each a one-line lookup on the
//! tree, which is what the equivalence tests hold the typed record to.

use crate::parse::jsontree::Json;
use std::borrow::Cow;

/// An element read as a string: absent or `null`, a string, or a value of another type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Slot<'v> {
    Null,
    Str(&'v str),
    Other,
}

impl<'v> Slot<'v> {
    pub(crate) fn as_str(self) -> Option<&'v str> {
        match self {
            Slot::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn is_null(self) -> bool {
        matches!(self, Slot::Null)
    }

    fn of(v: &'v Json) -> Slot<'v> {
        match v {
            Json::Null => Slot::Null,
            Json::String(s) => Slot::Str(s),
            _ => Slot::Other,
        }
    }
}

/// An element read as an identifier: a string or a number (numeric ids print as
/// serde_json prints them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar<'v> {
    Str(&'v str),
    Num(&'v serde_json::Number),
    None,
}

impl<'v> Scalar<'v> {
    /// The identifier as the event stores it: trimmed, `None` when empty.
    pub(crate) fn id(self) -> Option<String> {
        match self {
            Scalar::Str(s) => crate::parse::ident(s),
            Scalar::Num(n) => Some(n.to_string()),
            Scalar::None => None,
        }
    }

    fn of(v: &'v Json) -> Scalar<'v> {
        match v {
            Json::String(s) => Scalar::Str(s),
            Json::Number(n) => Scalar::Num(n),
            _ => Scalar::None,
        }
    }
}

/// The coded elements of the resource itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopCodes {
    /// R4 event type.
    Type,
    /// R5 event type.
    Category,
    /// R4 interaction.
    Subtype,
    /// R5 interaction.
    Code,
    /// R4 purpose of use.
    PurposeOfEvent,
    /// R5 purpose of use.
    Authorization,
}

impl TopCodes {
    fn key(self) -> &'static str {
        match self {
            TopCodes::Type => "type",
            TopCodes::Category => "category",
            TopCodes::Subtype => "subtype",
            TopCodes::Code => "code",
            TopCodes::PurposeOfEvent => "purposeOfEvent",
            TopCodes::Authorization => "authorization",
        }
    }
}

/// The coded elements of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentCodes {
    Type,
    /// R4 purpose of use.
    PurposeOfUse,
    /// R5 purpose of use.
    Authorization,
}

impl AgentCodes {
    fn key(self) -> &'static str {
        match self {
            AgentCodes::Type => "type",
            AgentCodes::PurposeOfUse => "purposeOfUse",
            AgentCodes::Authorization => "authorization",
        }
    }
}

/// The coded elements of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntityCodes {
    Type,
    Role,
}

impl EntityCodes {
    fn key(self) -> &'static str {
        match self {
            EntityCodes::Type => "type",
            EntityCodes::Role => "role",
        }
    }
}

/// An AuditEvent resource (already known to be a JSON object).
pub(crate) trait Record {
    type Agent: AgentView;
    type Entity: EntityView;
    /// `resourceType` when it is a string.
    fn resource_type(&self) -> Option<&str>;
    /// `agent` when it is an array.
    fn agents(&self) -> Option<&[Self::Agent]>;
    /// `period.start`, `occurredPeriod.start`, `occurredDateTime`, `recorded`.
    fn times(&self) -> [Slot<'_>; 4];
    /// Every code (trimmed) of a coded element: see [`json_codes`].
    fn codes(&self, which: TopCodes) -> impl Iterator<Item = &str>;
    /// `action` when it is a string.
    fn action(&self) -> Option<&str>;
    /// `entity` when it is an array.
    fn entities(&self) -> Option<&[Self::Entity]>;
    /// R5 `patient.reference`.
    fn patient_reference(&self) -> Option<&str>;
    /// R5 `patient.identifier.value`.
    fn patient_identifier(&self) -> Scalar<'_>;
    /// The outcome code as [`outcome_code`] reads it from the tree.
    fn outcome_code(&self) -> Option<Cow<'_, str>>;
}

/// One element of `agent` (of any JSON type: a non-object has nothing in it).
pub(crate) trait AgentView {
    /// `requestor` is `true` or, from lax producers, `"true"`.
    fn requestor(&self) -> bool;
    fn who_reference(&self) -> Option<&str>;
    fn who_identifier(&self) -> Scalar<'_>;
    fn who_display(&self) -> Option<&str>;
    /// R4 `name`.
    fn name(&self) -> Option<&str>;
    fn alt_id(&self) -> Scalar<'_>;
    fn agent_codes(&self, which: AgentCodes) -> impl Iterator<Item = &str>;
    /// The first (code, display) of `media`: see [`first_coding`].
    fn media(&self) -> (Option<&str>, Option<&str>);
    /// `network.address`, `networkString`, `networkUri`.
    fn network(&self) -> [Option<&str>; 3];
    /// The items of `policy` when it is an array (none otherwise).
    fn policy(&self) -> impl Iterator<Item = Scalar<'_>>;
}

/// One element of `entity` (of any JSON type).
pub(crate) trait EntityView {
    fn what_reference(&self) -> Option<&str>;
    fn what_identifier(&self) -> Scalar<'_>;
    fn entity_codes(&self, which: EntityCodes) -> impl Iterator<Item = &str>;
    /// The coded element is absent or `null`.
    fn is_absent(&self, which: EntityCodes) -> bool;
    /// The entity has a `query` member (whatever its value, `null` included).
    fn has_query(&self) -> bool;
    /// `query` when it is a string.
    fn query(&self) -> Option<&str>;
}

/// Every code in a Coding, a CodeableConcept, or an array of either: each item's own
/// `code`, then its `coding[].code`, trimmed; items and codes that are not strings or
/// objects give none.
pub(crate) fn json_codes<'v>(v: &'v Json) -> impl Iterator<Item = &'v str> {
    let items: &[Json] = match v {
        Json::Array(a) => a,
        Json::Object(_) => std::slice::from_ref(v),
        _ => &[],
    };
    items.iter().flat_map(|item| {
        let direct = item["code"].as_str();
        let nested = item["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["code"].as_str());
        direct.into_iter().chain(nested).map(str::trim)
    })
}

/// The first (code, display) of a Coding or CodeableConcept.
pub(crate) fn first_coding<'v>(v: &'v Json) -> (Option<&'v str>, Option<&'v str>) {
    let c = if v["coding"].is_array() {
        &v["coding"][0]
    } else {
        v
    };
    (c["code"].as_str(), c["display"].as_str())
}

/// The outcome's code: R4 a string (or, from lax producers, a number), R5 a Coding or
/// CodeableConcept in `outcome.code` (or the outcome itself coded). `None` when absent.
pub(crate) fn outcome_code<'v>(v: &'v Json) -> Option<Cow<'v, str>> {
    match v {
        Json::String(s) => Some(Cow::Borrowed(s.trim())),
        Json::Number(n) => Some(Cow::Owned(n.to_string())),
        Json::Object(_) => json_codes(&v["code"])
            .next()
            .or_else(|| json_codes(v).next())
            .map(Cow::Borrowed),
        _ => None,
    }
}

impl<'a> Record for Json<'a> {
    type Agent = Json<'a>;
    type Entity = Json<'a>;

    fn resource_type(&self) -> Option<&str> {
        self.get("resourceType").and_then(Json::as_str)
    }
    fn agents(&self) -> Option<&[Json<'a>]> {
        self["agent"].as_array().map(Vec::as_slice)
    }
    fn times(&self) -> [Slot<'_>; 4] {
        [
            Slot::of(&self["period"]["start"]),
            Slot::of(&self["occurredPeriod"]["start"]),
            Slot::of(&self["occurredDateTime"]),
            Slot::of(&self["recorded"]),
        ]
    }
    fn codes(&self, which: TopCodes) -> impl Iterator<Item = &str> {
        json_codes(&self[which.key()])
    }
    fn action(&self) -> Option<&str> {
        self["action"].as_str()
    }
    fn entities(&self) -> Option<&[Json<'a>]> {
        self["entity"].as_array().map(Vec::as_slice)
    }
    fn patient_reference(&self) -> Option<&str> {
        self["patient"]["reference"].as_str()
    }
    fn patient_identifier(&self) -> Scalar<'_> {
        Scalar::of(&self["patient"]["identifier"]["value"])
    }
    fn outcome_code(&self) -> Option<Cow<'_, str>> {
        outcome_code(&self["outcome"])
    }
}

impl AgentView for Json<'_> {
    fn requestor(&self) -> bool {
        match &self["requestor"] {
            Json::Bool(b) => *b,
            Json::String(s) => s.trim().eq_ignore_ascii_case("true"),
            _ => false,
        }
    }
    fn who_reference(&self) -> Option<&str> {
        self["who"]["reference"].as_str()
    }
    fn who_identifier(&self) -> Scalar<'_> {
        Scalar::of(&self["who"]["identifier"]["value"])
    }
    fn who_display(&self) -> Option<&str> {
        self["who"]["display"].as_str()
    }
    fn name(&self) -> Option<&str> {
        self["name"].as_str()
    }
    fn alt_id(&self) -> Scalar<'_> {
        Scalar::of(&self["altId"])
    }
    fn agent_codes(&self, which: AgentCodes) -> impl Iterator<Item = &str> {
        json_codes(&self[which.key()])
    }
    fn media(&self) -> (Option<&str>, Option<&str>) {
        first_coding(&self["media"])
    }
    fn network(&self) -> [Option<&str>; 3] {
        [
            self["network"]["address"].as_str(),
            self["networkString"].as_str(),
            self["networkUri"].as_str(),
        ]
    }
    fn policy(&self) -> impl Iterator<Item = Scalar<'_>> {
        self["policy"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Scalar::of)
    }
}

impl EntityView for Json<'_> {
    fn what_reference(&self) -> Option<&str> {
        self["what"]["reference"].as_str()
    }
    fn what_identifier(&self) -> Scalar<'_> {
        Scalar::of(&self["what"]["identifier"]["value"])
    }
    fn entity_codes(&self, which: EntityCodes) -> impl Iterator<Item = &str> {
        json_codes(&self[which.key()])
    }
    fn is_absent(&self, which: EntityCodes) -> bool {
        self[which.key()].is_null()
    }
    fn has_query(&self) -> bool {
        self.get("query").is_some()
    }
    fn query(&self) -> Option<&str> {
        self["query"].as_str()
    }
}

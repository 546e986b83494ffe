//! The AuditEvent decoded straight from the line into the few elements the mapping reads
//! (see [`super::view`]), borrowing strings from the line and building nothing for the
//! rest: the `id`, `source`, the `system` and `display` of every coding, and any
//! extension are checked by the [`super::scan`] cursor (so a line is exactly as valid as for the
//! tree) and passed over.
//!
//! Every element is a [`Node`]: it says what it keeps of each JSON type it may meet, and
//! keeps nothing of the others, as the tree's lookups do (a `who` that is a string has no
//! `reference`). A member given twice in one object means its last value, as in the tree.

use super::scan::{Atom, Bail, Cursor, Elements, Members};
use super::view::{AgentCodes, AgentView, EntityCodes, EntityView, Record, Scalar, Slot, TopCodes};
use crate::event::trim_id;
use std::borrow::Cow;

/// What one JSON value becomes, by its JSON type. `other()` is a value of a type the
/// element reads nothing from; the defaults keep nothing of a type.
trait Node<'de>: Sized {
    /// `null` (or a member that is absent, for the containers' initial values).
    fn null() -> Self;
    /// A value this element reads nothing from.
    fn other() -> Self;
    fn boolean(_: bool) -> Self {
        Self::other()
    }
    fn number(_: serde_json::Number) -> Self {
        Self::other()
    }
    /// A string: borrowed from the line, or unescaped when it has escapes.
    fn string(_: Cow<'de, str>) -> Self {
        Self::other()
    }
    fn map(mut map: Members<'_, 'de>) -> Result<Self, Bail> {
        map.skip_rest()?;
        Ok(Self::other())
    }
    fn seq(mut seq: Elements<'_, 'de>) -> Result<Self, Bail> {
        seq.skip_rest()?;
        Ok(Self::other())
    }
}

/// Reads the value at the cursor as the node `T`.
#[inline]
fn read<'de, T: Node<'de>>(c: &mut Cursor<'de>) -> Result<T, Bail> {
    match c.peek() {
        Some(b'"') => c.string().map(T::string),
        Some(b'{') => {
            c.open()?;
            T::map(Members::new(c))
        }
        Some(b'[') => {
            c.open()?;
            T::seq(Elements::new(c))
        }
        _ => Ok(match c.atom()? {
            Atom::Null => T::null(),
            Atom::Bool(b) => T::boolean(b),
            Atom::Number(n) => T::number(n),
        }),
    }
}

/// The current member's value, read as `T`.
fn value<'de, T: Node<'de>>(map: &mut Members<'_, 'de>) -> Result<T, Bail> {
    read(map.cursor())
}

/// The current member's value, passed over.
fn skip(map: &mut Members<'_, '_>) -> Result<(), Bail> {
    map.cursor().skip()
}

/// Every element of an array, read as `T`.
fn elements<'de, T: Node<'de>>(mut seq: Elements<'_, 'de>) -> Result<Vec<T>, Bail> {
    let mut out = Vec::new();
    while seq.next()? {
        out.push(read(seq.cursor())?);
    }
    Ok(out)
}

/// Reads an object's members into `Self` through `member`, skipping unknown ones.
macro_rules! object_node {
    ($ty:ident, |$this:ident, $key:ident, $map:ident| $body:expr) => {
        impl<'de> Node<'de> for $ty<'de> {
            fn null() -> Self {
                Self::default()
            }
            fn other() -> Self {
                Self::default()
            }
            fn map(mut $map: Members<'_, 'de>) -> Result<Self, Bail> {
                let mut $this = Self::default();
                while let Some($key) = $map.next_key()? {
                    $body;
                }
                Ok($this)
            }
        }
    };
}

/// An element read as a string.
#[derive(Debug, Default)]
enum Field<'a> {
    #[default]
    Null,
    Str(Cow<'a, str>),
    Other,
}

impl<'de> Node<'de> for Field<'de> {
    fn null() -> Self {
        Field::Null
    }
    fn other() -> Self {
        Field::Other
    }
    fn string(s: Cow<'de, str>) -> Self {
        Field::Str(s)
    }
}

impl Field<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }

    fn slot(&self) -> Slot<'_> {
        match self {
            Field::Null => Slot::Null,
            Field::Str(s) => Slot::Str(s),
            Field::Other => Slot::Other,
        }
    }
}

/// An element read as an identifier: a string or a number.
#[derive(Debug, Default)]
enum Ident<'a> {
    #[default]
    None,
    Str(Cow<'a, str>),
    Num(serde_json::Number),
}

impl<'de> Node<'de> for Ident<'de> {
    fn null() -> Self {
        Ident::None
    }
    fn other() -> Self {
        Ident::None
    }
    fn number(n: serde_json::Number) -> Self {
        Ident::Num(n)
    }
    fn string(s: Cow<'de, str>) -> Self {
        Ident::Str(s)
    }
}

impl Ident<'_> {
    fn scalar(&self) -> Scalar<'_> {
        match self {
            Ident::None => Scalar::None,
            Ident::Str(s) => Scalar::Str(s),
            Ident::Num(n) => Scalar::Num(n),
        }
    }
}

/// `true`, or from lax producers the string `"true"`.
#[derive(Debug, Default)]
struct Truthy(bool);

impl<'de> Node<'de> for Truthy {
    fn null() -> Self {
        Truthy(false)
    }
    fn other() -> Self {
        Truthy(false)
    }
    fn boolean(b: bool) -> Self {
        Truthy(b)
    }
    fn string(s: Cow<'de, str>) -> Self {
        Truthy(s.trim().eq_ignore_ascii_case("true"))
    }
}

/// An array of `T`; `None` when the value is not an array.
#[derive(Debug)]
struct List<T>(Option<Vec<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

impl<'de, T: Node<'de>> Node<'de> for List<T> {
    fn null() -> Self {
        List(None)
    }
    fn other() -> Self {
        List(None)
    }
    fn seq(seq: Elements<'_, 'de>) -> Result<Self, Bail> {
        Ok(List(Some(elements(seq)?)))
    }
}

/// Codes in order, the first held inline: nearly every coded element of a real record
/// has exactly one code, and a vector for each was most of the allocations left.
#[derive(Debug, Default)]
struct CodeList<'a> {
    first: Option<Cow<'a, str>>,
    rest: Vec<Cow<'a, str>>,
}

impl<'a> CodeList<'a> {
    fn push(&mut self, code: Cow<'a, str>) {
        if self.first.is_none() {
            self.first = Some(code);
        } else {
            self.rest.push(code);
        }
    }

    /// Puts `code` before the others.
    fn push_front(&mut self, code: Cow<'a, str>) {
        if let Some(old) = self.first.replace(code) {
            self.rest.insert(0, old);
        }
    }

    fn append(&mut self, other: CodeList<'a>) {
        if let Some(first) = other.first {
            self.push(first);
            self.rest.extend(other.rest);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.first.iter().chain(&self.rest).map(|c| &**c)
    }
}

/// The codes of a coded element, in the order the tree's `json_codes` gives them
/// (untrimmed here, trimmed when read), and whether the element is absent or null.
#[derive(Debug)]
struct Codes<'a> {
    list: CodeList<'a>,
    null: bool,
}

impl Default for Codes<'_> {
    fn default() -> Self {
        Codes {
            list: CodeList::default(),
            null: true,
        }
    }
}

impl Codes<'_> {
    fn iter(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(trim_id)
    }
}

impl<'de> Node<'de> for Codes<'de> {
    fn null() -> Self {
        Codes::default()
    }
    fn other() -> Self {
        Codes {
            list: CodeList::default(),
            null: false,
        }
    }
    /// A Coding or CodeableConcept: its own codes.
    fn map(map: Members<'_, 'de>) -> Result<Self, Bail> {
        Ok(Codes {
            list: CodeItem::map(map)?.into_codes(),
            null: false,
        })
    }
    /// An array of Codings or CodeableConcepts: theirs, one after the other.
    fn seq(mut seq: Elements<'_, 'de>) -> Result<Self, Bail> {
        let mut list = CodeList::default();
        while seq.next()? {
            list.append(read::<CodeItem>(seq.cursor())?.into_codes());
        }
        Ok(Codes { list, null: false })
    }
}

/// One Coding or CodeableConcept: its own `code`, and the codes of its `coding`.
#[derive(Debug, Default)]
struct CodeItem<'a> {
    code: Field<'a>,
    coding: CodingCodes<'a>,
}

object_node!(CodeItem, |this, key, map| match &*key {
    "code" => this.code = value(&mut map)?,
    "coding" => this.coding = value(&mut map)?,
    _ => skip(&mut map)?,
});

impl<'a> CodeItem<'a> {
    fn into_codes(self) -> CodeList<'a> {
        let mut list = self.coding.0;
        if let Field::Str(code) = self.code {
            list.push_front(code);
        }
        list
    }
}

/// The string `code`s of a `coding` array's Codings (none when it is not an array).
#[derive(Debug, Default)]
struct CodingCodes<'a>(CodeList<'a>);

impl<'de> Node<'de> for CodingCodes<'de> {
    fn null() -> Self {
        Self::default()
    }
    fn other() -> Self {
        Self::default()
    }
    fn seq(mut seq: Elements<'_, 'de>) -> Result<Self, Bail> {
        let mut list = CodeList::default();
        while seq.next()? {
            if let Field::Str(code) = read::<CodeOnly>(seq.cursor())?.code {
                list.push(code);
            }
        }
        Ok(CodingCodes(list))
    }
}

/// A Coding's `code` alone.
#[derive(Debug, Default)]
struct CodeOnly<'a> {
    code: Field<'a>,
}

object_node!(CodeOnly, |this, key, map| match &*key {
    "code" => this.code = value(&mut map)?,
    _ => skip(&mut map)?,
});

/// A value that may be a code itself or coded: R5 `outcome.code`.
#[derive(Debug)]
struct CodeOrCoded<'a> {
    text: Field<'a>,
    codes: Codes<'a>,
}

impl<'de> Node<'de> for CodeOrCoded<'de> {
    fn null() -> Self {
        CodeOrCoded {
            text: Field::null(),
            codes: Codes::null(),
        }
    }
    fn other() -> Self {
        CodeOrCoded {
            text: Field::other(),
            codes: Codes::other(),
        }
    }
    fn string(s: Cow<'de, str>) -> Self {
        CodeOrCoded {
            text: Field::string(s),
            codes: Codes::other(),
        }
    }
    fn map(map: Members<'_, 'de>) -> Result<Self, Bail> {
        Ok(CodeOrCoded {
            text: Field::other(),
            codes: Codes::map(map)?,
        })
    }
    fn seq(seq: Elements<'_, 'de>) -> Result<Self, Bail> {
        Ok(CodeOrCoded {
            text: Field::other(),
            codes: Codes::seq(seq)?,
        })
    }
}

/// `outcome`: R4 a code (string, or a number from lax producers), R5 an object whose
/// `code` is a Coding (or which is coded itself).
#[derive(Debug, Default)]
enum OutcomeValue<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Num(serde_json::Number),
    Object {
        code: Box<CodeOrCoded<'a>>,
        coding: CodingCodes<'a>,
    },
}

impl<'de> Node<'de> for OutcomeValue<'de> {
    fn null() -> Self {
        OutcomeValue::Absent
    }
    fn other() -> Self {
        OutcomeValue::Absent
    }
    fn number(n: serde_json::Number) -> Self {
        OutcomeValue::Num(n)
    }
    fn string(s: Cow<'de, str>) -> Self {
        OutcomeValue::Str(s)
    }
    fn map(mut map: Members<'_, 'de>) -> Result<Self, Bail> {
        let mut code = CodeOrCoded::null();
        let mut coding = CodingCodes::default();
        while let Some(key) = map.next_key()? {
            match &*key {
                "code" => code = value(&mut map)?,
                "coding" => coding = value(&mut map)?,
                _ => skip(&mut map)?,
            }
        }
        Ok(OutcomeValue::Object {
            code: Box::new(code),
            coding,
        })
    }
}

impl OutcomeValue<'_> {
    /// As [`super::view::outcome_code`] reads the tree.
    fn code(&self) -> Option<Cow<'_, str>> {
        match self {
            OutcomeValue::Absent => None,
            OutcomeValue::Str(s) => Some(Cow::Borrowed(trim_id(s))),
            OutcomeValue::Num(n) => Some(Cow::Owned(n.to_string())),
            OutcomeValue::Object { code, coding } => code
                .codes
                .iter()
                .next()
                .or_else(|| {
                    code.text
                        .as_str()
                        .into_iter()
                        .chain(coding.0.iter())
                        .map(trim_id)
                        .next()
                })
                .map(Cow::Borrowed),
        }
    }
}

/// The first (code, display) of a Coding or CodeableConcept: agent `media`.
#[derive(Debug, Default)]
struct FirstCoding<'a> {
    code: Field<'a>,
    display: Field<'a>,
    coding: CodingHead<'a>,
}

object_node!(FirstCoding, |this, key, map| match &*key {
    "code" => this.code = value(&mut map)?,
    "display" => this.display = value(&mut map)?,
    "coding" => this.coding = value(&mut map)?,
    _ => skip(&mut map)?,
});

impl FirstCoding<'_> {
    fn pair(&self) -> (Option<&str>, Option<&str>) {
        if self.coding.array {
            (self.coding.code.as_str(), self.coding.display.as_str())
        } else {
            (self.code.as_str(), self.display.as_str())
        }
    }
}

/// A `coding` array's first Coding (code and display), and whether it is an array.
#[derive(Debug, Default)]
struct CodingHead<'a> {
    array: bool,
    code: Field<'a>,
    display: Field<'a>,
}

impl<'de> Node<'de> for CodingHead<'de> {
    fn null() -> Self {
        Self::default()
    }
    fn other() -> Self {
        Self::default()
    }
    fn seq(mut seq: Elements<'_, 'de>) -> Result<Self, Bail> {
        let mut head = CodingHead {
            array: true,
            ..CodingHead::default()
        };
        if seq.next()? {
            let first = read::<CodeDisplay>(seq.cursor())?;
            head.code = first.code;
            head.display = first.display;
            seq.skip_rest()?;
        }
        Ok(head)
    }
}

/// A Coding's `code` and `display`.
#[derive(Debug, Default)]
struct CodeDisplay<'a> {
    code: Field<'a>,
    display: Field<'a>,
}

object_node!(CodeDisplay, |this, key, map| match &*key {
    "code" => this.code = value(&mut map)?,
    "display" => this.display = value(&mut map)?,
    _ => skip(&mut map)?,
});

/// An Identifier's `value`.
#[derive(Debug, Default)]
struct Identifier<'a> {
    value: Ident<'a>,
}

object_node!(Identifier, |this, key, map| match &*key {
    "value" => this.value = value(&mut map)?,
    _ => skip(&mut map)?,
});

/// A Reference: agent `who`, entity `what`, R5 `patient`.
#[derive(Debug, Default)]
struct Reference<'a> {
    reference: Field<'a>,
    identifier: Identifier<'a>,
    display: Field<'a>,
}

object_node!(Reference, |this, key, map| match &*key {
    "reference" => this.reference = value(&mut map)?,
    "identifier" => this.identifier = value(&mut map)?,
    "display" => this.display = value(&mut map)?,
    _ => skip(&mut map)?,
});

/// A Period's `start`.
#[derive(Debug, Default)]
struct Period<'a> {
    start: Field<'a>,
}

object_node!(Period, |this, key, map| match &*key {
    "start" => this.start = value(&mut map)?,
    _ => skip(&mut map)?,
});

/// R4 agent `network`.
#[derive(Debug, Default)]
struct Network<'a> {
    address: Field<'a>,
}

object_node!(Network, |this, key, map| match &*key {
    "address" => this.address = value(&mut map)?,
    _ => skip(&mut map)?,
});

/// One element of `agent`.
#[derive(Debug, Default)]
pub(super) struct Agent<'a> {
    requestor: Truthy,
    who: Reference<'a>,
    alt_id: Ident<'a>,
    name: Field<'a>,
    kind: Codes<'a>,
    media: FirstCoding<'a>,
    network: Network<'a>,
    network_string: Field<'a>,
    network_uri: Field<'a>,
    purpose_of_use: Codes<'a>,
    authorization: Codes<'a>,
    policy: List<Ident<'a>>,
}

object_node!(Agent, |this, key, map| match &*key {
    "requestor" => this.requestor = value(&mut map)?,
    "who" => this.who = value(&mut map)?,
    "altId" => this.alt_id = value(&mut map)?,
    "name" => this.name = value(&mut map)?,
    "type" => this.kind = value(&mut map)?,
    "media" => this.media = value(&mut map)?,
    "network" => this.network = value(&mut map)?,
    "networkString" => this.network_string = value(&mut map)?,
    "networkUri" => this.network_uri = value(&mut map)?,
    "purposeOfUse" => this.purpose_of_use = value(&mut map)?,
    "authorization" => this.authorization = value(&mut map)?,
    "policy" => this.policy = value(&mut map)?,
    _ => skip(&mut map)?,
});

/// One element of `entity`.
#[derive(Debug, Default)]
pub(super) struct Entity<'a> {
    what: Reference<'a>,
    kind: Codes<'a>,
    role: Codes<'a>,
    has_query: bool,
    query: Field<'a>,
}

object_node!(Entity, |this, key, map| match &*key {
    "what" => this.what = value(&mut map)?,
    "type" => this.kind = value(&mut map)?,
    "role" => this.role = value(&mut map)?,
    "query" => {
        this.has_query = true;
        this.query = value(&mut map)?;
    }
    _ => skip(&mut map)?,
});

/// The elements of an AuditEvent resource the mapping reads.
#[derive(Debug, Default)]
pub(super) struct AuditEvent<'a> {
    resource_type: Field<'a>,
    agent: List<Agent<'a>>,
    period: Period<'a>,
    occurred_period: Period<'a>,
    occurred_date_time: Field<'a>,
    recorded: Field<'a>,
    kind: Codes<'a>,
    category: Codes<'a>,
    subtype: Codes<'a>,
    code: Codes<'a>,
    purpose_of_event: Codes<'a>,
    authorization: Codes<'a>,
    action: Field<'a>,
    entity: List<Entity<'a>>,
    patient: Reference<'a>,
    outcome: OutcomeValue<'a>,
}

object_node!(AuditEvent, |this, key, map| match &*key {
    "resourceType" => this.resource_type = value(&mut map)?,
    "agent" => this.agent = value(&mut map)?,
    "period" => this.period = value(&mut map)?,
    "occurredPeriod" => this.occurred_period = value(&mut map)?,
    "occurredDateTime" => this.occurred_date_time = value(&mut map)?,
    "recorded" => this.recorded = value(&mut map)?,
    "type" => this.kind = value(&mut map)?,
    "category" => this.category = value(&mut map)?,
    "subtype" => this.subtype = value(&mut map)?,
    "code" => this.code = value(&mut map)?,
    "purposeOfEvent" => this.purpose_of_event = value(&mut map)?,
    "authorization" => this.authorization = value(&mut map)?,
    "action" => this.action = value(&mut map)?,
    "entity" => this.entity = value(&mut map)?,
    "patient" => this.patient = value(&mut map)?,
    "outcome" => this.outcome = value(&mut map)?,
    _ => skip(&mut map)?,
});

impl<'a> AuditEvent<'a> {
    /// Decodes a line that is one JSON object. Gives up on anything else (not JSON, not
    /// an object, JSON the cursor leaves to serde_json), which the caller then reads with
    /// the tree, for its event or its rejection.
    pub(super) fn parse(line: &'a str) -> Result<AuditEvent<'a>, Bail> {
        let mut c = Cursor::new(line);
        if c.peek() != Some(b'{') {
            return Err(Bail);
        }
        c.open()?;
        let event = AuditEvent::map(Members::new(&mut c))?;
        c.end()?;
        Ok(event)
    }
}

impl<'a> Record for AuditEvent<'a> {
    type Agent = Agent<'a>;
    type Entity = Entity<'a>;

    fn resource_type(&self) -> Option<&str> {
        self.resource_type.as_str()
    }
    fn agents(&self) -> Option<&[Agent<'a>]> {
        self.agent.0.as_deref()
    }
    fn times(&self) -> [Slot<'_>; 4] {
        [
            self.period.start.slot(),
            self.occurred_period.start.slot(),
            self.occurred_date_time.slot(),
            self.recorded.slot(),
        ]
    }
    fn codes(&self, which: TopCodes) -> impl Iterator<Item = &str> {
        match which {
            TopCodes::Type => &self.kind,
            TopCodes::Category => &self.category,
            TopCodes::Subtype => &self.subtype,
            TopCodes::Code => &self.code,
            TopCodes::PurposeOfEvent => &self.purpose_of_event,
            TopCodes::Authorization => &self.authorization,
        }
        .iter()
    }
    fn action(&self) -> Option<&str> {
        self.action.as_str()
    }
    fn entities(&self) -> Option<&[Entity<'a>]> {
        self.entity.0.as_deref()
    }
    fn patient_reference(&self) -> Option<&str> {
        self.patient.reference.as_str()
    }
    fn patient_identifier(&self) -> Scalar<'_> {
        self.patient.identifier.value.scalar()
    }
    fn outcome_code(&self) -> Option<Cow<'_, str>> {
        self.outcome.code()
    }
}

impl AgentView for Agent<'_> {
    fn requestor(&self) -> bool {
        self.requestor.0
    }
    fn who_reference(&self) -> Option<&str> {
        self.who.reference.as_str()
    }
    fn who_identifier(&self) -> Scalar<'_> {
        self.who.identifier.value.scalar()
    }
    fn who_display(&self) -> Option<&str> {
        self.who.display.as_str()
    }
    fn name(&self) -> Option<&str> {
        self.name.as_str()
    }
    fn alt_id(&self) -> Scalar<'_> {
        self.alt_id.scalar()
    }
    fn agent_codes(&self, which: AgentCodes) -> impl Iterator<Item = &str> {
        match which {
            AgentCodes::Type => &self.kind,
            AgentCodes::PurposeOfUse => &self.purpose_of_use,
            AgentCodes::Authorization => &self.authorization,
        }
        .iter()
    }
    fn media(&self) -> (Option<&str>, Option<&str>) {
        self.media.pair()
    }
    fn network(&self) -> [Option<&str>; 3] {
        [
            self.network.address.as_str(),
            self.network_string.as_str(),
            self.network_uri.as_str(),
        ]
    }
    fn policy(&self) -> impl Iterator<Item = Scalar<'_>> {
        self.policy.0.iter().flatten().map(Ident::scalar)
    }
}

impl EntityView for Entity<'_> {
    fn what_reference(&self) -> Option<&str> {
        self.what.reference.as_str()
    }
    fn what_identifier(&self) -> Scalar<'_> {
        self.what.identifier.value.scalar()
    }
    fn entity_codes(&self, which: EntityCodes) -> impl Iterator<Item = &str> {
        match which {
            EntityCodes::Type => &self.kind,
            EntityCodes::Role => &self.role,
        }
        .iter()
    }
    fn is_absent(&self, which: EntityCodes) -> bool {
        match which {
            EntityCodes::Type => self.kind.null,
            EntityCodes::Role => self.role.null,
        }
    }
    fn has_query(&self) -> bool {
        self.has_query
    }
    fn query(&self) -> Option<&str> {
        self.query.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_lists_keep_their_order() {
        let mut l = CodeList::default();
        l.push("b".into());
        l.push("c".into());
        l.push_front("a".into());
        let mut m = CodeList::default();
        m.push("d".into());
        l.append(m);
        l.append(CodeList::default());
        assert_eq!(l.iter().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        let mut one = CodeList::default();
        one.push_front("x".into());
        assert_eq!(one.iter().collect::<Vec<_>>(), ["x"]);
        assert!(one.rest.is_empty());
    }
}

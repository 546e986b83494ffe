//! `kind: rule` (the default): the detector's `detection` alone decides, one event at a
//! time, so there is nothing to remember per user and `params` are not read. The
//! matching itself is compiled in `detect::rule`.

use super::{Cx, DetectorKind};
use crate::detect::rule::Matcher;
use crate::engine::findings::Context;
use anyhow::Result;

#[derive(Debug, Clone)]
pub struct Rule;

impl DetectorKind for Rule {
    const NAME: &'static str = "rule";
    type User = ();

    fn compile(_params: serde_norway::Value, _matcher: &Matcher) -> Result<Rule> {
        Ok(Rule)
    }

    fn evaluate(&self, cx: Cx<'_>) -> Option<Context> {
        Some(Context::for_event(cx.e))
    }
}

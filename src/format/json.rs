//! `json`: exactly the contract alert JSON (field names and types fixed by
//! `shared/contract.md`), after the sink's patient policy.

use crate::alert::Alert;

pub fn render(alert: &Alert) -> String {
    alert.to_json_line()
}

//! `json`: exactly the contract alert JSON (field names and types fixed by
//! `shared/contract.md`), after the sink's patient policy. A follow-up alert adds one
//! field, `follows` (the `id` of the alert its finding raised at once); it is absent from
//! every other alert, so they are byte-identical to before it existed.

use crate::alert::Alert;

pub fn render(alert: &Alert) -> String {
    alert.to_json_line()
}

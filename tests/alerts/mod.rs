//! Alerts on their way out: each format (JSON, CEF, LEEF, ECS, OCSF) and pseudonymised
//! patient ids, and each sink (file, syslog, webhook) with its failures.

mod format_cef;
mod format_ecs;
mod format_json;
mod format_leef;
mod format_ocsf;
mod format_pseudonym;
mod sink_file;
mod sink_queue;
mod sink_syslog;
mod sink_webhook;

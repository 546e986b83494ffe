//! From the outside world to events: files followed through growth, rotation and restarts,
//! each input format parsed, file events from auditd and inotify, PHI counted in files.

mod auditd;
mod fswatch;
mod implausible;
mod parse_atna;
mod parse_delimited;
mod parse_fhir;
mod phi;
mod public_records;
mod tail_basic;
mod tail_checkpoint;
mod tail_restart;
mod tail_rotation;

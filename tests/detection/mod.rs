//! From events to alerts: the crafted hospital gives exactly its expected alerts, an export
//! copied to USB is one alert, the scorecard, and the simulator's promises.

pub(crate) mod e2e_exfil;
mod e2e_immediate;
mod e2e_replay;
mod encounters;
mod rhythms;
mod score;
mod simulate;

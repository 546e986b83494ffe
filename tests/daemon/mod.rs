//! phiwatch as operators run it: the command line, `run` giving `replay`'s alerts across
//! kills and restarts, reloads seen through `/metrics`, and the operations files
//! (Prometheus rules, Grafana, systemd units, the .deb) with the real tools.

mod cli;
mod delivery;
mod e2e_run;
mod live_time;
mod ops;
mod reload;
mod restarts;

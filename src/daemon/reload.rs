//! Reloads while running: reference data whenever its files change on disk, and on
//! SIGHUP the config file again for detectors and reference paths. Sources, sinks, state
//! and metrics need a restart.
//!
//! A reload that fails keeps what is in service, logs why (file and line), counts it in
//! `phiwatch_reference_reload_errors_total` or `phiwatch_detector_reload_errors_total`,
//! and is not tried again until the files change again, so one bad edit is one error, not
//! one every two seconds.
//!
//! Reference data is loaded on a thread of its own, beside the data in service, which
//! keeps serving until the new data is complete: a health system's patient and care files
//! take seconds to load, and the engine must not stop reading events meanwhile. For that
//! time both are in memory.

use crate::config::{Config, ReferenceConfig};
use crate::detect::{self, Detector};
use crate::metrics;
use crate::reference::{Reference, Stamps};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info};

/// How often reference files are looked at for changes.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// What a reload brought: each part only when it was reloaded successfully.
#[derive(Default)]
pub struct Reloaded {
    pub reference: Option<Arc<Reference>>,
    pub detectors: Option<Vec<Detector>>,
}

/// Watches the reference files and answers SIGHUP for one daemon.
pub struct Reloader {
    file: PathBuf,
    reference: ReferenceConfig,
    last_look: Instant,
    /// The files as they were when a reload last failed: not tried again until they change.
    failed: Option<Stamps>,
    /// A load under way on its thread, with the stamps of the files it reads.
    loading: Option<(Receiver<anyhow::Result<Reference>>, Stamps)>,
    /// A SIGHUP came while a load was under way: load again once it is done.
    again: bool,
}

impl Reloader {
    pub fn new(cfg: &Config) -> Reloader {
        Reloader {
            file: cfg.file.clone(),
            reference: cfg.reference.clone(),
            last_look: Instant::now(),
            failed: None,
            loading: None,
            again: false,
        }
    }

    /// Called every turn of a daemon's loop with the reference data in service. With
    /// `hup` (a SIGHUP arrived) the config file is read again, detectors are reloaded at
    /// once and reference data whatever changed; otherwise, every two seconds, reference
    /// data whose files changed is. Reference data comes back in a later call, once its
    /// thread has finished loading it.
    pub fn poll(&mut self, hup: bool, current: &Reference) -> Reloaded {
        let mut out = Reloaded::default();
        if hup {
            out.detectors = self.reload_config();
            if self.loading.is_some() {
                self.again = true;
            } else {
                self.start_loading();
            }
        }
        if let Some((rx, _)) = &self.loading {
            match rx.try_recv() {
                Ok(result) => {
                    let (_, stamps) = self.loading.take().expect("checked above");
                    out.reference = self.loaded(result, stamps);
                    if std::mem::take(&mut self.again) {
                        self.start_loading();
                    }
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    let (_, stamps) = self.loading.take().expect("checked above");
                    out.reference = self.loaded(
                        Err(anyhow::anyhow!(
                            "the reference loading thread ended without an answer"
                        )),
                        stamps,
                    );
                }
            }
            return out;
        }
        if self.last_look.elapsed() < LOOK_EVERY {
            return out;
        }
        self.last_look = Instant::now();
        if !current.changed(&self.reference) {
            return out;
        }
        if self
            .failed
            .as_ref()
            .is_some_and(|f| *f == Reference::current_stamps(&self.reference))
        {
            return out;
        }
        self.start_loading();
        out
    }

    /// Starts loading the reference data on its own thread.
    fn start_loading(&mut self) {
        let (tx, rx) = mpsc::channel();
        let cfg = self.reference.clone();
        let stamps = Reference::current_stamps(&cfg);
        let spawned = std::thread::Builder::new()
            .name("reference-load".into())
            .spawn(move || {
                let _ = tx.send(Reference::load(&cfg));
            });
        match spawned {
            Ok(_) => self.loading = Some((rx, stamps)),
            Err(e) => {
                self.failed = Some(stamps);
                metrics::get().reference_reload_errors.inc();
                error!(error = %e, "cannot start loading reference data; keeping the previous data");
            }
        }
    }

    /// SIGHUP: the config file again, for detectors (returned) and reference paths.
    fn reload_config(&mut self) -> Option<Vec<Detector>> {
        let fresh = match Config::load(&self.file) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %format!("{e:#}"), "SIGHUP: the config file cannot be read; keeping the running configuration");
                metrics::get().detector_reload_errors.inc();
                metrics::get().reference_reload_errors.inc();
                return None;
            }
        };
        info!("SIGHUP: reloading detectors and reference data (changes to sources, sinks, state or metrics take effect after a restart)");
        self.reference = fresh.reference.clone();
        let detectors = match detect::load(
            fresh.engine.detectors.as_deref(),
            crate::engine::kinds::compile,
        ) {
            Ok(ds) => {
                info!(detectors = ds.len(), "detectors reloaded");
                record_detectors(&ds);
                Some(ds)
            }
            Err(errs) => {
                metrics::get().detector_reload_errors.inc();
                error!(errors = %errs.join("; "), "detector reload failed; keeping the detectors in service");
                None
            }
        };
        detectors
    }

    /// A load finished: the new data to put in service, or the error counted and logged
    /// (and these files not tried again until they change).
    fn loaded(
        &mut self,
        result: anyhow::Result<Reference>,
        stamps: Stamps,
    ) -> Option<Arc<Reference>> {
        match result {
            Ok(r) => {
                self.failed = None;
                let (s, p, c) = r.rows();
                info!(staff = s, patients = p, care = c, "reference data reloaded");
                record_reference(&r);
                Some(Arc::new(r))
            }
            Err(e) => {
                self.failed = Some(stamps);
                metrics::get().reference_reload_errors.inc();
                error!(error = %format!("{e:#}"), "reference data reload failed; keeping the previous data");
                None
            }
        }
    }
}

/// Exports the rows of reference data in service and when it was loaded.
pub fn record_reference(r: &Reference) {
    let m = metrics::get();
    let (s, p, c) = r.rows();
    m.reference_rows.with_label_values(&["staff"]).set(s as i64);
    m.reference_rows
        .with_label_values(&["patients"])
        .set(p as i64);
    m.reference_rows.with_label_values(&["care"]).set(c as i64);
    m.reference_reload_timestamp_seconds
        .set(metrics::now_secs());
    for (table, rows) in r.rejected() {
        m.reference_rows_rejected
            .with_label_values(&[table])
            .set(rows.len() as i64);
        for why in rows {
            // Values are left out: a bad row of the patient directory is patient data.
            tracing::warn!(table, row = %without_values(why), "reference row set aside; the rest of the file is in service");
        }
    }
}

/// A message with the values it quotes replaced by `…`.
pub fn without_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut quoted = false;
    for c in msg.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// Exports the detectors in service: how many, and a series per detector and severity.
pub fn record_detectors(detectors: &[Detector]) {
    let m = metrics::get();
    m.detectors.set(detectors.len() as i64);
    for d in detectors {
        m.register_detector(&d.id, d.severity);
    }
}

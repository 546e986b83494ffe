//! Process signals as flags the pipeline polls: SIGTERM/SIGINT ask for a clean stop,
//! SIGHUP for a reload. A small tokio runtime on its own thread listens, so the
//! pipeline's threads never run signal handlers themselves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Flags {
    /// Shared with the source threads, which know nothing else of the daemon.
    pub stop: Arc<AtomicBool>,
    pub reload: AtomicBool,
}

impl Flags {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// True once per SIGHUP.
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::SeqCst)
    }
}

/// Installs the listeners; returns the shared flags.
pub fn install() -> anyhow::Result<Arc<Flags>> {
    let flags = Arc::new(Flags::default());
    let f = Arc::clone(&flags);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let streams = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::hangup()),
                );
                let (Ok(mut term), Ok(mut int), Ok(mut hup)) = streams else {
                    let _ = ready_tx.send(false);
                    return;
                };
                let _ = ready_tx.send(true);
                loop {
                    tokio::select! {
                        _ = term.recv() => f.stop.store(true, Ordering::SeqCst),
                        _ = int.recv() => f.stop.store(true, Ordering::SeqCst),
                        _ = hup.recv() => f.reload.store(true, Ordering::SeqCst),
                    }
                }
            })
        })?;
    match ready_rx.recv() {
        Ok(true) => Ok(flags),
        _ => anyhow::bail!("cannot install signal handlers"),
    }
}

//! The `fswatch` source: files created, written, moved in or deleted under watched folders
//! (USB mount points, export, download and sync folders) become canonical file events,
//! attributed to the file's owner and classed by media.
//!
//! Delivery: at least once per settled change. Writes are debounced: a file counts as
//! written once it has been quiet for `debounce_ms`, so a copy in many chunks is one
//! event. inotify queue overflow (notify's `Rescan` flag) is counted, logged, and followed
//! by a rescan that compares every file with the index of sizes and modification times,
//! so changes lost in the overflow still become events. Folders that appear later (a USB
//! stick mounted after start) are watched as they appear; watched roots that do not exist
//! yet are looked for at every rescan. Network filesystems send no events: set
//! `rescan_secs` to scan them periodically.

use crate::config::SourceConfig;
use crate::event::{Action, Event, Media};
use crate::phi::{Sampler, DEFAULT_SAMPLE_BYTES};
use crate::uid::{hostname, UidMap};
use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

/// Counters a caller can export.
#[derive(Debug, Default)]
pub struct FsStats {
    pub events: AtomicU64,
    pub overflows: AtomicU64,
    pub rescans: AtomicU64,
    pub errors: AtomicU64,
}

/// What the watcher hands over: settled file events.
pub type Emit = Box<dyn FnMut(Vec<Event>) -> bool + Send>;

struct Settings {
    source: String,
    roots: Vec<PathBuf>,
    media: Option<Media>,
    debounce: Duration,
    rescan_every: Option<Duration>,
    uids: UidMap,
    sampler: Option<Sampler>,
    host: String,
}

/// A running watcher. Dropping it stops watching.
pub struct FsWatch {
    pub stats: Arc<FsStats>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FsWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Turns notify's errors into ones that say what to do.
pub fn watch_error(e: notify::Error, path: &Path) -> anyhow::Error {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => anyhow!(
            "cannot watch {}: the inotify watch limit is reached (one watch per folder). Raise it with \
             `sysctl -w fs.inotify.max_user_watches=524288` and make it permanent in /etc/sysctl.d/",
            path.display()
        ),
        notify::ErrorKind::PathNotFound => anyhow!("{} does not exist", path.display()),
        _ => anyhow!("cannot watch {}: {e}", path.display()),
    }
}

/// Starts watching the source's `paths`; `emit` receives batches of events and returns
/// false to stop.
pub fn start(cfg: &SourceConfig, emit: Emit) -> Result<FsWatch> {
    let media = match &cfg.media {
        Some(m) => Some(Media::parse(m).ok_or_else(|| {
            anyhow!(
                "source {:?}: media {m:?} is not removable, network, cloud or local",
                cfg.name
            )
        })?),
        None => None,
    };
    let sample_bytes = cfg.phi_sample_bytes.unwrap_or(DEFAULT_SAMPLE_BYTES);
    let sampler = if sample_bytes == 0 {
        None
    } else {
        Some(Sampler::new(
            sample_bytes,
            &cfg.phi_keywords,
            &cfg.mrn_patterns,
        )?)
    };
    if cfg.paths.is_empty() {
        bail!("source {:?}: `paths` lists no folder to watch", cfg.name);
    }
    let settings = Settings {
        source: cfg.name.clone(),
        roots: cfg.paths.iter().map(PathBuf::from).collect(),
        media,
        debounce: Duration::from_millis(cfg.debounce_ms.unwrap_or(500)),
        rescan_every: cfg.rescan_secs.filter(|s| *s > 0).map(Duration::from_secs),
        uids: UidMap::new(&cfg.uids),
        sampler,
        host: hostname(),
    };
    let (tx, rx) = channel();
    let mut watcher = notify::recommended_watcher(move |r| {
        let _ = tx.send(r);
    })
    .map_err(|e| anyhow!("cannot start the file watcher: {e}"))?;
    let stats = Arc::new(FsStats::default());
    let mut state = State {
        s: settings,
        index: HashMap::new(),
        pending: HashMap::new(),
        watched: Vec::new(),
        stats: Arc::clone(&stats),
    };
    state.watch_roots(&mut watcher)?;
    state.rescan(false);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name(format!("fswatch-{}", cfg.name))
        .spawn(move || state.run(watcher, rx, emit, stop2))?;
    Ok(FsWatch {
        stats,
        stop,
        thread: Some(thread),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    size: u64,
    mtime: i64,
    uid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Written,
    MovedIn,
}

struct State {
    s: Settings,
    /// Every file seen under the roots: what it looked like when last reported.
    index: HashMap<PathBuf, Seen>,
    /// Changes waiting to settle: kind and time of the last notification.
    pending: HashMap<PathBuf, (Change, Instant)>,
    watched: Vec<PathBuf>,
    stats: Arc<FsStats>,
}

impl State {
    fn watch_roots(&mut self, w: &mut RecommendedWatcher) -> Result<()> {
        for root in self.s.roots.clone() {
            if self.watched.contains(&root) || !root.is_dir() {
                continue;
            }
            w.watch(&root, RecursiveMode::Recursive)
                .map_err(|e| watch_error(e, &root))?;
            info!(source = %self.s.source, path = %root.display(), "watching");
            self.watched.push(root);
        }
        Ok(())
    }

    fn run(
        mut self,
        mut w: RecommendedWatcher,
        rx: Receiver<notify::Result<notify::Event>>,
        mut emit: Emit,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) {
        let mut last_rescan = Instant::now();
        let mut last_roots = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let mut out = Vec::new();
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(ev)) => self.on_event(ev, &mut out),
                Ok(Err(e)) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    warn!(source = %self.s.source, error = %e, "file watcher error");
                    if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                        warn!("the inotify watch limit is reached: raise fs.inotify.max_user_watches (sysctl -w fs.inotify.max_user_watches=524288)");
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Drain whatever else is queued before settling.
            while let Ok(r) = rx.try_recv() {
                match r {
                    Ok(ev) => self.on_event(ev, &mut out),
                    Err(_) => {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            self.settle(&mut out);
            if last_roots.elapsed() > Duration::from_secs(5) {
                last_roots = Instant::now();
                let before = self.watched.len();
                if let Err(e) = self.watch_roots(&mut w) {
                    warn!(source = %self.s.source, error = %format!("{e:#}"), "cannot watch a folder");
                }
                if self.watched.len() > before {
                    out.extend(self.rescan(true));
                }
            }
            if let Some(every) = self.s.rescan_every {
                if last_rescan.elapsed() >= every {
                    last_rescan = Instant::now();
                    out.extend(self.rescan(true));
                }
            }
            if !out.is_empty() {
                self.stats
                    .events
                    .fetch_add(out.len() as u64, Ordering::Relaxed);
                if !emit(out) {
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, ev: notify::Event, out: &mut Vec<Event>) {
        if ev.need_rescan() {
            self.stats.overflows.fetch_add(1, Ordering::Relaxed);
            warn!(
                source = %self.s.source,
                "the kernel's file event queue overflowed; rescanning the watched folders so no change is missed"
            );
            out.extend(self.rescan(true));
            return;
        }
        let now = Instant::now();
        match ev.kind {
            EventKind::Create(_)
            | EventKind::Modify(ModifyKind::Data(_))
            | EventKind::Modify(ModifyKind::Any) => {
                for p in ev.paths {
                    self.pending
                        .entry(p)
                        .and_modify(|e| e.1 = now)
                        .or_insert((Change::Written, now));
                }
            }
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write,
            )) => {
                for p in ev.paths {
                    self.pending
                        .entry(p)
                        .and_modify(|e| e.1 = now)
                        .or_insert((Change::Written, now));
                }
            }
            EventKind::Modify(ModifyKind::Name(mode)) => {
                let to = match mode {
                    RenameMode::Both => ev.paths.get(1).cloned(),
                    RenameMode::To => ev.paths.first().cloned(),
                    RenameMode::From => {
                        if let Some(p) = ev.paths.first() {
                            self.index.remove(p);
                        }
                        None
                    }
                    _ => ev.paths.last().cloned(),
                };
                if mode == RenameMode::Both {
                    if let Some(from) = ev.paths.first() {
                        self.index.remove(from);
                    }
                }
                if let Some(p) = to {
                    self.pending.insert(p, (Change::MovedIn, now));
                }
            }
            EventKind::Remove(_) => {
                for p in ev.paths {
                    self.pending.remove(&p);
                    if let Some(seen) = self.index.remove(&p) {
                        out.push(self.event(&p, Action::FileDelete, Some(seen), None));
                    }
                }
            }
            _ => {}
        }
    }

    /// Emits changes that have been quiet for the debounce time.
    fn settle(&mut self, out: &mut Vec<Event>) {
        let ready: Vec<(PathBuf, Change)> = self
            .pending
            .iter()
            .filter(|(_, (_, t))| t.elapsed() >= self.s.debounce)
            .map(|(p, (c, _))| (p.clone(), *c))
            .collect();
        for (p, change) in ready {
            self.pending.remove(&p);
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue; // gone before it settled
            };
            if !meta.is_file() {
                continue;
            }
            let seen = seen_of(&meta);
            if change == Change::Written && self.index.get(&p) == Some(&seen) {
                continue; // touched, not changed
            }
            self.index.insert(p.clone(), seen);
            let action = match change {
                Change::Written => Action::FileWrite,
                Change::MovedIn => Action::FileMove,
            };
            let phi = self
                .s
                .sampler
                .as_ref()
                .and_then(|s| s.sample(&p))
                .map(|x| x.1);
            out.push(self.event(&p, action, Some(seen), phi));
        }
    }

    /// Walks the roots; with `report`, files new or changed since the index become events.
    fn rescan(&mut self, report: bool) -> Vec<Event> {
        self.stats.rescans.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        let mut present = std::collections::HashSet::new();
        let mut stack: Vec<PathBuf> = self
            .s
            .roots
            .iter()
            .filter(|r| r.is_dir())
            .cloned()
            .collect();
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in rd.flatten() {
                let p = entry.path();
                let Ok(meta) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(p);
                } else if meta.is_file() {
                    present.insert(p.clone());
                    if self.pending.contains_key(&p) {
                        continue; // reported when it settles
                    }
                    let seen = seen_of(&meta);
                    let changed = self.index.get(&p) != Some(&seen);
                    if changed {
                        self.index.insert(p.clone(), seen);
                        if report {
                            let phi = self
                                .s
                                .sampler
                                .as_ref()
                                .and_then(|s| s.sample(&p))
                                .map(|x| x.1);
                            out.push(self.event(&p, Action::FileWrite, Some(seen), phi));
                        }
                    }
                }
            }
        }
        if report {
            let gone: Vec<PathBuf> = self
                .index
                .keys()
                .filter(|p| !present.contains(*p))
                .cloned()
                .collect();
            for p in gone {
                let seen = self.index.remove(&p);
                out.push(self.event(&p, Action::FileDelete, seen, None));
            }
        }
        out
    }

    fn event(
        &self,
        p: &Path,
        action: Action,
        seen: Option<Seen>,
        phi: Option<crate::event::PhiMarkers>,
    ) -> Event {
        let user = seen.map_or_else(|| "unknown".to_string(), |s| self.s.uids.user(s.uid));
        let mut e = Event::new(now(), user, action);
        e.path = Some(p.to_string_lossy().into_owned());
        e.bytes = seen.map(|s| s.size);
        e.media = Some(self.s.media.unwrap_or_else(|| media_of(p)));
        e.host = Some(self.s.host.clone());
        e.source = self.s.source.clone();
        if let Some(m) = phi {
            if m.records > 0 {
                e.records = m.records;
            }
            e.phi = Some(m);
        }
        e
    }
}

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(SystemTime::now())
}

fn seen_of(m: &std::fs::Metadata) -> Seen {
    Seen {
        size: m.len(),
        mtime: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        uid: m.uid(),
    }
}

/// Media of a path from the filesystem it is mounted on (`/proc/self/mountinfo`).
pub fn media_of(p: &Path) -> Media {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    media_from_mountinfo(&info, p)
}

/// The longest mount point holding `p` decides: FAT/exFAT/NTFS/ISO/UDF are removable
/// media, NFS/CIFS/SMB network shares, anything else local.
pub fn media_from_mountinfo(info: &str, p: &Path) -> Media {
    let mut best: Option<(usize, &str)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mp), Some(fstype)) = (fields.get(4), fields.get(dash + 1)) else {
            continue;
        };
        let mp = mp.replace("\\040", " ");
        if p.starts_with(&mp) && best.is_none_or(|(len, _)| mp.len() > len) {
            best = Some((mp.len(), fstype));
        }
    }
    match best.map(|b| b.1) {
        Some("vfat" | "exfat" | "ntfs" | "ntfs3" | "fuseblk" | "iso9660" | "udf" | "msdos") => {
            Media::Removable
        }
        Some("nfs" | "nfs4" | "cifs" | "smb3" | "smbfs" | "fuse.sshfs" | "9p") => Media::Network,
        _ => Media::Local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_from_mounts() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    40 22 8:17 / /media/jsmith/USB\\040STICK rw - vfat /dev/sdb1 rw\n\
                    41 22 0:50 / /mnt/share rw - cifs //fs01/share rw\n";
        assert_eq!(
            media_from_mountinfo(info, Path::new("/media/jsmith/USB STICK/a.csv")),
            Media::Removable
        );
        assert_eq!(
            media_from_mountinfo(info, Path::new("/mnt/share/x")),
            Media::Network
        );
        assert_eq!(
            media_from_mountinfo(info, Path::new("/home/x")),
            Media::Local
        );
    }
}

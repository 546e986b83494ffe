//! For the tailer tests (`ingest::tail_*`): real files in a temporary folder, polled
//! explicitly (no sleeps).

use phiwatch::source::{LineKind, Position, TailLine, TailOptions, Tailer};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A glob for `pattern` inside this folder.
    pub fn glob(&self, pattern: &str) -> Vec<String> {
        vec![self.path(pattern).to_string_lossy().into_owned()]
    }
}

/// Appends `text` to `path` (creating it) through a fresh handle.
pub fn append(path: &Path, text: &str) {
    append_bytes(path, text.as_bytes());
}

pub fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// A writer that keeps its handle, like a logging application across a rename.
pub fn writer(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

pub fn write(f: &mut File, text: &str) {
    f.write_all(text.as_bytes()).unwrap();
}

pub fn truncate(path: &Path) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

pub fn texts(lines: &[TailLine]) -> Vec<String> {
    lines.iter().map(|l| l.text.clone()).collect()
}

pub fn data_texts(lines: &[TailLine]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.kind == LineKind::Data)
        .map(|l| l.text.clone())
        .collect()
}

/// Polls until a poll returns nothing; everything handed out, in order.
pub fn drain(t: &mut Tailer) -> Vec<TailLine> {
    drain_by(t, 1000)
}

/// [`drain`] with polls of at most `max` lines.
pub fn drain_by(t: &mut Tailer, max: usize) -> Vec<TailLine> {
    let mut all = Vec::new();
    loop {
        let got = t.poll(max).unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

/// A tailer on `pattern` in `d`, started from `from`, that reads everything there is and
/// stops: what it handed out, and the positions a clean stop leaves.
pub fn read_and_stop(
    d: &Dir,
    pattern: &str,
    o: TailOptions,
    from: &[Position],
) -> (Vec<TailLine>, Vec<Position>) {
    let mut t = Tailer::new(d.glob(pattern), o, from);
    let got = drain(&mut t);
    (got, t.positions())
}

pub fn opts() -> TailOptions {
    TailOptions::default()
}

pub fn lines(prefix: &str, range: std::ops::RangeInclusive<u32>) -> String {
    range.map(|i| format!("{prefix}{i}\n")).collect()
}

pub fn names(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

pub fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

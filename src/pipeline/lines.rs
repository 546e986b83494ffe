//! Reading a whole file line by line with byte offsets, for `replay`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Longest line accepted; longer ones are handed over truncated and flagged.
pub const MAX_LINE: usize = 1 << 20;

pub struct Line {
    pub offset: u64,
    pub text: String,
    pub oversized: bool,
}

/// Iterates over the lines of a complete file (the last line needs no newline).
pub struct FileLines {
    reader: BufReader<File>,
    offset: u64,
    buf: Vec<u8>,
}

impl FileLines {
    pub fn open(path: &Path) -> std::io::Result<FileLines> {
        Ok(FileLines {
            reader: BufReader::with_capacity(64 * 1024, File::open(path)?),
            offset: 0,
            buf: Vec::with_capacity(1024),
        })
    }
}

impl Iterator for FileLines {
    type Item = std::io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => None,
            Ok(n) => {
                let offset = self.offset;
                self.offset += n as u64;
                let mut end = self.buf.len();
                while end > 0 && (self.buf[end - 1] == b'\n' || self.buf[end - 1] == b'\r') {
                    end -= 1;
                }
                let oversized = end > MAX_LINE;
                let text = String::from_utf8_lossy(&self.buf[..end.min(MAX_LINE)]).into_owned();
                Some(Ok(Line {
                    offset,
                    text,
                    oversized,
                }))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

//! The spool: batches the database could not take, appended to a local file and fsynced
//! before the records in them count as durable. One JSON line per batch. Read back in order
//! when the database is reachable again; emptied once every batch in it is in the database.
//!
//! A line cut short by a crash (the process died inside the write) was never acknowledged to
//! anyone: it is dropped when the spool is opened again.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::rows::Batch;

pub struct Spool {
    path: PathBuf,
    file: File,
    /// Bytes of whole lines in the file.
    len: u64,
    /// Where the next batch to write to the database starts.
    read: u64,
}

impl Spool {
    /// Opens (or creates) `dir/spool.jsonl`, dropping a torn last line.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create spool folder {}", dir.display()))?;
        let path = dir.join("spool.jsonl");
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("cannot open spool {}", path.display()))?;
        let mut len = 0u64;
        let mut reader = BufReader::new(file.try_clone()?);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 {
                break;
            }
            if !line.ends_with('\n') || serde_json::from_str::<Batch>(line.trim_end()).is_err() {
                tracing::warn!(spool = %path.display(), offset = len, "dropping a torn record at the end of the spool");
                break;
            }
            len += n as u64;
        }
        if file.metadata()?.len() != len {
            file.set_len(len)?;
            file.sync_all()?;
        }
        Ok(Self { path, file, len, read: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Nothing waits to go to the database.
    pub fn is_empty(&self) -> bool {
        self.read >= self.len
    }

    /// Bytes waiting.
    pub fn backlog(&self) -> u64 {
        self.len - self.read
    }

    /// Appends `batch` and fsyncs: once this returns, the batch survives a crash.
    pub fn append(&mut self, batch: &Batch) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(batch)?;
        line.push(b'\n');
        let written = self.file.write_all(&line).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Leave no partial line behind for the next append to follow.
            let _ = self.file.set_len(self.len);
            return Err(e).with_context(|| format!("cannot write spool {}", self.path.display()));
        }
        self.len += line.len() as u64;
        Ok(())
    }

    /// The batches after the read position, up to about `max_rows` rows (at least one batch),
    /// and the position after them.
    pub fn peek(&self, max_rows: usize) -> anyhow::Result<(Vec<Batch>, u64)> {
        let mut f = self.file.try_clone()?;
        f.seek(SeekFrom::Start(self.read))?;
        let mut reader = BufReader::new(f);
        let (mut out, mut rows, mut pos) = (Vec::new(), 0, self.read);
        let mut line = String::new();
        while pos < self.len && (out.is_empty() || rows < max_rows) {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 {
                break;
            }
            let b: Batch = serde_json::from_str(line.trim_end())
                .with_context(|| format!("spool {} is corrupt at offset {pos}", self.path.display()))?;
            rows += b.rows();
            pos += n as u64;
            out.push(b);
        }
        Ok((out, pos))
    }

    /// The batches up to `pos` are in the database. When nothing is left, the file is
    /// emptied.
    pub fn advance(&mut self, pos: u64) -> anyhow::Result<()> {
        self.read = pos.min(self.len);
        if self.is_empty() {
            self.file.set_len(0)?;
            self.file.sync_all()?;
            self.len = 0;
            self.read = 0;
        }
        Ok(())
    }
}

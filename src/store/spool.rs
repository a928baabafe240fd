//! The spool: batches the database could not take, appended to a local file and fsynced
//! before the records in them count as durable. One JSON line per batch. Read back in order
//! when the database is reachable again; emptied once every batch in it is in the database.
//!
//! A line cut short by a crash (the process died inside the write) was never acknowledged to
//! anyone: it is dropped when the spool is opened again.
//!
//! fsync on the file keeps its content; the file's name lives in its folder, which is synced
//! too when the file (or the folder) may be new: at open. Appends and truncation change only
//! the file itself.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read as _, Seek, SeekFrom, Write};
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

/// fsync on a folder: the files created, renamed or removed in it keep their names after a
/// crash (fsync on a file alone does not promise that).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` (replacing it) durably: the file's content, then its folder entry.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    sync_dir(dir)
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
        // The folder and the file may have just been created: their names must survive a crash
        // before anything appended to the file counts as durable.
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        sync_dir(parent)
            .and_then(|()| sync_dir(dir))
            .with_context(|| format!("cannot sync spool folder {}", dir.display()))?;
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

    /// Hands every batch in the spool to `f`, in order, without moving the read position.
    pub fn replay(&self, mut f: impl FnMut(Batch)) -> anyhow::Result<()> {
        let mut f_in = self.file.try_clone()?;
        f_in.seek(SeekFrom::Start(self.read))?;
        let mut reader = BufReader::new(f_in).take(self.len - self.read);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            let b: Batch = serde_json::from_str(line.trim_end())
                .with_context(|| format!("spool {} is corrupt", self.path.display()))?;
            f(b);
            line.clear();
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(n: usize) -> Batch {
        let mut b = Batch::new();
        for i in 0..n {
            b.audits.push(super::super::rows::AuditRow {
                actor: "kuzet".into(),
                action: format!("test.{i}"),
                subject: None,
                details: "{}".into(),
            });
        }
        b
    }

    #[test]
    fn a_new_folder_and_spool_are_created_and_read_back_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new").join("spool");
        let mut s = Spool::open(&dir).unwrap();
        assert!(s.is_empty());
        let (a, b) = (batch_of(2), batch_of(3));
        s.append(&a).unwrap();
        s.append(&b).unwrap();
        drop(s);
        // A torn line after them (a crash inside a write) is dropped at open.
        let mut f = OpenOptions::new().append(true).open(dir.join("spool.jsonl")).unwrap();
        f.write_all(b"{\"id\":\"").unwrap();
        let mut s = Spool::open(&dir).unwrap();
        let mut replayed = Vec::new();
        s.replay(|b| replayed.push(b.id)).unwrap();
        assert_eq!(replayed, vec![a.id, b.id], "replayed in order, the torn line left out");
        let (got, end) = s.peek(100).unwrap();
        assert_eq!(got.iter().map(|b| b.id).collect::<Vec<_>>(), vec![a.id, b.id]);
        s.advance(end).unwrap();
        assert!(s.is_empty());
        assert_eq!(std::fs::metadata(dir.join("spool.jsonl")).unwrap().len(), 0, "emptied");
    }

    #[test]
    fn a_durable_write_replaces_the_whole_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("kept").join("rejected-x.json");
        write_durably(&path, b"a longer first version").unwrap();
        write_durably(&path, b"short").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        assert!(sync_dir(&tmp.path().join("missing")).is_err());
    }
}

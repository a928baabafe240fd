//! Device broker credentials issued by kuzet: 128 random bits each, shown once when issued and
//! kept only as Mosquitto hashes in `registry.credentials_file` (`id:$7$...` lines, mode 0600).
//! kuzet's own broker reads the file at start and again whenever it changes; `kuzet
//! broker-files` puts its lines into an external Mosquitto's password file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _};

/// The file's entries: device id -> Mosquitto hash. A missing file is an empty one.
pub fn read(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((id, hash)) = line.split_once(':') else {
            bail!("{}:{}: expected id:hash", path.display(), n + 1);
        };
        kuzet_actors::ids::check_device_id(id)
            .with_context(|| format!("{}:{}: id {id:?}", path.display(), n + 1))?;
        if !hash.starts_with("$7$") || hash.contains(char::is_whitespace) {
            bail!("{}:{}: not a Mosquitto PBKDF2 hash", path.display(), n + 1);
        }
        out.insert(id.to_owned(), hash.to_owned());
    }
    Ok(out)
}

/// Issues a new password to each of `ids` (replacing any earlier one: the old password stops
/// working once the broker reads the file). Returns (id, password) to hand to the devices.
pub fn issue(path: &Path, ids: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut entries = read(path)?;
    let mut issued = Vec::with_capacity(ids.len());
    for id in ids {
        let password = crate::brokerfiles::generate_password();
        let mut salt = [0u8; 12];
        rand::fill(&mut salt);
        entries.insert(id.clone(), crate::brokerfiles::mosquitto_hash(&password, &salt));
        issued.push((id.clone(), password));
    }
    let mut text =
        String::from("# Device broker credentials issued by `kuzet credentials issue`: hashes only.\n");
    for (id, hash) in &entries {
        text.push_str(&format!("{id}:{hash}\n"));
    }
    write_private(path, &text)?;
    Ok(issued)
}

/// Replaces `path` whole with `text`, readable by its owner alone (mode 0600, fsynced, then
/// renamed over the old file, so a reader never sees half of it).
pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_passwords_are_kept_as_hashes_only_and_replace_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("creds");
        let first = issue(&f, &["btn-1".into(), "unit-1".into()]).unwrap();
        assert_eq!(first.len(), 2);
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains(&first[0].1), "no plain text on disk");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&f).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let before = read(&f).unwrap();
        let again = issue(&f, &["btn-1".into()]).unwrap();
        assert_ne!(again[0].1, first[0].1);
        let after = read(&f).unwrap();
        assert_ne!(after["btn-1"], before["btn-1"], "rotated");
        assert_eq!(after["unit-1"], before["unit-1"], "others kept");
    }

    #[test]
    fn a_hand_edited_line_that_is_not_a_hash_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("creds");
        std::fs::write(&f, "btn-1:plaintext\n").unwrap();
        assert!(read(&f).is_err());
        std::fs::write(&f, "BTN:$7$101$a$b\n").unwrap();
        assert!(read(&f).is_err());
    }
}

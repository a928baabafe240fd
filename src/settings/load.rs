//! Reading settings: TOML tables merged in order, `KUZET_SECTION__KEY` variables (and
//! `_FILE` ones) laid over them.

use super::*;

pub(super) fn parse_toml(name: &str, text: &str) -> Result<toml::Table, SettingsError> {
    text.parse::<toml::Table>()
        .map_err(|source| SettingsError::Parse { path: name.to_owned(), source: Box::new(source) })
}

pub(super) fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The settings the environment sets, as (key path, raw value). `KUZET_SECTION__KEY_FILE=/path`
/// sets `section.key` to the file's content less one trailing newline, so secrets can come
/// from files (docker-compose secrets) instead of the environment.
pub(super) fn env_settings(
    defaults: &toml::Table,
    env: &[(String, String)],
) -> Result<Vec<(Vec<String>, String)>, SettingsError> {
    let mut out: Vec<(Vec<String>, String)> = Vec::new();
    let mut seen: HashMap<Vec<String>, &str> = HashMap::new();
    for (name, value) in env {
        // Only KUZET_SECTION__KEY names are settings; other KUZET_ variables (a compose
        // file's own, say) are left alone.
        let Some(rest) = name.strip_prefix("KUZET_").filter(|r| r.contains("__")) else {
            continue;
        };
        let mut path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let last = path.last().cloned().unwrap_or_default();
        // A key that itself ends in `_file` (none does yet) is set directly, not read from a file.
        let from_file = match last.strip_suffix("_file") {
            Some(key) if !key.is_empty() && get_path(defaults, &path).is_none() => {
                *path.last_mut().expect("split yields one part") = key.to_owned();
                true
            }
            _ => false,
        };
        if let Some(other) = seen.insert(path.clone(), name) {
            return Err(SettingsError::Invalid(format!(
                "{other} and {name} both set {}: use one",
                path.join(".")
            )));
        }
        let raw = if from_file {
            let text = std::fs::read_to_string(value)
                .map_err(|e| SettingsError::Invalid(format!("{name}: cannot read {value}: {e}")))?;
            let text = text.strip_suffix('\n').map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
            text.to_owned()
        } else {
            value.clone()
        };
        out.push((path, raw));
    }
    Ok(out)
}

pub(super) fn get_path<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut t = table;
    for p in parents {
        t = t.get(p)?.as_table()?;
    }
    t.get(last)
}

pub(super) fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut t = table;
    for p in parents {
        let entry = t.entry(p.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        t = next;
    }
    t.insert(last.clone(), value);
}

/// An environment value as a TOML scalar when it parses as one (numbers, booleans),
/// otherwise as a string.
pub(super) fn env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table() && !v.is_array())
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

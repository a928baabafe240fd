//! Free text from outside (a tablet's decline reason, a camera's plate read, a dispatcher's
//! cancel reason, a watchlist entry's name): one rule for what it may hold, used by the MQTT
//! codec and the HTTP API alike.
//!
//! Refused: every control character (Unicode category Cc: C0 U+0000-U+001F including tab and
//! newline, DEL U+007F, C1 U+0080-U+009F) and the line and paragraph separators U+2028/U+2029.
//! No field needs them, and they do harm downstream: PostgreSQL text and jsonb cannot hold
//! NUL (one would make the database refuse the whole batch it is in), and line breaks and
//! escapes forge log lines and garble the console. Other format characters (zero-width
//! joiners, which some scripts need) are allowed.
//!
//! The same goes for what kuzet itself repeats of outside text in a refusal (logged and sent
//! back): `echo` and `clean_message` escape what the rule refuses and keep it short.

/// How much of a refused value a refusal repeats.
pub const ECHO_CHARS: usize = 40;

/// A refused value as a refusal repeats it: quoted, controls escaped (`{:?}`), and cut to
/// `ECHO_CHARS` characters so a long value does not make a long refusal.
pub fn echo(raw: &str) -> String {
    if raw.chars().count() <= ECHO_CHARS {
        format!("{raw:?}")
    } else {
        let head: String = raw.chars().take(ECHO_CHARS).collect();
        format!("{head:?}...")
    }
}

/// Longest message `clean_message` makes, in characters.
pub const MAX_MESSAGE_CHARS: usize = 200;
/// What `clean_message` keeps of a long message's end (serde_json's "at line 1 column 80").
const MESSAGE_TAIL_CHARS: usize = 40;

/// A library's error message about outside input, fit to log and send back: serde quotes
/// what it refused as it came (`unknown variant `...``), so controls are escaped (`\u{0}`)
/// and a long message is cut in the middle, keeping its end.
pub fn clean_message(raw: &str) -> String {
    let mut escaped = Vec::with_capacity(raw.len());
    for c in raw.chars() {
        if refused(c) {
            escaped.extend(c.escape_unicode());
        } else {
            escaped.push(c);
        }
    }
    if escaped.len() <= MAX_MESSAGE_CHARS {
        return escaped.into_iter().collect();
    }
    let head = &escaped[..MAX_MESSAGE_CHARS - MESSAGE_TAIL_CHARS - 5];
    let tail = &escaped[escaped.len() - MESSAGE_TAIL_CHARS..];
    format!("{} ... {}", head.iter().collect::<String>(), tail.iter().collect::<String>())
}

/// Whether the rule refuses `c` (see the module header).
fn refused(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A refused character: which one, and where (counted in characters from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("holds a control character (U+{code:04X} at character {at})")]
pub struct ControlChar {
    pub code: u32,
    pub at: usize,
}

/// Checks that `s` holds no control character (see the module header).
pub fn check_text(s: &str) -> Result<(), ControlChar> {
    // Printable ASCII, the usual case, needs no per-character look at Unicode classes.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    match s.chars().enumerate().find(|(_, c)| refused(*c)) {
        Some((at, c)) => Err(ControlChar { code: u32::from(c), at }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_in_any_script_passes() {
        for ok in ["", "caller confirmed a drill", "Мектеп №12, 2-қабат", "José’s café", "a\u{200d}b", "😀"]
        {
            assert_eq!(check_text(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn control_characters_are_refused_with_their_place() {
        assert_eq!(check_text("ab\0c"), Err(ControlChar { code: 0, at: 2 }));
        assert_eq!(check_text("é\u{7f}"), Err(ControlChar { code: 0x7f, at: 1 }));
        for bad in ["\t", "a\nb", "\r", "\u{1b}[31m", "\u{85}", "\u{9f}", "x\u{2028}", "\u{2029}"] {
            assert!(check_text(bad).is_err(), "{bad:?}");
        }
        let e = check_text("a\u{0}").unwrap_err().to_string();
        assert_eq!(e, "holds a control character (U+0000 at character 1)");
    }

    #[test]
    fn what_a_refusal_repeats_is_escaped_and_short() {
        assert_eq!(echo("a\nb"), "\"a\\nb\"");
        assert_eq!(echo(&"x\u{16}".repeat(100)), format!("{:?}...", "x\u{16}".repeat(20)));
        // serde's message for `"action": "cancel\u0000"` (found by fuzz/, target codec).
        let m = clean_message("unknown variant `cancel\0`, expected `raise` or `cancel` at line 1 column 83");
        assert_eq!(m, "unknown variant `cancel\\u{0}`, expected `raise` or `cancel` at line 1 column 83");
        assert_eq!(clean_message("a\u{2028}b\u{85}"), "a\\u{2028}b\\u{85}");
        let long = clean_message(&format!(
            "unknown variant `{}`, expected x at line 1 column 9000",
            "\n".repeat(5000)
        ));
        assert_eq!(long.chars().count(), MAX_MESSAGE_CHARS);
        assert!(long.ends_with("at line 1 column 9000") && check_text(&long).is_ok(), "{long}");
    }
}

//! How long work shows it is moving, the same way everywhere: imports, road preparation,
//! watchlist enrolment (and hotlists later). On a terminal: one line that moves (a bar when the
//! total is known, else a spinner), `what: [====>   ] 120/500 (24/s, 16s)`. Anywhere else (a
//! service, a container, a pipe): an info log line when the work starts, at most every
//! `LOG_EVERY` while it goes, and when it ends, with the same words and numbers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// At most one log line this often while work goes on off a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// A moving line on stderr.
    Terminal,
    /// Log lines (tracing, target `kuzet::progress`).
    Log,
    /// Nothing (tests, benchmarks).
    Quiet,
}

impl Show {
    /// A terminal when stderr is one, else log lines.
    pub fn auto() -> Self {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Show::Terminal
        } else {
            Show::Log
        }
    }
}

/// One piece of long work: `what` (a short noun phrase: "importing sites"), a unit ("features",
/// "photos"), and a total when known.
pub struct Progress {
    what: String,
    unit: &'static str,
    total: Option<u64>,
    show: Show,
    bar: ProgressBar,
    started: Instant,
    state: Mutex<(u64, Instant)>,
}

impl Progress {
    pub fn new(show: Show, what: &str, unit: &'static str, total: Option<u64>) -> Self {
        let bar = match show {
            Show::Terminal => {
                let b = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
                let template = match total {
                    Some(_) => "{msg}: [{bar:30}] {pos}/{len} {prefix} ({per_sec}, {elapsed})",
                    None => "{msg}: {spinner} {pos} {prefix} ({elapsed})",
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    b.set_style(style.progress_chars("=> "));
                }
                b.set_prefix(unit);
                b.set_message(what.to_owned());
                b.enable_steady_tick(Duration::from_millis(200));
                b
            }
            Show::Log | Show::Quiet => ProgressBar::hidden(),
        };
        if show == Show::Log {
            match total {
                Some(n) => tracing::info!(target: "kuzet::progress", "{what}: started, {n} {unit}"),
                None => tracing::info!(target: "kuzet::progress", "{what}: started"),
            }
        }
        let now = Instant::now();
        Self { what: what.to_owned(), unit, total, show, bar, started: now, state: Mutex::new((0, now)) }
    }

    /// `n` more done.
    pub fn advance(&self, n: u64) {
        self.bar.inc(n);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 += n;
        if self.show == Show::Log && s.1.elapsed() >= LOG_EVERY {
            s.1 = Instant::now();
            tracing::info!(target: "kuzet::progress", "{}", self.line(s.0));
        }
    }

    /// A new stage of the same work ("contracting 1,662 nodes").
    pub fn stage(&self, what: &str) {
        if self.show == Show::Log {
            tracing::info!(target: "kuzet::progress", "{}: {what}", self.what);
        }
        self.bar.set_message(format!("{}: {what}", self.what));
    }

    /// The work is done: the last line says how much and how long.
    pub fn finish(self, outcome: &str) {
        let done = self.state.lock().unwrap_or_else(|p| p.into_inner()).0;
        let line = format!("{}, {outcome}", self.line(done));
        match self.show {
            Show::Terminal => self.bar.finish_with_message(format!("{}: {outcome}", self.what)),
            Show::Log => tracing::info!(target: "kuzet::progress", "{line}"),
            Show::Quiet => {}
        }
    }

    /// `what: 120/500 features (24%), 3.1 s`.
    pub fn line(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        match self.total {
            Some(t) if t > 0 => {
                format!("{}: {done}/{t} {} ({}%), {secs:.1} s", self.what, self.unit, done * 100 / t)
            }
            _ => format!("{}: {done} {}, {secs:.1} s", self.what, self.unit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_what_how_much_of_what_total_and_how_long() {
        let p = Progress::new(Show::Quiet, "importing sites", "features", Some(500));
        p.advance(100);
        p.advance(20);
        let l = p.line(120);
        assert!(l.starts_with("importing sites: 120/500 features (24%), "), "{l}");
        let open = Progress::new(Show::Quiet, "reading the extract", "ways", None);
        assert!(open.line(7).starts_with("reading the extract: 7 ways, "));
        p.finish("done");
    }
}

//! The Prometheus text format, version 0.0.4: `# HELP` and `# TYPE` once per family, then
//! one line per sample. Written by hand: a few dozen families of atomics need no registry.

use std::fmt::{Display, Write as _};

use super::histogram::HistogramView;

/// The Content-Type of a scrape's answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
pub struct Text {
    out: String,
}

impl Text {
    pub fn finish(self) -> String {
        self.out
    }

    /// Starts a family: `kind` is counter, gauge or histogram. A counter's name ends in
    /// `_total`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        debug_assert!(kind != "counter" || name.ends_with("_total"), "{name}");
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family of one sample without labels.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family with one label: a sample per (label value, value).
    pub fn labelled<V: Display>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'static str, V)>,
    ) {
        self.family(name, kind, help);
        for (l, v) in values {
            self.sample(name, &[(label, l)], v);
        }
    }

    /// One histogram's samples (its family started already): cumulative buckets, `+Inf`,
    /// `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramView) {
        let bucket = format!("{name}_bucket");
        for (le, n) in &h.buckets {
            let le = le.to_string();
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, n);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, h.count);
        self.sample(&format!("{name}_sum"), labels, h.sum_s);
        self.sample(&format!("{name}_count"), labels, h.count);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

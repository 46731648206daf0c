//! Progress of a `lockstep bench` run as it goes: an `indicatif` bar when
//! stderr is a terminal, one plain line a second otherwise (a log or CI keeps
//! readable text), or nothing. The driver reports through [`ProgressSink`],
//! so a caller such as a demo can show progress its own way.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Where a run reports its progress.
pub trait ProgressSink {
    /// A run named `label` starts; it is planned to send for `planned`.
    fn start(&mut self, label: &str, planned: Duration);
    /// `elapsed` into the run, `sent` messages sent and `answered` answered.
    fn update(&mut self, elapsed: Duration, sent: u64, answered: u64);
    /// The run is over; `summary` is one line about it.
    fn finish(&mut self, summary: &str);
}

/// Reports nothing.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn start(&mut self, _label: &str, _planned: Duration) {}
    fn update(&mut self, _elapsed: Duration, _sent: u64, _answered: u64) {}
    fn finish(&mut self, _summary: &str) {}
}

/// A bar on a terminal's stderr, in tenths of a second.
pub struct BarProgress {
    bar: Option<ProgressBar>,
}

impl ProgressSink for BarProgress {
    fn start(&mut self, label: &str, planned: Duration) {
        let bar = ProgressBar::new((planned.as_millis() / 100) as u64);
        let style = ProgressStyle::with_template("{prefix:>24} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        self.bar = Some(bar);
    }

    fn update(&mut self, elapsed: Duration, sent: u64, answered: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position((elapsed.as_millis() / 100) as u64);
            bar.set_message(format!(
                "{:.1} s, {sent} sent, {answered} answered",
                elapsed.as_secs_f64()
            ));
        }
    }

    fn finish(&mut self, summary: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("{summary}");
    }
}

/// One line on stderr a second, for logs.
pub struct LineProgress {
    label: String,
    last_line: Option<Instant>,
}

impl ProgressSink for LineProgress {
    fn start(&mut self, label: &str, planned: Duration) {
        self.label = label.to_string();
        self.last_line = Some(Instant::now());
        eprintln!("bench: {label}: running for {:.1} s", planned.as_secs_f64());
    }

    fn update(&mut self, elapsed: Duration, sent: u64, answered: u64) {
        if self
            .last_line
            .is_some_and(|last| last.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_line = Some(Instant::now());
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "bench: {}: {:.1} s, {sent} sent, {answered} answered",
            self.label,
            elapsed.as_secs_f64()
        );
    }

    fn finish(&mut self, summary: &str) {
        eprintln!("{summary}");
    }
}

/// A bar if stderr is a terminal, plain lines otherwise.
pub fn stderr_progress() -> Box<dyn ProgressSink> {
    if std::io::stderr().is_terminal() {
        Box::new(BarProgress { bar: None })
    } else {
        Box::new(LineProgress {
            label: String::new(),
            last_line: None,
        })
    }
}

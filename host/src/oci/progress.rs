//! Progress of pulls and pushes: bars on a terminal, nothing otherwise.

use std::io::IsTerminal as _;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes.
#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    /// Bars on stderr when it is a terminal and `quiet` is off.
    pub fn for_terminal(quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        Self {
            bars: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// No output.
    pub fn hidden() -> Self {
        Self { bars: None }
    }

    /// A bar for one blob of `size` bytes.
    pub fn blob(&self, digest: &str, size: u64) -> Bar {
        let Some(bars) = &self.bars else {
            return Bar(None);
        };
        let bar = bars.add(ProgressBar::new(size));
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:19} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        let short = digest.strip_prefix("sha256:").unwrap_or(digest);
        bar.set_message(format!("sha256:{}", &short[..short.len().min(12)]));
        Bar(Some(bar))
    }
}

/// One blob's bar; does nothing when progress is hidden.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// `n` more bytes done.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    /// Done.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish();
        }
    }
}

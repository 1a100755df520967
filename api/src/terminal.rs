//! The terminal that progress bars and log lines share: every bar is drawn
//! through one `MultiProgress`, so a log line written while bars are on
//! screen goes above them instead of being glued to the end of one.

use indicatif::MultiProgress;

/// The one display every progress bar is added to.
pub fn on_screen() -> &'static MultiProgress {
    static BARS: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// Runs `write` (printing a log line) with the bars cleared, then redraws
/// them below what it printed.
pub fn above_the_bars<R>(write: impl FnOnce() -> R) -> R {
    on_screen().suspend(write)
}

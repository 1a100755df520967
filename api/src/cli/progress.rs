//! Progress bars for long operator commands, drawn on standard error only
//! when it is a terminal (indicatif hides them otherwise).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting events towards `total`.
pub fn events_bar(label: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} events ({percent}%) {per_sec}")
    {
        bar.set_style(style.progress_chars("#-"));
    }
    bar.set_message(label.to_owned());
    bar
}

/// A spinner counting events when the total is unknown.
pub fn events_counter(label: &str) -> ProgressBar {
    let bar = ProgressBar::no_length();
    if let Ok(style) = ProgressStyle::with_template("{msg} {pos} events {per_sec}") {
        bar.set_style(style);
    }
    bar.set_message(label.to_owned());
    bar
}

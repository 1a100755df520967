//! Progress bars for long operator commands, drawn on standard error only
//! when it is a terminal (indicatif hides them otherwise).

use crate::terminal::on_screen;
use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting events towards `total`.
pub fn events_bar(label: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {human_pos}/{human_len} events ({percent}%, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("#-"));
    }
    bar.set_message(label.to_owned());
    on_screen().add(bar)
}

/// A spinner counting events when the total is unknown.
pub fn events_counter(label: &str) -> ProgressBar {
    let bar = ProgressBar::no_length();
    if let Ok(style) = ProgressStyle::with_template("{msg} {human_pos} events") {
        bar.set_style(style);
    }
    bar.set_message(label.to_owned());
    on_screen().add(bar)
}

/// A bar counting a table's rows towards `total`.
pub fn rows_bar(label: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:<32} [{bar:30}] {pos}/{len} rows ({percent}%)")
    {
        bar.set_style(style.progress_chars("#-"));
    }
    bar.set_message(label.to_owned());
    on_screen().add(bar)
}

/// `2.4 s`, `3 min 05 s`: how long something took, for people.
pub fn human_duration(elapsed: std::time::Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        let whole = elapsed.as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// `1.5 MiB`: a size, for people.
pub fn human_bytes(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// A spinner counting `unit`s when the total is unknown.
pub fn counter(label: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::no_length();
    if let Ok(style) = ProgressStyle::with_template(&format!("{{msg}} {{pos}} {unit}")) {
        bar.set_style(style);
    }
    bar.set_message(label.to_owned());
    on_screen().add(bar)
}

//! Progress of transfers: a bar per blob on a terminal, one line per image otherwise, and
//! nothing when quiet. Everything goes to stderr; stdout carries only results.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How transfers report progress.
#[derive(Clone, Debug)]
pub enum Progress {
    /// Nothing at all (`-q`).
    Quiet,
    /// One line per image on stderr.
    Lines,
    /// A bar per transfer on the terminal.
    Bars(MultiProgress),
}

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise, nothing when `quiet`.
    pub fn for_stderr(quiet: bool) -> Progress {
        if quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Progress::Lines
        }
    }

    /// A bar for one blob (hidden unless drawing bars).
    pub(crate) fn bar(&self, label: String, len: u64) -> ProgressBar {
        match self {
            Progress::Bars(multi) => {
                let bar = multi.add(ProgressBar::new(len));
                let style = ProgressStyle::with_template(
                    "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_message(label);
                bar
            }
            _ => ProgressBar::hidden(),
        }
    }

    /// One line about a finished image (only in line mode).
    pub(crate) fn line(&self, text: &str) {
        match self {
            Progress::Lines => eprintln!("{text}"),
            Progress::Bars(multi) => {
                let _ = multi.println(text);
            }
            Progress::Quiet => {}
        }
    }
}

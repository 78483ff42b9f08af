//! What the user sees while a build runs: a spinner naming the stage on a terminal,
//! nothing otherwise; warnings always.

use crate::build::Progress;

/// A spinner on a terminal, silence otherwise.
pub struct Spinner {
    bar: Option<indicatif::ProgressBar>,
}

impl Spinner {
    pub fn new(quiet: bool) -> Spinner {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Spinner { bar }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for Spinner {
    fn stage(&self, what: &str) {
        if let Some(b) = &self.bar {
            b.set_message(what.to_string());
        }
    }

    fn warn(&self, message: &str) {
        match &self.bar {
            Some(b) => b.println(format!("cairn: warning: {message}")),
            None => eprintln!("cairn: warning: {message}"),
        }
    }
}

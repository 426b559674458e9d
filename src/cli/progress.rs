//! Showing progress: a bar on a terminal, a line per volume for cron mail, nothing with --quiet.
//!
//! The bar (indicatif) goes to stderr and only when stderr is a terminal, so
//! redirected output and cron mail never carry escape codes or carriage
//! returns. Without a terminal, each sealed volume gets one plain line on
//! stdout (not with --json, whose stdout is one document). `-v` adds a line
//! per file.

use super::render::{bytes, Output};
use crate::console::outln;
use crate::progress::{Event, Observer};
use crate::source::Origin;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What the operator sees while a command runs.
pub struct Shown {
    bar: Option<ProgressBar>,
    volume_lines: bool,
    file_lines: bool,
    files_done: AtomicU64,
    files_total: AtomicU64,
    volume: Mutex<String>,
}

impl Shown {
    /// Progress for a command that `verb`s (backing up, restoring, verifying…).
    pub fn new(out: &Output, verb: &str) -> Shown {
        let terminal = rustix::termios::isatty(std::io::stderr());
        let bar = (terminal && !out.quiet).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}  {msg}",
            )
            .expect("the template is valid");
            bar.set_style(style);
            bar.set_prefix(verb.to_string());
            bar
        });
        Shown {
            bar,
            volume_lines: !terminal && !out.quiet && !out.json,
            file_lines: out.verbose > 0 && !out.quiet && !out.json,
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            volume: Mutex::new(String::new()),
        }
    }

    /// Does anyone look at a total? (Only then is a backup's pre-scan worth its reads.)
    pub fn wants_totals(&self) -> bool {
        self.bar.is_some()
    }

    /// Clear the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => outln!("{text}"),
        }
    }

    fn refresh_message(&self) {
        if let Some(bar) = &self.bar {
            let volume = self.volume.lock().map(|v| v.clone()).unwrap_or_default();
            let total = self.files_total.load(Ordering::Relaxed);
            let done = self.files_done.load(Ordering::Relaxed);
            let files = if total > 0 {
                format!("{done}/{total} files")
            } else {
                format!("{done} files")
            };
            bar.set_message(format!("{files}  {volume}"));
        }
    }
}

impl Observer for Shown {
    fn on(&self, event: Event<'_>) {
        match event {
            Event::Planned { files, bytes } => {
                self.files_total.store(files, Ordering::Relaxed);
                if let Some(bar) = &self.bar {
                    bar.set_length(bytes);
                }
                self.refresh_message();
            }
            Event::Bytes(n) => {
                if let Some(bar) = &self.bar {
                    bar.inc(n);
                }
            }
            Event::File { path, origin } => {
                self.files_done.fetch_add(1, Ordering::Relaxed);
                if self.file_lines {
                    let how = match origin {
                        Origin::New => "new      ",
                        Origin::Changed => "changed  ",
                        Origin::Unchanged => "unchanged",
                    };
                    self.line(format!("{how} /{}", path.escaped()));
                }
                self.refresh_message();
            }
            Event::Writing(name) | Event::Reading(name) => {
                let doing = if matches!(event, Event::Writing(_)) {
                    "writing"
                } else {
                    "reading"
                };
                if let Ok(mut volume) = self.volume.lock() {
                    *volume = format!("{doing} {name}");
                }
                self.refresh_message();
            }
            Event::Sealed {
                name,
                bytes: size,
                index_full_at,
            } => {
                if self.volume_lines || self.bar.is_some() {
                    self.line(sealed_line(name, size, index_full_at));
                }
            }
        }
    }
}

/// What the operator sees when a volume is sealed. One closed early because its index
/// is full says so: otherwise the next cartridge asked for long before the first is full
/// looks like a fault.
fn sealed_line(name: &str, size: u64, index_full_at: Option<u64>) -> String {
    match index_full_at {
        None => format!("sealed {name} ({})", bytes(size)),
        Some(blobs) => format!(
            "sealed {name} ({}) before its medium was full: its index lists {blobs} blobs, \
             as many as a volume's index holds; the backup goes on in the next volume",
            bytes(size)
        ),
    }
}

/// Walk the sources once more, cheaply (metadata only), to give a backup's bar its total.
/// Stops early when `stop` is set (the backup finished first).
pub fn estimate_backup(
    sources: &[std::path::PathBuf],
    walk: &crate::source::WalkOptions,
    shown: &Shown,
    stop: &std::sync::atomic::AtomicBool,
) {
    let Ok(sources) = crate::source::normalise_sources(sources) else {
        return;
    };
    let (mut files, mut total) = (0u64, 0u64);
    let mut no_parent = |_: &crate::model::PathBytes| Ok(None);
    let mut count = |found: crate::source::Found| {
        if stop.load(Ordering::Relaxed) {
            return Err(crate::error::Error::usage("estimate no longer needed"));
        }
        if let crate::source::Found::Read(_, node, _) = found {
            files += 1;
            total += node.size;
            if files % 1000 == 0 {
                shown.on(Event::Planned {
                    files,
                    bytes: total,
                });
            }
        }
        Ok(())
    };
    if crate::source::walk(&sources, walk, &mut no_parent, &mut count).is_ok() {
        shown.on(Event::Planned {
            files,
            bytes: total,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_closed_by_its_index_says_so() {
        assert_eq!(
            sealed_line("tv000001-0a", 4 << 20, None),
            "sealed tv000001-0a (4.0 MiB)"
        );
        let early = sealed_line("tv000002-0b", 3 << 30, Some(1_061_234));
        assert!(
            early.starts_with("sealed tv000002-0b (3.0 GiB) before its medium was full"),
            "{early}"
        );
        assert!(early.contains("1061234 blobs"), "{early}");
    }
}

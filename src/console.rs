//! Standard output and standard error that never panic.
//!
//! `println!` panics when stdout cannot be written, and `eprintln!` when stderr
//! cannot: `tapevault snapshots | head -1` closes the pipe, and a cron job's log on a
//! full disk fails every write. A restore must not die half-way for either, and its
//! exit code must still say what happened to the data. So all output goes through
//! here: the first failure to write stdout is kept and judged once the command is
//! done (`stdout_failure`); a failure to write stderr is dropped, as there is nowhere
//! left to say it.

use std::io::Write;
use std::sync::Mutex;

static STDOUT_FAILURE: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Write to stdout; after a failure nothing more is written (no report with a hole).
pub fn write_stdout(text: std::fmt::Arguments) {
    let mut failure = STDOUT_FAILURE.lock().unwrap_or_else(|e| e.into_inner());
    if failure.is_none() {
        if let Err(err) = std::io::stdout().lock().write_fmt(text) {
            *failure = Some(err);
        }
    }
}

/// Write to stderr, dropping a failure.
pub fn write_stderr(text: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(text);
}

/// Flush stdout, and take the first failure to write it, if there was one.
pub fn stdout_failure() -> Option<std::io::Error> {
    let mut failure = STDOUT_FAILURE.lock().unwrap_or_else(|e| e.into_inner());
    if failure.is_none() {
        if let Err(err) = std::io::stdout().lock().flush() {
            *failure = Some(err);
        }
    }
    failure.take()
}

/// `println!` that does not panic (see the module).
macro_rules! outln {
    ($($text:tt)*) => {
        $crate::console::write_stdout(format_args!("{}\n", format_args!($($text)*)))
    };
}

/// `print!` that does not panic (see the module).
macro_rules! out {
    ($($text:tt)*) => {
        $crate::console::write_stdout(format_args!($($text)*))
    };
}

/// `eprintln!` that does not panic (see the module).
macro_rules! errln {
    ($($text:tt)*) => {
        $crate::console::write_stderr(format_args!("{}\n", format_args!($($text)*)))
    };
}

/// `eprint!` that does not panic (see the module).
macro_rules! err {
    ($($text:tt)*) => {
        $crate::console::write_stderr(format_args!($($text)*))
    };
}

pub(crate) use {err, errln, out, outln};

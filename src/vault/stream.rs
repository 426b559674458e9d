//! The stream vault (`-`): volumes to stdout, one after another, and back from stdin.
//!
//! For pipelines such as `tapevault backup --vault - | mbuffer | dd of=/dev/nst0 bs=256k`.
//! A backup that needs several volumes writes them back to back; each is a whole tar
//! archive ending in its two zero blocks, so a reader finds where each ends by walking
//! its member headers. Zero blocks between or after volumes (a stream padded to fixed
//! blocks by `dd conv=sync`) are skipped. Reads go forward only: a restore asks for
//! volumes in sequence order, and one not on the stream is missing; a catalog
//! rebuild, which must seek, reads a spooled copy ([`StreamVault::spool`]). Small
//! objects (vault label, key labels, records) live in a folder beside the catalog.

use super::{DirVault, Listing, Vault, VolumeSink};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::guard;
use crate::volume::{is_volume_name, parse_header, volume_name, Label, MemberWalk, Walked};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

const BLOCK: usize = 512;

/// Where volume bytes go: the original stdout, once `claim_stdout` moved text to stderr.
static STREAM_OUT: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// Keep the real stdout for volumes and send everything printed to stderr instead, so
/// that reports and JSON never mix into the stream. Refuses a terminal.
pub fn claim_stdout() -> Result<()> {
    if rustix::termios::isatty(io::stdout()) {
        return Err(Error::usage(
            "--vault - writes volumes to stdout, which is a terminal: pipe it into dd, mbuffer or a file",
        ));
    }
    let stream = rustix::io::dup(io::stdout()).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot keep stdout for the stream: {e}"),
        )
    })?;
    rustix::stdio::dup2_stdout(io::stderr()).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot send messages to stderr: {e}"),
        )
    })?;
    let _ = STREAM_OUT.set(Mutex::new(std::fs::File::from(stream)));
    Ok(())
}

/// The `-` vault.
pub struct StreamVault {
    meta: DirVault,
    input: Arc<Mutex<StreamInput>>,
}

impl StreamVault {
    /// The stream vault, its small objects in `meta_dir`.
    pub fn new(meta_dir: &Path) -> StreamVault {
        StreamVault {
            meta: DirVault::new("-", &meta_dir.to_string_lossy()),
            input: Arc::new(Mutex::new(StreamInput {
                source: Box::new(io::stdin()),
                current: None,
                waiting: None,
                last: None,
            })),
        }
    }
}

struct StreamInput {
    source: Box<dyn Read + Send>,
    /// The volume being given out, and how far its walk has come.
    current: Option<Walk>,
    /// A volume read up to its label and found to come later: what it had.
    waiting: Option<(String, Vec<u8>)>,
    /// The last volume seen, for messages.
    last: Option<String>,
}

/// Walks a volume's member headers to find where it ends.
#[derive(Default)]
struct Walk(MemberWalk);

impl Walk {
    /// A walk that has gone over `head`, the volume's first bytes.
    fn over(head: &[u8]) -> Result<Walk> {
        let mut walk = Walk::default();
        let mut at = 0;
        while at < head.len() {
            at += walk.step(&head[at..])?;
        }
        Ok(walk)
    }

    /// Bytes of the volume to take from `available` before looking again.
    fn step(&mut self, available: &[u8]) -> Result<usize> {
        Ok(match self.0.step(available)? {
            Walked::Data(n) | Walked::Header(n, _) => n,
        })
    }

    fn done(&self) -> bool {
        self.0.done()
    }
}

impl StreamInput {
    fn read_exact_or_end(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.source.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => {
                    return Err(Error::corrupt(
                        "the stream ends inside a block: it was cut short",
                    ))
                }
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!("cannot read the stream on stdin: {err}"),
                    ))
                }
            }
        }
        Ok(true)
    }

    /// Read the current volume's next bytes into `out`; 0 at its end. Bytes past
    /// its end blocks are put back for the next volume.
    fn advance(&mut self, out: &mut [u8]) -> Result<usize> {
        let Some(walk) = self.current.as_mut() else {
            return Ok(0);
        };
        if walk.done() || out.is_empty() {
            return Ok(0);
        }
        let n = loop {
            match self.source.read(out) {
                Ok(0) => return Err(Error::corrupt("the stream ends inside a volume")),
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!("cannot read the stream on stdin: {err}"),
                    ))
                }
            }
        };
        let mut at = 0;
        while at < n && !walk.done() {
            at += walk.step(&out[at..n])?;
        }
        if at < n {
            let rest = out[at..n].to_vec();
            let previous = std::mem::replace(&mut self.source, Box::new(io::empty()));
            self.source = Box::new(io::Cursor::new(rest).chain(previous));
        }
        Ok(at)
    }

    /// Read on to the end of the volume being given out.
    fn finish_current(&mut self) -> Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        while self.advance(&mut buf)? > 0 {}
        self.current = None;
        Ok(())
    }

    /// The next volume's name and the bytes read to learn it (its label member).
    fn next_volume(&mut self) -> Result<Option<(String, Vec<u8>)>> {
        if let Some(waiting) = self.waiting.take() {
            return Ok(Some(waiting));
        }
        let mut header = [0u8; BLOCK];
        // Padding between or after volumes.
        loop {
            if !self.read_exact_or_end(&mut header)? {
                return Ok(None);
            }
            if header.iter().any(|b| *b != 0) {
                break;
            }
        }
        let member = parse_header(&header, 0)?;
        let mut data = vec![0u8; (member.size.div_ceil(512) * 512) as usize];
        if !self.read_exact_or_end(&mut data)? {
            return Err(Error::corrupt("the stream ends inside a volume label"));
        }
        let label = Label::decode(&data[..member.size as usize])?;
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&data);
        Ok(Some((volume_name(label.sequence, &label.volume_id), bytes)))
    }
}

/// One volume's bytes from the stream.
struct StreamReader {
    input: Arc<Mutex<StreamInput>>,
    /// Label bytes read before the reader was made.
    head: Vec<u8>,
    head_at: usize,
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.head_at < self.head.len() {
            let n = out.len().min(self.head.len() - self.head_at);
            out[..n].copy_from_slice(&self.head[self.head_at..self.head_at + n]);
            self.head_at += n;
            return Ok(n);
        }
        let mut input = guard(&self.input);
        input
            .advance(out)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// Volumes written to the kept stdout.
struct StreamSink {
    out: io::BufWriter<StreamOut>,
}

struct StreamOut;

impl Write for StreamOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match STREAM_OUT.get() {
            Some(out) => guard(out).write(data),
            None => io::stdout().write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match STREAM_OUT.get() {
            Some(out) => guard(out).flush(),
            None => io::stdout().flush(),
        }
    }
}

impl Write for StreamSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.out.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl VolumeSink for StreamSink {
    fn seal(mut self: Box<Self>) -> Result<()> {
        self.out.flush().map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot write the stream to stdout: {e}"),
            )
        })
    }
}

impl Vault for StreamVault {
    fn location(&self) -> &str {
        "-"
    }

    fn list(&self) -> Result<Listing> {
        let mut listing = self.meta.list()?;
        listing.volumes_unlisted = true;
        Ok(listing)
    }

    fn create(&self, name: &str, max_len: u64) -> Result<Box<dyn VolumeSink>> {
        if !is_volume_name(name) {
            return self.meta.create(name, max_len);
        }
        Ok(Box::new(StreamSink {
            out: io::BufWriter::with_capacity(1 << 20, StreamOut),
        }))
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        if !is_volume_name(name) {
            return self.meta.open(name);
        }
        let mut input = guard(&self.input);
        input.finish_current()?;
        let wanted = crate::volume::parse_volume_name(name).map_or(0, |(s, _)| s);
        while let Some((found, head)) = input.next_volume()? {
            let sequence = crate::volume::parse_volume_name(&found).map_or(0, |(s, _)| s);
            input.last = Some(found.clone());
            if found == name {
                input.current = Some(Walk::over(&head)?);
                return Ok(Box::new(StreamReader {
                    input: self.input.clone(),
                    head,
                    head_at: 0,
                }));
            }
            if sequence > wanted {
                input.waiting = Some((found, head));
                break;
            }
            // An earlier volume this run does not need: read past it.
            input.current = Some(Walk::over(&head)?);
            input.finish_current()?;
        }
        Err(Error::missing(format!(
            "volume {name} is not on the stream{}: feed the volumes in sequence order",
            input
                .last
                .as_ref()
                .map(|last| format!(" (the last one read was {last})"))
                .unwrap_or_default()
        )))
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<(u64, Vec<u8>)> {
        if !is_volume_name(name) {
            return self.meta.read_range(name, offset, len);
        }
        Err(Error::usage(format!(
            "a stream cannot seek to part of volume {name}: restore with the catalog, \
             or write the stream to a dir: vault first"
        )))
    }

    fn delete(&self, name: &str) -> Result<()> {
        if !is_volume_name(name) {
            return self.meta.delete(name);
        }
        Err(Error::usage(format!(
            "volume {name} went out on a stream: delete it where the stream was stored"
        )))
    }

    fn lock_writers(&self) -> Result<crate::lock::RunLock> {
        self.meta.lock_writers()
    }

    fn sequential_only(&self) -> bool {
        true
    }

    /// Every volume on the stream, stored under its name.
    fn spool(&self, folder: &Path) -> Result<DirVault> {
        let spooled = DirVault::new("-", &folder.to_string_lossy());
        loop {
            let (name, head) = {
                let mut input = guard(&self.input);
                let Some((name, head)) = input.next_volume()? else {
                    break;
                };
                input.current = Some(Walk::over(&head)?);
                (name, head)
            };
            let mut reader = StreamReader {
                input: self.input.clone(),
                head,
                head_at: 0,
            };
            super::spool_one(&spooled, &name, &mut reader)?;
        }
        Ok(spooled)
    }
}

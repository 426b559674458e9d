//! The `s3://BUCKET/PREFIX` vault: one object per volume in S3 or a compatible store
//! (Ceph RGW, MinIO, R2, Wasabi), through OpenDAL.
//!
//! Credentials, region and endpoint come from the standard AWS environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_PROFILE` and the shared config files);
//! requests are path-style, which every S3-compatible server accepts.
//!
//! A volume is streamed as one multipart upload: memory is one part, nothing is
//! staged on disk. Completing the upload is create-only (`If-None-Match: *`), so
//! an existing volume is never replaced, and the stored size is checked after
//! completion. A sink dropped before sealing aborts its upload: nothing becomes
//! visible. Transient failures are retried with jittered exponential backoff;
//! access denied, a missing bucket and a refused overwrite are not.
//!
//! S3 Object Lock, which OpenDAL has no call for, goes through requests signed here
//! with the same credentials: a retention period set on each volume once it is
//! complete and checked, and read back (HEAD) before prune deletes anything.

use super::{Listing, Vault, VaultOptions, VolumeSink};
use crate::error::{Error, ErrorKind, Result};
use opendal::{ErrorKind as S3Kind, Operator};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

/// Upload part size unless the volume needs larger parts (S3 allows 10,000 parts).
const DEFAULT_PART_BYTES: u64 = 16 << 20;
/// S3's limit on parts in one upload.
const MAX_PARTS: u64 = 10_000;
/// S3's largest object.
const MAX_OBJECT_BYTES: u64 = 5 << 40;
/// Bytes fetched by the first ranged GET of a volume read front to back: many readers
/// want only the label. Each further GET fetches twice as much, up to the largest.
const FIRST_READ_BYTES: u64 = 64 << 10;
/// The largest ranged GET while reading a volume front to back.
const MAX_READ_BYTES: u64 = 8 << 20;
/// The writer lock object (a dot name: never listed as a volume).
const LOCK_OBJECT: &str = ".writer-lock";

/// S3 Object Lock for the volumes a run writes: each sealed volume gets a retention
/// period, so that until it ends nobody (COMPLIANCE) or nobody without the permission
/// to bypass it (GOVERNANCE) can delete or overwrite it. The bucket must have been
/// created with object lock enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    /// Who may lift it early.
    pub mode: RetentionMode,
    /// How long from the moment the volume is sealed.
    pub days: u32,
}

/// S3's two retention modes (also `--object-lock-mode`, whose help the variants are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetentionMode {
    /// Deletable early by users allowed to bypass governance retention
    Governance,
    /// Deletable by nobody until the date
    Compliance,
}

impl RetentionMode {
    fn as_s3(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }
}

/// Where the S3 API is and who we are to it.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// `AWS_ENDPOINT_URL`: an S3-compatible server; AWS itself when absent.
    pub endpoint: Option<String>,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`; `us-east-1` when neither is set.
    pub region: String,
    /// Access key id, secret and session token from the environment; when absent,
    /// `AWS_PROFILE` and the shared config and credentials files are read.
    pub credentials: Option<(String, String, Option<String>)>,
    /// `TAPEVAULT_S3_RETRIES`: how often a failing request is tried again, with
    /// jittered backoff from 250 ms doubling to 8 s (6, about 16 s in all, by default).
    pub retries: usize,
}

impl S3Config {
    /// The standard AWS environment variables.
    pub fn from_env() -> S3Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        S3Config {
            endpoint: var("AWS_ENDPOINT_URL"),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            credentials: var("AWS_ACCESS_KEY_ID")
                .zip(var("AWS_SECRET_ACCESS_KEY"))
                .map(|(id, secret)| (id, secret, var("AWS_SESSION_TOKEN"))),
            retries: var("TAPEVAULT_S3_RETRIES")
                .and_then(|v| v.parse().ok())
                .unwrap_or(6),
        }
    }
}

/// A bucket (and prefix) holding volumes.
pub struct S3Vault {
    place: Place,
    io: Arc<Io>,
    object_lock: Option<ObjectLock>,
}

/// The client and the runtime that drives it; shared by sinks and readers.
struct Io {
    runtime: tokio::runtime::Runtime,
    op: Operator,
    signed: Signed,
}

impl Io {
    fn block_on<F: std::future::IntoFuture>(&self, future: F) -> F::Output {
        self.runtime.block_on(future.into_future())
    }

    /// One signed request to `target` (below the bucket), retried as OpenDAL's are
    /// (dropped connections, 5xx and 429, backoff from 250 ms doubling to 8 s); its
    /// answer's head and body, or why there was none.
    fn signed(
        &self,
        method: http::Method,
        target: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> std::result::Result<(http::response::Parts, String), String> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{target}", self.signed.bucket_url));
        for (key, value) in headers {
            request = request.header(*key, value);
        }
        let (mut parts, body) = request
            .body(opendal::Buffer::from(body))
            .map_err(|e| e.to_string())?
            .into_parts();
        self.block_on(self.signed.signer.sign(&mut parts, None))
            .map_err(|e| format!("cannot sign the request: {e}"))?;
        // The transport writes Host itself (as OpenDAL does).
        parts.headers.remove(http::header::HOST);
        let mut delay = Duration::from_millis(250);
        let mut attempt = 0;
        let answer = loop {
            let answer = self
                .block_on(
                    self.signed
                        .http
                        .send(http::Request::from_parts(parts.clone(), body.clone())),
                )
                .map_err(|e| short(&e));
            let transient = match &answer {
                Ok(answer) => {
                    answer.status().is_server_error()
                        || answer.status() == http::StatusCode::TOO_MANY_REQUESTS
                }
                Err(_) => true,
            };
            if !transient || attempt >= self.signed.retries {
                break answer?;
            }
            attempt += 1;
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(8));
        };
        let (head, body) = answer.into_parts();
        Ok((head, String::from_utf8_lossy(&body.to_vec()).into_owned()))
    }
}

/// The upload part size for a volume of at most `max_len` bytes.
pub fn part_size(max_len: u64) -> Result<u64> {
    if max_len > MAX_OBJECT_BYTES {
        return Err(Error::usage(format!(
            "a volume of {max_len} bytes is above S3's largest object (5 TiB): use a smaller --volume-size"
        )));
    }
    let needed = max_len.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
    Ok(needed.max(DEFAULT_PART_BYTES))
}

impl S3Vault {
    /// The vault at `address` (`s3://bucket/prefix`); nothing is contacted yet.
    pub fn open(address: &str, options: &VaultOptions) -> Result<S3Vault> {
        let rest = address.strip_prefix("s3://").unwrap_or(address);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::usage(format!(
                "vault address {address} names no bucket; use s3://BUCKET/PREFIX"
            )));
        }
        let config = options.s3.clone().unwrap_or_else(S3Config::from_env);
        let mut builder = opendal::services::S3::default()
            .bucket(bucket)
            .root(&format!("/{}", prefix.trim_matches('/')))
            .region(&config.region);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint(endpoint);
        }
        if let Some((id, secret, token)) = &config.credentials {
            builder = builder
                .access_key_id(id)
                .secret_access_key(secret)
                .disable_ec2_metadata();
            if let Some(token) = token {
                builder = builder.session_token(token);
            }
        }
        if let Some(class) = &options.storage_class {
            builder = builder.default_storage_class(class);
        }
        opendal::install_default();
        let op = Operator::new(builder)
            .map_err(|e| Error::usage(format!("vault {address}: {}", short(&e))))?
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_jitter()
                    .with_max_times(config.retries)
                    .with_min_delay(Duration::from_millis(250))
                    .with_max_delay(Duration::from_secs(8)),
            )
            .layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_io_timeout(Duration::from_secs(120)),
            );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tapevault-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start S3 client: {e}")))?;
        let signed = Signed::new(&config, bucket, prefix);
        Ok(S3Vault {
            place: Place {
                address: address.to_string(),
                bucket: bucket.to_string(),
                endpoint: config.endpoint.unwrap_or_else(|| "AWS".into()),
            },
            io: Arc::new(Io {
                runtime,
                op,
                signed,
            }),
            object_lock: options.object_lock,
        })
    }

    /// Refuse object lock on a bucket that cannot keep it, before anything is written.
    fn check_object_lock(&self) -> Result<()> {
        let what = "cannot read the object lock of";
        let (answer, body) = self
            .io
            .signed(http::Method::GET, "?object-lock", &[], Vec::new())
            .map_err(|e| self.place.unanswered(what, "the bucket", &e))?;
        let status = answer.status;
        if status.is_success() && body.contains("<ObjectLockEnabled>Enabled</ObjectLockEnabled>") {
            return Ok(());
        }
        if status.is_success() || status == http::StatusCode::NOT_FOUND {
            return Err(Error::usage(format!(
                "bucket {} has no object lock, so --object-lock-days cannot protect its volumes: use a bucket created with object lock enabled (nothing was written)",
                self.place.bucket
            )));
        }
        Err(self.place.refused(what, "the bucket", status, &body))
    }

    /// One line for a failed request: what, which object, and why in S3's words.
    fn error(&self, what: &str, name: &str, err: &opendal::Error) -> Error {
        self.place.error(what, name, err)
    }

    fn size(&self, name: &str) -> Result<u64> {
        self.io
            .block_on(self.io.op.stat(name))
            .map(|meta| meta.content_length())
            .map_err(|e| self.error("cannot read", name, &e))
    }
}

/// Which vault a request was for, to say so in its error.
#[derive(Clone)]
struct Place {
    address: String,
    bucket: String,
    endpoint: String,
}

impl Place {
    fn error(&self, what: &str, name: &str, err: &opendal::Error) -> Error {
        let Place {
            address,
            bucket,
            endpoint,
        } = self;
        let detail = short(err);
        match err.kind() {
            _ if detail.contains("InvalidObjectState") => Error::new(
                ErrorKind::Offline,
                format!(
                    "{name} in {address} is archived in a cold storage class: rehydrate it (S3 RestoreObject), then run again"
                ),
            ),
            S3Kind::NotFound => Error::missing(format!("{name} is missing from vault {address}")),
            _ if detail.contains("failed to load signing credential") => Error::new(
                ErrorKind::Io,
                format!(
                    "no S3 credentials for {address}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials"
                ),
            ),
            S3Kind::PermissionDenied => Error::new(
                ErrorKind::Io,
                format!(
                    "access denied to {address} ({what} {name}): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE and the bucket policy"
                ),
            ),
            _ if detail.contains("NoSuchBucket") => Error::missing(format!(
                "bucket {bucket} does not exist at {endpoint}: create it first, or check AWS_ENDPOINT_URL and AWS_REGION"
            )),
            S3Kind::ConditionNotMatch | S3Kind::AlreadyExists => Error::new(
                ErrorKind::Io,
                format!("{name} already exists in vault {address}; nothing was overwritten"),
            ),
            _ if detail.contains("error sending request") => Error::new(
                ErrorKind::Io,
                format!("cannot reach {endpoint} for {address} ({what} {name}, after retries): {detail}"),
            ),
            _ => Error::new(
                ErrorKind::Io,
                format!("{what} {name} in {address}: {detail}"),
            ),
        }
    }
}

impl Place {
    /// One line for a signed request that got no answer, even after retries.
    fn unanswered(&self, what: &str, name: &str, why: &str) -> Error {
        Error::new(
            ErrorKind::Io,
            format!("{what} {name} in {} (after retries): {why}", self.address),
        )
    }

    /// One line for a signed request S3 refused, in S3's words.
    fn refused(&self, what: &str, name: &str, status: http::StatusCode, body: &str) -> Error {
        if status == http::StatusCode::FORBIDDEN {
            return Error::new(
                ErrorKind::Io,
                format!(
                    "access denied to {} ({what} {name}): check the credentials and that the bucket policy allows object lock requests",
                    self.address
                ),
            );
        }
        let tag = |name: &str| {
            let start = body.find(&format!("<{name}>"))? + name.len() + 2;
            let end = body[start..].find('<')?;
            Some(body[start..start + end].to_string())
        };
        let why = match (tag("Code"), tag("Message")) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code,
            _ => format!("HTTP {status}"),
        };
        Error::new(
            ErrorKind::Io,
            format!("{what} {name} in {}: {why}", self.address),
        )
    }
}

/// What signs and sends the requests OpenDAL has no call for (S3 Object Lock).
struct Signed {
    signer: reqsign_core::Signer<reqsign_aws_v4::Credential>,
    http: opendal::HttpTransporter,
    /// `ENDPOINT/BUCKET`: path-style, as OpenDAL addresses objects.
    bucket_url: String,
    /// What object names start with in the bucket: `PREFIX/`, or nothing.
    prefix: String,
    retries: usize,
}

impl Signed {
    fn new(config: &S3Config, bucket: &str, prefix: &str) -> Signed {
        use reqsign_aws_v4::{DefaultCredentialProvider, RequestSigner, StaticCredentialProvider};
        let context = reqsign_core::Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_env(reqsign_core::OsEnv)
            .with_http_send(opendal::HttpTransporter::default());
        let request_signer = RequestSigner::new("s3", &config.region);
        // The same sources, in the same order, as the OpenDAL client's.
        let signer = match &config.credentials {
            Some((id, secret, token)) => {
                let mut provider = StaticCredentialProvider::new(id, secret);
                if let Some(token) = token {
                    provider = provider.with_session_token(token);
                }
                reqsign_core::Signer::new(context, provider, request_signer)
            }
            None => reqsign_core::Signer::new(
                context,
                DefaultCredentialProvider::builder().build(),
                request_signer,
            ),
        };
        let endpoint = config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.region));
        let prefix = prefix.trim_matches('/');
        Signed {
            signer,
            http: opendal::HttpTransporter::default(),
            bucket_url: format!("{}/{}", endpoint.trim_end_matches('/'), url_path(bucket)),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            retries: config.retries,
        }
    }

    /// The request target for an object: `/PREFIX/NAME` with `query` after it.
    fn object(&self, name: &str, query: &str) -> String {
        format!("/{}{query}", url_path(&format!("{}{name}", self.prefix)))
    }
}

/// `text` as a URL path: every byte but S3's unreserved characters and `/` escaped.
fn url_path(text: &str) -> String {
    let mut path = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            path.push(byte as char);
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

/// OpenDAL's errors carry the whole HTTP exchange; keep S3's code and message, on one line.
fn short(err: &opendal::Error) -> String {
    let text = err.to_string();
    let field = |key: &str| {
        let start = text.find(key)? + key.len();
        let end = text[start..].find('"')?;
        Some(text[start..start + end].to_string())
    };
    match (field("code: \""), field("message: \"")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => {
            let kind = err.kind().to_string();
            match text.rsplit_once("=> ") {
                Some((_, source)) => format!("{kind}: {}", source.replace('\n', " ")),
                None => kind,
            }
        }
    }
}

impl Vault for S3Vault {
    fn location(&self) -> &str {
        &self.place.address
    }

    fn list(&self) -> Result<Listing> {
        let entries = self
            .io
            .block_on(self.io.op.list("/"))
            .map_err(|e| self.error("cannot list", "the vault", &e))?;
        let mut listing = Listing::default();
        for entry in entries {
            let name = entry.name().trim_end_matches('/');
            // Another prefix below ours is not one of our objects; dot names are ours (the lock).
            if entry.metadata().is_dir() || name.is_empty() || name.starts_with('.') {
                continue;
            }
            listing.sealed.push(name.to_string());
        }
        listing.sealed.sort();
        Ok(listing)
    }

    fn create(&self, name: &str, max_len: u64) -> Result<Box<dyn VolumeSink>> {
        let part = part_size(max_len)?;
        let writer = self
            .io
            .block_on(
                self.io
                    .op
                    .writer_with(name)
                    .chunk(part as usize)
                    // Parts go one at a time: OpenDAL's concurrent parts are not retried.
                    .if_not_exists(true),
            )
            .map_err(|e| self.error("cannot start writing", name, &e))?;
        Ok(Box::new(S3Sink {
            io: self.io.clone(),
            place: self.place.clone(),
            object_lock: self.object_lock,
            name: name.to_string(),
            part: Vec::with_capacity(part as usize),
            part_bytes: part as usize,
            written: 0,
            writer: Some(writer),
        }))
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let size = self.size(name)?;
        let mut reader = S3Reader {
            io: self.io.clone(),
            place: self.place.clone(),
            name: name.to_string(),
            size,
            position: 0,
            next_fetch: FIRST_READ_BYTES,
            chunk: Vec::new(),
            chunk_read: 0,
        };
        // The first GET now, so that an archived object is said here, as such.
        if size > 0 {
            reader.fetch().map_err(|e| match e.into_inner() {
                Some(inner) => match inner.downcast::<Error>() {
                    Ok(err) => *err,
                    Err(other) => Error::new(ErrorKind::Io, other.to_string()),
                },
                None => Error::new(ErrorKind::Io, format!("cannot read {name}")),
            })?;
        }
        Ok(Box::new(reader))
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<(u64, Vec<u8>)> {
        let size = self.size(name)?;
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return Ok((size, Vec::new()));
        }
        let bytes = self
            .io
            .block_on(self.io.op.read_with(name).range(offset..end))
            .map_err(|e| self.error("cannot read", name, &e))?;
        Ok((size, bytes.to_vec()))
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.io
            .block_on(self.io.op.delete(name))
            .map_err(|e| self.error("cannot delete", name, &e))
    }

    fn deletion_lock(&self, name: &str) -> Result<Option<String>> {
        let what = "cannot read the object lock of";
        let target = self.io.signed.object(name, "");
        let (answer, _) = self
            .io
            .signed(http::Method::HEAD, &target, &[], Vec::new())
            .map_err(|e| self.place.unanswered(what, name, &e))?;
        if answer.status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(self.place.refused(what, name, answer.status, ""));
        }
        let header = |key: &str| answer.headers.get(key).and_then(|v| v.to_str().ok());
        if header("x-amz-object-lock-legal-hold") == Some("ON") {
            return Ok(Some("under an S3 legal hold".into()));
        }
        let (Some(mode), Some(until)) = (
            header("x-amz-object-lock-mode"),
            header("x-amz-object-lock-retain-until-date"),
        ) else {
            return Ok(None);
        };
        match humantime::parse_rfc3339_weak(until) {
            Ok(end) if end <= std::time::SystemTime::now() => Ok(None),
            // A date we cannot read is a lock we cannot see the end of.
            _ => Ok(Some(format!("under S3 object lock ({mode}) until {until}"))),
        }
    }

    fn lock_writers(&self) -> Result<crate::lock::RunLock> {
        super::refuse_empty(self)?;
        if self.object_lock.is_some() {
            self.check_object_lock()?;
        }
        let holder = crate::lock::holder_line();
        for attempt in 0..2 {
            let written = self.io.block_on(async {
                let mut writer = self
                    .io
                    .op
                    .writer_with(LOCK_OBJECT)
                    .if_not_exists(true)
                    .await?;
                writer.write(holder.clone().into_bytes()).await?;
                writer.close().await
            });
            match written {
                Ok(_) => {
                    return Ok(crate::lock::RunLock::held(S3Lock {
                        io: self.io.clone(),
                    }))
                }
                Err(e) if e.kind() == S3Kind::ConditionNotMatch && attempt == 0 => {
                    let found = self
                        .io
                        .block_on(self.io.op.read(LOCK_OBJECT))
                        .map(|b| String::from_utf8_lossy(&b.to_vec()).into_owned())
                        .unwrap_or_default();
                    // A holder on this host that no longer runs died without unlocking.
                    if !crate::lock::holder_is_dead_here(&found) {
                        return Err(Error::new(
                            ErrorKind::Busy,
                            format!(
                                "the vault is in use by another run ({}; lock {}/{LOCK_OBJECT}: if no run is active there, delete that object)",
                                found.trim(),
                                self.place.address.trim_end_matches('/')
                            ),
                        ));
                    }
                    self.delete(LOCK_OBJECT)?;
                }
                Err(e) => return Err(self.error("cannot take the writer lock", LOCK_OBJECT, &e)),
            }
        }
        Err(Error::new(
            ErrorKind::Busy,
            format!(
                "the vault {} is being locked by another run",
                self.place.address
            ),
        ))
    }
}

/// The writer lock object, deleted when the run ends.
struct S3Lock {
    io: Arc<Io>,
}

impl Drop for S3Lock {
    fn drop(&mut self) {
        // Best effort: a lock left by a failed delete names its dead holder.
        let _ = self.io.block_on(self.io.op.delete(LOCK_OBJECT));
    }
}

/// A volume being uploaded: one part buffered, the upload aborted unless sealed.
struct S3Sink {
    io: Arc<Io>,
    place: Place,
    object_lock: Option<ObjectLock>,
    name: String,
    part: Vec<u8>,
    part_bytes: usize,
    written: u64,
    writer: Option<opendal::Writer>,
}

impl S3Sink {
    fn send_part(&mut self) -> std::io::Result<()> {
        let part = std::mem::replace(&mut self.part, Vec::with_capacity(self.part_bytes));
        let writer = self.writer.as_mut().expect("writer present until sealed");
        self.io
            .block_on(writer.write(part))
            .map_err(|e| std::io::Error::other(short(&e)))
    }
}

impl Write for S3Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let take = buf.len().min(self.part_bytes - self.part.len());
        self.part.extend_from_slice(&buf[..take]);
        self.written += take as u64;
        if self.part.len() == self.part_bytes {
            self.send_part()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Parts go out when full: a flush must not force a short part mid-upload.
        Ok(())
    }
}

impl VolumeSink for S3Sink {
    fn seal(mut self: Box<Self>) -> Result<()> {
        let fail =
            |sink: &S3Sink, what: &str, e: &opendal::Error| sink.place.error(what, &sink.name, e);
        if !self.part.is_empty() {
            self.send_part().map_err(|e| {
                Error::new(ErrorKind::Io, format!("cannot upload {}: {e}", self.name))
            })?;
        }
        let mut writer = self.writer.take().expect("writer present until sealed");
        if let Err(e) = self.io.block_on(writer.close()) {
            let _ = self.io.block_on(writer.abort());
            return Err(fail(&self, "cannot complete upload of", &e));
        }
        // A store that answered 200 to a truncated body must not be trusted (restic #3023).
        let stored = self
            .io
            .block_on(self.io.op.stat(&self.name))
            .map_err(|e| fail(&self, "cannot check", &e))?
            .content_length();
        if stored != self.written {
            let _ = self.io.block_on(self.io.op.delete(&self.name));
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "{} was stored with {stored} bytes of {} written: not trusted, deleted",
                    self.name, self.written
                ),
            ));
        }
        if let Some(lock) = self.object_lock {
            if let Err(e) = self.lock(lock) {
                // A volume promised locked and not locked is not one to keep.
                let _ = self.io.block_on(self.io.op.delete(&self.name));
                return Err(Error::new(
                    e.kind(),
                    format!("{e}; the volume was not kept"),
                ));
            }
        }
        Ok(())
    }
}

impl S3Sink {
    /// Set the volume's retention period, counted from now.
    fn lock(&self, lock: ObjectLock) -> Result<()> {
        use base64::Engine;
        use md5::Digest;
        let until =
            std::time::SystemTime::now() + Duration::from_secs(u64::from(lock.days) * 24 * 60 * 60);
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            lock.mode.as_s3(),
            humantime::format_rfc3339_seconds(until)
        );
        // S3 takes no retention without the body's MD5.
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        let what = "cannot set the object lock of";
        let headers = [
            ("content-md5", md5),
            ("content-type", "application/xml".into()),
        ];
        let target = self.io.signed.object(&self.name, "?retention");
        let (answer, body) = self
            .io
            .signed(http::Method::PUT, &target, &headers, body.into_bytes())
            .map_err(|e| self.place.unanswered(what, &self.name, &e))?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(self.place.refused(what, &self.name, answer.status, &body))
        }
    }
}

impl Drop for S3Sink {
    fn drop(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            // Never leave a half upload to complete later; it is invisible either way.
            let _ = self.io.block_on(writer.abort());
        }
    }
}

/// A volume read front to back in ranged GETs of up to a few MiB.
struct S3Reader {
    io: Arc<Io>,
    place: Place,
    name: String,
    size: u64,
    position: u64,
    next_fetch: u64,
    chunk: Vec<u8>,
    chunk_read: usize,
}

impl S3Reader {
    fn fetch(&mut self) -> std::io::Result<()> {
        let end = (self.position + self.next_fetch).min(self.size);
        self.next_fetch = (self.next_fetch * 2).min(MAX_READ_BYTES);
        let want = (end - self.position) as usize;
        // A GET that ends early is tried once more before the volume counts as short.
        for _ in 0..2 {
            let got = self
                .io
                .block_on(self.io.op.read_with(&self.name).range(self.position..end))
                .map_err(|e| {
                    std::io::Error::other(self.place.error("cannot read", &self.name, &e))
                })?;
            if got.len() == want {
                self.chunk = got.to_vec();
                self.chunk_read = 0;
                return Ok(());
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "{} in {} ended early at byte {}",
                self.name, self.place.address, self.position
            ),
        ))
    }
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.chunk_read == self.chunk.len() {
            if self.position >= self.size {
                return Ok(0);
            }
            self.fetch()?;
        }
        let take = buf.len().min(self.chunk.len() - self.chunk_read);
        buf[..take].copy_from_slice(&self.chunk[self.chunk_read..self.chunk_read + take]);
        self.chunk_read += take;
        self.position += take as u64;
        Ok(take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_so_a_volume_fits_in_ten_thousand() {
        assert_eq!(part_size(8 << 20).unwrap(), 16 << 20);
        assert_eq!(part_size(160_000 << 20).unwrap(), 16 << 20);
        let big = 2u64 << 40;
        let part = part_size(big).unwrap();
        assert!(part * MAX_PARTS >= big && part <= 5 << 30, "{part}");
        assert_eq!(part % (1 << 20), 0);
        assert_eq!(
            part_size((5 << 40) + 1).err().unwrap().kind(),
            ErrorKind::Usage
        );
    }

    #[test]
    fn object_paths_escape_what_s3_does_not_take_raw() {
        assert_eq!(url_path("site1/tv000001-ab.tar"), "site1/tv000001-ab.tar");
        assert_eq!(url_path("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
    }

    #[test]
    fn addresses_without_a_bucket_are_usage_errors() {
        for address in ["s3://", "s3:///prefix"] {
            let err = S3Vault::open(address, &VaultOptions::default())
                .err()
                .unwrap();
            assert_eq!(err.kind(), ErrorKind::Usage, "{address}");
        }
    }
}

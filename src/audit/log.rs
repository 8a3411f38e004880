//! The audit queue and its writer task.
//!
//! Every request reserves a slot in a bounded queue *before* it does
//! anything (so a request that could not be audited never reaches the
//! upstream), and fills the slot with its record when it ends. One writer
//! task seals the records ([`super::seal`]: chained, with their definitions),
//! writes them in batches off the runtime's worker threads, and retries a
//! failing sink until it recovers; while the sink fails,
//! [`AuditLog::reserve`] refuses new requests (503). Nothing is dropped
//! silently: a record that cannot be queued or written is counted.

use super::chain::ChainKey;
use super::config::{AuditSettings, FsyncPolicy, OnFull};
use super::origin::ChainOrigin;
use super::record::AuditRecord;
use super::seal::{Sealed, Sealer};
use super::sink::{self, Deleted, FileSink};
use crate::metrics::AuditMetrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Records chained and written together at most.
const MAX_BATCH: usize = 512;
/// How long the writer waits for more records before writing a batch.
const LINGER: Duration = Duration::from_millis(1);
/// Room made for a chain's last records, a retention record and the seal
/// (about 300 and 250 bytes).
const SEAL_ROOM: u64 = 1024;

/// A reserved place in the queue for one request's record.
pub type Slot = mpsc::OwnedPermit<AuditRecord>;

/// Why a request could not get a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The sink is failing; requests are refused until it recovers.
    SinkFailed,
    /// No free slot (at once, or within the wait timeout).
    QueueFull,
    /// The log is shutting down.
    Closed,
}

impl Unavailable {
    /// Metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::SinkFailed => "sink_failed",
            Unavailable::QueueFull => "queue_full",
            Unavailable::Closed => "closed",
        }
    }
}

struct Shared {
    sink_ok: AtomicBool,
}

/// The request path's handle on the audit trail.
pub struct AuditLog {
    tx: mpsc::Sender<AuditRecord>,
    shared: Arc<Shared>,
    on_full: OnFull,
    wait_timeout: Duration,
    metrics: AuditMetrics,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("healthy", &self.healthy())
            .field("depth", &self.depth())
            .finish_non_exhaustive()
    }
}

/// Owns the writer task; [`AuditWriter::shutdown`] drains the queue and
/// seals the chain.
pub struct AuditWriter {
    stop: Option<oneshot::Sender<&'static str>>,
    /// The chain this writer run writes.
    pub chain_id: String,
    task: JoinHandle<()>,
    timeout: Duration,
    metrics: AuditMetrics,
}

/// Why the audit trail cannot start: the proxy does not serve without it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Resume(#[from] super::sink::ResumeError),
    #[error("cannot open audit file {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Opens the sinks and starts the writer task (call inside a Tokio
/// runtime), which begins a new chain (record format 4) named from the
/// environment ([`ChainOrigin::from_env`]); `policy_version` is the
/// policy set loaded at start, for the genesis record.
///
/// Each run is a chain of its own: a file that already holds records is
/// continued with a new genesis record that names what the file held last
/// ([`sink::previous`]). A file whose last line is damaged (a writer
/// killed mid-write) is rotated away first, so the new chain starts in a
/// file of its own. Fails closed: a trail that cannot be opened stops
/// start-up.
pub fn start(
    settings: &AuditSettings,
    metrics: AuditMetrics,
    policy_version: &str,
) -> Result<(AuditLog, AuditWriter), StartError> {
    start_chain(settings, metrics, ChainOrigin::from_env(policy_version))
}

/// [`start`], for a chain named by the caller.
pub fn start_chain(
    settings: &AuditSettings,
    metrics: AuditMetrics,
    origin: ChainOrigin,
) -> Result<(AuditLog, AuditWriter), StartError> {
    let key = ChainKey::new(settings.hmac_key.as_deref());
    let (file, previous) = match &settings.file {
        Some(path) => {
            let previous = sink::previous(path)?;
            let mut file = FileSink::open(
                path.clone(),
                settings.max_file_bytes,
                settings.max_files,
                settings.retention,
                settings.fsync,
            )
            .map_err(|source| StartError::Open {
                path: path.clone(),
                source,
            })?;
            if previous.fresh_file {
                file.start_new_file().map_err(|source| StartError::Open {
                    path: path.clone(),
                    source,
                })?;
            }
            (Some(file), previous.record)
        }
        None => (None, None),
    };
    let (tx, rx) = mpsc::channel(settings.queue_capacity);
    let shared = Arc::new(Shared {
        sink_ok: AtomicBool::new(true),
    });
    metrics.sink_up.set(1);
    metrics
        .chain_info
        .with_label_values(&[origin.id.as_str()])
        .set(1);
    metrics.queue_capacity.set(settings.queue_capacity as i64);
    if let Some(f) = &file {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        metrics
            .retention_capacity_bytes
            .set(gauge(settings.retention.max_total_bytes));
        metrics
            .retention_remaining_bytes
            .set(gauge(f.remaining_bytes()));
    }
    let (stop_tx, stop_rx) = oneshot::channel();
    let layout = file.as_ref().map(FileSink::layout);
    let replaced = file.as_ref().map_or(0, FileSink::replaced);
    let chain_id = origin.id.clone();
    let writer = Writer {
        rx,
        sealer: Sealer::new(origin.tag.clone(), key, layout),
        origin,
        previous,
        replaced,
        sinks: Sinks {
            file,
            stdout: settings.stdout,
        },
        shared: shared.clone(),
        metrics: metrics.clone(),
        retry: settings.retry_interval,
        fsync_interval: settings.fsync_interval,
        interval_sync: settings.fsync == FsyncPolicy::Interval,
        deleted: None,
    };
    let task = tokio::spawn(writer.run(stop_rx));
    let log = AuditLog {
        tx,
        shared,
        on_full: settings.on_full,
        wait_timeout: settings.wait_timeout,
        metrics: metrics.clone(),
    };
    let writer = AuditWriter {
        stop: Some(stop_tx),
        chain_id,
        task,
        timeout: settings.shutdown_timeout,
        metrics,
    };
    Ok((log, writer))
}

impl AuditLog {
    /// Whether the sink accepted its last write (`/readyz`).
    pub fn healthy(&self) -> bool {
        self.shared.sink_ok.load(Ordering::Acquire)
    }

    /// Slots taken: records queued plus requests in flight.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// A slot for one request's record, per the `on_full` policy.
    pub async fn reserve(&self) -> Result<Slot, Unavailable> {
        if !self.healthy() {
            return Err(Unavailable::SinkFailed);
        }
        let tx = self.tx.clone();
        let slot = match self.on_full {
            OnFull::FailClosed => tx.try_reserve_owned().map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Unavailable::QueueFull,
                mpsc::error::TrySendError::Closed(_) => Unavailable::Closed,
            }),
            OnFull::Wait => match tokio::time::timeout(self.wait_timeout, tx.reserve_owned()).await
            {
                Ok(Ok(slot)) => Ok(slot),
                Ok(Err(_)) => Err(Unavailable::Closed),
                Err(_) => Err(Unavailable::QueueFull),
            },
        };
        self.metrics.queue_depth.set(self.depth() as i64);
        slot
    }

    /// Queues a finished request's record: into its slot, or (for a request
    /// refused because no slot was free) wherever there is room. A record
    /// that finds no room is counted as lost.
    pub fn submit(&self, slot: Option<Slot>, record: AuditRecord) {
        match slot {
            Some(slot) => {
                slot.send(record);
            }
            None => {
                if self.tx.try_send(record).is_err() {
                    self.metrics.records_lost.inc();
                }
            }
        }
    }

    /// Counts a request refused because of the audit trail.
    pub fn count_refusal(&self, why: Unavailable) {
        self.metrics
            .refused_requests
            .with_label_values(&[why.as_str()])
            .inc();
    }
}

impl AuditWriter {
    /// Stops taking new records, writes every queued one (and those of
    /// requests still in flight), seals the chain (reason `shutdown`) and
    /// fsyncs; gives up after the configured timeout, counting what was not
    /// written (the chain then stays open).
    pub async fn shutdown(self) {
        self.shutdown_because("shutdown").await;
    }

    /// [`AuditWriter::shutdown`], with the reason the seal record gives.
    pub async fn shutdown_because(mut self, reason: &'static str) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(reason);
        }
        if tokio::time::timeout(self.timeout, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
            tracing::error!("audit queue not drained within the shutdown timeout");
            self.metrics.sink_up.set(0);
        }
    }
}

struct Sinks {
    file: Option<FileSink>,
    stdout: bool,
}

struct Writer {
    rx: mpsc::Receiver<AuditRecord>,
    sealer: Sealer,
    /// Who writes the chain (its genesis record).
    origin: ChainOrigin,
    /// What the file held last before this chain (the genesis names it).
    previous: Option<serde_json::Value>,
    /// The file sink's count of files it found replaced, as last seen.
    replaced: u64,
    sinks: Sinks,
    shared: Arc<Shared>,
    metrics: AuditMetrics,
    retry: Duration,
    fsync_interval: Duration,
    interval_sync: bool,
    /// Files retention deleted, to be named in the next record.
    deleted: Option<Deleted>,
}

impl Writer {
    async fn run(mut self, mut stop: oneshot::Receiver<&'static str>) {
        let mut stopping: Option<&'static str> = None;
        let mut sinks = Some(self.sinks_take());
        // The chain's first record, before any request's.
        let mut genesis = Sealed::default();
        self.sealer
            .seal_genesis(&self.origin, self.previous.as_ref(), &mut genesis);
        sinks = self.write_until_done(sinks.take(), genesis).await;
        if sinks.is_none() {
            return;
        }
        loop {
            let dirty = sinks
                .as_ref()
                .and_then(|s| s.file.as_ref())
                .is_some_and(|f| f.needs_sync());
            let first = tokio::select! {
                biased;
                r = self.rx.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
                why = &mut stop, if stopping.is_none() => {
                    // Refuse new slots; slots already taken can still be
                    // filled and are drained below.
                    stopping = Some(why.unwrap_or("closed"));
                    self.rx.close();
                    continue;
                }
                _ = tokio::time::sleep(self.fsync_interval), if dirty && self.interval_sync => {
                    sinks = self.sync(sinks.take()).await;
                    continue;
                }
            };
            let mut batch = vec![first];
            // Linger briefly so a busy proxy hands whole batches to the
            // blocking writer, not one thread switch per record (the load
            // benchmark's profile). Responses never wait for this.
            let linger_until = tokio::time::Instant::now() + LINGER;
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) if stopping.is_some() => break,
                    Err(_) => match tokio::time::timeout_at(linger_until, self.rx.recv()).await {
                        Ok(Some(r)) => batch.push(r),
                        Ok(None) | Err(_) => break,
                    },
                }
            }
            let sealed = self.seal(batch);
            sinks = self.write_until_done(sinks.take(), sealed).await;
            sinks = self.record_deletions(sinks.take()).await;
            if sinks.is_none() {
                return;
            }
            self.metrics
                .queue_depth
                .set((self.rx.max_capacity() - self.rx.capacity()) as i64);
        }
        // Every record is written: the chain ends here. Room for the seal
        // is made first, and what that deleted recorded before it: nothing
        // may follow the seal.
        sinks = self.make_room_for_seal(sinks.take()).await;
        sinks = self.record_deletions(sinks.take()).await;
        let mut end = Sealed::default();
        self.sealer.seal_end(stopping.unwrap_or("closed"), &mut end);
        sinks = self.write_until_done(sinks.take(), end).await;
        let _ = self.sync(sinks.take()).await;
        self.metrics.queue_depth.set(0);
    }

    fn sinks_take(&mut self) -> Sinks {
        std::mem::replace(
            &mut self.sinks,
            Sinks {
                file: None,
                stdout: false,
            },
        )
    }

    /// Chains the records in order and renders their lines.
    fn seal(&mut self, batch: Vec<AuditRecord>) -> Sealed {
        let mut out = Sealed {
            bytes: Vec::with_capacity(batch.len() * 512),
            ..Sealed::default()
        };
        for r in batch {
            self.sealer.seal(r, &mut out);
        }
        out
    }

    /// Has the file sink make room for the chain's last records (a
    /// retention record and the seal) before they are sealed: see
    /// [`FileSink::make_room`].
    async fn make_room_for_seal(&mut self, sinks: Option<Sinks>) -> Option<Sinks> {
        let mut s = sinks?;
        if s.file.is_none() {
            return Some(s);
        }
        let joined = tokio::task::spawn_blocking(move || {
            let made = s.file.as_mut().map_or(Ok(()), |f| f.make_room(SEAL_ROOM));
            let deleted = s.file.as_mut().and_then(FileSink::take_deleted);
            let remaining = s.file.as_ref().map(FileSink::remaining_bytes);
            let layout = s.file.as_ref().map(|f| (f.layout(), f.replaced()));
            (s, made, deleted, remaining, layout)
        })
        .await;
        match joined {
            Ok((s, made, deleted, remaining, layout)) => {
                if let Err(e) = made {
                    tracing::warn!("cannot make room for the audit chain's seal: {e}");
                }
                self.note_retention(deleted, remaining);
                if let Some((layout, replaced)) = layout {
                    // A file started here holds no definitions yet.
                    self.sealer.file_written(layout.len, true);
                    self.replaced = replaced;
                }
                Some(s)
            }
            Err(e) => {
                self.fail(&format!("audit writer task failed: {e}"));
                None
            }
        }
    }

    /// Writes a record of each deletion retention made while writing, at
    /// once (not with the next request's record: there may be none before
    /// a shutdown). Writing one can rotate, and delete, again.
    async fn record_deletions(&mut self, mut sinks: Option<Sinks>) -> Option<Sinks> {
        while let Some(d) = self.deleted.take() {
            let mut sealed = Sealed::default();
            self.sealer.seal_retention(&d, &mut sealed);
            sinks = self.write_until_done(sinks, sealed).await;
        }
        sinks
    }

    /// Writes one batch, retrying until every sink took it. `None`: the
    /// blocking task died and the log cannot continue (requests stay
    /// refused).
    async fn write_until_done(
        &mut self,
        mut sinks: Option<Sinks>,
        sealed: Sealed,
    ) -> Option<Sinks> {
        let Sealed {
            bytes,
            new_files,
            records,
            definitions,
        } = sealed;
        let bytes = Arc::new(bytes);
        let new_files = Arc::new(new_files);
        // How far the file has taken the batch (it may stop between
        // records), and whether stdout has.
        let (mut file_done, mut stdout_done) = (0usize, false);
        loop {
            let s = sinks.take()?;
            let (b, cuts) = (bytes.clone(), new_files.clone());
            let joined = tokio::task::spawn_blocking(move || {
                let mut s = s;
                let file = match &mut s.file {
                    Some(f) if file_done < b.len() => {
                        // The plan's new files from where the file stopped.
                        let rest: Vec<usize> = cuts
                            .iter()
                            .filter(|&&c| c >= file_done)
                            .map(|&c| c - file_done)
                            .collect();
                        match f.write_planned(&b[file_done..], &rest) {
                            Ok(()) => Ok(b.len()),
                            Err(p) => Err((file_done + p.written, p.error)),
                        }
                    }
                    _ => Ok(b.len()),
                };
                let stdout = if s.stdout && !stdout_done {
                    sink::write_stdout(&b).map(|_| true)
                } else {
                    Ok(true)
                };
                let deleted = s.file.as_mut().and_then(FileSink::take_deleted);
                let remaining = s.file.as_ref().map(FileSink::remaining_bytes);
                let layout = s.file.as_ref().map(|f| (f.layout(), f.replaced()));
                (s, file, stdout, deleted, remaining, layout)
            })
            .await;
            let (s, file, stdout, deleted, remaining, layout) = match joined {
                Ok(x) => x,
                Err(e) => {
                    self.fail(&format!("audit writer task failed: {e}"));
                    return None;
                }
            };
            sinks = Some(s);
            self.note_retention(deleted, remaining);
            if let Some((layout, replaced)) = layout {
                self.sealer
                    .file_written(layout.len, replaced != self.replaced);
                self.replaced = replaced;
            }
            file_done = match &file {
                Ok(n) | Err((n, _)) => *n,
            };
            stdout_done |= *stdout.as_ref().unwrap_or(&false);
            match file.err().map(|(_, e)| e).or(stdout.err()) {
                None => {
                    self.shared.sink_ok.store(true, Ordering::Release);
                    self.metrics.sink_up.set(1);
                    self.metrics.records_written.inc_by(records);
                    self.metrics.definitions_written.inc_by(definitions);
                    self.metrics
                        .last_write
                        .set(fieldguard_core::time::unix_seconds(SystemTime::now()));
                    return sinks;
                }
                Some(e) => {
                    self.metrics.write_failures.inc();
                    self.fail(&format!("audit sink write failed (retrying): {e}"));
                    tokio::time::sleep(self.retry).await;
                }
            }
        }
    }

    /// Counts files retention deleted (to be named in the next record) and
    /// how much room is left.
    fn note_retention(&mut self, deleted: Option<Deleted>, remaining: Option<u64>) {
        if let Some(d) = deleted {
            self.metrics.files_deleted.inc_by(u64::from(d.files));
            self.deleted = Some(match self.deleted.take() {
                Some(earlier) => earlier.merge(d),
                None => d,
            });
        }
        if let Some(r) = remaining {
            self.metrics
                .retention_remaining_bytes
                .set(i64::try_from(r).unwrap_or(i64::MAX));
        }
    }

    async fn sync(&self, sinks: Option<Sinks>) -> Option<Sinks> {
        let mut s = sinks?;
        if s.file.is_none() {
            return Some(s);
        }
        let joined = tokio::task::spawn_blocking(move || {
            let r = s.file.as_mut().map(|f| f.sync()).unwrap_or(Ok(()));
            (s, r)
        })
        .await;
        match joined {
            Ok((s, Ok(()))) => Some(s),
            Ok((s, Err(e))) => {
                // The records stay written; the next write reopens the file.
                self.metrics.write_failures.inc();
                tracing::error!("audit fsync failed: {e}");
                Some(s)
            }
            Err(e) => {
                self.fail(&format!("audit writer task failed: {e}"));
                None
            }
        }
    }

    fn fail(&self, message: &str) {
        if self.shared.sink_ok.swap(false, Ordering::AcqRel) {
            tracing::error!("{message}; refusing requests until the audit sink recovers");
        } else {
            fieldguard_core::repeated_warn!(
                fieldguard_core::repeated::Kind::AuditSink,
                "{message}"
            );
        }
        self.metrics.sink_up.set(0);
    }
}

//! Streamed list responses: on a route whose records are one list, a
//! response body over `limits.stream_responses_over_bytes` is redacted and
//! sent record by record ([`ListStream`]) instead of being buffered whole,
//! so memory is bounded by the largest record (`limits.max_record_bytes`)
//! and the client sees its first records before the upstream has sent its
//! last.
//!
//! Which responses stream (everything else is buffered, as before):
//! - the route's plan streams ([`fieldguard_core::redact::ListPlace`]):
//!   one record selector at `keys...[*]`, attributes read from the records;
//! - the route is enforced (shadow mode and an observed policy set compare
//!   whole bodies, so they buffer);
//! - the body is declared larger than the threshold, or turns out so while
//!   it is read (a chunked body is read up to the threshold first: one that
//!   ends within it is buffered and can still get a clean 502).
//!
//! Once the first bytes are sent the status (200) cannot change. A body
//! that turns out malformed, misshapen, too large, too slow, or refused by
//! a bulk-read budget is then never completed: the body ends with an error,
//! which hyper turns into a connection close (HTTP/1.1, without the final
//! chunk) or a stream reset (HTTP/2), and the list's `]` and the rest of
//! the body are never sent. The audit record says the response was
//! streamed, what it disclosed up to the abort, and why it was aborted.

use super::budgeting;
use super::detached::Reply;
use super::errors::{Refusal, Stop};
use super::inspect::{check_head, decode, strip_rewritten};
use super::{BoxError, Proxy, ProxyBody};
use crate::budget::Disclosure;
use crate::exchange::Exchange;
use crate::runtime::Runtime;
use bytes::Bytes;
use fieldguard_core::pipeline::{self, Decided};
use fieldguard_core::redact::{ListStream, ListStreamError};
use http::Response;
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Output gathered before it is sent (and charged to budgets) as one
/// chunk: large enough that framing and budget checks are rare, small
/// enough to bound memory per stream.
const BATCH_BYTES: usize = 64 * 1024;

/// Input redacted between two checks for a full batch.
const FEED_BYTES: usize = 16 * 1024;

/// How an inspected response on a streaming route begins.
pub(super) enum Start {
    /// The body ended within the threshold: raw bytes and, if gzip, the
    /// decoded ones; filtered whole like any other.
    Whole(http::response::Parts, Bytes, Option<Vec<u8>>),
    /// The body is larger: what was read of it so far, and the rest.
    Stream(http::response::Parts, Pending),
}

/// A body to be streamed: the bytes read while deciding, and the rest.
pub(super) struct Pending {
    first: Vec<u8>,
    body: Incoming,
    gzip: bool,
}

/// Whether `decided`'s responses may stream here at all (shadow-mode
/// routes never get here: they relay and note).
pub(super) fn streams(rt: &Runtime, decided: &Decided<'_>, observed: bool) -> bool {
    !observed
        && rt.decisions.limits.stream_responses_over_bytes.is_some()
        && decided
            .route
            .response
            .as_ref()
            .is_some_and(|p| p.stream.is_some())
}

/// Reads an inspected response on a streaming route up to the threshold:
/// a body that ends within it is returned whole, a larger one to stream.
/// Refused (nothing sent) when its head or first bytes cannot be read.
pub(super) async fn start(
    proxy: &Proxy,
    rt: &Runtime,
    decided: &Decided<'_>,
    resp: Response<Incoming>,
) -> Result<Start, Stop> {
    let limits = &rt.decisions.limits;
    let threshold = limits.stream_responses_over_bytes.unwrap_or(usize::MAX);
    let (parts, mut body) = resp.into_parts();
    let encoding = check_head(&parts, limits.max_streamed_response_bytes)?;
    let gzip = encoding == super::body::Encoding::Gzip;
    let declared_large =
        super::body::declared_length(&parts.headers).is_some_and(|n| n > threshold as u64);
    let place = (decided.route.response.as_ref()).and_then(|p| p.stream.as_ref());
    let opens = |first: &[u8]| place.is_some_and(|p| p.opens_in(first, limits.max_json_depth));
    let mut first = Vec::new();
    let deadline = tokio::time::Instant::now() + proxy.upstream.response_timeout();
    // Read to the threshold (a body that ends before is buffered), then,
    // unless gzip-encoded, on to the list's opening: a body that is not
    // what the route declares before its list still gets a clean 502.
    loop {
        let large = declared_large || first.len() > threshold;
        if large && (gzip || opens(&first)) {
            return Ok(Start::Stream(parts, Pending { first, body, gzip }));
        }
        if large && first.len() > limits.max_record_bytes.max(threshold) {
            return Err(Refusal::UnreadableResponse.into());
        }
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .map_err(|_| Stop::from(Refusal::UpstreamTimeout))?;
        match frame {
            None => {
                let limit = limits.max_response_body_bytes;
                if first.len() > limit {
                    return Err(Refusal::ResponseTooLarge.into());
                }
                let decoded = decode(&first, encoding, limit)?;
                return Ok(Start::Whole(parts, Bytes::from(first), decoded));
            }
            Some(Err(_)) => return Err(Refusal::UnreadableResponse.into()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    first.extend_from_slice(&data);
                }
            }
        }
    }
}

/// The client's end of a streamed body: chunks as they are redacted, or an
/// error that aborts the response.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    /// Set once the whole body was sent: a channel closed without it
    /// (an abort, or the redacting task gone) ends the body with an error,
    /// never with a clean end.
    done: Arc<AtomicBool>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(None) if self.done.load(Ordering::Acquire) => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(Box::new(Aborted)))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Why a streamed response was aborted (the audit record's
/// `response_aborted`, the metric's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Abort {
    /// Not JSON, or not the route's shape, found after bytes were sent.
    Unreadable,
    RecordTooLarge,
    ResponseTooLarge,
    UpstreamTimeout,
    /// The upstream connection failed mid-body.
    UpstreamFailed,
    /// A refusing bulk-read budget would be exceeded by the next records.
    BudgetExceeded,
    /// The shared budget store could not answer and a budget the next
    /// records count against says `on_store_error: refuse`.
    BudgetStoreUnavailable,
    /// The client stopped reading for longer than the response timeout.
    ClientStalled,
    /// The client went away (also noted as `client_aborted`).
    ClientGone,
}

impl Abort {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Abort::Unreadable => "unreadable_response",
            Abort::RecordTooLarge => "record_too_large",
            Abort::ResponseTooLarge => "response_too_large",
            Abort::UpstreamTimeout => "upstream_timeout",
            Abort::UpstreamFailed => "upstream_failed",
            Abort::BudgetExceeded => "budget_exceeded",
            Abort::BudgetStoreUnavailable => "budget_store_unavailable",
            Abort::ClientStalled => "client_stalled",
            Abort::ClientGone => "client_gone",
        }
    }
}

impl From<ListStreamError> for Abort {
    fn from(e: ListStreamError) -> Self {
        match e {
            ListStreamError::Body(_) => Abort::Unreadable,
            ListStreamError::RecordTooLarge => Abort::RecordTooLarge,
            ListStreamError::BodyTooLarge => Abort::ResponseTooLarge,
        }
    }
}

#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("streamed response aborted")
    }
}

impl std::error::Error for Aborted {}

/// A streamed response whose head is ready: [`Streamed::begin`] redacts
/// its first part before the head is handed to the client, and
/// [`Running::rest`] the rest after.
pub(super) struct Streamed<'rt> {
    decided: Decided<'rt>,
    pending: Option<Pending>,
    tx: mpsc::Sender<Bytes>,
    done: Arc<AtomicBool>,
}

/// The answer's head with a body fed by the returned [`Streamed`].
pub(super) fn respond(
    mut parts: http::response::Parts,
    decided: Decided<'_>,
    pending: Pending,
) -> (Response<ProxyBody>, Streamed<'_>) {
    strip_rewritten(&mut parts.headers);
    super::inspect::ensure_json_type(&mut parts.headers);
    // Two batches in flight at most: the redactor waits for a slow client
    // instead of buffering for it.
    let (tx, rx) = mpsc::channel(2);
    let done = Arc::new(AtomicBool::new(false));
    let body = ChannelBody {
        rx,
        done: done.clone(),
    }
    .boxed();
    let streamed = Streamed {
        decided,
        pending: Some(pending),
        tx,
        done,
    };
    (Response::from_parts(parts, body), streamed)
}

impl<'rt> Streamed<'rt> {
    /// Gives the client the streamed answer: its first part is redacted
    /// (and charged) before the head goes out, so a body that fails that
    /// early gets the proxy's clean error instead; then the rest follows
    /// as it is redacted, and `ex` notes how it ended.
    pub(super) async fn deliver(
        mut self: Box<Self>,
        head: Response<ProxyBody>,
        proxy: &Proxy,
        rt: &Runtime,
        ex: &mut Exchange,
        reply: &mut Reply,
    ) {
        match self.begin(proxy, rt, ex).await {
            Ok(running) => {
                reply.answer(Ok(head), ex);
                running.rest(ex).await;
            }
            Err(stop) => reply.answer(Err(stop), ex),
        }
    }

    /// The redactor of this body (borrowing the decision it redacts by),
    /// with the bytes read before the answer's head is sent redacted and
    /// charged to budgets, the output held: a body that fails this early
    /// (not the route's shape before its list, a malformed first part, a
    /// budget the first records exceed) still gets a clean error answer.
    async fn begin<'s>(
        &'s mut self,
        proxy: &'s Proxy,
        rt: &'s Runtime,
        ex: &mut Exchange,
    ) -> Result<Running<'s>, Stop> {
        let internal = || Stop::from(Refusal::Internal);
        let list =
            pipeline::stream_response_body(&rt.decisions, &self.decided).ok_or_else(internal)?;
        let pending = self.pending.take().ok_or_else(internal)?;
        let gzip = pending.gzip;
        let mut running = Running {
            list,
            sender: Sender {
                proxy,
                rt,
                tx: &self.tx,
                charged: Disclosure::default(),
                timeout: proxy.upstream.response_timeout(),
            },
            pending,
            gunzip: gzip.then(|| flate2::write::MultiGzDecoder::new(Vec::new())),
            out: Vec::with_capacity(BATCH_BYTES * 2),
            done: &self.done,
        };
        running.first(ex).await?;
        Ok(running)
    }
}

/// A streamed body being redacted.
pub(super) struct Running<'s> {
    list: ListStream<'s, 's>,
    sender: Sender<'s>,
    pending: Pending,
    gunzip: Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
    out: Vec<u8>,
    done: &'s AtomicBool,
}

impl Running<'_> {
    /// The first part, for [`Streamed::begin`].
    async fn first(&mut self, ex: &mut Exchange) -> Result<(), Stop> {
        let first = std::mem::take(&mut self.pending.first);
        let fed = feed(&mut self.list, &mut self.gunzip, &first, &mut self.out);
        let stop = match fed {
            Ok(()) => match self.sender.charge(&mut self.list, ex).await {
                Ok(()) => return Ok(()),
                Err(stop) => stop,
            },
            Err(Abort::RecordTooLarge | Abort::ResponseTooLarge) => {
                Refusal::ResponseTooLarge.into()
            }
            Err(_) => Refusal::UnreadableResponse.into(),
        };
        ex.filter = Some(std::mem::take(self.list.report()));
        Err(stop)
    }

    /// Sends the rest of the body to its end or its abort, then notes in
    /// `ex` what it disclosed and how it ended.
    async fn rest(mut self, ex: &mut Exchange) {
        let result = async {
            self.sender.send_out(&mut self.out, ex).await?;
            loop {
                let frame = tokio::time::timeout(self.sender.timeout, self.pending.body.frame())
                    .await
                    .map_err(|_| Abort::UpstreamTimeout)?;
                match frame {
                    None => break,
                    Some(Err(_)) => return Err(Abort::UpstreamFailed),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            (self.sender)
                                .pass_on(&mut self.list, &mut self.gunzip, &data, &mut self.out, ex)
                                .await?;
                        }
                    }
                }
            }
            if let Some(g) = self.gunzip.take() {
                let rest = g.finish().map_err(|_| Abort::Unreadable)?;
                self.list.feed(&rest, &mut self.out)?;
            }
            self.list.finish(&mut self.out)?;
            self.sender.send(&mut self.list, &mut self.out, ex).await
        }
        .await;
        ex.filter = Some(self.list.into_report());
        ex.response_streamed = true;
        match result {
            Ok(()) => self.done.store(true, Ordering::Release),
            Err(abort) => ex.response_aborted = Some(abort.as_str()),
        }
        // Dropping the sender ends the client's body: cleanly once `done`,
        // else with an error.
    }
}

/// Where redacted batches go: charged to budgets, then to the client.
struct Sender<'a> {
    proxy: &'a Proxy,
    rt: &'a Runtime,
    tx: &'a mpsc::Sender<Bytes>,
    /// What the batches sent so far disclosed.
    charged: Disclosure,
    timeout: std::time::Duration,
}

impl Sender<'_> {
    /// Redacts `bytes` a slice at a time, sending each batch as it fills:
    /// an upstream's large read does not become one large batch (memory,
    /// and a budget is charged before the records that would exceed it).
    async fn pass_on(
        &mut self,
        list: &mut ListStream<'_, '_>,
        gunzip: &mut Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
        bytes: &[u8],
        out: &mut Vec<u8>,
        ex: &mut Exchange,
    ) -> Result<(), Abort> {
        for slice in bytes.chunks(FEED_BYTES) {
            feed(list, gunzip, slice, out)?;
            self.send_full(list, out, ex).await?;
        }
        Ok(())
    }

    /// Sends `out` once a batch is gathered.
    async fn send_full(
        &mut self,
        list: &mut ListStream<'_, '_>,
        out: &mut Vec<u8>,
        ex: &mut Exchange,
    ) -> Result<(), Abort> {
        if out.len() < BATCH_BYTES {
            return Ok(());
        }
        self.send(list, out, ex).await
    }

    /// Charges what the records in `out` disclose, then sends it.
    async fn send(
        &mut self,
        list: &mut ListStream<'_, '_>,
        out: &mut Vec<u8>,
        ex: &mut Exchange,
    ) -> Result<(), Abort> {
        self.charge(list, ex).await.map_err(|stop| {
            if stop.budget.is_some_and(|b| b.store_unavailable) {
                Abort::BudgetStoreUnavailable
            } else {
                Abort::BudgetExceeded
            }
        })?;
        self.send_out(out, ex).await
    }

    /// Charges budgets for what the list disclosed since the last charge;
    /// `Err` (429) means it must not be sent.
    async fn charge(
        &mut self,
        list: &mut ListStream<'_, '_>,
        ex: &mut Exchange,
    ) -> Result<(), Stop> {
        if self.rt.budgets.is_empty() {
            return Ok(());
        }
        let now = Disclosure::of(list.report(), &self.rt.decisions.catalogue);
        let added = now.since(&self.charged);
        self.charged = now;
        budgeting::charge_disclosure(self.proxy, self.rt, ex, &added, true).await
    }

    /// Sends `out` to the client.
    async fn send_out(&mut self, out: &mut Vec<u8>, ex: &mut Exchange) -> Result<(), Abort> {
        if out.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::copy_from_slice(out);
        out.clear();
        match tokio::time::timeout(self.timeout, self.tx.send(chunk)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                ex.progress.client_left();
                Err(Abort::ClientGone)
            }
            Err(_) => Err(Abort::ClientStalled),
        }
    }
}

/// Feeds body bytes (decoded first when gzip) to the list.
fn feed(
    list: &mut ListStream<'_, '_>,
    gunzip: &mut Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Abort> {
    match gunzip {
        Some(g) => {
            g.write_all(bytes).map_err(|_| Abort::Unreadable)?;
            let decoded = std::mem::take(g.get_mut());
            list.feed(&decoded, out)?;
            // Keep the allocation for the next chunk.
            *g.get_mut() = decoded;
            g.get_mut().clear();
        }
        None => list.feed(bytes, out)?,
    }
    Ok(())
}

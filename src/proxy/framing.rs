//! Request framing on HTTP/1 connections, followed as hyper will read it, so
//! that a request whose length is ambiguous can be refused.
//!
//! hyper's HTTP/1 server settles a request carrying both `Content-Length`
//! and `Transfer-Encoding` by the chunked framing alone (RFC 9112 §6.1),
//! drops the `Content-Length` and closes the connection afterwards: the
//! request service never learns that the request was ambiguous. Such a
//! request is what request smuggling through a less careful intermediary is
//! made of, and a proxy guarding data should not serve it, so fieldguard
//! refuses it (400 `ambiguous_framing`).
//!
//! [`FramingIo`] sits under hyper on every downstream connection and sees
//! the bytes hyper reads. Its [`Tracker`] finds each request head the way
//! hyper will: heads are parsed with `httparse` in hyper's configuration,
//! bodies are skipped by counting (`Content-Length`) or by following the
//! chunk framing (sizes, extensions, trailers) byte by byte. It records the
//! index of the first request on the connection it cannot vouch for: a head
//! with both `Content-Length` and `Transfer-Encoding`, with differing or
//! invalid lengths, a transfer coding not ending in `chunked`, a head it
//! cannot parse or that grows past the head limit, or a chunk framing error.
//! hyper refuses most of those itself (400/431) and never hands them over;
//! for the rest, the request service asks [`Framing::refuse_next`] once per
//! request, in the order hyper hands them over, and refuses from that index
//! on. Whatever is recorded, the connection does not carry another request
//! afterwards (hyper closes it, and the refusal says `Connection: close`).
//!
//! Only HTTP/1 is tracked: a connection that opens with the HTTP/2 preface
//! (h2c prior knowledge, or h2 chosen by ALPN) is switched off at once, as
//! hyper-util's `auto` builder switches to HTTP/2 on the same bytes.
//!
//! Cost: one branch per read once switched off; on HTTP/1, a scan of the
//! head bytes for line ends and one `httparse` pass per head, no allocation
//! unless a head arrives split over reads (then its bytes are kept, up to
//! the head limit) or more than 128 header fields are allowed. Body bytes
//! are counted, not looked at, except for chunk framing. Nothing here
//! panics on any input.

use smallvec::{SmallVec, smallvec};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The connection preface every HTTP/2 client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// No request is to be refused.
const NONE: u64 = u64::MAX;

/// A head buffer that grew past this is released after use, so one large
/// head does not pin memory for the rest of a keep-alive connection.
const KEEP_HEAD_CAPACITY: usize = 8 * 1024;

/// What the request service learns from a connection's [`Tracker`].
#[derive(Debug)]
pub(super) struct Framing {
    /// Index of the first request that must be refused ([`NONE`]: none).
    refuse_from: AtomicU64,
    /// Requests handed to the service so far.
    handed_over: AtomicU64,
    /// Part of a request head has arrived and its end has not.
    head_started: AtomicBool,
}

impl Framing {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            refuse_from: AtomicU64::new(NONE),
            handed_over: AtomicU64::new(0),
            head_started: AtomicBool::new(false),
        })
    }

    /// Whether the connection is partway through sending a request head
    /// (HTTP/1; always false once tracking is off). What tells a client
    /// that is too slow with a head apart from a kept-alive connection that
    /// simply sent no next request, when hyper's header timeout ends either.
    pub(super) fn head_started(&self) -> bool {
        self.head_started.load(Ordering::Relaxed)
    }

    /// Counts one request and says whether it must be refused. Call it
    /// exactly once per request, when the service receives it: on HTTP/1
    /// hyper hands requests over one at a time, in the order of their
    /// heads, and only after their head has been read, so the tracker has
    /// already seen it. (On HTTP/2 nothing is ever recorded, so the count
    /// is harmless there.)
    pub(super) fn refuse_next(&self) -> bool {
        let index = self.handed_over.fetch_add(1, Ordering::AcqRel);
        index >= self.refuse_from.load(Ordering::Acquire)
    }

    fn refuse_from(&self, index: u64) {
        self.refuse_from.fetch_min(index, Ordering::AcqRel);
    }

    /// The index recorded, if any (for tests).
    #[cfg(test)]
    fn recorded(&self) -> Option<u64> {
        match self.refuse_from.load(Ordering::Acquire) {
            NONE => None,
            i => Some(i),
        }
    }
}

/// Limits the tracker mirrors from hyper's HTTP/1 configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct TrackerLimits {
    /// Largest head kept while it arrives over several reads. hyper refuses
    /// heads past its read buffer size (`max_buf_size`) but its buffer can
    /// overshoot that by one read, so this should be twice that size.
    pub max_head_bytes: usize,
    /// hyper's `max_headers`: more header fields fail its parse (431), and
    /// must fail this one alike.
    pub max_headers: usize,
}

/// How the body of the request being read is framed, or what is expected next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The connection's first bytes: `usize` of them matched the HTTP/2
    /// preface so far.
    Preface(usize),
    /// Between requests or inside a head.
    Head,
    /// A `Content-Length` body: bytes still to skip.
    Length(u64),
    /// A chunked body.
    Chunked(Chunk),
    /// Not tracking: HTTP/2, or a verdict was recorded.
    Off,
}

/// Position in the chunk framing; mirrors hyper's `ChunkedState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting the first hex digit of a chunk size.
    Start,
    Size(u64),
    /// Spaces or tabs after the size.
    SizeLws(u64),
    /// A chunk extension, up to CR.
    Extension(u64),
    /// CR seen after the size line; expecting LF.
    SizeLf(u64),
    /// Chunk data still to skip.
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: CR (end) or the first byte of a trailer field.
    EndCr,
    Trailer,
    TrailerLf,
    EndLf,
}

/// What a complete head says about the body that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
    /// Ambiguous, invalid or unparseable: the request is refused.
    Refuse,
}

/// Follows the request framing on one connection (see the module docs).
#[derive(Debug)]
pub(super) struct Tracker {
    framing: Arc<Framing>,
    limits: TrackerLimits,
    state: State,
    /// Index of the request whose head or body is being read.
    index: u64,
    /// Bytes of a head that arrived split over reads.
    head: Vec<u8>,
    scan: HeadEnd,
}

impl Tracker {
    pub(super) fn new(framing: Arc<Framing>, limits: TrackerLimits) -> Self {
        Self {
            framing,
            limits,
            state: State::Preface(0),
            index: 0,
            head: Vec::new(),
            scan: HeadEnd::default(),
        }
    }

    /// Takes the next bytes read from the connection.
    pub(super) fn feed(&mut self, data: &[u8]) {
        self.feed_bytes(data);
        let started = match self.state {
            State::Preface(matched) => matched > 0,
            State::Head => !self.head.is_empty(),
            _ => false,
        };
        self.framing.head_started.store(started, Ordering::Relaxed);
    }

    fn feed_bytes(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Off => return,
                State::Preface(matched) => {
                    let n = data.len().min(H2_PREFACE.len() - matched);
                    if data[..n] == H2_PREFACE[matched..matched + n] {
                        self.state = if matched + n == H2_PREFACE.len() {
                            State::Off
                        } else {
                            State::Preface(matched + n)
                        };
                        data = &data[n..];
                    } else {
                        // HTTP/1: the bytes held back so far start the first head.
                        self.state = State::Head;
                        self.feed_bytes(&H2_PREFACE[..matched]);
                    }
                }
                State::Head => {
                    let used = self.head_bytes(data);
                    data = &data[used..];
                }
                State::Length(left) => {
                    let n = left.min(data.len() as u64);
                    data = &data[n as usize..];
                    if n == left {
                        self.next_request();
                    } else {
                        self.state = State::Length(left - n);
                    }
                }
                State::Chunked(chunk) => {
                    let used = self.chunk_bytes(chunk, data);
                    data = &data[used..];
                }
            }
        }
    }

    /// Head bytes: returns how many of `data` belong to the current head
    /// (all of them unless it ends inside `data`).
    fn head_bytes(&mut self, data: &[u8]) -> usize {
        let end = self.scan.find(data);
        let used = end.unwrap_or(data.len());
        if self.head.len() + used > self.limits.max_head_bytes {
            // hyper refuses a head this large (431) before handing it over.
            self.refuse(self.index);
            return data.len();
        }
        if end.is_none() {
            self.head.extend_from_slice(data);
            return used;
        }
        let body = if self.head.is_empty() {
            head_body(&data[..used], self.limits.max_headers)
        } else {
            self.head.extend_from_slice(&data[..used]);
            let body = head_body(&self.head, self.limits.max_headers);
            if self.head.capacity() > KEEP_HEAD_CAPACITY {
                self.head = Vec::new();
            } else {
                self.head.clear();
            }
            body
        };
        match body {
            Body::None | Body::Length(0) => self.next_request(),
            Body::Length(n) => self.state = State::Length(n),
            Body::Chunked => self.state = State::Chunked(Chunk::Start),
            Body::Refuse => self.refuse(self.index),
        }
        used
    }

    /// Chunked body bytes, as hyper's chunked decoder reads them; returns
    /// how many of `data` belong to this body.
    fn chunk_bytes(&mut self, mut chunk: Chunk, data: &[u8]) -> usize {
        let mut i = 0;
        while i < data.len() {
            if let Chunk::Data(left) = chunk {
                let n = left.min((data.len() - i) as u64);
                i += n as usize;
                chunk = if n == left {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left - n)
                };
                continue;
            }
            let b = data[i];
            i += 1;
            chunk = match (chunk, b) {
                (Chunk::Start, b) => match hex(b) {
                    Some(d) => Chunk::Size(d),
                    None => return self.broken_body(data),
                },
                (Chunk::Size(n), b) if hex(b).is_some() => {
                    let d = hex(b).unwrap_or(0);
                    match n.checked_mul(16).and_then(|n| n.checked_add(d)) {
                        Some(n) => Chunk::Size(n),
                        None => return self.broken_body(data),
                    }
                }
                (Chunk::Size(n) | Chunk::SizeLws(n), b'\t' | b' ') => Chunk::SizeLws(n),
                (Chunk::Size(n) | Chunk::SizeLws(n), b';') => Chunk::Extension(n),
                (Chunk::Size(n) | Chunk::SizeLws(n) | Chunk::Extension(n), b'\r') => {
                    Chunk::SizeLf(n)
                }
                (Chunk::Extension(_), b'\n') => return self.broken_body(data),
                (Chunk::Extension(n), _) => Chunk::Extension(n),
                (Chunk::SizeLf(0), b'\n') => Chunk::EndCr,
                (Chunk::SizeLf(n), b'\n') => Chunk::Data(n),
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataLf, b'\n') => Chunk::Start,
                (Chunk::EndCr, b'\r') => Chunk::EndLf,
                (Chunk::EndCr, _) => Chunk::Trailer,
                (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
                (Chunk::Trailer, _) => Chunk::Trailer,
                (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
                (Chunk::EndLf, b'\n') => {
                    self.next_request();
                    return i;
                }
                _ => return self.broken_body(data),
            };
        }
        self.state = State::Chunked(chunk);
        i
    }

    /// hyper fails the body of this request and closes the connection; a
    /// request after it could only come from a disagreement about framing.
    fn broken_body(&mut self, data: &[u8]) -> usize {
        self.refuse(self.index.saturating_add(1));
        data.len()
    }

    fn next_request(&mut self) {
        self.index = self.index.saturating_add(1);
        self.state = State::Head;
    }

    fn refuse(&mut self, index: u64) {
        self.framing.refuse_from(index);
        self.state = State::Off;
        self.head = Vec::new();
    }

    #[cfg(test)]
    fn state(&self) -> State {
        self.state
    }
}

/// Finds the end of a request head across reads: the first empty line
/// after a non-empty one. Empty lines before the request line are skipped,
/// as `httparse` does. A line ends at LF; an empty line is "" or "\r".
#[derive(Debug, Default, Clone, Copy)]
struct HeadEnd {
    /// Bytes of the current line seen so far (before its LF).
    line_len: usize,
    /// The current line's first byte, once `line_len > 0`.
    first: u8,
    /// A non-empty line (the request line) has been seen.
    started: bool,
}

impl HeadEnd {
    /// The offset just past the head's last byte, if it ends in `data`.
    fn find(&mut self, data: &[u8]) -> Option<usize> {
        let mut pos = 0;
        while let Some(off) = data[pos..].iter().position(|&b| b == b'\n') {
            let len = self.line_len.saturating_add(off);
            let first = if self.line_len > 0 {
                self.first
            } else {
                data[pos]
            };
            let empty = len == 0 || (len == 1 && first == b'\r');
            self.line_len = 0;
            pos += off + 1;
            if !empty {
                self.started = true;
            } else if self.started {
                *self = Self::default();
                return Some(pos);
            }
        }
        if pos < data.len() {
            if self.line_len == 0 {
                self.first = data[pos];
            }
            self.line_len = self.line_len.saturating_add(data.len() - pos);
        }
        None
    }
}

/// How a complete head (ending in its empty line) frames its body, with
/// hyper's rules (`proto/h1/role.rs`, `Server::parse`), except that a head
/// hyper settles by dropping a `Content-Length` is refused here.
fn head_body(head: &[u8], max_headers: usize) -> Body {
    let mut slots: SmallVec<[MaybeUninit<httparse::Header<'_>>; 128]> =
        smallvec![MaybeUninit::uninit(); max_headers];
    let mut req = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, head, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        // hyper's parse fails the same way (400/431); anything else means
        // this tracker lost the thread, and the request is not served.
        _ => return Body::Refuse,
    }
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut content_length = false;
    let mut length: Option<u64> = None;
    let mut bad_length = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // As hyper: the last Transfer-Encoding field decides.
            chunked = ends_in_chunked(h.value);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            content_length = true;
            match (digits(h.value), length) {
                (None, _) => bad_length = true,
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n != m => bad_length = true,
                _ => {}
            }
        }
    }
    if transfer_encoding {
        // Both: hyper would take the chunked framing; refused here.
        // Not chunked last, or on HTTP/1.0: hyper refuses it (400).
        if content_length || !chunked || req.version != Some(1) {
            return Body::Refuse;
        }
        return Body::Chunked;
    }
    match length {
        // Differing or invalid lengths: hyper refuses them (400).
        _ if bad_length => Body::Refuse,
        Some(n) => Body::Length(n),
        None => Body::None,
    }
}

/// hyper's `is_chunked_`: the value is visible ASCII and its last
/// comma-separated coding is `chunked`.
fn ends_in_chunked(value: &[u8]) -> bool {
    if !value.iter().all(|&b| (32..127).contains(&b) || b == b'\t') {
        return false;
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

/// hyper's `from_digits`: one or more ASCII digits, nothing else, no overflow.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// A downstream connection's IO with a [`Tracker`] watching what is read.
pub(super) struct FramingIo<I> {
    inner: I,
    tracker: Tracker,
}

impl<I> FramingIo<I> {
    pub(super) fn new(inner: I, tracker: Tracker) -> Self {
        Self { inner, tracker }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for FramingIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.tracker.feed(&buf.filled()[before..]);
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FramingIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;

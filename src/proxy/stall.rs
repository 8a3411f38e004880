//! A request body streamed to the upstream that ends in an error when the
//! client stops sending it (`limits.request_body_timeout_ms`).
//!
//! A streamed body has no size bound, so a deadline for the whole body
//! would cap legitimate large uploads; what is bounded instead is each wait
//! for the client's next bytes (nginx's `client_body_timeout` works the
//! same way). Time the upstream spends not reading (back-pressure) does not
//! count: the wait starts only when the body is polled and has nothing.
//!
//! When the bound passes, the body yields [`BodyStalled`]. hyper's client
//! then stops writing and closes the upstream connection, so the upstream
//! sees a body cut short (fewer bytes than its `Content-Length`, or no
//! final chunk), never a complete one, and the client gets 408
//! (see [`is_stalled`]).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The error a stalled body ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BodyStalled;

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client stopped sending the request body")
    }
}

impl std::error::Error for BodyStalled {}

/// Whether `err`, or any error it was caused by, is [`BodyStalled`]: the
/// upstream request failed because the client's body stalled.
pub(super) fn is_stalled(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    // Bounded: error chains are short; this only guards against a cycle.
    for _ in 0..16 {
        let Some(e) = next else { return false };
        if e.is::<BodyStalled>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// `inner`, failing with [`BodyStalled`] once a wait for its next frame
/// exceeds `limit`.
pub(super) struct StallLimit<B> {
    inner: B,
    limit: Duration,
    /// Armed while the body waits for the client; created on the first
    /// wait only (a body that arrives with its head never needs one).
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl<B> StallLimit<B> {
    pub(super) fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
            waiting: false,
        }
    }
}

impl<B> Body for StallLimit<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<super::BoxError>,
{
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let deadline = Instant::now() + this.limit;
                    match &mut this.timer {
                        Some(t) => t.as_mut().reset(deadline),
                        None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let fired = match &mut this.timer {
                    Some(t) => t.as_mut().poll(cx).is_ready(),
                    None => false,
                };
                if fired {
                    Poll::Ready(Some(Err(Box::new(BodyStalled))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    /// A body fed by a channel: pending while the channel is empty and open.
    struct Channel(mpsc::UnboundedReceiver<Bytes>);

    impl Body for Channel {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    const BOUND: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_body_that_stops_arriving_ends_in_body_stalled() {
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(Bytes::from_static(b"part")).unwrap();
        let body = StallLimit::new(Channel(rx), Duration::from_millis(50));
        let collected = tokio::time::timeout(BOUND, body.collect())
            .await
            .expect("the stall limit fired");
        let err = collected.expect_err("a stalled body is an error");
        assert!(is_stalled(err.as_ref()), "{err}");
        drop(tx);
    }

    #[tokio::test]
    async fn time_the_body_is_not_polled_does_not_count() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut body = StallLimit::new(Channel(rx), Duration::from_millis(20));
        tx.send(Bytes::from_static(b"one")).unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "one");
        // The consumer is busy (say, the upstream is slow to read) for
        // longer than the limit while the client's bytes are already here.
        tx.send(Bytes::from_static(b"two")).unwrap();
        drop(tx);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rest = tokio::time::timeout(BOUND, body.collect())
            .await
            .unwrap()
            .expect("no stall: the body never waited for the client");
        assert_eq!(rest.to_bytes(), "two");
    }

    #[test]
    fn is_stalled_looks_through_the_error_chain() {
        #[derive(Debug)]
        struct Wrapper(Box<dyn std::error::Error + Send + Sync>);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapper")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(self.0.as_ref())
            }
        }
        let nested = Wrapper(Box::new(Wrapper(Box::new(BodyStalled))));
        assert!(is_stalled(&nested));
        let other = Wrapper(Box::new(std::io::Error::other("reset")));
        assert!(!is_stalled(&other));
    }
}

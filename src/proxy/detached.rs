//! A request's work runs in a task of its own, so that the client leaving
//! cannot cancel an exchange under way.
//!
//! hyper drops the future serving a request when its client closes the
//! connection (HTTP/1) or resets the stream (HTTP/2). If that future did the
//! work, a write could reach the upstream and its audit record, whose slot
//! the future held, would never be written. Here the connection's future
//! only waits for the answer on a oneshot channel ([`Waiting`]); the work
//! ([`Reply`] is its end of the channel) runs to completion in a spawned
//! task that holds the request's concurrency permit and is counted in an
//! [`InFlight`] that graceful shutdown waits for, so its record is written
//! before the audit queue drains.
//!
//! The work watches the channel: once the client is gone it notes the
//! [`Stage`](crate::exchange::Stage) the exchange had reached (the record's
//! `client_aborted`), and a request not yet sent upstream is not sent.

use super::ProxyBody;
use super::errors::{Refusal, Stop};
use super::headers;
use crate::exchange::{Exchange, Progress};
use http::HeaderValue;
use http::Response;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Notify, oneshot};

/// The work's end: where the answer goes, and how the work learns that
/// nobody is waiting for it any more. Dropped when the work is done (after
/// its record is queued): until then a request whose client left counts as
/// detached in `work`.
pub(super) struct Reply {
    tx: Option<oneshot::Sender<Response<ProxyBody>>>,
    work: Arc<InFlight>,
    detached: bool,
}

/// The connection's end: the answer, once the work has one.
pub(super) struct Waiting {
    rx: oneshot::Receiver<Response<ProxyBody>>,
    request_id: String,
}

/// A channel for one request's answer; `work` counts the request's work
/// (the caller holds its guard) and its detached state.
pub(super) fn channel(request_id: String, work: &Arc<InFlight>) -> (Reply, Waiting) {
    let (tx, rx) = oneshot::channel();
    let reply = Reply {
        tx: Some(tx),
        work: work.clone(),
        detached: false,
    };
    (reply, Waiting { rx, request_id })
}

impl Reply {
    /// Runs `work`; if the client goes away meanwhile, notes it in
    /// `progress` at once (the work then sends nothing more upstream).
    pub(super) async fn watch<F: Future>(&mut self, progress: &Progress, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            match self.tx.as_mut() {
                Some(tx) if !self.detached => {
                    tokio::select! {
                        biased;
                        _ = tx.closed() => {}
                        out = &mut work => return out,
                    }
                }
                _ => return work.await,
            }
            self.client_left(progress);
        }
    }

    /// Hands the answer to the connection; if the client is gone, notes it
    /// in `progress` (at the stage the exchange finished in).
    /// Gives the client its answer (a response, or the proxy's error for
    /// `stop`, whose refusal the record notes) with the request id, and
    /// notes the status sent.
    pub(super) fn answer(&mut self, answer: Result<Response<ProxyBody>, Stop>, ex: &mut Exchange) {
        let mut resp = match answer {
            Ok(resp) => resp,
            Err(stop) => {
                ex.refusal = Some(stop.refusal.code());
                stop.into_response(&ex.request_id)
            }
        };
        if let Ok(v) = HeaderValue::from_str(&ex.request_id) {
            resp.headers_mut().insert(headers::X_REQUEST_ID, v);
        }
        ex.status = resp.status().as_u16();
        let progress = ex.progress.clone();
        self.deliver(resp, &progress);
    }

    pub(super) fn deliver(&mut self, resp: Response<ProxyBody>, progress: &Progress) {
        if let Some(tx) = self.tx.take()
            && tx.send(resp).is_err()
        {
            self.client_left(progress);
        }
    }

    fn client_left(&mut self, progress: &Progress) {
        progress.client_left();
        if !self.detached {
            self.detached = true;
            self.work.detached.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if self.detached {
            self.work.detached.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Waiting {
    /// The work's answer. Only a panic in the work leaves none: then a 500
    /// (the request's record is lost with the task, and the panic logged).
    pub(super) async fn response(self) -> Response<ProxyBody> {
        match self.rx.await {
            Ok(resp) => resp,
            Err(_) => Stop::from(Refusal::Internal).into_response(&self.request_id),
        }
    }
}

/// A count of things under way and a way to wait until there are none:
/// open connections, and requests' work.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    n: AtomicUsize,
    /// Of those, requests' work whose client has left.
    detached: AtomicUsize,
    none: Notify,
}

impl InFlight {
    /// Counts one more until the guard is dropped.
    pub(super) fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.n.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    pub(super) fn count(&self) -> usize {
        self.n.load(Ordering::SeqCst)
    }

    /// Requests' work still under way after its client left.
    pub(super) fn detached(&self) -> usize {
        self.detached.load(Ordering::SeqCst)
    }

    /// Resolves when the count is zero.
    pub(super) async fn none_left(&self) {
        loop {
            let notified = self.none.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub(super) struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.none.notify_waiters();
        }
    }
}

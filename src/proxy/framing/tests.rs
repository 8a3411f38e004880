use super::*;
use proptest::prelude::*;

fn limits() -> TrackerLimits {
    TrackerLimits {
        max_head_bytes: 16 * 1024,
        max_headers: 100,
    }
}

/// The verdict, the index of the request being read and the state after
/// feeding `parts` one after the other.
fn run(parts: &[&[u8]], limits: TrackerLimits) -> (Option<u64>, u64, State) {
    let framing = Framing::new();
    let mut t = Tracker::new(framing.clone(), limits);
    for p in parts {
        t.feed(p);
    }
    (framing.recorded(), t.index, t.state())
}

/// The outcome of `stream` in one read, checked to be the same for the
/// stream split in two at every byte, and fed one byte at a time.
fn outcome(stream: &[u8]) -> (Option<u64>, u64, State) {
    outcome_with(stream, limits())
}

fn outcome_with(stream: &[u8], limits: TrackerLimits) -> (Option<u64>, u64, State) {
    let whole = run(&[stream], limits);
    for k in 0..=stream.len() {
        let (a, b) = stream.split_at(k);
        assert_eq!(
            run(&[a, b], limits),
            whole,
            "split at {k} of {:?}",
            String::from_utf8_lossy(stream)
        );
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(run(&bytes, limits), whole, "byte by byte");
    whole
}

const GET: &str = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const POST_LEN: &str = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
const POST_CHUNKED: &str = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
    5;name=value;flag\r\nhello\r\nA \t;ext\r\n0123456789\r\n0\r\nX-Trailer: 1\r\nY: b\r\n\r\n";

fn cat(parts: &[&str]) -> Vec<u8> {
    parts.concat().into_bytes()
}

#[test]
fn pipelined_requests_are_followed_through_every_framing() {
    let stream = cat(&[
        GET,
        POST_LEN,
        POST_CHUNKED,
        "\r\n\n",
        "GET /d HTTP/1.1\n\n",
        GET,
    ]);
    assert_eq!(outcome(&stream), (None, 5, State::Head));
}

#[test]
fn a_conflicting_head_is_recorded_at_its_index() {
    let conflict = "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n0\r\n\r\n";
    let stream = cat(&[GET, POST_CHUNKED, conflict, GET]);
    assert_eq!(outcome(&stream), (Some(2), 2, State::Off));
}

#[test]
fn every_spelling_of_both_lengths_is_refused() {
    for fields in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "transfer-encoding: chunked\r\ncontent-length: 0\r\n",
        "TRANSFER-ENCODING: CHUNKED\r\nCONTENT-LENGTH: nonsense\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let stream = format!("POST / HTTP/1.1\r\n{fields}\r\n0\r\n\r\n");
        assert_eq!(outcome(stream.as_bytes()).0, Some(0), "{fields}");
    }
}

#[test]
fn lengths_and_codings_hyper_refuses_are_recorded_too() {
    for fields in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: \r\n",
        "Content-Length: 99999999999999999999999\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked\u{7f}\r\n",
    ] {
        let stream = format!("POST / HTTP/1.1\r\n{fields}\r\nhello");
        assert_eq!(outcome(stream.as_bytes()).0, Some(0), "{fields}");
    }
    let http10 = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(outcome(http10).0, Some(0));
}

#[test]
fn agreeing_lengths_and_a_final_chunked_are_accepted() {
    let same = "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(outcome(same.as_bytes()), (None, 1, State::Head));
    let last =
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(outcome(last.as_bytes()), (None, 1, State::Head));
    let partial = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhello";
    assert_eq!(outcome(partial.as_bytes()), (None, 0, State::Length(5)));
}

#[test]
fn body_bytes_are_never_read_as_heads() {
    let inner = "GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let by_length = format!(
        "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    );
    let by_chunks = format!(
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
        inner.len()
    );
    let stream = cat(&[&by_length, &by_chunks, GET]);
    assert_eq!(outcome(&stream), (None, 3, State::Head));
}

#[test]
fn http2_preface_switches_tracking_off() {
    let mut stream = H2_PREFACE.to_vec();
    stream.extend_from_slice(
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(outcome(&stream), (None, 0, State::Off));
    // A partial preface stays undecided; a mismatch later is HTTP/1.
    assert_eq!(outcome(&H2_PREFACE[..10]), (None, 0, State::Preface(10)));
    let almost =
        b"PRI * HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(outcome(almost).0, Some(0));
}

#[test]
fn chunk_framing_errors_refuse_what_follows() {
    for body in [
        "zz\r\n",
        "5\nhello\r\n",
        "5;ext\nhello\r\n",
        "5 5\r\nhello\r\n",
        "5\r\nhelloX\r\n",
        "0\r\n\rX",
        "0\r\nTrailer: x\rX",
        "10000000000000000\r\n",
    ] {
        let stream = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}{GET}");
        assert_eq!(
            outcome(stream.as_bytes()),
            (Some(1), 0, State::Off),
            "{body:?}"
        );
    }
}

#[test]
fn unparseable_oversized_or_crowded_heads_are_refused() {
    assert_eq!(outcome(b"\x00\x01garbage\r\n\r\n").0, Some(0));
    assert_eq!(
        outcome(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n").0,
        Some(0)
    );
    assert_eq!(outcome(b"GET / HTTP/1.1\r\n folded: x\r\n\r\n").0, Some(0));
    let small = TrackerLimits {
        max_head_bytes: 64,
        max_headers: 3,
    };
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(100));
    assert_eq!(outcome_with(long.as_bytes(), small).0, Some(0));
    let endless = "v".repeat(100);
    assert_eq!(outcome_with(endless.as_bytes(), small).0, Some(0));
    let crowded = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert_eq!(outcome_with(crowded.as_bytes(), small).0, Some(0));
    let fits = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(outcome_with(fits.as_bytes(), small), (None, 1, State::Head));
}

#[test]
fn refuse_next_counts_requests_in_order() {
    let framing = Framing::new();
    let mut t = Tracker::new(framing.clone(), limits());
    let conflict = "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    t.feed(&cat(&[GET, GET, conflict]));
    assert!(!framing.refuse_next());
    assert!(!framing.refuse_next());
    assert!(framing.refuse_next());
    assert!(framing.refuse_next(), "and anything after it");
}

/// Pieces of HTTP/1 traffic, for inputs that reach every state.
const PIECES: &[&str] = &[
    GET,
    POST_LEN,
    POST_CHUNKED,
    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
    "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "3\r\nabc\r\n",
    "3;x=y\r\n",
    "0\r\n\r\n",
    "0\r\nT: v\r\n\r\n",
    "\r\n",
    "\n",
    "abc",
    "ffffffffffffffff\r\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any input: no panic, and the same verdict however it is split.
    #[test]
    fn any_bytes_any_split(
        pieces in prop::collection::vec(prop::sample::select(PIECES), 0..8),
        noise in prop::collection::vec(any::<u8>(), 0..64),
        noise_at in any::<prop::sample::Index>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut stream = pieces.concat().into_bytes();
        let at = noise_at.index(stream.len() + 1);
        stream.splice(at..at, noise);
        let whole = run(&[&stream], limits());
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parts = Vec::new();
        let mut from = 0;
        for c in cuts {
            parts.push(&stream[from..c]);
            from = c;
        }
        parts.push(&stream[from..]);
        prop_assert_eq!(run(&parts, limits()), whole);
    }
}

/// hyper, given the same pipelined stream, hands over exactly as many
/// requests as the tracker counted.
#[tokio::test]
async fn hyper_agrees_on_where_each_request_ends() {
    use http_body_util::BodyExt;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::AsyncWriteExt;

    let inner = "GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let hidden = format!(
        "POST /h HTTP/1.1\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    );
    let stream = cat(&[
        GET,
        POST_LEN,
        POST_CHUNKED,
        "\r\n",
        &hidden,
        "GET /d HTTP/1.1\n\n",
        GET,
    ]);
    let (None, counted, State::Head) = run(&[&stream], limits()) else {
        panic!("the tracker refused a valid stream");
    };

    let (client, server) = tokio::io::duplex(64);
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let count = count.clone();
        async move {
            let _ = req.into_body().collect().await;
            count.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                bytes::Bytes,
            >::new()))
        }
    });
    let conn = tokio::spawn(async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .serve_connection(hyper_util::rt::TokioIo::new(server), svc)
            .await;
    });
    let reader = tokio::spawn(async move {
        let (mut rd, mut wr) = tokio::io::split(client);
        let drain = tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut rd, &mut sink).await;
        });
        wr.write_all(&stream).await.unwrap();
        wr.shutdown().await.unwrap();
        drain.await.unwrap();
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        reader.await.unwrap();
        conn.await.unwrap();
    })
    .await
    .expect("hyper finished the stream");
    assert_eq!(served.load(Ordering::SeqCst) as u64, counted);
}

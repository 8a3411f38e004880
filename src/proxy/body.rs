//! Buffering bodies that must be inspected, always with a limit, and
//! decoding the one content encoding the proxy reads (gzip).

use super::{BoxError, ProxyBody};
use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectError {
    TooLarge,
    Read,
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn collect_limited<B>(body: B, limit: usize) -> Result<Bytes, CollectError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(CollectError::TooLarge),
        Err(_) => Err(CollectError::Read),
    }
}

/// The `Content-Length` a message declares, if any (a body over the limit
/// can be refused before a byte of it is read).
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Content encodings of a response body, as the proxy can handle them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// Anything else: the proxy cannot read it, so it must not pass it on.
    Unsupported,
}

pub fn encoding(headers: &http::HeaderMap) -> Encoding {
    let mut values = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .map(|s| s.split(',').collect::<Vec<_>>())
                .unwrap_or(vec!["\u{0}"])
        })
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty() && s != "identity");
    match (values.next(), values.next()) {
        (None, _) => Encoding::Identity,
        (Some(e), None) if e == "gzip" || e == "x-gzip" => Encoding::Gzip,
        _ => Encoding::Unsupported,
    }
}

/// Decompresses gzip, refusing output over `limit` (a small compressed body
/// can expand enormously).
pub fn gunzip_limited(compressed: &[u8], limit: usize) -> Result<Vec<u8>, CollectError> {
    let mut out = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(compressed);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| CollectError::Read)?;
    if out.len() > limit {
        return Err(CollectError::TooLarge);
    }
    Ok(out)
}

/// A buffered body (a filtered response, a checked request, an error).
pub(super) fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

/// A body passed on as it arrives.
pub(super) fn streamed(body: Incoming) -> ProxyBody {
    body.map_err(|e| Box::new(e) as BoxError).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_roundtrip_and_bomb_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip_limited(&gz, 10_000).unwrap().len(), 10_000);
        assert_eq!(gunzip_limited(&gz, 9_999), Err(CollectError::TooLarge));
        assert_eq!(gunzip_limited(b"not gzip", 100), Err(CollectError::Read));
    }

    #[test]
    fn encodings() {
        let mut h = http::HeaderMap::new();
        assert_eq!(encoding(&h), Encoding::Identity);
        h.insert(http::header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(encoding(&h), Encoding::Gzip);
        h.insert(http::header::CONTENT_ENCODING, "br".parse().unwrap());
        assert_eq!(encoding(&h), Encoding::Unsupported);
        h.insert(http::header::CONTENT_ENCODING, "gzip, br".parse().unwrap());
        assert_eq!(encoding(&h), Encoding::Unsupported);
    }
}

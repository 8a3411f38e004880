//! Detectors of values with letters: e-mail addresses, IBANs and IPv6
//! addresses.

use super::{Detector, Match, is_word};
use std::net::Ipv6Addr;

fn local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// Every `local@domain.tld` around each `@` of `b`.
pub(super) fn find_emails(b: &[u8], found: &mut impl FnMut(Match)) {
    let mut resume = 0;
    for at in 0..b.len() {
        if b[at] != b'@' || at < resume {
            continue;
        }
        let mut start = at;
        while start > resume && local_char(b[start - 1]) {
            start -= 1;
        }
        // The local part neither starts nor ends with a dot.
        while start < at && b[start] == b'.' {
            start += 1;
        }
        let mut end = at + 1;
        while end < b.len() && domain_char(b[end]) {
            end += 1;
        }
        // A sentence's full stop or dash after the address is not part of it.
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if is_email(&b[start..end]) {
            found(Match {
                detector: Detector::Email,
                start,
                end,
            });
            resume = end;
        }
    }
}

/// `local@label.label…tld`: a non-empty local part (no leading, trailing
/// or doubled dot), at least two domain labels of letters, digits and
/// inner hyphens, and a top-level domain of two or more letters.
pub fn is_email(s: &[u8]) -> bool {
    let Some(at) = s.iter().position(|&c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&s[..at], &s[at + 1..]);
    if local.is_empty()
        || local.len() > 64
        || !local.iter().all(|&c| local_char(c))
        || local.starts_with(b".")
        || local.ends_with(b".")
        || local.windows(2).any(|w| w == b"..")
    {
        return false;
    }
    let labels: smallvec::SmallVec<[&[u8]; 4]> = domain.split(|&c| c == b'.').collect();
    if labels.len() < 2 || domain.len() > 253 {
        return false;
    }
    let label_ok = |l: &&[u8]| {
        !l.is_empty()
            && l.len() <= 63
            && l.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
            && !l.starts_with(b"-")
            && !l.ends_with(b"-")
    };
    let tld = labels[labels.len() - 1];
    labels.iter().all(label_ok) && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic)
}

/// IBANs, compact (`GB82WEST12345698765432`) or in groups of four
/// (`DE89 3704 0044 0532 0130 00`).
pub(super) fn find_ibans(b: &[u8], found: &mut impl FnMut(Match)) {
    let mut i = 0;
    while i + 4 <= b.len() {
        let head = b[i].is_ascii_uppercase()
            && b[i + 1].is_ascii_uppercase()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && (i == 0 || !is_word(b[i - 1]));
        if !head {
            i += 1;
            continue;
        }
        let mut compact = [0u8; 34];
        let mut len = 0;
        let mut j = i;
        let mut end = i;
        while j < b.len() && len < compact.len() {
            let c = b[j];
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                compact[len] = c;
                len += 1;
                j += 1;
                end = j;
            } else if c == b' '
                && len % 4 == 0
                && b.get(j + 1).is_some_and(|c| c.is_ascii_alphanumeric())
            {
                j += 1;
            } else {
                break;
            }
        }
        let glued = b.get(end).is_some_and(|&c| is_word(c));
        if !glued && is_iban(&compact[..len]) {
            found(Match {
                detector: Detector::Iban,
                start: i,
                end,
            });
            i = end;
        } else {
            i += 1;
        }
    }
}

/// Country code, check digits and 11 to 30 characters of account (15 to
/// 34 in all, upper case), with `MOD 97 == 1` over the rearranged number.
pub fn is_iban(s: &[u8]) -> bool {
    if !(15..=34).contains(&s.len())
        || !s[..2].iter().all(u8::is_ascii_uppercase)
        || !s[2..4].iter().all(u8::is_ascii_digit)
        || !s[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in s[4..].iter().chain(&s[..4]) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(c - b'A') + 10) % 97;
        }
    }
    rem == 1
}

fn ipv6_char(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

/// IPv6 addresses: runs of hex digits, colons (two at least) and dots
/// that parse as one.
pub(super) fn find_ipv6(b: &[u8], found: &mut impl FnMut(Match)) {
    let mut i = 0;
    while i < b.len() {
        if !ipv6_char(b[i]) || (i > 0 && is_word(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ipv6_char(b[i]) {
            i += 1;
        }
        let mut end = i;
        while end > start && b[end - 1] == b'.' {
            end -= 1;
        }
        let glued = b.get(i).is_some_and(|&c| is_word(c));
        if !glued && is_ipv6(&b[start..end]) {
            found(Match {
                detector: Detector::Ipv6,
                start,
                end,
            });
        }
    }
}

/// Text that parses as an IPv6 address and has two colons at least.
pub fn is_ipv6(s: &[u8]) -> bool {
    s.iter().filter(|&&c| c == b':').count() >= 2
        && s.iter().any(u8::is_ascii_hexdigit)
        && std::str::from_utf8(s).is_ok_and(|t| t.parse::<Ipv6Addr>().is_ok())
}

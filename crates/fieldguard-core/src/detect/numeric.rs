//! Detectors of numbers written with digits and separators: Chinese
//! resident IDs and mobile numbers, payment cards, IPv4 addresses and
//! dates of birth. A body's number-like runs (`+86 139 0013 1001`,
//! `4111-1111-1111-1111`, `10.0.0.1`, `1990-01-31`) are cut into groups
//! of digits, and every run of consecutive groups with one separator is
//! tried against each format, longest first, so a number next to another
//! (`1990-01-31 13900131001`) is still found.

use super::{Detector, DetectorSet, Match, is_word};

/// Groups a run holds at most (more are examined in windows of this many).
const MAX_GROUPS: usize = 8;

#[derive(Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    /// The separator before this group (`0` for the first).
    sep: u8,
}

/// Finds the numeric formats in `b`.
pub(super) fn find_numbers(b: &[u8], enabled: DetectorSet, found: &mut impl FnMut(Match)) {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let starts = (c.is_ascii_digit()
            || (c == b'+' && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
            && (i == 0 || !(is_word(b[i - 1]) || b[i - 1] == b'.' || b[i - 1] == b'-'));
        if !starts {
            i += 1;
            continue;
        }
        i = run(b, i, enabled, found);
    }
}

/// Examines the run of digit groups starting at `start`; returns where
/// scanning resumes.
fn run(b: &[u8], start: usize, enabled: DetectorSet, found: &mut impl FnMut(Match)) -> usize {
    let plus = b[start] == b'+';
    let mut i = start + usize::from(plus);
    let mut groups = [Group::default(); MAX_GROUPS];
    let mut n = 0;
    let mut sep = 0u8;
    loop {
        let g_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        // A resident ID's check character may be `X`.
        if i - g_start == 17 && matches!(b.get(i), Some(b'X' | b'x')) {
            i += 1;
        }
        groups[n] = Group {
            start: g_start,
            end: i,
            sep,
        };
        n += 1;
        let next_sep = b.get(i).copied();
        let continues = matches!(next_sep, Some(b' ' | b'-' | b'/' | b'.'))
            && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if !continues || n == MAX_GROUPS {
            break;
        }
        sep = next_sep.unwrap_or(0);
        i += 1;
    }
    let end = i;
    // A run glued to a word (`1001abc`) or more structure (`1.2.3.4.5`) on
    // its right is not a value of its own.
    let glued = b.get(end).is_some_and(|&c| is_word(c))
        || (b.get(end).is_some_and(|&c| c == b'.' || c == b':')
            && b.get(end + 1).is_some_and(u8::is_ascii_digit));
    let mut s = 0;
    while s < n {
        let mut matched = None;
        for e in (s..n).rev() {
            if e == n - 1 && glued {
                continue;
            }
            if groups[s + 1..=e]
                .iter()
                .any(|g| g.sep != groups[(s + 1).min(e)].sep)
            {
                continue;
            }
            let with_plus = s == 0 && plus;
            let whole = s == 0 && e == n - 1;
            if let Some(d) = classify(b, &groups[s..=e], with_plus, whole, enabled) {
                let from = if with_plus { start } else { groups[s].start };
                found(Match {
                    detector: d,
                    start: from,
                    end: groups[e].end,
                });
                matched = Some(e);
                break;
            }
        }
        s = matched.map_or(s + 1, |e| e + 1);
    }
    // A run that ended at the group limit resumes after its last group.
    end.max(start + 1)
}

/// Which format (if any) these consecutive groups form.
/// `whole`: the groups are the whole run (a dotted address or a date is
/// only one when nothing of the same structure continues it).
fn classify(
    b: &[u8],
    groups: &[Group],
    plus: bool,
    whole: bool,
    enabled: DetectorSet,
) -> Option<Detector> {
    let sep = groups.get(1).map_or(0, |g| g.sep);
    let span = &b[groups[0].start..groups[groups.len() - 1].end];
    let mut digits = [0u8; 24];
    let mut len = 0;
    for g in groups {
        for &c in &b[g.start..g.end] {
            if len == digits.len() {
                return None;
            }
            digits[len] = c;
            len += 1;
        }
    }
    let digits = &digits[..len];
    let sizes = || groups.iter().map(|g| g.end - g.start);
    if sep == b'.' && !whole {
        return None;
    }
    if sep == b'.' && groups.len() == 4 && !plus {
        return (enabled.contains(Detector::Ipv4) && is_ipv4(span)).then_some(Detector::Ipv4);
    }
    if matches!(sep, b'-' | b'/' | b'.') && sizes().eq([4, 2, 2]) && !plus {
        return (enabled.contains(Detector::DateOfBirth) && is_date_of_birth(span))
            .then_some(Detector::DateOfBirth);
    }
    if !matches!(sep, 0 | b' ' | b'-') {
        return None;
    }
    if enabled.contains(Detector::CnMobile) && mobile(digits, groups, plus) {
        return Some(Detector::CnMobile);
    }
    if plus {
        return None;
    }
    if enabled.contains(Detector::CnResidentId)
        && (groups.len() == 1 || sizes().eq([6, 8, 4]))
        && is_cn_resident_id(digits)
    {
        return Some(Detector::CnResidentId);
    }
    if enabled.contains(Detector::PaymentCard)
        && (groups.len() == 1 || sizes().all(|s| (3..=6).contains(&s)))
        && is_payment_card(digits)
    {
        return Some(Detector::PaymentCard);
    }
    None
}

/// A mobile number as written: 11 digits alone (`13900131001`, `139 0013
/// 1001`), or after the country code (`+86 139…`, `86-139…`).
fn mobile(digits: &[u8], groups: &[Group], plus: bool) -> bool {
    let national = match digits.len() {
        11 if !plus => digits,
        13 if digits.starts_with(b"86") => &digits[2..],
        _ => return false,
    };
    // Grouped numbers are 3-4-4 after the country code, if any.
    let sizes: smallvec::SmallVec<[usize; 4]> = groups.iter().map(|g| g.end - g.start).collect();
    let grouping_ok = match sizes.as_slice() {
        [_] => true,
        [3, 4, 4] => digits.len() == 11,
        [2, 3, 4, 4] | [2, 11] => digits.len() == 13,
        _ => false,
    };
    grouping_ok && is_cn_mobile(national)
}

/// `1[3-9]` and 9 more digits.
pub fn is_cn_mobile(digits: &[u8]) -> bool {
    digits.len() == 11
        && digits.iter().all(u8::is_ascii_digit)
        && digits[0] == b'1'
        && (b'3'..=b'9').contains(&digits[1])
}

/// Province-level codes that begin a resident ID (GB/T 2260).
const PROVINCES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// ISO 7064 MOD 11-2 weights of the 17 digits (2^(17-i) mod 11).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// An 18-character Chinese resident ID: a province code, a birth date,
/// a sequence number and the MOD 11-2 check character.
pub fn is_cn_resident_id(s: &[u8]) -> bool {
    if s.len() != 18 || !s[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let province = (s[0] - b'0') * 10 + (s[1] - b'0');
    if !PROVINCES.contains(&province) {
        return false;
    }
    let year = number(&s[6..10]);
    if !(1900..=2099).contains(&year) || !valid_date(year, number(&s[10..12]), number(&s[12..14])) {
        return false;
    }
    let sum: u32 = s[..17]
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(&c, w)| u32::from(c - b'0') * w)
        .sum();
    s[17].to_ascii_uppercase() == ID_CHECK[(sum % 11) as usize]
}

/// 13 to 19 digits with a valid Luhn check digit and a known issuer
/// prefix (Visa, Mastercard, American Express, UnionPay, Discover, JCB,
/// Diners Club, Maestro).
pub fn is_payment_card(d: &[u8]) -> bool {
    if !(13..=19).contains(&d.len()) || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let p = |n: usize| number(&d[..n]);
    let len = d.len();
    let issuer = match d[0] {
        b'4' => matches!(len, 13 | 16 | 19),
        b'5' => ((51..=55).contains(&p(2)) && len == 16) || matches!(p(2), 50 | 56..=58),
        b'2' => (2221..=2720).contains(&p(4)) && len == 16,
        b'3' => {
            (matches!(p(2), 34 | 37) && len == 15)
                || ((3528..=3589).contains(&p(4)) && len >= 16)
                || ((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39)) && len >= 14
        }
        b'6' => len >= 16 || matches!(p(2), 62 | 67),
        _ => false,
    };
    issuer && luhn(d)
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &c)| {
            let v = u32::from(c - b'0');
            if i % 2 == 1 {
                let x = v * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A dotted quad, each part 0 to 255 without leading zeros.
fn is_ipv4(s: &[u8]) -> bool {
    let mut parts = 0;
    for part in s.split(|&c| c == b'.') {
        parts += 1;
        if part.is_empty()
            || part.len() > 3
            || (part.len() > 1 && part[0] == b'0')
            || number(part) > 255
        {
            return false;
        }
    }
    parts == 4
}

/// `YYYY-MM-DD` (or with `/` or `.`): a real date, year 1900 to 2015.
pub fn is_date_of_birth(s: &[u8]) -> bool {
    if s.len() != 10 {
        return false;
    }
    let sep = s[4];
    if !matches!(sep, b'-' | b'/' | b'.') || s[7] != sep {
        return false;
    }
    let (y, m, d) = (&s[..4], &s[5..7], &s[8..10]);
    if ![y, m, d].iter().all(|p| p.iter().all(u8::is_ascii_digit)) {
        return false;
    }
    let year = number(y);
    (1900..=2015).contains(&year) && valid_date(year, number(m), number(d))
}

fn valid_date(year: u32, month: u32, day: u32) -> bool {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// The value of ASCII digits (callers pass at most 4).
fn number(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0u32, |n, &c| n * 10 + u32::from(c.wrapping_sub(b'0') % 10))
}

//! Detectors of numbers written with digits and separators: Chinese
//! resident IDs and mobile numbers, payment cards, IPv4 addresses and
//! dates of birth, and the same kinds in JSON numbers. A text's
//! number-like runs (`+86 139 0013 1001`, `4111-1111-1111-1111`,
//! `10.0.0.1`, `1990-01-31`, `110101 19900101 001X`) are cut into groups of
//! digits, and every run of consecutive groups is tried against each
//! format, longest first, so a number next to another (`1990-01-31
//! 13900131001`) is still found. The text is folded first (see
//! [`super::fold`]): only ASCII digits and separators are seen here.

use super::{Detector, DetectorSet, Match, is_word};

/// Groups a run holds at most (more are examined in windows of this many).
const MAX_GROUPS: usize = 8;

#[derive(Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    /// The separator before this group (`0` for the first): `' '`, `'-'`,
    /// `'.'` or `'/'` (a separator of several characters, such as ` - `,
    /// is named by the one that is not a space).
    sep: u8,
    /// The separator before this group was one character.
    sep_single: bool,
    /// The group ends with a check character `X` or `x` (the last
    /// character of a resident ID).
    check_x: bool,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// True when a value starting at `i` would continue what precedes it: a
/// word (`o-10011`, `YT4120…`), or a word and one `.` or `-` (`v1.2`,
/// `2025-05`). A sign or a dot after a space (`tel -139…`) does not join.
fn joined(b: &[u8], i: usize) -> bool {
    let Some(&prev) = i.checked_sub(1).and_then(|p| b.get(p)) else {
        return false;
    };
    is_word(prev) || (matches!(prev, b'.' | b'-') && i >= 2 && is_word(b[i - 2]))
}

/// Finds the numeric formats in `b`.
pub(super) fn find_numbers(b: &[u8], enabled: DetectorSet, found: &mut impl FnMut(Match)) {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let starts = (c.is_ascii_digit()
            || (c == b'+' && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
            && !joined(b, i);
        if !starts {
            i += 1;
            continue;
        }
        i = run(b, i, enabled, found);
    }
}

/// The separator at `i` between two groups of a run: `/` alone, or one to
/// three of space, `-` and `.` with at most one that is not a space
/// (`-`, ` `, `.`, ` - `, `  `); it must be followed by a digit, or by a
/// check character `X` standing alone (`110105 19491231 002 X`). Returns
/// its name (see [`Group::sep`]) and length.
fn separator(b: &[u8], i: usize) -> Option<(u8, usize)> {
    let group_follows = |at: usize| {
        b.get(at).is_some_and(u8::is_ascii_digit)
            || (matches!(b.get(at), Some(b'X' | b'x'))
                && !b.get(at + 1).is_some_and(|&c| is_word(c)))
    };
    if b.get(i) == Some(&b'/') {
        return b
            .get(i + 1)
            .is_some_and(u8::is_ascii_digit)
            .then_some((b'/', 1));
    }
    let mut name = b' ';
    let mut len = 0;
    while len < 3 {
        match b.get(i + len) {
            Some(b' ') => {}
            Some(&c @ (b'-' | b'.')) if name == b' ' => name = c,
            _ => break,
        }
        len += 1;
    }
    (len > 0 && group_follows(i + len)).then_some((name, len))
}

/// Examines the run of digit groups starting at `start`; returns where
/// scanning resumes.
fn run(b: &[u8], start: usize, enabled: DetectorSet, found: &mut impl FnMut(Match)) -> usize {
    let plus = b[start] == b'+';
    let mut i = start + usize::from(plus);
    let mut groups = [Group::default(); MAX_GROUPS];
    let mut n = 0;
    let (mut sep, mut sep_single) = (0u8, true);
    loop {
        let g_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        // A resident ID's check character may be `X` (either case), at
        // the end of whichever group holds it.
        let check_x =
            matches!(b.get(i), Some(b'X' | b'x')) && !b.get(i + 1).is_some_and(|&c| is_word(c));
        if check_x {
            i += 1;
        }
        groups[n] = Group {
            start: g_start,
            end: i,
            sep,
            sep_single,
            check_x,
        };
        n += 1;
        let Some((next, len)) = separator(b, i) else {
            break;
        };
        if n == MAX_GROUPS {
            break;
        }
        (sep, sep_single) = (next, len == 1);
        i += len;
    }
    let end = i;
    // A number in exponent notation inside a text (`call 1.3900131001e10`)
    // is read as the JSON number it is.
    if !plus && let Some((from, to)) = exponent_token(b, start, end) {
        let kinds = number_kinds(&b[from..to], enabled);
        if !kinds.is_empty() {
            for detector in kinds.iter() {
                found(Match {
                    detector,
                    start: from,
                    end: to,
                });
            }
            return to;
        }
    }
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
            let with_plus = s == 0 && plus;
            // No dot continues the window on either side.
            let closed =
                (s == 0 || groups[s].sep != b'.') && (e + 1 == n || groups[e + 1].sep != b'.');
            if let Some(d) = classify(b, &groups[s..=e], with_plus, closed, enabled) {
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

/// Which format (if any) these consecutive groups form. `closed`: no `.`
/// continues them (a dotted address, date or number is only one when
/// nothing of the same structure continues it).
fn classify(
    b: &[u8],
    groups: &[Group],
    plus: bool,
    closed: bool,
    enabled: DetectorSet,
) -> Option<Detector> {
    let last = groups.len() - 1;
    let inner = &groups[1..];
    let sep = inner.first().map_or(0, |g| g.sep);
    let uniform = inner.iter().all(|g| g.sep == sep && g.sep_single);
    if inner.iter().any(|g| g.sep == b'.') && !closed {
        return None;
    }
    // The check character ends the value.
    let check_x = groups[last].check_x;
    if groups[..last].iter().any(|g| g.check_x) {
        return None;
    }
    let span = &b[groups[0].start..groups[last].end];
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
    let sizes = || groups.iter().map(Group::len);
    if !check_x && !plus && uniform {
        if sep == b'.' && groups.len() == 4 && enabled.contains(Detector::Ipv4) && is_ipv4(span) {
            return Some(Detector::Ipv4);
        }
        if matches!(sep, b'-' | b'/' | b'.') && sizes().eq([4, 2, 2]) {
            return (enabled.contains(Detector::DateOfBirth) && is_date_of_birth(span))
                .then_some(Detector::DateOfBirth);
        }
    }
    // Identifiers and numbers are grouped by spaces, dashes and dots, in
    // any mix (`139.0013-1001`); a slash separates dates only.
    if inner.iter().any(|g| g.sep == b'/') {
        return None;
    }
    if !check_x && enabled.contains(Detector::CnMobile) && mobile(digits, groups, plus) {
        return Some(Detector::CnMobile);
    }
    if plus {
        return None;
    }
    if enabled.contains(Detector::CnResidentId) && id_grouping(groups) && is_cn_resident_id(digits)
    {
        return Some(Detector::CnResidentId);
    }
    if !check_x
        && enabled.contains(Detector::PaymentCard)
        && (groups.len() == 1 || sizes().all(|s| (3..=6).contains(&s)))
        && is_payment_card(digits)
    {
        return Some(Detector::PaymentCard);
    }
    None
}

/// A resident ID is written in one piece or in groups: 6-8-4 (area,
/// birth date, sequence and check character), 6-4-4-4, 3-3-8-4, 6-8-3-1 and
/// any other cut into at most six groups of two characters or more (the
/// last may be the check character alone). The check character, province
/// code and birth date keep a grouping found by chance rare.
fn id_grouping(groups: &[Group]) -> bool {
    groups.len() == 1
        || (groups.len() <= 6 && groups[..groups.len() - 1].iter().all(|g| g.len() >= 2))
}

/// A mobile number as written: 11 digits alone (`13900131001`) or grouped
/// 3-4-4, 3-8 or 7-4 (`139 0013 1001`, `139-00131001`), optionally after
/// the country code `86` or `0086`, apart or joined to the first group
/// (`+86 139…`, `86-139…`, `+86139 0013 1001`, `+8613900131001`, `0086
/// 139…`); a number after `+` must have the country code.
fn mobile(digits: &[u8], groups: &[Group], plus: bool) -> bool {
    if !matches!(digits.len(), 11 | 13 | 15) {
        return false;
    }
    let sizes: smallvec::SmallVec<[usize; 5]> = groups.iter().map(Group::len).collect();
    let national_grouping = |s: &[usize]| matches!(s, [11] | [3, 4, 4] | [3, 8] | [7, 4]);
    let code = if digits.starts_with(b"0086") {
        4
    } else if digits.starts_with(b"86") {
        2
    } else {
        0
    };
    if code == 0 {
        return !plus && national_grouping(&sizes) && is_cn_mobile(digits);
    }
    let grouping_ok = match sizes.as_slice() {
        [first, rest @ ..] if *first == code => national_grouping(rest),
        [first, rest @ ..] if *first > code => {
            let mut national = smallvec::SmallVec::<[usize; 5]>::new();
            national.push(first - code);
            national.extend_from_slice(rest);
            national_grouping(&national)
        }
        _ => false,
    };
    grouping_ok && is_cn_mobile(&digits[code..])
}

/// The kinds of numeric personal data a JSON number holds, whatever its
/// notation (`raw` is the number as written: sign, fraction, exponent).
/// A JSON number is its value: when the value is an integer (`13900131001`,
/// `-13900131001`, `1.3900131001e10`, `13900131001.0`, `1390013100.1e1`),
/// its digits (computed exactly from the decimal text, not through a
/// float) are tried against resident IDs, mobile numbers and payment
/// cards; so is the integer part of a value with a fraction
/// (`13900131001.5`). The significant digits of a value with a fraction
/// (`0.110101199001010015`, `1101011990.01010015`) are tried against
/// resident IDs only: their check character, province and birth date
/// keep chance matches out, where the digits of an ordinary measurement
/// (`13.123456789`, a coordinate) would often pass a mobile number's
/// format or a card's Luhn check.
pub(super) fn number_kinds(raw: &[u8], enabled: DetectorSet) -> DetectorSet {
    let mut found = DetectorSet::EMPTY;
    let Some((int, frac, exp)) = parse_number(raw) else {
        return found;
    };
    // The digits d1 d2 … with the decimal point after `point` of them.
    let all = || int.iter().chain(frac).copied();
    let leading = all().take_while(|&c| c == b'0').count();
    let total = int.len() + frac.len();
    if leading == total {
        return found;
    }
    let trailing = all().rev().take_while(|&c| c == b'0').count();
    let sig_len = total - leading - trailing;
    let point = int.len() as i64 + exp - leading as i64;
    let significant = || all().skip(leading).take(sig_len);
    let mut try_kinds = |candidate: &[u8], kinds: &[Detector]| {
        for &d in kinds {
            if !enabled.contains(d) || found.contains(d) {
                continue;
            }
            let ok = match d {
                Detector::CnResidentId => is_cn_resident_id(candidate),
                Detector::CnMobile => {
                    is_cn_mobile(candidate)
                        || (candidate.len() == 13
                            && candidate.starts_with(b"86")
                            && is_cn_mobile(&candidate[2..]))
                }
                Detector::PaymentCard => is_payment_card(candidate),
                _ => false,
            };
            if ok {
                found.insert(d);
            }
        }
    };
    const NUMERIC: [Detector; 3] = [
        Detector::CnResidentId,
        Detector::CnMobile,
        Detector::PaymentCard,
    ];
    // The integer part of the value (the value itself when it is an
    // integer), at most 24 digits.
    if (1..=24).contains(&point) {
        let point = point as usize;
        let mut buf = [b'0'; 24];
        for (slot, c) in buf.iter_mut().zip(significant().take(point)) {
            *slot = c;
        }
        try_kinds(&buf[..point], &NUMERIC);
    }
    // The significant digits of a value with a fraction.
    let integer = point >= sig_len as i64;
    if !integer && sig_len <= 24 {
        let mut buf = [0u8; 24];
        for (slot, c) in buf.iter_mut().zip(significant()) {
            *slot = c;
        }
        try_kinds(&buf[..sig_len], &[Detector::CnResidentId]);
    }
    found
}

/// A JSON number's integer digits, fraction digits and exponent (leading
/// zeros of the integer part allowed; the exponent saturates far beyond
/// any length that matters).
fn parse_number(raw: &[u8]) -> Option<(&[u8], &[u8], i64)> {
    let digits_at = |from: usize| {
        raw.get(from..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
    };
    let mut i = usize::from(raw.first() == Some(&b'-'));
    let n = digits_at(i);
    if n == 0 {
        return None;
    }
    let int = &raw[i..i + n];
    i += n;
    let mut frac: &[u8] = &[];
    if raw.get(i) == Some(&b'.') {
        let n = digits_at(i + 1);
        if n == 0 {
            return None;
        }
        frac = &raw[i + 1..i + 1 + n];
        i += 1 + n;
    }
    let mut exp = 0i64;
    if matches!(raw.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative = match raw.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let n = digits_at(i);
        if n == 0 {
            return None;
        }
        for &c in &raw[i..i + n] {
            exp = (exp * 10 + i64::from(c - b'0')).min(1 << 40);
        }
        if negative {
            exp = -exp;
        }
        i += n;
    }
    (i == raw.len()).then_some((int, frac, exp))
}

/// The JSON number in exponent notation made of the run `start..end` and
/// the exponent after it (with the sign before the run, if any), when it
/// is one and no word continues it.
fn exponent_token(b: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    if !matches!(b.get(end), Some(b'e' | b'E')) {
        return None;
    }
    let mut to = end + 1;
    if matches!(b.get(to), Some(b'+' | b'-')) {
        to += 1;
    }
    let digits = b
        .get(to..)?
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let after = to + digits;
    let glued = b.get(after).is_some_and(|&c| is_word(c))
        || (b.get(after) == Some(&b'.') && b.get(after + 1).is_some_and(u8::is_ascii_digit));
    if digits == 0 || glued {
        return None;
    }
    to += digits;
    let from = if start > 0 && b[start - 1] == b'-' {
        start - 1
    } else {
        start
    };
    parse_number(&b[from..to]).map(|_| (from, to))
}

/// The extent of `b` (spaces around it aside) when all of it is one JSON
/// number written with a sign, a fraction or an exponent (`-13900131001`,
/// `1.3900131001e10`): such a text is read as the number it is.
pub(super) fn number_text(b: &[u8]) -> Option<(usize, usize)> {
    let start = b.iter().position(|&c| c != b' ')?;
    let end = b.len() - b.iter().rev().position(|&c| c != b' ')?;
    // Prose is turned away by its first or last character.
    if !(b[start] == b'-' || b[start].is_ascii_digit()) || !b[end - 1].is_ascii_digit() {
        return None;
    }
    let t = &b[start..end];
    let notation = t.first() == Some(&b'-') || t.iter().any(|&c| matches!(c, b'.' | b'e' | b'E'));
    (notation && parse_number(t).is_some()).then_some((start, end))
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

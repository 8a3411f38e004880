//! Personal data recognised by its content, not by its field name: what an
//! operator onboarding an undocumented API needs to know about the values
//! the catalogue does not describe yet, and what the optional per-route
//! backstop masks in uncatalogued and free-text values. Both use these
//! detectors, through [`find`]/[`detect`]/[`mask`] for text and
//! [`detect_number`]/[`mask_number`] for JSON numbers.
//!
//! Each detector is a plain function over bytes (no regex engine): a value
//! is scanned once per family of patterns, and a string without a digit,
//! `@` or `:` is rejected after one pass over its bytes, which is most
//! strings of a typical body. Checksums keep the false positives down
//! where the format has one: the ISO 7064 MOD 11-2 check character of a
//! Chinese resident ID, the Luhn digit of a payment card, the MOD 97-10
//! check of an IBAN.
//!
//! The written forms each kind is known in:
//! - any script's digits and the full-width forms, folded first (see
//!   [`fold`](self::fold): `１３９…`, `١٣٩…`, `１３９－００１３`, a check
//!   character `Ｘ`), with invisible characters (zero-width space, soft
//!   hyphen…) ignored;
//! - groups separated by spaces, dashes or dots, mixed or not (`139 0013
//!   1001`, `139.0013.1001`, `139-0013.1001`, `110101 19900101 001x`),
//!   including the Unicode spaces, dashes and dots that fold to them and
//!   separators of up to three characters (` - `);
//! - a resident ID's check character `X` in either case, in one piece or
//!   in any grouping (6-8-4, 6-4-4-4, 3-3-8-4…);
//! - a mobile number alone, 3-4-4, 3-8 or 7-4, after `+86`, `86` or `0086`;
//! - a JSON number in any notation (sign, fraction, exponent), read by
//!   its exact value ([`detect_number`]), a string that is one, and a
//!   number in exponent notation inside text (`call 1.3900131001e10`);
//! - text anywhere the redactors scan it: string values, numbers, and the
//!   keys of the objects they walk (the redactors' part).
//!
//! Matches are reported as byte ranges of the original text, on character
//! boundaries, so a caller masks the characters that were written.

mod fold;
mod numeric;
mod text;

#[cfg(test)]
pub(crate) mod proptests;

pub use fold::digit_value;
pub use numeric::{is_cn_mobile, is_cn_resident_id, is_date_of_birth, is_payment_card};
pub use text::{is_email, is_iban, is_ipv6};

use serde::Deserialize;

/// One kind of personal data a detector recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Chinese resident identity card number (GB 11643): 17 digits and
    /// an ISO 7064 MOD 11-2 check character (a digit or `X`).
    CnResidentId,
    /// Chinese mobile number: `1[3-9]` and 9 digits, optionally `+86`.
    CnMobile,
    Email,
    /// Payment card number: 13 to 19 digits, a known issuer prefix and a
    /// valid Luhn check digit.
    PaymentCard,
    /// International bank account number with a valid MOD 97-10 check.
    Iban,
    Ipv4,
    Ipv6,
    /// A calendar date without a time (`1990-01-31`, `1990/01/31`) whose
    /// year (1900 to 2015) makes it a plausible birth date rather than an
    /// event: a timestamp or a recent date is not flagged.
    DateOfBirth,
}

impl Detector {
    pub const ALL: [Detector; 8] = [
        Detector::CnResidentId,
        Detector::CnMobile,
        Detector::Email,
        Detector::PaymentCard,
        Detector::Iban,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::DateOfBirth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Detector::CnResidentId => "cn_resident_id",
            Detector::CnMobile => "cn_mobile",
            Detector::Email => "email",
            Detector::PaymentCard => "payment_card",
            Detector::Iban => "iban",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::DateOfBirth => "date_of_birth",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of detectors (a bit set: copied, compared and hashed for free).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DetectorSet(u16);

impl DetectorSet {
    pub const EMPTY: DetectorSet = DetectorSet(0);

    pub fn all() -> Self {
        Detector::ALL.into_iter().collect()
    }

    pub fn contains(self, d: Detector) -> bool {
        self.0 & d.bit() != 0
    }

    pub fn insert(&mut self, d: Detector) {
        self.0 |= d.bit();
    }

    pub fn union(self, other: DetectorSet) -> DetectorSet {
        DetectorSet(self.0 | other.0)
    }

    /// The detectors of `self` not in `other`.
    pub fn without(self, other: DetectorSet) -> DetectorSet {
        DetectorSet(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Detector> {
        Detector::ALL.into_iter().filter(move |d| self.contains(*d))
    }
}

impl FromIterator<Detector> for DetectorSet {
    fn from_iter<I: IntoIterator<Item = Detector>>(iter: I) -> Self {
        let mut set = DetectorSet::EMPTY;
        for d in iter {
            set.insert(d);
        }
        set
    }
}

/// One recognised value: which detector, and where in the text (byte
/// offsets of the original text, on character boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub detector: Detector,
    pub start: usize,
    pub end: usize,
}

/// Calls `found` for every match of an `enabled` detector in `text`.
/// Matches of different detectors may overlap (an IPv4 address inside an
/// IPv6 one); one detector's matches do not.
pub fn find(text: &str, enabled: DetectorSet, found: &mut impl FnMut(Match)) {
    if enabled.is_empty() {
        return;
    }
    match fold::prepare(text) {
        fold::Prepared::Nothing => {}
        fold::Prepared::AsIs => scan(text.as_bytes(), enabled, found),
        fold::Prepared::Folded(folded) => scan(&folded.bytes, enabled, &mut |m: Match| {
            let (start, end) = folded.original(m.start, m.end);
            found(Match { start, end, ..m });
        }),
    }
}

/// [`find`] over text already folded (or needing no folding).
fn scan(b: &[u8], mut enabled: DetectorSet, found: &mut impl FnMut(Match)) {
    if !b.iter().any(|&c| c.is_ascii_digit() || c == b'@') {
        return;
    }
    if enabled.contains(Detector::Email) && b.contains(&b'@') {
        text::find_emails(b, found);
    }
    if !b.iter().any(u8::is_ascii_digit) {
        return;
    }
    // A text that is one JSON number in another notation is read as one.
    if let Some((start, end)) = numeric::number_text(b) {
        let kinds = numeric::number_kinds(&b[start..end], enabled);
        for detector in kinds.iter() {
            found(Match {
                detector,
                start,
                end,
            });
        }
        enabled = enabled.without(kinds);
    }
    numeric::find_numbers(b, enabled, found);
    if enabled.contains(Detector::Iban) {
        text::find_ibans(b, found);
    }
    if enabled.contains(Detector::Ipv6) && b.iter().filter(|&&c| c == b':').nth(1).is_some() {
        text::find_ipv6(b, found);
    }
}

/// The detectors matching a JSON number written as `raw` (any notation:
/// sign, fraction, exponent; see [`numeric::number_kinds`]). Not a number:
/// none.
pub fn detect_number(raw: &str, enabled: DetectorSet) -> DetectorSet {
    numeric::number_kinds(raw.as_bytes(), enabled)
}

/// A JSON number written as `raw` masked when an `enabled` detector
/// matches it: a string of `*`, one per character of `raw`, each matching
/// detector counted once into `counts`; `None` when none matched.
pub fn mask_number(raw: &str, enabled: DetectorSet, counts: &mut DetectorCounts) -> Option<String> {
    let kinds = detect_number(raw, enabled);
    if kinds.is_empty() {
        return None;
    }
    for d in kinds.iter() {
        counts.add(d, 1);
    }
    Some("*".repeat(raw.chars().count()))
}

/// The detectors that match somewhere in `text`.
pub fn detect(text: &str, enabled: DetectorSet) -> DetectorSet {
    let mut set = DetectorSet::EMPTY;
    find(text, enabled, &mut |m| set.insert(m.detector));
    set
}

/// Counts of backstop matches by detector (a fixed array: no allocation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectorCounts([u32; Detector::ALL.len()]);

impl DetectorCounts {
    pub fn add(&mut self, d: Detector, n: u32) {
        let slot = &mut self.0[d as usize];
        *slot = slot.saturating_add(n);
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&n| n == 0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|&n| u64::from(n)).sum()
    }

    /// The detectors with a count, in [`Detector::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Detector, u32)> + '_ {
        Detector::ALL
            .into_iter()
            .map(|d| (d, self.0[d as usize]))
            .filter(|(_, n)| *n > 0)
    }
}

/// `text` with every match of an `enabled` detector replaced by `*`, one
/// per character, and the matches counted into `counts`; `None` (and
/// nothing counted) when nothing matched.
pub fn mask(text: &str, enabled: DetectorSet, counts: &mut DetectorCounts) -> Option<String> {
    let mut ranges: smallvec::SmallVec<[(usize, usize); 4]> = smallvec::SmallVec::new();
    find(text, enabled, &mut |m| {
        counts.add(m.detector, 1);
        ranges.push((m.start, m.end));
    });
    if ranges.is_empty() {
        return None;
    }
    ranges.sort_unstable();
    // Matches lie on character boundaries: each character of a match is
    // one `*`, and the rest is copied as it was.
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in ranges {
        let start = start.max(copied);
        if end <= start {
            continue;
        }
        out.push_str(text.get(copied..start).unwrap_or_default());
        let hidden = text.get(start..end).map_or(0, |s| s.chars().count());
        out.extend(std::iter::repeat_n('*', hidden));
        copied = end;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    Some(out)
}

/// True for bytes that continue a word: a match may not start or end
/// inside one (`o-10011` is no phone number, `YT4120…` no card).
#[inline]
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<&'static str> {
        detect(s, DetectorSet::all())
            .iter()
            .map(Detector::as_str)
            .collect()
    }

    #[test]
    fn the_demo_shops_values_are_recognised() {
        assert_eq!(kinds("110101199001010015"), ["cn_resident_id"]);
        assert_eq!(kinds("110101199001010011"), Vec::<&str>::new());
        assert_eq!(kinds("11010119900101001X"), Vec::<&str>::new());
        assert_eq!(kinds("+86 139 0013 1001"), ["cn_mobile"]);
        assert_eq!(kinds("13900131001"), ["cn_mobile"]);
        assert_eq!(kinds("139-0013-1001"), ["cn_mobile"]);
        assert_eq!(kinds("wang.lei1001@mail.example.org"), ["email"]);
        assert_eq!(kinds("4111 1111 1111 1111"), ["payment_card"]);
        assert_eq!(kinds("6222021234567890128"), ["payment_card"]);
        assert_eq!(kinds("DE89 3704 0044 0532 0130 00"), ["iban"]);
        assert_eq!(kinds("GB82WEST12345698765432"), ["iban"]);
        assert_eq!(kinds("10.20.30.40"), ["ipv4"]);
        assert_eq!(kinds("2001:db8::8a2e:370:7334"), ["ipv6"]);
        assert_eq!(kinds("1965-03-14"), ["date_of_birth"]);
        assert_eq!(kinds("1965/03/14"), ["date_of_birth"]);
    }

    #[test]
    fn ordinary_values_are_not() {
        for s in [
            "c-1001",
            "o-10011",
            "YT412082895047",
            "2025-05-26T09:24:39Z",
            "2025-07-01",
            "1965-02-30",
            "09:24:39",
            "00:1a:2b:3c:4d:5e",
            "Wang Lei",
            "delivered",
            "4111 1111 1111 1112",
            "12345",
            "1.2.3",
            "256.1.1.1",
            "a@b",
            "@home",
            "v1.2.3.4a",
            "DE89 3704 0044 0532 0130 01",
        ] {
            assert_eq!(kinds(s), Vec::<&str>::new(), "{s}");
        }
    }

    #[test]
    fn values_inside_free_text_are_found_and_masked() {
        let text = "客户说身份证110101199001010015,电话13900131001 or mail li.na@example.org; card 4111-1111-1111-1111.";
        let mut counts = DetectorCounts::default();
        let masked = mask(text, DetectorSet::all(), &mut counts).unwrap();
        assert_eq!(
            masked,
            "客户说身份证******************,电话*********** or mail *****************; card *******************."
        );
        let got: Vec<_> = counts.iter().map(|(d, n)| (d.as_str(), n)).collect();
        assert_eq!(
            got,
            [
                ("cn_resident_id", 1),
                ("cn_mobile", 1),
                ("email", 1),
                ("payment_card", 1)
            ]
        );
        // Only the enabled detectors mask.
        let mut counts = DetectorCounts::default();
        let only_email: DetectorSet = [Detector::Email].into_iter().collect();
        let masked = mask(text, only_email, &mut counts).unwrap();
        assert!(masked.contains("110101199001010015") && !masked.contains("li.na"));
        assert_eq!(counts.total(), 1);
        assert_eq!(mask("nothing here", DetectorSet::all(), &mut counts), None);
    }

    #[test]
    fn every_written_form_of_a_kind_is_recognised() {
        // 11010519491231002X: a valid ID whose check character is X.
        for s in [
            "11010519491231002X",
            "11010519491231002x",
            "110105 19491231 002X",
            "110105-19491231-002x",
            "110105.19491231.002X",
            "110105 1949 1231 002x",
            "110 105 19491231 002X",
            "110105-19491231 002X",
            "110105 - 19491231 - 002X",
            "１１０１０５１９４９１２３１００２Ｘ",
            "１１０１０５ １９４９１２３１ ００２ｘ",
            "110105\u{3000}19491231\u{3000}002X",
            "身份证:110105—19491231—002X。",
        ] {
            assert_eq!(kinds(s), ["cn_resident_id"], "{s}");
        }
        for s in [
            "139.0013.1001",
            "+86.139.0013.1001",
            "+86 139.0013.1001",
            "139-0013.1001",
            "139 - 0013 - 1001",
            "139·0013·1001",
            "139\u{2013}0013\u{2013}1001",
            "１３９００１３１００１",
            "١٣٩٠٠١٣١٠٠١",
            "१३९००१३१००१",
            "１３９－００１３－１００１",
            "＋８６ １３９ ００１３ １００１",
            "139\u{200B}0013\u{200B}1001",
            "0086 139 0013 1001",
            "-13900131001",
            "1.3900131001e10",
            "13900131001.0",
        ] {
            assert_eq!(kinds(s), ["cn_mobile"], "{s}");
        }
        for s in [
            "4111.1111.1111.1111",
            "４１１１ １１１１ １１１１ １１１１",
            "4.111111111111111E15",
        ] {
            assert_eq!(kinds(s), ["payment_card"], "{s}");
        }
        assert_eq!(
            kinds("ｗａｎｇ．ｌｅｉ＠ｍａｉｌ．ｅｘａｍｐｌｅ．ｏｒｇ"),
            ["email"]
        );
        assert_eq!(kinds("１９６５－０３－１４"), ["date_of_birth"]);
        assert_eq!(kinds("10.0.0.1 80"), ["ipv4"]);
        // A number in exponent notation inside a sentence.
        for s in [
            "call 1.3900131001e10 now",
            "电话-1.3900131001E+10。",
            "x 139001310010e-1",
        ] {
            assert_eq!(kinds(s), ["cn_mobile"], "{s}");
        }
        assert_eq!(kinds("ID 1.10101199001010015e17."), ["cn_resident_id"]);
        let mut counts = DetectorCounts::default();
        assert_eq!(
            mask("call 1.3900131001e10 now", DetectorSet::all(), &mut counts).as_deref(),
            Some("call *************** now")
        );
        assert_eq!(
            kinds("1.5e3 units, 2e10, 1.3900131001e10x"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn written_forms_do_not_make_ordinary_values_match() {
        for s in [
            "110105 19491231 002Y",
            "110105 19491231 003X",
            "11010519491231002Xa",
            "139.0013.1001.5",
            "v139.0013.1001",
            "o-13900131001",
            "13.123456789",
            "0.6234567890123457",
            "1.5",
            "-1",
            "1e400",
            "１２３",
            "12.34.56",
        ] {
            assert_eq!(kinds(s), Vec::<&str>::new(), "{s}");
        }
    }

    #[test]
    fn json_numbers_are_read_by_their_value() {
        let all = DetectorSet::all();
        let names = |raw: &str| -> Vec<&'static str> {
            detect_number(raw, all)
                .iter()
                .map(Detector::as_str)
                .collect()
        };
        for raw in [
            "13900131001",
            "-13900131001",
            "1.3900131001e10",
            "1.3900131001E+10",
            "13900131001.0",
            "13900131001.000",
            "1390013100.1e1",
            "139001310010e-1",
            "0.13900131001e11",
            "13900131001.5",
            "8613900131001",
        ] {
            assert_eq!(names(raw), ["cn_mobile"], "{raw}");
        }
        for raw in [
            "110101199001010015",
            "-110101199001010015",
            "1.10101199001010015e17",
            "110101199001010015e0",
            "0.110101199001010015",
            "1101011990.01010015",
        ] {
            assert_eq!(names(raw), ["cn_resident_id"], "{raw}");
        }
        assert_eq!(names("4.111111111111111e15"), ["payment_card"]);
        for raw in [
            "0",
            "-0.0",
            "1e99999999999",
            "1.5",
            "13.123456789",
            "139001310010",
            "x",
            "1.",
            "--1",
        ] {
            assert_eq!(names(raw), Vec::<&str>::new(), "{raw}");
        }
        let mut counts = DetectorCounts::default();
        assert_eq!(
            mask_number("-1.3900131001e10", all, &mut counts).as_deref(),
            Some("****************")
        );
        assert_eq!(counts.total(), 1);
        assert_eq!(mask_number("12.5", all, &mut counts), None);
    }

    #[test]
    fn masking_hides_the_original_characters() {
        let mut counts = DetectorCounts::default();
        let text = "电话：１３９·００１３·１００１，谢谢";
        assert_eq!(
            mask(text, DetectorSet::all(), &mut counts).as_deref(),
            Some("电话：*************，谢谢")
        );
        let text = "id 110105\u{200B}19491231002x!";
        assert_eq!(
            mask(text, DetectorSet::all(), &mut counts).as_deref(),
            Some("id *******************!")
        );
    }

    #[test]
    fn detector_names_round_trip() {
        for d in Detector::ALL {
            assert_eq!(Detector::from_name(d.as_str()), Some(d));
        }
        assert_eq!(Detector::from_name("ssn"), None);
    }
}

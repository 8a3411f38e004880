//! Property tests of the detectors: values built to be valid are found
//! (alone and inside free text), and a one-character change to a value
//! with a checksum is refused.

use super::*;
use proptest::prelude::*;

const PROVINCES: [&str; 6] = ["11", "31", "44", "51", "62", "82"];

fn id_check(first17: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17
        .bytes()
        .zip(W)
        .map(|(c, w)| u32::from(c - b'0') * w)
        .sum();
    b"10X98765432"[(sum % 11) as usize] as char
}

fn resident_id() -> impl Strategy<Value = String> {
    (
        prop::sample::select(PROVINCES.to_vec()),
        0u32..10_000,
        1900u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..1000,
    )
        .prop_map(|(p, area, y, m, d, seq)| {
            let first = format!("{p}{area:04}{y:04}{m:02}{d:02}{seq:03}");
            format!("{first}{}", id_check(&first))
        })
}

fn luhn_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let v = u32::from(c - b'0');
            if i % 2 == 0 {
                let x = v * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                v
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

fn card() -> impl Strategy<Value = String> {
    let issuers = vec![
        ("4", 16),
        ("4", 13),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("2720", 16),
        ("34", 15),
        ("37", 15),
        ("62", 16),
        ("62", 19),
        ("6011", 16),
        ("3530", 16),
        ("36", 14),
    ];
    (
        prop::sample::select(issuers),
        prop::collection::vec(0u8..10, 18),
    )
        .prop_map(|((prefix, len), digits)| {
            let mut body = prefix.to_string();
            for d in digits.iter().take(len - 1 - prefix.len()) {
                body.push(char::from(b'0' + d));
            }
            let check = luhn_digit(&body);
            body.push(check);
            body
        })
}

fn iban() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["DE", "GB", "FR", "NL", "CN"]),
        "[0-9A-Z]{11,30}",
    )
        .prop_map(|(country, bban)| {
            let mut rem = 0u32;
            for c in bban.bytes().chain(country.bytes()).chain(*b"00") {
                rem = if c.is_ascii_digit() {
                    (rem * 10 + u32::from(c - b'0')) % 97
                } else {
                    (rem * 100 + u32::from(c - b'A') + 10) % 97
                };
            }
            format!("{country}{:02}{bban}", 98 - rem)
        })
}

/// `s` with the character at `at` (a digit) replaced by another digit.
fn change_digit(s: &str, at: usize, by: u8) -> Option<String> {
    let mut b = s.as_bytes().to_vec();
    let c = *b.get(at)?;
    if !c.is_ascii_digit() {
        return None;
    }
    let new = b'0' + ((c - b'0' + 1 + by % 9) % 10);
    b[at] = new;
    String::from_utf8(b).ok()
}

fn found_in(text: &str, d: Detector) -> bool {
    detect(text, DetectorSet::all()).contains(d)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_resident_ids_are_found_and_one_digit_changes_refused(id in resident_id(), at in 0usize..18, by in 0u8..9) {
        prop_assert!(is_cn_resident_id(id.as_bytes()), "{}", id);
        prop_assert!(found_in(&id, Detector::CnResidentId));
        let text = format!("身份证号:{id},请核实");
        prop_assert!(found_in(&text, Detector::CnResidentId), "{}", text);
        if let Some(changed) = change_digit(&id, at, by) {
            prop_assert!(!is_cn_resident_id(changed.as_bytes()), "{} -> {}", id, changed);
        }
    }

    #[test]
    fn valid_cards_are_found_and_one_digit_changes_refused(n in card(), at in 0usize..19, by in 0u8..9, spaced in any::<bool>()) {
        prop_assert!(is_payment_card(n.as_bytes()), "{}", n);
        let written = if spaced && n.len() == 16 {
            n.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" ")
        } else {
            n.clone()
        };
        let text = format!("paid with {written}.");
        prop_assert!(found_in(&text, Detector::PaymentCard), "{}", text);
        if let Some(changed) = change_digit(&n, at, by) {
            prop_assert!(!is_payment_card(changed.as_bytes()), "{} -> {}", n, changed);
        }
    }

    #[test]
    fn valid_ibans_are_found_and_one_digit_changes_refused(i in iban(), at in 2usize..34, by in 0u8..9) {
        prop_assert!(is_iban(i.as_bytes()), "{}", i);
        let grouped = i.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" ");
        prop_assert!(found_in(&format!("IBAN {grouped} (main)"), Detector::Iban), "{}", grouped);
        if let Some(changed) = change_digit(&i, at, by) {
            prop_assert!(!is_iban(changed.as_bytes()), "{} -> {}", i, changed);
        }
    }

    #[test]
    fn mobile_numbers_are_found_as_written(second in 3u8..=9, rest in "[0-9]{9}", style in 0usize..4, bad in 0u8..3) {
        let n = format!("1{second}{rest}");
        prop_assert!(is_cn_mobile(n.as_bytes()));
        let written = match style {
            0 => n.clone(),
            1 => format!("+86 {} {} {}", &n[..3], &n[3..7], &n[7..]),
            2 => format!("{}-{}-{}", &n[..3], &n[3..7], &n[7..]),
            _ => format!("+86{n}"),
        };
        prop_assert!(found_in(&format!("电话 {written}"), Detector::CnMobile), "{}", written);
        let wrong = format!("1{bad}{rest}");
        prop_assert!(!is_cn_mobile(wrong.as_bytes()));
        let longer = format!("{n}7");
        prop_assert!(!found_in(&longer, Detector::CnMobile));
    }

    #[test]
    fn emails_are_found_inside_text(local in "[a-z0-9]{1,10}(\\.[a-z0-9_+]{1,5})?", domain in "[a-z0-9]{1,10}(-[a-z0-9]{1,4})?", tld in "[a-z]{2,6}") {
        let e = format!("{local}@{domain}.{tld}");
        prop_assert!(is_email(e.as_bytes()), "{}", e);
        let text = format!("write to <{e}>, or {e}.");
        let mut got = Vec::new();
        find(&text, DetectorSet::all(), &mut |m| if m.detector == Detector::Email { got.push(text[m.start..m.end].to_string()) });
        prop_assert_eq!(got, vec![e.clone(), e.clone()]);
        prop_assert!(!is_email(e.replace('@', "").as_bytes()));
    }

    #[test]
    fn ip_addresses_are_found(v4 in any::<[u8; 4]>(), v6 in any::<[u16; 8]>()) {
        let a = std::net::Ipv4Addr::from(v4).to_string();
        prop_assert!(found_in(&format!("from {a}, port 80"), Detector::Ipv4), "{}", a);
        let b = std::net::Ipv6Addr::from(v6).to_string();
        if b.bytes().any(|c| c.is_ascii_hexdigit()) {
            prop_assert!(found_in(&format!("from [{b}] ok"), Detector::Ipv6), "{}", b);
        }
    }

    #[test]
    fn dates_of_birth_are_real_dates_of_the_past(y in 1900u32..=2015, m in 1u32..=12, d in 1u32..=28, sep in prop::sample::select(vec!['-', '/', '.'])) {
        let s = format!("{y:04}{sep}{m:02}{sep}{d:02}");
        prop_assert!(is_date_of_birth(s.as_bytes()));
        let text = format!("born {s}");
        prop_assert!(found_in(&text, Detector::DateOfBirth));
        let impossible = format!("{y:04}{sep}02{sep}30");
        prop_assert!(!is_date_of_birth(impossible.as_bytes()));
        let timestamp = format!("{y:04}-{m:02}-{d:02}T10:00:00Z");
        prop_assert!(!found_in(&timestamp, Detector::DateOfBirth));
    }

    #[test]
    fn masking_keeps_everything_but_the_matches(text in "\\PC{0,60}") {
        let mut counts = DetectorCounts::default();
        match mask(&text, DetectorSet::all(), &mut counts) {
            None => prop_assert!(counts.is_empty()),
            Some(m) => {
                prop_assert_eq!(m.chars().count(), text.chars().count());
                prop_assert!(!counts.is_empty());
                prop_assert!(detect(&m, DetectorSet::all()).is_empty(), "{} -> {}", text, m);
            }
        }
    }
}

/// Zeros of digit scripts a value may be written in (ASCII, full-width,
/// Arabic-Indic, extended Arabic-Indic, Devanagari, Bengali, Thai,
/// mathematical bold, Kirat Rai: a Unicode 16 script).
const ZEROS: [u32; 9] = [
    0x30, 0xFF10, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0x1D7CE, 0x16D70,
];

/// Separators between groups: ASCII, their Unicode equivalents, longer.
const SEPARATORS: [&str; 14] = [
    " ", "-", ".", "\u{3000}", "\u{00A0}", "\u{2013}", "\u{2014}", "\u{2010}", "\u{FF0D}",
    "\u{00B7}", "\u{FF0E}", " - ", "  ", "\u{200B}",
];

/// How a value is written: its groups' sizes, a separator per gap (or one
/// for all), a digit script per digit (or one for all), the case and
/// width of a check character `X`.
#[derive(Debug, Clone)]
struct Form {
    seps: Vec<&'static str>,
    mixed_seps: bool,
    scripts: Vec<u32>,
    mixed_scripts: bool,
    x: &'static str,
}

fn form() -> impl Strategy<Value = Form> {
    (
        prop::collection::vec(prop::sample::select(SEPARATORS.to_vec()), 8),
        any::<bool>(),
        prop::collection::vec(prop::sample::select(ZEROS.to_vec()), 24),
        prop::bool::weighted(0.2),
        prop::sample::select(vec!["X", "x", "\u{FF38}", "\u{FF58}"]),
    )
        .prop_map(|(seps, mixed_seps, scripts, mixed_scripts, x)| Form {
            seps,
            mixed_seps,
            scripts,
            mixed_scripts,
            x,
        })
}

/// `value` (ASCII digits, perhaps a final `X`) cut into groups of `sizes`
/// and written in `f`.
fn render(value: &str, sizes: &[usize], f: &Form) -> String {
    let mut out = String::new();
    let mut at = 0;
    let mut digit = 0;
    for (g, &size) in sizes.iter().enumerate() {
        if g > 0 {
            out.push_str(if f.mixed_seps {
                f.seps[g % f.seps.len()]
            } else {
                f.seps[0]
            });
        }
        for c in value[at..at + size].chars() {
            if c == 'X' {
                out.push_str(f.x);
                continue;
            }
            let zero = if f.mixed_scripts {
                f.scripts[digit % f.scripts.len()]
            } else {
                f.scripts[0]
            };
            digit += 1;
            let d = c.to_digit(10).unwrap_or(0);
            out.push(char::from_u32(zero + d).unwrap_or(c));
        }
        at += size;
    }
    out
}

/// A resident ID whose check character is `X`.
fn resident_id_with_x() -> impl Strategy<Value = String> {
    (resident_id(), 0u32..1000).prop_filter_map("no X found", |(id, bump)| {
        // Walk sequence numbers from this one until the check is X.
        let first = &id[..14];
        (0..1000).map(|i| (bump + i) % 1000).find_map(|seq| {
            let body = format!("{first}{seq:03}");
            (id_check(&body) == 'X').then(|| format!("{body}X"))
        })
    })
}

/// The JSON notations of the integer `digits`: sign, fraction, exponent.
fn notations(digits: &str, shift: usize, zeros: usize, upper: bool, negative: bool) -> Vec<String> {
    let n = digits.len();
    let k = shift % (n - 1) + 1;
    let e = if upper { "E" } else { "e" };
    let sign = if negative { "-" } else { "" };
    let pad = "0".repeat(zeros);
    vec![
        format!("{sign}{digits}"),
        format!("{sign}{digits}.0{pad}"),
        // d.ddd e(n-1), dd.dd e(n-k): the point moved, the exponent says
        // where it belongs.
        format!("{sign}{}.{}{pad}{e}{}", &digits[..1], &digits[1..], n - 1),
        format!("{sign}{}.{}{pad}{e}+{}", &digits[..k], &digits[k..], n - k),
        format!("{sign}{digits}{pad}{e}-{zeros}"),
        format!("{sign}0.{digits}{e}{n}"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn resident_ids_are_found_in_every_written_form(
        id in prop_oneof![resident_id(), resident_id_with_x()],
        grouping in prop::sample::select(vec![
            vec![18], vec![6, 8, 4], vec![6, 4, 4, 4], vec![3, 3, 8, 4], vec![6, 8, 3, 1], vec![2, 4, 8, 4], vec![6, 12],
        ]),
        f in form(),
        context in prop::sample::select(vec!["{}", "身份证号：{}。", "ID {}, ok", "证件({})"]),
    ) {
        let written = render(&id, &grouping, &f);
        let text = context.replace("{}", &written);
        let mut got = Vec::new();
        find(&text, DetectorSet::all(), &mut |m| if m.detector == Detector::CnResidentId { got.push(&text[m.start..m.end]) });
        prop_assert_eq!(got, vec![written.as_str()], "{}", text);
        // Masked, nothing of it is left to find, and only it changed.
        let mut counts = DetectorCounts::default();
        let masked = mask(&text, DetectorSet::all(), &mut counts).unwrap_or_default();
        prop_assert_eq!(masked.chars().count(), text.chars().count());
        prop_assert!(!detect(&masked, DetectorSet::all()).contains(Detector::CnResidentId), "{}", masked);
        // The same value with its check character wrong is not one.
        let last = id.chars().last().unwrap_or('0');
        let wrong = if last == 'X' { format!("{}0", &id[..17]) } else { format!("{}X", &id[..17]) };
        let wrong_text = context.replace("{}", &render(&wrong, &grouping, &f));
        prop_assert!(!found_in(&wrong_text, Detector::CnResidentId), "{}", wrong_text);
    }

    #[test]
    fn mobile_numbers_are_found_in_every_written_form(
        second in 3u8..=9,
        rest in "[0-9]{9}",
        grouping in prop::sample::select(vec![vec![11], vec![3, 4, 4], vec![3, 8], vec![7, 4]]),
        code in prop::sample::select(vec!["", "+86 ", "+86", "86 ", "0086 ", "+86-", "+86.", "\u{FF0B}86 "]),
        f in form(),
        context in prop::sample::select(vec!["{}", "电话:{}。", "call {} now", "（{}）"]),
    ) {
        let n = format!("1{second}{rest}");
        let f = Form { seps: f.seps.iter().map(|s| if *s == "\u{200B}" { " " } else { s }).collect(), ..f };
        let written = format!("{code}{}", render(&n, &grouping, &f));
        let text = context.replace("{}", &written);
        prop_assert!(found_in(&text, Detector::CnMobile), "{}", text);
        let mut counts = DetectorCounts::default();
        let masked = mask(&text, DetectorSet::all(), &mut counts).unwrap_or_default();
        prop_assert!(!masked.contains(&render(&n[7..], &[4], &f)), "{} -> {}", text, masked);
        // A twelfth digit makes it no mobile number.
        let longer = context.replace("{}", &render(&format!("{n}7"), &[12], &f));
        prop_assert!(!found_in(&longer, Detector::CnMobile), "{}", longer);
    }

    #[test]
    fn cards_are_found_in_every_written_form(n in card(), f in form(), fours in any::<bool>()) {
        let sizes: Vec<usize> = if fours {
            let mut s = vec![4; n.len() / 4];
            if n.len() % 4 > 0 {
                s.push(n.len() % 4);
            }
            // A short last group joins the one before (3 to 6 digits).
            if s.len() > 1 && s[s.len() - 1] < 3 {
                let tail = s.pop().unwrap_or(0);
                if let Some(l) = s.last_mut() { *l += tail; }
            }
            s
        } else {
            vec![n.len()]
        };
        let f = Form { seps: f.seps.iter().map(|s| if *s == "\u{200B}" { " " } else { s }).collect(), ..f };
        let text = format!("paid with {}.", render(&n, &sizes, &f));
        prop_assert!(found_in(&text, Detector::PaymentCard), "{}", text);
    }

    #[test]
    fn numbers_are_found_in_every_json_notation(
        value in prop_oneof![
            resident_id().prop_filter("digits only", |id| !id.ends_with('X')),
            card(),
            (3u8..=9, "[0-9]{9}").prop_map(|(s, r)| format!("1{s}{r}")),
        ],
        shift in 0usize..20,
        zeros in 0usize..3,
        upper in any::<bool>(),
        negative in any::<bool>(),
    ) {
        let want = detect(&value, DetectorSet::all());
        prop_assert!(!want.is_empty(), "{}", value);
        for raw in notations(&value, shift, zeros, upper, negative) {
            let got = detect_number(&raw, DetectorSet::all());
            prop_assert!(want.iter().all(|d| got.contains(d)), "{} as {}: {:?}", value, raw, got);
            // A string holding the number is read as the number, and so is
            // the number inside a sentence.
            prop_assert!(want.iter().all(|d| detect(&raw, DetectorSet::all()).contains(d)), "{:?}", raw);
            let sentence = format!("value {raw}, noted");
            prop_assert!(want.iter().all(|d| detect(&sentence, DetectorSet::all()).contains(d)), "{:?}", sentence);
            let mut counts = DetectorCounts::default();
            prop_assert_eq!(mask_number(&raw, DetectorSet::all(), &mut counts).map(|m| m.len()), Some(raw.len()));
        }
    }

    #[test]
    fn arbitrary_text_never_panics_and_masking_keeps_its_length(
        text in prop_oneof![
            any::<String>(),
            "[0-9０-９٠-٩ xX.\\-+eE@a-z\u{3000}\u{200B}\u{00B7}]{0,40}",
        ],
    ) {
        let _ = detect(&text, DetectorSet::all());
        let _ = detect_number(&text, DetectorSet::all());
        let mut counts = DetectorCounts::default();
        if let Some(m) = mask(&text, DetectorSet::all(), &mut counts) {
            prop_assert_eq!(m.chars().count(), text.chars().count());
        }
        find(&text, DetectorSet::all(), &mut |m| {
            assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end) && m.start < m.end);
        });
    }
}

/// Personal data the detectors know, written in any of the forms above
/// (for the redactors' tests: values, and keys).
pub(crate) fn written_personal_data() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop_oneof![resident_id(), resident_id_with_x()],
            prop::sample::select(vec![vec![18], vec![6, 8, 4], vec![6, 4, 4, 4]]),
            form(),
        )
            .prop_map(|(id, g, f)| render(&id, &g, &f)),
        (
            3u8..=9,
            "[0-9]{9}",
            prop::sample::select(vec![vec![11], vec![3, 4, 4]]),
            form(),
        )
            .prop_map(|(second, rest, g, f)| render(&format!("1{second}{rest}"), &g, &f)),
        "[a-z]{1,6}(\\.[a-z]{1,4})?@mail\\.example\\.org",
    ]
}

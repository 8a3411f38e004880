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

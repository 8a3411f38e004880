//! Normalisation before matching: the written forms of digits, letters
//! and separators that a reader takes for the ASCII ones are folded to
//! them, so one set of byte-level detectors sees `１３９ ００１３ １００１`,
//! `١٣٩٠٠١٣١٠٠١` and `139‐0013‐1001` as it sees `139 0013 1001`.
//!
//! What folds (one ASCII byte per character of the text):
//! - every decimal digit of Unicode (general category `Nd`, any script:
//!   full-width, Arabic-Indic, Devanagari, Bengali, Thai, mathematical
//!   bold…) and the single-digit forms of `Numeric_Type=Digit`
//!   (superscripts, subscripts, circled and parenthesised digits) to its
//!   value `0`–`9`;
//! - the full-width forms of ASCII (`U+FF01`–`U+FF5E`) that a detector
//!   reads: letters such as the check character `Ｘ`/`ｘ`, `＠`, `．`, `＋`,
//!   `－`, `／`, `％`, `＿`, the full-width space; the rest (`，`, `：`, `；`,
//!   `（`…, everyday punctuation of Chinese text) stays a character no
//!   detector reads, as it was;
//! - the separators: space separators (no-break space, the `U+2000` spaces,
//!   narrow no-break space, ideographic space `U+3000`) to a space; hyphens
//!   and dashes (`‐ ‑ ‒ – — ―`, minus sign, small hyphen-minus) to `-`; dots
//!   (middle dot `·`, katakana middle dot `・`, hyphenation point, one dot
//!   leader, bullet operator, dot operator, small full stop) to `.`;
//!   fraction and division slashes to `/`; small `+` and `@`. The
//!   ideographic full stop `。` ends a sentence and is not a dot here;
//! - default-ignorable characters (zero-width space and joiners, soft
//!   hyphen, bidirectional controls, word joiner, variation selectors,
//!   byte order mark, tags) are dropped: they are invisible, so `139⁠0013`
//!   reads as `1390013`.
//!
//! Every other character stays what it was for the detectors: a
//! character that neither continues a word nor separates groups (as any
//! non-ASCII byte always was). Matches found in the folded copy are mapped
//! back to byte ranges of the original text, so the original characters
//! are the ones masked.

/// The first code point of each run of ten decimal digits (general
/// category `Nd`, `Numeric_Type=Decimal`), sorted. Unicode assigns
/// decimal digits only in contiguous runs of ten, zero to nine (a
/// stability policy), so the run's zero identifies every digit in it.
/// Complete for Unicode 17.0 (the 66 runs of Unicode 14, Kawi and Nag
/// Mundari in 15.0, Garay, Myanmar Pao, Myanmar Eastern Pwo Karen,
/// Sunuwar, Gurung Khema, Kirat Rai, the outlined digits and Ol Onal in
/// 16.0, Tolong Siki in 17.0); a unit test checks it against the
/// standard library's own Unicode tables.
pub(super) const DECIMAL_ZEROS: [u32; 77] = [
    0x0030, 0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
    0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
    0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
    0xFF10, 0x104A0, 0x10D30, 0x10D40, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450,
    0x114D0, 0x11650, 0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0, 0x11C50,
    0x11D50, 0x11DA0, 0x11DE0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50, 0x16D70, 0x1CCF0,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E5F1, 0x1E950,
    0x1FBF0,
];

/// Runs of single-digit characters of `Numeric_Type=Digit` (not decimal
/// digits, but a digit each): first code point, its value, run length.
const DIGIT_FORMS: [(u32, u8, u8); 21] = [
    (0x00B2, 2, 2),   // superscript two, three
    (0x00B9, 1, 1),   // superscript one
    (0x1369, 1, 9),   // Ethiopic digits one to nine
    (0x19DA, 1, 1),   // New Tai Lue Tham digit one
    (0x2070, 0, 1),   // superscript zero
    (0x2074, 4, 6),   // superscripts four to nine
    (0x2080, 0, 10),  // subscripts zero to nine
    (0x2460, 1, 9),   // circled digits one to nine
    (0x2474, 1, 9),   // parenthesised digits
    (0x2488, 1, 9),   // digits with full stop
    (0x24EA, 0, 1),   // circled digit zero
    (0x24F5, 1, 9),   // double circled digits
    (0x24FF, 0, 1),   // negative circled digit zero
    (0x2776, 1, 9),   // dingbat negative circled digits
    (0x2780, 1, 9),   // dingbat circled sans-serif digits
    (0x278A, 1, 9),   // dingbat negative circled sans-serif digits
    (0x10A40, 1, 4),  // Kharoshthi digits one to four
    (0x10E60, 1, 9),  // Rumi digits
    (0x11052, 1, 9),  // Brahmi numbers one to nine
    (0x1F100, 0, 1),  // digit zero full stop
    (0x1F101, 0, 10), // digits zero to nine with comma
];

/// The value of a decimal digit of any script, or of a single-digit form.
pub fn digit_value(c: char) -> Option<u8> {
    let cp = c as u32;
    if c.is_ascii_digit() {
        return Some((cp - 0x30) as u8);
    }
    let at = DECIMAL_ZEROS.partition_point(|&z| z <= cp);
    if at > 0 && cp - DECIMAL_ZEROS[at - 1] < 10 {
        return Some((cp - DECIMAL_ZEROS[at - 1]) as u8);
    }
    DIGIT_FORMS
        .iter()
        .find(|(start, _, len)| (*start..*start + u32::from(*len)).contains(&cp))
        .map(|(start, value, _)| value + (cp - start) as u8)
}

/// What a character is for the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fold {
    /// Read as this ASCII byte.
    Ascii(u8),
    /// Invisible: read as nothing.
    Drop,
    /// Neither a digit, a letter of ASCII nor a separator.
    Other,
}

/// How the detectors read `c`.
pub(super) fn fold(c: char) -> Fold {
    let cp = c as u32;
    if cp < 0x80 {
        return Fold::Ascii(cp as u8);
    }
    // CJK ideographs and Hangul syllables, most of a Chinese or Korean
    // text, fold to nothing: answered first.
    if (0x3400..0xA000).contains(&cp) || (0xAC00..0xD7A4).contains(&cp) {
        return Fold::Other;
    }
    if (0xFF01..=0xFF5E).contains(&cp) {
        let ascii = (cp - 0xFEE0) as u8;
        let read = ascii.is_ascii_alphanumeric()
            || matches!(ascii, b'.' | b'-' | b'+' | b'/' | b'@' | b'%' | b'_');
        return if read {
            Fold::Ascii(ascii)
        } else {
            Fold::Other
        };
    }
    let ascii = match cp {
        0x00A0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 => b' ',
        0x2010..=0x2015 | 0x2212 | 0x2E3A | 0x2E3B | 0xFE58 | 0xFE63 => b'-',
        0x00B7 | 0x2024 | 0x2027 | 0x2219 | 0x22C5 | 0x30FB | 0xFE52 | 0xFF65 => b'.',
        0x2044 | 0x2215 => b'/',
        0xFE62 => b'+',
        0xFE6B => b'@',
        0x00AD
        | 0x034F
        | 0x061C
        | 0x115F
        | 0x1160
        | 0x17B4
        | 0x17B5
        | 0x180B..=0x180F
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x206F
        | 0x3164
        | 0xFE00..=0xFE0F
        | 0xFEFF
        | 0xFFA0
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF => return Fold::Drop,
        _ => match digit_value(c) {
            Some(v) => b'0' + v,
            None => return Fold::Other,
        },
    };
    Fold::Ascii(ascii)
}

/// A byte standing for a character that folds to nothing ASCII: not a
/// digit, letter, word character or separator of any detector.
const OTHER: u8 = 0x80;

/// A folded copy of a text, one byte per character that was not dropped,
/// with where each came from.
pub(super) struct Folded {
    pub(super) bytes: Vec<u8>,
    /// The original byte range of each folded byte's character.
    from: Vec<(u32, u32)>,
}

impl Folded {
    /// The original byte range of the folded range `start..end`.
    pub(super) fn original(&self, start: usize, end: usize) -> (usize, usize) {
        let s = self.from.get(start).map_or(0, |r| r.0 as usize);
        let e = end
            .checked_sub(1)
            .and_then(|i| self.from.get(i))
            .map_or(s, |r| r.1 as usize);
        (s, e.max(s))
    }
}

/// How the detectors read a text.
pub(super) enum Prepared {
    /// Its bytes as they are: ASCII, or no character folds to anything
    /// (its non-ASCII bytes are read as characters no detector reads).
    AsIs,
    /// Nothing of it can match: no digit and no `@`, folded or not.
    Nothing,
    Folded(Folded),
}

/// How the detectors read `text`.
pub(super) fn prepare(text: &str) -> Prepared {
    if text.is_ascii() {
        return Prepared::AsIs;
    }
    match needs_folding(text) {
        Need::Nothing => Prepared::Nothing,
        Need::AsIs => Prepared::AsIs,
        Need::Fold => fold_all(text).map_or(Prepared::AsIs, Prepared::Folded),
    }
}

/// The folded copy of `text`, or `None` when folding changes nothing the
/// detectors read (ASCII text, or text whose non-ASCII characters all
/// fold to [`Fold::Other`]: its bytes are read as they are).
#[cfg(test)]
fn fold_text(text: &str) -> Option<Folded> {
    if text.is_ascii() || needs_folding(text) != Need::Fold {
        return None;
    }
    fold_all(text)
}

/// The folded copy of `text`, whether or not anything folds.
fn fold_all(text: &str) -> Option<Folded> {
    // Texts are bounded by the body size the proxy accepts; offsets of a
    // text beyond 4 GiB are not representable, and such a text is read as
    // it is.
    if u32::try_from(text.len()).is_err() {
        return None;
    }
    let mut bytes = Vec::with_capacity(text.len());
    let mut from = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let b = match fold(c) {
            Fold::Ascii(b) => b,
            Fold::Drop => continue,
            Fold::Other => OTHER,
        };
        bytes.push(b);
        from.push((i as u32, (i + c.len_utf8()) as u32));
    }
    Some(Folded { bytes, from })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A character folds to something other than itself.
    Fold,
    /// None does, and there is an ASCII digit or `@`.
    AsIs,
    /// None does, and there is no digit or `@`: nothing to find.
    Nothing,
}

/// Whether a character of `text` folds to something other than itself, in
/// one pass that also notes the ASCII digits and `@` (a text with neither
/// and nothing to fold is done with). Most non-ASCII text is Chinese: a
/// character of `U+4000`–`U+9FFF` (a lead byte `E4`–`E9`, three bytes) is
/// skipped without decoding.
fn needs_folding(text: &str) -> Need {
    let b = text.as_bytes();
    let mut i = 0;
    let mut key = false;
    while i < b.len() {
        match b[i] {
            c @ 0x00..0x80 => {
                key |= c.is_ascii_digit() || c == b'@';
                i += 1;
            }
            0xE4..=0xE9 => i += 3,
            _ => {
                let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
                    return Need::AsIs;
                };
                if fold(c) != Fold::Other {
                    return Need::Fold;
                }
                i += c.len_utf8();
            }
        }
    }
    if key { Need::AsIs } else { Need::Nothing }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decimal_digit_table_is_complete_and_sorted() {
        assert!(DECIMAL_ZEROS.windows(2).all(|w| w[0] + 10 <= w[1]));
        for &z in &DECIMAL_ZEROS {
            for v in 0..10 {
                let c = char::from_u32(z + v).unwrap();
                assert!(c.is_numeric(), "{:X}", z + v);
                assert_eq!(digit_value(c), Some(v as u8));
            }
        }
        // Every run of ten numeric characters the standard library knows
        // (its Unicode version) that is not a listed decimal run is one
        // of the known runs of other numbers (Numeric_Type Digit or
        // Numeric: circled, parenthesised, Roman, counting rods…).
        let mut cp = 0u32;
        let mut unlisted_runs = 0;
        while cp < 0x11_0000 {
            let numeric = |x: u32| char::from_u32(x).is_some_and(char::is_numeric);
            if numeric(cp) {
                let start = cp;
                while numeric(cp) {
                    cp += 1;
                }
                let listed = DECIMAL_ZEROS
                    .iter()
                    .filter(|&&z| z >= start && z + 10 <= cp)
                    .count() as u32;
                if (cp - start) >= 10 && listed * 10 < cp - start {
                    unlisted_runs += 1;
                }
            }
            cp += 1;
        }
        // 38 runs of other numbers in Unicode 17.0 (Tamil and Sinhala
        // numbers beside their digits, Roman numerals, circled numbers,
        // counting rods, cuneiform, Kaktovik…). A standard library of a
        // later Unicode version with a new run of ten numbers fails here:
        // if the run is decimal digits, add its zero to the table.
        assert!(
            unlisted_runs <= 38,
            "{unlisted_runs} runs of numbers that are not decimal digits: is one new?"
        );
    }

    #[test]
    fn digits_of_every_script_fold_to_ascii() {
        for (s, want) in [
            ("０１２３４５６７８９", "0123456789"),
            ("٠١٢٣٤٥٦٧٨٩", "0123456789"),
            ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),
            ("०१२३४५६७८९", "0123456789"),
            ("০১২৩৪৫৬৭৮৯", "0123456789"),
            ("๐๑๒๓๔๕๖๗๘๙", "0123456789"),
            ("𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗", "0123456789"),
            ("①②③⁴₅", "12345"),
            ("ＸｘＡ＠．－＋，：", "XxA@.-+\u{FFFD}\u{FFFD}"),
            (
                "1\u{00A0}2\u{3000}3\u{2013}4\u{2014}5\u{00B7}6\u{30FB}7",
                "1 2 3-4-5.6.7",
            ),
            ("1\u{200B}2\u{FEFF}3\u{00AD}4", "1234"),
        ] {
            let f = fold_text(s).unwrap();
            assert_eq!(String::from_utf8_lossy(&f.bytes), want, "{s}");
        }
        assert!(fold_text("plain ascii 123").is_none());
        assert!(fold_text("客户说身份证110101199001010015").is_none());
        assert!(fold_text("您好，电话：13900131001。谢谢！").is_none());
        assert_eq!(digit_value('x'), None);
        assert_eq!(digit_value('Ⅻ'), None);
    }

    #[test]
    fn folded_ranges_map_back_to_the_original_characters() {
        let s = "电话１３９\u{200B}０";
        let f = fold_text(s).unwrap();
        assert_eq!(f.bytes, [OTHER, OTHER, b'1', b'3', b'9', b'0']);
        let (a, b) = f.original(2, 6);
        assert_eq!(&s[a..b], "１３９\u{200B}０");
        assert_eq!(f.original(0, 0), (0, 0));
    }
}

//! Which records a response disclosed, for the audit trail (CDM-4.2.3:
//! every read traceable to the data read), kept small enough for every
//! request's record.
//!
//! Ids are written as they come, except that a run of ids sharing a
//! prefix and counting up by one in a fixed-width number (`c-1001`,
//! `c-1002`, … `c-1060`) is written as its first and last id: a listing of
//! consecutive records costs two ids whatever its length. At most
//! [`MAX_RUNS`] runs are kept per list; records beyond are counted in
//! `omitted`, so the count is always exact even when the names are not.
//! Ids longer than [`MAX_ID_BYTES`] are cut (they are upstream data).

use crate::catalogue::Scope;

/// Runs (single ids or ranges) a list keeps.
pub const MAX_RUNS: usize = 64;
/// Longest id kept whole; longer ones are cut on a character boundary.
pub const MAX_ID_BYTES: usize = 128;

/// A compact, bounded list of ids in the order they were added.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IdList {
    runs: Vec<Run>,
    /// Ids added after [`MAX_RUNS`] runs were full (not named).
    pub omitted: u32,
}

/// One entry of an [`IdList`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    One(Box<str>),
    /// `prefix` followed by every number from `first` to `last`, each
    /// zero-padded to `width` digits.
    Range {
        prefix: Box<str>,
        first: u64,
        last: u64,
        width: usize,
    },
}

impl Run {
    /// The run as the audit record writes it: `["first", "last"]` for a
    /// range, the id itself otherwise.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Run::One(id) => serde_json::Value::String(id.to_string()),
            Run::Range {
                prefix,
                first,
                last,
                width,
            } => serde_json::json!([
                format!("{prefix}{first:0width$}"),
                format!("{prefix}{last:0width$}")
            ]),
        }
    }

    /// Whether `id` is this run's id or inside its range.
    pub fn contains(&self, id: &str) -> bool {
        match self {
            Run::One(one) => **one == *id,
            Run::Range {
                prefix,
                first,
                last,
                width,
            } => split_number(id).is_some_and(|(p, n, w)| {
                p == &**prefix && w == *width && (*first..=*last).contains(&n)
            }),
        }
    }
}

impl Run {
    /// A run as an audit record writes it ([`Run::to_json`]), read back.
    pub fn from_json(v: &serde_json::Value) -> Option<Run> {
        match v {
            serde_json::Value::String(id) => Some(Run::One(id.as_str().into())),
            serde_json::Value::Array(ends) => {
                let [first, last] = ends.as_slice() else {
                    return None;
                };
                let (p1, n1, w1) = split_number(first.as_str()?)?;
                let (p2, n2, w2) = split_number(last.as_str()?)?;
                (p1 == p2 && w1 == w2 && n1 <= n2).then(|| Run::Range {
                    prefix: p1.into(),
                    first: n1,
                    last: n2,
                    width: w1,
                })
            }
            _ => None,
        }
    }
}

/// `c-1001` → (`c-`, 1001, 4): the id's trailing ASCII digits as a number
/// (at most 18 digits, so it fits), the text before them, and how many
/// digits there are.
fn split_number(id: &str) -> Option<(&str, u64, usize)> {
    let digits = id.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 18 {
        return None;
    }
    let (prefix, number) = id.split_at(id.len() - digits);
    // At most 18 ASCII digits: always an u64 (what `parse` gave, without
    // its checks; this runs for every record shown).
    let n = (number.bytes()).fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    Some((prefix, n, digits))
}

/// `id` cut to [`MAX_ID_BYTES`] on a character boundary, marked with `…`.
fn bounded(id: &str) -> Box<str> {
    if id.len() <= MAX_ID_BYTES {
        return id.into();
    }
    let mut end = MAX_ID_BYTES;
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &id[..end]).into()
}

impl IdList {
    /// Appends `id`; an id equal to the last one added is not repeated.
    pub fn add(&mut self, id: &str) {
        if let Some(last) = self.runs.last_mut() {
            // Split once for both questions.
            let split = split_number(id);
            if last.is_last(id, split) {
                return;
            }
            if last.extend(id, split) {
                return;
            }
        }
        if self.runs.len() < MAX_RUNS {
            self.runs.push(Run::One(bounded(id)));
        } else {
            self.omitted = self.omitted.saturating_add(1);
        }
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.omitted == 0
    }
}

impl Run {
    fn is_last(&self, id: &str, split: Option<(&str, u64, usize)>) -> bool {
        match self {
            Run::One(one) => **one == *id,
            Run::Range {
                prefix,
                last,
                width,
                ..
            } => split.is_some_and(|(p, n, w)| p == &**prefix && n == *last && w == *width),
        }
    }

    /// Grows this run by `id` when it is the next number of the run.
    fn extend(&mut self, id: &str, split: Option<(&str, u64, usize)>) -> bool {
        let Some((p, n, w)) = split else {
            return false;
        };
        match self {
            Run::Range {
                prefix,
                last,
                width,
                ..
            } => {
                if p == &**prefix && w == *width && last.checked_add(1) == Some(n) {
                    *last = n;
                    return true;
                }
                false
            }
            Run::One(one) => match split_number(one) {
                Some((op, on, ow))
                    if op == p
                        && ow == w
                        && on.checked_add(1) == Some(n)
                        && id.len() <= MAX_ID_BYTES =>
                {
                    *self = Run::Range {
                        prefix: p.into(),
                        first: on,
                        last: n,
                        width: w,
                    };
                    true
                }
                _ => false,
            },
        }
    }
}

/// The records of one entity a response disclosed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EntityDisclosure {
    /// Records shown (exact).
    pub count: u32,
    /// Their ids (`id_field`); records without one are counted only.
    pub ids: IdList,
    /// The customers they are about (their `owner`), when that is not the
    /// record id itself: who `fieldguard audit subject` finds in a listing
    /// of orders or events.
    pub subjects: IdList,
}

/// Every record a response disclosed, by entity (catalogue index).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Disclosed {
    entities: Vec<(u16, EntityDisclosure)>,
}

impl Disclosed {
    /// Records one shown record of entity `index`.
    pub fn add(&mut self, index: u16, id: &str, subject: Option<&str>) {
        let at = match self.entities.iter().position(|(i, _)| *i == index) {
            Some(at) => at,
            None => {
                self.entities.push((index, EntityDisclosure::default()));
                self.entities.len() - 1
            }
        };
        let e = &mut self.entities[at].1;
        e.count = e.count.saturating_add(1);
        if !id.is_empty() {
            e.ids.add(id);
        }
        if let Some(s) = subject.filter(|s| !s.is_empty()) {
            e.subjects.add(s);
        }
    }

    /// By entity index, in index order.
    pub fn entities(&self) -> Vec<(Scope, &EntityDisclosure)> {
        let mut v: Vec<(Scope, &EntityDisclosure)> = self
            .entities
            .iter()
            .map(|(i, e)| (Scope::Entity(*i), e))
            .collect();
        v.sort_by_key(|(s, _)| *s);
        v
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json(list: &IdList) -> serde_json::Value {
        serde_json::Value::Array(list.runs().iter().map(Run::to_json).collect())
    }

    #[test]
    fn consecutive_ids_become_one_range() {
        let mut l = IdList::default();
        for n in 1001..=1060 {
            l.add(&format!("c-{n}"));
        }
        assert_eq!(json(&l), json!([["c-1001", "c-1060"]]));
        assert!(l.runs()[0].contains("c-1033"));
        assert!(!l.runs()[0].contains("c-1061"));
        assert!(!l.runs()[0].contains("c-01033"));
    }

    #[test]
    fn runs_read_back_from_their_json() {
        for v in [
            json!("x-1"),
            json!(["c-1001", "c-1060"]),
            json!(["007", "008"]),
        ] {
            assert_eq!(Run::from_json(&v).unwrap().to_json(), v);
        }
        for bad in [
            json!(["c-9", "c-10"]),
            json!(["a-2", "a-1"]),
            json!(1),
            json!(["x"]),
        ] {
            assert!(Run::from_json(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn gaps_widths_and_repeats_break_or_skip_runs() {
        let mut l = IdList::default();
        for id in [
            "o-10011", "o-10012", "o-10021", "o-10021", "x", "c-9", "c-10", "007", "008",
        ] {
            l.add(id);
        }
        assert_eq!(
            json(&l),
            json!([
                ["o-10011", "o-10012"],
                "o-10021",
                "x",
                "c-9",
                "c-10",
                ["007", "008"]
            ])
        );
    }

    #[test]
    fn the_list_is_bounded_and_counts_what_it_omits() {
        let mut l = IdList::default();
        for n in 0..(MAX_RUNS + 10) {
            l.add(&format!("id-{}", n * 2));
        }
        assert_eq!(l.runs().len(), MAX_RUNS);
        assert_eq!(l.omitted, 10);
        let long = "é".repeat(200);
        let mut l = IdList::default();
        l.add(&long);
        let Run::One(kept) = &l.runs()[0] else {
            panic!("not one id")
        };
        assert!(kept.len() <= MAX_ID_BYTES + '…'.len_utf8());
        assert!(kept.ends_with('…'));
    }

    #[test]
    fn disclosures_count_every_record_by_entity() {
        let mut d = Disclosed::default();
        d.add(1, "o-10011", Some("c-1001"));
        d.add(1, "o-10012", Some("c-1001"));
        d.add(0, "c-1002", None);
        d.add(1, "", Some("c-1002"));
        let e = d.entities();
        assert_eq!(e[0].0, Scope::Entity(0));
        assert_eq!(e[1].1.count, 3);
        assert_eq!(json(&e[1].1.ids), json!([["o-10011", "o-10012"]]));
        assert_eq!(json(&e[1].1.subjects), json!([["c-1001", "c-1002"]]));
    }
}

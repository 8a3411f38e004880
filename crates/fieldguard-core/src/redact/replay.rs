//! Replay of a record's writing: what the byte redactor ([`super::bytes`])
//! did with each member of the last record written with a record plan,
//! kept in the plan ([`super::record_plan::RecordPlan::replay`]) for the
//! next record with that plan to do again without looking up or deciding.

use super::Outcome;
use crate::config::JsonType;
use crate::short_eq::same_bytes;

/// Members a record's replay remembers at most (a record's members
/// nested ones included, in walk order; a longer record is walked the
/// ordinary way past them).
const MAX_STEPS: usize = 256;

/// What `RecordWalk::member` ([`super::bytes`]) did with the members of the last record
/// written with a plan ([`super::record_plan::RecordPlan::replay`]), for
/// the next record with that plan to do again without looking up or
/// deciding: the records of a list nearly always repeat the keys of the
/// one before, in the same order.
///
/// A step is replayed for the member at the same place of the walk (the
/// same count of members walked before it in the record, all of them
/// replayed, and the same depth: so under the same catalogue node) with
/// the same key bytes, so the same catalogue child; a leaf only when its
/// value is of the same JSON type, so admitted and decided alike (the plan
/// is the same). The first member that differs is walked the ordinary way
/// and what it did replaces the rest of the steps.
#[derive(Default)]
pub(super) struct Replay {
    steps: Vec<Step>,
    /// The steps' keys.
    bytes: Vec<u8>,
    /// The steps' labels (a `str`: no UTF-8 check to read one back).
    labels: String,
    /// Set once a record was written with the plan: the first one is
    /// walked without remembering anything, so that a body of one record
    /// does not pay for steps it never replays (the second remembers, the
    /// third and later replay).
    pub(super) armed: bool,
}

pub(super) struct Step {
    /// The key as the input spells it (quotes and escapes included), in
    /// [`Replay::bytes`].
    pub(super) key: std::ops::Range<u32>,
    /// For [`Act::Object`]: the key's [`super::plan::key_label`], in [`Replay::labels`].
    pub(super) label: std::ops::Range<u32>,
    pub(super) depth: usize,
    pub(super) act: Act,
}

#[derive(Clone, Copy)]
pub(super) enum Act {
    /// A leaf of `field` whose value, a scalar of type `kind`, had
    /// `outcome` (and was not shown through the backstop).
    Leaf {
        field: u32,
        kind: JsonType,
        outcome: Outcome,
    },
    /// An object under a catalogued container: descended into.
    Object,
    /// Anything else (an unnamed member, a misshapen or container value):
    /// walked the ordinary way each time.
    Other,
}

impl Replay {
    /// The step at `at` if it is for a member at `depth` keyed `key`.
    #[inline]
    pub(super) fn get(&self, at: usize, depth: usize, key: &[u8]) -> Option<&Step> {
        let step = self.steps.get(at)?;
        let known = self
            .bytes
            .get(step.key.start as usize..step.key.end as usize)?;
        (step.depth == depth && same_bytes(known, key)).then_some(step)
    }

    pub(super) fn label(&self, step: &Step) -> &str {
        (self.labels)
            .get(step.label.start as usize..step.label.end as usize)
            .unwrap_or("?")
    }

    /// Makes `act` the step at `at`, in place of it and all after it.
    pub(super) fn remember(&mut self, at: usize, depth: usize, key: &[u8], label: &str, act: Act) {
        if at > self.steps.len() || at >= MAX_STEPS {
            return;
        }
        self.steps.truncate(at);
        let last = self.steps.last();
        self.bytes.truncate(last.map_or(0, |s| s.key.end as usize));
        self.labels
            .truncate(last.map_or(0, |s| s.label.end as usize));
        let (key_start, label_start) = (self.bytes.len() as u32, self.labels.len() as u32);
        self.bytes.extend_from_slice(key);
        self.labels.push_str(label);
        self.steps.push(Step {
            key: key_start..self.bytes.len() as u32,
            label: label_start..self.labels.len() as u32,
            depth,
            act,
        });
    }
}

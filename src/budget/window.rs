//! A sliding-window counter in constant memory: the window is cut into
//! [`SLOTS`] slots, and the count is the sum of the slots the window still
//! covers. What was disclosed leaves the count between 11/12 and 12/12 of
//! the window after it happened: exact enough for a budget, and 12 small
//! integers per counter however much traffic it sees.

/// Slots per window.
pub const SLOTS: usize = 12;

#[derive(Debug, Clone)]
pub struct Window {
    /// Length of one slot in milliseconds (at least 1).
    slot_ms: u64,
    /// Absolute number (time / `slot_ms`) of the newest slot.
    head: u64,
    counts: [u32; SLOTS],
}

impl Window {
    pub fn new(window_ms: u64) -> Self {
        Self {
            slot_ms: Self::slot_ms_of(window_ms),
            head: 0,
            counts: [0; SLOTS],
        }
    }

    /// The slot length of a window of `window_ms` (at least 1 ms).
    pub fn slot_ms_of(window_ms: u64) -> u64 {
        window_ms.div_ceil(SLOTS as u64).max(1)
    }

    pub fn slot_ms(&self) -> u64 {
        self.slot_ms
    }

    /// Moves the window to `now_ms`, emptying the slots it left behind.
    fn advance(&mut self, now_ms: u64) {
        let slot = now_ms / self.slot_ms;
        if slot <= self.head {
            return;
        }
        let gap = slot - self.head;
        if gap >= SLOTS as u64 {
            self.counts = [0; SLOTS];
        } else {
            for i in 1..=gap {
                self.counts[((self.head + i) % SLOTS as u64) as usize] = 0;
            }
        }
        self.head = slot;
    }

    /// What the window holds at `now_ms`.
    pub fn used(&mut self, now_ms: u64) -> u64 {
        self.advance(now_ms);
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// Counts `n` at `now_ms` (saturating).
    pub fn add(&mut self, now_ms: u64, n: u64) {
        self.advance(now_ms);
        let slot = &mut self.counts[(self.head % SLOTS as u64) as usize];
        *slot = slot.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Milliseconds from `now_ms` until the oldest count still held leaves
    /// the window (the earliest moment the count can drop); 0 when empty.
    pub fn frees_in_ms(&mut self, now_ms: u64) -> u64 {
        self.advance(now_ms);
        let oldest = (0..SLOTS as u64)
            .rev()
            .map(|age| self.head.saturating_sub(age))
            .find(|&slot| slot <= self.head && self.counts[(slot % SLOTS as u64) as usize] > 0);
        match oldest {
            Some(slot) => ((slot + SLOTS as u64) * self.slot_ms).saturating_sub(now_ms),
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_leave_the_window_after_it_passes() {
        // A 12 s window: 1 s slots.
        let mut w = Window::new(12_000);
        w.add(0, 5);
        w.add(5_500, 3);
        assert_eq!(w.used(5_900), 8);
        assert_eq!(w.used(11_999), 8);
        // The first slot leaves at 12 s, the second at 17 s.
        assert_eq!(w.used(12_000), 3);
        assert_eq!(w.used(16_999), 3);
        assert_eq!(w.used(17_000), 0);
        // A long pause empties everything.
        w.add(20_000, 1);
        assert_eq!(w.used(1_000_000), 0);
    }

    #[test]
    fn it_says_when_the_count_first_drops() {
        let mut w = Window::new(12_000);
        assert_eq!(w.frees_in_ms(0), 0);
        w.add(2_300, 1);
        w.add(4_000, 1);
        assert_eq!(w.frees_in_ms(5_000), 14_000 - 5_000);
    }

    #[test]
    fn tiny_windows_and_huge_counts_are_safe() {
        let mut w = Window::new(1);
        assert_eq!(w.slot_ms(), 1);
        w.add(0, u64::MAX);
        w.add(0, u64::MAX);
        assert_eq!(w.used(0), u64::from(u32::MAX));
        assert_eq!(w.used(13), 0);
    }
}

//! The connections' timers: a hashed wheel of one-second buckets.
use super::NS;

/// A timer: the connection in `slot` (while its id is `conn_id`) needs attention at `due_ns`.
/// 24 bytes, so the heap moves little.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timer {
    pub(super) due_ns: i64,
    pub(super) conn_id: i64,
    pub(super) slot: u32,
}

/// Seconds of due time the timer wheel spans: more than any timeout, so a timer is normally
/// looked at once, when its second comes.
pub(super) const WHEEL_SECONDS: i64 = 1024;

/// The connections' timers in a hashed wheel of one-second buckets: arming is a push into the
/// bucket of the due second, and a sweep looks only at the buckets of the seconds that have
/// come since the last one. (A binary heap did the same with a sift per push and pop over a
/// heap of stale entries: 7 % of the packet path.) A timer armed for a second already swept
/// goes into the last swept second's bucket, which every sweep looks at again.
#[derive(Debug)]
pub(super) struct TimerWheel {
    pub(super) buckets: Vec<Vec<Timer>>,
    /// The second of the last sweep's clock; `None` before the first.
    pub(super) swept: Option<i64>,
}

impl TimerWheel {
    pub(super) fn new() -> Self {
        TimerWheel { buckets: (0..WHEEL_SECONDS).map(|_| Vec::new()).collect(), swept: None }
    }

    pub(super) fn bucket(second: i64) -> usize {
        usize::try_from(second.rem_euclid(WHEEL_SECONDS)).unwrap_or(0)
    }

    pub(super) fn push(&mut self, t: Timer) {
        let second = t.due_ns.div_euclid(NS).max(self.swept.unwrap_or(i64::MIN));
        self.buckets[Self::bucket(second)].push(t);
    }

    /// Moves every timer due at or before `now` into `due`, in due order (then connection id
    /// and slot, as a heap would pop them).
    pub(super) fn take_due(&mut self, now: i64, due: &mut Vec<Timer>) {
        let second = now.div_euclid(NS);
        let first = match self.swept {
            Some(s) if s <= second && second - s < WHEEL_SECONDS => s,
            _ => second - (WHEEL_SECONDS - 1), // the first sweep, or a jump: every bucket
        };
        for s in first..=second {
            self.buckets[Self::bucket(s)].retain(|t| {
                let ready = t.due_ns <= now;
                if ready {
                    due.push(*t);
                }
                !ready
            });
        }
        self.swept = Some(self.swept.map_or(second, |s| s.max(second)));
        due.sort_unstable();
    }

    pub(super) fn clear(&mut self) {
        self.buckets.iter_mut().for_each(Vec::clear);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_wheel_hands_out_due_timers_in_order() {
        let at = |s: i64| s * NS + NS / 4;
        let timer = |s: i64, conn_id: i64| Timer { due_ns: at(s), conn_id, slot: 0 };
        let take = |w: &mut TimerWheel, s: i64| {
            let mut due = Vec::new();
            w.take_due(at(s) + 1, &mut due);
            due.iter().map(|t| t.conn_id).collect::<Vec<_>>()
        };
        let mut w = TimerWheel::new();
        for t in [timer(5, 1), timer(3, 2), timer(3 + WHEEL_SECONDS, 3), timer(2, 4)] {
            w.push(t);
        }
        assert_eq!(take(&mut w, 3), [4, 2], "due ones in due order; the next lap's stays");
        w.push(timer(1, 5));
        assert_eq!(take(&mut w, 3), [5], "armed for a second already swept: the next sweep");
        w.push(timer(4_000, 6));
        assert_eq!(take(&mut w, 1_100), [1, 3]);
        assert_eq!(take(&mut w, 5_000), [6], "a jump past the whole wheel looks everywhere");
        assert_eq!(take(&mut w, 5_001), Vec::<i64>::new());
    }
}
